"""Test metrics of a downstream classifier on real data (pure functions of labels and probabilities).

Accuracy, precision, recall, specificity, F1, g-mean = sqrt(recall * specificity) and ROC AUC
(binary: positive class 1; multi-class: macro one-vs-rest), as METHOD.md §5 reports them; checked
against scikit-learn in the tests.

Predictions are the arg-max class, or, for a binary task, ``proba[:, 1] >= threshold`` when a
decision threshold is given: :func:`choose_threshold` picks the one that maximises g-mean on the
real *validation* split (a classifier trained on synthetic data is often calibrated toward one
class, which moves g-mean more than the ranking AUC measures). AUC does not depend on it.
"""

from __future__ import annotations

import math

import numpy as np
from torch import nn

from ensemble.downstream.training import TrainedClassifier, predict_proba

__all__ = ["METRICS", "classification_metrics", "evaluate_classifier", "choose_threshold"]

METRICS = ("accuracy", "precision", "recall", "specificity", "f1", "g_mean", "roc_auc")


def choose_threshold(y_true: np.ndarray, proba: np.ndarray) -> float:
    """The decision threshold on ``proba[:, 1]`` that maximises g-mean on these (validation) labels.

    Binary tasks only. Candidates are the midpoints between consecutive distinct probabilities
    (and 0.5); ties go to the candidate nearest 0.5. With one class absent, 0.5.
    """
    y = np.asarray(y_true).reshape(-1).astype(np.int64)
    p = np.asarray(proba, dtype=np.float64)
    if p.ndim != 2 or p.shape[1] != 2 or len(p) != len(y):
        raise ValueError(f"choose_threshold is for binary tasks: proba (n, 2) for {len(y)} labels, got {p.shape}")
    pos, neg = int((y == 1).sum()), int((y == 0).sum())
    if pos == 0 or neg == 0:
        return 0.5
    s = p[:, 1]
    u = np.unique(s)
    cand = np.unique(np.concatenate([[0.5], (u[1:] + u[:-1]) / 2]))
    order = np.argsort(s, kind="stable")
    ss, ys = s[order], y[order]
    below = np.searchsorted(ss, cand, side="left")  # items predicted 0 (s < t)
    cum_pos = np.concatenate([[0], np.cumsum(ys)])
    fn = cum_pos[below]
    tn = below - fn
    g = np.sqrt((pos - fn) / pos * tn / neg)
    best = np.flatnonzero(g >= g.max() - 1e-12)
    return float(cand[best[np.argmin(np.abs(cand[best] - 0.5))]])


def classification_metrics(y_true: np.ndarray, proba: np.ndarray,
                           num_classes: int | None = None,
                           threshold: float | None = None) -> dict[str, float]:
    """Test metrics from labels and class probabilities ``(n, K)`` (pure).

    Predictions: the arg-max class, or for a binary task with ``threshold``,
    ``proba[:, 1] >= threshold``.

    Binary: precision, recall, F1 of class 1, specificity = TN / (TN + FP), ROC AUC of
    ``proba[:, 1]``. Multi-class: macro averages over one-vs-rest classes and macro OvR ROC AUC.
    g-mean = sqrt(recall * specificity). Undefined ratios count as 0; an AUC that is undefined
    (a class absent from ``y_true``) is NaN.
    """
    from sklearn.metrics import roc_auc_score

    y = np.asarray(y_true).reshape(-1).astype(np.int64)
    p = np.asarray(proba, dtype=np.float64)
    if p.ndim != 2 or len(p) != len(y):
        raise ValueError(f"proba must be (n, K) for {len(y)} labels, got {p.shape}")
    k = int(num_classes or p.shape[1])
    if threshold is None:
        pred = p.argmax(1)
    elif k == 2:
        pred = (p[:, 1] >= float(threshold)).astype(np.int64)
    else:
        raise ValueError(f"a decision threshold is for binary tasks; this one has {k} classes")
    cm = np.zeros((k, k), dtype=np.int64)
    np.add.at(cm, (y, pred), 1)
    tp = np.diag(cm).astype(np.float64)
    fp = cm.sum(0) - tp
    fn = cm.sum(1) - tp
    tn = cm.sum() - tp - fp - fn

    def ratio(a, b):
        return np.divide(a, b, out=np.zeros_like(a, dtype=np.float64), where=b > 0)

    prec, rec, spec = ratio(tp, tp + fp), ratio(tp, tp + fn), ratio(tn, tn + fp)
    f1 = ratio(2 * prec * rec, prec + rec)
    if k == 2:
        precision, recall, specificity, f1_ = prec[1], rec[1], spec[1], f1[1]
    else:
        precision, recall, specificity, f1_ = prec.mean(), rec.mean(), spec.mean(), f1.mean()
    present = np.unique(y)
    auc = float("nan")
    if len(present) == k:
        if k == 2:
            auc = float(roc_auc_score(y, p[:, 1]))
        else:
            q = p / np.clip(p.sum(1, keepdims=True), 1e-12, None)
            auc = float(roc_auc_score(y, q, multi_class="ovr", average="macro", labels=list(range(k))))
    return {
        "accuracy": float(tp.sum() / max(len(y), 1)),
        "precision": float(precision),
        "recall": float(recall),
        "specificity": float(specificity),
        "f1": float(f1_),
        "g_mean": float(math.sqrt(recall * specificity)),
        "roc_auc": auc,
    }


def evaluate_classifier(model: nn.Module | TrainedClassifier, images: np.ndarray,
                        labels: np.ndarray, batch_size: int = 512,
                        threshold: float | None = None) -> dict[str, float]:
    """:data:`METRICS` of ``model`` on real images (see :func:`classification_metrics`)."""
    proba = predict_proba(model, images, batch_size=batch_size)
    k = model.num_classes if isinstance(model, TrainedClassifier) else proba.shape[1]
    return classification_metrics(np.asarray(labels).reshape(-1), proba, k, threshold=threshold)

