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
``"hub:<hf id>"``, ``"in-domain:<sha256>"``) for cache keys. The weight sources live in
:mod:`ensemble.features.weights`, the in-domain training in :mod:`ensemble.features.indomain`.

The embedder follows the scikit-learn contract: the constructor only stores its parameters
(``get_params``/``set_params``/``sklearn.base.clone`` work), learned state ends in ``_``.
:func:`embedder_params` / :func:`build_embedder` carry an embedder to another process or machine.
"""

from __future__ import annotations

import difflib
import logging
import os
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.base import BaseEstimator
from torch import nn

from ensemble.data import validate_images, validate_labels
from ensemble.features.indomain import fit_in_domain
from ensemble.features.weights import (
    HUB_HINT,
    WEIGHT_KINDS,
    WEIGHT_SUFFIXES,
    fit_state_dict,
    hub_config,
    load_state_dict_file,
    resolve_hub_weights,
    resolve_in_domain_weights,
    state_digest,
    weights_kind,
)
from zoo.device import resolve_device
from zoo.io import sha256_file
from zoo.seeding import derive_seed

__all__ = ["Embedder", "CHANNEL_POLICIES", "EMBEDDER_PARAMS", "preprocess", "embedder_params",
           "build_embedder"]

log = logging.getLogger(__name__)

CHANNEL_POLICIES = ("replicate", "native")
_PROGRESS_MIN = 4096  # show a progress bar from this many images on


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



def _feature_dim(model: nn.Module) -> int:
    """Width of the pooled (pre-logits) output of a timm model built with num_classes=0."""
    return int(getattr(model, "head_hidden_size", None) or getattr(model, "num_features", 0) or 0)


# --------------------------------------------------------------------------- the embedder

class Embedder(BaseEstimator):
    """Embed uint8 images with a timm backbone (see the module docstring).

    Parameters are only stored here; the model is built on first use (``fit`` or ``embed``).
    ``epochs``, ``lr`` and ``fit_batch_size`` configure the ``"in-domain"`` training;
    ``cache_dir`` is the feature-cache root where in-domain weights are kept (default: the
    feature cache's default root). ``get_params``/``set_params`` come from this signature
    (scikit-learn), so ``sklearn.base.clone(embedder)`` gives an unfitted copy.
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
        return weights_kind(self.weights)

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

    @property
    def identity(self) -> str:
        """A string naming the weights, used in cache keys."""
        kind = self.weights_kind
        if kind == "random":
            return f"random:seed{int(self.seed)}"
        if kind == "hub":
            if self.backbone.startswith("hf-hub:"):
                return f"hub:{self.backbone[len('hf-hub:'):]}"
            cfg = hub_config(self.backbone)
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
        """What the features depend on besides the images (for :class:`~ensemble.features.cache.FeatureCache`)."""
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
        cached = resolve_hub_weights(self.backbone)  # raises at once when offline / unreachable
        if cached is not None:
            log.info("using cached hub weights %s", cached)
            return self._create(in_chans, pretrained=True, pretrained_cfg_overlay={"file": cached})
        try:
            return self._create(in_chans, pretrained=True)
        except ValueError:
            raise
        except Exception as exc:
            raise ValueError(f"downloading hub weights for {self.backbone!r} failed "
                             f"({type(exc).__name__}: {exc}); {HUB_HINT}") from exc

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
                sd = fit_state_dict(model, load_state_dict_file(path), source=f"weights file {str(path)!r}")
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
        model = self._create(in_chans, num_classes=num_classes)
        self._set_model(model, in_chans)
        path = fit_in_domain(model, images, labels, prep=self._prep, device=self.device_,
                             backbone=self.backbone, image_size=int(self.image_size),
                             channels=self.channels, in_chans=in_chans, seed=int(self.seed),
                             epochs=int(self.epochs), lr=float(self.lr),
                             fit_batch_size=int(self.fit_batch_size), num_classes=num_classes,
                             cache_dir=self.cache_dir)
        self.weights_path_ = path
        # Hash the tensors, not the file: safetensors may order its metadata differently each save.
        self.weights_sha256_ = state_digest(model.state_dict())
        self.num_classes_ = num_classes
        model.reset_classifier(0)
        self.model_ = model.to(self.device_).eval()
        self.num_features_ = _feature_dim(model)
        return self

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


#: The constructor parameters that rebuild an :class:`Embedder` (its ``get_params()`` keys).
EMBEDDER_PARAMS = ("backbone", "weights", "image_size", "channels", "device", "batch_size", "seed",
                   "epochs", "lr", "fit_batch_size", "cache_dir")


def embedder_params(embedder: Embedder) -> tuple[dict, str | None]:
    """(constructor parameters, in-domain weights file or None) that rebuild ``embedder`` elsewhere."""
    params = {}
    for k, v in embedder.get_params(deep=False).items():
        params[k] = os.fspath(v) if isinstance(v, os.PathLike) else v
    weights_file = None
    if embedder.weights_kind == "in-domain":
        path = getattr(embedder, "weights_path_", None)
        if path is None:
            raise ValueError("weights='in-domain' needs training first: call "
                             "embedder.fit(train_images, train_labels) before scoring")
        weights_file = os.fspath(path)
    return params, weights_file


def build_embedder(params: Mapping[str, Any], in_domain_weights: str | None = None) -> Embedder:
    """Rebuild an :class:`Embedder` from :func:`embedder_params` (any machine).

    For ``weights="in-domain"`` the trained backbone is read from ``in_domain_weights`` (in the
    feature cache, a shared folder on a cluster): the same weights, so the same features.
    """
    params = dict(params)
    if params.get("weights") == "in-domain":
        params["weights"] = resolve_in_domain_weights(in_domain_weights)
    return Embedder(**params)
