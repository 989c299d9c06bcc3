"""Sample grids: many small images tiled into one picture (a PNG) for a quick look at a generator.

With ``labels``, each class starts a new row (classes in increasing order), so a class-conditional
generator's classes can be compared at a glance. :func:`nearest_neighbour_grid` puts generated
samples above their nearest real training images (the memorisation audit's figure: the reader
sees what "close" means in the embedding).
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np

from zoo.arrays import check_images
from zoo.io import atomic_write

__all__ = ["image_grid", "save_grid", "nearest_neighbour_grid"]




def image_grid(images: np.ndarray, nrow: int | None = None, labels: np.ndarray | None = None,
               *, padding: int = 2, pad_value: int = 0) -> np.ndarray:
    """Tile ``images`` into one uint8 picture, ``nrow`` images per row (default: a square grid).

    ``labels`` (one per image) groups the images by class, each class starting a new row.
    ``padding`` pixels of ``pad_value`` separate the tiles.
    """
    images = check_images(images)
    n = len(images)
    if nrow is None:
        nrow = max(1, math.ceil(math.sqrt(n)))
    if isinstance(nrow, bool) or not isinstance(nrow, (int, np.integer)) or nrow < 1:
        raise ValueError(f"nrow (images per row) must be a positive integer, got {nrow!r}")
    if isinstance(padding, bool) or not isinstance(padding, (int, np.integer)) or padding < 0:
        raise ValueError(f"padding must be a non-negative integer, got {padding!r}")
    if not 0 <= int(pad_value) <= 255:
        raise ValueError(f"pad_value must be in [0, 255], got {pad_value!r}")
    nrow = int(nrow)
    # rows: lists of image indices (None-free); a class starts a new row when labels are given.
    rows: list[np.ndarray] = []
    if labels is None:
        order = np.arange(n)
        rows = [order[i:i + nrow] for i in range(0, n, nrow)]
    else:
        labels = np.asarray(labels)
        if labels.shape != (n,):
            raise ValueError(f"labels must have shape ({n},), one per image, got {labels.shape}")
        for c in np.unique(labels):
            members = np.flatnonzero(labels == c)
            rows.extend(members[i:i + nrow] for i in range(0, len(members), nrow))
    h, w = images.shape[1:3]
    extra = images.shape[3:]
    ncol = min(nrow, max(len(r) for r in rows))
    grid = np.full((padding + len(rows) * (h + padding), padding + ncol * (w + padding), *extra),
                   pad_value, dtype=np.uint8)
    for r, idx in enumerate(rows):
        for c, i in enumerate(idx):
            y, x = padding + r * (h + padding), padding + c * (w + padding)
            grid[y:y + h, x:x + w] = images[i]
    return grid


def save_grid(images: np.ndarray, path: str | os.PathLike, nrow: int | None = None,
              labels: np.ndarray | None = None, **kwargs) -> Path:
    """Write :func:`image_grid` of ``images`` to ``path`` (PNG, or the format of its suffix), atomically."""
    from PIL import Image

    path = Path(path)
    fmt = Image.registered_extensions().get(path.suffix.lower())
    if fmt is None:
        raise ValueError(f"cannot tell the image format of {str(path)!r}; use a .png file name")
    grid = image_grid(images, nrow=nrow, labels=labels, **kwargs)
    img = Image.fromarray(grid)  # uint8 (H, W) -> "L", (H, W, 3) -> "RGB"
    return atomic_write(path, lambda tmp: img.save(tmp, format=fmt))


def nearest_neighbour_grid(samples: np.ndarray, neighbours: np.ndarray, nrow: int = 8) -> np.ndarray:
    """Images for a grid of ``nrow`` per row: each row of samples above a row of their neighbours.

    ``samples[i]`` and ``neighbours[i]`` (its nearest real training image) end up in one column;
    pass the result to :func:`save_grid` with the same ``nrow``.
    """
    samples, neighbours = check_images(samples), check_images(neighbours)
    if samples.shape != neighbours.shape:
        raise ValueError(f"samples {samples.shape} and neighbours {neighbours.shape} must have one shape: "
                         "one neighbour per sample")
    if isinstance(nrow, bool) or not isinstance(nrow, (int, np.integer)) or nrow < 1:
        raise ValueError(f"nrow (pairs per row) must be a positive integer, got {nrow!r}")
    parts = []
    for lo in range(0, len(samples), nrow):
        s, r = samples[lo:lo + nrow], neighbours[lo:lo + nrow]
        if len(s) < nrow:  # a short last row: pad with blank tiles so neighbours stay below
            pad = np.zeros((nrow - len(s), *samples.shape[1:]), np.uint8)
            s, r = np.concatenate([s, pad]), np.concatenate([r, pad])
        parts += [s, r]
    return np.concatenate(parts) if parts else samples
