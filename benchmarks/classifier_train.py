"""Downstream classifier training speed: channels-last (what ``train_classifier`` uses on a CPU)
against torch's default contiguous layout, on real PneumoniaMNIST batches.

Each cell times ``--steps`` optimizer steps of the training loop's work (a batch of 64 real
training images through :func:`ensemble.downstream.training.to_input`, forward, weighted
cross-entropy, backward, Adam) after a few warm-up steps, for one network layout and one torch
thread count; the two layouts alternate ``--repeats`` times and the best time of each is kept (the
machine may be shared). The ratio column is contiguous / channels-last: above 1, channels-last is
faster.

    python benchmarks/classifier_train.py [--data-root DIR] [--models small-cnn,resnet18-cifar]
        [--threads 1,2] [--steps 40] [--repeats 3] [--device cpu]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch
from torch.nn import functional as F

from ensemble.data import load_medmnist
from ensemble.downstream.models import create_classifier
from ensemble.downstream.training import to_input
from zoo.device import resolve_device

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import sync_device  # noqa: E402

LAYOUTS = {"contiguous": torch.contiguous_format, "channels-last": torch.channels_last}


def time_steps(model: str, layout: torch.memory_format, images: torch.Tensor, labels: torch.Tensor,
               steps: int, device: torch.device, batch_size: int = 64, warmup: int = 3) -> float:
    """Seconds per optimizer step of ``model`` trained in ``layout`` on ``images``."""
    torch.manual_seed(0)
    net = create_classifier(model, in_channels=1, num_classes=2).to(device, memory_format=layout)
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    rng = np.random.default_rng(0)
    batches = [torch.from_numpy(rng.integers(0, len(images), batch_size)).to(device)
               for _ in range(warmup + steps)]
    net.train()
    t0 = 0.0
    for i, b in enumerate(batches):
        if i == warmup:
            sync_device(device)
            t0 = time.perf_counter()
        loss = F.cross_entropy(net(to_input(images[b])), labels[b])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    sync_device(device)
    return (time.perf_counter() - t0) / steps


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data-root", default=os.environ.get("GAN_ENSEMBLE_DATA", "../shared/data"))
    ap.add_argument("--models", default="small-cnn,resnet18-cifar")
    ap.add_argument("--threads", default="1,2", help="torch CPU thread counts to measure")
    ap.add_argument("--steps", type=int, default=40, help="timed steps per cell (resnet18-cifar: a tenth)")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args()

    device = resolve_device(args.device)
    ds = load_medmnist("pneumoniamnist", "train", root=args.data_root, download=False)
    images = torch.from_numpy(np.ascontiguousarray(ds.images)).to(device)
    labels = torch.from_numpy(np.asarray(ds.labels).reshape(-1).astype(np.int64)).to(device)
    print(f"{len(images)} real PneumoniaMNIST training images, torch {torch.__version__}, "
          f"device {device}, batch 64, best of {args.repeats}")
    print(f"{'model':<15s} {'threads':>7s} {'contiguous ms':>14s} {'channels-last ms':>17s} {'ratio':>6s}")
    for model in [m for m in args.models.split(",") if m]:
        steps = max(3, args.steps // 10) if model == "resnet18-cifar" else args.steps
        for threads in [int(t) for t in args.threads.split(",") if t]:
            torch.set_num_threads(threads)
            best = {name: float("inf") for name in LAYOUTS}
            for _ in range(args.repeats):
                for name, layout in LAYOUTS.items():
                    best[name] = min(best[name], time_steps(model, layout, images, labels, steps, device))
            a, b = best["contiguous"] * 1e3, best["channels-last"] * 1e3
            print(f"{model:<15s} {threads:>7d} {a:>14.1f} {b:>17.1f} {a / b:>6.2f}", flush=True)


if __name__ == "__main__":
    main()
