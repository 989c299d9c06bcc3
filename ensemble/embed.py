"""Image embeddings from any timm backbone: the feature space in which density/coverage are scored.

:class:`Embedder` maps uint8 images to the pooled feature vector before a timm model's classifier
(``timm.create_model(name, num_classes=0)``). Preprocessing follows the model's timm data config:
scale to [0, 1], resize to ``image_size`` (bilinear, antialiased), normalise with the config's
mean/std. Grayscale images are repeated to three channels (``channels="replicate"``, as the
reference did) or fed as one channel (``channels="native"``: ``in_chans=1``, mean/std averaged).

Weights (``weights=``):

- ``"random"``: a seeded random initialisation (a valid baseline for density/coverage on
  non-ImageNet domains, Naeem et al. 2020); the global RNG is left untouched.
- ``"hub"``: timm's pretrained weights. Used from the local Hugging Face / torch hub cache when
  there; otherwise downloaded, after a quick reachability check so that an offline machine fails
  in seconds with a clear message instead of retrying for minutes.
- a path to a ``.pth`` / ``.pt`` / ``.bin`` / ``.safetensors`` state dict (read with
  ``weights_only``; classifier-head keys are dropped, a 3-channel stem is adapted to 1 channel).
- ``"in-domain"``: the backbone trained on the real training images and labels (the reference's
  "medical" variant): call :meth:`Embedder.fit` first. The trained weights are saved in the
  feature cache, keyed by the data hash, backbone, seed and training settings, and reused.

:attr:`Embedder.identity` names the weights (``"random:seed0"``, ``"file:<sha256>"``,
``"hub:<hf id>"``, ``"in-domain:<sha256>"``) for cache keys.
"""

from __future__ import annotations

import difflib
import hashlib
import logging
import os
import socket
import threading
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ensemble.cache import FeatureCache, hash_arrays
from ensemble.data import validate_images, validate_labels
from zoo.device import resolve_device
from zoo.io import atomic_write, sha256_file
from zoo.seeding import derive_seed, torch_generator

__all__ = ["Embedder", "WEIGHT_KINDS", "CHANNEL_POLICIES", "load_state_dict_file", "preprocess"]

log = logging.getLogger(__name__)

WEIGHT_KINDS = ("random", "hub", "in-domain")
CHANNEL_POLICIES = ("replicate", "native")
WEIGHT_SUFFIXES = (".pth", ".pt", ".bin", ".safetensors")
HUB_PROBE_TIMEOUT_S = 3.0
_PROGRESS_MIN = 4096  # show a progress bar from this many images on
_TRUE = {"1", "true", "yes", "on"}


# --------------------------------------------------------------------------- pure helpers

def preprocess(batch: torch.Tensor, *, image_size: int, mean: torch.Tensor, std: torch.Tensor,
               replicate: bool) -> torch.Tensor:
    """uint8 ``(n, H, W)`` / ``(n, H, W, C)`` tensor -> normalised float ``(n, C', S, S)``.

    Scale to [0, 1], resize to ``image_size`` (bilinear, antialiased; skipped when already that
    size), repeat one channel to three when ``replicate``, then ``(x - mean) / std`` per channel.
    """
    x = batch.float().div_(255.0)
    x = x.unsqueeze(1) if x.ndim == 3 else x.permute(0, 3, 1, 2)
    if x.shape[-2:] != (image_size, image_size):
        x = F.interpolate(x, size=(image_size, image_size), mode="bilinear", antialias=True,
                          align_corners=False)
    if replicate and x.shape[1] == 1:
        x = x.expand(-1, 3, -1, -1)
    return (x - mean.view(1, -1, 1, 1)) / std.view(1, -1, 1, 1)


def _unwrap_state_dict(obj: Any, path: Path) -> dict[str, torch.Tensor]:
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
    return _unwrap_state_dict(obj, p)


def _as_prefixes(classifier: Any) -> tuple[str, ...]:
    if not classifier:
        return ()
    return (classifier,) if isinstance(classifier, str) else tuple(classifier)


def _fit_state_dict(model: nn.Module, sd: dict[str, torch.Tensor], *, source: str) -> dict[str, torch.Tensor]:
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


def _hub_offline() -> bool:
    if os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in _TRUE:
        return True
    try:
        from huggingface_hub import constants

        return bool(constants.HF_HUB_OFFLINE)
    except Exception:  # huggingface_hub missing: timm falls back to URLs
        return False


def _reachable(url: str, timeout: float = HUB_PROBE_TIMEOUT_S) -> bool:
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


def _cached_hub_file(cfg: dict) -> str | None:
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


