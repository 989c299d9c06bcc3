"""zoo.trainer: the seeded training step, weight clipping, state round trips."""

from __future__ import annotations

import math

import pytest
import torch

from zoo.config import build_config
from zoo.trainer import STATE_FORMAT, GANTrainer


@pytest.fixture
def data(pneumonia_small):
    return pneumonia_small.images[:128], pneumonia_small.labels[:128]


def test_trainer_step_changes_weights_and_is_seeded(data):
    images, labels = data
    cfg = build_config("acgan", num_classes=2, image_size=28, channels=1, batch_size=8)
    a = GANTrainer("acgan", cfg, images, labels, seed=1, device="cpu")
    b = GANTrainer("acgan", cfg, images, labels, seed=1, device="cpu")
    c = GANTrainer("acgan", cfg, images, labels, seed=2, device="cpu")
    before = {k: v.clone() for k, v in a.G.state_dict().items()}
    for t in (a, b, c):
        losses = t.step()
    assert set(losses) == {"loss_d", "loss_g"} and all(math.isfinite(float(v)) for v in losses.values())
    sa, sb, sc = a.G.state_dict(), b.G.state_dict(), c.G.state_dict()
    assert any(not torch.equal(before[k], sa[k]) for k in sa)
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert any(not torch.equal(sa[k], sc[k]) for k in sa)


def test_wgan_clips_critic_weights(data):
    images, labels = data
    cfg = build_config("wgan", num_classes=2, image_size=28, channels=1, batch_size=8, n_critic=2,
                       clip=0.005)
    t = GANTrainer("wgan", cfg, images, labels, device="cpu")
    t.step()
    assert max(float(p.detach().abs().max()) for p in t.D.parameters()) <= 0.005 + 1e-9
    assert isinstance(t.opt_d, torch.optim.RMSprop)


def test_state_dict_round_trip_continues_bit_identical(data):
    images, labels = data
    cfg = build_config("dcgan", num_classes=2, image_size=28, channels=1, batch_size=8, ema=0.9)
    a = GANTrainer("dcgan", cfg, images, labels, seed=3, device="cpu")
    a.step()
    state = a.state_dict()
    assert state["format"] == STATE_FORMAT and state["iteration"] == 1
    b = GANTrainer("dcgan", cfg, images, labels, seed=3, device="cpu")
    b.load_state_dict(state)
    a.step()
    b.step()
    wa, wb = a.generator_state_dict(), b.generator_state_dict()
    assert all(torch.equal(wa[k], wb[k]) for k in wa)
    other = GANTrainer("dcgan", cfg, images, labels, seed=4, device="cpu")
    with pytest.raises(ValueError, match="seed 3 does not match this run's 4"):
        other.load_state_dict(state)
