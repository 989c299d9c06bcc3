"""Checks on image and label arrays shared by training, sampling grids and the data loaders."""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["TRAINING_SIZES", "check_image_size", "check_images", "check_training_images",
           "check_labels"]

#: Image sides (px) the zoo's families train at: every net derives its depth from the side
#: (:func:`zoo.nets.blocks.resolution_plan`: 28 and 32 from a 7 / 8 px map in two 2x stages, 64 in three).
TRAINING_SIZES = (28, 32, 64)


def _sizes_text(unit: str) -> str:
    """``"28, 32 or 64 px"`` (``unit="px"``) or ``"28x28, 32x32 or 64x64"`` (``unit="x"``)."""
    names = [f"{s}x{s}" if unit == "x" else str(s) for s in TRAINING_SIZES]
    text = ", ".join(names[:-1]) + f" or {names[-1]}"
    return text + (" px" if unit == "px" else "")


def check_image_size(image_size: Any) -> int:
    """``image_size`` if the zoo's families train at it (:data:`TRAINING_SIZES`), else a ValueError."""
    if isinstance(image_size, bool) or image_size not in TRAINING_SIZES:
        raise ValueError(f"image_size {image_size!r} is not supported; the zoo's families train at "
                         f"{_sizes_text('px')} (resize the images to one of these)")
    return int(image_size)


def check_images(images: np.ndarray, name: str = "images") -> np.ndarray:
    """Check that ``images`` is uint8 ``(N, H, W)`` or ``(N, H, W, 3)`` (a trailing single channel
    is dropped) and non-empty; return it, or raise a ValueError saying how to fix it."""
    if not isinstance(images, np.ndarray):
        raise ValueError(f"{name} must be a numpy array, got {type(images).__name__}")
    if images.dtype != np.uint8:
        raise ValueError(
            f"{name} must be uint8 in [0, 255], got dtype {images.dtype}; convert with "
            "np.clip(x * 255, 0, 255).astype(np.uint8) for float images in [0, 1], or "
            "np.clip(np.round((x + 1) * 127.5), 0, 255).astype(np.uint8) for x in [-1, 1]"
        )
    if images.ndim == 4 and images.shape[-1] == 1:
        images = images[..., 0]
    if images.ndim not in (3, 4) or (images.ndim == 4 and images.shape[-1] != 3):
        raise ValueError(
            f"{name} must have shape (N, H, W) or (N, H, W, 3), got {images.shape}; "
            "channels go last"
        )
    if len(images) == 0:
        raise ValueError(f"{name} is empty; pass at least one image")
    return images


def check_training_images(images: Any) -> np.ndarray:
    """:func:`check_images`, and square at one of :data:`TRAINING_SIZES` (28, 32 or 64 px)."""
    images = check_images(images)
    h, w = images.shape[1:3]
    if h != w or h not in TRAINING_SIZES:
        raise ValueError(f"images are {h}x{w}, but the zoo trains on {_sizes_text('x')} images; "
                         "resize them first (e.g. MedMNIST at size 28 or 64)")
    return images


def check_labels(labels: Any, n: int, num_classes: int | None) -> tuple[np.ndarray, int]:
    """Check ``n`` integer class labels (shape ``(N,)`` or ``(N, 1)``) against ``num_classes``.

    Returns the labels as int64 ``(N,)`` and the number of classes (``max(labels) + 1`` when
    ``num_classes`` is None); raises a ValueError saying how to fix bad labels.
    """
    labels = np.asarray(labels)
    if labels.ndim == 2 and labels.shape[1] == 1:
        labels = labels[:, 0]
    if labels.ndim != 1:
        raise ValueError(f"labels must have shape (N,) or (N, 1), got {labels.shape}")
    if len(labels) != n:
        raise ValueError(f"labels has {len(labels)} entries but there are {n} images; pass one "
                         "label per image")
    if not np.issubdtype(labels.dtype, np.integer):
        if not (np.issubdtype(labels.dtype, np.floating) and np.all(np.mod(labels, 1) == 0)):
            raise ValueError(f"labels must be integers, got dtype {labels.dtype}")
    labels = labels.astype(np.int64)
    if labels.min() < 0:
        raise ValueError(f"labels out of range: found {int(labels.min())}; labels must be >= 0")
    if num_classes is None:
        num_classes = int(labels.max()) + 1
    elif isinstance(num_classes, bool) or not isinstance(num_classes, (int, np.integer)) \
            or num_classes < 1:
        raise ValueError(f"num_classes must be a positive integer, got {num_classes!r}")
    num_classes = int(num_classes)
    if labels.max() >= num_classes:
        raise ValueError(f"labels out of range: found {int(labels.max())}, expected 0 <= label < "
                         f"{num_classes}; pass num_classes={int(labels.max()) + 1} or fix the labels")
    return labels, num_classes

