"""Weight sources of an embedding backbone: what ``Embedder(weights=...)`` can name, and how it is read.

- ``"random"``: a seeded random initialisation (a valid baseline for density/coverage on
  non-ImageNet domains, Naeem et al. 2020).
- ``"hub"``: timm's pretrained weights, from the local Hugging Face / torch hub cache when there
  (:func:`cached_hub_file`); otherwise downloaded, after a quick reachability check
  (:func:`resolve_hub_weights`) so that an offline machine fails in seconds with a clear message
  instead of retrying for minutes.
- a path to a ``.pth`` / ``.pt`` / ``.bin`` / ``.safetensors`` state dict
  (:func:`load_state_dict_file`, read with ``weights_only``; :func:`fit_state_dict` drops
  classifier-head keys and adapts a 3-channel stem to 1 channel).
- ``"in-domain"``: the backbone trained on the real training images (:mod:`.indomain`); on
  another machine its weights file is found with :func:`resolve_in_domain_weights`.

:func:`state_digest` hashes a state dict's tensors (the identity of in-domain weights).
"""

from __future__ import annotations

import hashlib
import logging
import os
import socket
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import torch
from torch import nn

__all__ = [
    "WEIGHT_KINDS",
    "WEIGHT_SUFFIXES",
    "HUB_PROBE_TIMEOUT_S",
    "HUB_HINT",
    "weights_kind",
    "load_state_dict_file",
    "unwrap_state_dict",
    "fit_state_dict",
    "hub_offline",
    "reachable",
    "hub_config",
    "cached_hub_file",
    "resolve_hub_weights",
    "resolve_in_domain_weights",
    "state_digest",
]

log = logging.getLogger(__name__)

WEIGHT_KINDS = ("random", "hub", "in-domain")
WEIGHT_SUFFIXES = (".pth", ".pt", ".bin", ".safetensors")
HUB_PROBE_TIMEOUT_S = 3.0
#: What to do instead when hub weights cannot be had.
HUB_HINT = ("use weights='random', weights='in-domain' (after fit) or a local weights file "
            "(weights=PATH.pth/.safetensors), or download the weights once while online")
_TRUE = {"1", "true", "yes", "on"}


def weights_kind(weights: Any) -> str:
    """``"random"``, ``"hub"``, ``"in-domain"`` or ``"file"`` (a path) for a ``weights=`` value."""
    if isinstance(weights, str) and weights in WEIGHT_KINDS:
        return weights
    if isinstance(weights, (str, os.PathLike)):
        return "file"
    raise ValueError(f"weights must be one of {', '.join(WEIGHT_KINDS)} or a file path, got {weights!r}")


def unwrap_state_dict(obj: Any, path: Path) -> dict[str, torch.Tensor]:
    """The tensor dict inside a checkpoint (plain, or under state_dict/model/... keys)."""
    if isinstance(obj, dict):
        for key in ("state_dict", "model_state_dict", "model", "state_dict_ema", "model_ema"):
            inner = obj.get(key)
            if isinstance(inner, dict) and inner and all(isinstance(v, torch.Tensor) for v in inner.values()):
                obj = inner
                break
    if not isinstance(obj, dict) or not obj or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise ValueError(
            f"weights file {str(path)!r} does not hold a state dict (a dict of tensors); save one with "
            "torch.save(model.state_dict(), path) or safetensors.torch.save_file"
        )
    sd = {str(k): v for k, v in obj.items()}
    for prefix in ("module.", "_orig_mod."):  # DataParallel / torch.compile wrappers
        if all(k.startswith(prefix) for k in sd):
            sd = {k[len(prefix):]: v for k, v in sd.items()}
    return sd


