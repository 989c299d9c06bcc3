"""zoo.diffaug: seeded, differentiable, shape-preserving augmentation."""

from __future__ import annotations

import pytest
import torch

from zoo.diffaug import diff_augment


def test_diffaugment_is_seeded_differentiable_and_shape_preserving():
    x = torch.rand(6, 3, 32, 32, requires_grad=True)

    def aug(seed):
        g = torch.Generator().manual_seed(seed)
        return diff_augment(x, generator=g)

    a, b, c = aug(0), aug(0), aug(1)
    assert a.shape == x.shape
    assert torch.equal(a, b) and not torch.equal(a, c)
    a.sum().backward()
    assert x.grad is not None and float(x.grad.abs().sum()) > 0
    # cutout zeroes a square of half the side in every image
    g = torch.Generator().manual_seed(0)
    cut = diff_augment(torch.ones(4, 1, 28, 28), "cutout", generator=g)
    assert ((cut == 0).sum(dim=(1, 2, 3)) > 0).all()
    # translation only moves pixels (and pads zeros)
    g = torch.Generator().manual_seed(0)
    img = torch.rand(4, 1, 28, 28) + 1
    moved = diff_augment(img, ("translation",), generator=g)
    assert set(torch.unique(moved[moved > 0]).tolist()) <= set(torch.unique(img).tolist())
    with pytest.raises(ValueError, match="unknown DiffAugment policy"):
        diff_augment(x, "rotate")
