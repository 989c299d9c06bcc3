"""``gan-ensemble evaluate``: train on synthetic, test on real; G* against the baselines."""

from __future__ import annotations

import argparse
from pathlib import Path

from ensemble.cli.common import add_data, add_device, add_out, add_seed, add_selected

__all__ = ["register", "run"]


def _int_list(text: str) -> list[int]:
    try:
        values = [int(x) for x in text.split(",") if x.strip()]
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from exc
    if not values:
        raise argparse.ArgumentTypeError("give at least one seed, e.g. 0,1,2")
    return values


def register(subparsers) -> None:
    from ensemble.downstream import METRICS

    p = subparsers.add_parser(
        "evaluate",
        help="downstream value: train a classifier per arm on synthetic data, test on real",
        description=(
            "Arms: real data, G*, every single generator, all generators pooled, random "
            "ensembles of |G*| members, and the best single generator (chosen on validation) "
            "sampled with |G*| times as many images. Each arm trains a classifier per seed (early stopping on "
            "the real validation split) and is tested on the real test split. Writes "
            "OUT/comparison.csv (one row per arm and seed), OUT/summary.csv (mean and std) and "
            "OUT/downstream.png."
        ),
    )
    add_selected(p)
    add_data(p, help_dataset="MedMNIST flag, npz file or ImageFolder tree (default: the generators' dataset)")
    p.add_argument("--model", default="small-cnn", help="classifier: small-cnn or resnet18-cifar (the reference)")
    p.add_argument("--seeds", type=_int_list, default=[0, 1, 2], help="training seeds (default 0,1,2)")
    p.add_argument("--epochs", type=int, default=100, help="maximum epochs (default 100)")
    p.add_argument("--steps", type=int, default=None,
                   help="budget in optimizer steps (replaces --epochs; default: use --epochs)")
    p.add_argument("--min-steps", type=int, default=300,
                   help="floor on the budget in optimizer steps, for small sets (default 300)")
    p.add_argument("--warmup-steps", type=int, default=100,
                   help="no checkpoint and no early stop before this many steps (default 100)")
    p.add_argument("--samples-per-epoch", type=int, default=None,
                   help="draws between validation passes, every arm alike (default: real train size)")
    p.add_argument("--patience", type=int, default=10, help="early-stopping patience in epochs (default 10)")
    p.add_argument("--class-weight", default="real", choices=["real", "none"],
                   help="loss weighted by the real training class frequencies (the reference), or none")
    p.add_argument("--threshold", default="val", choices=["val", "argmax"],
                   help="binary tasks: decision threshold chosen on the real validation split, or arg-max")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--n-per-class", type=int, default=None,
                   help="synthetic images per class and generator (default: real train size / classes)")
    p.add_argument("--n-random", type=int, default=3, help="random ensembles of |G*| members (default 3)")
    p.add_argument("--no-singles", action="store_true",
                   help="skip training the single-generator arms (they still make up the naive pool)")
    add_seed(p, "sampling the arms (ensemble.seeds.arms_seed, as quickstart)")
    p.add_argument("--metric", default="g_mean", choices=METRICS, help="metric plotted (default g_mean)")
    add_device(p)
    add_out(p, "output folder")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ensemble import seeds
    from ensemble.downstream import (
        add_equal_samples_arm,
        build_arms,
        compare,
        plot_comparison,
        real_splits,
        summarize,
    )
    from ensemble.search.result import Ensemble
    from ensemble.synthesis.sample import balanced_n_per_class
    from zoo.catalog import Catalog
    from zoo.io import atomic_write

    ensemble = Ensemble.load(args.selected)
    catalog = Catalog(args.zoo, create=False)
    splits, dataset, resized = real_splits(catalog, ensemble, dataset=args.dataset, root=args.data_root,
                                           size=args.size)
    if resized:
        print(f"resized real {dataset} images to {splits['train'].image_shape[:2]} to match the generators")
    n_pc = args.n_per_class or balanced_n_per_class(splits["train"].labels)
    arms = build_arms(catalog, ensemble, splits["train"], n_per_class=n_pc,
                      n_random=args.n_random, seed=seeds.arms_seed(args.seed), device=args.device,
                      singles=not args.no_singles, samples_per_epoch=args.samples_per_epoch)
    arms["real"].samples_per_epoch = args.samples_per_epoch
    budget = f"up to {args.steps} steps" if args.steps else f"up to {args.epochs} epochs"
    print(f"{len(arms)} arms x {len(args.seeds)} seeds, {args.model}, {budget} (at least "
          f"{args.min_steps} steps): " + ", ".join(arms))
    settings = dict(seeds=args.seeds, model=args.model, epochs=args.epochs, steps=args.steps,
                    min_steps=args.min_steps, warmup_steps=args.warmup_steps, patience=args.patience,
                    batch_size=args.batch_size, lr=args.lr, device=args.device,
                    class_weight=None if args.class_weight == "none" else args.class_weight,
                    threshold=None if args.threshold == "argmax" else args.threshold,
                    real_labels=splits["train"].labels)
    df = compare(arms, splits["val"], splits["test"], **settings)
    df = add_equal_samples_arm(df, catalog, ensemble, splits["val"], splits["test"], n_per_class=n_pc,
                               seed=seeds.arms_seed(args.seed),
                               samples_per_epoch=args.samples_per_epoch, **settings)
    summary = summarize(df)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write(out / "comparison.csv", lambda p: df.to_csv(p, index=False))
    atomic_write(out / "summary.csv", lambda p: summary.to_csv(p, index=False))
    plot_comparison(summary, out / "downstream.png", metric=args.metric,
                    title=f"{dataset}: train on synthetic, test on real ({args.model})")
    m = args.metric
    for _, r in summary.iterrows():
        if r["arm"].startswith(("single:", "random-ensemble-")):
            continue
        auc = "" if m == "roc_auc" else f"  roc_auc {r['roc_auc_mean']:.4f} ± {r['roc_auc_std']:.4f}"
        print(f"  {r['arm']:<28} {m} {r[f'{m}_mean']:.4f} ± {r[f'{m}_std']:.4f}{auc}  (n={r['n_runs']})")
    print(f"wrote {out / 'comparison.csv'}, {out / 'summary.csv'}, {out / 'downstream.png'}")
    return {"out": str(out), "paths": {"comparison": str(out / "comparison.csv"),
                                       "summary": str(out / "summary.csv"),
                                       "figure": str(out / "downstream.png")},
            "summary": summary.to_dict(orient="records")}
