"""Label fidelity of a conditional generator: do its samples show the class they were drawn for?

A classifier trained on the real training split (early-stopped on the real validation split, never
the test split) labels a generator's samples; the *label agreement* of generator g is

    A(g) = (1 / n) Σ_j [ argmax_c f(x_j) = y_j ],   x_j = g(z_j, y_j),

the share of its samples that the classifier f assigns to the class y_j they were generated for
(the GAN-test / classification-accuracy-score style check of Shmelkov et al. 2018 and Ravuri &
Vinyals 2019). The labels y are *balanced*: a shuffled vector with every class equally often
(:func:`ensemble.features.sample_labels` with ``per_class=True``). With balanced labels a
generator that ignores its labels scores exactly 1/K in expectation, whatever classes its images
look like, so chance is the same for every member and for every dataset; with labels that follow
the (skewed) class frequencies, a generator that ignores its labels and draws the majority class
would score that class's share (0.74 on PneumoniaMNIST) and look faithful. Balanced labels are
also what the exported dataset asks each member for. A faithful generator scores near the
classifier's own accuracy on real images (``val_accuracy``, reported beside it).

:func:`label_agreement_table` is the entry point of the score stage, the quickstart and the
studies: one row per generator. The classifier and every generator's predictions are cached by
content (the data, the settings, the checkpoint hash and the seeds) in the feature cache, so a
second call only loads. Seeds come from :mod:`ensemble.seeds` (stage ``label-fidelity``).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from ensemble.data import validate_images
from ensemble.downstream.models import create_classifier
from ensemble.downstream.training import (
    TrainedClassifier,
    memory_format,
    predict_proba,
    train_classifier,
)
from ensemble.features.cache import FeatureCache, hash_arrays
from ensemble.features.collect import sample_labels
from ensemble.seeds import label_classifier_seed, label_sample_seed
from zoo.device import resolve_device
from zoo.io import atomic_write

__all__ = ["LabelClassifier", "fit_label_classifier", "label_agreement", "label_agreement_table",
           "LABEL_EPOCHS", "LABEL_COLUMNS"]

log = logging.getLogger(__name__)

#: Epochs of the judge in the score stage and the quickstart (early stopping on the validation
#: split; about 25 s on one CPU thread for PneumoniaMNIST's 4,708 training images).
LABEL_EPOCHS = 3
#: Columns of :func:`label_agreement_table`.
LABEL_COLUMNS = ("name", "label_agreement")
_FORMAT = "gan-ensemble-label-classifier/1"


@dataclass
class LabelClassifier:
    """A classifier of real images and its accuracy on the real validation split."""

    classifier: TrainedClassifier
    val_accuracy: float


def fit_label_classifier(train_images: np.ndarray, train_labels: np.ndarray,
                         val_images: np.ndarray, val_labels: np.ndarray, *,
                         model: str = "small-cnn", epochs: int = 20, seed: int = 0,
                         device: str = "auto") -> LabelClassifier:
    """Train the judge of label agreement on real training images (never on test)."""
    clf = train_classifier(train_images, train_labels, val_images, val_labels, model=model,
                           epochs=epochs, patience=4, seed=seed, device=device, progress=False)
    acc = float((predict_proba(clf, val_images).argmax(1) == np.asarray(val_labels)).mean())
    return LabelClassifier(clf, acc)


def label_agreement(judge: LabelClassifier | TrainedClassifier, images: np.ndarray,
                    labels: np.ndarray) -> float:
    """Share of ``images`` that ``judge`` assigns to their conditioning ``labels``."""
    clf = judge.classifier if isinstance(judge, LabelClassifier) else judge
    labels = np.asarray(labels).reshape(-1)
    if len(labels) != len(images):
        raise ValueError(f"{len(labels)} labels for {len(images)} images; pass one label per image")
    if len(labels) == 0:
        raise ValueError("no images to judge; pass at least one")
    return float((predict_proba(clf, images).argmax(1) == labels).mean())


def _cached_classifier(cache: FeatureCache, key: str, train, val, *, model: str, epochs: int,
                       seed: int, device: str) -> LabelClassifier:
    """The judge trained with these settings: its weights from the cache, else trained and stored."""
    from safetensors.torch import load_file, save_file

    path = cache.models_dir / f"label-classifier-{key[:24]}.safetensors"
    if path.is_file():
        try:
            from safetensors import safe_open

            with safe_open(str(path), framework="pt") as f:
                info = f.metadata() or {}
            k = int(info["num_classes"])
            in_ch = 1 if train.images.ndim == 3 else train.images.shape[-1]
            net = create_classifier(model, in_channels=in_ch, num_classes=k)
            net.load_state_dict(load_file(str(path), device="cpu"))
            dev = resolve_device(device)
            net = net.to(dev, memory_format=memory_format(dev)).eval()  # as it was trained
            clf = TrainedClassifier(net, k, pd.DataFrame(), int(info["best_epoch"]),
                                    float(info["best_val_loss"]), int(info["epochs_run"]), 0.0,
                                    model, str(dev))
            log.info("label classifier: reusing trained weights %s", path)
            return LabelClassifier(clf, float(info["val_accuracy"]))
        except Exception as exc:  # a damaged or foreign file: train again
            log.warning("cached label classifier %s unreadable (%s); training again", path, exc)
            path.unlink(missing_ok=True)
    judge = fit_label_classifier(train.images, train.labels, val.images, val.labels, model=model,
                                 epochs=epochs, seed=seed, device=device)
    c = judge.classifier
    state = {k_: v.detach().cpu().contiguous().clone() for k_, v in c.module.state_dict().items()}
    meta = {"format": _FORMAT, "key": key, "model": model, "num_classes": str(c.num_classes),
            "best_epoch": str(c.best_epoch), "best_val_loss": repr(c.best_val_loss),
            "epochs_run": str(c.epochs_run), "val_accuracy": repr(judge.val_accuracy)}
    atomic_write(path, lambda p: save_file(state, str(p), metadata=meta))
    log.info("label classifier: %d epochs (best %d), validation accuracy %.3f, %.1f s; saved to %s",
             c.epochs_run, c.best_epoch, judge.val_accuracy, c.seconds, path)
    return judge


def _check_split(ds: Any, what: str) -> None:
    if ds is None:
        raise ValueError(f"label agreement needs the real {what} split (the classifier is "
                         f"{'trained' if what == 'training' else 'early-stopped'} on it) and none "
                         "was given; pass the dataset's split, or skip label agreement "
                         "(--label-epochs 0 / label_epochs=0)")
    for attr in ("images", "labels"):
        if not hasattr(ds, attr):
            raise ValueError(f"the {what} split must be an ensemble.data.Dataset (images and labels), "
                             f"got {type(ds).__name__}")


def label_agreement_table(catalog: Any, names: Sequence[str] | None, train: Any, val: Any, *,
                          n_samples: int | None = None, seed: int = 0, device: str = "auto",
                          epochs: int = LABEL_EPOCHS, model: str = "small-cnn",
                          cache_dir: str | os.PathLike | None = None) -> pd.DataFrame:
    """Label agreement of each generator in ``names`` (None: the whole catalog), one row each.

    ``train`` / ``val``: the real training and validation splits (:class:`ensemble.data.Dataset`);
    the judge (``model``, up to ``epochs`` epochs, early-stopped on ``val``; never the test split)
    is trained on ``train`` with the seed :func:`ensemble.seeds.label_classifier_seed` of the root
    ``seed``. Each generator draws ``n_samples`` images (default: as many as ``train`` has) for a
    balanced, shuffled label vector, with :func:`ensemble.seeds.label_sample_seed` (see the module
    docstring for why balanced). A missing validation split is an error: a judge early-stopped on
    its own training images would overrate itself and the generators alike.

    Returns a DataFrame with columns ``name`` and ``label_agreement`` (in [0, 1]), in the order of
    ``names``; ``attrs`` holds the judge's ``val_accuracy``, ``epochs_run``, ``best_epoch``,
    ``epochs``, ``model``, ``n_samples``, ``seed`` and ``labels`` (``"balanced"``). The judge's
    weights and every generator's predictions are cached in the feature cache (``cache_dir``,
    else ``$GAN_ENSEMBLE_CACHE``, else the user cache dir), keyed by content.
    """
    _check_split(train, "training")
    _check_split(val, "validation")
    if isinstance(epochs, bool) or not isinstance(epochs, (int, np.integer)) or epochs < 1:
        raise ValueError(f"epochs must be a positive integer, got {epochs!r}")
    train_x = validate_images(train.images, "training images")
    val_x = validate_images(val.images, "validation images")
    if val_x.shape[1:] != train_x.shape[1:]:
        raise ValueError(f"training images are {train_x.shape[1:]} but validation images are "
                         f"{val_x.shape[1:]}; load both splits at the same size")
    if n_samples is None:
        n_samples = len(train_x)
    if isinstance(n_samples, bool) or not isinstance(n_samples, (int, np.integer)) or n_samples < 1:
        raise ValueError(f"n_samples must be a positive integer (or None for as many as training "
                         f"images), got {n_samples!r}")
    n_samples = int(n_samples)
    num_classes = int(max(int(np.max(train.labels)), int(np.max(val.labels))) + 1)
    names = list(catalog.names()) if names is None else [str(n) for n in names]
    if not names:
        raise ValueError("names is empty; pass None for every generator of the zoo, or some names")
    rows = [catalog.get(n) for n in names]  # an unknown name raises, listing the known ones
    for row in rows:
        shape = tuple(int(v) for v in row["image_shape"])
        if shape != tuple(train_x.shape[1:]):
            raise ValueError(f"generator {row['name']!r} makes images of shape {shape} but the real "
                             f"training images are {tuple(train_x.shape[1:])}; judge generators "
                             "against real data of their own size")
        if int(row["num_classes"]) != num_classes:
            raise ValueError(f"generator {row['name']!r} has {row['num_classes']} classes but the real "
                             f"data has {num_classes}; use the dataset the zoo was trained on")

    cache = FeatureCache(cache_dir)
    clf_seed = label_classifier_seed(seed)
    clf_key = cache.key(kind="label-classifier", model=model, epochs=int(epochs), patience=4,
                        seed=clf_seed, data=hash_arrays(train_x, np.asarray(train.labels), val_x,
                                                        np.asarray(val.labels)))
    judge: LabelClassifier | None = None
    judge_info: dict | None = None
    agreement = []
    for row in rows:
        name = str(row["name"])
        s_seed = label_sample_seed(seed, name)
        labels = sample_labels(n_samples, num_classes, s_seed, per_class=True)
        key = cache.key(kind="label-predictions", classifier=clf_key, name=name,
                        sha256=str(row["sha256"]), n_samples=n_samples, sample_seed=s_seed,
                        labels=hash_arrays(labels))
        pred = cache.get(key)
        if pred is None or pred.shape != (n_samples,):
            if judge is None:
                judge = _cached_classifier(cache, clf_key, train, val, model=model, epochs=int(epochs),
                                           seed=clf_seed, device=device)
            gen = catalog.load(name, device=device)
            images = np.asarray(gen.sample(n_samples, labels=labels, seed=s_seed))
            del gen
            pred = predict_proba(judge.classifier, images).argmax(1).astype(np.int64)
            c = judge.classifier
            judge_info = {"val_accuracy": judge.val_accuracy, "epochs_run": int(c.epochs_run),
                          "best_epoch": int(c.best_epoch)}
            cache.put(key, pred, {"kind": "label-predictions", "name": name, "n": n_samples,
                                  "classifier": clf_key, **judge_info})
        elif judge_info is None:  # the judge's figures, as stored with its predictions
            meta = cache.meta(key) or {}
            judge_info = {k: meta.get(k) for k in ("val_accuracy", "epochs_run", "best_epoch")}
        agreement.append(float((pred == labels).mean()))
        log.info("label agreement of %s: %.4f", name, agreement[-1])
    df = pd.DataFrame({"name": names, "label_agreement": np.asarray(agreement, dtype=np.float64)})
    df.attrs.update({**(judge_info or {}), "epochs": int(epochs), "model": model,
                     "n_samples": n_samples, "seed": int(seed), "labels": "balanced",
                     "n_train": len(train_x), "n_val": len(val_x)})
    return df
