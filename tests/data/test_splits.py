"""Grouped, stratified, seeded train/val/test splits."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from unisal.data.catalogue import Catalogue, attach_groups
from unisal.data.readers import load_catalogue
from unisal.data.splits import SPLIT_NAMES, TEST, TRAIN, VAL, grouped_split

TARGETS = {TRAIN: 0.7, VAL: 0.1, TEST: 0.2}


def _assert_groups_intact(split: np.ndarray, groups: np.ndarray) -> None:
    """Every group lies in exactly one split."""
    for name in np.unique(split):
        inside = set(np.unique(groups[split == name]).tolist())
        outside = set(np.unique(groups[split != name]).tolist())
        assert not inside & outside, f"groups {sorted(inside & outside)[:5]} straddle '{name}'"


def _shares(split: np.ndarray) -> dict[str, float]:
    return {name: float(np.mean(split == name)) for name in SPLIT_NAMES}


@pytest.fixture(scope="module")
def lung_catalogue(lung_dir: Path) -> Catalogue:
    """LC25000 lung with its near-duplicate groups (folder listing only, nothing decoded)."""
    return attach_groups(load_catalogue(lung_dir), lung_dir / "groups.csv")


@pytest.fixture(scope="module")
def lung_split(lung_catalogue: Catalogue) -> np.ndarray:
    return grouped_split(lung_catalogue.labels, lung_catalogue.groups, 0.1, 0.2, seed=0)


def test_lung_split_keeps_groups_intact(lung_catalogue: Catalogue, lung_split: np.ndarray) -> None:
    assert lung_split.shape == (15000,)
    assert set(np.unique(lung_split).tolist()) == {TRAIN, VAL, TEST}
    _assert_groups_intact(lung_split, lung_catalogue.groups)


def test_lung_split_hits_the_target_fractions(lung_split: np.ndarray) -> None:
    shares = _shares(lung_split)
    for name, target in TARGETS.items():
        assert abs(shares[name] - target) <= 0.015, (name, shares[name])


def test_lung_split_is_stratified(lung_catalogue: Catalogue, lung_split: np.ndarray) -> None:
    for k, class_name in enumerate(lung_catalogue.class_names):
        in_class = lung_split[lung_catalogue.labels == k]
        test_share = float(np.mean(in_class == TEST))
        val_share = float(np.mean(in_class == VAL))
        assert abs(test_share - 0.2) <= 0.02, (class_name, test_share)
        assert abs(val_share - 0.1) <= 0.02, (class_name, val_share)


def test_lung_split_depends_only_on_the_seed(lung_catalogue: Catalogue, lung_split: np.ndarray) -> None:
    labels, groups = lung_catalogue.labels, lung_catalogue.groups
    again = grouped_split(labels, groups, 0.1, 0.2, seed=0)
    np.testing.assert_array_equal(again, lung_split)
    other = grouped_split(labels, groups, 0.1, 0.2, seed=1)
    assert (other != lung_split).any()
    _assert_groups_intact(other, groups)


def _random_groups(seed: int, n_groups: int = 300, n_classes: int = 4) -> tuple[np.ndarray, ...]:
    """Groups of 1..30 images, one class per group, shuffled into a random image order."""
    rng = np.random.default_rng(seed)
    sizes = rng.integers(1, 31, n_groups)
    group_class = rng.integers(0, n_classes, n_groups)
    groups = np.repeat(np.arange(n_groups) * 7 + 100, sizes)  # ids need not be 0..G-1
    labels = np.repeat(group_class, sizes)
    order = rng.permutation(len(groups))
    return labels[order], groups[order]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_random_group_sizes(seed: int) -> None:
    labels, groups = _random_groups(seed)
    split = grouped_split(labels, groups, 0.1, 0.2, seed=seed)
    _assert_groups_intact(split, groups)
    shares = _shares(split)
    for name, target in TARGETS.items():
        assert abs(shares[name] - target) <= 0.015, (name, shares[name])
    for k in range(4):
        assert abs(np.mean(split[labels == k] == TEST) - 0.2) <= 0.02


def test_groups_mixing_classes_stay_intact() -> None:
    rng = np.random.default_rng(3)
    groups = rng.integers(0, 200, 2000)
    labels = rng.integers(0, 3, 2000)  # every group mixes classes
    split = grouped_split(labels, groups, 0.1, 0.2, seed=0)
    _assert_groups_intact(split, groups)
    assert abs(np.mean(split == TEST) - 0.2) <= 0.015


def test_no_validation_split_when_its_fraction_is_zero() -> None:
    labels, groups = _random_groups(4)
    split = grouped_split(labels, groups, 0.0, 0.25, seed=0)
    assert VAL not in set(split.tolist())
    assert abs(np.mean(split == TEST) - 0.25) <= 0.015
    assert abs(np.mean(split == TRAIN) - 0.75) <= 0.015


def test_tiny_kather_like_data_fills_train_and_test() -> None:
    labels = np.repeat(np.arange(8), 3)  # 8 classes x 3 images, as in kather2016
    groups = np.arange(24)
    split = grouped_split(labels, groups, 0.1, 0.2, seed=0)
    assert split.shape == (24,)
    assert np.count_nonzero(split == TEST) > 0
    for k in range(8):  # every class keeps training images
        assert np.count_nonzero(split[labels == k] == TRAIN) >= 1
    # Per class, 3 x 0.2 = 0.6 test images and 0.3 val: the test deficit wins each third image.
    np.testing.assert_array_equal([np.count_nonzero(split[labels == k] == TEST) for k in range(8)], [1] * 8)


def test_unlabelled_images_are_split_too() -> None:
    labels = np.array([0] * 50 + [1] * 50 + [-1] * 100)
    groups = np.arange(200)
    split = grouped_split(labels, groups, 0.1, 0.2, seed=0)
    unlabelled = split[labels == -1]
    assert np.count_nonzero(unlabelled == TEST) == 20
    assert np.count_nonzero(unlabelled == VAL) == 10
    assert np.count_nonzero(unlabelled == TRAIN) == 70


def test_subsample_keeps_whole_groups_in_the_ratio() -> None:
    """Three classes of 100 images in groups of 5: ratio 10 : 3 : 1 keeps class 0 whole (100),
    30 of class 1 and 10 of class 2, whole groups only, the same for a seed."""
    from unisal.data.splits import subsample_classes

    labels = np.repeat([0, 1, 2], 100)
    groups = np.arange(300) // 5
    keep = subsample_classes(labels, groups, np.array([10.0, 3.0, 1.0]), seed=1)
    assert np.bincount(labels[keep], minlength=3).tolist() == [100, 30, 10]
    for g in np.unique(groups):
        assert len(set(keep[groups == g].tolist())) == 1  # a group is kept or dropped whole
    assert np.array_equal(keep, subsample_classes(labels, groups, np.array([10.0, 3.0, 1.0]), seed=1))
    assert not np.array_equal(keep, subsample_classes(labels, groups, np.array([10.0, 3.0, 1.0]), seed=2))
    dropped = subsample_classes(labels, groups, np.array([1.0, 1.0, 0.0]), seed=0)
    assert np.bincount(labels[dropped], minlength=3).tolist() == [100, 100, 0]
    unlabelled = subsample_classes(np.full(4, -1), np.arange(4), np.array([1.0]), seed=0)
    assert not unlabelled.any()
