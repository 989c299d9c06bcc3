"""The downstream training loop: train a classifier from scratch, early-stopped on real validation.

METHOD.md §5: Adam (lr 1e-3, batch 64), ReduceLROnPlateau on the validation loss, early stopping
on the *real* validation loss with the best-validation weights restored, images scaled to
[-1, 1]. One seed fixes the initialisation, the epoch draws and dropout, so arms trained with the
same seed are paired. :func:`predict_proba` gives class probabilities of a trained network.

The budget can be set in optimizer steps (``steps``, with a floor ``min_steps``) rather than in
epochs: an epoch of a few hundred draws is a handful of steps, so an epoch budget leaves a classifier
trained on a small set (or a small ``samples_per_epoch``) barely trained. ``warmup_steps`` keeps
early stopping from returning a network that has hardly trained: no checkpoint is taken and no
early stop happens before that many steps (the reference skips its first 25 epochs).
``class_weight`` weights the loss per class (:func:`class_weights`: the reference weights by the
*real* training class frequencies, also when it trains on synthetic data).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
from torch import nn
from torch.nn import functional as F

from ensemble.downstream.models import create_classifier
from ensemble.downstream.sources import SAMPLERS, TrainingSource, epoch_indices
from zoo.device import resolve_device
from zoo.seeding import derive_seed

__all__ = ["TrainedClassifier", "train_classifier", "predict_proba", "to_input", "class_weights",
           "steps_per_epoch", "memory_format"]

log = logging.getLogger(__name__)


def to_input(x_uint8: torch.Tensor) -> torch.Tensor:
    """uint8 ``(n, H, W)`` / ``(n, H, W, C)`` to float ``(n, C, H, W)`` in [-1, 1]."""
    x = x_uint8.float().div_(127.5).sub_(1.0)
    return x.unsqueeze(1) if x.ndim == 3 else x.permute(0, 3, 1, 2).contiguous()


@dataclass
class TrainedClassifier:
    """A trained network with its best-validation weights loaded, and how it got there."""

    module: nn.Module
    num_classes: int
    history: pd.DataFrame
    best_epoch: int
    best_val_loss: float
    epochs_run: int
    seconds: float
    model: str = ""
    device: str = "cpu"
    steps_run: int = 0

    def predict_proba(self, images: np.ndarray, batch_size: int = 512) -> np.ndarray:
        """Class probabilities ``(n, num_classes)`` of ``images`` (see :func:`predict_proba`)."""
        return predict_proba(self.module, images, batch_size=batch_size)


def _device_of(module: nn.Module) -> torch.device:
    try:
        return next(module.parameters()).device
    except StopIteration:
        return torch.device("cpu")


@torch.no_grad()
def predict_proba(model: nn.Module | TrainedClassifier, images: np.ndarray,
                  batch_size: int = 512) -> np.ndarray:
    """Class probabilities ``(n, num_classes)`` float64 for uint8 images (eval mode)."""
    from ensemble.data import validate_images

    module = model.module if isinstance(model, TrainedClassifier) else model
    images = validate_images(np.asarray(images), "images")
    dev = _device_of(module)
    was_training = module.training
    module.eval()
    out = []
    for i in range(0, len(images), batch_size):
        x = to_input(torch.from_numpy(np.ascontiguousarray(images[i:i + batch_size])).to(dev))
        out.append(torch.softmax(module(x).float(), dim=1).cpu().double().numpy())
    module.train(was_training)
    return np.concatenate(out)


def class_weights(labels: np.ndarray, num_classes: int) -> np.ndarray:
    """Loss weights ``n / (K * n_c)`` per class from ``labels`` (absent classes get weight 1).

    The reference weights its loss by the *real* training class frequencies this way; a balanced
    set gets all ones.
    """
    y = np.asarray(labels).reshape(-1).astype(np.int64)
    k = int(num_classes)
    counts = np.bincount(y, minlength=k)[:k].astype(np.float64)
    w = np.ones(k)
    present = counts > 0
    w[present] = len(y) / (k * counts[present])
    return w


def memory_format(device: torch.device) -> torch.memory_format:
    """The layout a classifier trains in on ``device``: channels-last on a CPU, where oneDNN's
    convolutions run faster in it (benchmarks/classifier_train.py on 2 cores: a step 1.44x as
    fast with 2 threads, 1.29x with one, for the small CNN; 1.15x / 1.07x for resnet18-cifar),
    else torch's default (not measured on other devices). Like the zoo's training, CPU results are
    bit-for-bit the same for one thread count (studies pin it), not across thread counts."""
    return torch.channels_last if torch.device(device).type == "cpu" else torch.contiguous_format


def steps_per_epoch(draws: int, batch_size: int) -> int:
    """Optimizer steps of an epoch of ``draws`` images in batches of ``batch_size`` (a last batch
    of one image is skipped: BatchNorm cannot train on it)."""
    draws, batch_size = int(draws), int(batch_size)
    return draws // batch_size + (1 if draws % batch_size >= 2 else 0)


@torch.no_grad()
def _loss_and_accuracy(module: nn.Module, x: torch.Tensor, y: torch.Tensor,
                       batch_size: int, weight: torch.Tensor | None = None) -> tuple[float, float]:
    module.eval()
    total, correct, wsum = 0.0, 0, 0.0
    for i in range(0, len(x), batch_size):
        logits = module(to_input(x[i:i + batch_size]))
        yb = y[i:i + batch_size]
        total += F.cross_entropy(logits, yb, weight=weight, reduction="sum").item()
        wsum += float(weight[yb].sum()) if weight is not None else len(yb)
        correct += int((logits.argmax(1) == yb).sum())
    return total / wsum, correct / len(x)


def train_classifier(train_images: np.ndarray, train_labels: np.ndarray,
                     val_images: np.ndarray, val_labels: np.ndarray, *,
                     model: str = "small-cnn", num_classes: int | None = None, epochs: int = 100,
                     batch_size: int = 64, lr: float = 1e-3, patience: int = 10,
                     lr_patience: int = 5, lr_factor: float = 0.1, seed: int = 0,
                     device: str = "auto", samples_per_epoch: int | None = None,
                     sampler: str | None = None, groups: np.ndarray | None = None,
                     progress: bool = True, steps: int | None = None, min_steps: int = 0,
                     warmup_steps: int = 0,
                     class_weight: np.ndarray | Sequence[float] | str | None = None) -> TrainedClassifier:
    """Train ``model`` from scratch; early stopping on the real validation loss.

    Adam(``lr``), ReduceLROnPlateau(``lr_patience``, ``lr_factor``) on the validation loss, stop
    after ``patience`` epochs without improvement, best-validation weights restored. Each epoch
    draws ``samples_per_epoch`` images (default: all) with ``sampler`` (see
    :class:`TrainingSource`; ``groups`` gives each image's member for ``"member"``) and ends with
    a validation pass. The seed fixes the initialisation, the draws and dropout.

    Budget: ``epochs`` epochs, or, when ``steps`` is given, as many epochs as ``steps`` optimizer
    steps take (:func:`steps_per_epoch`); either way at least ``min_steps`` steps (the floor).
    Before ``warmup_steps`` steps no checkpoint is taken and training does not stop early, so the
    weights returned have trained at least that long (or the whole budget, if shorter).
    ``class_weight``: None (plain loss), ``"balanced"`` (:func:`class_weights` of the training
    labels) or one weight per class (e.g. :func:`class_weights` of the *real* training labels);
    the validation loss is weighted the same way.
    """
    from ensemble.data import validate_images

    src = TrainingSource(train_images, train_labels, groups=groups,
                         samples_per_epoch=samples_per_epoch, sampler=sampler)
    val_x = validate_images(np.asarray(val_images), "validation images")
    val_y = np.asarray(val_labels).reshape(-1).astype(np.int64)
    if len(val_y) != len(val_x):
        raise ValueError(f"{len(val_x)} validation images but {len(val_y)} labels")
    if val_x.shape[1:] != src.images.shape[1:]:
        raise ValueError(
            f"training images are {src.images.shape[1:]} but validation images are {val_x.shape[1:]}; "
            "resize one set to the other's size"
        )
    k = int(num_classes or max(int(src.labels.max()), int(val_y.max())) + 1)
    k = max(k, 2)
    for what, y in (("training", src.labels), ("validation", val_y)):
        if y.min() < 0 or y.max() >= k:
            raise ValueError(f"{what} labels must lie in [0, {k}); found {int(y.min())}..{int(y.max())}")
    for name, value in (("epochs", epochs), ("batch_size", batch_size), ("patience", patience)):
        if int(value) < 1:
            raise ValueError(f"{name} must be at least 1, got {value}")
    if steps is not None and int(steps) < 1:
        raise ValueError(f"steps must be at least 1, got {steps}")
    if int(min_steps) < 0 or int(warmup_steps) < 0:
        raise ValueError(f"min_steps and warmup_steps must be >= 0, got {min_steps}, {warmup_steps}")
    per_epoch = steps_per_epoch(src.samples_per_epoch or len(src), batch_size)
    if per_epoch < 1:
        raise ValueError(f"an epoch of {src.samples_per_epoch or len(src)} draws makes no batch of "
                         f"two or more images (batch_size {batch_size})")
    max_epochs = int(epochs) if steps is None else -(-int(steps) // per_epoch)
    max_epochs = max(max_epochs, -(-int(min_steps) // per_epoch))
    warmup_epochs = min(-(-int(warmup_steps) // per_epoch), max_epochs)
    weight = _class_weight(class_weight, src.labels, k)
    smp = src.sampler or ("member" if src.groups is not None else "shuffle")
    if smp not in SAMPLERS:
        raise ValueError(f"unknown sampler {smp!r}; known: {', '.join(SAMPLERS)}")
    if smp == "member" and src.groups is None:
        raise ValueError("sampler 'member' needs groups: the member index of every image")

    dev = resolve_device(device)
    in_ch = 1 if src.images.ndim == 3 else src.images.shape[-1]
    fork_devices = [dev.index or 0] if dev.type == "cuda" else []
    t0 = time.perf_counter()
    with torch.random.fork_rng(devices=fork_devices):
        torch.manual_seed(derive_seed(seed, "downstream", "init") % (2**63))
        net = create_classifier(model, in_channels=in_ch, num_classes=k).to(dev, memory_format=memory_format(dev))
        opt = torch.optim.Adam(net.parameters(), lr=lr)
        sched = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, mode="min", factor=lr_factor,
                                                           patience=lr_patience)
        rng = np.random.default_rng(derive_seed(seed, "downstream", "draws"))
        tx = torch.from_numpy(np.ascontiguousarray(src.images)).to(dev)
        ty = torch.from_numpy(src.labels).to(dev)
        vx = torch.from_numpy(np.ascontiguousarray(val_x)).to(dev)
        vy = torch.from_numpy(val_y).to(dev)
        w_t = None if weight is None else torch.as_tensor(weight, dtype=torch.float32, device=dev)

        from tqdm.auto import tqdm

        best_loss, best_state, best_epoch, bad, n_steps = math.inf, None, 0, 0, 0
        rows = []
        bar = tqdm(range(1, max_epochs + 1), desc=f"train {model}", unit="epoch",
                   disable=not progress, leave=False)
        for epoch in bar:
            net.train()
            idx = epoch_indices(len(src), rng, size=src.samples_per_epoch, sampler=smp,
                                groups=src.groups)
            idx_t = torch.from_numpy(idx).to(dev)
            run_loss, seen = 0.0, 0
            for i in range(0, len(idx_t), batch_size):
                b = idx_t[i:i + batch_size]
                if len(b) < 2:  # BatchNorm cannot train on a batch of one
                    continue
                logits = net(to_input(tx[b]))
                loss = F.cross_entropy(logits, ty[b], weight=w_t)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                run_loss += loss.item() * len(b)
                seen += len(b)
                n_steps += 1
            val_loss, val_acc = _loss_and_accuracy(net, vx, vy, 512, w_t)
            lr_now = opt.param_groups[0]["lr"]
            sched.step(val_loss)
            rows.append({"epoch": epoch, "train_loss": run_loss / max(seen, 1), "val_loss": val_loss,
                         "val_accuracy": val_acc, "lr": lr_now, "steps": n_steps})
            bar.set_postfix(val_loss=f"{val_loss:.4f}", best=best_epoch)
            if epoch < warmup_epochs:  # warm-up: no checkpoint, no early stop
                continue
            if val_loss < best_loss:
                best_loss, best_epoch, bad = val_loss, epoch, 0
                best_state = {k_: v.detach().clone() for k_, v in net.state_dict().items()}
            else:
                bad += 1
                if bad >= patience:
                    log.info("early stop at epoch %d (best %d, val loss %.4f)", epoch, best_epoch, best_loss)
                    break
        bar.close()
        if best_state is not None:
            net.load_state_dict(best_state)
        net.eval()
    return TrainedClassifier(net, k, pd.DataFrame(rows), best_epoch, float(best_loss), len(rows),
                             time.perf_counter() - t0, model, str(dev), n_steps)


def _class_weight(spec, labels: np.ndarray, k: int) -> np.ndarray | None:
    if spec is None:
        return None
    if isinstance(spec, str):
        if spec == "balanced":
            return class_weights(labels, k)
        raise ValueError(f"class_weight must be None, 'balanced' or one weight per class, got {spec!r} "
                         "('real' is a protocol option: pass class_weights(real_train_labels, K))")
    w = np.asarray(spec, dtype=np.float64).reshape(-1)
    if len(w) != k or not np.isfinite(w).all() or (w <= 0).any():
        raise ValueError(f"class_weight must hold {k} positive weights, got {spec!r}")
    return w


