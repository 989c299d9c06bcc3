"""A small deterministic foreign generator for the synth/export/downstream tests.

Registered in a test catalog with ``Catalog.register_callable("_synth_toys:make_toy", ...)``: a
real callable generator (the zoo's third kind), not a mock. Class ``c`` draws horizontal stripes of
period ``2 + c`` over a ``style``-dependent brightness, plus seeded noise, so images carry their
class and differ between generators. The same seed gives the same bytes.
"""

from __future__ import annotations

import numpy as np


class ToyGenerator:
    def __init__(self, style: int = 0, classes: int = 2, size: int = 28, rgb: bool = False) -> None:
        self.style = int(style)
        self.num_classes = int(classes)
        self.image_shape = (size, size, 3) if rgb else (size, size)

    def sample(self, n: int, labels=None, seed: int = 0) -> np.ndarray:
        rng = np.random.default_rng([int(seed), self.style])
        if labels is None:
            labels = rng.integers(0, self.num_classes, size=n)
        labels = np.asarray(labels, dtype=np.int64)
        h, w = self.image_shape[:2]
        rows = np.arange(h)[None, :, None]
        period = 2 + labels[:, None, None]
        stripes = ((rows // 1) % period == 0).astype(np.float64)
        base = 40.0 + 25.0 * (self.style % 5)
        img = base + 150.0 * stripes + rng.normal(0.0, 12.0, size=(n, h, w))
        img = np.clip(np.round(img), 0, 255).astype(np.uint8)
        if len(self.image_shape) == 3:
            img = np.repeat(img[..., None], 3, axis=-1)
        return img


def make_toy(style: int = 0, classes: int = 2, size: int = 28, rgb: bool = False) -> ToyGenerator:
    """Factory used by ``register_callable``."""
    return ToyGenerator(style=style, classes=classes, size=size, rgb=rgb)
