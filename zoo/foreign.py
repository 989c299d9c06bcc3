"""Factories for generators trained with other code: PyTorch-StudioGAN and StyleGAN2-ADA.

We vendor none of that code: each factory imports the user's own installed copy by name and
wraps the network as a zoo :class:`~zoo.generator.Generator`. Register them as callables, e.g.
``Catalog.register_callable("zoo.foreign:studiogan_generator", config_yaml=..., weights=...)``;
the files named in the arguments are hashed into the catalog entry (see docs/byo-zoo.md).

Such networks may draw random numbers inside ``forward`` (StyleGAN noise inputs, dropout, ...).
:class:`SeededTorchGenerator` seeds every random source (torch's CPU and CUDA generators, NumPy's
and Python's global ones) from the sampling seed around each call and restores them afterwards,
so the same seed (and batch size) gives the same bytes.
"""

from __future__ import annotations

import importlib
import importlib.util
import logging
import os
import random
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from zoo.generator import TorchGenerator
from zoo.seeding import derive_seed

__all__ = [
    "SeededTorchGenerator",
    "studiogan_generator",
    "stylegan2ada_generator",
    "NOISE_MODES",
]

log = logging.getLogger(__name__)

#: StyleGAN2-ADA's noise modes (``G(z, c, noise_mode=...)``).
NOISE_MODES = ("const", "random", "none")


class SeededTorchGenerator(TorchGenerator):
    """A :class:`TorchGenerator` whose module may use global random state inside ``forward``.

    Each ``sample`` call seeds torch (CPU and CUDA), NumPy and Python's ``random`` from
    ``derive_seed(seed, "forward")`` and restores their previous states afterwards, so sampling
    neither depends on nor disturbs the caller's random state. Codes and labels are drawn as for
    every zoo generator; noise drawn inside ``forward`` depends on the batch size as well.
    """

    def sample(self, n: int, labels: Sequence[int] | np.ndarray | None = None,
               seed: int = 0) -> np.ndarray:
        s = derive_seed(seed, "forward")
        devices = [self.device.index or 0] if self.device.type == "cuda" else []
        py_state, np_state = random.getstate(), np.random.get_state()
        try:
            with torch.random.fork_rng(devices=devices):
                torch.manual_seed(s)
                np.random.seed(s % 2**32)
                random.seed(s)
                return super().sample(n, labels, seed)
        finally:
            random.setstate(py_state)
            np.random.set_state(np_state)


def _import(name: str, what: str) -> Any:
    try:
        return importlib.import_module(name)
    except ImportError as exc:
        raise ValueError(f"cannot import {name!r} ({exc}); {what}") from exc


def _shape(size: int, channels: int, what: str) -> tuple[int, ...]:
    if channels not in (1, 3):
        raise ValueError(f"{what} makes {channels}-channel images; the zoo takes 1 (grayscale) or 3 (RGB)")
    return (int(size), int(size)) if channels == 1 else (int(size), int(size), 3)


# --------------------------------------------------------------------------- StudioGAN


