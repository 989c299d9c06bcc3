"""The StudioGAN and StyleGAN2-ADA factories, tested with small stand-in modules.

The stand-ins are written here with the call signatures of the real code (we vendor neither):
a StudioGAN-style ``config.Configurations(yaml)`` and ``models.<backbone>.Generator(**kwargs)``
with ``forward(z, label, shared_label=None, eval=False)``, and NVlabs-style ``dnnlib``,
``torch_utils`` and ``legacy.load_network_pkl(f)`` returning a tiny ``G(z, c, truncation_psi=...,
noise_mode=...)`` with ``z_dim``, ``c_dim``, ``img_resolution`` and ``img_channels``. Both draw
random numbers inside ``forward``, to check that the same seed gives the same bytes.
"""

from __future__ import annotations

import logging
import pickle
import random
import sys
import textwrap

import numpy as np
import pytest
import torch

from zoo.catalog import Catalog
from zoo.foreign import SeededTorchGenerator, studiogan_generator, stylegan2ada_generator

STUDIOGAN_CONFIG = '''
import yaml
from types import SimpleNamespace


class Configurations:
    """StudioGAN's src/config.py reads a YAML into DATA, MODEL, ... sections and builds MODULES."""

    def __init__(self, cfg_file):
        with open(cfg_file) as f:
            raw = yaml.safe_load(f)
        self.DATA = SimpleNamespace(**raw["DATA"])
        self.MODEL = SimpleNamespace(**raw["MODEL"])
        self.MODULES = SimpleNamespace(g_act_fn="ReLU")
'''

STUDIOGAN_MODEL = '''
import torch
from torch import nn


class Generator(nn.Module):
    def __init__(self, z_dim, g_shared_dim, img_size, g_conv_dim, apply_attn, attn_g_loc, g_cond_mtd,
                 num_classes, g_init, g_depth, mixed_precision, MODULES, MODEL):
        super().__init__()
        self.img_size, self.channels = img_size, MODEL.img_channels_for_test
        self.embed = nn.Embedding(num_classes, z_dim)
        self.fc = nn.Linear(z_dim, self.channels * img_size * img_size)

    def forward(self, z, label, shared_label=None, eval=False):
        assert eval is True
        x = self.fc(z + self.embed(label)) + 0.1 * torch.randn(z.shape[0], 1)  # noise in forward
        return torch.tanh(x).view(z.shape[0], self.channels, self.img_size, self.img_size)
'''

STYLEGAN_NETS = '''
import torch
from torch import nn


class TinyG(nn.Module):
    def __init__(self, z_dim=6, c_dim=3, img_resolution=8, img_channels=3):
        super().__init__()
        self.z_dim, self.c_dim = z_dim, c_dim
        self.img_resolution, self.img_channels = img_resolution, img_channels
        self.mapping = nn.Linear(z_dim + c_dim, 16)
        self.synthesis = nn.Linear(16, img_channels * img_resolution ** 2)

    def forward(self, z, c, truncation_psi=1, truncation_cutoff=None, noise_mode="const"):
        assert c.shape == (z.shape[0], self.c_dim)
        w = self.mapping(torch.cat([z, c], dim=1)) * truncation_psi
        if noise_mode == "random":
            w = w + torch.randn_like(w)
        x = torch.tanh(self.synthesis(w))
        return x.view(z.shape[0], self.img_channels, self.img_resolution, self.img_resolution)
'''

LEGACY = '''
import pickle

import dnnlib  # noqa: F401  (the real legacy.py needs both to unpickle)
import torch_utils  # noqa: F401


def load_network_pkl(f, force_fp16=False):
    return pickle.load(f)
'''

STAND_IN_MODULES = ("dnnlib", "torch_utils", "torch_utils.tiny_nets", "legacy", "sg_config",
                    "sg_models", "sg_models.tiny_conv")


