"""zoo.train: input checks, snapshots in the catalog, exact resume, run identity."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import torch

import zoo
from zoo.trainer import STATE_FORMAT


@pytest.fixture
def data(pneumonia_small):
    return pneumonia_small.images[:128], pneumonia_small.labels[:128]


def _weights(path):
    return torch.load(path, map_location="cpu", weights_only=True)["state_dict"]


# --------------------------------------------------------------------------- bad input


@pytest.mark.parametrize("kwargs,match", [
    ({"arch": "stylegan9"}, "unknown architecture 'stylegan9'.*dcgan"),
    ({"images": "float"}, "uint8.*float32"),
    ({"images": "30px"}, "30x30.*28x28, 32x32 or 64x64"),
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
