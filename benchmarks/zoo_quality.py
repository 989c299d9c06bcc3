"""Quality of every zoo family at CPU budgets on real PneumoniaMNIST (issue 17's yardstick).

    python benchmarks/zoo_quality.py --data-root /path/to/data --out /tmp/zoo_quality \
        [--iterations 500,1000,2000] [--families dcgan,lsgan] [--image-size 28|32|64]

Each family is trained once (``zoo.train``, batch 64, seed 0, one torch thread, resumable: a
second call with more iterations continues the saved runs) on the real training split, with a
snapshot at every iteration count. Each snapshot draws 4,708 samples (the size of the training
split; balanced labels, as :mod:`ensemble.label_fidelity` asks for them, so that a generator
ignoring its labels scores 1/K) and is scored against the 4,708 real training images with a
random ResNet-18 at 32 px, k = 5: d, density, coverage. *Label agreement* is the share of
samples that a small CNN trained on the real training split (early-stopped on the real
validation split; never the test split; seeded by ``ensemble.seeds.label_classifier_seed(0)``)
assigns to their conditioning class; the classifier's own accuracy on the validation split is
printed beside it. Also printed: training speed (it/s)
and the sample mean / std of pixel values against the real ones. A grid of 64 samples per family
and snapshot (one row band per class) is written to ``--out`` beside a grid of real images.
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path

import numpy as np
import torch

FAMILIES = ["dcgan", "lsgan", "wgan", "cgan", "acgan", "sngan", "wgan-gp", "progan"]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data-root", default=None, help="data folder (default: $GAN_ENSEMBLE_DATA)")
    ap.add_argument("--out", default="zoo_quality", help="zoo folder, grids and results.json")
    ap.add_argument("--iterations", default="500,1000,2000",
                    help="snapshot iteration counts, comma-separated")
    ap.add_argument("--families", default=",".join(FAMILIES))
    ap.add_argument("--image-size", type=int, default=28, choices=(28, 32, 64),
                    help="32 pads the 28 px images by 2 px (edge values); 64 reads the MedMNIST+ "
                         "file pneumoniamnist_64.npz from the data folder")
    ap.add_argument("--samples", type=int, default=4708, help="samples per snapshot")
    ap.add_argument("--classifier-epochs", type=int, default=20,
                    help="epochs of the label classifier (early-stopped on validation)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    torch.set_num_threads(args.threads)

    import zoo
    from ensemble import Embedder, density_coverage, knn_radii, load_dataset
    from ensemble.features import sample_labels
    from ensemble.grids import save_grid
    from ensemble.label_fidelity import fit_label_classifier, label_agreement
    from ensemble.scoring import prepare_features
    from ensemble.seeds import label_classifier_seed

    iterations = sorted(int(s) for s in args.iterations.split(","))
    families = [f for f in args.families.split(",") if f]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    size = 64 if args.image_size == 64 else None
    train = load_dataset("pneumoniamnist", split="train", root=args.data_root, size=size)
    val = load_dataset("pneumoniamnist", split="val", root=args.data_root, size=size)

    def sized(images: np.ndarray) -> np.ndarray:
        if args.image_size == 32:
            return np.pad(images, ((0, 0), (2, 2), (2, 2)), mode="edge")
        return images

    real, labels = sized(train.images), train.labels
    judge = fit_label_classifier(real, labels, sized(val.images), val.labels,
                                 seed=label_classifier_seed(0), epochs=args.classifier_epochs,
                                 device=args.device)
    print(f"label classifier: small CNN on the training split, validation accuracy "
          f"{judge.val_accuracy:.3f}")
    embedder = Embedder("resnet18", weights="random", image_size=32, device=args.device,
                        batch_size=256, seed=0)
    real_f = embedder.embed(real, progress=False)
    radii = knn_radii(prepare_features(real_f, device="cpu"), 5)
    rng = np.random.default_rng(0)
    save_grid(real[rng.choice(len(real), 64, replace=False)], out / "real.png", nrow=8)
    print(f"real: mean {real.mean():.1f} std {real.std():.1f} (uint8), {len(real)} images, "
          f"{args.image_size} px")

    results = []
    header = (f"{'family':8} {'iter':>5} {'d':>6} {'density':>8} {'coverage':>8} {'label':>6} "
              f"{'it/s':>6} {'mean':>6} {'std':>6}")
    print(header)
    for fam in families:
        t0 = time.perf_counter()
        before = zoo.Catalog(out, create=True).names()
        ids = zoo.train(fam, real, labels, out_dir=out, iterations=iterations[-1],
                        snapshots=iterations, batch_size=64, seed=0, device=args.device,
                        dataset="pneumoniamnist")
        seconds = time.perf_counter() - t0
        cat = zoo.Catalog(out)
        trained = [n for n in cat.names() if n not in before]
        # a resumed run trains on from its last stored snapshot: the rate counts only the new iterations
        kept = [it for it, gid in zip(iterations, ids, strict=True) if cat.get(gid)["name"] not in trained]
        start = max(kept, default=0)
        rate = (iterations[-1] - start) / seconds if trained and iterations[-1] > start else float("nan")
        for it, gid in zip(iterations, ids, strict=True):
            gen = cat.load(gid, device=args.device)
            y = sample_labels(args.samples, train.num_classes, seed=1, per_class=True)
            x = gen.sample(args.samples, labels=y, seed=1)
            m = density_coverage(real=real_f, fake=embedder.embed(x, progress=False), k=5,
                                 real_radii=radii, precision_recall=False, device="cpu")
            agree = label_agreement(judge, x, y)
            row = {"family": fam, "iteration": it, "d": m["d"], "density": m["density"],
                   "coverage": m["coverage"], "label_agreement": agree, "it_per_s": rate,
                   "mean": float(x.mean()), "std": float(x.std())}
            results.append(row)
            print(f"{fam:8} {it:5d} {m['d']:6.3f} {m['density']:8.3f} {m['coverage']:8.3f} "
                  f"{agree:6.3f} {rate:6.2f} {x.mean():6.1f} {x.std():6.1f}", flush=True)
            grid_y = np.repeat(np.arange(train.num_classes), 64 // train.num_classes)
            save_grid(gen.sample(len(grid_y), labels=grid_y, seed=2), out / f"{fam}_{it}.png",
                      nrow=8, labels=grid_y)
    (out / "results.json").write_text(json.dumps(
        {"label_classifier_val_accuracy": judge.val_accuracy, "image_size": args.image_size,
         "results": results}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
