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


def subsample_classes(labels: np.ndarray, groups: np.ndarray, ratio: np.ndarray, seed: int) -> np.ndarray:
    """Keep whole groups so that the classes stand in ``ratio``, as many images as that allows.

    Each group counts for its most frequent class (images of a class of ratio 0 in a kept group
    are dropped; the rest of the group stays together). Per class ``c`` the target is
    ``unit * ratio[c]`` images with ``unit = min_c(n_c / ratio[c])`` (the class that is scarcest
    for its ratio is kept whole); groups are taken in a seeded random order while they fit under
    the target, so a class lands within one group's size below it. Unlabelled images (-1) are
    dropped; a class of ratio 0 is dropped.

    Args:
        labels: class indices (N,), -1 where unknown; groups: group ids (N,).
        ratio: (C,) non-negative weights, at least one positive.
        seed: the choice of groups is a pure function of the inputs and this seed.

    Returns:
        Boolean mask (N,) of the images kept.
    """
    labels, groups, ratio = np.asarray(labels), np.asarray(groups), np.asarray(ratio, np.float64)
    keep = np.zeros(len(labels), bool)
    labelled = np.flatnonzero(labels >= 0)
    if not len(labelled) or not (ratio > 0).any():
        return keep
    group_ids, group_of = np.unique(groups[labelled], return_inverse=True)
    counts = np.zeros((len(group_ids), len(ratio)))
    np.add.at(counts, (group_of, labels[labelled]), 1.0)
    group_class, group_size = counts.argmax(axis=1), counts.sum(axis=1)
    per_class = np.bincount(group_class, weights=group_size, minlength=len(ratio))
    wanted = ratio > 0
    unit = float(np.min(per_class[wanted] / ratio[wanted]))
    target = unit * ratio
    taken = np.zeros(len(ratio))
    chosen = np.zeros(len(group_ids), bool)
    for g in np.random.default_rng(seed).permutation(len(group_ids)):
        c = group_class[g]
        if ratio[c] > 0 and taken[c] + group_size[g] <= target[c] + 1e-9:
            chosen[g], taken[c] = True, taken[c] + group_size[g]
    keep[labelled[chosen[group_of]]] = True
    keep[labelled] &= ratio[labels[labelled]] > 0  # a class left out goes, also from a kept group
    return keep
