"""Label fidelity of a conditional generator: do its samples show the class they were drawn for?

A classifier trained on the real training split (early-stopped on the real validation split)
labels a generator's samples; the *label agreement* is the share of samples it assigns to the
class they were generated for (the GAN-test / classification-accuracy-score style check of
Shmelkov et al. 2018 and Ravuri & Vinyals 2019). A generator that ignores its labels scores about
the share of the majority class; one that draws every class faithfully scores near the
classifier's own accuracy on real images, which :func:`fit_label_classifier` reports so that the
two can be read side by side.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .downstream import TrainedClassifier, predict_proba, train_classifier

__all__ = ["LabelClassifier", "fit_label_classifier", "label_agreement"]


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
