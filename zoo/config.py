"""Hyper-parameter schema of the zoo's training: allowed values, validation, full run configs, run names.

A run's config is the family's defaults (``zoo.registry.Architecture.defaults``) updated with the
user's hyper-parameters and the data keys (``num_classes``, ``image_size``, ``channels``).
:func:`validate_hparams` checks names, types and ranges so that a typo or an impossible value
fails before anything is trained or written; :func:`build_config` returns the JSON-able config
that the trainer, the checkpoint and the catalog record; :func:`default_run_name` names a run by
its non-default settings so that two runs with other settings never share a folder.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from .registry import DATA_KEYS, Architecture, get_architecture, resolve_config

__all__ = [
    "CHOICES",
    "RANGES",
    "validate_hparams",
    "build_config",
    "default_run_name",
]

#: Hyper-parameters whose value is one of a fixed set of names.
CHOICES: dict[str, tuple[str, ...]] = {
    "optimizer": ("adam", "sgd", "rmsprop"),
    "output_activation": ("tanh", "none"),
}
#: key -> (kind, low, high, low_inclusive): numeric ranges checked by validate_hparams.
RANGES: dict[str, tuple[type, float, float, bool]] = {
    "lr": (float, 0.0, math.inf, False),
    "beta1": (float, 0.0, 1.0, True),
    "beta2": (float, 0.0, 1.0, True),
    "momentum": (float, 0.0, 1.0, True),
    "dropout": (float, 0.0, 1.0, True),
    "ema": (float, 0.0, 1.0, True),
    "clip": (float, 0.0, math.inf, True),
    "gp": (float, 0.0, math.inf, True),
    "drift": (float, 0.0, math.inf, True),
    "aux_weight": (float, 0.0, math.inf, True),
    "latent_dim": (int, 1, math.inf, True),
    "batch_size": (int, 1, math.inf, True),
    "n_critic": (int, 1, math.inf, True),
    "g_width": (int, 1, math.inf, True),
    "d_width": (int, 1, math.inf, True),
    "embed_dim": (int, 1, math.inf, True),
    "stage_iters": (int, 1, math.inf, True),
}


def _coerce(key: str, value: Any, default: Any) -> Any:
    """Turn numpy scalars into Python ones and check the value's type against the default's."""
    if isinstance(value, np.generic):
        value = value.item()
    kind = RANGES[key][0] if key in RANGES else type(default)
    if kind is bool or isinstance(default, bool):
        if not isinstance(value, bool):
            raise ValueError(f"hyper-parameter {key}={value!r} must be True or False")
        return value
    if kind is int:
        if isinstance(value, bool) or not isinstance(value, int):
            if isinstance(value, float) and value.is_integer():
                return int(value)
            raise ValueError(f"hyper-parameter {key}={value!r} must be an integer")
        return value
    if kind is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValueError(f"hyper-parameter {key}={value!r} must be a number")
        return float(value)
    if kind is str:
        if not isinstance(value, str):
            raise ValueError(f"hyper-parameter {key}={value!r} must be a string")
        return value
    return value


def validate_hparams(arch: Architecture, hparams: Mapping[str, Any]) -> dict[str, Any]:
    """Check names and values of user hyper-parameters for ``arch``; return them normalised."""
    known = list(arch.defaults)
    data_keys = [k for k in hparams if k in DATA_KEYS]
    if data_keys:
        raise ValueError(
            f"{data_keys} come from the training data (images and labels), not from "
            "hyper-parameters; use the num_classes= argument to set the number of classes"
        )
    unknown = [k for k in hparams if k not in arch.defaults]
    if unknown:
        raise ValueError(
            f"unknown hyper-parameter(s) {unknown} for architecture {arch.name!r}; known: "
            f"{', '.join(known)}"
        )
    out: dict[str, Any] = {}
    for key, value in hparams.items():
        value = _coerce(key, value, arch.defaults[key])
        if key in CHOICES and value not in CHOICES[key]:
            raise ValueError(f"hyper-parameter {key}={value!r}; use one of {list(CHOICES[key])}")
        if key in RANGES:
            _, lo, hi, lo_inc = RANGES[key]
            ok = (value >= lo if lo_inc else value > lo) and value < hi
            if key in ("beta1", "beta2", "momentum", "dropout", "ema"):
                ok = lo <= value < 1.0
            if not ok or (isinstance(value, float) and not math.isfinite(value)):
                lo_s = "[" if lo_inc else "("
                hi_s = "inf)" if hi == math.inf else f"{hi:g})"
                raise ValueError(f"hyper-parameter {key}={value!r} is out of range; use a value in "
                                 f"{lo_s}{lo:g}, {hi_s}")
        out[key] = value
    return out


def build_config(arch: str | Architecture, *, num_classes: int, image_size: int, channels: int,
                 **hparams: Any) -> dict[str, Any]:
    """The full JSON-able config of a run: the family's defaults, the hyper-parameters, the data keys."""
    arch = get_architecture(arch)
    cfg = dict(arch.defaults)
    user = validate_hparams(arch, hparams)
    cfg.update(user)
    if cfg["optimizer"] == "adam" and cfg.get("momentum", 0.0) > 0:
        raise ValueError(f"momentum={cfg['momentum']!r} applies to optimizer 'sgd' or 'rmsprop'; "
                         "Adam uses beta1/beta2 (set optimizer='sgd' or drop momentum)")
    passed_betas = [k for k in ("beta1", "beta2") if k in user]
    if cfg["optimizer"] != "adam" and passed_betas:
        raise ValueError(f"{passed_betas} apply to optimizer 'adam', not {cfg['optimizer']!r}; "
                         "use momentum for sgd/rmsprop")
    cfg.update(num_classes=int(num_classes), image_size=int(image_size), channels=int(channels))
    return resolve_config(arch.name, cfg)


def _fmt_value(value: Any) -> str:
    if isinstance(value, float):
        if value != 0 and (abs(value) < 1e-2 or abs(value) >= 1e4):
            return np.format_float_scientific(value, trim="-", exp_digits=1)
        return f"{value:g}"
    return str(value)


_SHORT = {"batch_size": "bs", "latent_dim": "z", "n_critic": "ncrit", "output_activation": "out"}


def default_run_name(arch: str | Architecture, config: Mapping[str, Any], seed: int = 0) -> str:
    """``arch`` plus a short, stable suffix naming the non-default hyper-parameters and seed.

    E.g. ``dcgan``, ``dcgan-lr1e-4-sgd``, ``wgan-gp-diffaug-ema0.999-s1``. Overlong names fall
    back to a hash of the settings.
    """
    arch = get_architecture(arch)
    parts: list[str] = []
    for key, default in arch.defaults.items():
        value = config.get(key, default)
        if value == default and type(value) is type(default):
            continue
        if key == "optimizer":
            parts.append(str(value))
        elif isinstance(value, bool):
            parts.append(key if value else f"no{key}")
        else:
            parts.append(f"{_SHORT.get(key, key.replace('_', ''))}{_fmt_value(value)}")
    if seed != 0:  # large derived seeds get a short stable tag instead of 19 digits
        parts.append(f"s{seed}" if 0 < seed < 10**6 else
                     f"s{hashlib.sha256(str(seed).encode()).hexdigest()[:8]}")
    name = "-".join([arch.name, *parts])
    if len(name) > 60:
        digest = hashlib.sha256("-".join(parts).encode()).hexdigest()[:10]
        name = f"{arch.name}-{digest}"
    return name

