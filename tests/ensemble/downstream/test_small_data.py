"""The downstream protocol holds on small data: the real arm learns from 500 real images.

Issue 13: with an epoch budget, a classifier trained on a few hundred images ran a few dozen
optimizer steps and predicted every test image as one class (g-mean 0). With the quickstart's
default profile's downstream settings (a budget in optimizer steps, a warm-up before any
checkpoint, the loss weighted by the real class frequencies, the decision threshold chosen on the
real validation split), the real arm must reach AUC >= 0.9 and g-mean >= 0.7 on the real test split.
"""

from __future__ import annotations

from ensemble.downstream.protocol import run_protocol
from ensemble.downstream.sources import TrainingSource
from ensemble.pipeline.config import make_config


def test_real_arm_learns_from_500_images(pneumonia, pneumonia_val, pneumonia_test):
    cfg = make_config()  # the quickstart's default profile
    assert cfg.profile == "quick"
    train = pneumonia.subset(500, seed=0)  # stratified
    assert abs(train.labels.mean() - pneumonia.labels.mean()) < 0.01
    real = TrainingSource(train.images, train.labels, sampler="shuffle",
                          samples_per_epoch=cfg.samples_per_epoch, name="real")
    df = run_protocol(real, pneumonia_val, pneumonia_test, seeds=cfg.downstream_seeds[:1],
                      model=cfg.downstream_model, epochs=cfg.downstream_epochs,
                      patience=cfg.downstream_patience, steps=cfg.downstream_steps,
                      min_steps=cfg.downstream_min_steps, warmup_steps=cfg.downstream_warmup_steps,
                      class_weight=cfg.class_weight, threshold=cfg.threshold,
                      real_labels=train.labels, device="cpu", progress=False)
    r = df.iloc[0]
    assert r["roc_auc"] >= 0.9, r.to_dict()
    assert r["g_mean"] >= 0.7, r.to_dict()
    assert r["steps"] >= cfg.downstream_warmup_steps  # never an untrained checkpoint
    assert 0.0 < r["threshold"] < 1.0 and r["val_g_mean"] > 0.0
