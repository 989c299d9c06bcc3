"""The downstream training loop: train a classifier from scratch, early-stopped on real validation.

METHOD.md §5: Adam (lr 1e-3, batch 64), ReduceLROnPlateau on the validation loss, early stopping
on the *real* validation loss with the best-validation weights restored, images scaled to
[-1, 1]. One seed fixes the initialisation, the epoch draws and dropout, so arms trained with the
same seed are paired. :func:`predict_proba` gives class probabilities of a trained network.
"""

from __future__ import annotations

import logging
import math
import time
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

__all__ = ["TrainedClassifier", "train_classifier", "predict_proba", "to_input"]

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


@torch.no_grad()
def _loss_and_accuracy(module: nn.Module, x: torch.Tensor, y: torch.Tensor,
                       batch_size: int) -> tuple[float, float]:
    module.eval()
    total, correct = 0.0, 0
    for i in range(0, len(x), batch_size):
        logits = module(to_input(x[i:i + batch_size]))
        total += F.cross_entropy(logits, y[i:i + batch_size], reduction="sum").item()
        correct += int((logits.argmax(1) == y[i:i + batch_size]).sum())
    return total / len(x), correct / len(x)


def train_classifier(train_images: np.ndarray, train_labels: np.ndarray,
                     val_images: np.ndarray, val_labels: np.ndarray, *,
                     model: str = "small-cnn", num_classes: int | None = None, epochs: int = 100,
                     batch_size: int = 64, lr: float = 1e-3, patience: int = 10,
                     lr_patience: int = 5, lr_factor: float = 0.1, seed: int = 0,
                     device: str = "auto", samples_per_epoch: int | None = None,
                     sampler: str | None = None, groups: np.ndarray | None = None,
                     progress: bool = True) -> TrainedClassifier:
    """Train ``model`` from scratch; early stopping on the real validation loss.

    Adam(``lr``), ReduceLROnPlateau(``lr_patience``, ``lr_factor``) on the validation loss, stop
    after ``patience`` epochs without improvement, best-validation weights restored. Each epoch
    draws ``samples_per_epoch`` images (default: all) with ``sampler`` (see
    :class:`TrainingSource`; ``groups`` gives each image's member for ``"member"``). The seed fixes
    the initialisation, the draws and dropout.
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
        net = create_classifier(model, in_channels=in_ch, num_classes=k).to(dev)
        opt = torch.optim.Adam(net.parameters(), lr=lr)
        sched = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, mode="min", factor=lr_factor,
                                                           patience=lr_patience)
        rng = np.random.default_rng(derive_seed(seed, "downstream", "draws"))
        tx = torch.from_numpy(np.ascontiguousarray(src.images)).to(dev)
        ty = torch.from_numpy(src.labels).to(dev)
        vx = torch.from_numpy(np.ascontiguousarray(val_x)).to(dev)
        vy = torch.from_numpy(val_y).to(dev)

        from tqdm.auto import tqdm

        best_loss, best_state, best_epoch, bad = math.inf, None, 0, 0
        rows = []
        bar = tqdm(range(1, int(epochs) + 1), desc=f"train {model}", unit="epoch",
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
                loss = F.cross_entropy(logits, ty[b])
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                run_loss += loss.item() * len(b)
                seen += len(b)
            val_loss, val_acc = _loss_and_accuracy(net, vx, vy, 512)
            lr_now = opt.param_groups[0]["lr"]
            sched.step(val_loss)
            rows.append({"epoch": epoch, "train_loss": run_loss / max(seen, 1), "val_loss": val_loss,
                         "val_accuracy": val_acc, "lr": lr_now})
            bar.set_postfix(val_loss=f"{val_loss:.4f}", best=best_epoch)
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
                             time.perf_counter() - t0, model, str(dev))


