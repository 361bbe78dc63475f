"""Maps of a slide's tiles: what a project's (or a simulation run's) latest model predicts for
every tile, the query score of its last selection, and which tiles are labelled or queued; drawn
over the slide's thumbnail (``unisal heatmap``, the app's map) and summed per slide into the
share of tissue in each predicted class (``unisal shares``).

A source (:class:`ModelView`) is the model with its prepared data; :func:`slide_maps` predicts
only the tiles of the slides asked for.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from unisal.app.store import ProjectError
from unisal.data.prepare import PreparedData
from unisal.data.slides import TILE_MEMBER, open_slide, parse_tile_id, thumbnail
from unisal.io import read_csv_rows, read_scores
from unisal.learners import Learner

PALETTE = [  # one colour per class (RGB), as QuPath shows them too; tab10's first ten
    (31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189),
    (140, 86, 75), (227, 119, 194), (127, 127, 127), (188, 189, 34), (23, 190, 207),
]  # fmt: skip


def class_colour(k: int) -> tuple[int, int, int]:
    """The colour of class ``k`` (RGB 0-255); past ten classes the palette repeats, darker."""
    r, g, b = PALETTE[k % len(PALETTE)]
    shade = 0.7 ** (k // len(PALETTE))
    return int(r * shade), int(g * shade), int(b * shade)


@dataclass
class ModelView:
    """A trained model over its items, with what the maps show of each item (N items).

    Attributes:
        ids: the items' ids (tiles: ``<slide>::tile/...``).
        learner: the model (prepared on ``data``, weights loaded).
        score: (N,) the last selection's query score, NaN where it scored none.
        labelled: (N,) bool, labelled (by anyone, or from regions).
        queued: (N,) bool, queued now (a project) or queried in a round (a run).
        tissue: (N,) tissue fraction of each tile (1 where unknown).
        title: what the model is ("project P, round 3").
    """

    ids: tuple[str, ...]
    learner: Learner
    data: PreparedData
    class_names: list[str]
    score: np.ndarray
    labelled: np.ndarray
    queued: np.ndarray
    tissue: np.ndarray
    title: str


@dataclass
class SlideMap:
    """One slide's tiles as a model sees them (n tiles).

    Attributes:
        boxes: (n, 3) int64 level-0 x, y and side of each tile.
        predicted: (n,) int64 predicted class; confidence (n,) its mean probability.
    """

    slide: str
    boxes: np.ndarray
    tissue: np.ndarray
    predicted: np.ndarray
    confidence: np.ndarray
    score: np.ndarray
    labelled: np.ndarray
    queued: np.ndarray
    class_names: list[str]
    title: str

    @property
    def name(self) -> str:
        return Path(self.slide).stem


def read_tissue(table: str | Path) -> dict[str, float]:
    """Tile id -> tissue fraction, from a tile table (``unisal.data.tiling``); {} without one."""
    from unisal.data.slides import tile_id

    table = Path(table)
    if not table.is_file():
        return {}
    _, rows = read_csv_rows(table)
    out = {}
    for r in rows:
        slide = os.path.normpath(table.parent / r["slide"].strip())
        numbers = (int(r[c]) for c in ("x", "y", "level", "read_size", "size"))
        out[tile_id(slide, *numbers)] = float(r.get("tissue") or 1.0)
    return out


def slide_of(item_id: str) -> str:
    return item_id.rpartition(TILE_MEMBER)[0]


def slides_in(ids: Sequence[str]) -> dict[str, str]:
    """Slide name (file name without extension) -> slide path, of the tiles among ``ids``."""
    return {Path(s).stem: s for s in dict.fromkeys(slide_of(i) for i in ids if TILE_MEMBER in i)}


def find_slide(ids: Sequence[str], name: str) -> str:
    """The slide path called ``name`` (its file name, with or without extension)."""
    known = slides_in(ids)
    by_file = {Path(p).name: p for p in known.values()}
    if name in known or name in by_file:
        return known.get(name) or by_file[name]
    if not known:
        raise ProjectError("these items are not tiles of slides: no slide to map")
    shown = ", ".join(sorted(known)[:10])
    raise ProjectError(f"no slide called {name!r} here; the slides are {shown}")


def slide_maps(view: ModelView, slides: Sequence[str]) -> list[SlideMap]:
    """The maps of ``slides`` (paths), predicting only their tiles (batch by batch)."""
    owner = np.asarray([slide_of(i) for i in view.ids])
    out = []
    for slide in slides:
        idx = np.flatnonzero(owner == slide)
        probs = view.learner.predict(idx).probs().mean(axis=0)  # (n, C), mean over the networks
        boxes = np.zeros((len(idx), 3), np.int64)
        downsamples = open_slide(slide).level_downsamples
        for k, i in enumerate(idx):
            _, x, y, level, read, _ = parse_tile_id(view.ids[i])
            boxes[k] = (x, y, max(1, round(read * float(downsamples[level]))))
        out.append(
            SlideMap(
                slide,
                boxes,
                view.tissue[idx],
                probs.argmax(axis=1).astype(np.int64),
                probs.max(axis=1),
                view.score[idx],
                view.labelled[idx],
                view.queued[idx],
                view.class_names,
                view.title,
            )  # fmt: skip
        )
    return out


def paint(shape: tuple[int, int], scale: float, boxes: np.ndarray, values: np.ndarray) -> np.ndarray:
    """(h, w, C) float image: each tile's box (level-0 px times ``scale``) filled with its row of
    ``values`` (n, C); NaN elsewhere."""
    out = np.full((*shape, values.shape[1]), np.nan)
    for (x, y, side), value in zip(boxes, values, strict=True):
        x0, y0 = int(x * scale), int(y * scale)
        x1, y1 = max(x0 + 1, int((x + side) * scale)), max(y0 + 1, int((y + side) * scale))
        out[y0:y1, x0:x1] = value
    return out


def draw_map(m: SlideMap, *, longest: int = 1024) -> Any:
    """A matplotlib figure of two panels over the slide's thumbnail: the predicted class of
    every tile (legend: classes with their share of tissue), and the last selection's query
    score with the labelled (white) and queued (black) tiles outlined."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch, Rectangle

    slide = open_slide(m.slide)
    thumb = thumbnail(slide, m.slide, longest)
    scale = thumb.shape[1] / slide.dimensions[0]
    colours = np.asarray([class_colour(k) for k in range(len(m.class_names))], np.float64) / 255
    fig, axes = plt.subplots(1, 2, figsize=(13, 6.5 * thumb.shape[0] / thumb.shape[1] + 1.2), dpi=100)
    classes = paint(thumb.shape[:2], scale, m.boxes, colours[m.predicted])
    axes[0].imshow(thumb)
    overlay = np.concatenate([np.nan_to_num(classes), (~np.isnan(classes[:, :, :1])) * 0.6], axis=2)
    axes[0].imshow(overlay)
    shares = class_shares(m)
    axes[0].legend(
        handles=[
            Patch(color=colours[k], label=f"{name} ({shares[name]:.0%} of tissue)")
            for k, name in enumerate(m.class_names)
        ],
        loc="upper left", bbox_to_anchor=(0, -0.02), ncol=min(3, len(m.class_names)), fontsize=8, frameon=False,
    )  # fmt: skip
    axes[0].set_title(f"{m.name}: predicted class of {len(m.boxes)} tiles", fontsize=10)
    axes[1].imshow(np.asarray(thumb.mean(axis=2), np.uint8), cmap="gray", vmin=0, vmax=255)
    scored = ~np.isnan(m.score)
    values, label = m.score, "query score (higher: more wanted)"
    title = "query score of the last selection"
    if not scored.any() or np.ptp(m.score[scored]) == 0:  # nothing to tell apart: the model's doubt
        why = (
            "no query scores" if not scored.any() else f"every tile's query score is {m.score[scored][0]:.3g}"
        )
        values, scored = 1.0 - m.confidence, np.ones(len(m.boxes), bool)
        label, title = "1 - confidence (mean of the networks)", f"{why}: the model's uncertainty instead"
    heat = paint(thumb.shape[:2], scale, m.boxes[scored], values[scored, None])[:, :, 0]
    shown = axes[1].imshow(np.ma.masked_invalid(heat), cmap="magma", alpha=0.75)
    fig.colorbar(shown, ax=axes[1], fraction=0.035, pad=0.02, label=label)
    for flag, colour in ((m.labelled, "white"), (m.queued, "black")):
        for x, y, side in m.boxes[flag]:
            axes[1].add_patch(
                Rectangle((x * scale, y * scale), side * scale, side * scale, fill=False, lw=1.2, ec=colour)
            )
    axes[1].set_title(
        f"{title}; outlined: {int(m.labelled.sum())} labelled (white), {int(m.queued.sum())} queued (black)",
        fontsize=9,
    )
    for ax in axes:
        ax.set_axis_off()
    fig.suptitle(m.title, fontsize=10)
    fig.tight_layout()
    return fig


