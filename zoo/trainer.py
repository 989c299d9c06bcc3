"""The GAN training loop of the zoo: one :class:`GANTrainer` per run, one seeded ``step()`` per iteration.

A trainer holds a family's generator and discriminator (built from one config, see
:mod:`zoo.config`), their optimisers and the EMA copy of the generator. Every random draw of
iteration ``it`` (batch, ``z``, fake labels, augmentation, dropout) comes from
``derive_seed(seed, run, "iter", it)``, so the weights after iteration ``it`` depend only on the
config, the data, the seed and the run name: a run restored from :meth:`GANTrainer.state_dict`
continues bit for bit (on the CPU). :func:`zoo.train.train` drives it for resumable runs on
disk; the benchmarks drive it directly.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
import torch
from torch import nn

from .arrays import check_labels, check_training_images
from .config import CHOICES
from .device import resolve_device
from .diffaug import diff_augment
from .losses import (
    auxiliary_loss,
    discriminator_loss,
    drift_penalty,
    generator_loss,
    gradient_penalty,
)
from .registry import Architecture, get_architecture, resolve_config
from .seeding import derive_seed, torch_generator

__all__ = ["GANTrainer", "make_optimizer", "STATE_FORMAT"]

#: Format tag of :meth:`GANTrainer.state_dict` (checked on load).
STATE_FORMAT = "gan-ensemble-train-state/1"


def make_optimizer(cfg: Mapping[str, Any], params: Iterable[nn.Parameter]) -> torch.optim.Optimizer:
    """The optimiser named by ``cfg["optimizer"]`` over the trainable ``params``."""
    params = [p for p in params if p.requires_grad]
    name = cfg["optimizer"]
    if name == "adam":
        return torch.optim.Adam(params, lr=cfg["lr"], betas=(cfg["beta1"], cfg["beta2"]))
    if name == "sgd":
        return torch.optim.SGD(params, lr=cfg["lr"], momentum=cfg["momentum"])
    if name == "rmsprop":
        return torch.optim.RMSprop(params, lr=cfg["lr"], momentum=cfg["momentum"])
    raise ValueError(f"optimizer {name!r}; use one of {list(CHOICES['optimizer'])}")


def _split(out: Any) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Discriminator output -> (adversarial logits, class logits or None)."""
    if isinstance(out, tuple):
        return out[0], out[1]
    return out, None


def _cpu_state(module: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().to("cpu", copy=True) for k, v in module.state_dict().items()}


