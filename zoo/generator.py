"""The generator protocol and its three implementations (native torch, TorchScript, callable).

Every generator in the zoo, whatever made it, is used through one small interface:
``num_classes``, ``image_shape`` and ``sample(n, labels=None, seed=0) -> uint8 images``. The same
seed gives the same bytes: the latent codes are drawn on the CPU from a seeded ``torch.Generator``
for all ``n`` images at once and only then split into batches and moved to the device, so neither
the batch size nor the device changes which codes an image gets. (Different hardware may still
round a pixel differently; on one machine the bytes are identical.)
"""

from __future__ import annotations

import importlib
import logging
import os
import warnings
from abc import ABC, abstractmethod
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np
import torch
from torch import nn

from zoo.arrays import check_images
from zoo.device import resolve_device
from zoo.seeding import derive_seed, torch_generator

__all__ = [
    "Generator",
    "TorchGenerator",
    "TorchScriptGenerator",
    "CallableGenerator",
    "normalize_image_shape",
    "resolve_labels",
    "check_n",
    "parse_ref",
    "OUTPUT_ACTIVATIONS",
    "OUTPUT_RANGE_WARN",
    "check_forward_signature",
]

log = logging.getLogger(__name__)

OUTPUT_ACTIVATIONS = ("tanh", "none")
#: Outputs whose magnitude exceeds this are warned about (images in [-1, 1] are expected; an
#: untanh'ed model overshoots a little, a model that outputs [0, 255] by far).
OUTPUT_RANGE_WARN = 2.0


@runtime_checkable
class Generator(Protocol):
    """What every zoo member offers: class-conditional sampling of uint8 images.

    ``image_shape`` is ``(H, W)`` for grayscale or ``(H, W, 3)`` for colour. ``sample`` returns
    ``uint8`` of shape ``(n, *image_shape)``; ``labels=None`` draws labels uniformly with the seed.
    """

    num_classes: int
    image_shape: tuple[int, ...]

    def sample(self, n: int, labels: Sequence[int] | np.ndarray | None = None,
               seed: int = 0) -> np.ndarray: ...


# --------------------------------------------------------------------------- validation helpers


def _is_int(x: object) -> bool:
    return isinstance(x, (int, np.integer)) and not isinstance(x, (bool, np.bool_))


def _positive_int(value: object, what: str) -> int:
    if not _is_int(value) or int(value) < 1:
        raise ValueError(f"{what} must be a positive integer, got {value!r}")
    return int(value)


def check_n(n: object) -> int:
    """Validate a number of images to sample."""
    if not _is_int(n):
        raise ValueError(f"n (number of images) must be an integer, got {n!r} of type {type(n).__name__}")
    if int(n) <= 0:
        raise ValueError(f"n (number of images) must be at least 1, got {n}")
    return int(n)


def normalize_image_shape(shape: object) -> tuple[int, ...]:
    """``(H, W)`` or ``(H, W, 3)`` as a tuple of ints; ``(H, W, 1)`` becomes ``(H, W)``."""
    if isinstance(shape, (str, bytes)) or not isinstance(shape, (Sequence, np.ndarray)):
        raise ValueError(f"image_shape must be (H, W) or (H, W, 3), got {shape!r}")
    dims = list(shape)
    if not all(_is_int(d) and int(d) > 0 for d in dims):
        raise ValueError(f"image_shape must hold positive integers, got {shape!r}; e.g. (28, 28)")
    dims = [int(d) for d in dims]
    if len(dims) == 3 and dims[2] == 1:
        dims = dims[:2]
    if len(dims) not in (2, 3) or (len(dims) == 3 and dims[2] != 3):
        raise ValueError(
            f"image_shape must be (H, W) for grayscale or (H, W, 3) for colour, got {tuple(dims)}"
        )
    return tuple(dims)


