"""zoo.train: input checks, snapshots in the catalog, exact resume; losses and DiffAugment."""

from __future__ import annotations

import json
import logging
import math

import numpy as np
import pytest
import torch

import zoo
from zoo.diffaug import diff_augment
from zoo.losses import discriminator_loss, generator_loss, gradient_penalty
from zoo.train import STATE_FORMAT, GANTrainer, build_config, default_run_name


@pytest.fixture
def data(pneumonia_small):
    return pneumonia_small.images[:128], pneumonia_small.labels[:128]


def _weights(path):
    return torch.load(path, map_location="cpu", weights_only=True)["state_dict"]


# --------------------------------------------------------------------------- bad input


@pytest.mark.parametrize("kwargs,match", [
    ({"arch": "stylegan9"}, "unknown architecture 'stylegan9'.*dcgan"),
    ({"images": "float"}, "uint8.*float32"),
    ({"images": "30px"}, "30x30.*28x28 or 32x32"),
    ({"images": "rgba"}, r"\(N, H, W\) or \(N, H, W, 3\).*4\)"),
    ({"labels": "short"}, "labels has 127 entries but there are 128 images"),
    ({"labels": "negative"}, "found -1"),
    ({"num_classes": 1}, "found 1, expected 0 <= label < 1.*num_classes=2"),
    ({"iterations": 0}, "iterations must be an integer >= 1, got 0"),
    ({"snapshots": []}, "snapshots is empty"),
    ({"snapshots": [2, 2]}, r"strictly increasing, got \[2, 2\]"),
    ({"snapshots": [0, 2]}, "snapshot 0 is outside 1..4"),
    ({"snapshots": [5]}, "snapshot 5 is outside 1..4"),
    ({"snapshots": "4"}, "list of iterations"),
    ({"batch_size": 500}, "batch_size 500 is larger than the 128"),
    ({"lrr": 1e-4}, r"unknown hyper-parameter\(s\) \['lrr'\].*known: latent_dim, lr"),
    ({"optimizer": "adagrad"}, r"optimizer='adagrad'.*adam"),
    ({"lr": -1.0}, "lr=-1.0 is out of range"),
    ({"dropout": 1.0}, "dropout=1.0 is out of range"),
    ({"momentum": 0.9}, "momentum=0.9 applies to optimizer 'sgd' or 'rmsprop'"),
    ({"optimizer": "sgd", "beta1": 0.0}, r"\['beta1'\] apply to optimizer 'adam', not 'sgd'"),
    ({"diffaug": "yes"}, "diffaug='yes' must be True or False"),
    ({"image_size": 32}, "come from the training data"),
    ({"name": "a/b"}, "run name 'a/b' is not allowed"),
    ({"seed": "zero"}, "seed must be an integer"),
])
def test_bad_input_is_a_clear_error(kwargs, match, data, tmp_path):
    images, labels = data
    args = {"arch": "dcgan", "images": images, "labels": labels, "iterations": 4,
            "snapshots": [2, 4], "batch_size": 16}
    args.update(kwargs)
    special_images = {
        "float": images.astype(np.float32),
        "30px": np.zeros((128, 30, 30), np.uint8),
        "rgba": np.zeros((128, 28, 28, 4), np.uint8),
    }
    special_labels = {"short": labels[:-1], "negative": labels - 1}
    if isinstance(args["images"], str):
        args["images"] = special_images[args["images"]]
    if isinstance(args["labels"], str):
        args["labels"] = special_labels[args["labels"]]
    with pytest.raises(ValueError, match=match):
        zoo.train(out_dir=tmp_path, device="cpu", **args)
    assert not (tmp_path / "runs").exists()  # nothing written for bad input


# --------------------------------------------------------------------------- names and configs


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


# --------------------------------------------------------------------------- snapshots and resume


def test_snapshots_are_registered_and_state_is_weights_only(data, tmp_path):
    images, labels = data
    ids = zoo.train("dcgan", images, labels, out_dir=tmp_path, iterations=3, snapshots=[1, 3],
                    batch_size=16, device="cpu", ema=0.9, dataset="pneumoniamnist")
    cat = zoo.Catalog(tmp_path)
    rows = cat.list()
    assert list(rows["id"]) == ids
    assert list(rows["name"]) == ["dcgan-bs16-ema0.9@1", "dcgan-bs16-ema0.9@3"]
    assert list(rows["path"]) == ["runs/dcgan-bs16-ema0.9/G_1.pt", "runs/dcgan-bs16-ema0.9/G_3.pt"]
    assert rows["config"].iloc[0]["ema"] == 0.9 and rows["config"].iloc[0]["batch_size"] == 16
    run_dir = tmp_path / "runs" / "dcgan-bs16-ema0.9"
    assert sorted(p.name for p in run_dir.glob("state_*.pt")) == ["state_3.pt"]  # newest kept
    state = torch.load(run_dir / "state_3.pt", map_location="cpu", weights_only=True)
    assert state["format"] == STATE_FORMAT and state["iteration"] == 3
    assert {"G", "D", "ema", "opt_g", "opt_d", "config", "seed"} <= set(state)
    # the published generator is the EMA one, and differs from the raw generator
    g3 = _weights(run_dir / "G_3.pt")
    assert all(torch.equal(g3[k], state["ema"][k]) for k in g3)
    assert any(not torch.equal(g3[k], state["G"][k]) for k in g3)
    assert not list(run_dir.glob("*.tmp"))


