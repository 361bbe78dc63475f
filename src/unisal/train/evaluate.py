"""Inference over the image store and classification metrics."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from sklearn.metrics import confusion_matrix, precision_recall_fscore_support
from tqdm import tqdm

from unisal.data.cache import ImageStore
from unisal.data.views import normalise, to_float
from unisal.models.network import TwoHeadNet


@dataclass
class Predictions:
    """Outputs of K networks on N images.

    Attributes:
        logits: (K, N, C) float32.
        embeddings: (K, N, P) float32, L2-normalised projections.
    """

    logits: np.ndarray
    embeddings: np.ndarray

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


@torch.no_grad()
def predict(
    nets: list[TwoHeadNet],
    store: ImageStore,
    idx: np.ndarray,
    device: torch.device,
    batch_size: int = 128,
    progress: bool = True,
    desc: str = "scoring",
) -> Predictions:
    """Run each network on the un-augmented images ``idx`` (N,)."""
    for net in nets:
        net.eval()
    idx = np.asarray(idx)
    logits: list[list[np.ndarray]] = [[] for _ in nets]
    embeddings: list[list[np.ndarray]] = [[] for _ in nets]
    use_amp = device.type == "cuda"
    for start in tqdm(range(0, len(idx), batch_size), desc=desc, disable=not progress, leave=False):
        x = to_float(torch.from_numpy(store.get(idx[start : start + batch_size])).to(device))
        for k, net in enumerate(nets):
            xk = normalise(x, net.mean, net.std)
            with torch.autocast("cuda", dtype=torch.float16, enabled=use_amp):
                out = net(xk)
            logits[k].append(out.logits.float().cpu().numpy())
            embeddings[k].append(out.embedding.float().cpu().numpy())
    n_classes, n_proj = nets[0].num_classes, nets[0].proj_dim
    return Predictions(
        logits=np.stack([np.concatenate(x) if x else np.zeros((0, n_classes), np.float32) for x in logits]),
        embeddings=np.stack(
            [np.concatenate(x) if x else np.zeros((0, n_proj), np.float32) for x in embeddings]
        ),
    )


def classification_metrics(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int) -> dict[str, float]:
    """Accuracy and macro precision/recall/F1 over all ``n_classes`` (absent classes count as 0)."""
    labels = list(range(n_classes))
    precision, recall, f1, _ = precision_recall_fscore_support(
        y_true, y_pred, labels=labels, average="macro", zero_division=0
    )
    return {
        "accuracy": float(np.mean(np.asarray(y_true) == np.asarray(y_pred))),
        "macro_f1": float(f1),
        "macro_precision": float(precision),
        "macro_recall": float(recall),
    }


def confusion(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int) -> np.ndarray:
    """(C, C) counts; rows are true classes, columns predictions."""
    return confusion_matrix(y_true, y_pred, labels=list(range(n_classes)))


def evaluate(
    nets: list[TwoHeadNet],
    store: ImageStore,
    idx: np.ndarray,
    y_true: np.ndarray,
    device: torch.device,
    batch_size: int = 128,
    progress: bool = True,
) -> tuple[dict[str, float], np.ndarray]:
    """Metrics and (C, C) confusion matrix of the networks' averaged logits on images ``idx`` (N,)."""
    preds = predict(nets, store, idx, device, batch_size, progress, desc="testing")
    y_pred = preds.mean_logits().argmax(1)
    n_classes = nets[0].num_classes
    return classification_metrics(y_true, y_pred, n_classes), confusion(y_true, y_pred, n_classes)
