"""Seeded, stratified train/val/test splits that never separate a group."""

from __future__ import annotations

import numpy as np

TRAIN, VAL, TEST = "train", "val", "test"
SPLIT_NAMES = (TRAIN, VAL, TEST)


def grouped_split(
    labels: np.ndarray, groups: np.ndarray, val_fraction: float, test_fraction: float, seed: int
) -> np.ndarray:
    """Assign each image to ``train``, ``val`` or ``test``, whole groups at a time.

    Greedy stratified allocation: groups are visited largest first (random order among equal
    sizes) and each goes to the split with the largest remaining deficit, per class, against
    its target share. Large data sets land within a group's size of the target fractions; tiny
    ones fill train and test first. Unlabelled images (-1) are a stratum of their own; those
    in groups sent to val or test are simply not used.

    Args:
        labels: class indices, shape (N,); -1 where unknown.
        groups: group ids, shape (N,); all images of a group land in the same split.
        val_fraction: target share of images for validation (0 for none).
        test_fraction: target share of images for the test split.
        seed: the split is a pure function of its inputs and this seed.

    Returns:
        Array of split names, shape (N,).
    """
    labels, groups = np.asarray(labels), np.asarray(groups)
    _, strata = np.unique(labels, return_inverse=True)
    _, group_of = np.unique(groups, return_inverse=True)
    n_groups, n_strata = int(group_of.max()) + 1, int(strata.max()) + 1
    counts = np.zeros((n_groups, n_strata))
    np.add.at(counts, (group_of, strata), 1.0)
    fractions = np.array([1.0 - val_fraction - test_fraction, val_fraction, test_fraction])
    targets = fractions[:, None] * counts.sum(axis=0)[None, :]  # (3, S)
    filled = np.zeros_like(targets)
    rng = np.random.default_rng(seed)
    order = rng.permutation(n_groups)
    order = order[np.argsort(-counts.sum(axis=1)[order], kind="stable")]
    assigned = np.zeros(n_groups, np.int64)
    for g in order:
        c = counts[g]
        deficit = ((targets - filled) * c).sum(axis=1)
        deficit[fractions <= 0] = -np.inf
        s = int(np.argmax(deficit))
        assigned[g] = s
        filled[s] += c
    return np.asarray(SPLIT_NAMES)[assigned[group_of]]
