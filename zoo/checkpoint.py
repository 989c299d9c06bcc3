"""Generator checkpoint files: what training writes and what sampling loads, safely.

A checkpoint is a ``torch.save`` file holding only plain data::

    {"format": "gan-ensemble-generator/1", "architecture": str, "config": dict,
     "state_dict": {name: tensor}, "iteration": int}

It is read with ``torch.load(weights_only=True)``, so a file with code in its pickle is refused
rather than run. The network is rebuilt from the architecture registry and the stored config and
the weights are loaded strictly: a file that does not match its architecture is an error.
"""

from __future__ import annotations

import io
import json
import logging
import os
import pickle
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from zoo.generator import TorchGenerator
from zoo.io import atomic_write, sha256_file

__all__ = ["FORMAT", "save_generator", "load_generator", "read_checkpoint", "config_image_shape"]

log = logging.getLogger(__name__)

FORMAT = "gan-ensemble-generator/1"
REQUIRED_CONFIG = ("latent_dim", "num_classes", "image_size", "channels")


def config_image_shape(config: Mapping[str, Any]) -> tuple[int, ...]:
    """``(H, W)`` or ``(H, W, 3)`` from a config's ``image_size`` and ``channels``."""
    size, channels = int(config["image_size"]), int(config["channels"])
    return (size, size) if channels == 1 else (size, size, channels)


def _check_config(config: object, where: str) -> dict:
    if not isinstance(config, Mapping):
        raise ValueError(f"{where}: config must be a dict, got {type(config).__name__}")
    missing = [k for k in REQUIRED_CONFIG if k not in config]
    if missing:
        raise ValueError(
            f"{where}: config lacks {missing}; a generator config needs {list(REQUIRED_CONFIG)}"
        )
    try:
        config = json.loads(json.dumps(dict(config)))
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{where}: config must be JSON-serialisable ({exc})") from exc
    if config["channels"] not in (1, 3):
        raise ValueError(f"{where}: config channels must be 1 or 3, got {config['channels']!r}")
    return config


def save_generator(path: str | os.PathLike, *, architecture: str, config: Mapping[str, Any],
                   state_dict: Mapping[str, torch.Tensor], iteration: int) -> str:
    """Write a generator checkpoint atomically; return its sha256 (hex)."""
    path = Path(path)
    if not isinstance(architecture, str) or not architecture:
        raise ValueError(f"architecture must be a non-empty string, got {architecture!r}")
    config = _check_config(config, f"saving {path}")
    if isinstance(iteration, bool) or not isinstance(iteration, int) or iteration < 0:
        raise ValueError(f"iteration must be a non-negative integer, got {iteration!r}")
    if not isinstance(state_dict, Mapping):
        raise ValueError(f"state_dict must be a mapping of tensors, got {type(state_dict).__name__}")
    tensors: dict[str, torch.Tensor] = {}
    for key, value in state_dict.items():
        if not isinstance(value, torch.Tensor):
            raise ValueError(f"state_dict[{key!r}] is a {type(value).__name__}, expected a tensor")
        # clone: save only this tensor's data, not a larger storage it may be a view of.
        tensors[str(key)] = value.detach().to("cpu").clone()
    payload = {
        "format": FORMAT,
        "architecture": architecture,
        "config": config,
        "state_dict": tensors,
        "iteration": int(iteration),
    }
    # Serialise in memory: torch names the zip records after the file it writes to, so saving to
    # the random temp name directly would make the same weights give different bytes and sha256.
    buf = io.BytesIO()
    torch.save(payload, buf)
    atomic_write(path, lambda tmp: tmp.write_bytes(buf.getvalue()))
    digest = sha256_file(path)
    log.debug("saved generator %s (%s @ %d), sha256 %s", path, architecture, iteration, digest[:12])
    return digest


