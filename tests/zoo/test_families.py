"""Every family trains a few iterations on real PneumoniaMNIST and samples through the catalog."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import zoo
from zoo.generator import resolve_labels
from zoo.nets.progan import progan_schedule

FAMILIES = ["acgan", "cgan", "dcgan", "lsgan", "progan", "sngan", "wgan", "wgan-gp"]


def _family_hparams(name: str) -> dict:
    # progan: one iteration per phase, so 3 iterations reach the second resolution
    return {"stage_iters": 1} if name == "progan" else {}


@pytest.mark.parametrize("name", FAMILIES)
def test_family_trains_and_samples(name, pneumonia_small, tmp_path):
    ds = pneumonia_small
    ids = zoo.train(name, ds.images, ds.labels, out_dir=tmp_path, iterations=3, snapshots=[1, 3],
                    batch_size=16, seed=0, device="cpu", dataset="pneumoniamnist",
                    **_family_hparams(name))
    assert len(ids) == 2 and ids[0] != ids[1]
    cat = zoo.Catalog(tmp_path)
    rows = cat.list()
    assert list(rows["iteration"]) == [1, 3]
    assert set(rows["architecture"]) == {name}
    assert set(rows["dataset"]) == {"pneumoniamnist"}
    run = rows["run"].iloc[0]
    assert run.startswith(name)
    assert list(rows["name"]) == [f"{run}@1", f"{run}@3"]
    assert (tmp_path / "runs" / run / "G_3.pt").is_file()

    gen = cat.load(ids[1], device="cpu")
    assert gen.num_classes == 2 and tuple(gen.image_shape) == (28, 28)
    x = gen.sample(64, seed=1)
    assert x.shape == (64, 28, 28) and x.dtype == np.uint8
    assert x.std() > 0  # not a constant image
    assert np.array_equal(x, gen.sample(64, seed=1))  # same seed, same bytes
    # labels=None draws labels uniformly from the seed: the same images as those labels given
    drawn = resolve_labels(64, None, 2, 1)
    assert np.array_equal(x, gen.sample(64, labels=drawn, seed=1))
    assert np.bincount(drawn, minlength=2).min() >= 20
    # given labels are respected: the same codes with other labels give other images
    zeros = gen.sample(16, labels=np.zeros(16, dtype=np.int64), seed=3)
    ones = gen.sample(16, labels=np.ones(16, dtype=np.int64), seed=3)
    assert zeros.shape == ones.shape == (16, 28, 28)
    assert not np.array_equal(zeros, ones)
    if name == "progan":  # the snapshot knows its growth stage
        assert int(gen.module.stage) == 1
        assert int(cat.load(ids[0], device="cpu").module.stage) == 0


@pytest.mark.parametrize("name", ["sngan", "progan", "cgan"])
def test_family_on_32px_rgb(name, pneumonia_small, tmp_path):
    gray = np.pad(pneumonia_small.images[:64], ((0, 0), (2, 2), (2, 2)), mode="edge")
    rgb = np.stack([gray, gray // 2, 255 - gray], axis=-1)  # (64, 32, 32, 3) uint8
    ids = zoo.train(name, rgb, pneumonia_small.labels[:64], out_dir=tmp_path, iterations=2,
                    snapshots=[2], batch_size=8, device="cpu", **_family_hparams(name))
    gen = zoo.Catalog(tmp_path).load(ids[0], device="cpu")
    assert tuple(gen.image_shape) == (32, 32, 3)
    x = gen.sample(10, labels=[0, 1] * 5, seed=0)
    assert x.shape == (10, 32, 32, 3) and x.dtype == np.uint8


def test_progan_schedule():
    s = 4
    assert [progan_schedule(it, s, 2) for it in (1, 4)] == [(0, 1.0), (0, 1.0)]
    # fade-in of stage 1 over iterations 5..8, then stable 9..12
    assert [progan_schedule(it, s, 2) for it in (5, 6, 8, 9, 12)] == [
        (1, 0.25), (1, 0.5), (1, 1.0), (1, 1.0), (1, 1.0)]
    assert progan_schedule(13, s, 2) == (2, 0.25)
    assert progan_schedule(20, s, 2) == (2, 1.0)
    assert progan_schedule(10**6, s, 2) == (2, 1.0)
    alphas = [progan_schedule(it, s, 2)[1] for it in range(1, 30)]
    stages = [progan_schedule(it, s, 2)[0] for it in range(1, 30)]
    assert stages == sorted(stages) and all(0 < a <= 1 for a in alphas)
    # 64 px grows once more: 8 -> 16 -> 32 -> 64, the last fade-in over iterations 21..24
    assert progan_schedule(20, s, 3) == (2, 1.0)
    assert [progan_schedule(it, s, 3) for it in (21, 24, 28)] == [(3, 0.25), (3, 1.0), (3, 1.0)]
    assert progan_schedule(10**6, s, 3) == (3, 1.0)
    with pytest.raises(ValueError, match="stage_iters"):
        progan_schedule(1, 0, 2)


def test_progan_fade_in_blends_resolutions():
    cfg = {"num_classes": 2, "image_size": 28, "channels": 1, "stage_iters": 4}
    torch.manual_seed(0)
    g = zoo.create_generator("progan", cfg).eval()
    z, y = torch.randn(3, 100), torch.tensor([0, 1, 0])
    with torch.no_grad():
        g.set_iteration(4)  # stage 0: a 7x7 image upsampled, so 4x4 blocks are constant
        x0 = g(z, y)
        assert x0.shape == (3, 1, 28, 28)
        assert torch.equal(x0, x0[:, :, ::4, ::4].repeat_interleave(4, 2).repeat_interleave(4, 3))
        g.set_iteration(5)  # alpha 0.25 of stage 1
        assert (int(g.stage), float(g.alpha)) == (1, 0.25)
        xa = g(z, y)
        g.set_iteration(8)  # alpha 1
        x1 = g(z, y)
    assert not torch.equal(xa, x1)
    assert torch.equal(x1, x1[:, :, ::2, ::2].repeat_interleave(2, 2).repeat_interleave(2, 3))
    # the state dict carries the stage, so a saved generator knows where it is
    g2 = zoo.create_generator("progan", cfg)
    g2.load_state_dict(g.state_dict())
    assert (int(g2.stage), float(g2.alpha)) == (1, 1.0)


def _label_and_code_effects(g: torch.nn.Module) -> tuple[float, float]:
    """Mean |G(z, 1) - G(z, 0)| and mean |G(z, y) - G(z', y)| over 64 codes, at full size."""
    gen = torch.Generator().manual_seed(0)
    z, z2 = torch.randn(64, 100, generator=gen), torch.randn(64, 100, generator=gen)
    zeros, ones = torch.zeros(64, dtype=torch.long), torch.ones(64, dtype=torch.long)
    g.set_iteration(10_000)  # the full-resolution stage
    with torch.no_grad():
        label = float((g(z, ones) - g(z, zeros)).abs().mean())
        code = float((g(z, zeros) - g(z2, zeros)).abs().mean())
    return label, code


def test_progan_label_weighs_as_much_as_z():
    """Issue 17: with equalised lr the one-hot label appended to z (one input of 101) moves the
    image about 0.18x as much as z at initialisation, and Adam's ~lr-sized steps cannot grow it
    within a CPU run (label agreement near chance at 2,000 iterations). The default embedding
    gives the label as much weight as z from the start; label_embed=False keeps the old path."""
    cfg = {"num_classes": 2, "image_size": 28, "channels": 1}
    torch.manual_seed(0)
    label, code = _label_and_code_effects(zoo.create_generator("progan", cfg))
    assert label > 0.5 * code, (label, code)
    torch.manual_seed(0)
    label_old, code_old = _label_and_code_effects(
        zoo.create_generator("progan", {**cfg, "label_embed": False}))
    assert label_old < 0.25 * code_old, (label_old, code_old)


def test_minibatch_std_per_label_sees_collapse_within_a_class():
    """Issue 17: a generator that makes one image per class still shows a large spread over a
    mixed batch; the per-label statistic is ~0 for it and matches the plain one on one class."""
    from zoo.nets.blocks import MinibatchStd

    mb = MinibatchStd(num_classes=3)
    gen = torch.Generator().manual_seed(0)
    protos = torch.randn(2, 4, 3, 3, generator=gen)
    labels = torch.tensor([0, 1] * 8)
    collapsed = protos[labels]  # every sample of a class identical
    assert float(mb(collapsed)[0, -1, 0, 0]) > 0.5
    assert float(mb(collapsed, labels)[:, -1].abs().max()) < 1e-3
    diverse = torch.randn(16, 4, 3, 3, generator=gen)
    same = torch.zeros(16, dtype=torch.long)
    torch.testing.assert_close(mb(diverse, same), mb(diverse), atol=1e-6, rtol=1e-6)
    # each sample carries its own class's spread; a class of one gets 0; gradients stay finite
    mixed = torch.tensor([0] * 10 + [1] * 5 + [2])
    out = mb(diverse, mixed)[:, -1, 0, 0]
    torch.testing.assert_close(out[:10], diverse[:10].std(0, unbiased=False).mean().expand(10),
                               atol=1e-6, rtol=1e-6)
    assert float(out[-1]) == 0.0
    x = collapsed.clone().requires_grad_(True)
    mb(x, labels).sum().backward()
    assert torch.isfinite(x.grad).all()


def test_progan_critic_groups_minibatch_std_by_label():
    """The default critic computes minibatch-stddev within each class (mbstd_by_label); the old
    whole-batch statistic is kept for checkpoints saved before it (the family's legacy value)."""
    from zoo.registry import create_discriminator, get_architecture

    cfg = {"num_classes": 2, "image_size": 28, "channels": 1}
    assert get_architecture("progan").legacy["mbstd_by_label"] is False
    torch.manual_seed(0)
    d = create_discriminator("progan", cfg)
    torch.manual_seed(0)
    d_old = create_discriminator("progan", {**cfg, "mbstd_by_label": False})
    d.set_iteration(10_000)
    d_old.set_iteration(10_000)
    proto = torch.rand(2, 1, 28, 28) * 2 - 1
    y = torch.tensor([0, 1] * 4)
    x = proto[y]  # one image per class
    with torch.no_grad():
        assert not torch.allclose(d(x, y), d_old(x, y))
        # on a one-class batch the two statistics agree, so the critics agree
        y0 = torch.zeros(8, dtype=torch.long)
        xs = torch.rand(8, 1, 28, 28) * 2 - 1
        torch.testing.assert_close(d(xs, y0), d_old(xs, y0))


def test_progan_checkpoint_saved_before_label_embed_still_loads(tmp_path):
    """A progan file saved before label_embed existed (its config lacks the key) is rebuilt with
    the one-hot path it was trained with, and samples the same images as before."""
    from zoo.checkpoint import load_generator, save_generator
    from zoo.generator import TorchGenerator
    from zoo.registry import resolve_config

    cfg = resolve_config("progan", {"num_classes": 2, "image_size": 28, "channels": 1,
                                    "label_embed": False})
    torch.manual_seed(0)
    old = zoo.create_generator("progan", cfg)
    old_cfg = {k: v for k, v in cfg.items() if k != "label_embed"}  # as the file was written
    path = tmp_path / "G_5.pt"
    save_generator(path, architecture="progan", config=old_cfg, state_dict=old.state_dict(),
                   iteration=5)
    g = load_generator(path, device="cpu")
    direct = TorchGenerator(old, latent_dim=100, num_classes=2, image_shape=(28, 28), device="cpu")
    assert g.sample(8, seed=1).tobytes() == direct.sample(8, seed=1).tobytes()
    # a file saved with the embedding says so in its config and loads with it
    torch.manual_seed(0)
    new = zoo.create_generator("progan", {**cfg, "label_embed": True})
    save_generator(tmp_path / "G_6.pt", architecture="progan", config={**cfg, "label_embed": True},
                   state_dict=new.state_dict(), iteration=6)
    assert load_generator(tmp_path / "G_6.pt", device="cpu").sample(2, seed=1).shape == (2, 28, 28)
