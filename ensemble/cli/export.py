"""``gan-ensemble export``: write the selected ensemble's class-balanced synthetic dataset."""

from __future__ import annotations

import argparse

from ensemble.cli.common import add_device, add_out, add_overwrite, add_seed, add_selected

__all__ = ["register", "run"]


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "export",
        help="sample G* class-balanced and write it as a dataset (PNG tree, MedMNIST npz)",
        description=(
            "Sample every member of the selected ensemble (its share of each class, from the seed) "
            "and write OUT/train/<class>/*.png (ImageFolder), OUT/<flag>_synthetic.npz (MedMNIST "
            "layout), manifest.csv and meta.json. The folder appears only when complete."
        ),
    )
    add_selected(p)
    p.add_argument("--n-per-class", type=int, default=None,
                   help="images per class (default: real training size / classes, for MedMNIST flags)")
    add_seed(p, "the exported samples")
    p.add_argument("--formats", default="png,npz", help="comma-separated: png, npz (default png,npz)")
    add_overwrite(p, "an OUT dataset folder")
    p.add_argument("--flag", default=None,
                   help="dataset flag naming the npz (default: the generators' dataset)")
    p.add_argument("--data-root", default=None,
                   help="real data folder, only used to size the default --n-per-class")
    add_device(p)
    add_out(p, "output folder (must not exist unless --overwrite)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ensemble.search.result import Ensemble
    from ensemble.seeds import export_seed
    from ensemble.synthesis.export import export_dataset
    from ensemble.synthesis.sample import default_n_per_class, sample_ensemble
    from zoo.catalog import Catalog

    ensemble = Ensemble.load(args.selected)
    catalog = Catalog(args.zoo, create=False)
    n = args.n_per_class
    if n is None:
        dataset = args.flag or ensemble.meta.get("dataset") or catalog.get(ensemble.members[0]).get("dataset")
        if not dataset or dataset == "unknown":
            raise ValueError("cannot tell the dataset to size the export; pass --n-per-class N")
        n = default_n_per_class(dataset, root=args.data_root)
        print(f"--n-per-class not given: using {n} (real {dataset} training size / classes)")
    formats = [f.strip() for f in args.formats.split(",") if f.strip()]
    samples = sample_ensemble(ensemble, catalog, n_per_class=n, seed=export_seed(args.seed),
                              device=args.device)
    meta = {"zoo": str(catalog.zoo_dir), "selected": str(args.selected), "root_seed": args.seed}
    if ensemble.meta.get("memorisation"):  # the audit of G*'s members, from the score tables
        meta["memorisation"] = ensemble.meta["memorisation"]
    out = export_dataset(samples, args.out, formats=formats, overwrite=args.overwrite, flag=args.flag,
                         meta=meta)
    counts = ", ".join(f"{c}: {k}" for c, k in zip(samples.class_names, samples.class_counts(), strict=True))
    print(f"wrote {len(samples)} images from {len(ensemble.members)} generators ({counts}) to {out}")
    return {"out": str(out), "n_images": len(samples), "members": list(ensemble.members),
            "class_counts": dict(zip(samples.class_names, map(int, samples.class_counts()), strict=True)),
            "files": sorted(p.relative_to(out).as_posix() for p in out.iterdir())}
