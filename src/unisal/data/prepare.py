"""From a data path to what a run needs: catalogue, decoded images, and the grouped split."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from unisal.config import DataConfig
from unisal.data.cache import ImageStore, build_cache, image_cache_key, join_identical
from unisal.data.catalogue import Catalogue, DataError
from unisal.data.images import BadImageError
from unisal.data.readers import load_catalogue
from unisal.data.splits import TEST, TRAIN, VAL, grouped_split, subsample_classes


@dataclass
class PreparedData:
    """A data set ready for training: every image decoded, every image in one split.

    Attributes:
        catalogue: items, labels (-1 = unlabelled), groups and class names, N images.
        store: decoded images by catalogue index.
        split: (N,) ``train`` | ``val`` | ``test``.
        bad: files that could not be decoded and were left out.
        notes: what the user should know about the data and the split (merged duplicates,
            joined groups, classes missing from a split).
    """

    catalogue: Catalogue
    store: ImageStore
    split: np.ndarray
    bad: list[BadImageError]
    notes: list[str] = field(default_factory=list)

    def indices(self, name: str) -> np.ndarray:
        """Absolute indices of the labelled images of split ``name``."""
        return np.flatnonzero((self.split == name) & (self.catalogue.labels >= 0))

    @property
    def idx_train(self) -> np.ndarray:
        """Labelled images of the training split: what a simulation's oracle can label. The
        unlabelled ones among them, at any round, are the pool it queries."""
        return self.indices(TRAIN)

    @property
    def idx_unlabelled_extra(self) -> np.ndarray:
        """Training images without a label: used for semi-supervision, never queried."""
        return np.flatnonzero((self.split == TRAIN) & (self.catalogue.labels < 0))

    @property
    def idx_val(self) -> np.ndarray:
        return self.indices(VAL)

    @property
    def idx_test(self) -> np.ndarray:
        return self.indices(TEST)


def decode_catalogue(
    catalogue: Catalogue, cfg: DataConfig
) -> tuple[ImageStore, list[BadImageError], list[str]]:
    """Every item of ``catalogue`` decoded at ``cfg.image_size`` into the decoded-image cache (the
    one place where a run, a project round or a prediction builds it). Also the items that could
    not be read (their rows left zero) and every item's content hash (N,; empty where none)."""
    key, hashes = image_cache_key(catalogue.items, cfg.image_size, cfg.cache_dir)
    array, bad = build_cache(catalogue.items, cfg.image_size, cfg.cache_dir, key=key)
    return ImageStore(array, np.arange(len(catalogue)), fingerprint=key), bad, hashes


def prepared_catalogue(catalogue: Catalogue, cfg: DataConfig, split: np.ndarray) -> PreparedData:
    """``catalogue`` decoded, with a split given by the caller (a project's pool and hold-out,
    images to predict); DataError naming the first item that cannot be read."""
    store, bad, _ = decode_catalogue(catalogue, cfg)
    if bad:
        raise DataError(f"{len(bad)} image(s) cannot be read, e.g. {bad[0].path}: {bad[0].reason}")
    return PreparedData(catalogue, store, split, [])


