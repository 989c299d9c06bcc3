"""Test metrics against scikit-learn."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn import metrics as skm

from ensemble.downstream.metrics import METRICS, classification_metrics


def test_binary_metrics_match_sklearn(rng):
    y = rng.integers(0, 2, 300)
    p1 = np.clip(0.35 * y + rng.random(300) * 0.65, 0, 1)
    proba = np.stack([1 - p1, p1], axis=1)
    pred = proba.argmax(1)
    got = classification_metrics(y, proba)
    assert set(got) == set(METRICS)
    assert got["accuracy"] == pytest.approx(skm.accuracy_score(y, pred))
    assert got["precision"] == pytest.approx(skm.precision_score(y, pred))
    assert got["recall"] == pytest.approx(skm.recall_score(y, pred))
    assert got["specificity"] == pytest.approx(skm.recall_score(y, pred, pos_label=0))
    assert got["f1"] == pytest.approx(skm.f1_score(y, pred))
    assert got["roc_auc"] == pytest.approx(skm.roc_auc_score(y, p1))
    assert got["g_mean"] == pytest.approx(np.sqrt(got["recall"] * got["specificity"]))
    # Predicting everything positive: recall 1, specificity 0, g-mean 0.
    allpos = classification_metrics(y, np.tile([0.0, 1.0], (300, 1)))
    assert allpos["recall"] == 1.0 and allpos["specificity"] == 0.0 and allpos["g_mean"] == 0.0


def test_multiclass_metrics_match_sklearn(rng):
    y = rng.integers(0, 4, 400)
    logits = rng.normal(size=(400, 4)) + 1.5 * np.eye(4)[y]
    proba = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    pred = proba.argmax(1)
    got = classification_metrics(y, proba)
    assert got["precision"] == pytest.approx(skm.precision_score(y, pred, average="macro"))
    assert got["recall"] == pytest.approx(skm.recall_score(y, pred, average="macro"))
    assert got["f1"] == pytest.approx(skm.f1_score(y, pred, average="macro"))
    assert got["roc_auc"] == pytest.approx(skm.roc_auc_score(y, proba, multi_class="ovr", average="macro"))
    cm = skm.confusion_matrix(y, pred)
    spec = [(cm.sum() - cm[c].sum() - cm[:, c].sum() + cm[c, c]) / (cm.sum() - cm[c].sum())
            for c in range(4)]
    assert got["specificity"] == pytest.approx(np.mean(spec))
    # A class missing from y_true makes the AUC undefined, not an exception.
    assert np.isnan(classification_metrics(np.zeros(5, int), np.tile([0.5, 0.5], (5, 1)))["roc_auc"])



def test_choose_threshold_maximises_validation_g_mean(rng):
    from ensemble.downstream.metrics import choose_threshold

    y = (rng.random(200) < 0.3).astype(int)
    p1 = np.clip(0.15 + 0.25 * y + rng.normal(0, 0.12, 200), 0.001, 0.999)  # calibrated low
    proba = np.stack([1 - p1, p1], axis=1)
    t = choose_threshold(y, proba)
    g = classification_metrics(y, proba, threshold=t)["g_mean"]
    for c in np.unique(p1):  # brute force over every cut
        assert classification_metrics(y, proba, threshold=c)["g_mean"] <= g + 1e-12
    assert g > classification_metrics(y, proba)["g_mean"]  # beats arg-max here
    pred = (p1 >= t).astype(int)
    got = classification_metrics(y, proba, threshold=t)
    assert got["recall"] == pytest.approx(skm.recall_score(y, pred))
    assert got["roc_auc"] == classification_metrics(y, proba)["roc_auc"]  # AUC ignores the threshold
    assert choose_threshold(np.zeros(5, int), np.tile([0.6, 0.4], (5, 1))) == 0.5
    with pytest.raises(ValueError, match="binary"):
        choose_threshold(y, np.ones((200, 3)) / 3)
    with pytest.raises(ValueError, match="binary"):
        classification_metrics(y % 3, np.ones((200, 3)) / 3, threshold=0.5)