def load_state_dict_file(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """Read a ``.pth``/``.pt``/``.bin`` (``torch.load(weights_only=True)``) or ``.safetensors`` file."""
    p = Path(path).expanduser()
    if not p.is_file():
        raise FileNotFoundError(
            f"weights file {str(p)!r} not found; weights must be one of {', '.join(WEIGHT_KINDS)} "
            f"or the path of a state dict ({', '.join(WEIGHT_SUFFIXES)})"
        )
    if p.suffix.lower() not in WEIGHT_SUFFIXES:
        raise ValueError(f"weights file {str(p)!r} has suffix {p.suffix!r}; expected one of "
                         f"{', '.join(WEIGHT_SUFFIXES)}")
    try:
        if p.suffix.lower() == ".safetensors":
            from safetensors.torch import load_file

            obj: Any = load_file(str(p), device="cpu")
        else:
            obj = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as exc:  # corrupt, truncated, or a pickle with code in it
        raise ValueError(
            f"cannot read weights file {str(p)!r} ({type(exc).__name__}: {str(exc).splitlines()[0][:200]}); "
            "it must be a plain state dict saved with torch.save(model.state_dict()) or safetensors"
        ) from exc
    return unwrap_state_dict(obj, p)


def _as_prefixes(classifier: Any) -> tuple[str, ...]:
    if not classifier:
        return ()
    return (classifier,) if isinstance(classifier, str) else tuple(classifier)


def fit_state_dict(model: nn.Module, sd: dict[str, torch.Tensor], *, source: str) -> dict[str, torch.Tensor]:
    """Make ``sd`` loadable into ``model`` (num_classes=0): drop head keys, adapt the stem's channels.

    Raises a ValueError naming the missing / unexpected / mis-shaped keys otherwise.
    """
    from timm.models import adapt_input_conv

    target = model.state_dict()
    cfg = getattr(model, "pretrained_cfg", {}) or {}
    heads = _as_prefixes(cfg.get("classifier"))
    out: dict[str, torch.Tensor] = {}
    dropped = []
    for k, v in sd.items():
        if k not in target and any(k == h or k.startswith(h + ".") for h in heads):
            dropped.append(k)
            continue
        out[k] = v
    if dropped:
        log.info("%s: dropped classifier-head keys %s", source, dropped)
    first_conv = cfg.get("first_conv")
    for conv in _as_prefixes(first_conv):
        key = conv + ".weight"
        if key in out and key in target and out[key].ndim == 4 and out[key].shape[1] != target[key].shape[1]:
            out[key] = adapt_input_conv(target[key].shape[1], out[key].float()).to(out[key].dtype)
            log.info("%s: adapted %s to %d input channel(s)", source, key, target[key].shape[1])
    missing = [k for k in target if k not in out and not k.endswith("num_batches_tracked")]
    unexpected = [k for k in out if k not in target]
    mis_shaped = [f"{k} {tuple(out[k].shape)} vs {tuple(target[k].shape)}"
                  for k in out if k in target and out[k].shape != target[k].shape]
    problems = []
    if missing:
        problems.append(f"{len(missing)} missing key(s) (e.g. {', '.join(missing[:5])})")
    if unexpected:
        problems.append(f"{len(unexpected)} unexpected key(s) (e.g. {', '.join(unexpected[:5])})")
    if mis_shaped:
        problems.append(f"{len(mis_shaped)} shape mismatch(es) (e.g. {'; '.join(mis_shaped[:3])})")
    if problems:
        raise ValueError(
            f"{source} does not fit backbone {type(model).__name__}: {'; '.join(problems)}. "
            "Is it a state dict of this timm backbone (pass the matching backbone= name)?"
        )
    return out


def hub_offline() -> bool:
    if os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in _TRUE:
        return True
    try:
        from huggingface_hub import constants

        return bool(constants.HF_HUB_OFFLINE)
    except Exception:  # huggingface_hub missing: timm falls back to URLs
        return False


def reachable(url: str, timeout: float = HUB_PROBE_TIMEOUT_S) -> bool:
    """Whether a TCP connection to ``url``'s host opens within ``timeout`` s (DNS included)."""
    parsed = urlparse(url)
    host = parsed.hostname
    if not host:
        return False
    port = parsed.port or (443 if parsed.scheme != "http" else 80)
    ok = threading.Event()

    def probe() -> None:
        try:
            with socket.create_connection((host, port), timeout=timeout):
                ok.set()
        except OSError:
            pass

    t = threading.Thread(target=probe, daemon=True)
    t.start()
    t.join(timeout + 0.5)  # getaddrinfo has no timeout of its own: never wait past ours
    return ok.is_set()


def cached_hub_file(cfg: dict) -> str | None:
    """A locally cached weights file for a timm pretrained config (HF cache, then torch hub)."""
    hf_id = cfg.get("hf_hub_id")
    if hf_id:
        try:
            from huggingface_hub import try_to_load_from_cache

            repo, _, revision = hf_id.partition("@")
            names = [cfg["hf_hub_filename"]] if cfg.get("hf_hub_filename") else []
            names += ["model.safetensors", "pytorch_model.bin", "open_clip_model.safetensors",
                      "open_clip_pytorch_model.bin"]
            for name in names:
                hit = try_to_load_from_cache(repo, name, revision=revision or None)
                if isinstance(hit, str) and os.path.isfile(hit):
                    return hit
        except Exception as exc:
            log.debug("HF cache lookup for %s failed: %s", hf_id, exc)
    url = cfg.get("url")
    if url and not cfg.get("custom_load"):
        path = Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(urlparse(url).path)
        if path.is_file():
            return str(path)
    return None


def state_digest(state: Mapping[str, torch.Tensor]) -> str:
    """sha256 of a state dict's names, dtypes, shapes and values (independent of file format)."""
    h = hashlib.sha256()
    for name in sorted(state):
        t = state[name].detach().cpu().contiguous()
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


def hub_config(backbone: str) -> dict:
    """timm's pretrained config of ``backbone`` (a dict); raises when it has no pretrained weights."""
    from timm.models import get_pretrained_cfg

    try:
        cfg = get_pretrained_cfg(backbone)
    except RuntimeError as exc:  # e.g. an unknown pretrained tag
        raise ValueError(f"backbone {backbone!r}: {exc}") from exc
    cfg = cfg.to_dict() if cfg is not None else {}
    if not (cfg.get("hf_hub_id") or cfg.get("url") or cfg.get("file")):
        raise ValueError(f"timm has no pretrained weights for {backbone!r}; use weights='random', "
                         "'in-domain' or a local weights file")
    return cfg


def resolve_hub_weights(backbone: str) -> str | None:
    """The cached hub weights file of ``backbone``, or None when they can be downloaded now.

    Raises a ValueError (naming :data:`HUB_HINT`) when they are not cached and the hub is
    offline (``HF_HUB_OFFLINE``) or cannot be reached within :data:`HUB_PROBE_TIMEOUT_S`.
    """
    if backbone.startswith("hf-hub:"):
        cfg = {"hf_hub_id": backbone[len("hf-hub:"):]}
    else:
        cfg = hub_config(backbone)
    cached = cached_hub_file(cfg)
    if cached is not None:
        return cached
    name = cfg.get("hf_hub_id") or cfg.get("url")
    if hub_offline():
        raise ValueError(f"hub weights for {backbone!r} ({name}) are not in the local cache and "
                         f"the Hugging Face hub is offline (HF_HUB_OFFLINE); {HUB_HINT}")
    endpoint = (os.environ.get("HF_ENDPOINT") or "https://huggingface.co") if cfg.get("hf_hub_id") \
        else cfg.get("url", "")
    if not reachable(endpoint):
        raise ValueError(f"hub weights for {backbone!r} ({name}) are not cached and "
                         f"{urlparse(endpoint).hostname or endpoint} cannot be reached "
                         f"(no network?); {HUB_HINT}")
    return None


def resolve_in_domain_weights(path: str | os.PathLike | None) -> str:
    """The trained in-domain weights file ``path`` on this machine (it must exist here)."""
    if not path or not Path(path).is_file():
        raise FileNotFoundError(
            f"in-domain weights {path!r} not found on this machine; the feature "
            "cache folder (--cache-dir) must be shared by every worker"
        )
    return os.fspath(path)
