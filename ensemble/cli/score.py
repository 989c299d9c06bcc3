"""``gan-ensemble score``: embed real and generated images, and write the score tables.

Example::

    gan-ensemble score --zoo zoo/ --dataset pneumoniamnist --backbone resnet18 --weights random \\
        --out tables.npz

Every generator of the zoo is sampled (as many images as the real training split has, unless
``--n-samples``), embedded with the backbone and scored against the real training images
(density, coverage, d, the pairwise table for Inter-d). Features are cached by content
(``--cache-dir``, else ``$GAN_ENSEMBLE_CACHE``, else the user cache dir), so a second run, or one
after an interruption, only computes what is missing.

Seeds come from :mod:`ensemble.seeds` under the root ``--seed`` (the real subset, the embedder,
the generated samples), exactly as ``gan-ensemble quickstart`` derives them, so the same settings
give the same tables as the pipeline.

``--objectives a,b`` names the objectives the tables are for: when none needs the generator-pair
table (e.g. ``class-intra-d,coverage-overlap``), the P² pair products are skipped.
``--holdout val`` (the default) also audits memorisation: the real validation split is the
reference of the per-generator audit (``tables.memorisation``; ``--holdout none`` skips it, as
does a dataset without a validation split).

``--label-epochs N`` (default 3; 0 skips) also measures every generator's *label agreement*: the
share of its samples (``--n-samples`` of them, balanced labels) that a small CNN trained on the
real training split for up to N epochs, early-stopped on the real validation split, assigns to
the class they were drawn for (:mod:`ensemble.label_fidelity`). A dataset without a validation
split gets no label agreement, and a line says so. The per-generator summary (density,
coverage, d, label agreement) is written beside the tables as ``<out>.csv`` and is in ``--json``.

``--backend dask --scheduler tcp://HOST:8786`` runs the sampling/embedding of each generator and
the blocks of generator pairs on a Dask cluster (``--n-jobs N``: N local processes instead); the
zoo and cache folders must then be shared by the workers (docs/cluster.md).
"""

from __future__ import annotations

import argparse
import contextlib
import re
import time
from pathlib import Path

from ensemble.cli.common import add_data

__all__ = ["register"]


def _names(text: str | None) -> list[str] | None:
    if text is None:
        return None
    names = [p for p in re.split(r"[,\s]+", text.strip()) if p]
    if not names:
        raise ValueError("--names is empty; pass comma-separated generator names (see `gan-ensemble zoo list`)")
    return names


def _positive(value: int | None, flag: str) -> None:
    if value is not None and value < 1:
        raise ValueError(f"{flag} must be a positive integer, got {value}")


