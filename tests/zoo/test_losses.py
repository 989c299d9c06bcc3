"""zoo.losses: the adversarial losses and penalties against their definitions."""

from __future__ import annotations

import math

import pytest
import torch

from zoo.losses import discriminator_loss, generator_loss, gradient_penalty


def test_losses_match_their_definitions():
    real, fake = torch.tensor([2.0, -1.0]), torch.tensor([0.5, -3.0])
    sp = torch.nn.functional.softplus
    assert torch.isclose(discriminator_loss("bce", real, fake), sp(-real).mean() + sp(fake).mean())
    assert torch.isclose(generator_loss("bce", fake), sp(-fake).mean())
    zero = torch.zeros(4)
    assert math.isclose(float(discriminator_loss("bce", zero, zero)), 2 * math.log(2), rel_tol=1e-6)
    assert float(discriminator_loss("ls", torch.ones(3), torch.zeros(3))) == 0.0
    assert float(generator_loss("ls", torch.zeros(2))) == 0.5
    assert float(discriminator_loss("wasserstein", real, fake)) == pytest.approx(-1.25 - 0.5)
    assert float(generator_loss("wasserstein", fake)) == pytest.approx(1.25)
    # hinge: relu(1 - 2) + relu(1 + 1) = 2, relu(1 + .5) + relu(1 - 3) = 1.5 -> 1 + 0.75
    assert float(discriminator_loss("hinge", real, fake)) == pytest.approx(1.75)
    with pytest.raises(ValueError, match="unknown loss 'l2'"):
        discriminator_loss("l2", real, fake)


def test_gradient_penalty_of_linear_critics():
    x, y = torch.randn(5, 1, 4, 4), torch.randn(5, 1, 4, 4)
    eps = torch.rand(5, 1, 1, 1)
    w = torch.randn(1, 1, 4, 4)
    unit = w / w.norm()
    assert float(gradient_penalty(lambda q: (q * unit).sum((1, 2, 3)), x, y, eps)) == pytest.approx(0.0, abs=1e-10)
    gp = gradient_penalty(lambda q: 3 * (q * unit).sum((1, 2, 3)), x, y, eps)
    assert float(gp) == pytest.approx(4.0)
