"""Inference over a learner's inputs, and classification metrics."""

from __future__ import annotations

from collections.abc import Sequence
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
    """Outputs of K networks on N images.

    Attributes:
        logits: (K, N, C) float32.
        embeddings: (K, N, P) float32, L2-normalised projections.
        features: (K, N, F) float32 backbone features, when asked for (None otherwise).
        hidden: (K, N, H) float32 inputs of each network's classifier, asked for with the features.
    """

    logits: np.ndarray
    embeddings: np.ndarray
    features: np.ndarray | None = None
    hidden: np.ndarray | None = None

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
        return self.embeddings.mean(axis=0)


def mean_over_views(outputs: Sequence[torch.Tensor]) -> torch.Tensor:
    """(B, D) float32: one network's outputs (each (B, D)) on the views of a batch, averaged. A
    prediction averages logits over the views (then takes the softmax), in the rounds, in
    ``predict`` and in an exported model alike."""
    return torch.stack([o.float() for o in outputs]).mean(0)


@torch.no_grad()
def predict(
    nets: list[UniSALNet],
    inputs: NetworkInputs,
    idx: np.ndarray,
    device: torch.device,
    batch_size: int = 128,
    desc: str = "scoring",
    with_features: bool = False,
) -> Predictions:
    """Run each network on the evaluation views of images ``idx`` (N,), averaged over the views.

    With several views the averaged embedding is L2-normalised again.
    """
    for net in nets:
        net.eval()
    idx = np.asarray(idx)
    keys = ("logits", "emb", "feat", "hidden")
    parts: dict[str, list[list[np.ndarray]]] = {key: [[] for _ in nets] for key in keys}
    use_amp = device.type == "cuda"
    for start in track(range(0, len(idx), batch_size), desc, unit="batch"):
        views = inputs.eval_views(idx[start : start + batch_size], device)
        for k, net in enumerate(nets):
            with torch.autocast("cuda", dtype=torch.float16, enabled=use_amp):
                outs = [net(view) for view in views]
            logits = mean_over_views([o.logits for o in outs])
            embedding = mean_over_views([o.embedding for o in outs])
            if len(outs) > 1:
                embedding = F.normalize(embedding, dim=1)
            parts["logits"][k].append(logits.cpu().numpy())
            parts["emb"][k].append(embedding.cpu().numpy())
            if with_features:
                parts["feat"][k].append(mean_over_views([o.features for o in outs]).cpu().numpy())
                hidden = [o.hidden if o.hidden is not None else o.features for o in outs]
                parts["hidden"][k].append(mean_over_views(hidden).cpu().numpy())

    def stacked(key: str, width: int) -> np.ndarray:
        return np.stack([np.concatenate(x) if x else np.zeros((0, width), np.float32) for x in parts[key]])

    n_classes, n_proj = int(nets[0].num_classes), int(nets[0].proj_dim)
    return Predictions(
        logits=stacked("logits", n_classes),
        embeddings=stacked("emb", n_proj),
        features=stacked("feat", 0) if with_features else None,
        hidden=stacked("hidden", 0) if with_features else None,
    )


def has_dropout(nets: list[UniSALNet]) -> bool:
    """Whether any network holds a dropout layer with p > 0 (MC dropout needs one)."""
    return any(isinstance(m, torch.nn.Dropout) and m.p > 0 for net in nets for m in net.modules())


@torch.no_grad()
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
    """Softmax outputs with dropout left on (MC dropout), every other layer in eval mode.

    Returns:
        (K * n_samples, N, C) float32 probabilities: ``n_samples`` stochastic passes per network,
        each pass averaged over the evaluation views. Deterministic for a ``seed``.
    """
    if not has_dropout(nets):
        raise ValueError("MC dropout needs a dropout layer with p > 0 (set model.drop_rate > 0)")
    idx = np.asarray(idx)
    out = np.zeros((len(nets) * n_samples, len(idx), int(nets[0].num_classes)), np.float32)
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
                for k, net in enumerate(nets):
                    for s in range(n_samples):
                        probs = torch.stack([net(v).logits.float().softmax(1) for v in views]).mean(0)
                        out[k * n_samples + s, start : start + len(probs)] = probs.cpu().numpy()
        finally:
            for net in nets:
                net.eval()
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
