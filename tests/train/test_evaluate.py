"""Metrics and the Predictions container against answers worked out by hand."""

from __future__ import annotations

import numpy as np
import pytest

from unisal.train.evaluate import Predictions, classification_metrics, confusion

# three classes present, a fourth (3) absent from both truth and predictions
Y_TRUE = np.array([0, 0, 1, 1, 2, 2])
Y_PRED = np.array([0, 1, 1, 1, 0, 2])
# per class (precision, recall, F1): 0 -> (1/2, 1/2, 1/2); 1 -> (2/3, 1, 4/5); 2 -> (1, 1/2, 2/3)
F1 = [1 / 2, 4 / 5, 2 / 3]
PRECISION = [1 / 2, 2 / 3, 1.0]
RECALL = [1 / 2, 1.0, 1 / 2]


def test_classification_metrics_by_hand():
    m = classification_metrics(Y_TRUE, Y_PRED, n_classes=3)
    assert m["accuracy"] == pytest.approx(4 / 6)
    assert m["macro_f1"] == pytest.approx(sum(F1) / 3)
    assert m["macro_precision"] == pytest.approx(sum(PRECISION) / 3)
    assert m["macro_recall"] == pytest.approx(sum(RECALL) / 3)


def test_classification_metrics_count_absent_classes_as_zero():
    m = classification_metrics(Y_TRUE, Y_PRED, n_classes=4)
    assert m["accuracy"] == pytest.approx(4 / 6)  # accuracy does not see the absent class
    assert m["macro_f1"] == pytest.approx(sum(F1) / 4)
    assert m["macro_precision"] == pytest.approx(sum(PRECISION) / 4)
    assert m["macro_recall"] == pytest.approx(sum(RECALL) / 4)


def test_classification_metrics_perfect():
    y = np.array([2, 0, 1, 1])
    m = classification_metrics(y, y, n_classes=3)
    assert m == {
        "accuracy": 1.0,
        "macro_f1": 1.0,
        "macro_precision": 1.0,
        "macro_recall": 1.0,
        "balanced_accuracy": 1.0,
    }


def test_confusion_rows_are_true_classes():
    expected = np.array(
        [
            [1, 1, 0, 0],
            [0, 2, 0, 0],
            [1, 0, 1, 0],
            [0, 0, 0, 0],
        ]
    )
    np.testing.assert_array_equal(confusion(Y_TRUE, Y_PRED, n_classes=4), expected)
    # a true 0 predicted as 2 lands in row 0, column 2 (not the transpose)
    np.testing.assert_array_equal(confusion([0], [2], n_classes=3), [[0, 0, 1], [0, 0, 0], [0, 0, 0]])


def _predictions(k: int = 2, n: int = 5, c: int = 3, p: int = 4) -> Predictions:
    rng = np.random.default_rng(0)
    return Predictions(
        logits=rng.normal(size=(k, n, c)).astype(np.float32),
        embeddings=rng.normal(size=(k, n, p)).astype(np.float32),
    )


def test_predictions_probs_are_a_softmax():
    preds = _predictions()
    probs = preds.probs()
    assert probs.shape == (2, 5, 3)
    np.testing.assert_allclose(probs.sum(axis=2), 1.0, rtol=1e-6)
    e = np.exp(preds.logits.astype(np.float64))
    np.testing.assert_allclose(probs, e / e.sum(axis=2, keepdims=True), rtol=1e-5)
    # large logits stay finite: the max is subtracted first
    big = Predictions(np.array([[[1000.0, 0.0, 1000.0]]], np.float32), np.zeros((1, 1, 2), np.float32))
    np.testing.assert_allclose(big.probs(), [[[0.5, 0.0, 0.5]]], atol=1e-7)


def test_predictions_means_over_networks():
    preds = _predictions()
    assert preds.mean_logits().shape == (5, 3)
    np.testing.assert_allclose(preds.mean_logits(), (preds.logits[0] + preds.logits[1]) / 2, rtol=1e-6)
    assert preds.mean_embedding().shape == (5, 4)
    np.testing.assert_allclose(
        preds.mean_embedding(), (preds.embeddings[0] + preds.embeddings[1]) / 2, rtol=1e-6
    )


def test_balanced_accuracy_is_the_mean_recall_over_the_classes_present() -> None:
    from unisal.train.evaluate import classification_metrics

    y_true = np.array([0, 0, 0, 0, 1, 1])
    y_pred = np.array([0, 0, 0, 0, 0, 1])
    out = classification_metrics(y_true, y_pred, 3)  # class 2 absent: not in the balanced mean
    assert out["balanced_accuracy"] == pytest.approx((1.0 + 0.5) / 2)
    assert out["accuracy"] == pytest.approx(5 / 6)
