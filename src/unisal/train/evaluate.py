"""Inference over a learner's inputs, and classification metrics."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.metrics import confusion_matrix, precision_recall_fscore_support

from unisal.events import track
from unisal.models.network import UniSALNet
from unisal.train.inputs import NetworkInputs


@dataclass
class Predictions:
    """Outputs of K networks on N images; those not asked for are None.

    Attributes:
        logits: (K, N, C) float32.
        embeddings: (K, N, P) float32, L2-normalised projections.
        features: (K, N, F) float32 backbone features.
        hidden: (K, N, H) float32 inputs of each network's classifier.
    """

    logits: np.ndarray
    embeddings: np.ndarray | None = None
    features: np.ndarray | None = None
    hidden: np.ndarray | None = None

    def output(self, name: str) -> np.ndarray:
        """The output ``name`` (one of ``OUTPUTS``); RuntimeError when it was not asked for."""
        value = getattr(self, name)
        if value is None:
            raise RuntimeError(f"these predictions hold no {name}: ask for it (outputs=...)")
        return value

    def mean_logits(self) -> np.ndarray:
        """(N, C): the networks' averaged logits, used for every reported prediction."""
        return self.logits.mean(axis=0)

    def probs(self) -> np.ndarray:
        """(K, N, C) softmax probabilities."""
        shifted = self.logits - self.logits.max(axis=2, keepdims=True)
        e = np.exp(shifted)
        return e / e.sum(axis=2, keepdims=True)

    def mean_embedding(self) -> np.ndarray:
        """(N, P) averaged embeddings of the networks."""
        return self.output("embeddings").mean(axis=0)


def mean_over_views(outputs: Sequence[torch.Tensor]) -> torch.Tensor:
    """(B, D) float32: one network's outputs (each (B, D)) on the views of a batch, averaged. A
    prediction averages logits over the views (then takes the softmax), in the rounds, in
    ``predict`` and in an exported model alike."""
    return torch.stack([o.float() for o in outputs]).mean(0)


# What a prediction can hold (``Predictions`` fields); ``predict`` keeps only those asked for.
OUTPUTS = ("logits", "embeddings", "features", "hidden")
DEFAULT_OUTPUTS = ("logits", "embeddings")


def predict_batches(
    nets: list[UniSALNet],
    inputs: NetworkInputs,
    idx: np.ndarray,
    device: torch.device,
    batch_size: int = 128,
    *,
    outputs: Sequence[str] = DEFAULT_OUTPUTS,
    desc: str = "scoring",
) -> Iterator[tuple[int, Predictions]]:
    """Each network's outputs on the evaluation views of images ``idx`` (N,), averaged over the
    views, one batch at a time: (offset into ``idx``, predictions on ``idx[offset : offset + B]``)
    holding only ``outputs`` (the others None; logits are always there). Memory grows with the
    batch, not with ``idx``. With several views the averaged embedding is L2-normalised again."""
    unknown = sorted(set(outputs) - set(OUTPUTS))
    if unknown:
        raise ValueError(f"unknown prediction output(s) {unknown}; expected some of {list(OUTPUTS)}")
    for net in nets:
        net.eval()
    idx = np.asarray(idx)
    use_amp = device.type == "cuda"
    for start in track(range(0, len(idx), batch_size), desc, unit="batch"):
        views = inputs.eval_views(idx[start : start + batch_size], device)
        parts: dict[str, list[np.ndarray]] = {key: [] for key in OUTPUTS}
        with torch.no_grad():
            for net in nets:
                with torch.autocast("cuda", dtype=torch.float16, enabled=use_amp):
                    outs = [net(view) for view in views]
                parts["logits"].append(mean_over_views([o.logits for o in outs]).cpu().numpy())
                if "embeddings" in outputs:
                    embedding = mean_over_views([o.embedding for o in outs])
                    if len(outs) > 1:
                        embedding = F.normalize(embedding, dim=1)
                    parts["embeddings"].append(embedding.cpu().numpy())
                if "features" in outputs:
                    parts["features"].append(mean_over_views([o.features for o in outs]).cpu().numpy())
                if "hidden" in outputs:
                    hidden = [o.hidden if o.hidden is not None else o.features for o in outs]
                    parts["hidden"].append(mean_over_views(hidden).cpu().numpy())
        del views, outs  # before the next batch's inputs exist: one batch in memory at a time
        yield (
            start,
            Predictions(
                logits=np.stack(parts["logits"]),
                embeddings=np.stack(parts["embeddings"]) if parts["embeddings"] else None,
                features=np.stack(parts["features"]) if parts["features"] else None,
                hidden=np.stack(parts["hidden"]) if parts["hidden"] else None,
            ),
        )


