"""Training speed and peak memory of every zoo family on real PneumoniaMNIST (a figure to track).

    python benchmarks/zoo_train.py --data-root /path/to/data [--batch-size 64] [--iterations 20]

Each family runs in its own process (so that peak memory is its own): ``--warmup`` iterations,
then ``--iterations`` timed ones at 28x28, batch 64 by default. ``progan`` is timed at its full
resolution (the most expensive stage). Memory: on CUDA ``torch.cuda.max_memory_allocated``; on
the CPU the peak resident set size during training minus the RSS before the nets were built
(sampled every 5 ms). The data root is ``--data-root`` or ``$GAN_ENSEMBLE_DATA``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import threading
import time
from pathlib import Path

FAMILIES = ["dcgan", "lsgan", "wgan", "wgan-gp", "sngan", "acgan", "cgan", "progan"]


def _rss_bytes() -> int:
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:  # not Linux: peak RSS so far (KiB on Linux/BSD, bytes on macOS)
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return peak if sys.platform == "darwin" else peak * 1024


class _PeakRSS:
    """Samples the resident set size in a thread; ``peak`` is the largest value seen."""

    def __init__(self, every: float = 0.005) -> None:
        self.every = every
        self.peak = _rss_bytes()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, _rss_bytes())
            time.sleep(self.every)

    def __enter__(self) -> _PeakRSS:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, _rss_bytes())


def worker(args: argparse.Namespace) -> dict:
    """Time one family in this process; return its figures."""
    import torch

    from ensemble.data import load_medmnist
    from zoo.config import build_config
    from zoo.device import resolve_device
    from zoo.nets.blocks import resolution_plan
    from zoo.trainer import GANTrainer

    if args.threads:
        torch.set_num_threads(args.threads)
    ds = load_medmnist("pneumoniamnist", split="train", root=args.data_root, download=False)
    device = resolve_device(args.device)
    cfg = build_config(args.worker, num_classes=ds.num_classes, image_size=28, channels=1,
                       batch_size=args.batch_size)
    torch.optim.Adam([torch.zeros(1, requires_grad=True)])  # one-time imports, not the nets' memory
    base_rss = _rss_bytes()
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    with _PeakRSS() as rss:
        trainer = GANTrainer(args.worker, cfg, ds.images, ds.labels, seed=0, run="bench",
                             device=device)
        if "stage_iters" in cfg:  # time the full-resolution stage
            growths = resolution_plan(cfg["image_size"])[1]
            trainer.iteration = (1 + 2 * growths) * cfg["stage_iters"]
        for _ in range(args.warmup):
            trainer.step()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        t0 = time.perf_counter()
        for _ in range(args.iterations):
            losses = trainer.step()
        float(losses["loss_d"])  # waits for the device
        seconds = time.perf_counter() - t0
    peak = (torch.cuda.max_memory_allocated(device) if device.type == "cuda"
            else rss.peak - base_rss)
    return {
        "family": args.worker,
        "it_per_s": args.iterations / seconds,
        "peak_mb": peak / 2**20,
        "g_params": sum(p.numel() for p in trainer.G.parameters()),
        "d_params": sum(p.numel() for p in trainer.D.parameters()),
        "n_critic": cfg["n_critic"],
        "device": str(device),
        "threads": torch.get_num_threads(),
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data-root", default=os.environ.get("GAN_ENSEMBLE_DATA"),
                   help="folder with pneumoniamnist.npz (default: $GAN_ENSEMBLE_DATA)")
    p.add_argument("--families", nargs="+", default=FAMILIES)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--iterations", type=int, default=20, help="timed iterations per family")
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--device", default="auto")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    p.add_argument("--worker", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if not args.data_root or not (Path(args.data_root) / "pneumoniamnist.npz").is_file():
        print(f"pneumoniamnist.npz not found in {args.data_root!r}; pass --data-root or set "
              "GAN_ENSEMBLE_DATA", file=sys.stderr)
        return 2
    if args.worker:
        print(json.dumps(worker(args)))
        return 0

    rows = []
    for fam in args.families:
        cmd = [sys.executable, __file__, "--worker", fam, "--data-root", str(args.data_root),
               "--batch-size", str(args.batch_size), "--iterations", str(args.iterations),
               "--warmup", str(args.warmup), "--device", args.device, "--threads", str(args.threads)]
        out = subprocess.run(cmd, capture_output=True, text=True)
        if out.returncode != 0:
            print(f"{fam}: failed\n{out.stderr}", file=sys.stderr)
            return 1
        rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
        print(f"  {fam}: {rows[-1]['it_per_s']:.2f} it/s", file=sys.stderr, flush=True)

    import torch

    print(f"zoo training benchmark: PneumoniaMNIST train (4,708 images), 28x28, batch "
          f"{args.batch_size}, {args.iterations} timed iterations after {args.warmup} warm-up")
    print(f"device {rows[0]['device']}, {rows[0]['threads']} torch threads, {os.cpu_count()} CPUs, "
          f"torch {torch.__version__}, {platform.processor() or platform.machine()}")
    mem = "peak MiB" if rows[0]["device"].startswith("cuda") else "peak RSS +MiB"
    print(f"{'family':<9} {'it/s':>7} {'s/it':>7} {'n_critic':>8} {mem:>13} {'G params':>9} {'D params':>9}")
    for r in rows:
        print(f"{r['family']:<9} {r['it_per_s']:>7.2f} {1 / r['it_per_s']:>7.3f} {r['n_critic']:>8} "
              f"{r['peak_mb']:>13.1f} {r['g_params']:>9,} {r['d_params']:>9,}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