@pytest.fixture
def stand_ins(tmp_path, monkeypatch):
    """Write the stand-in packages to a folder on sys.path; forget them afterwards."""
    src = tmp_path / "src"
    for rel, text in {"dnnlib/__init__.py": "", "torch_utils/__init__.py": "",
                      "torch_utils/tiny_nets.py": STYLEGAN_NETS, "legacy.py": LEGACY,
                      "sg_config.py": STUDIOGAN_CONFIG, "sg_models/__init__.py": "",
                      "sg_models/tiny_conv.py": STUDIOGAN_MODEL}.items():
        (src / rel).parent.mkdir(parents=True, exist_ok=True)
        (src / rel).write_text(textwrap.dedent(text))
    monkeypatch.syspath_prepend(str(src))
    for name in STAND_IN_MODULES:
        monkeypatch.delitem(sys.modules, name, raising=False)
    yield tmp_path
    for name in STAND_IN_MODULES:
        sys.modules.pop(name, None)


def _stylegan_pkl(path, **kwargs):
    from torch_utils.tiny_nets import TinyG

    torch.manual_seed(0)
    with open(path, "wb") as f:
        pickle.dump({"G": TinyG(**kwargs), "D": None, "G_ema": TinyG(**kwargs)}, f)
    return path


def _studiogan_run(folder, channels=1, num_classes=2):
    folder.mkdir(parents=True, exist_ok=True)
    cfg = folder / "tiny.yaml"
    cfg.write_text(textwrap.dedent(f"""
        DATA: {{name: toy, img_size: 8, num_classes: {num_classes}, img_channels: {channels}}}
        MODEL: {{backbone: tiny_conv, z_dim: 5, g_shared_dim: 4, g_conv_dim: 8, apply_attn: false,
                 attn_g_loc: [2], g_cond_mtd: cBN, g_init: ortho, g_depth: 1,
                 img_channels_for_test: {channels}}}
    """))
    import sg_config
    import sg_models.tiny_conv as net

    cfgs = sg_config.Configurations(str(cfg))
    torch.manual_seed(1)
    G = net.Generator(z_dim=5, g_shared_dim=4, img_size=8, g_conv_dim=8, apply_attn=False, attn_g_loc=[2],
                      g_cond_mtd="cBN", num_classes=num_classes, g_init="ortho", g_depth=1,
                      mixed_precision=False, MODULES=cfgs.MODULES, MODEL=cfgs.MODEL)
    weights = folder / "model=G_ema-best-weights-step=100.pth"
    state = {f"module.{k}": v for k, v in G.state_dict().items()}  # saved from DataParallel
    torch.save({"state_dict": state, "step": 100}, weights)
    return cfg, weights


SG_NAMES = {"config_module": "sg_config", "models_package": "sg_models"}


def test_studiogan_factory_same_seed_same_bytes(stand_ins):
    cfg, weights = _studiogan_run(stand_ins / "run")
    gen = studiogan_generator(cfg, weights, device="cpu", **SG_NAMES)
    assert isinstance(gen, SeededTorchGenerator)
    assert (gen.latent_dim, gen.num_classes, gen.image_shape) == (5, 2, (8, 8))
    random.seed(123)
    np.random.seed(123)
    torch.manual_seed(123)
    before = (random.random(), np.random.rand(), torch.rand(1).item())
    random.seed(123)
    np.random.seed(123)
    torch.manual_seed(123)
    x = gen.sample(6, seed=4)
    assert (random.random(), np.random.rand(), torch.rand(1).item()) == before  # caller's RNG untouched
    torch.manual_seed(999)  # a different global state does not change the bytes
    np.testing.assert_array_equal(studiogan_generator(cfg, weights, device="cpu", **SG_NAMES).sample(6, seed=4), x)
    assert not np.array_equal(gen.sample(6, seed=5), x)
    assert x.dtype == np.uint8 and x.shape == (6, 8, 8)

    rgb_cfg, rgb_weights = _studiogan_run(stand_ins / "rgb", channels=3, num_classes=3)
    assert studiogan_generator(rgb_cfg, rgb_weights, device="cpu", **SG_NAMES).sample(2).shape == (2, 8, 8, 3)
    with pytest.raises(ValueError, match="do not fit the network"):
        studiogan_generator(cfg, rgb_weights, device="cpu", **SG_NAMES)
    with pytest.raises(ValueError, match="cannot import 'no_such_config'.*PYTHONPATH"):
        studiogan_generator(cfg, weights, config_module="no_such_config")
    with pytest.raises(FileNotFoundError, match="weights"):
        studiogan_generator(cfg, stand_ins / "absent.pth", **SG_NAMES)


