"""Checks on image arrays shared by training, sampling grids and the data loaders."""

from __future__ import annotations

import numpy as np

__all__ = ["check_images"]


def check_images(images: np.ndarray, name: str = "images") -> np.ndarray:
    """Check that ``images`` is uint8 ``(N, H, W)`` or ``(N, H, W, 3)`` (a trailing single channel
    is dropped) and non-empty; return it, or raise a ValueError saying how to fix it."""
    if not isinstance(images, np.ndarray):
        raise ValueError(f"{name} must be a numpy array, got {type(images).__name__}")
    if images.dtype != np.uint8:
        raise ValueError(
            f"{name} must be uint8 in [0, 255], got dtype {images.dtype}; convert with "
            "np.clip(x * 255, 0, 255).astype(np.uint8) for float images in [0, 1]"
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