class _StudioGANAdapter(nn.Module):
    """``(z, labels) -> G(z, labels, eval=True)``: StudioGAN generators take integer labels."""

    def __init__(self, G: nn.Module) -> None:
        super().__init__()
        self.G = G

    def forward(self, z: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return self.G(z, labels, eval=True)


def studiogan_generator(config_yaml: str | os.PathLike, weights: str | os.PathLike, *,
                        config_module: str = "config", models_package: str = "models",
                        device: str = "auto", batch_size: int = 256) -> SeededTorchGenerator:
    """A PyTorch-StudioGAN generator from its YAML config and a G or G_ema checkpoint.

    Needs StudioGAN's ``src`` folder importable (e.g. on ``PYTHONPATH``): the config is read with
    ``config.Configurations(config_yaml)`` and the network built as StudioGAN builds it,
    ``models.<MODEL.backbone>.Generator(z_dim=..., g_shared_dim=..., img_size=..., g_conv_dim=...,
    apply_attn=..., attn_g_loc=..., g_cond_mtd=..., num_classes=..., g_init=..., g_depth=...,
    mixed_precision=False, MODULES=..., MODEL=...)``. ``weights`` is a ``model=G-...pth`` or
    ``model=G_ema-...pth`` file (a dict with ``state_dict``, or a bare state dict), read with
    ``torch.load(weights_only=True)`` and loaded strictly. Images come from
    ``G(z, labels, eval=True)`` in [-1, 1]; ``z`` is standard normal (no truncation).
    """
    for f, what in ((config_yaml, "config_yaml"), (weights, "weights")):
        if not Path(f).is_file():
            raise FileNotFoundError(f"StudioGAN {what} {str(f)!r} not found")
    hint = ("put PyTorch-StudioGAN's src folder on PYTHONPATH (we do not ship StudioGAN), or name "
            "its modules with config_module= / models_package=")
    config = _import(config_module, hint)
    if not hasattr(config, "Configurations"):
        raise ValueError(f"module {config_module!r} has no Configurations class; is it StudioGAN's "
                         f"src/config.py? {hint}")
    cfgs = config.Configurations(str(config_yaml))
    backbone = str(cfgs.MODEL.backbone)
    if backbone.startswith("stylegan"):
        raise ValueError(f"StudioGAN backbone {backbone!r} builds its generator differently; export "
                         "it as TorchScript or wrap it in your own module:function factory")
    module = _import(f"{models_package}.{backbone}", hint)
    G = module.Generator(z_dim=cfgs.MODEL.z_dim, g_shared_dim=cfgs.MODEL.g_shared_dim,
                         img_size=cfgs.DATA.img_size, g_conv_dim=cfgs.MODEL.g_conv_dim,
                         apply_attn=cfgs.MODEL.apply_attn, attn_g_loc=cfgs.MODEL.attn_g_loc,
                         g_cond_mtd=cfgs.MODEL.g_cond_mtd, num_classes=cfgs.DATA.num_classes,
                         g_init=cfgs.MODEL.g_init, g_depth=cfgs.MODEL.g_depth, mixed_precision=False,
                         MODULES=cfgs.MODULES, MODEL=cfgs.MODEL)
    try:
        state = torch.load(weights, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises several types for unreadable or unsafe files
        raise ValueError(f"cannot read StudioGAN weights {str(weights)!r} ({exc})") from exc
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise ValueError(f"{str(weights)!r} holds no state dict (a dict with 'state_dict', or one itself)")
    state = {k.removeprefix("module."): v for k, v in state.items()}  # saved from DataParallel
    try:
        G.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise ValueError(f"weights {str(weights)!r} do not fit the network of {str(config_yaml)!r}: "
                         f"{str(exc).splitlines()[0]}; pass the G or G_ema file of that run") from exc
    shape = _shape(cfgs.DATA.img_size, int(cfgs.DATA.img_channels), f"StudioGAN config {str(config_yaml)!r}")
    meta = {"format": "studiogan", "backbone": backbone, "config_yaml": str(config_yaml),
            "weights": str(weights)}
    return SeededTorchGenerator(_StudioGANAdapter(G), latent_dim=int(cfgs.MODEL.z_dim),
                                num_classes=int(cfgs.DATA.num_classes), image_shape=shape,
                                device=device, batch_size=batch_size, meta=meta)


# --------------------------------------------------------------------------- StyleGAN2-ADA


class _StyleGANAdapter(nn.Module):
    """``(z, labels) -> G(z, one_hot(labels), truncation_psi=..., noise_mode=...)``."""

    def __init__(self, G: nn.Module, truncation_psi: float, noise_mode: str) -> None:
        super().__init__()
        self.G = G
        self.truncation_psi = float(truncation_psi)
        self.noise_mode = noise_mode

    def forward(self, z: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        c_dim = int(self.G.c_dim)
        if c_dim > 0:
            c = F.one_hot(labels, c_dim).to(z.dtype)
        else:
            c = torch.zeros(z.shape[0], 0, dtype=z.dtype, device=z.device)
        return self.G(z, c, truncation_psi=self.truncation_psi, noise_mode=self.noise_mode)


def stylegan2ada_generator(pkl: str | os.PathLike, *, trust_pickle: bool = False, network: str = "G_ema",
                           truncation_psi: float = 1.0, noise_mode: str = "const",
                           legacy_module: str = "legacy", device: str = "auto",
                           batch_size: int = 64) -> SeededTorchGenerator:
    """A StyleGAN2-ADA generator from an NVlabs network pickle (``network-snapshot-*.pkl``).

    A pickle runs code when it is loaded, so this refuses to load one unless ``trust_pickle=True``
    and logs a warning when it does: load only pickles from a source you trust. NVlabs'
    ``dnnlib``, ``torch_utils`` and ``legacy`` (from stylegan2-ada-pytorch) must be importable;
    the network is ``legacy.load_network_pkl(f)[network]``. A conditional network (``c_dim`` > 0)
    gets one-hot labels and has ``c_dim`` classes; an unconditional one has one class. Images are
    ``G(z, c, truncation_psi=..., noise_mode=...)`` in [-1, 1]; with ``noise_mode="random"`` the
    noise is seeded from the sampling seed (see :class:`SeededTorchGenerator`).
    """
    if not Path(pkl).is_file():
        raise FileNotFoundError(f"StyleGAN2-ADA pickle {str(pkl)!r} not found")
    if trust_pickle is not True:
        raise ValueError(f"{str(pkl)!r} is a pickle, and loading a pickle runs code from it; pass "
                         "trust_pickle=True (in --kwargs) only for a pickle from a source you trust")
    if noise_mode not in NOISE_MODES:
        raise ValueError(f"noise_mode must be one of {NOISE_MODES}, got {noise_mode!r}")
    hint = ("clone NVlabs' stylegan2-ada-pytorch and put its folder on PYTHONPATH (dnnlib, "
            "torch_utils and legacy must be importable; we do not ship them)")
    for name in ("dnnlib", "torch_utils"):
        if importlib.util.find_spec(name) is None:
            raise ValueError(f"cannot import {name!r}; {hint}")
    legacy = _import(legacy_module, hint)
    log.warning("loading StyleGAN2-ADA pickle %s: unpickling runs code from the file "
                "(trust_pickle=True was given)", pkl)
    with open(pkl, "rb") as f:
        data = legacy.load_network_pkl(f)
    if network not in data:
        raise ValueError(f"{str(pkl)!r} has no network {network!r}; it has {sorted(data)}")
    G = data[network]
    if not isinstance(G, nn.Module):
        raise ValueError(f"{network} of {str(pkl)!r} is a {type(G).__name__}, not a torch module")
    G = G.float()
    c_dim = int(G.c_dim)
    shape = _shape(int(G.img_resolution), int(G.img_channels), f"{network} of {str(pkl)!r}")
    meta = {"format": "stylegan2-ada", "network": network, "pkl": str(pkl),
            "truncation_psi": float(truncation_psi), "noise_mode": noise_mode}
    return SeededTorchGenerator(_StyleGANAdapter(G, truncation_psi, noise_mode), latent_dim=int(G.z_dim),
                                num_classes=max(c_dim, 1), image_shape=shape, device=device,
                                batch_size=batch_size, meta=meta)
