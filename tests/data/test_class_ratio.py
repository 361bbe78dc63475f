"""data.class_ratio: an imbalanced subsample by groups of a synthetic folder (issue 15, item 4)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from unisal.config import DataConfig
from unisal.data.catalogue import DataError
from unisal.data.prepare import prepare_data


def config(root: Path, tmp_path: Path, ratio: dict) -> DataConfig:
    return DataConfig(path=str(root), image_size=16, cache_dir=str(tmp_path / "cache"), class_ratio=ratio)


def test_the_ratio_is_met_and_the_cache_is_that_of_the_whole_set(
    make_image_folder: Callable[..., Path], tmp_path: Path
) -> None:
    root = make_image_folder(classes={"benign": 40, "tumour": 40}, size=16)
    data = prepare_data(config(root, tmp_path, {"benign": 4, "tumour": 1}), seed=0)
    counts = np.bincount(data.catalogue.labels, minlength=2).tolist()
    assert counts == [40, 10]
    assert any("subsampled by groups to data.class_ratio: benign 40, tumour 10" in n for n in data.notes)
    whole = prepare_data(config(root, tmp_path, {}), seed=0)
    assert (
        data.store.fingerprint == whole.store.fingerprint
        and data.store.array.shape == whole.store.array.shape
    )
    # the rows follow the subsample: each kept image reads its own pixels
    path_row = dict(zip(whole.catalogue.ids, whole.store.rows, strict=True))
    assert [path_row[p] for p in data.catalogue.ids] == data.store.rows.tolist()
    other = prepare_data(config(root, tmp_path, {"benign": 4, "tumour": 1}), seed=1)
    assert other.catalogue.ids != data.catalogue.ids  # another seed, another subsample


@pytest.mark.parametrize(
    ("ratio", "message"),
    [
        ({"benign": 1, "tumor": 1}, "data.class_ratio names tumor, not a class of the data"),
        ({"benign": "many"}, "must map class names to numbers"),
        ({"benign": 0}, "at least one of them positive"),
        ({"benign": -1, "tumour": 2}, "non-negative"),
    ],
)
def test_a_bad_ratio_is_one_clear_error(
    make_image_folder: Callable[..., Path], tmp_path: Path, ratio: dict, message: str
) -> None:
    root = make_image_folder(classes={"benign": 4, "tumour": 4}, size=16)
    with pytest.raises(DataError, match=message):
        prepare_data(config(root, tmp_path, ratio), seed=0)


def test_a_wanted_class_without_images_and_odd_keys_are_clear_errors(
    make_image_folder: Callable[..., Path], tmp_path: Path
) -> None:
    from unisal.data.splits import subsample_classes

    root = make_image_folder(classes={"benign": 4, "tumour": 4}, size=16)
    with pytest.raises(DataError, match="names 1, not a class of the data"):
        prepare_data(config(root, tmp_path, {1: 2, "benign": 1}), seed=0)
    # a class of ratio 0 goes, also from a group that another class's images keep
    labels, groups = np.array([0, 0, 1, 1]), np.array([0, 0, 0, 1])
    keep = subsample_classes(labels, groups, np.array([1.0, 0.0]), seed=0)
    assert keep.tolist() == [True, True, False, False]
