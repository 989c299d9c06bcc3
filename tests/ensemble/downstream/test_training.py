"""The training loop: learning on real data, early stopping, best weights, bad inputs."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ensemble.downstream.metrics import evaluate_classifier
from ensemble.downstream.training import to_input, train_classifier


def test_train_on_real_pneumonia(pneumonia_small, pneumonia_val, pneumonia_test):
    val = pneumonia_val.subset(200, seed=1)
    clf = train_classifier(pneumonia_small.images, pneumonia_small.labels, val.images, val.labels,
                           model="small-cnn", epochs=2, seed=0, device="cpu", progress=False)
    h = clf.history
    assert list(h.columns[:4]) == ["epoch", "train_loss", "val_loss", "val_accuracy"]
    assert len(h) == clf.epochs_run == 2
    assert clf.best_epoch == int(h.loc[h["val_loss"].idxmin(), "epoch"])
    test = pneumonia_test.subset(300, seed=0)
    m = evaluate_classifier(clf, test.images, test.labels)
    assert m["roc_auc"] > 0.7  # learned something real from 512 images (chance is 0.5)
    # Same seed, same first epoch.
    again = train_classifier(pneumonia_small.images, pneumonia_small.labels, val.images, val.labels,
                             model="small-cnn", epochs=1, seed=0, device="cpu", progress=False)
    assert again.history["val_loss"].iloc[0] == pytest.approx(h["val_loss"].iloc[0], rel=1e-5)


def test_best_weights_restored_and_early_stopping(pneumonia_small):
    # Validation labels flipped: the better the network learns, the worse its validation loss, so
    # the best epoch comes early and training must stop and roll back to it.
    x, y = pneumonia_small.images[:128], pneumonia_small.labels[:128]
    clf = train_classifier(x, y, x[:64], 1 - y[:64], epochs=8, patience=2, lr_patience=1, lr=3e-3,
                           batch_size=32, seed=1, device="cpu", progress=False)
    h = clf.history
    assert clf.epochs_run < 8 and clf.epochs_run == clf.best_epoch + 2
    assert h["val_loss"].iloc[-1] > clf.best_val_loss
    proba = clf.predict_proba(x[:64])
    loss = float(-np.mean(np.log(proba[np.arange(64), 1 - y[:64]] + 1e-12)))
    assert loss == pytest.approx(clf.best_val_loss, rel=1e-4)
    assert loss < h["val_loss"].iloc[-1]


def test_train_bad_inputs(pneumonia_small):
    x, y = pneumonia_small.images[:20], pneumonia_small.labels[:20]
    with pytest.raises(ValueError, match="validation images"):
        train_classifier(x, y, np.zeros((4, 32, 32), np.uint8), np.zeros(4), epochs=1, device="cpu")
    with pytest.raises(ValueError, match="needs groups"):
        train_classifier(x, y, x, y, sampler="member", epochs=1, device="cpu")
    with pytest.raises(ValueError, match="unknown downstream classifier .nope.; known: .*small-cnn"):
        train_classifier(x, y, x, y, model="nope", epochs=1, device="cpu")



def test_to_input_scales_to_unit_range_and_puts_channels_first():
    x = torch.tensor([[[0, 255]], [[127, 128]]], dtype=torch.uint8)  # (2, 1, 2)
    out = to_input(x)
    assert out.shape == (2, 1, 1, 2) and out.min() == -1.0 and out.max() == 1.0
    rgb = to_input(torch.zeros(3, 4, 5, 3, dtype=torch.uint8))
    assert rgb.shape == (3, 3, 4, 5)
