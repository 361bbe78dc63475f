"""From a data path to what a run needs: catalogue, decoded images, and the grouped split."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from unisal.config import DataConfig
from unisal.data.cache import THIS_FILE, ImageStore, build_cache, image_cache_key, join_identical
from unisal.data.catalogue import Catalogue, DataError
from unisal.data.images import BadImageError
from unisal.data.readers import load_catalogue
from unisal.data.splits import TEST, TRAIN, VAL, grouped_split, subsample_classes
from unisal.data.stream import StreamedImages, stream_fingerprint
from unisal.events import message

# the decoded-image cache is skipped (``data.pixel_cache: auto``) where a learner reads the pixels
# once (to extract features) and the cache would take more than this: a million tiles at 224 px
# would be 150 GB on disk, read once
STREAM_ABOVE_BYTES = 8 * 2**30
UNREADABLE = "unreadable"  # the split of items found unreadable while their pixels were streamed


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

    def leave_out_unreadable(self, unreadable: Mapping[int, str], *, skip: bool) -> None:
        """Items found unreadable after the split, while their pixels were streamed (``unreadable``:
        rows of the decoded images, with the reason): a DataError naming them, or with ``skip``
        (``--skip-bad-images``) left out of every split and listed in :attr:`bad`. The split is
        not drawn again: their groups' places stay as they were."""
        rows = np.fromiter(unreadable, np.int64, len(unreadable))
        hit = np.flatnonzero(np.isin(self.store.rows, rows) & (self.split != UNREADABLE))
        if not len(hit):
            return
        ids = self.catalogue.ids
        errors = [
            BadImageError(ids[i], unreadable[int(self.store.rows[i])].replace(THIS_FILE, ids[i])) for i in hit
        ]
        if not skip:
            raise unreadable_error(errors, "found while their pixels were streamed; ")
        self.split = self.split.astype(np.result_type(self.split.dtype, np.dtype(f"<U{len(UNREADABLE)}")))
        self.split[hit] = UNREADABLE
        self.bad = self.bad + errors
        note = f"{len(errors)} unreadable image(s) left out of every split, e.g. {errors[0].path}"
        self.notes.append(note)
        message(note)


def unreadable_error(bad: list[BadImageError], when: str = "") -> DataError:
    """The error that lists the items that cannot be read (the first ten) and what to do."""
    listing = "\n  ".join(f"{e.path}: {e.reason}" for e in bad[:10])
    more = f"\n  ... and {len(bad) - 10} more" if len(bad) > 10 else ""
    return DataError(
        f"{len(bad)} image(s) cannot be read ({when}first: {bad[0].path}):\n  {listing}{more}\n"
        "fix or remove them, or pass --skip-bad-images to leave them out"
    )


def streams_pixels(cfg: DataConfig, n_items: int, *, pixels_needed: bool) -> bool:
    """Whether the items are decoded as they are read rather than into the decoded-image cache
    (``data.pixel_cache``; ``auto``: where the learner reads pixels only once, ``pixels_needed``
    False, and the cache would take more than ``STREAM_ABOVE_BYTES``; the device decoder always
    streams). A learner that reads pixels every epoch refuses ``stream`` in its check."""
    if cfg.pixel_cache == "keep":
        return False
    if cfg.pixel_cache == "stream" or cfg.decoder != "pil":
        return True
    return not pixels_needed and n_items * cfg.image_size**2 * 3 > STREAM_ABOVE_BYTES


def decode_catalogue(
    catalogue: Catalogue, cfg: DataConfig, *, pixels_needed: bool = True
) -> tuple[ImageStore, list[BadImageError], list[str]]:
    """Every item of ``catalogue`` decoded at ``cfg.image_size`` into the decoded-image cache (the
    one place where a run, a project round or a prediction builds it), or, where the pixels are
    streamed (:func:`streams_pixels`), a store that decodes them as they are read. Also the items
    that could not be read (their rows left zero; none known yet where streamed) and every item's
    content hash (N,; empty where none)."""
    key, hashes = image_cache_key(catalogue.items, cfg.image_size, cfg.cache_dir)
    rows = np.arange(len(catalogue))
    if streams_pixels(cfg, len(catalogue), pixels_needed=pixels_needed):
        images = StreamedImages(catalogue.items, cfg.image_size, decoder=cfg.decoder)
        return ImageStore(images, rows, stream_fingerprint(key, cfg.decoder)), [], hashes  # type: ignore[arg-type]
    array, bad = build_cache(catalogue.items, cfg.image_size, cfg.cache_dir, key=key)
    # by row, in words that name no path (a cache serves any copy of the same files)
    position = {e.path: i for i, e in enumerate(bad)}
    unreadable = {
        i: bad[position[item]].reason.replace(item, THIS_FILE)
        for i, item in enumerate(catalogue.ids)
        if item in position
    }
    return ImageStore(array, rows, fingerprint=key, unreadable=unreadable), bad, hashes


def prepared_catalogue(
    catalogue: Catalogue, cfg: DataConfig, split: np.ndarray, *, pixels_needed: bool = True
) -> PreparedData:
    """``catalogue`` decoded, with a split given by the caller (a project's pool and hold-out,
    images to predict); DataError naming the first item that cannot be read."""
    store, bad, _ = decode_catalogue(catalogue, cfg, pixels_needed=pixels_needed)
    if bad:
        raise DataError(f"{len(bad)} image(s) cannot be read, e.g. {bad[0].path}: {bad[0].reason}")
    return PreparedData(catalogue, store, split, [])


def prepare_data(cfg: DataConfig, seed: int, *, pixels_needed: bool = True) -> PreparedData:
    """Read the catalogue, decode it into the cache (or stream it: :func:`streams_pixels`, where
    the learner reads pixels once, ``pixels_needed`` False), drop or refuse bad files, split by
    group. Streamed items that cannot be read come out later (``leave_out_unreadable``)."""
    catalogue = load_catalogue(cfg.path, cfg.format, cfg.groups, options=cfg.reader_options)
    decoded, bad, hashes = decode_catalogue(catalogue, cfg, pixels_needed=pixels_needed)
    rows = np.arange(len(catalogue))
    if bad:
        if not cfg.skip_bad_images:
            raise unreadable_error(bad)
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
    store = ImageStore(decoded.array, rows, decoded.fingerprint, decoded.unreadable)
    return PreparedData(catalogue, store, split, bad, notes)


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