def prepare_data(cfg: DataConfig, seed: int) -> PreparedData:
    """Read the catalogue, decode it into the cache, drop or refuse bad files, split by group."""
    catalogue = load_catalogue(cfg.path, cfg.format, cfg.groups, options=cfg.reader_options)
    decoded, bad, hashes = decode_catalogue(catalogue, cfg)
    array, key = decoded.array, decoded.fingerprint
    rows = np.arange(len(catalogue))
    if bad:
        if not cfg.skip_bad_images:
            listing = "\n  ".join(f"{e.path}: {e.reason}" for e in bad[:10])
            more = f"\n  ... and {len(bad) - 10} more" if len(bad) > 10 else ""
            raise DataError(
                f"{len(bad)} image(s) cannot be read:\n  {listing}{more}\n"
                "fix or remove them, or pass --skip-bad-images to leave them out"
            )
        bad_ids = {e.path for e in bad}
        keep = np.asarray([i not in bad_ids for i in catalogue.ids])
        catalogue, rows = catalogue.subset(keep), rows[keep]
        hashes = [h for h, k in zip(hashes, keep, strict=True) if k]
    if (catalogue.labels >= 0).sum() == 0:
        raise DataError("no labelled images: a simulation needs labels to act as the oracle")
    if cfg.class_ratio:
        catalogue, rows, hashes, note = _subsample(catalogue, rows, hashes, cfg.class_ratio, seed)
        notes_before = [note]
    else:
        notes_before = []
    notes = list(catalogue.notes) + notes_before
    groups, n_sets, joined = join_identical(catalogue.groups, hashes)
    if n_sets:
        notes.append(
            f"{n_sets} set(s) of byte-identical files: each set kept in one group"
            + (f" ({joined} joined groups that --groups had kept apart)" if joined else "")
        )
    catalogue.groups = groups
    val_fraction = cfg.val_fraction  # val_size null: a share of all labelled images
    if cfg.val_size is not None:
        n_labelled = int((catalogue.labels >= 0).sum())
        val_fraction = cfg.val_size / n_labelled
        if val_fraction + cfg.test_fraction >= 0.9:
            raise DataError(
                f"--val-size {cfg.val_size} and test_fraction {cfg.test_fraction} leave too little of the "
                f"{n_labelled} labelled images to train on"
            )
    split = grouped_split(catalogue.labels, catalogue.groups, val_fraction, cfg.test_fraction, seed)
    notes += missing_classes(catalogue, split, check_val=val_fraction > 0)
    return PreparedData(catalogue, ImageStore(array, rows, fingerprint=key), split, bad, notes)


def _subsample(
    catalogue: Catalogue, rows: np.ndarray, hashes: list[str], class_ratio: dict[str, float], seed: int
) -> tuple[Catalogue, np.ndarray, list[str], str]:
    """The catalogue subsampled by groups to ``class_ratio`` (``data.class_ratio``), per seed; the
    image cache rows follow, so the decoded-image and feature caches of the whole set serve it."""
    from unisal.seeds import round_seed

    unknown = sorted(str(k) for k in set(class_ratio) - set(catalogue.class_names))
    if unknown:
        raise DataError(
            f"data.class_ratio names {', '.join(unknown)}, not a class of the data ({', '.join(catalogue.class_names)})"
        )
    try:
        ratio = np.array([float(class_ratio.get(name, 0.0)) for name in catalogue.class_names])
    except (TypeError, ValueError):
        raise DataError(f"data.class_ratio must map class names to numbers, not {class_ratio!r}") from None
    if not np.isfinite(ratio).all() or (ratio < 0).any() or not (ratio > 0).any():
        raise DataError("data.class_ratio needs non-negative weights, at least one of them positive")
    held = np.bincount(catalogue.labels[catalogue.labels >= 0], minlength=len(ratio))
    empty = [n for n, r, h in zip(catalogue.class_names, ratio, held, strict=True) if r > 0 and h == 0]
    if empty:
        raise DataError(f"data.class_ratio asks for {', '.join(empty)}, which has no labelled image")
    keep = subsample_classes(catalogue.labels, catalogue.groups, ratio, round_seed(seed, 0, "subsample"))
    if not keep.any():
        raise DataError("data.class_ratio keeps no image: every wanted class needs a group of its own")
    catalogue, rows = catalogue.subset(keep), rows[keep]
    hashes = [h for h, k in zip(hashes, keep, strict=True) if k]
    counts = np.bincount(catalogue.labels[catalogue.labels >= 0], minlength=len(ratio))
    shown = ", ".join(f"{n} {c}" for n, c in zip(catalogue.class_names, counts, strict=True))
    return catalogue, rows, hashes, f"subsampled by groups to data.class_ratio: {shown}"


def missing_classes(catalogue: Catalogue, split: np.ndarray, *, check_val: bool) -> list[str]:
    """Warnings for classes that have labelled images but none in the validation or test split."""
    notes = []
    for name in (VAL, TEST) if check_val else (TEST,):
        present = set(catalogue.labels[(split == name) & (catalogue.labels >= 0)].tolist())
        absent = [
            catalogue.class_names[k]
            for k in sorted(set(catalogue.labels[catalogue.labels >= 0].tolist()) - present)
        ]
        if absent:
            consequence = (
                "its recall and F1 count as 0 in the macro averages"
                if name == TEST
                else "model selection never sees it"
            )
            notes.append(
                f"warning: class(es) {', '.join(absent)} have no image in the {name} split ({consequence}); "
                "add images or groups of them"
            )
    return notes
