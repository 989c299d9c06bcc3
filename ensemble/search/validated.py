"""The ``validated`` selection rule: pick G* from the front by a brief downstream check on real data.

The other rules pick G* from the two proxies alone. This one takes ``k`` candidates spread along the
front (always the max-fidelity and knee points, see :func:`validation_candidates`), trains the
downstream classifier briefly on each candidate's synthetic data (its members' samples, drawn a
member uniformly, then one of its images), early-stops on one half of the *real validation* split
and scores on the other half (a seeded, stratified split: :func:`split_halves`), and picks the
best. It never reads the test split: the real data it sees is what its
:class:`ValidationContext` holds, the training split (class weights, sample sizes) and the
validation split.

A rule is ``fn(front, **params) -> (row, note)``; this one needs more than the front (the catalog,
real data, a device), so it takes a ``context`` parameter (a :class:`ValidationContext`) and says
so when it is missing (:func:`ensemble.search.rules.rule_needs_context` tells a caller which rules
need one). It returns a third element, a record of every candidate's validation score that
:meth:`EnsembleSearch.select <ensemble.search.EnsembleSearch.select>` keeps in ``selected.json``
(``meta["rule_info"]``). :func:`select_validated` is the same choice as a plain function.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from ensemble.search.rules import knee, max_fidelity, register_rule

__all__ = [
    "ValidationContext",
    "validation_candidates",
    "split_halves",
    "validation_cost",
    "select_validated",
    "validated_rule",
    "VALIDATION_METRICS",
]

log = logging.getLogger(__name__)

#: Metrics the rule can pick on (scored on the held-out half of the real validation split).
VALIDATION_METRICS = ("roc_auc", "g_mean", "accuracy", "f1")


@dataclass
class ValidationContext:
    """What the ``validated`` rule needs beside the front.

    ``catalog``: the zoo catalog holding every front member (:class:`zoo.catalog.Catalog`);
    ``train`` and ``val``: the real training and validation splits (a Dataset or
    ``(images, labels)``; at the generators' image size). ``train`` is only used for its labels:
    the images per class of each member's sample (``n_per_class``, default
    ``balanced_n_per_class``) and, with ``class_weight="real"``, the loss weights.
    Training: ``model``, ``steps`` optimizer steps (at most; ``warmup_steps`` before any checkpoint
    or early stop, ``patience`` validation passes without improvement), an epoch of
    ``samples_per_epoch`` draws between validation passes. ``threshold="val"`` picks the decision
    threshold on the early-stopping half (binary tasks), ``metric`` (:data:`VALIDATION_METRICS`)
    is scored on the other half. ``seed`` is the root seed (the split uses
    ``ensemble.seeds.split_seed(seed, "validated")``, the samples ``ensemble.seeds.arms_seed(seed)``);
    ``train_seed`` seeds every candidate's classifier alike, so the candidates are paired.
    """

    catalog: Any
    train: Any
    val: Any
    model: str = "small-cnn"
    steps: int = 150
    warmup_steps: int = 50
    patience: int = 3
    batch_size: int = 64
    lr: float = 1e-3
    samples_per_epoch: int | None = 640
    n_per_class: int | None = None
    class_weight: str | None = "real"
    threshold: str | None = "val"
    metric: str = "roc_auc"
    seed: int = 0
    train_seed: int = 0
    device: str = "auto"
    progress: bool = False

    def settings(self) -> dict:
        """The JSON-able settings (recorded in ``selected.json``)."""
        keys = ("model", "steps", "warmup_steps", "patience", "batch_size", "lr", "samples_per_epoch",
                "n_per_class", "class_weight", "threshold", "metric", "seed", "train_seed")
        return {k: getattr(self, k) for k in keys}


def validation_candidates(front: pd.DataFrame, k: int = 8) -> list[int]:
    """Up to ``k`` front rows spread along the front, always with the max-fidelity and knee points.

    The front is ordered by Intra-d (see :mod:`ensemble.search.rules`). After those two come both
    ends of the front, then, one at a time, the row farthest (in front positions) from every row
    taken, until ``k`` (or the whole front) are taken. Returned in front order.
    """
    k = int(k)
    if k < 2:
        raise ValueError(f"k must be at least 2 (the max-fidelity and knee points), got {k}")
    n = len(front)
    if n == 0:
        raise ValueError("the front is empty; nothing to select")
    picked = list(dict.fromkeys([max_fidelity(front)[0], knee(front)[0], 0, n - 1]))[:k]
    while len(picked) < min(k, n):  # farthest-point: the row farthest (along the front) from those taken
        gap = np.min(np.abs(np.arange(n)[:, None] - np.array(picked)[None, :]), axis=1)
        picked.append(int(np.argmax(gap)))  # ties: the first, toward higher fidelity
    return sorted(picked)


def split_halves(labels: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A seeded, stratified split of ``labels``' indices in two halves: ``(stop, score)``.

    Each class is shuffled with ``numpy.random.default_rng(seed)`` and its first half (rounded
    down) goes to ``stop``; both halves come back sorted.
    """
    y = np.asarray(labels).reshape(-1)
    rng = np.random.default_rng(seed)
    stop, score = [], []
    for c in np.unique(y):
        idx = rng.permutation(np.flatnonzero(y == c))
        h = len(idx) // 2
        stop.append(idx[:h])
        score.append(idx[h:])
    a, b = np.sort(np.concatenate(stop)), np.sort(np.concatenate(score))
    if len(a) == 0 or len(b) == 0:
        raise ValueError(f"the validation split ({len(y)} images) is too small to halve")
    return a, b


