"""The active-learning state: which images are labelled, since when, and where the loop stands.

One serialisable object with *absolute* catalogue indices (never pool-relative ones) and the
round at which each image was labelled.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from unisal.errors import RunError

NOT_LABELLED = -1
STAGES = ("train", "select", "done")


@dataclass
class ALState:
    """Which images are labelled, since when, and where the loop stands.

    Attributes:
        labelled_round: (N,) int; round at which each catalogue image was labelled (0 for the
            initial set), ``NOT_LABELLED`` otherwise.
        round: the round the loop is in.
        stage: next step of that round: ``train``, ``select`` or ``done``.
        results: one dict of metrics per finished round.
    """

    labelled_round: np.ndarray
    round: int = 0
    stage: str = "train"
    results: list[dict[str, Any]] = field(default_factory=list)

    def labelled(self, up_to_round: int | None = None) -> np.ndarray:
        """Absolute indices of labelled images (by ``up_to_round`` when given), ascending."""
        done = self.labelled_round != NOT_LABELLED
        if up_to_round is not None:
            done &= self.labelled_round <= up_to_round
        return np.flatnonzero(done)

    def label(self, indices: np.ndarray, round_: int) -> None:
        if np.any(self.labelled_round[indices] != NOT_LABELLED):
            raise RunError("refusing to label an image twice")
        self.labelled_round[indices] = round_

    def state_dict(self) -> dict[str, Any]:
        return {
            "labelled_round": self.labelled_round.tolist(),
            "round": self.round,
            "stage": self.stage,
            "results": self.results,
        }

    @classmethod
    def from_state_dict(cls, state: dict[str, Any]) -> ALState:
        labelled = np.asarray(state["labelled_round"])
        if labelled.ndim != 1 or not np.issubdtype(labelled.dtype, np.integer):
            raise ValueError("labelled_round must be a list of whole numbers")
        out = cls(
            labelled_round=labelled.astype(np.int64),
            round=int(state["round"]),
            stage=str(state["stage"]),
            results=list(state["results"]),
        )
        out.check()
        return out

    def check(self) -> None:
        """Internal consistency: a known stage, rounds in range, results of finished rounds only."""
        if self.stage not in STAGES:
            raise ValueError(f"unknown stage '{self.stage}'")
        if (
            self.round < 0
            or np.any(self.labelled_round < NOT_LABELLED)
            or np.any(self.labelled_round > self.round)
        ):
            raise ValueError("a label belongs to a round outside 0 .. the current round")
        rounds = [r.get("round") for r in self.results if isinstance(r, dict)]
        if (
            len(rounds) != len(self.results)
            or rounds != list(range(len(rounds)))
            or len(rounds) > self.round + 1
        ):
            raise ValueError("the results are not one record per finished round")