def predict(
    nets: list[UniSALNet],
    inputs: NetworkInputs,
    idx: np.ndarray,
    device: torch.device,
    batch_size: int = 128,
    desc: str = "scoring",
    with_features: bool = False,
    *,
    outputs: Sequence[str] | None = None,
) -> Predictions:
    """:func:`predict_batches` of images ``idx`` (N,) gathered into one ``Predictions`` (K, N, ·):
    ``outputs``, by default logits and embeddings, and features and hidden ``with_features``.
    Each output is written into its array as the batches come (no second copy)."""
    wanted = (
        tuple(outputs)
        if outputs is not None
        else DEFAULT_OUTPUTS + (("features", "hidden") if with_features else ())
    )
    idx = np.asarray(idx)
    k = len(nets)
    width = {"logits": int(nets[0].num_classes), "embeddings": int(nets[0].proj_dim)}
    arrays: dict[str, np.ndarray] = {}
    for start, batch in predict_batches(nets, inputs, idx, device, batch_size, outputs=wanted, desc=desc):
        for key in ("logits", *wanted):
            part = getattr(batch, key)
            if key not in arrays:
                arrays[key] = np.empty((k, len(idx), part.shape[2]), part.dtype)
            arrays[key][:, start : start + part.shape[1]] = part
    for key in ("logits", *wanted):  # no batch at all (N = 0)
        arrays.setdefault(key, np.zeros((k, 0, width.get(key, 0)), np.float32))
    return Predictions(
        logits=arrays["logits"],
        embeddings=arrays.get("embeddings"),
        features=arrays.get("features"),
        hidden=arrays.get("hidden"),
    )


def has_dropout(nets: list[UniSALNet]) -> bool:
    """Whether any network holds a dropout layer with p > 0 (MC dropout needs one)."""
    return any(isinstance(m, torch.nn.Dropout) and m.p > 0 for net in nets for m in net.modules())


@torch.no_grad()
def predict_mc_batches(
    nets: list[UniSALNet],
    inputs: NetworkInputs,
    idx: np.ndarray,
    device: torch.device,
    *,
    n_samples: int,
    seed: int,
    batch_size: int = 128,
) -> Iterator[tuple[int, np.ndarray]]:
    """Softmax outputs with dropout left on (MC dropout), every other layer in eval mode, one batch
    at a time: (offset into ``idx``, (K * n_samples, B, C) float32 probabilities), ``n_samples``
    stochastic passes per network, each averaged over the evaluation views. Deterministic for a
    ``seed`` and the same whatever the caller keeps of each batch."""
    if not has_dropout(nets):
        raise ValueError("MC dropout needs a dropout layer with p > 0 (set model.drop_rate > 0)")
    idx = np.asarray(idx)
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.manual_seed(seed)
        for net in nets:
            net.eval()
            for m in net.modules():
                if isinstance(m, torch.nn.Dropout):
                    m.train()
        try:
            for start in track(range(0, len(idx), batch_size), "MC dropout", unit="batch"):
                views = inputs.eval_views(idx[start : start + batch_size], device)
                out = np.zeros((len(nets) * n_samples, len(views[0]), int(nets[0].num_classes)), np.float32)
                with torch.no_grad():
                    for k, net in enumerate(nets):
                        for s in range(n_samples):
                            probs = torch.stack([net(v).logits.float().softmax(1) for v in views]).mean(0)
                            out[k * n_samples + s] = probs.cpu().numpy()
                yield start, out
        finally:
            for net in nets:
                net.eval()


def predict_mc_dropout(
    nets: list[UniSALNet],
    inputs: NetworkInputs,
    idx: np.ndarray,
    device: torch.device,
    *,
    n_samples: int,
    seed: int,
    batch_size: int = 128,
) -> np.ndarray:
    """:func:`predict_mc_batches` gathered: (K * n_samples, N, C) float32 probabilities."""
    idx = np.asarray(idx)
    out = np.zeros((len(nets) * n_samples, len(idx), int(nets[0].num_classes)), np.float32)
    for start, probs in predict_mc_batches(
        nets, inputs, idx, device, n_samples=n_samples, seed=seed, batch_size=batch_size
    ):
        out[:, start : start + probs.shape[1]] = probs
    return out


def classification_metrics(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int) -> dict[str, float]:
    """Accuracy and macro precision/recall/F1 over all ``n_classes`` (absent classes count as 0),
    and balanced accuracy: the mean recall over the classes ``y_true`` holds (the figure to read
    with imbalanced classes, beside macro-F1)."""
    labels = list(range(n_classes))
    precision, recall, f1, _ = precision_recall_fscore_support(
        y_true, y_pred, labels=labels, average="macro", zero_division=0
    )
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    held = np.unique(y_true)
    return {
        "accuracy": float(np.mean(y_true == y_pred)),
        "macro_f1": float(f1),
        "macro_precision": float(precision),
        "macro_recall": float(recall),
        "balanced_accuracy": float(np.mean([np.mean(y_pred[y_true == c] == c) for c in held]))
        if len(held)
        else 0.0,
    }


def confusion(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int) -> np.ndarray:
    """(C, C) counts; rows are true classes, columns predictions."""
    return confusion_matrix(y_true, y_pred, labels=list(range(n_classes)))


def evaluate(
    nets: list[UniSALNet],
    inputs: NetworkInputs,
    idx: np.ndarray,
    y_true: np.ndarray,
    device: torch.device,
    batch_size: int = 128,
) -> tuple[dict[str, float], np.ndarray]:
    """Metrics and (C, C) confusion matrix of the networks' averaged logits on images ``idx`` (N,)."""
    preds = predict(nets, inputs, idx, device, batch_size, desc="testing")
    y_pred = preds.mean_logits().argmax(1)
    n_classes = int(nets[0].num_classes)
    return classification_metrics(y_true, y_pred, n_classes), confusion(y_true, y_pred, n_classes)