def save_map(m: SlideMap, out: str | Path) -> None:
    """:func:`draw_map` written to ``out`` (PNG), atomically."""
    import matplotlib.pyplot as plt

    from unisal.io import atomic_path

    fig = draw_map(m)
    try:
        with atomic_path(out) as tmp:
            fig.savefig(tmp, format="png")
    finally:
        plt.close(fig)


def class_shares(m: SlideMap) -> dict[str, float]:
    """Class -> share of the slide's tissue (tiles weighted by area and tissue fraction)."""
    weight = m.tissue * m.boxes[:, 2].astype(np.float64) ** 2
    total = float(weight.sum()) or 1.0
    return {name: float(weight[m.predicted == k].sum() / total) for k, name in enumerate(m.class_names)}


def shares_rows(maps: Sequence[SlideMap]) -> list[list[object]]:
    """Rows of ``slide, class, tiles, tissue_share, tissue_mm2``: per slide and predicted class."""
    rows: list[list[object]] = []
    for m in maps:
        shares = class_shares(m)
        mpp = _slide_mpp(m.slide)
        for k, name in enumerate(m.class_names):
            mine = m.predicted == k
            area = float((m.tissue[mine] * m.boxes[mine, 2].astype(np.float64) ** 2).sum())
            mm2 = "" if mpp is None else f"{area * mpp * mpp / 1e6:.4f}"
            rows.append([m.name, name, int(mine.sum()), f"{shares[name]:.4f}", mm2])
    return rows


SHARE_COLUMNS = ["slide", "class", "tiles", "tissue_share", "tissue_mm2"]


def _slide_mpp(path: str) -> float | None:
    value = open_slide(path).properties.get("openslide.mpp-x")
    return float(value) if value else None


def scores_by_index(path: Path | None, index_of: dict[int, int], n: int) -> np.ndarray:
    """(n,) scores of a scores file (``unisal.io.read_scores``) placed by ``index_of`` (its
    index -> row), NaN where none; all NaN without the file."""
    out = np.full(n, np.nan)
    if path is None or not path.is_file():
        return out
    index, score = read_scores(path)
    for i, s in zip(index.tolist(), score.astype(np.float64).tolist(), strict=True):
        if i in index_of:
            out[index_of[i]] = s
    return out


__all__ = [
    "SHARE_COLUMNS",
    "ModelView",
    "SlideMap",
    "class_colour",
    "class_shares",
    "draw_map",
    "find_slide",
    "paint",
    "read_tissue",
    "save_map",
    "scores_by_index",
    "shares_rows",
    "slide_maps",
    "slides_in",
]
