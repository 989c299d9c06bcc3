"""Seed derivation: one root seed gives every random choice.

Every random decision in gan-ensemble takes its seed from ``derive_seed(root, *keys)``, a stable
hash of the root seed and a few labels (stage name, generator name, ...). The same root seed
therefore gives the same choices whatever order the stages run in, and on any machine.
"""

from __future__ import annotations

import hashlib
import random

import numpy as np
import torch

__all__ = ["derive_seed", "seed_everything", "torch_generator"]


def derive_seed(root: int, *keys: object) -> int:
    """Return a 63-bit seed derived from ``root`` and ``keys`` (stable across runs and platforms)."""
    if isinstance(root, bool) or not isinstance(root, (int, np.integer)):
        raise ValueError(f"seed must be an integer, got {root!r}; pass e.g. seed=0")
    text = "\x1f".join([str(int(root))] + [str(k) for k in keys])
    digest = hashlib.sha256(text.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "little") & ((1 << 63) - 1)


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch global generators (for code that uses the global state)."""
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)


def torch_generator(seed: int) -> torch.Generator:
    """A CPU ``torch.Generator`` seeded with ``seed``; draw on the CPU, then move to the device."""
    g = torch.Generator(device="cpu")
    g.manual_seed(int(seed))
    return g
