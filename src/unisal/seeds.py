"""Seeds derived from the run seed, so that every round and purpose has its own stream."""

from __future__ import annotations

import numpy as np

_PURPOSES = {
    "init": 0,
    "train": 1,
    "select": 2,
    "subset": 3,
    "initial": 4,
    "stop_set": 5,
    "subsample": 6,
    "cv": 7,
}


def fit_seeds(seed: int, round_: int, part: int = 0) -> dict[str, int]:
    """The two seeds of one fit (``Learner.fit(sets, **fit_seeds(...))``): ``init_seed`` for the
    networks' initial weights, ``seed`` for batch order and views; ``part`` as in :func:`round_seed`."""
    return {
        "init_seed": round_seed(seed, round_, "init", part),
        "seed": round_seed(seed, round_, "train", part),
    }


def round_seed(seed: int, round_: int, purpose: str, part: int = 0) -> int:
    """A stable 31-bit seed for one ``purpose`` (init, train, select, subset, initial, stop_set,
    subsample, cv) in one round;
    ``part`` > 0 gives further independent streams (e.g. one per cross-validation fold)."""
    entropy = [seed, round_, _PURPOSES[purpose]] + ([part] if part else [])
    return int(np.random.SeedSequence(entropy).generate_state(1)[0] >> 1)
