"""The training loop: learning on real data, early stopping, best weights, bad inputs."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ensemble.downstream.metrics import evaluate_classifier
from ensemble.downstream.models import create_classifier
from ensemble.downstream.training import memory_format, predict_proba, to_input, train_classifier


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


def test_trains_channels_last_on_a_cpu_and_predicts_as_the_default_layout(pneumonia_small):
    # channels-last is a speed choice only (benchmarks/classifier_train.py): the same weights in
    # torch's default layout give the same probabilities
    assert memory_format("cpu") is torch.channels_last
    assert memory_format(torch.device("cuda", 0)) is torch.contiguous_format
    x, y = pneumonia_small.images[:128], pneumonia_small.labels[:128]
    clf = train_classifier(x, y, x[:64], y[:64], epochs=1, batch_size=32, seed=0, device="cpu",
                           progress=False)
    convs = [m.weight for m in clf.module.modules() if isinstance(m, torch.nn.Conv2d)]
    assert all(w.is_contiguous(memory_format=torch.channels_last) for w in convs)
    assert any(not w.is_contiguous() for w in convs)
    plain = create_classifier("small-cnn", in_channels=1, num_classes=2)
    plain.load_state_dict({k: v.contiguous() for k, v in clf.module.state_dict().items()})
    assert all(m.weight.is_contiguous() for m in plain.modules() if isinstance(m, torch.nn.Conv2d))
    np.testing.assert_allclose(predict_proba(plain, x), clf.predict_proba(x), atol=1e-5)


def test_to_input_scales_to_unit_range_and_puts_channels_first():
    x = torch.tensor([[[0, 255]], [[127, 128]]], dtype=torch.uint8)  # (2, 1, 2)
    out = to_input(x)
    assert out.shape == (2, 1, 1, 2) and out.min() == -1.0 and out.max() == 1.0
    rgb = to_input(torch.zeros(3, 4, 5, 3, dtype=torch.uint8))
    assert rgb.shape == (3, 3, 4, 5)


def test_class_weights_and_steps_per_epoch():
    from ensemble.downstream.training import class_weights, steps_per_epoch

    w = class_weights(np.array([0] * 30 + [1] * 90), 2)
    assert w == pytest.approx([2.0, 2.0 / 3.0])  # n / (K n_c): the minority class weighs more
    assert (w * np.array([30, 90])).sum() == pytest.approx(120)
    assert class_weights(np.array([0, 0, 2, 2]), 3) == pytest.approx([4 / 6, 1.0, 4 / 6])  # absent: 1
    assert class_weights(np.tile([0, 1], 5), 2) == pytest.approx([1.0, 1.0])
    assert steps_per_epoch(500, 64) == 8 and steps_per_epoch(129, 64) == 2 and steps_per_epoch(130, 64) == 3


def test_step_budget_floor_and_warmup(pneumonia_small):
    x, y = pneumonia_small.images[:128], pneumonia_small.labels[:128]
    kw = dict(batch_size=32, seed=1, device="cpu", progress=False)  # 4 steps per epoch
    # A budget in steps runs the epochs it takes; the floor raises an epoch budget.
    clf = train_classifier(x, y, x[:64], y[:64], steps=10, patience=50, **kw)
    assert clf.epochs_run == 3 and clf.steps_run == 12 and clf.history["steps"].tolist() == [4, 8, 12]
    clf = train_classifier(x, y, x[:64], y[:64], epochs=1, min_steps=9, patience=50, **kw)
    assert clf.epochs_run == 3 and clf.steps_run == 12
    # Flipped validation labels: the best epoch is the first one, and without a warm-up early
    # stopping returns a network that trained one epoch. With a warm-up of 12 steps no checkpoint
    # is taken before step 12, and training runs on until patience is spent after it.
    flip = dict(epochs=8, patience=2, lr_patience=1, lr=3e-3, **kw)
    early = train_classifier(x, y, x[:64], 1 - y[:64], **flip)
    assert early.best_epoch == 1
    warm = train_classifier(x, y, x[:64], 1 - y[:64], warmup_steps=12, **flip)
    assert warm.best_epoch >= 3 and warm.history["steps"].iloc[warm.best_epoch - 1] >= 12
    assert warm.epochs_run == warm.best_epoch + 2
    with pytest.raises(ValueError, match="steps must be at least 1"):
        train_classifier(x, y, x, y, steps=0, **kw)


def test_class_weight_weights_train_and_validation_loss(pneumonia_small):
    x, y = pneumonia_small.images[:96], pneumonia_small.labels[:96]
    kw = dict(epochs=1, batch_size=32, seed=2, device="cpu", progress=False)
    plain = train_classifier(x, y, x[:64], y[:64], **kw)
    w = np.array([3.0, 0.5])
    weighted = train_classifier(x, y, x[:64], y[:64], class_weight=w, **kw)
    assert weighted.best_val_loss != pytest.approx(plain.best_val_loss)
    # the validation loss is the weighted mean cross-entropy of the returned network
    p = weighted.predict_proba(x[:64])
    ce = -np.log(p[np.arange(64), y[:64]])
    assert weighted.best_val_loss == pytest.approx((w[y[:64]] * ce).sum() / w[y[:64]].sum(), rel=1e-4)
    balanced = train_classifier(x, y, x[:64], y[:64], class_weight="balanced", **kw)
    from ensemble.downstream.training import class_weights

    same = train_classifier(x, y, x[:64], y[:64], class_weight=class_weights(y, 2), **kw)
    assert balanced.best_val_loss == pytest.approx(same.best_val_loss)
    for bad in ("real", [1.0], [1.0, -1.0]):
        with pytest.raises(ValueError, match="class_weight"):
            train_classifier(x, y, x, y, class_weight=bad, **kw)
