"""Learners: fine-tuning and frozen-backbone heads behind one protocol; importing registers both."""

from unisal.learners import finetune as _finetune  # noqa: F401  (registers finetune)
from unisal.learners import frozen as _frozen  # noqa: F401  (registers frozen)
from unisal.learners.base import Learner, create_learner, learner_class, learner_names, register_learner

__all__ = ["Learner", "create_learner", "learner_class", "learner_names", "register_learner"]