def _run(args: argparse.Namespace) -> int:
    from ensemble.data import load_dataset
    from ensemble.features import Embedder
    from ensemble.parallel import backend_from_args
    from ensemble.scoring import score_catalog
    from ensemble.search.objectives import resolve_objectives
    from ensemble.seeds import embedder_seed, real_subset_seed, score_seed
    from zoo.catalog import Catalog

    for value, flag in ((args.n_samples, "--n-samples"), (args.k, "--k"), (args.subset, "--subset"),
                        (args.image_size, "--image-size"), (args.batch_size, "--batch-size"),
                        (args.epochs, "--epochs")):
        _positive(value, flag)
    if args.label_epochs < 0:
        raise ValueError(f"--label-epochs must be 0 (no label agreement) or positive, got {args.label_epochs}")
    out = Path(args.out).expanduser()
    if out.suffix != ".npz":
        raise ValueError(f"--out {str(out)!r} must end in .npz (the score tables file)")
    names = _names(args.names)
    pairwise = any(o.needs_pairwise for o in resolve_objectives(args.objectives))
    catalog = Catalog(args.zoo, create=False)
    ds = load_dataset(args.dataset, split="train", root=args.data_root, size=args.size)
    train_ds = ds
    train_images, train_labels = ds.images, ds.labels
    if args.subset is not None:  # as the pipeline does with n_real (a larger N shuffles)
        ds = ds.subset(args.subset, seed=real_subset_seed(args.seed))
    holdout = None
    if args.holdout != "none":
        try:
            holdout = load_dataset(args.dataset, split=args.holdout, root=args.data_root).images
        except (ValueError, FileNotFoundError, KeyError) as exc:
            print(f"no memorisation audit: no {args.holdout} split of {args.dataset} ({exc})")
        if holdout is not None and holdout.shape == train_images.shape and (holdout == train_images).all():
            print(f"no memorisation audit: {args.dataset} has no separate {args.holdout} split")
            holdout = None
    embedder = Embedder(backbone=args.backbone, weights=args.weights, image_size=args.image_size,
                        channels=args.channels, device=args.device, batch_size=args.batch_size,
                        seed=embedder_seed(args.seed), epochs=args.epochs, cache_dir=args.cache_dir)
    t0 = time.perf_counter()
    if embedder.weights_kind == "in-domain":
        print(f"training {args.backbone} on {len(train_images)} labelled {ds.name} images "
              f"({args.epochs} epochs; reused when cached)")
        embedder.fit(train_images, train_labels)
    n_gen = len(names) if names is not None else len(catalog)
    print(f"scoring {n_gen} generators of {catalog.zoo_dir} against {len(ds)} real {ds.name} images "
          f"({args.backbone}, {embedder.identity}, {args.image_size}px, {args.channels})")
    backend = backend_from_args(args)
    if backend is not None:
        print(f"running the sampling, embedding and scoring tasks on {backend!r}")
    with contextlib.ExitStack() as stack:
        if backend is not None:
            stack.enter_context(backend)
        tables = score_catalog(
            catalog, ds.images, embedder, n_samples=args.n_samples, k=args.k, seed=score_seed(args.seed),
            cache_dir=args.cache_dir, per_class=args.per_class, real_labels=ds.labels, names=names,
            class_names=ds.class_names, backend=backend, pairwise=pairwise, holdout_images=holdout,
        )
    tables.meta.update({"dataset": ds.name, "zoo": str(catalog.zoo_dir)})
    if args.label_epochs:
        _label_agreement(args, tables, catalog, train_ds, n_samples=args.n_samples or len(ds))
    tables.save(out)
    summary_csv = out.with_suffix(".csv")
    table = tables.summary()
    table.to_csv(summary_csv, index=False)
    elapsed = time.perf_counter() - t0

    d = list(tables.d)
    best = max(range(len(d)), key=d.__getitem__)
    print(f"{len(tables.names)} generators scored in {elapsed:.1f} s "
          f"(k={tables.k}, {len(ds)} real, {int(tables.n_fake[best])} samples each)")
    print(f"best single generator by d: {tables.names[best]}  d={tables.d[best]:.4f}  "
          f"density={tables.density[best]:.4f}  coverage={tables.coverage[best]:.4f}")
    if not pairwise:
        print("no generator-pair table (no objective of --objectives needs it): Inter-d is unavailable")
    if tables.degenerate.any():
        reasons = tables.meta.get("degenerate") or {}
        for name in tables.degenerate_names:
            print(f"degenerate: {name} ({reasons.get(name, 'flagged')}); the search leaves it out")
    if args.top > 0:
        summary = tables.summary().head(args.top)
        print(summary.to_string(index=False, float_format=lambda v: f"{v:.4f}"))
    if tables.memorisation is not None:
        print(f"memorisation audit against {tables.memorisation.attrs['n_holdout']} held-out "
              f"{args.holdout} images: {len(tables.flagged)} generator(s) flagged"
              + (f" ({', '.join(tables.flagged)})" if tables.flagged else ""))
    if tables.label_agreement is not None:
        a = tables.meta["label_fidelity"]
        print(f"label agreement: judge {a['model']} ({a['epochs_run']} epochs), validation accuracy "
              f"{a['val_accuracy']:.4f}; generators from {tables.label_agreement.min():.4f} to "
              f"{tables.label_agreement.max():.4f} (chance 1/K with balanced labels)")
    print(f"wrote {out} and {summary_csv}")
    return {"tables": str(out), "summary_csv": str(summary_csv), "n_generators": len(tables.names),
            "n_real": int(tables.n_real), "k": int(tables.k), "seconds": round(elapsed, 3),
            "generators": table.to_dict("records"),
            "label_fidelity": tables.meta.get("label_fidelity"),
            "best": {"name": tables.names[best], "d": float(tables.d[best]),
                     "density": float(tables.density[best]), "coverage": float(tables.coverage[best])}}


