"""A stand-in for a trained learner, and a context builder, for strategy tests."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from unisal.query import QueryContext, Strategy
from unisal.query.base import Selection
from unisal.train.evaluate import Predictions


class TableLearner:
    """Answers ``predict`` from fixed per-image outputs over a catalogue of N images.

    ``predict_mc`` perturbs the logits with seeded noise whose scale grows with ``mc_noise``
    (N,), so a test can say which images are uncertain under dropout.
    """

    def __init__(self, outputs: Predictions, mc_noise: np.ndarray | None = None, batch_size: int = 7):
        self.outputs = outputs
        n = outputs.logits.shape[1]
        self.mc_noise = np.ones(n) if mc_noise is None else np.asarray(mc_noise, np.float64)
        self.batch_size = batch_size  # of predict_batches: small, so that strategies see several
        self.calls: list[str] = []

    def _take(self, idx: np.ndarray, outputs: tuple[str, ...]) -> Predictions:
        """Only the outputs asked for (the others None, as a learner gives them)."""
        out = self.outputs

        def take(name: str) -> np.ndarray | None:
            a = getattr(out, name)
            return None if a is None or name not in outputs else a[:, idx]

        return Predictions(out.logits[:, idx], take("embeddings"), take("features"), take("hidden"))

    def predict(
        self,
        idx: np.ndarray,
        *,
        with_features: bool = False,
        outputs: tuple[str, ...] | None = None,
        desc: str = "",
    ) -> Predictions:
        self.calls.append("predict")
        if outputs is None:
            outputs = ("embeddings", "features", "hidden") if with_features else ("embeddings",)
        return self._take(np.asarray(idx, np.int64), tuple(outputs))

    def predict_batches(
        self, idx: np.ndarray, *, outputs: tuple[str, ...], desc: str = ""
    ) -> Iterator[tuple[int, Predictions]]:
        self.calls.append("predict_batches")
        idx = np.asarray(idx, np.int64)
        for start in range(0, len(idx), self.batch_size):
            yield start, self._take(idx[start : start + self.batch_size], tuple(outputs))

    def predict_mc_batches(
        self, idx: np.ndarray, *, n_samples: int, seed: int
    ) -> Iterator[tuple[int, np.ndarray]]:
        probs = self.predict_mc(idx, n_samples=n_samples, seed=seed)
        self.calls[-1] = "predict_mc_batches"
        for start in range(0, len(idx), self.batch_size):
            yield start, probs[:, start : start + self.batch_size]

    def predict_mc(self, idx: np.ndarray, *, n_samples: int, seed: int) -> np.ndarray:
        self.calls.append("predict_mc")
        idx = np.asarray(idx, np.int64)
        rng = np.random.default_rng(seed)
        logits = self.outputs.logits[:, idx]  # (K, N, C)
        noisy = (
            logits[:, None]
            + rng.normal(size=(logits.shape[0], n_samples, *logits.shape[1:]))
            * (self.mc_noise[idx][None, None, :, None])
        )
        noisy = noisy.reshape(-1, *logits.shape[1:])
        e = np.exp(noisy - noisy.max(axis=2, keepdims=True))
        return (e / e.sum(axis=2, keepdims=True)).astype(np.float32)


def random_outputs(
    n: int, *, k: int = 2, c: int = 4, p: int = 8, f: int = 16, h: int = 12, seed: int = 0
) -> Predictions:
    """Random logits (K, N, C), embeddings, backbone features (K, N, F) and classifier inputs."""
    rng = np.random.default_rng(seed)
    features = np.repeat(rng.normal(size=(1, n, f)), k, axis=0).astype(np.float32)
    return Predictions(
        logits=rng.normal(scale=2.0, size=(k, n, c)).astype(np.float32),
        embeddings=rng.normal(size=(k, n, p)).astype(np.float32),
        features=features,
        hidden=rng.normal(size=(k, n, h)).astype(np.float32),
    )


def context(
    learner: TableLearner | None,
    pool: np.ndarray,
    budget: int,
    seed: int = 0,
    *,
    labelled: np.ndarray | None = None,
    class_names: list[str] | None = None,
) -> QueryContext:
    labelled = np.array([], np.int64) if labelled is None else np.asarray(labelled, np.int64)
    n_classes = 4 if learner is None else learner.outputs.logits.shape[2]
    return QueryContext(
        pool=np.asarray(pool, np.int64),
        labelled=labelled,
        labels=np.zeros(len(labelled), np.int64),
        budget=budget,
        rng=np.random.default_rng(seed),
        class_names=class_names or [f"class{k}" for k in range(n_classes)],
        learner=learner,  # type: ignore[arg-type]
    )


def select(
    strategy: Strategy, outputs: Predictions, budget: int, seed: int = 0, **kwargs: object
) -> Selection:
    """Select from a pool that is the whole table."""
    n = outputs.logits.shape[1]
    return strategy.select(context(TableLearner(outputs), np.arange(n), budget, seed, **kwargs))  # type: ignore[arg-type]