@pytest.mark.parametrize("name,extra", [
    ("dcgan", {"ema": 0.9, "diffaug": True, "dropout": 0.2}),  # BN, dropout, DiffAugment, EMA
    ("sngan", {"n_critic": 1}),  # spectral-norm power iteration buffers
    ("progan", {"stage_iters": 1, "ema": 0.5}),  # growth stage in buffers
])
def test_interrupted_run_resumes_bit_identical(name, extra, data, tmp_path, caplog):
    images, labels = data
    kw = dict(batch_size=16, seed=7, device="cpu", **extra)
    full = zoo.train(name, images, labels, out_dir=tmp_path / "a", iterations=4, snapshots=[2, 4], **kw)
    part = zoo.train(name, images, labels, out_dir=tmp_path / "b", iterations=2, snapshots=[2], **kw)
    with caplog.at_level(logging.INFO, logger="zoo.train"):
        rest = zoo.train(name, images, labels, out_dir=tmp_path / "b", iterations=4,
                         snapshots=[2, 4], **kw)
    assert "resuming from iteration 2" in caplog.text
    assert rest[0] == part[0] and len(set(rest)) == 2 and len(full) == 2
    ca, cb = zoo.Catalog(tmp_path / "a"), zoo.Catalog(tmp_path / "b")
    wa = _weights(ca.file_path(full[1]))
    wb = _weights(cb.file_path(rest[1]))
    assert wa.keys() == wb.keys()
    for k in wa:
        assert torch.equal(wa[k], wb[k]), k


def test_done_snapshots_are_skipped_and_earlier_ones_retrained(data, tmp_path, caplog):
    images, labels = data
    kw = dict(batch_size=16, device="cpu", name="run1")
    ids = zoo.train("lsgan", images, labels, out_dir=tmp_path, iterations=3, snapshots=[3], **kw)
    g3 = tmp_path / "runs" / "run1" / "G_3.pt"
    before = g3.stat().st_mtime_ns
    assert zoo.train("lsgan", images, labels, out_dir=tmp_path, iterations=3, snapshots=[3], **kw) == ids
    assert g3.stat().st_mtime_ns == before
    # an earlier snapshot than the saved state: trained again from scratch, same weights
    ids2 = zoo.train("lsgan", images, labels, out_dir=tmp_path, iterations=3, snapshots=[1, 3], **kw)
    assert ids2[1] == ids[0] and g3.stat().st_mtime_ns == before
    ref = zoo.train("lsgan", images, labels, out_dir=tmp_path / "ref", iterations=1, snapshots=[1], **kw)
    w1 = _weights(tmp_path / "runs" / "run1" / "G_1.pt")
    wr = _weights(zoo.Catalog(tmp_path / "ref").file_path(ref[0]))
    assert all(torch.equal(w1[k], wr[k]) for k in w1)


def test_same_run_name_with_other_settings_is_an_error(data, tmp_path):
    images, labels = data
    kw = dict(batch_size=16, device="cpu", iterations=1, snapshots=[1])
    zoo.train("dcgan", images, labels, out_dir=tmp_path, name="mine", **kw)
    with pytest.raises(ValueError, match=r"run 'mine' exists with a different config \(lr: 0.0002 -> 0.001"):
        zoo.train("dcgan", images, labels, out_dir=tmp_path, name="mine", lr=1e-3, **kw)
    with pytest.raises(ValueError, match="'dcgan' run, not 'lsgan'"):
        zoo.train("lsgan", images, labels, out_dir=tmp_path, name="mine", **kw)
    with pytest.raises(ValueError, match="seed 0, not 1"):
        zoo.train("dcgan", images, labels, out_dir=tmp_path, name="mine", seed=1, **kw)
    with pytest.raises(ValueError, match="different images or labels"):
        zoo.train("dcgan", images[::-1].copy(), labels, out_dir=tmp_path, name="mine", **kw)
    # a run that failed before saving anything can be restarted with other settings
    with pytest.raises(ValueError, match="batch_size 500"):
        zoo.train("dcgan", images, labels, out_dir=tmp_path, name="fresh", **{**kw, "batch_size": 500})
    (tmp_path / "runs" / "other").mkdir(parents=True)
    (tmp_path / "runs" / "other" / "run.json").write_text('{"architecture": "wgan", "config": {}}')
    zoo.train("dcgan", images, labels, out_dir=tmp_path, name="other", **kw)
    assert "other@1" in zoo.Catalog(tmp_path).names()


