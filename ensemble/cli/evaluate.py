"""``gan-ensemble evaluate``: train on synthetic, test on real; G* against the baselines."""

from __future__ import annotations

import argparse
from pathlib import Path

from ensemble.cli.common import add_data, add_device, add_out, add_seed

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
            "Arms: real data, G*, every single generator, all generators pooled, and random "
            "ensembles of |G*| members. Each arm trains a classifier per seed (early stopping on "
            "the real validation split) and is tested on the real test split. Writes "
            "OUT/comparison.csv (one row per arm and seed), OUT/summary.csv (mean and std) and "
            "OUT/downstream.png."
        ),
    )
    p.add_argument("--zoo", required=True, help="zoo folder holding catalog.sqlite")
    p.add_argument("--selected", required=True, help="selected.json from `gan-ensemble search`")
    add_data(p, help_dataset="MedMNIST flag, npz file or ImageFolder tree (default: the generators' dataset)")
    p.add_argument("--model", default="small-cnn", help="classifier: small-cnn or resnet18-cifar (the reference)")
    p.add_argument("--seeds", type=_int_list, default=[0, 1, 2], help="training seeds (default 0,1,2)")
    p.add_argument("--epochs", type=int, default=100, help="maximum epochs (default 100)")
    p.add_argument("--patience", type=int, default=10, help="early-stopping patience in epochs (default 10)")
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
    from ensemble.downstream import build_arms, compare, plot_comparison, real_splits, summarize
    from ensemble.search.result import Ensemble
    from zoo.catalog import Catalog
    from zoo.io import atomic_write

    ensemble = Ensemble.load(args.selected)
    catalog = Catalog(args.zoo, create=False)
    splits, dataset, resized = real_splits(catalog, ensemble, dataset=args.dataset, root=args.data_root,
                                           size=args.size)
    if resized:
        print(f"resized real {dataset} images to {splits['train'].image_shape[:2]} to match the generators")
    arms = build_arms(catalog, ensemble, splits["train"], n_per_class=args.n_per_class,
                      n_random=args.n_random, seed=seeds.arms_seed(args.seed), device=args.device,
                      singles=not args.no_singles)
    print(f"{len(arms)} arms x {len(args.seeds)} seeds, {args.model}, up to {args.epochs} epochs: "
          + ", ".join(arms))
    df = compare(arms, splits["val"], splits["test"], seeds=args.seeds, model=args.model,
                 epochs=args.epochs, patience=args.patience, batch_size=args.batch_size, lr=args.lr,
                 device=args.device)
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
        print(f"  {r['arm']:<24} {m} {r[f'{m}_mean']:.4f} ± {r[f'{m}_std']:.4f}  (n={r['n_runs']})")
    print(f"wrote {out / 'comparison.csv'}, {out / 'summary.csv'}, {out / 'downstream.png'}")
    return {"out": str(out), "paths": {"comparison": str(out / "comparison.csv"),
                                       "summary": str(out / "summary.csv"),
                                       "figure": str(out / "downstream.png")},
            "summary": summary.to_dict(orient="records")}
