"""zoo.config: run configs from defaults and hyper-parameters, validation, default run names."""

from __future__ import annotations

import json

import numpy as np
import pytest

from zoo.config import build_config, default_run_name, validate_hparams
from zoo.registry import get_architecture


def test_default_run_name_is_short_and_stable():
    cfg = build_config("dcgan", num_classes=2, image_size=28, channels=1)
    assert default_run_name("dcgan", cfg) == "dcgan"
    cfg = build_config("dcgan", num_classes=2, image_size=28, channels=1, lr=1e-4, optimizer="sgd")
    assert default_run_name("dcgan", cfg) == "dcgan-lr1e-4-sgd"
    cfg = build_config("wgan-gp", num_classes=2, image_size=32, channels=3, diffaug=True, ema=0.999,
                       output_activation="none", batch_size=256)
    assert default_run_name("wgan-gp", cfg, seed=3) == "wgan-gp-outnone-bs256-ema0.999-diffaug-s3"
    long = build_config("dcgan", num_classes=2, image_size=28, channels=1, lr=1.5e-4, beta1=0.1,
                        beta2=0.95, dropout=0.3, ema=0.99, latent_dim=64, g_width=48, d_width=48)
    name = default_run_name("dcgan", long)
    assert name.startswith("dcgan-") and len(name) <= 60
    assert name == default_run_name("dcgan", dict(long))
    cfg = build_config("dcgan", num_classes=2, image_size=28, channels=1, lr=1e-4, optimizer="sgd")
    big = default_run_name("dcgan", cfg, seed=2**62 + 5)
    assert big.startswith("dcgan-lr1e-4-sgd-s") and len(big) == len("dcgan-lr1e-4-sgd-s") + 8
    assert big != default_run_name("dcgan", cfg, seed=2**62 + 6)


def test_build_config_has_contract_keys():
    cfg = build_config("sngan", num_classes=3, image_size=32, channels=3, lr=np.float64(1e-4),
                       n_critic=np.int64(1))
    for key in ("latent_dim", "num_classes", "image_size", "channels", "output_activation", "lr",
                "optimizer", "dropout", "batch_size", "ema", "diffaug", "n_critic"):
        assert key in cfg
    assert json.loads(json.dumps(cfg)) == cfg
    assert type(cfg["lr"]) is float and type(cfg["n_critic"]) is int


@pytest.mark.parametrize("hparams,match", [
    ({"lrr": 1e-4}, r"unknown hyper-parameter\(s\) \['lrr'\]"),
    ({"num_classes": 3}, "come from the training data"),
    ({"beta1": 1.0}, "beta1=1.0 is out of range"),
    ({"latent_dim": 2.5}, "latent_dim=2.5 must be an integer"),
    ({"lr": float("nan")}, "lr=nan is out of range"),
])
def test_validate_hparams_rejects_bad_values(hparams, match):
    with pytest.raises(ValueError, match=match):
        validate_hparams(get_architecture("dcgan"), hparams)


def test_validate_hparams_normalises_numpy_scalars():
    out = validate_hparams(get_architecture("dcgan"), {"latent_dim": np.int32(64), "lr": 1,
                                                       "g_width": 32.0})
    assert out == {"latent_dim": 64, "lr": 1.0, "g_width": 32}
    assert [type(v) for v in out.values()] == [int, float, int]