def validation_cost(front: pd.DataFrame, context: ValidationContext, k: int = 8) -> dict:
    """What the rule will do: candidates, generators to sample, images sampled, optimizer steps."""
    from ensemble.downstream.sources import as_arrays
    from ensemble.synthesis.sample import balanced_n_per_class

    rows = validation_candidates(front, k)
    gens = sorted({str(m) for i in rows for m in front["members"].iloc[i]})
    _, ty = as_arrays(context.train, "train")
    n_pc = int(context.n_per_class or balanced_n_per_class(ty))
    n_classes = int(np.max(ty)) + 1
    return {"candidates": len(rows), "generators": len(gens), "images_sampled": len(gens) * n_pc * n_classes,
            "steps_per_candidate": int(context.steps), "steps": len(rows) * int(context.steps),
            "training_images": len(rows) * int(context.steps) * int(context.batch_size)}


def select_validated(front: pd.DataFrame, context: ValidationContext, k: int = 8
                     ) -> tuple[int, str, dict]:
    """The ``validated`` choice: ``(row, note, record)``; see the module docstring.

    ``record`` has ``candidates`` (one entry per candidate: ``row``, ``members``, ``size``,
    ``intra_d``, ``inter_d``, ``val_<metric>`` of every :data:`VALIDATION_METRICS`, ``score``,
    ``threshold``, ``steps``, ``best_epoch``, ``seconds``), the ``metric``, the ``settings`` and the
    split sizes. Ties: the first candidate in front order (higher Intra-d).
    """
    from ensemble import seeds
    from ensemble.downstream.metrics import choose_threshold, classification_metrics
    from ensemble.downstream.sources import TrainingSource, as_arrays
    from ensemble.downstream.training import class_weights, predict_proba, train_classifier
    from ensemble.synthesis.sample import balanced_n_per_class, sample_ensemble

    ctx = context
    if not isinstance(ctx, ValidationContext):
        raise ValueError(f"the validated rule needs context=ValidationContext(...), got {type(ctx).__name__}")
    if ctx.metric not in VALIDATION_METRICS:
        raise ValueError(f"metric {ctx.metric!r} is not one of {', '.join(VALIDATION_METRICS)}")
    if ctx.threshold not in (None, "val"):
        raise ValueError(f"threshold must be None or 'val', got {ctx.threshold!r}")
    if ctx.class_weight not in (None, "real"):
        raise ValueError(f"class_weight must be None or 'real', got {ctx.class_weight!r}")
    rows = validation_candidates(front, k)
    cost = validation_cost(front, ctx, k)
    log.info("validated rule: %d candidates x up to %d steps of %s (%d training images in all), "
                "after sampling %d images from %d generators", cost["candidates"], ctx.steps, ctx.model,
                cost["training_images"], cost["images_sampled"], cost["generators"])
    _, ty = as_arrays(ctx.train, "train")
    vx, vy = as_arrays(ctx.val, "val")
    vy = np.asarray(vy).reshape(-1).astype(np.int64)
    n_classes = int(max(int(np.max(ty)), int(np.max(vy)))) + 1
    stop, score = split_halves(vy, seeds.split_seed(ctx.seed, "validated"))
    n_pc = int(ctx.n_per_class or balanced_n_per_class(ty))
    weight = class_weights(ty, n_classes) if ctx.class_weight == "real" else None
    sample_seed = seeds.arms_seed(ctx.seed)
    samples: dict[str, Any] = {}
    out = []
    for i in rows:
        r = front.iloc[i]
        members = [str(m) for m in r["members"]]
        for m in members:
            if m not in samples:
                samples[m] = sample_ensemble([m], ctx.catalog, n_per_class=n_pc, seed=sample_seed,
                                             device=ctx.device)
        src = TrainingSource(np.concatenate([samples[m].images for m in members]),
                             np.concatenate([samples[m].labels for m in members]),
                             groups=np.concatenate([np.full(len(samples[m]), j) for j, m in enumerate(members)]),
                             samples_per_epoch=ctx.samples_per_epoch, sampler="member")
        t0 = time.perf_counter()
        clf = train_classifier(src.images, src.labels, vx[stop], vy[stop], model=ctx.model,
                               num_classes=n_classes, steps=ctx.steps, warmup_steps=ctx.warmup_steps,
                               patience=ctx.patience, batch_size=ctx.batch_size, lr=ctx.lr,
                               seed=ctx.train_seed, device=ctx.device,
                               samples_per_epoch=src.samples_per_epoch, sampler=src.sampler,
                               groups=src.groups, class_weight=weight, progress=ctx.progress)
        thr = None
        if ctx.threshold == "val" and n_classes == 2:
            thr = choose_threshold(vy[stop], predict_proba(clf, vx[stop]))
        m = classification_metrics(vy[score], predict_proba(clf, vx[score]), n_classes, threshold=thr)
        entry = {"row": int(i), "members": members, "size": len(members),
                 "intra_d": float(r["intra_d"]), "inter_d": float(r["inter_d"]),
                 **{f"val_{k_}": float(m[k_]) for k_ in VALIDATION_METRICS},
                 "score": float(m[ctx.metric]), "threshold": thr, "steps": int(clf.steps_run),
                 "best_epoch": int(clf.best_epoch), "seconds": round(time.perf_counter() - t0, 3)}
        log.info("validated: candidate row %d (%d members): val %s %.4f", i, len(members), ctx.metric,
                 entry["score"])
        out.append(entry)
    scores = np.array([e["score"] if np.isfinite(e["score"]) else -np.inf for e in out])
    best = int(np.argmax(scores))  # first of equals: front order
    note = ""
    if not np.isfinite(scores).any():
        note = f"validated: no candidate has a finite validation {ctx.metric}; took the first (max-fidelity end)"
        log.warning(note)
    record = {"metric": ctx.metric, "k": int(k), "candidates": out, "chosen_row": int(out[best]["row"]),
              "settings": ctx.settings(), "n_val_stop": int(len(stop)), "n_val_score": int(len(score)),
              "n_per_class": n_pc}
    return int(out[best]["row"]), note, record


@register_rule("validated")
def validated_rule(front: pd.DataFrame, context: ValidationContext | None = None, k: int = 8
                   ) -> tuple[int, str, dict]:
    """Best of ``k`` front candidates by a brief downstream training on real validation data.

    Needs ``context`` (a :class:`ValidationContext`: the catalog, the real training and validation
    splits, the training settings); see :func:`select_validated`.
    """
    if context is None:
        raise ValueError(
            "the 'validated' rule trains a classifier on each candidate, so it needs "
            "context=ValidationContext(catalog, train, val, ...) (the catalog and the real training "
            "and validation splits); on the command line: gan-ensemble search --rule validated "
            "--zoo ZOO --dataset DATASET [--data-root DIR]"
        )
    return select_validated(front, context, k=k)