def _label_agreement(args: argparse.Namespace, tables, catalog, train_ds, *, n_samples: int) -> None:
    """Attach every generator's label agreement to ``tables``, or say why there is none."""
    from ensemble.data import load_dataset
    from ensemble.label_fidelity import label_agreement_table

    try:
        val_ds = load_dataset(args.dataset, split="val", root=args.data_root, size=args.size)
    except (ValueError, FileNotFoundError, KeyError) as exc:
        print(f"no label agreement: no validation split of {args.dataset} to early-stop its "
              f"classifier on ({exc})")
        return
    if val_ds.images.shape == train_ds.images.shape and (val_ds.images == train_ds.images).all():
        print(f"no label agreement: {args.dataset} has no separate validation split")
        return
    print(f"label agreement: training a small CNN on {len(train_ds)} real training images "
          f"(up to {args.label_epochs} epochs, early-stopped on {len(val_ds)} validation images; "
          "reused when cached)")
    table = label_agreement_table(catalog, tables.names, train_ds, val_ds, n_samples=n_samples,
                                  seed=args.seed, device=args.device, epochs=args.label_epochs,
                                  cache_dir=args.cache_dir)
    tables.add_label_agreement(table)


def register(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add ``score`` to the top-level sub-command parsers."""
    from ensemble.parallel import add_backend_arguments

    p = subparsers.add_parser(
        "score", help="embed real and generated images and write the score tables",
        description="Sample every generator of a zoo, embed it with a timm backbone and score it "
                    "against the real training images (density, coverage, d, pairwise d).",
    )
    p.add_argument("--zoo", required=True, help="zoo folder (with catalog.sqlite)")
    add_data(p, required=True)
    p.add_argument("--backbone", default="resnet18", help="any timm model name (default resnet18)")
    p.add_argument("--weights", default="random",
                   help="random (seeded init), hub (timm pretrained, needs the hub or its cache), "
                        "in-domain (trained on the real training labels) or a .pth/.safetensors file")
    p.add_argument("--image-size", type=int, default=32, help="embedding input size in pixels (default 32)")
    p.add_argument("--channels", choices=("replicate", "native"), default="replicate",
                   help="grayscale: repeat to 3 channels (default) or feed 1 channel natively")
    p.add_argument("--n-samples", type=int, default=None,
                   help="images per generator (default: as many as real training images)")
    p.add_argument("--subset", type=int, default=None,
                   help="score against a seeded stratified subset of N real images (default: all)")
    p.add_argument("--names", default=None, help="comma-separated generator names (default: all)")
    p.add_argument("--k", type=int, default=5, help="k of the k-NN radii (default 5)")
    p.add_argument("--seed", type=int, default=0,
                   help="root seed: the real subset, embedder and sample seeds derive from it "
                        "(ensemble.seeds, as in quickstart; default 0)")
    p.add_argument("--objectives", default="intra-d,inter-d",
                   help="objectives the tables are for (comma-separated); the generator-pair table "
                        "is built only when one of them needs it (default intra-d,inter-d)")
    p.add_argument("--per-class", action="store_true", help="also build per-class score tables")
    p.add_argument("--holdout", choices=("val", "test", "none"), default="val",
                   help="real split of the memorisation audit's reference (default val; none: no audit)")
    p.add_argument("--label-epochs", type=int, default=3,
                   help="epochs of the small CNN that measures each generator's label agreement "
                        "(trained on the training split, early-stopped on the validation split; "
                        "default 3; 0 skips it)")
    p.add_argument("--cache-dir", default=None,
                   help="feature cache folder (default $GAN_ENSEMBLE_CACHE, else the user cache dir)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    p.add_argument("--batch-size", type=int, default=256, help="embedding batch size (default 256)")
    p.add_argument("--epochs", type=int, default=5, help="training epochs for --weights in-domain (default 5)")
    p.add_argument("--top", type=int, default=5, help="print the N best generators by d (default 5)")
    p.add_argument("--out", required=True, help="score tables file to write (.npz)")
    add_backend_arguments(p)
    p.set_defaults(func=_run)
    return p
