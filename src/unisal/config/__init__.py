"""Typed configuration of a run: the schema (dataclasses), the presets and recipes, and the
checks that merge and validate values. This package imports nothing of unisal but its errors:
every layer may read a configuration. Names that take a registry's values (strategies,
learners, readers) are checked where the registries are known, by :mod:`unisal.settings`.
"""

from unisal.config.checks import (
    absolute_paths,
    apply_overrides,
    build_config,
    check_field,
    check_values,
    from_dict,
    load_yaml,
    to_dict,
    validate,
)
from unisal.config.presets import PRESETS, RECIPES, ROBUST_TRAINING, recipe_values
from unisal.config.schema import (
    FEATURE_ENGINES,
    GUARDS,
    LABELLED_SAMPLING,
    LEARNER_MODES,
    OPTIMIZERS,
    PREDICT_VIEWS,
    PSEUDO_LABELS,
    THRESHOLDS,
    VIEW_SETS,
    DataConfig,
    FeatureConfig,
    LearnerConfig,
    ModelConfig,
    QueryConfig,
    RunConfig,
    TrainConfig,
    setting,
)
from unisal.errors import ConfigError

__all__ = [
    "FEATURE_ENGINES",
    "GUARDS",
    "LABELLED_SAMPLING",
    "LEARNER_MODES",
    "OPTIMIZERS",
    "PRESETS",
    "PSEUDO_LABELS",
    "RECIPES",
    "ROBUST_TRAINING",
    "PREDICT_VIEWS",
    "THRESHOLDS",
    "VIEW_SETS",
    "ConfigError",
    "DataConfig",
    "FeatureConfig",
    "LearnerConfig",
    "ModelConfig",
    "QueryConfig",
    "RunConfig",
    "TrainConfig",
    "absolute_paths",
    "apply_overrides",
    "build_config",
    "check_field",
    "check_values",
    "from_dict",
    "load_yaml",
    "recipe_values",
    "setting",
    "to_dict",
    "validate",
]
