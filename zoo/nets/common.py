"""Hyper-parameters every family shares, with their defaults."""

from __future__ import annotations

from typing import Any

__all__ = ["COMMON_DEFAULTS", "common_defaults"]

#: Shared hyper-parameters: the training loop reads these for every family.
COMMON_DEFAULTS: dict[str, Any] = {
    "latent_dim": 100,
    "lr": 2e-4,
    "optimizer": "adam",  # adam | sgd | rmsprop
    "beta1": 0.5,  # Adam betas
    "beta2": 0.999,
    "momentum": 0.0,  # SGD / RMSprop momentum
    "output_activation": "tanh",  # tanh | none
    "dropout": 0.0,  # dropout in the discriminator
    "batch_size": 64,
    # EMA decay of the generator's weights (0 = off). 0.99 averages over ~100 steps: it removes
    # the step-to-step pixel noise of short CPU runs (issue 17; see docs/zoo.md) and forgets the
    # initial weights within a few hundred iterations (0.999 would still hold 37% of them at 1,000).
    "ema": 0.99,
    "diffaug": False,  # DiffAugment (color, translation, cutout) on D's inputs
    "n_critic": 1,  # discriminator updates per generator update
}


def common_defaults(**family: Any) -> dict[str, Any]:
    """The shared defaults updated with a family's own defaults and extra hyper-parameters."""
    out = dict(COMMON_DEFAULTS)
    out.update(family)
    return out
