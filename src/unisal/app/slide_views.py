"""The app's pictures of a tile's slide: the region around the tile (the tile outlined), the slide's
thumbnail with the tile's place, and the map of the slide as the project's latest model sees it
(``unisal.app.slidemap``, computed once per slide and round)."""

from __future__ import annotations

import io
import threading
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from unisal.app.slidemap import ModelView, draw_map, slide_maps, slide_of
from unisal.app.store import ProjectStore
from unisal.data.slides import slide_overview, tile_context


def png(pixels: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def context_png(item_id: str) -> bytes:
    """The tile with one tile's width of its surroundings on every side, at its own level."""
    return png(tile_context(item_id))


def overview_png(item_id: str) -> bytes:
    return png(slide_overview(item_id))


class SlideMaps:
    """The maps of a project's slides by its latest trained round, drawn once per (slide, round)."""

    def __init__(self, folder: Path, store: ProjectStore):
        self.folder, self.store = folder, store
        self._view: tuple[int, ModelView] | None = None
        self._pictures: dict[tuple[str, int], bytes] = {}
        self._lock = threading.Lock()

    def latest_round(self) -> int | None:
        done = [r["id"] for r in self.store.rounds() if r["status"] == "done" and r["checkpoint"]]
        return int(done[-1]) if done else None

    def picture(self, item_id: str) -> bytes | None:
        """The PNG map of the tile's slide, or None before a round has trained a model."""
        import matplotlib.pyplot as plt

        from unisal.app.map_sources import project_view

        round_id = self.latest_round()
        if round_id is None:
            return None
        slide = slide_of(item_id)
        with self._lock:  # one map at a time: each predicts every tile of its slide
            if (slide, round_id) not in self._pictures:
                if self._view is None or self._view[0] != round_id:
                    self._view = (round_id, project_view(self.folder))
                (m,) = slide_maps(self._view[1], [slide])
                figure: Any = draw_map(m)
                buffer = io.BytesIO()
                figure.savefig(buffer, format="png")
                plt.close(figure)
                self._pictures[(slide, round_id)] = buffer.getvalue()
            return self._pictures[(slide, round_id)]


__all__ = ["SlideMaps", "context_png", "overview_png", "png"]
