"""GAN losses as pure functions of discriminator outputs (logits / critic values).

``kind`` is one of ``zoo.registry.LOSSES``:

- ``bce``: the non-saturating loss of Goodfellow et al. (softplus form, numerically stable).
- ``ls``: least squares (LSGAN, a-b-c = 0-1-1).
- ``wasserstein``: critic difference (WGAN; add clipping or a gradient penalty).
- ``hinge``: hinge loss for D, ``-D(G(z))`` for G (SNGAN, BigGAN).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

from .registry import LOSSES

__all__ = [
    "discriminator_loss",
    "generator_loss",
    "gradient_penalty",
    "auxiliary_loss",
    "drift_penalty",
]


def _check(kind: str) -> None:
    if kind not in LOSSES:
        raise ValueError(f"unknown loss {kind!r}; use one of {list(LOSSES)}")


def discriminator_loss(kind: str, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    """Loss the discriminator minimises, from its outputs on real and generated images."""
    _check(kind)
    if kind == "bce":
        return F.softplus(-real).mean() + F.softplus(fake).mean()
    if kind == "ls":
        return 0.5 * ((real - 1.0) ** 2).mean() + 0.5 * (fake**2).mean()
    if kind == "wasserstein":
        return fake.mean() - real.mean()
    return F.relu(1.0 - real).mean() + F.relu(1.0 + fake).mean()


def generator_loss(kind: str, fake: torch.Tensor) -> torch.Tensor:
    """Loss the generator minimises, from the discriminator's outputs on its images."""
    _check(kind)
    if kind == "bce":
        return F.softplus(-fake).mean()
    if kind == "ls":
        return 0.5 * ((fake - 1.0) ** 2).mean()
    return -fake.mean()


def gradient_penalty(critic: Callable[[torch.Tensor], torch.Tensor], real: torch.Tensor,
                     fake: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
    """WGAN-GP penalty ``E[(||grad critic(x_hat)||_2 - 1)^2]`` on ``x_hat = eps*real + (1-eps)*fake``.

    ``eps`` has shape ``(n, 1, 1, 1)`` (drawn by the caller, so that it is seeded).
    """
    x_hat = (eps * real.detach() + (1.0 - eps) * fake.detach()).requires_grad_(True)
    out = critic(x_hat)
    if isinstance(out, tuple):
        out = out[0]
    (grad,) = torch.autograd.grad(out.sum(), x_hat, create_graph=True)
    return ((grad.flatten(1).norm(2, dim=1) - 1.0) ** 2).mean()


def drift_penalty(real: torch.Tensor) -> torch.Tensor:
    """ProGAN's drift term ``E[D(x)^2]`` keeping critic values near zero."""
    return (real**2).mean()


def auxiliary_loss(class_logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """ACGAN's auxiliary classification loss (cross-entropy)."""
    return F.cross_entropy(class_logits, labels)