def test_stylegan2ada_factory(stand_ins, caplog):
    pkl = _stylegan_pkl(stand_ins / "network-snapshot-000100.pkl")
    with pytest.raises(ValueError, match="loading a pickle runs code.*trust_pickle=True"):
        stylegan2ada_generator(pkl)
    with caplog.at_level(logging.WARNING, logger="zoo.foreign"):
        gen = stylegan2ada_generator(pkl, trust_pickle=True, noise_mode="random", device="cpu")
    assert "unpickling runs code" in caplog.text
    assert (gen.latent_dim, gen.num_classes, gen.image_shape) == (6, 3, (8, 8, 3))
    torch.manual_seed(7)
    x = gen.sample(5, labels=[0, 1, 2, 1, 0], seed=11)
    torch.manual_seed(8)
    np.testing.assert_array_equal(gen.sample(5, labels=[0, 1, 2, 1, 0], seed=11), x)
    assert not np.array_equal(gen.sample(5, labels=[0, 1, 2, 1, 0], seed=12), x)
    const = stylegan2ada_generator(pkl, trust_pickle=True, device="cpu", truncation_psi=0.7)
    assert not np.array_equal(const.sample(5, labels=[0, 1, 2, 1, 0], seed=11), x)  # no noise, psi .7

    uncond = _stylegan_pkl(stand_ins / "uncond.pkl", c_dim=0, img_channels=1)
    g1 = stylegan2ada_generator(uncond, trust_pickle=True, device="cpu")
    assert g1.num_classes == 1 and g1.sample(3).shape == (3, 8, 8)
    with pytest.raises(ValueError, match="noise_mode must be one of"):
        stylegan2ada_generator(pkl, trust_pickle=True, noise_mode="loud")
    with pytest.raises(ValueError, match="has no network 'G_best'"):
        stylegan2ada_generator(pkl, trust_pickle=True, network="G_best")


def test_stylegan2ada_needs_nvlabs_code(tmp_path, monkeypatch):
    pkl = tmp_path / "net.pkl"
    pkl.write_bytes(b"not read")
    monkeypatch.setattr("importlib.util.find_spec", lambda name, *a: None if name == "dnnlib" else object())
    with pytest.raises(ValueError, match="cannot import 'dnnlib'.*stylegan2-ada-pytorch"):
        stylegan2ada_generator(pkl, trust_pickle=True)


def test_factories_through_the_catalog_hash_their_files(stand_ins, monkeypatch):
    cfg, weights = _studiogan_run(stand_ins / "run")
    pkl = _stylegan_pkl(stand_ins / "net.pkl")
    cat = Catalog(stand_ins / "zoo")
    monkeypatch.chdir(stand_ins)  # relative file arguments are recorded as absolute paths
    sid = cat.register_callable("zoo.foreign:studiogan_generator", name="biggan@100", run="biggan",
                                iteration=100, num_classes=2, image_shape=(8, 8),
                                config_yaml="run/tiny.yaml", weights=str(weights), device="cpu", **SG_NAMES)
    yid = cat.register_callable("zoo.foreign:stylegan2ada_generator", name="sg2", num_classes=3,
                                image_shape=(8, 8, 3), pkl=str(pkl), trust_pickle=True,
                                noise_mode="random", device="cpu")
    row = cat.get(sid)
    assert (row["run"], row["iteration"]) == ("biggan", 100)
    assert row["config"]["kwargs"]["config_yaml"] == str(cfg.resolve())
    assert set(row["config"]["files"]) == {"config_yaml", "weights"}
    assert set(cat.get(yid)["config"]["files"]) == {"pkl"}
    direct = studiogan_generator(cfg, weights, device="cpu", **SG_NAMES).sample(4, seed=2)
    np.testing.assert_array_equal(cat.load(sid).sample(4, seed=2), direct)
    np.testing.assert_array_equal(cat.load(yid).sample(4, seed=2), cat.load(yid).sample(4, seed=2))

    torch.manual_seed(5)  # same architecture, other weights: another file
    from torch_utils.tiny_nets import TinyG

    with open(pkl, "wb") as f:
        pickle.dump({"G_ema": TinyG()}, f)
    with pytest.raises(ValueError, match="argument pkl.*changed since it was registered"):
        cat.load(yid)
    weights.unlink()
    with pytest.raises(FileNotFoundError, match="argument weights.*is missing"):
        cat.load(sid)