def resolve_labels(n: int, labels: Sequence[int] | np.ndarray | None, num_classes: int,
                   seed: int) -> np.ndarray:
    """The labels of ``n`` samples: validated int64 ``(n,)``; None draws them uniformly with the seed."""
    n = check_n(n)
    if labels is None:
        rng = np.random.default_rng(derive_seed(seed, "labels"))
        return rng.integers(0, num_classes, size=n, dtype=np.int64)
    arr = np.asarray(labels)
    if arr.ndim == 2 and arr.shape[1] == 1:
        arr = arr[:, 0]
    if arr.ndim != 1:
        raise ValueError(f"labels must have shape (n,), got {arr.shape}")
    if len(arr) != n:
        raise ValueError(f"labels has {len(arr)} entries but n={n}; pass one label per image")
    if arr.dtype == bool or not (np.issubdtype(arr.dtype, np.integer)
                                 or (np.issubdtype(arr.dtype, np.floating)
                                     and np.all(np.mod(arr, 1) == 0))):
        raise ValueError(f"labels must be integers, got dtype {arr.dtype}")
    arr = arr.astype(np.int64)
    bad = (arr < 0) | (arr >= num_classes)
    if bad.any():
        raise ValueError(
            f"label {int(arr[bad][0])} out of range: this generator has {num_classes} classes "
            f"(labels 0..{num_classes - 1})"
        )
    return arr


def _check_seed(seed: object) -> int:
    if not _is_int(seed):
        raise ValueError(f"seed must be an integer, got {seed!r}; pass e.g. seed=0")
    return int(seed)


# --------------------------------------------------------------------------- torch-based sampling


class _Sampler(ABC):
    """What the three generator classes share: :meth:`sample` checks ``n`` and ``seed`` and draws
    the labels (so every generator draws them the same way), then :meth:`_sample` makes the images."""

    num_classes: int
    image_shape: tuple[int, ...]
    #: The catalog name, set by ``Catalog.load`` so that errors and warnings name the generator.
    name: str | None = None

    def sample(self, n: int, labels: Sequence[int] | np.ndarray | None = None,
               seed: int = 0) -> np.ndarray:
        """``n`` uint8 images ``(n, *image_shape)``; labels None -> uniform labels from the seed."""
        n = check_n(n)
        seed = _check_seed(seed)
        return self._sample(n, resolve_labels(n, labels, self.num_classes, seed), seed)

    @abstractmethod
    def _sample(self, n: int, labels: np.ndarray, seed: int) -> np.ndarray:
        """``n`` uint8 images for the checked int64 ``labels`` ``(n,)`` and ``seed``."""


