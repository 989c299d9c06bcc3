"""Every registered family trains at 64 px on real PneumoniaMNIST and samples through the catalog.

Only the 28-px PneumoniaMNIST file exists offline, so the 64-px images here are made by resizing
the 28-px ones (bilinear, PIL, as tests/ensemble/test_data.py makes ``pneumoniamnist_64.npz``).
"""

from __future__ import annotations

import copy
import logging
import math
import re

import numpy as np
import pytest
import torch
from PIL import Image

import zoo
from zoo.nets.blocks import resolution_plan

#: Parametrised over the registry, so a newly registered family is tested at 64 px too.
FAMILIES = zoo.list_architectures()
ITERATIONS = 7  # progan with stage_iters 1 reaches its 64-px stage at iteration 6 (8->16->32->64)
_LOSSES = re.compile(r"it (\d+)/\d+ loss_d (\S+) loss_g (\S+)")


def _resize64(images: np.ndarray) -> np.ndarray:
    return np.stack([np.asarray(Image.fromarray(im).resize((64, 64), Image.BILINEAR)) for im in images])


@pytest.fixture(scope="module")
def pneumonia_64(pneumonia):
    """64 real training images (stratified, shuffled), resized from 28 to 64 px."""
    ds = pneumonia.subset(64, seed=0)
    return _resize64(ds.images), ds.labels


def _small(name: str) -> dict:
    """Narrow nets and no EMA (the snapshot is the trained generator) keep each test fast."""
    defaults = zoo.get_architecture(name).defaults
    hp: dict = {"ema": 0.0}
    hp.update({k: 8 for k in ("g_width", "d_width") if k in defaults})
    if "stage_iters" in defaults:
        hp["stage_iters"] = 1
    return hp


def test_resolution_plan():
    assert [resolution_plan(s) for s in (28, 32, 64)] == [(7, 2), (8, 2), (8, 3)]
    with pytest.raises(ValueError, match="image_size 48 is not supported.*28, 32 or 64 px"):
        resolution_plan(48)


@pytest.mark.parametrize("name", FAMILIES)
def test_family_trains_at_64px(name, pneumonia_64, tmp_path, caplog):
    images, labels = pneumonia_64
    assert images.shape == (64, 64, 64) and images.dtype == np.uint8
    with caplog.at_level(logging.INFO, logger="zoo.train"):
        ids = zoo.train(name, images, labels, out_dir=tmp_path, iterations=ITERATIONS,
                        snapshots=[1, ITERATIONS], batch_size=8, seed=0, device="cpu",
                        dataset="pneumoniamnist", **_small(name))
    losses = [(int(m[1]), float(m[2]), float(m[3])) for m in _LOSSES.finditer(caplog.text)]
    assert [it for it, _, _ in losses] == list(range(1, ITERATIONS + 1))
    assert all(math.isfinite(d) and math.isfinite(g) for _, d, g in losses)
    assert len({d for _, d, _ in losses}) > 1  # the losses move

    cat = zoo.Catalog(tmp_path)
    assert [tuple(s) for s in cat.list()["image_shape"]] == [(64, 64), (64, 64)]
    early, late = cat.load(ids[0], device="cpu"), cat.load(ids[1], device="cpu")
    assert tuple(late.image_shape) == (64, 64)
    x = late.sample(16, labels=[0, 1] * 8, seed=1)
    assert x.shape == (16, 64, 64) and x.dtype == np.uint8
    assert x.std() > 0 and np.array_equal(x, late.sample(16, labels=[0, 1] * 8, seed=1))
    # learning happened: the trained weights change G's output. The snapshot's buffers (batch
    # norm statistics, progan's growth stage) are kept and only the weights are set back to
    # those after the first step, so that the change is the optimiser's alone: the mean change
    # is 2-63% of the output's spread (seeds 0 and 3; cgan lowest) and 0 with lr 1e-12.
    first_weights = copy.deepcopy(late.module)
    first_weights.load_state_dict({**late.module.state_dict(), **dict(early.module.named_parameters())})
    z = torch.randn(16, late.latent_dim, generator=torch.Generator().manual_seed(0))
    y = torch.tensor([0, 1] * 8)
    with torch.no_grad():
        trained, before = late.module.eval()(z, y), first_weights.eval()(z, y)
    assert float((trained - before).abs().mean() / before.std()) > 0.005
    if name == "progan":  # grown to its 64-px stage; the first snapshot was at the 8-px one
        assert int(late.module.stage) == 3 and int(early.module.stage) == 0


@pytest.mark.parametrize("name", ["dcgan", "progan"])
def test_family_trains_at_64px_rgb(name, pneumonia_64, tmp_path):
    gray, labels = pneumonia_64
    rgb = np.stack([gray, gray // 2, 255 - gray], axis=-1)  # (64, 64, 64, 3) uint8
    ids = zoo.train(name, rgb, labels, out_dir=tmp_path, iterations=ITERATIONS,
                    snapshots=[ITERATIONS], batch_size=8, device="cpu", **_small(name))
    gen = zoo.Catalog(tmp_path).load(ids[0], device="cpu")
    assert tuple(gen.image_shape) == (64, 64, 3)
    x = gen.sample(10, labels=[0, 1] * 5, seed=0)
    assert x.shape == (10, 64, 64, 3) and x.dtype == np.uint8 and x.std() > 0