class GANTrainer:
    """One GAN being trained: nets, optimisers, EMA and the per-iteration seeded update.

    ``images`` uint8 ``(N, H, W)`` / ``(N, H, W, 3)`` and ``labels`` int64 ``(N,)`` are moved to
    ``device`` once. Each :meth:`step` trains iteration ``self.iteration + 1``: ``n_critic``
    discriminator updates and one generator update. It reseeds torch's global generator (for
    dropout); :func:`train` runs it inside ``torch.random.fork_rng`` so callers' state is kept.
    """

    def __init__(self, arch: str | Architecture, config: Mapping[str, Any], images: np.ndarray,
                 labels: np.ndarray, *, seed: int = 0, run: str = "run",
                 device: str | torch.device = "auto") -> None:
        self.arch = get_architecture(arch)
        self.config = resolve_config(self.arch.name, config)
        self.seed = int(seed)
        self.run = run
        self.device = resolve_device(device)
        cfg = self.config
        images = check_training_images(images)
        labels, _ = check_labels(labels, len(images), cfg["num_classes"])
        x = torch.from_numpy(np.ascontiguousarray(images))
        x = x.unsqueeze(1) if x.ndim == 3 else x.permute(0, 3, 1, 2)
        if x.shape[1] != cfg["channels"] or x.shape[-1] != cfg["image_size"]:
            raise ValueError(f"images {tuple(images.shape[1:])} do not match the config "
                             f"(image_size {cfg['image_size']}, channels {cfg['channels']})")
        self.images = x.contiguous().to(self.device)
        self.labels = torch.from_numpy(labels).to(self.device)
        self.n = len(images)
        if cfg["batch_size"] > self.n:
            raise ValueError(f"batch_size {cfg['batch_size']} is larger than the {self.n} training "
                             f"images; pass batch_size <= {self.n}")
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(derive_seed(self.seed, run, "init"))
            self.G = self.arch.build_generator(dict(cfg))
            self.D = self.arch.build_discriminator(dict(cfg))
        # channels-last convolutions are ~25% faster on CPU (oneDNN) and on recent GPUs
        self.G.to(self.device, memory_format=torch.channels_last).train()
        self.D.to(self.device, memory_format=torch.channels_last).train()
        self.ema: nn.Module | None = None
        if cfg["ema"] > 0:
            self.ema = copy.deepcopy(self.G).requires_grad_(False)
        self.opt_g = make_optimizer(cfg, self.G.parameters())
        self.opt_d = make_optimizer(cfg, self.D.parameters())
        self.iteration = 0
        self.last_losses: dict[str, torch.Tensor] = {}

    # -- randomness -------------------------------------------------------------------------
    def _batch(self, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        idx = torch.randperm(self.n, generator=gen)[: self.config["batch_size"]].to(self.device)
        real = self.images[idx].to(torch.float32).div_(127.5).sub_(1.0)
        return real.contiguous(memory_format=torch.channels_last), self.labels[idx]

    def sample_codes(self, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """Latent codes and the labels to generate: labels of random training images.

        Fake labels follow the training split's class frequencies, as the real batch's labels
        do. Drawn uniformly instead (as before issue 17), a discriminator that sees the label
        learns "a minority-class label means fake" (on PneumoniaMNIST 26% of real images are
        class 0 but half of the fakes), a signal the generator cannot answer: dcgan, lsgan,
        wgan and cgan stalled while acgan (whose adversarial head does not see the label) learnt.
        """
        bs = self.config["batch_size"]
        z = torch.randn(bs, self.config["latent_dim"], generator=gen).to(self.device)
        idx = torch.randint(self.n, (bs,), generator=gen).to(self.device)
        return z, self.labels[idx]

    def _aug(self, x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        return diff_augment(x, generator=gen) if self.config["diffaug"] else x

    # -- one iteration ----------------------------------------------------------------------
    def step(self) -> dict[str, torch.Tensor]:
        """Train one iteration; return its (detached, on-device) losses."""
        it = self.iteration + 1
        cfg = self.config
        gen = torch_generator(derive_seed(self.seed, self.run, "iter", it))
        torch.manual_seed(derive_seed(self.seed, self.run, "iter", it, "torch"))
        for net in (self.G, self.D):
            if hasattr(net, "set_iteration"):
                net.set_iteration(it)
        kind = self.arch.loss
        aux_w = cfg.get("aux_weight", 0.0)

        self.D.requires_grad_(True)
        for _ in range(cfg["n_critic"]):
            real, y_real = self._batch(gen)
            z, y_fake = self.sample_codes(gen)
            with torch.no_grad():
                fake = self.G(z, y_fake)
            real_in, fake_in = self._aug(real, gen), self._aug(fake, gen)
            out_r, cls_r = _split(self.D(real_in, y_real))
            out_f, cls_f = _split(self.D(fake_in, y_fake))
            loss_d = discriminator_loss(kind, out_r, out_f)
            if cfg.get("gp", 0.0) > 0:
                eps = torch.rand(real.shape[0], 1, 1, 1, generator=gen).to(self.device)
                loss_d = loss_d + cfg["gp"] * gradient_penalty(
                    lambda x, y=y_real: self.D(x, y), real_in, fake_in, eps)
            if cfg.get("drift", 0.0) > 0:
                loss_d = loss_d + cfg["drift"] * drift_penalty(out_r)
            if cls_r is not None and aux_w > 0:
                loss_d = loss_d + aux_w * (auxiliary_loss(cls_r, y_real) + auxiliary_loss(cls_f, y_fake))
            self.opt_d.zero_grad(set_to_none=True)
            loss_d.backward()
            self.opt_d.step()
            if cfg.get("clip", 0.0) > 0:
                with torch.no_grad():
                    for p in self.D.parameters():
                        p.clamp_(-cfg["clip"], cfg["clip"])

        self.D.requires_grad_(False)
        z, y_fake = self.sample_codes(gen)
        fake = self.G(z, y_fake)
        out_f, cls_f = _split(self.D(self._aug(fake, gen), y_fake))
        loss_g = generator_loss(kind, out_f)
        if cls_f is not None and aux_w > 0:
            loss_g = loss_g + aux_w * auxiliary_loss(cls_f, y_fake)
        self.opt_g.zero_grad(set_to_none=True)
        loss_g.backward()
        self.opt_g.step()
        self.D.requires_grad_(True)
        if self.ema is not None:
            self._update_ema()
        self.iteration = it
        self.last_losses = {"loss_d": loss_d.detach(), "loss_g": loss_g.detach()}
        return self.last_losses

    @torch.no_grad()
    def _update_ema(self) -> None:
        decay = self.config["ema"]
        for pe, p in zip(self.ema.parameters(), self.G.parameters(), strict=True):
            pe.lerp_(p.detach(), 1.0 - decay)
        for be, b in zip(self.ema.buffers(), self.G.buffers(), strict=True):
            be.copy_(b)

    # -- state --------------------------------------------------------------------------------
    def generator_state_dict(self) -> dict[str, torch.Tensor]:
        """The weights to publish: the EMA generator's when ``ema > 0``, else the generator's."""
        return _cpu_state(self.ema if self.ema is not None else self.G)

    def state_dict(self) -> dict[str, Any]:
        """A copy of the full training state (tensors and primitives only: ``weights_only``-loadable)."""
        state = {
            "format": STATE_FORMAT,
            "architecture": self.arch.name,
            "config": dict(self.config),
            "run": self.run,
            "seed": self.seed,
            "iteration": self.iteration,
            "G": _cpu_state(self.G),
            "D": _cpu_state(self.D),
            # copies: an optimiser's state_dict holds its live tensors, which the next step changes
            "opt_g": copy.deepcopy(self.opt_g.state_dict()),
            "opt_d": copy.deepcopy(self.opt_d.state_dict()),
        }
        if self.ema is not None:
            state["ema"] = _cpu_state(self.ema)
        return state

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore a state from :meth:`state_dict` (same architecture, config, run and seed)."""
        if state.get("format") != STATE_FORMAT:
            raise ValueError(f"not a training state of this version (format {state.get('format')!r}, "
                             f"expected {STATE_FORMAT!r})")
        for key, mine in (("architecture", self.arch.name), ("config", self.config),
                          ("run", self.run), ("seed", self.seed)):
            if state.get(key) != mine:
                raise ValueError(f"training state {key} {state.get(key)!r} does not match this "
                                 f"run's {mine!r}")
        self.G.load_state_dict(state["G"])
        self.D.load_state_dict(state["D"])
        self.opt_g.load_state_dict(state["opt_g"])
        self.opt_d.load_state_dict(state["opt_d"])
        if self.ema is not None:
            self.ema.load_state_dict(state["ema"])
        self.iteration = int(state["iteration"])