class _ModuleSampler(_Sampler):
    """Shared sampling loop for modules mapping ``(z, labels)`` to images in [-1, 1]."""

    module: Any
    latent_dim: int
    device: torch.device
    batch_size: int

    @property
    def channels(self) -> int:
        return 3 if len(self.image_shape) == 3 else 1

    @property
    def label(self) -> str:
        """How errors and warnings name this generator (catalog name, else file, else repr)."""
        if self.name:
            return f"generator {self.name!r}"
        path = getattr(self, "path", None) or getattr(self, "meta", {}).get("path")
        return f"generator {str(path)!r}" if path else repr(self)

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(latent_dim={self.latent_dim}, num_classes={self.num_classes}, "
                f"image_shape={self.image_shape}, device={str(self.device)!r})")

    def _sample(self, n: int, labels: np.ndarray, seed: int) -> np.ndarray:
        y = torch.from_numpy(labels)
        # All codes at once on the CPU: batch size and device do not change which code an image gets.
        z = torch.randn(n, self.latent_dim, generator=torch_generator(derive_seed(seed, "z")))
        out = np.empty((n, *self.image_shape), dtype=np.uint8)
        h, w = self.image_shape[:2]
        peak = 0.0
        with torch.inference_mode():
            for start in range(0, n, self.batch_size):
                stop = min(start + self.batch_size, n)
                zb = z[start:stop].to(self.device)
                yb = y[start:stop].to(self.device)
                try:
                    x = self._forward(zb, yb)
                except RuntimeError as exc:  # TorchScript and shape errors carry long C++ traces
                    first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
                    raise ValueError(
                        f"{self.label} failed on z of shape {tuple(zb.shape)} and labels of shape "
                        f"{tuple(yb.shape)} ({first}); check latent_dim, num_classes and "
                        "image_shape against the model"
                    ) from exc
                if not isinstance(x, torch.Tensor):
                    raise ValueError(
                        f"{self!r} returned {type(x).__name__}, expected a float tensor (n, C, H, W)"
                    )
                if tuple(x.shape) != (stop - start, self.channels, h, w):
                    raise ValueError(
                        f"generator output has shape {tuple(x.shape)}, expected "
                        f"{(stop - start, self.channels, h, w)} for image_shape {self.image_shape}; "
                        "check image_shape (and latent_dim) against the model"
                    )
                x = x.float()
                if not torch.isfinite(x).all():
                    raise ValueError(
                        f"{self.label} produced NaN or infinite values (a diverged model?); "
                        "remove it from the zoo or pick another snapshot"
                    )
                peak = max(peak, float(x.abs().max()))
                # Clamp (needed when output_activation is "none") and map [-1, 1] -> {0..255}.
                x = torch.round((x.clamp(-1.0, 1.0) + 1.0) * 127.5).to(torch.uint8)
                x = x.permute(0, 2, 3, 1).cpu().numpy()
                out[start:stop] = x[..., 0] if self.channels == 1 else x
        if peak > OUTPUT_RANGE_WARN:
            log.warning(
                "%s outputs values up to %.3g, far outside [-1, 1]: they are clamped, so its images "
                "saturate. Is its output in [0, 255] or unnormalised? Map it to [-1, 1] (e.g. end "
                "the model with tanh)", self.label, peak)
        return out

    def _forward(self, z: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return self.module(z, labels)


class TorchGenerator(_ModuleSampler):
    """A ``torch.nn.Module`` generator ``forward(z (n, latent_dim), labels (n,)) -> (n, C, H, W)``.

    The module is put in eval mode on ``device``; sampling runs under ``torch.inference_mode``.
    ``meta`` carries provenance (architecture, config, iteration, path) when loaded from a checkpoint.
    """

    def __init__(self, module: nn.Module, *, latent_dim: int, num_classes: int,
                 image_shape: Sequence[int], device: str | torch.device = "auto",
                 batch_size: int = 256, output_activation: str = "tanh",
                 meta: dict | None = None) -> None:
        if not isinstance(module, nn.Module):
            raise ValueError(f"module must be a torch.nn.Module, got {type(module).__name__}")
        if output_activation not in OUTPUT_ACTIVATIONS:
            raise ValueError(
                f"output_activation must be one of {OUTPUT_ACTIVATIONS}, got {output_activation!r}"
            )
        self.latent_dim = _positive_int(latent_dim, "latent_dim")
        self.num_classes = _positive_int(num_classes, "num_classes")
        self.image_shape = normalize_image_shape(image_shape)
        self.batch_size = _positive_int(batch_size, "batch_size")
        self.output_activation = output_activation
        self.device = resolve_device(device)
        self.module = module.to(self.device).eval()
        self.meta = dict(meta or {})


class TorchScriptGenerator(_ModuleSampler):
    """A TorchScript file (``torch.jit.save``) mapping ``(z, labels)`` to images in [-1, 1]."""

    def __init__(self, path: str | os.PathLike, *, latent_dim: int, num_classes: int,
                 image_shape: Sequence[int], device: str | torch.device = "auto",
                 batch_size: int = 256) -> None:
        self.path = Path(path)
        self.latent_dim = _positive_int(latent_dim, "latent_dim")
        self.num_classes = _positive_int(num_classes, "num_classes")
        self.image_shape = normalize_image_shape(image_shape)
        self.batch_size = _positive_int(batch_size, "batch_size")
        self.device = resolve_device(device)
        if not self.path.is_file():
            raise FileNotFoundError(
                f"TorchScript file {str(self.path)!r} not found; pass the path of a module saved "
                "with torch.jit.save"
            )
        try:
            with warnings.catch_warnings():  # torch >= 2.9 flags TorchScript as deprecated
                warnings.simplefilter("ignore", FutureWarning)
                module = torch.jit.load(str(self.path), map_location=self.device)
        except Exception as exc:  # torch raises RuntimeError/ValueError with C++ traces here
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ValueError(
                f"{str(self.path)!r} is not a readable TorchScript file ({first}); "
                "export the generator with torch.jit.save(torch.jit.script(G), path)"
            ) from exc
        check_forward_signature(module, self.path)
        self.module = module.eval()


def check_forward_signature(module: Any, path: str | os.PathLike) -> None:
    """Refuse a TorchScript module whose ``forward`` does not take ``(z, labels)``."""
    try:
        schema = module.forward.schema
    except (AttributeError, RuntimeError) as exc:
        raise ValueError(f"TorchScript file {str(path)!r} has no scripted forward method; export a "
                         "module whose forward(z, labels) returns images") from exc
    args = [a for a in schema.arguments if a.name != "self"]
    required = [a for a in args if not a.has_default_value()]
    if len(args) < 2 or len(required) > 2:
        sig = ", ".join(a.name for a in args) or "nothing"
        raise ValueError(
            f"TorchScript file {str(path)!r}: forward takes ({sig}), but a generator's forward must "
            "take (z, labels): latent codes (n, latent_dim) and int64 class labels (n,); wrap the "
            "model in a module with forward(self, z, labels) and script that"
        )


# --------------------------------------------------------------------------- callable generators


def parse_ref(ref: object) -> tuple[str, str]:
    """Split ``"package.module:function"`` into its module and attribute path."""
    if not isinstance(ref, str) or ref.count(":") != 1:
        raise ValueError(
            f"callable reference must look like 'package.module:function', got {ref!r}"
        )
    module, attr = ref.split(":")
    if not module or not attr or not all(part.isidentifier() for part in module.split(".") + attr.split(".")):
        raise ValueError(
            f"callable reference must look like 'package.module:function', got {ref!r}"
        )
    return module, attr


def _import_ref(ref: str) -> Any:
    module_name, attr = parse_ref(ref)
    try:
        obj: Any = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        raise ValueError(
            f"cannot import module {module_name!r} of {ref!r} ({exc}); install it or add its "
            "folder to PYTHONPATH"
        ) from exc
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise ValueError(f"module {module_name!r} has no attribute {attr!r} (from {ref!r})")
        obj = getattr(obj, part)
    if not callable(obj):
        raise ValueError(f"{ref!r} is not callable; it must be a factory returning a generator")
    return obj


class CallableGenerator(_Sampler):
    """A generator built by a user factory ``"module:function"`` called with ``**kwargs``.

    The factory returns any object with ``sample(n, labels=None, seed=0)``. This wrapper draws the
    labels itself (so every generator draws them the same way), passes them explicitly, and checks
    that the object returns ``uint8`` images of shape ``(n, *image_shape)``.
    """

    def __init__(self, ref: str, *, num_classes: int, image_shape: Sequence[int], **kwargs: Any) -> None:
        self.ref = ref
        self.num_classes = _positive_int(num_classes, "num_classes")
        self.image_shape = normalize_image_shape(image_shape)
        self.kwargs = dict(kwargs)
        factory = _import_ref(ref)
        try:
            obj = factory(**kwargs)
        except TypeError as exc:
            raise ValueError(f"calling {ref}(**{kwargs!r}) failed: {exc}; check the keyword arguments") from exc
        if not callable(getattr(obj, "sample", None)):
            raise ValueError(
                f"{ref} returned {type(obj).__name__}, which has no sample(n, labels=None, seed=0) method"
            )
        for attr, want in (("num_classes", self.num_classes), ("image_shape", self.image_shape)):
            have = getattr(obj, attr, None)
            if have is None:
                continue
            have_norm = normalize_image_shape(have) if attr == "image_shape" else have
            if have_norm != want:
                raise ValueError(
                    f"{ref} builds a generator with {attr}={have!r}, but {attr}={want!r} was given; "
                    "register it with the generator's own value"
                )
        self.obj = obj

    def __repr__(self) -> str:
        return (f"CallableGenerator({self.ref!r}, num_classes={self.num_classes}, "
                f"image_shape={self.image_shape})")

    def _sample(self, n: int, labels: np.ndarray, seed: int) -> np.ndarray:
        """The wrapped object's images, checked for type, dtype and shape."""
        out = self.obj.sample(n, labels=labels, seed=seed)
        if isinstance(out, torch.Tensor):
            out = out.detach().cpu().numpy()
        out = check_images(out, f"the output of {self.ref} sample()")
        if out.shape != (n, *self.image_shape):
            raise ValueError(
                f"{self.ref} sample({n}) returned shape {out.shape}, expected {(n, *self.image_shape)}"
            )
        return np.ascontiguousarray(out)