def _feature_dim(model: nn.Module) -> int:
    """Width of the pooled (pre-logits) output of a timm model built with num_classes=0."""
    return int(getattr(model, "head_hidden_size", None) or getattr(model, "num_features", 0) or 0)


# --------------------------------------------------------------------------- the embedder

class Embedder:
    """Embed uint8 images with a timm backbone (see the module docstring).

    Parameters are only stored here; the model is built on first use (``fit`` or ``embed``).
    ``epochs``, ``lr`` and ``fit_batch_size`` configure the ``"in-domain"`` training;
    ``cache_dir`` is the feature-cache root where in-domain weights are kept (default: the
    feature cache's default root).
    """

    def __init__(self, backbone: str = "resnet18", weights: str | os.PathLike = "random",
                 image_size: int = 32, channels: str = "replicate", device: str = "auto",
                 batch_size: int = 256, seed: int = 0, *, epochs: int = 5, lr: float = 1e-3,
                 fit_batch_size: int = 128, cache_dir: str | os.PathLike | None = None) -> None:
        self.backbone = backbone
        self.weights = weights
        self.image_size = image_size
        self.channels = channels
        self.device = device
        self.batch_size = batch_size
        self.seed = seed
        self.epochs = epochs
        self.lr = lr
        self.fit_batch_size = fit_batch_size
        self.cache_dir = cache_dir

    def __repr__(self) -> str:
        return (f"Embedder(backbone={self.backbone!r}, weights={str(self.weights)!r}, "
                f"image_size={self.image_size}, channels={self.channels!r}, device={self.device!r}, "
                f"batch_size={self.batch_size}, seed={self.seed})")

    # ------------------------------------------------------------------ parameters

    @property
    def weights_kind(self) -> str:
        """``"random"``, ``"hub"``, ``"in-domain"`` or ``"file"``."""
        w = self.weights
        if isinstance(w, str) and w in WEIGHT_KINDS:
            return w
        if isinstance(w, (str, os.PathLike)):
            return "file"
        raise ValueError(f"weights must be one of {', '.join(WEIGHT_KINDS)} or a file path, got {w!r}")

    def _check_params(self) -> None:
        import timm

        if not isinstance(self.backbone, str) or not self.backbone:
            raise ValueError(f"backbone must be a timm model name, got {self.backbone!r}")
        arch = self.backbone[len("hf-hub:"):] if self.backbone.startswith("hf-hub:") else self.backbone
        if not self.backbone.startswith("hf-hub:") and not timm.is_model(arch):
            known = timm.list_models()
            close = difflib.get_close_matches(arch, known, n=6, cutoff=0.5)
            hint = ", ".join(close) if close else "resnet18, resnet50, efficientnet_b0, convnext_nano, vit_tiny_patch16_224"
            raise ValueError(
                f"unknown timm backbone {self.backbone!r}; close matches: {hint} "
                f"(see timm.list_models(), {len(known)} models)"
            )
        if isinstance(self.image_size, bool) or not isinstance(self.image_size, (int, np.integer)) \
                or not 8 <= self.image_size <= 1024:
            raise ValueError(f"image_size must be an integer in [8, 1024], got {self.image_size!r}")
        if self.channels not in CHANNEL_POLICIES:
            raise ValueError(f"channels must be one of {', '.join(CHANNEL_POLICIES)}, got {self.channels!r}")
        for name in ("batch_size", "fit_batch_size", "epochs"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
                raise ValueError(f"{name} must be a positive integer, got {v!r}")
        if not (isinstance(self.lr, (int, float)) and self.lr > 0):
            raise ValueError(f"lr must be a positive number, got {self.lr!r}")
        derive_seed(self.seed)  # validates the seed
        kind = self.weights_kind
        if kind == "file":
            p = Path(self.weights).expanduser()
            if not p.is_file():
                raise FileNotFoundError(
                    f"weights file {str(p)!r} not found; weights must be one of "
                    f"{', '.join(WEIGHT_KINDS)} or the path of a state dict ({', '.join(WEIGHT_SUFFIXES)})"
                )

    def _hub_cfg(self) -> dict:
        from timm.models import get_pretrained_cfg

        try:
            cfg = get_pretrained_cfg(self.backbone)
        except RuntimeError as exc:  # e.g. an unknown pretrained tag
            raise ValueError(f"backbone {self.backbone!r}: {exc}") from exc
        cfg = cfg.to_dict() if cfg is not None else {}
        if not (cfg.get("hf_hub_id") or cfg.get("url") or cfg.get("file")):
            raise ValueError(f"timm has no pretrained weights for {self.backbone!r}; use weights='random', "
                             "'in-domain' or a local weights file")
        return cfg

    @property
    def identity(self) -> str:
        """A string naming the weights, used in cache keys."""
        kind = self.weights_kind
        if kind == "random":
            return f"random:seed{int(self.seed)}"
        if kind == "hub":
            if self.backbone.startswith("hf-hub:"):
                return f"hub:{self.backbone[len('hf-hub:'):]}"
            cfg = self._hub_cfg()
            return f"hub:{cfg.get('hf_hub_id') or cfg.get('url') or cfg.get('file')}"
        if kind == "file":
            p = Path(self.weights).expanduser()
            if not p.is_file():
                raise FileNotFoundError(f"weights file {str(p)!r} not found")
            stat = p.stat()
            memo = getattr(self, "_file_digest", None)
            if memo is None or memo[0] != (str(p), stat.st_size, stat.st_mtime_ns):
                memo = ((str(p), stat.st_size, stat.st_mtime_ns), sha256_file(p))
                self._file_digest = memo
            return f"file:{memo[1]}"
        digest = getattr(self, "weights_sha256_", None)
        if digest is None:
            raise ValueError("weights='in-domain' needs training first: call "
                             "embedder.fit(train_images, train_labels) before embedding")
        return f"in-domain:{digest}"

    def cache_key_parts(self) -> dict:
        """What the features depend on besides the images (for :class:`~ensemble.cache.FeatureCache`)."""
        import timm

        return {
            "backbone": self.backbone,
            "weights": self.identity,
            "image_size": int(self.image_size),
            "channels": self.channels,
            "timm_version": timm.__version__,
        }

    # ------------------------------------------------------------------ model building

    def _in_chans(self, images: np.ndarray) -> int:
        if self.channels == "replicate":
            return 3
        return 3 if images.ndim == 4 else 1

    def _create(self, in_chans: int, num_classes: int = 0, **kwargs: Any) -> nn.Module:
        """``timm.create_model`` with a seeded init; the global RNG state is restored afterwards."""
        import timm
        from timm.models import get_pretrained_cfg

        extra: dict[str, Any] = {}
        try:
            cfg = get_pretrained_cfg(self.backbone) if not self.backbone.startswith("hf-hub:") else None
        except RuntimeError:
            cfg = None
        if cfg is not None and cfg.fixed_input_size:
            extra["img_size"] = int(self.image_size)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(derive_seed(self.seed, "embed", "init", self.backbone))
            try:
                try:
                    return timm.create_model(self.backbone, num_classes=num_classes,
                                             in_chans=in_chans, **extra, **kwargs)
                except TypeError:
                    if not extra:
                        raise
                    return timm.create_model(self.backbone, num_classes=num_classes,
                                             in_chans=in_chans, **kwargs)
            except (RuntimeError, ValueError, TypeError, AssertionError, KeyError) as exc:
                raise ValueError(
                    f"timm could not build backbone {self.backbone!r} with in_chans={in_chans}, "
                    f"image_size={self.image_size}: {str(exc).splitlines()[0][:300]}"
                ) from exc

    def _create_hub(self, in_chans: int) -> nn.Module:
        if self.backbone.startswith("hf-hub:"):
            cfg = {"hf_hub_id": self.backbone[len("hf-hub:"):]}
        else:
            cfg = self._hub_cfg()
        cached = _cached_hub_file(cfg)
        name = cfg.get("hf_hub_id") or cfg.get("url")
        if cached is not None:
            log.info("using cached hub weights %s", cached)
            return self._create(in_chans, pretrained=True, pretrained_cfg_overlay={"file": cached})
        fix = ("use weights='random', weights='in-domain' (after fit) or a local weights file "
               "(weights=PATH.pth/.safetensors), or download the weights once while online")
        if _hub_offline():
            raise ValueError(f"hub weights for {self.backbone!r} ({name}) are not in the local cache and "
                             f"the Hugging Face hub is offline (HF_HUB_OFFLINE); {fix}")
        endpoint = (os.environ.get("HF_ENDPOINT") or "https://huggingface.co") if cfg.get("hf_hub_id") \
            else cfg.get("url", "")
        if not _reachable(endpoint):
            raise ValueError(f"hub weights for {self.backbone!r} ({name}) are not cached and "
                             f"{urlparse(endpoint).hostname or endpoint} cannot be reached "
                             f"(no network?); {fix}")
        try:
            return self._create(in_chans, pretrained=True)
        except ValueError:
            raise
        except Exception as exc:
            raise ValueError(f"downloading hub weights for {self.backbone!r} failed "
                             f"({type(exc).__name__}: {exc}); {fix}") from exc

    def _build(self, in_chans: int) -> None:
        """Build the feature model for ``in_chans`` input channels (non-in-domain weights)."""
        self._check_params()
        kind = self.weights_kind
        t0 = time.perf_counter()
        if kind == "hub":
            model = self._create_hub(in_chans)
        else:
            model = self._create(in_chans)
            if kind == "file":
                path = Path(self.weights).expanduser()
                sd = _fit_state_dict(model, load_state_dict_file(path), source=f"weights file {str(path)!r}")
                model.load_state_dict(sd, strict=False)
                self.identity  # noqa: B018  (hash the file now: its digest keys the cache)
        self._set_model(model, in_chans)
        log.info("built %s (%s, in_chans=%d, %d features) in %.1f s", self.backbone, self.identity,
                 in_chans, self.num_features_, time.perf_counter() - t0)

    def _set_model(self, model: nn.Module, in_chans: int) -> None:
        from timm.data import resolve_data_config

        self.device_ = resolve_device(self.device)
        config = resolve_data_config({}, model=model)
        mean = np.asarray(config["mean"], dtype=np.float32)
        std = np.asarray(config["std"], dtype=np.float32)
        if in_chans == 1:
            mean, std = mean.mean(keepdims=True), std.mean(keepdims=True)
        self.mean_ = torch.as_tensor(mean, device=self.device_)
        self.std_ = torch.as_tensor(std, device=self.device_)
        self.in_chans_ = in_chans
        self.model_ = model.to(self.device_).eval()
        self.num_features_ = _feature_dim(model)

    def _ensure_model(self, images: np.ndarray) -> None:
        in_chans = self._in_chans(images)
        if getattr(self, "model_", None) is None:
            if self.weights_kind == "in-domain":
                raise ValueError("weights='in-domain' needs training first: call "
                                 "embedder.fit(train_images, train_labels) before embed()")
            self._build(in_chans)
        elif in_chans != self.in_chans_:
            raise ValueError(
                f"this embedder was built for {self.in_chans_}-channel input (channels='native'), "
                f"got images of shape {images.shape[1:]}; use a separate Embedder per image type"
            )

    def _batches(self, images: np.ndarray, batch_size: int) -> Iterator[torch.Tensor]:
        for start in range(0, len(images), batch_size):
            yield torch.from_numpy(np.ascontiguousarray(images[start:start + batch_size])).to(
                self.device_, non_blocking=True)

    def _prep(self, batch: torch.Tensor) -> torch.Tensor:
        return preprocess(batch, image_size=int(self.image_size), mean=self.mean_, std=self.std_,
                          replicate=self.in_chans_ == 3)

    # ------------------------------------------------------------------ public API

    def fit(self, images: np.ndarray, labels: np.ndarray) -> Embedder:
        """Train the backbone on labelled real images (``weights="in-domain"``); return self.

        For the other weight kinds nothing is learned: the model is built and ``self`` returned,
        so ``Embedder(...).fit(x, y)`` works whatever the weights. The trained weights are cached
        (``<cache>/models/<key>.safetensors``) and reused for the same data, backbone and seed.
        """
        images = validate_images(images)
        if self.weights_kind != "in-domain":
            self._ensure_model(images)
            return self
        self._check_params()
        labels = validate_labels(labels, num_classes=np.iinfo(np.int64).max, n=len(images))
        num_classes = int(labels.max()) + 1
        if num_classes < 2:
            raise ValueError("in-domain training needs labels of at least 2 classes, got only class 0")
        in_chans = self._in_chans(images)
        cache = FeatureCache(self.cache_dir)
        key = cache.key(kind="in-domain-backbone", backbone=self.backbone, image_size=int(self.image_size),
                        channels=self.channels, in_chans=in_chans, seed=int(self.seed),
                        epochs=int(self.epochs), lr=float(self.lr), fit_batch_size=int(self.fit_batch_size),
                        num_classes=num_classes, data=hash_arrays(images, labels),
                        timm_version=__import__("timm").__version__)
        path = cache.models_dir / f"{self.backbone.replace('/', '_')}-{key[:24]}.safetensors"
        model = self._create(in_chans, num_classes=num_classes)
        self._set_model(model, in_chans)
        if path.is_file():
            from safetensors.torch import load_file

            try:
                model.load_state_dict(load_file(str(path), device="cpu"))
                log.info("in-domain %s: reusing trained weights %s", self.backbone, path)
            except Exception as exc:
                log.warning("cached in-domain weights %s unreadable (%s); training again", path, exc)
                path.unlink(missing_ok=True)
        if not path.is_file():
            self._train(model, images, labels)
            from safetensors.torch import save_file

            state = {k: v.detach().cpu().contiguous().clone() for k, v in model.state_dict().items()}
            atomic_write(path, lambda p: save_file(state, str(p), metadata={
                "backbone": self.backbone, "key": key, "format": "gan-ensemble-in-domain/1"}))
            log.info("in-domain %s: saved trained weights to %s", self.backbone, path)
        self.weights_path_ = path
        # Hash the tensors, not the file: safetensors may order its metadata differently each save.
        self.weights_sha256_ = state_digest(model.state_dict())
        self.num_classes_ = num_classes
        model.reset_classifier(0)
        self.model_ = model.to(self.device_).eval()
        self.num_features_ = _feature_dim(model)
        return self

    def _train(self, model: nn.Module, images: np.ndarray, labels: np.ndarray) -> None:
        """A few seeded epochs of Adam + cross-entropy on the preprocessed images."""
        from tqdm.auto import tqdm

        model.train()
        opt = torch.optim.Adam(model.parameters(), lr=float(self.lr))
        shuffle = torch_generator(derive_seed(self.seed, "embed", "in-domain", "shuffle"))
        y_all = torch.from_numpy(labels)
        n = len(images)
        bs = min(int(self.fit_batch_size), n)
        steps = int(self.epochs) * ((n + bs - 1) // bs)
        devices = [self.device_.index or 0] if self.device_.type == "cuda" else []
        with torch.random.fork_rng(devices=devices):
            torch.manual_seed(derive_seed(self.seed, "embed", "in-domain", "train"))
            bar = tqdm(total=steps, desc=f"in-domain {self.backbone}", unit="step", leave=False)
            try:
                for epoch in range(int(self.epochs)):
                    perm = torch.randperm(n, generator=shuffle)
                    correct = seen = 0
                    total_loss = 0.0
                    for start in range(0, n, bs):
                        idx = perm[start:start + bs]
                        if len(idx) < 2 and n > 1:  # BatchNorm cannot train on one sample
                            continue
                        x = self._prep(torch.from_numpy(images[idx.numpy()]).to(self.device_))
                        y = y_all[idx].to(self.device_)
                        logits = model(x)
                        loss = F.cross_entropy(logits, y)
                        opt.zero_grad(set_to_none=True)
                        loss.backward()
                        opt.step()
                        total_loss += float(loss.detach()) * len(idx)
                        correct += int((logits.argmax(1) == y).sum())
                        seen += len(idx)
                        bar.update(1)
                    log.info("in-domain %s epoch %d/%d: loss %.4f, train accuracy %.3f", self.backbone,
                             epoch + 1, self.epochs, total_loss / max(seen, 1), correct / max(seen, 1))
            finally:
                bar.close()
        model.eval()

    def embed(self, images: np.ndarray, *, progress: bool | None = None) -> np.ndarray:
        """float32 ``(n, D)`` features of uint8 images ``(n, H, W)`` or ``(n, H, W, 3)``.

        ``progress``: a tqdm bar (None: only for large inputs).
        """
        from tqdm.auto import tqdm

        images = validate_images(images)
        self._ensure_model(images)
        bs = int(self.batch_size)
        n = len(images)
        show = n >= _PROGRESS_MIN if progress is None else bool(progress)
        out: np.ndarray | None = None
        with torch.inference_mode(), \
                tqdm(total=n, desc=f"embed {self.backbone}", unit="img", leave=False,
                     **({} if show else {"disable": True})) as bar:
            start = 0
            for batch in self._batches(images, bs):
                try:
                    feats = self.model_(self._prep(batch))
                except RuntimeError as exc:  # e.g. an input too small for the network's strides
                    first = str(exc).strip().splitlines()[0][:300] if str(exc).strip() else type(exc).__name__
                    hint = ("lower batch_size" if "out of memory" in first.lower() else
                            "try a larger image_size (e.g. 64) or another backbone")
                    raise ValueError(f"backbone {self.backbone!r} failed on {self.image_size}px input "
                                     f"({first}); {hint}") from exc
                if feats.ndim > 2:
                    feats = feats.flatten(1)
                feats = feats.float().cpu().numpy()
                if out is None:
                    out = np.empty((n, feats.shape[1]), dtype=np.float32)
                out[start:start + len(feats)] = feats
                start += len(feats)
                bar.update(len(feats))
        assert out is not None
        if not np.isfinite(out).all():
            raise ValueError(f"backbone {self.backbone!r} ({self.identity}) produced NaN/inf features; "
                             "check the weights file or try another backbone")
        return out

    @property
    def dim(self) -> int | None:
        """Feature dimension once the model is built (None before)."""
        return getattr(self, "num_features_", None)
