"""DiffAugment (Zhao et al., NeurIPS 2020): differentiable augmentation of D's inputs.

Applied to real and generated images before the discriminator (in both D and G updates), so
gradients flow through the augmentation to the generator. Policies: ``color`` (brightness,
saturation, contrast), ``translation`` (shift by up to 1/8 of the side, zero padding) and
``cutout`` (a zeroed square of half the side). The random parameters are drawn on the CPU from
the caller's ``torch.Generator`` (per-sample, so cheap) and moved to the images' device: the
same generator state gives the same augmentation on any device.
"""

from __future__ import annotations

import torch

__all__ = ["diff_augment", "POLICIES"]

POLICIES = ("color", "translation", "cutout")


def _rand(n: int, gen: torch.Generator | None, like: torch.Tensor) -> torch.Tensor:
    return torch.rand(n, 1, 1, 1, generator=gen).to(device=like.device, dtype=like.dtype)


def _color(x: torch.Tensor, gen: torch.Generator | None) -> torch.Tensor:
    n = x.shape[0]
    x = x + (_rand(n, gen, x) - 0.5)
    mean = x.mean(dim=1, keepdim=True)
    x = (x - mean) * (_rand(n, gen, x) * 2.0) + mean
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    return (x - mean) * (_rand(n, gen, x) + 0.5) + mean


def _translation(x: torch.Tensor, gen: torch.Generator | None, ratio: float = 0.125) -> torch.Tensor:
    n, _, h, w = x.shape
    sh, sw = int(h * ratio + 0.5), int(w * ratio + 0.5)
    tx = torch.randint(-sh, sh + 1, (n, 1, 1), generator=gen).to(x.device)
    ty = torch.randint(-sw, sw + 1, (n, 1, 1), generator=gen).to(x.device)
    gb, gx, gy = torch.meshgrid(
        torch.arange(n, device=x.device),
        torch.arange(h, device=x.device),
        torch.arange(w, device=x.device),
        indexing="ij",
    )
    gx = torch.clamp(gx + tx + 1, 0, h + 1)
    gy = torch.clamp(gy + ty + 1, 0, w + 1)
    padded = torch.nn.functional.pad(x, [1, 1, 1, 1])
    return padded.permute(0, 2, 3, 1)[gb, gx, gy].permute(0, 3, 1, 2).contiguous()


def _cutout(x: torch.Tensor, gen: torch.Generator | None, ratio: float = 0.5) -> torch.Tensor:
    n, _, h, w = x.shape
    ch, cw = int(h * ratio + 0.5), int(w * ratio + 0.5)
    ox = torch.randint(0, h + (1 - ch % 2), (n, 1, 1), generator=gen).to(x.device)
    oy = torch.randint(0, w + (1 - cw % 2), (n, 1, 1), generator=gen).to(x.device)
    gb, gx, gy = torch.meshgrid(
        torch.arange(n, device=x.device),
        torch.arange(ch, device=x.device),
        torch.arange(cw, device=x.device),
        indexing="ij",
    )
    gx = torch.clamp(gx + ox - ch // 2, 0, h - 1)
    gy = torch.clamp(gy + oy - cw // 2, 0, w - 1)
    mask = torch.ones(n, h, w, dtype=x.dtype, device=x.device)
    mask[gb, gx, gy] = 0
    return x * mask.unsqueeze(1)


_FUNCS = {"color": _color, "translation": _translation, "cutout": _cutout}


def diff_augment(x: torch.Tensor, policy: str | tuple[str, ...] = POLICIES,
                 generator: torch.Generator | None = None) -> torch.Tensor:
    """Augment a batch ``(n, C, H, W)`` differentiably with the given policies, in order.

    ``policy`` is a comma-separated string or a tuple of names from :data:`POLICIES`.
    """
    names = [p for p in policy.split(",") if p] if isinstance(policy, str) else list(policy)
    unknown = [p for p in names if p not in _FUNCS]
    if unknown:
        raise ValueError(f"unknown DiffAugment policy {unknown}; use names from {list(POLICIES)}")
    for name in names:
        x = _FUNCS[name](x, generator)
    return x