def test_several_gans_share_one_out_dir_and_rng_is_left_alone(data, tmp_path):
    images, labels = data
    kw = dict(batch_size=16, device="cpu", iterations=2, snapshots=[2])
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    zoo.train("dcgan", images, labels, out_dir=tmp_path, **kw)
    zoo.train("dcgan", images, labels, out_dir=tmp_path, optimizer="sgd", lr=1e-2, **kw)
    zoo.train("cgan", images, labels, out_dir=tmp_path, seed=1, **kw)
    assert torch.equal(torch.rand(3), expected)  # the caller's global RNG is untouched
    names = zoo.Catalog(tmp_path).names()
    assert names == ["dcgan-bs16@2", "dcgan-lr0.01-sgd-bs16@2", "cgan-bs16-s1@2"]


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


# --------------------------------------------------------------------------- losses, DiffAugment


def test_losses_match_their_definitions():
    real, fake = torch.tensor([2.0, -1.0]), torch.tensor([0.5, -3.0])
    sp = torch.nn.functional.softplus
    assert torch.isclose(discriminator_loss("bce", real, fake), sp(-real).mean() + sp(fake).mean())
    assert torch.isclose(generator_loss("bce", fake), sp(-fake).mean())
    zero = torch.zeros(4)
    assert math.isclose(float(discriminator_loss("bce", zero, zero)), 2 * math.log(2), rel_tol=1e-6)
    assert float(discriminator_loss("ls", torch.ones(3), torch.zeros(3))) == 0.0
    assert float(generator_loss("ls", torch.zeros(2))) == 0.5
    assert float(discriminator_loss("wasserstein", real, fake)) == pytest.approx(-1.25 - 0.5)
    assert float(generator_loss("wasserstein", fake)) == pytest.approx(1.25)
    # hinge: relu(1 - 2) + relu(1 + 1) = 2, relu(1 + .5) + relu(1 - 3) = 1.5 -> 1 + 0.75
    assert float(discriminator_loss("hinge", real, fake)) == pytest.approx(1.75)
    with pytest.raises(ValueError, match="unknown loss 'l2'"):
        discriminator_loss("l2", real, fake)


def test_gradient_penalty_of_linear_critics():
    x, y = torch.randn(5, 1, 4, 4), torch.randn(5, 1, 4, 4)
    eps = torch.rand(5, 1, 1, 1)
    w = torch.randn(1, 1, 4, 4)
    unit = w / w.norm()
    assert float(gradient_penalty(lambda q: (q * unit).sum((1, 2, 3)), x, y, eps)) == pytest.approx(0.0, abs=1e-10)
    gp = gradient_penalty(lambda q: 3 * (q * unit).sum((1, 2, 3)), x, y, eps)
    assert float(gp) == pytest.approx(4.0)


def test_diffaugment_is_seeded_differentiable_and_shape_preserving():
    x = torch.rand(6, 3, 32, 32, requires_grad=True)

    def aug(seed):
        g = torch.Generator().manual_seed(seed)
        return diff_augment(x, generator=g)

    a, b, c = aug(0), aug(0), aug(1)
    assert a.shape == x.shape
    assert torch.equal(a, b) and not torch.equal(a, c)
    a.sum().backward()
    assert x.grad is not None and float(x.grad.abs().sum()) > 0
    # cutout zeroes a square of half the side in every image
    g = torch.Generator().manual_seed(0)
    cut = diff_augment(torch.ones(4, 1, 28, 28), "cutout", generator=g)
    assert ((cut == 0).sum(dim=(1, 2, 3)) > 0).all()
    # translation only moves pixels (and pads zeros)
    g = torch.Generator().manual_seed(0)
    img = torch.rand(4, 1, 28, 28) + 1
    moved = diff_augment(img, ("translation",), generator=g)
    assert set(torch.unique(moved[moved > 0]).tolist()) <= set(torch.unique(img).tolist())
    with pytest.raises(ValueError, match="unknown DiffAugment policy"):
        diff_augment(x, "rotate")
