"""The in-domain backbone: a timm model trained on the real training images and their labels.

``Embedder(weights="in-domain").fit(images, labels)`` (the reference's "medical" variant) trains
the backbone for a few seeded epochs of Adam + cross-entropy (:func:`train_backbone`) and keeps
the trained weights in the feature cache (``<cache>/models/<backbone>-<key>.safetensors``), keyed
by the data hash, backbone, seed and training settings (:func:`in_domain_key`), so the same data
and settings reuse them instead of training again (:func:`fit_in_domain`).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ensemble.features.cache import FeatureCache, hash_arrays
from zoo.io import atomic_write
from zoo.seeding import derive_seed, torch_generator

__all__ = ["IN_DOMAIN_FORMAT", "in_domain_key", "fit_in_domain", "train_backbone"]

log = logging.getLogger(__name__)

IN_DOMAIN_FORMAT = "gan-ensemble-in-domain/1"


def in_domain_key(cache: FeatureCache, images: np.ndarray, labels: np.ndarray, *, backbone: str,
                  image_size: int, channels: str, in_chans: int, seed: int, epochs: int, lr: float,
                  fit_batch_size: int, num_classes: int) -> str:
    """The cache key of the weights trained on ``images``/``labels`` with these settings."""
    import timm

    return cache.key(kind="in-domain-backbone", backbone=backbone, image_size=int(image_size),
                     channels=channels, in_chans=in_chans, seed=int(seed), epochs=int(epochs),
                     lr=float(lr), fit_batch_size=int(fit_batch_size), num_classes=num_classes,
                     data=hash_arrays(images, labels), timm_version=timm.__version__)


def fit_in_domain(model: nn.Module, images: np.ndarray, labels: np.ndarray, *,
                  prep: Callable[[torch.Tensor], torch.Tensor], device: torch.device, backbone: str,
                  image_size: int, channels: str, in_chans: int, seed: int, epochs: int, lr: float,
                  fit_batch_size: int, num_classes: int,
                  cache_dir: str | os.PathLike | None = None) -> Path:
    """Give ``model`` (a classifier with ``num_classes`` outputs, on ``device``) its in-domain
    weights: loaded from the feature cache when there, else trained and saved. Returns the file.

    ``prep`` maps a uint8 batch on ``device`` to the model's normalised input.
    """
    cache = FeatureCache(cache_dir)
    key = in_domain_key(cache, images, labels, backbone=backbone, image_size=image_size,
                        channels=channels, in_chans=in_chans, seed=seed, epochs=epochs, lr=lr,
                        fit_batch_size=fit_batch_size, num_classes=num_classes)
    path = cache.models_dir / f"{backbone.replace('/', '_')}-{key[:24]}.safetensors"
    if path.is_file():
        from safetensors.torch import load_file

        try:
            model.load_state_dict(load_file(str(path), device="cpu"))
            log.info("in-domain %s: reusing trained weights %s", backbone, path)
        except Exception as exc:
            log.warning("cached in-domain weights %s unreadable (%s); training again", path, exc)
            path.unlink(missing_ok=True)
    if not path.is_file():
        train_backbone(model, images, labels, prep=prep, device=device, seed=seed, epochs=epochs,
                       lr=lr, batch_size=fit_batch_size, desc=f"in-domain {backbone}")
        from safetensors.torch import save_file

        state = {k: v.detach().cpu().contiguous().clone() for k, v in model.state_dict().items()}
        atomic_write(path, lambda p: save_file(state, str(p), metadata={
            "backbone": backbone, "key": key, "format": IN_DOMAIN_FORMAT}))
        log.info("in-domain %s: saved trained weights to %s", backbone, path)
    return path


def train_backbone(model: nn.Module, images: np.ndarray, labels: np.ndarray, *,
                   prep: Callable[[torch.Tensor], torch.Tensor], device: torch.device, seed: int,
                   epochs: int, lr: float, batch_size: int, desc: str = "in-domain") -> None:
    """A few seeded epochs of Adam + cross-entropy on the preprocessed images (``model`` ends in eval)."""
    from tqdm.auto import tqdm

    model.train()
    opt = torch.optim.Adam(model.parameters(), lr=float(lr))
    shuffle = torch_generator(derive_seed(seed, "embed", "in-domain", "shuffle"))
    y_all = torch.from_numpy(labels)
    n = len(images)
    bs = min(int(batch_size), n)
    steps = int(epochs) * ((n + bs - 1) // bs)
    devices = [device.index or 0] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(derive_seed(seed, "embed", "in-domain", "train"))
        bar = tqdm(total=steps, desc=desc, unit="step", leave=False)
        try:
            for epoch in range(int(epochs)):
                perm = torch.randperm(n, generator=shuffle)
                correct = seen = 0
                total_loss = 0.0
                for start in range(0, n, bs):
                    idx = perm[start:start + bs]
                    if len(idx) < 2 and n > 1:  # BatchNorm cannot train on one sample
                        continue
                    x = prep(torch.from_numpy(images[idx.numpy()]).to(device))
                    y = y_all[idx].to(device)
                    logits = model(x)
                    loss = F.cross_entropy(logits, y)
                    opt.zero_grad(set_to_none=True)
                    loss.backward()
                    opt.step()
                    total_loss += float(loss.detach()) * len(idx)
                    correct += int((logits.argmax(1) == y).sum())
                    seen += len(idx)
                    bar.update(1)
                log.info("%s epoch %d/%d: loss %.4f, train accuracy %.3f", desc,
                         epoch + 1, epochs, total_loss / max(seen, 1), correct / max(seen, 1))
        finally:
            bar.close()
    model.eval()