def read_checkpoint(path: str | os.PathLike, *, sha256: str | None = None) -> dict:
    """Load and validate a checkpoint's contents (no code runs); return the payload dict."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"generator checkpoint {str(path)!r} not found; check the path (or the zoo folder) "
            "and retrain or restore the file"
        )
    if sha256 is not None:
        actual = sha256_file(path)
        if actual != sha256:
            raise ValueError(
                f"generator checkpoint {str(path)!r} has sha256 {actual[:12]}..., but the catalog "
                f"recorded {sha256[:12]}...; the file was changed or replaced since it was "
                "registered: restore the original file, or remove the catalog entry and register "
                "the file again"
            )
    _check_zip_crc(path)
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        if "weights only" in str(exc).lower() or "weights_only" in str(exc).lower():
            raise ValueError(
                f"refusing to load {str(path)!r}: its pickle refers to code or objects other than "
                "plain tensors and containers (weights_only=True), which could run arbitrary code; "
                "load it only if you trust it and re-save the weights with zoo.save_generator"
            ) from exc
        raise ValueError(
            f"generator checkpoint {str(path)!r} is corrupt ({_first_line(exc)}); "
            "retrain or restore the file"
        ) from exc
    except (RuntimeError, EOFError, zipfile.BadZipFile, OSError, ValueError, KeyError,
            IndexError, AttributeError, TypeError) as exc:
        raise ValueError(
            f"generator checkpoint {str(path)!r} is truncated or corrupt ({_first_line(exc)}); "
            "retrain or restore the file"
        ) from exc
    if not isinstance(payload, dict) or "format" not in payload:
        hint = ""
        if isinstance(payload, dict) and payload and all(isinstance(v, torch.Tensor) for v in payload.values()):
            hint = " (it looks like a bare state_dict)"
        raise ValueError(
            f"{str(path)!r} is not a gan-ensemble generator checkpoint{hint}; expected a dict with "
            f"format {FORMAT!r}: save it with zoo.save_generator(path, architecture=..., config=..., "
            "state_dict=..., iteration=...)"
        )
    if payload["format"] != FORMAT:
        raise ValueError(
            f"{str(path)!r} has checkpoint format {payload['format']!r}, but this version reads "
            f"{FORMAT!r}; upgrade gan-ensemble or re-save the generator with zoo.save_generator"
        )
    missing = [k for k in ("architecture", "config", "state_dict", "iteration") if k not in payload]
    if missing:
        raise ValueError(f"generator checkpoint {str(path)!r} lacks {missing}; it is incomplete, re-save it")
    payload["config"] = _check_config(payload["config"], f"generator checkpoint {str(path)!r}")
    if not isinstance(payload["state_dict"], dict):
        raise ValueError(f"generator checkpoint {str(path)!r}: state_dict is not a dict; re-save it")
    return payload


def _check_zip_crc(path: Path) -> None:
    """Verify the CRC-32 of every member of a zip-format checkpoint (torch does not check them).

    This catches bit rot or a partial overwrite inside the tensor data, which would otherwise load
    silently as wrong weights when no catalog sha256 is at hand.
    """
    if not zipfile.is_zipfile(path):
        return  # legacy or non-zip files: torch.load reports what is wrong with them
    try:
        with zipfile.ZipFile(path) as zf:
            bad = zf.testzip()
    except (zipfile.BadZipFile, OSError, EOFError, ValueError) as exc:
        raise ValueError(
            f"generator checkpoint {str(path)!r} is truncated or corrupt ({_first_line(exc)}); "
            "retrain or restore the file"
        ) from exc
    if bad is not None:
        raise ValueError(
            f"generator checkpoint {str(path)!r} is corrupt (checksum error in {bad!r}); "
            "retrain or restore the file"
        )


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:200] if text else type(exc).__name__


def load_generator(path: str | os.PathLike, *, sha256: str | None = None,
                   device: str | torch.device = "auto", batch_size: int = 256) -> TorchGenerator:
    """Rebuild a generator from a checkpoint: registry architecture + stored config + strict weights."""
    from zoo.registry import get_architecture, stored_config

    path = Path(path)
    payload = read_checkpoint(path, sha256=sha256)
    name, config = payload["architecture"], payload["config"]
    try:
        arch = get_architecture(name)
    except ValueError as exc:
        raise ValueError(
            f"generator checkpoint {str(path)!r} needs architecture {name!r}, which is not "
            f"registered ({exc}); import the module that registers it (register_architecture) first"
        ) from exc
    try:
        module = arch.build_generator(stored_config(arch.name, config))
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(
            f"generator checkpoint {str(path)!r}: architecture {name!r} cannot be built from its "
            f"stored config ({exc}); the file does not match this version of {name!r}"
        ) from exc
    try:
        module.load_state_dict(payload["state_dict"], strict=True)
    except RuntimeError as exc:
        detail = " ".join(str(exc).split())
        raise ValueError(
            f"generator checkpoint {str(path)!r}: weights do not match architecture {name!r} "
            f"({detail[:400]}); the file was saved by a different architecture or version"
        ) from exc
    return TorchGenerator(
        module,
        latent_dim=config["latent_dim"],
        num_classes=config["num_classes"],
        image_shape=config_image_shape(config),
        device=device,
        batch_size=batch_size,
        output_activation=config.get("output_activation", "tanh"),
        meta={"architecture": name, "config": config, "iteration": int(payload["iteration"]),
              "path": str(path)},
    )
