"""Embedding throughput (images/s) per timm backbone and input size, on real PneumoniaMNIST images.

Random weights (the cost does not depend on the weights). Each cell embeds ``--n`` real training
images once after a warm-up batch; the model build time is reported separately.

    python benchmarks/embed_throughput.py [--data-root DIR] [--n 512] [--device auto]
        [--backbones resnet18,resnet50,efficientnet_b0,vit_tiny_patch16_224] [--sizes 28,32,64]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

from ensemble.data import load_medmnist
from ensemble.features.embedder import Embedder

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import sync_device  # noqa: E402

DEFAULT_BACKBONES = "resnet18,resnet50,efficientnet_b0,vit_tiny_patch16_224"


def bench(backbone: str, size: int, images: np.ndarray, device: str, batch_size: int) -> dict:
    e = Embedder(backbone, weights="random", image_size=size, device=device, batch_size=batch_size)
    t0 = time.perf_counter()
    e.embed(images[:batch_size], progress=False)  # build + warm-up
    sync_device(e.device_)
    build = time.perf_counter() - t0
    t0 = time.perf_counter()
    feats = e.embed(images, progress=False)
    sync_device(e.device_)
    dt = time.perf_counter() - t0
    return {"backbone": backbone, "size": size, "dim": feats.shape[1], "build_s": build,
            "seconds": dt, "img_s": len(images) / dt, "device": str(e.device_)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data-root", default=os.environ.get("GAN_ENSEMBLE_DATA", "../shared/data"))
    ap.add_argument("--n", type=int, default=512, help="images per measurement")
    ap.add_argument("--backbones", default=DEFAULT_BACKBONES)
    ap.add_argument("--sizes", default="28,32,64")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--batch-size", type=int, default=256)
    args = ap.parse_args()

    ds = load_medmnist("pneumoniamnist", "train", root=args.data_root, download=False)
    images = ds.subset(args.n, seed=0).images
    print(f"{len(images)} real PneumoniaMNIST images, torch {torch.__version__}, "
          f"{torch.get_num_threads()} CPU threads, batch {args.batch_size}")
    rows = []
    for backbone in [b for b in args.backbones.split(",") if b]:
        for size in [int(s) for s in args.sizes.split(",") if s]:
            try:
                r = bench(backbone, size, images, args.device, args.batch_size)
            except ValueError as exc:  # e.g. an input too small for the backbone's strides
                print(f"  {backbone:<22} {size:>3}px  skipped: {exc}", flush=True)
                continue
            rows.append(r)
            print(f"  {backbone:<22} {size:>3}px  {r['img_s']:>9.0f} img/s", flush=True)
    print()
    print(f"{'backbone':<22} {'size':>4} {'dim':>5} {'build s':>8} {'img/s':>9}  device")
    for r in rows:
        print(f"{r['backbone']:<22} {r['size']:>4} {r['dim']:>5} {r['build_s']:>8.2f} "
              f"{r['img_s']:>9.0f}  {r['device']}")


if __name__ == "__main__":
    main()
