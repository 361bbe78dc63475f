"""What a benchmark runs: arms (a strategy with a learner) x seeds, each an ordinary run folder.

An arm is written ``STRATEGY`` (with every learner of ``--learners``) or
``STRATEGY@LEARNER[:MODE]``, e.g. ``unisal@frozen:supervised``: UniSAL's selection with networks
trained on the labels only; ``+RECIPE`` (repeatable) adds named settings on top of the base, e.g.
``unisal+v1``: UniSAL trained as before issue 15.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path

from unisal.config import LEARNER_MODES, ConfigError, RunConfig, recipe_values
from unisal.learners import learner_class
from unisal.query import strategy_class
from unisal.settings import override_config

FULL = "full supervision"  # the ``arm`` of the reference rows in results.csv


@dataclass(frozen=True)
class LearnerSpec:
    name: str
    mode: str = "cotrain"

    @classmethod
    def parse(cls, text: str) -> LearnerSpec:
        name, _, mode = text.strip().partition(":")
        learner_class(name)  # unknown learner: ConfigError naming the known ones
        mode = mode or "cotrain"
        if mode not in LEARNER_MODES:
            raise ConfigError(f"learner '{text}': the mode must be one of {list(LEARNER_MODES)}")
        return cls(name, mode)

    def __str__(self) -> str:
        return self.name if self.mode == "cotrain" else f"{self.name}:{self.mode}"


@dataclass(frozen=True)
class Arm:
    """One curve of the benchmark: a query strategy with a learner, and recipes on top of the base
    settings (:data:`unisal.config.RECIPES`, applied in order)."""

    strategy: str
    learner: LearnerSpec
    recipes: tuple[str, ...] = ()

    def label(self, default: LearnerSpec) -> str:
        """How tables and plots name the arm: the strategy (and its recipes) alone with the default
        learner, ``strategy+recipe (learner:mode)`` otherwise."""
        name = "+".join((self.strategy, *self.recipes))
        return name if self.learner == default else f"{name} ({self.learner})"

    @property
    def key(self) -> str:
        """Folder name: ``strategy@learner[-mode][+recipe...]``."""
        return f"{self.strategy}@{str(self.learner).replace(':', '-')}" + "".join(
            f"+{r}" for r in self.recipes
        )


@dataclass(frozen=True)
class Job:
    """One unit of a benchmark: a run (``arm`` set) or the full-supervision reference of ``seed``
    (``arm`` None)."""

    seed: int
    arm: Arm | None = None


def parse_arms(strategies: str, learners: list[LearnerSpec]) -> list[Arm]:
    """Arms of ``--strategies`` (comma-separated) crossed with ``learners``; no duplicates."""
    arms: list[Arm] = []
    for item in (s.strip() for s in strategies.split(",")):
        if not item:
            continue
        head, *recipes = item.split("+")
        name, at, learner = head.partition("@")
        strategy_class(name)  # unknown strategy: ConfigError naming the known ones
        for recipe in recipes:
            recipe_values(recipe.strip())  # unknown recipe: ConfigError naming the known ones
        for spec in [LearnerSpec.parse(learner)] if at else learners:
            arm = Arm(name, spec, tuple(r.strip() for r in recipes))
            if arm not in arms:
                arms.append(arm)
    if not arms:
        raise ConfigError("--strategies names no strategy")
    return arms


def parse_seeds(text: str) -> list[int]:
    """``0-4``, ``0,2,5`` or a mix (``0-2,7``) -> sorted unique seeds >= 0."""
    seeds: set[int] = set()
    try:
        for part in (p.strip() for p in text.split(",")):
            if not part:
                continue
            low, dash, high = part.partition("-")
            first, last = int(low), int(high) if dash else int(low)
            if first < 0 or last < first:
                raise ValueError
            seeds.update(range(first, last + 1))
    except ValueError as exc:
        raise ConfigError(f"--seeds '{text}': expected seeds >= 0 like 0-4 or 0,2,5") from exc
    if not seeds:
        raise ConfigError("--seeds names no seed")
    return sorted(seeds)


def run_config(base: RunConfig, arm: Arm, seed: int, out: Path) -> RunConfig:
    """The settings of one run: ``base`` with the arm's strategy and learner, the seed and folder."""
    cfg = copy.deepcopy(base)
    for recipe in arm.recipes:
        override_config(cfg, recipe_values(recipe))
    cfg.query.strategy = arm.strategy
    cfg.learner.name, cfg.learner.mode = arm.learner.name, arm.learner.mode
    if arm.learner.mode == "cotrain":
        cfg.learner.networks = 2  # a supervised arm keeps the base setting (2 by default: a fair pair)
    cfg.seed = seed
    cfg.out = str(run_folder(out, arm, seed))
    return cfg


def run_folder(out: Path, arm: Arm, seed: int) -> Path:
    return out / "runs" / arm.key / f"seed{seed}"


def reference_folder(out: Path, seed: int) -> Path:
    return out / "reference" / f"seed{seed}"
