"""The .npz (MedMNIST) and JSON-label (Chaoyang) readers, through the image cache."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from unisal.config import DataConfig
from unisal.data.catalogue import DataError
from unisal.data.prepare import prepare_data
from unisal.data.readers import load_catalogue


def write_npz(path: Path, n: int = 12, size: int = 28) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(1)
    arrays = {
        "train_images": rng.integers(0, 255, size=(n, size, size, 3), dtype=np.uint8),
        "train_labels": (np.arange(n) % 3).reshape(-1, 1),
        "test_images": rng.integers(0, 255, size=(4, size, size), dtype=np.uint8),  # grayscale is fine
        "test_labels": np.array([[0], [1], [2], [1]]),
    }
    np.savez(path, **arrays)
    return arrays


def test_npz_catalogue_addresses_every_image_and_decodes_through_the_cache(tmp_path: Path):
    arrays = write_npz(tmp_path / "mydata.npz")
    catalogue = load_catalogue(tmp_path / "mydata.npz")  # detected as npz
    assert len(catalogue) == 16 and catalogue.class_names == ["0", "1", "2"]
    assert catalogue.labels.tolist() == [k % 3 for k in range(12)] + [0, 1, 2, 1]
    data = prepare_data(
        DataConfig(path=str(tmp_path / "mydata.npz"), image_size=28, cache_dir=str(tmp_path / "c")), 0
    )
    np.testing.assert_array_equal(data.store.get(np.array([3]))[0], arrays["train_images"][3])
    grey = data.store.get(np.array([13]))[0]
    assert grey.shape == (28, 28, 3) and np.array_equal(grey[..., 0], arrays["test_images"][1])


def test_npz_without_the_medmnist_arrays_is_a_clear_error(tmp_path: Path):
    np.savez(tmp_path / "odd.npz", x=np.zeros(3))
    with pytest.raises(DataError, match="must hold <split>_images and <split>_labels"):
        load_catalogue(tmp_path / "odd.npz")
    (tmp_path / "broken.npz").write_bytes(b"not a zip")
    with pytest.raises(DataError, match="not a readable .npz file"):
        load_catalogue(tmp_path / "broken.npz")


def chaoyang_folder(root: Path) -> Path:
    for split, n in (("train", 6), ("test", 4)):
        (root / split).mkdir(parents=True)
        entries = []
        for i in range(n):
            name = f"{split}/img_{i}.jpg"
            Image.fromarray(np.full((16, 16, 3), 40 * (i % 4), np.uint8)).save(root / name)
            entries.append({"name": name, "label": i % 4})
        (root / f"{split}.json").write_text(json.dumps(entries))
    return root


def test_chaoyang_json_labels_are_read_with_their_class_names(tmp_path: Path):
    root = chaoyang_folder(tmp_path / "chaoyang")
    catalogue = load_catalogue(root)  # a folder of JSON label files
    assert len(catalogue) == 10
    assert catalogue.class_names == ["normal", "serrated", "adenocarcinoma", "adenoma"]
    assert catalogue.relative(0) == "test/img_0.jpg" and catalogue.labels[3] == 3
    single = load_catalogue(root / "train.json")
    assert len(single) == 6
    # unisal's completion record and hidden files beside the label files are not label files
    (root / "complete.json").write_text(json.dumps({"name": "chaoyang"}))
    (root / ".unisal-complete.json").write_text(json.dumps({"name": "chaoyang"}))
    assert len(load_catalogue(root)) == 10


def test_json_labels_with_names_and_errors(tmp_path: Path):
    root = chaoyang_folder(tmp_path / "other")
    (root / "train.json").write_text(
        json.dumps([{"path": "train/img_0.jpg", "label": "TUM"}, {"path": "train/img_1.jpg", "label": "STR"}])
    )
    (root / "test.json").unlink()
    catalogue = load_catalogue(root, "json")
    assert catalogue.class_names == ["STR", "TUM"] and catalogue.labels.tolist() == [1, 0]
    (root / "train.json").write_text(json.dumps([{"name": "train/missing.jpg", "label": 0}]))
    with pytest.raises(DataError, match="do not exist, e.g. .*missing.jpg"):
        load_catalogue(root, "json")
    (root / "train.json").write_text("{not json")
    with pytest.raises(DataError, match="is not a JSON list"):
        load_catalogue(root, "json")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('[{"name": "a.png", "label": null}]', "1 label(s) in the JSON files at {f} are not a class name or number, e.g. null for {d}/a.png"),
        ("[" * 50_000 + "]" * 50_000, "{f} is nested too deeply to be a JSON list of labels"),
    ],
)  # fmt: skip
def test_json_labels_that_are_not_classes_are_named(tmp_path: Path, text: str, message: str) -> None:
    """A ``null`` label is not a class named "None"; a nesting bomb is not a RecursionError."""
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(tmp_path / "a.png")
    (tmp_path / "labels.json").write_text(text)
    with pytest.raises(DataError) as excinfo:
        load_catalogue(tmp_path / "labels.json", "json")
    assert str(excinfo.value) == message.format(f=tmp_path / "labels.json", d=tmp_path)
