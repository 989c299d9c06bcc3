"""``gan-ensemble zoo``: train, list, sample, register and remove the generators of a zoo folder.

Examples::

    gan-ensemble zoo train --dataset pneumoniamnist --families dcgan,lsgan --iterations 2000 \\
        --snapshots 500,1000,2000 --out zoo/
    gan-ensemble zoo train --dataset pneumoniamnist --families dcgan,lsgan,wgan-gp \\
        --backend dask --scheduler tcp://10.0.0.5:8786 --out /shared/zoo/   # one run per task
    gan-ensemble zoo list zoo/
    gan-ensemble zoo sample zoo/ dcgan@2000 -n 64 --out grid.png
    gan-ensemble zoo register-torchscript zoo/ G.pt --name mygan --latent-dim 128 \\
        --num-classes 2 --image-shape 28,28
    gan-ensemble zoo register-callable zoo/ mypkg.gens:build --name other --num-classes 2 \\
        --image-shape 28,28 --kwargs '{"checkpoint": "/data/other.ckpt"}' --run other --iteration 5000
    gan-ensemble zoo register-samples zoo/ samples/biggan-20000/ --name biggan@20000 \\
        --run biggan --iteration 20000 --num-classes 2
    gan-ensemble zoo import zoo/ manifest.csv      # many members at once, all or nothing
"""

from __future__ import annotations

import argparse
import contextlib
import json
import re
from pathlib import Path

import numpy as np

from ensemble.cli.common import add_data

__all__ = ["register"]

LIST_COLUMNS = ["id", "name", "run", "kind", "architecture", "dataset", "image_shape", "num_classes",
                "iteration"]


# ---------------------------------------------------------------------------- argument parsing


def _int_list(text: str, what: str) -> list[int]:
    parts = [p for p in re.split(r"[,\s]+", text.strip()) if p]
    try:
        values = [int(p) for p in parts]
    except ValueError:
        raise ValueError(f"{what} must be comma-separated integers, got {text!r}") from None
    if not values:
        raise ValueError(f"{what} is empty; pass comma-separated integers such as 1,2,3")
    return values


def _image_shape(text: str) -> tuple[int, ...]:
    from zoo.generator import normalize_image_shape

    return normalize_image_shape(_int_list(text.lower().replace("x", ","), "--image-shape"))


def _key_value(text: str) -> tuple[str, object]:
    if "=" not in text:
        raise ValueError(f"--set expects KEY=VALUE, got {text!r}")
    key, raw = text.split("=", 1)
    try:
        value = json.loads(raw)
    except json.JSONDecodeError:
        value = raw
    return key.strip(), value


def _snapshots(text: str | None, iterations: int) -> list[int]:
    if text is None:  # five evenly spaced snapshots, the last at the final iteration
        return sorted({max(1, iterations * k // 5) for k in range(1, 6)})
    snaps = sorted(set(_int_list(text, "--snapshots")))
    bad = [s for s in snaps if not 1 <= s <= iterations]
    if bad:
        raise ValueError(f"--snapshots {bad} outside 1..{iterations} (--iterations); "
                         "pick iterations at which to save the generator")
    return snaps


# ---------------------------------------------------------------------------- actions


def _train(args: argparse.Namespace) -> int:
    from ensemble.parallel import backend_from_args
    from ensemble.seeds import zoo_seed
    from ensemble.zoo_training import DataSpec, train_zoo
    from zoo.catalog import Catalog
    from zoo.config import default_run_name
    from zoo.registry import get_architecture, list_architectures

    families = [f.strip() for f in args.families.split(",") if f.strip()]
    if not families:
        raise ValueError("--families is empty; pass e.g. --families dcgan,lsgan "
                         f"(known: {', '.join(list_architectures())})")
    archs = [get_architecture(f) for f in families]  # unknown names fail before any work
    if args.iterations < 1:
        raise ValueError(f"--iterations must be at least 1, got {args.iterations}")
    snapshots = _snapshots(args.snapshots, args.iterations)
    hparams: dict[str, object] = {}
    for key in ("lr", "optimizer", "dropout", "ema", "diffaug", "output_activation", "latent_dim"):
        value = getattr(args, key)
        if value is not None:
            hparams[key] = value
    for item in args.set or []:
        key, value = _key_value(item)
        hparams[key] = value
    if args.subset is not None and args.subset < 1:
        raise ValueError(f"--subset must be a positive number of images, got {args.subset}")
    backend = backend_from_args(args)  # bad flags fail before the data is read
    data = DataSpec.resolve(args.dataset, split=args.split, root=args.data_root, size=args.size,
                            subset=args.subset, subset_seed=args.seed)
    ds = data.load()
    where = f" on {backend!r}" if backend is not None else ""
    print(f"training {', '.join(families)} on {ds.name} ({len(ds)} images, "
          f"{ds.num_classes} classes) for {args.iterations} iterations; snapshots {snapshots}{where}")
    del ds
    runs = []
    for arch in archs:
        # the same names and per-run seeds as quickstart's zoo stage (ensemble.seeds)
        run: dict[str, object] = {"arch": arch.name, **hparams,
                                  "seed": zoo_seed(args.seed, arch.name, hparams),
                                  "name": default_run_name(arch.name, hparams, args.seed)}
        if args.name:
            run["name"] = args.name if len(archs) == 1 else f"{args.name}-{arch.name}"
        runs.append(run)
    with contextlib.ExitStack() as stack:
        if backend is not None:
            stack.enter_context(backend)
        results = train_zoo(runs, out_dir=args.out, data=data, iterations=args.iterations,
                            snapshots=snapshots, batch_size=args.batch_size, seed=args.seed,
                            device=args.device, backend=backend)
    for arch, res in zip(archs, results, strict=True):
        ids = res["ids"]
        print(f"{arch.name}: {len(ids)} generators (ids {', '.join(map(str, ids))})")
    print(f"catalog: {Path(args.out) / 'catalog.sqlite'} ({len(Catalog(args.out))} generators)")
    return {"zoo": str(args.out), "catalog": str(Path(args.out) / "catalog.sqlite"),
            "runs": [{k: r[k] for k in ("run", "arch", "ids", "names", "trained")} for r in results]}


def _architectures(args: argparse.Namespace) -> int:
    from zoo.registry import get_architecture, list_architectures

    rows = []
    for name in list_architectures():
        arch = get_architecture(name)
        print(f"{name:<10s} {arch.loss:<12s} {arch.description}")
        rows.append({"name": name, "loss": arch.loss, "description": arch.description})
    return {"architectures": rows}


def _list(args: argparse.Namespace) -> int:
    from zoo.catalog import Catalog

    catalog = Catalog(args.zoo_dir, create=False)
    table = catalog.list()
    if not args.all and not table.empty:
        table = table[LIST_COLUMNS]
    records = json.loads(table.to_json(orient="records", default_handler=str)) if not table.empty else []
    if not getattr(args, "json", False):
        if args.format == "json":
            print(json.dumps(records, indent=1))
        elif table.empty:
            print(f"no generators in {args.zoo_dir}")
        elif args.format == "csv":
            shown = table.assign(image_shape=table["image_shape"].map(lambda s: "x".join(map(str, s))))
            print(shown.to_csv(index=False), end="")
        else:
            shown = table.assign(image_shape=table["image_shape"].map(lambda s: "x".join(map(str, s))))
            print(shown.to_string(index=False))
    return {"zoo": str(args.zoo_dir), "generators": records}


def _sample(args: argparse.Namespace) -> int:
    from ensemble.grids import save_grid
    from zoo.catalog import Catalog
    from zoo.generator import check_n, resolve_labels
    from zoo.io import atomic_write

    n = check_n(args.n)
    out = Path(args.out)
    if out.suffix.lower() not in (".png", ".npz"):
        raise ValueError(f"--out must end in .png (a grid) or .npz (the arrays), got {str(out)!r}")
    catalog = Catalog(args.zoo_dir, create=False)
    gen = catalog.load(args.generator, device=args.device)
    labels = None
    if args.labels is not None:
        labels = _int_list(args.labels, "--labels")
        if len(labels) == 1:
            labels = labels * n
    # Resolve labels here (as sample() would) so the grid can group images by class.
    labels = resolve_labels(n, labels, gen.num_classes, args.seed)
    images = gen.sample(n, labels=labels, seed=args.seed)
    if out.suffix.lower() == ".npz":
        def write(tmp: Path) -> None:
            with open(tmp, "wb") as f:  # a file object: savez would append ".npz" to a path
                np.savez_compressed(f, images=images, labels=labels)

        atomic_write(out, write)
    else:
        save_grid(images, out, nrow=args.nrow, labels=labels)
    print(f"wrote {n} images of {catalog.get(args.generator)['name']} to {out}")
    return {"out": str(out), "n_images": int(n), "generator": catalog.get(args.generator)["name"]}


def _register_torchscript(args: argparse.Namespace) -> int:
    from zoo.catalog import Catalog

    catalog = Catalog(args.zoo_dir)
    new_id = catalog.register_torchscript(args.file, name=args.name, latent_dim=args.latent_dim,
                                          num_classes=args.num_classes,
                                          image_shape=_image_shape(args.image_shape),
                                          dataset=args.dataset, copy=not args.no_copy,
                                          run=args.run, iteration=args.iteration)
    print(f"registered {args.name} (id {new_id}) in {catalog.path}")
    return {"id": int(new_id), "name": args.name, "catalog": str(catalog.path)}


def _register_callable(args: argparse.Namespace) -> int:
    from zoo.catalog import Catalog

    try:
        kwargs = json.loads(args.kwargs) if args.kwargs else {}
    except json.JSONDecodeError as exc:
        raise ValueError(f"--kwargs must be a JSON object, got {args.kwargs!r} ({exc})") from exc
    if not isinstance(kwargs, dict):
        raise ValueError(f"--kwargs must be a JSON object such as '{{\"a\": 1}}', got {args.kwargs!r}")
    reserved = {"name", "num_classes", "image_shape", "dataset", "run", "iteration"} & kwargs.keys()
    if reserved:
        raise ValueError(f"--kwargs cannot use the reserved keys {sorted(reserved)}")
    catalog = Catalog(args.zoo_dir)
    new_id = catalog.register_callable(args.ref, name=args.name, num_classes=args.num_classes,
                                       image_shape=_image_shape(args.image_shape),
                                       dataset=args.dataset, run=args.run, iteration=args.iteration,
                                       **kwargs)
    print(f"registered {args.name} (id {new_id}) in {catalog.path}")
    return {"id": int(new_id), "name": args.name, "catalog": str(catalog.path)}


def _register_samples(args: argparse.Namespace) -> int:
    from zoo.catalog import Catalog

    catalog = Catalog(args.zoo_dir)
    new_id = catalog.register_samples(args.samples, name=args.name, run=args.run,
                                      iteration=args.iteration, num_classes=args.num_classes,
                                      dataset=args.dataset, replace=args.with_replacement)
    row = catalog.get(new_id)
    counts = row["config"]["class_counts"]
    print(f"registered {args.name} (id {new_id}, {sum(counts)} images, per class {counts}) "
          f"in {catalog.path}")
    return {"id": int(new_id), "name": args.name, "catalog": str(catalog.path), "class_counts": counts}


def _import(args: argparse.Namespace) -> int:
    from zoo.catalog import Catalog

    catalog = Catalog(args.zoo_dir)
    ids = catalog.import_manifest(args.manifest, copy=not args.no_copy)
    print(f"imported {len(ids)} generators (ids {ids[0]}..{ids[-1]}) from {args.manifest} "
          f"into {catalog.path}")
    return {"ids": [int(i) for i in ids], "catalog": str(catalog.path)}


def _remove(args: argparse.Namespace) -> int:
    from zoo.catalog import Catalog

    catalog = Catalog(args.zoo_dir, create=False)
    row = catalog.remove(args.generator, delete_file=args.delete_file)
    print(f"removed {row['name']} (id {row['id']}){' and its file' if args.delete_file else ''}")
    return {"removed": row["name"], "id": int(row["id"]), "file_deleted": bool(args.delete_file)}


# ---------------------------------------------------------------------------- parser


def _add_run_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--run", default=None, help="family / training run it belongs to (default: --name)")
    p.add_argument("--iteration", type=_non_negative, default=0,
                   help="training step of this member (default 0)")


def _non_negative(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a non-negative integer, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be a non-negative integer, got {value}")
    return value


def register(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add ``zoo`` and its actions to the top-level sub-command parsers."""
    from ensemble.parallel import add_backend_arguments

    parser = subparsers.add_parser(
        "zoo", help="train, list, sample and register generators",
        description="Manage a zoo folder: its generators and their catalog (catalog.sqlite).",
    )
    actions = parser.add_subparsers(dest="zoo_command", metavar="ACTION")
    actions.required = True

    p = actions.add_parser("train", help="train GAN families on a dataset, saving snapshots",
                           description="Train one run per family; every snapshot joins the catalog.")
    add_data(p, required=True)
    p.add_argument("--split", default="train", help="split to train on (default: train)")
    p.add_argument("--subset", type=int, default=None, help="train on a seeded stratified subset of N images")
    p.add_argument("--families", required=True, help="comma-separated architectures, e.g. dcgan,lsgan")
    p.add_argument("--iterations", type=int, default=10000, help="generator updates per run (default 10000)")
    p.add_argument("--snapshots", default=None,
                   help="iterations at which to save, e.g. 2000,4000 (default: 5 evenly spaced)")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    p.add_argument("--name", default=None, help="run name (with several families: NAME-family)")
    p.add_argument("--lr", type=float, default=None, help="learning rate (default: the family's)")
    p.add_argument("--optimizer", default=None, help="adam, sgd or rmsprop (default: the family's)")
    p.add_argument("--dropout", type=float, default=None)
    p.add_argument("--ema", type=float, default=None, help="EMA decay of the generator (0 = off)")
    p.add_argument("--diffaug", action=argparse.BooleanOptionalAction, default=None,
                   help="differentiable augmentation")
    p.add_argument("--output-activation", choices=("tanh", "none"), default=None)
    p.add_argument("--latent-dim", type=int, default=None)
    p.add_argument("--set", action="append", metavar="KEY=VALUE",
                   help="any other hyper-parameter (VALUE parsed as JSON); repeatable")
    p.add_argument("--out", required=True, help="zoo folder (created; its catalog is extended)")
    add_backend_arguments(p)
    p.set_defaults(func=_train)

    p = actions.add_parser("architectures", help="list the GAN families that `zoo train` knows")
    p.set_defaults(func=_architectures)

    p = actions.add_parser("list", help="print the catalog of a zoo folder")
    p.add_argument("zoo_dir", metavar="DIR")
    p.add_argument("--all", action="store_true", help="print every column")
    p.add_argument("--format", choices=("table", "csv", "json"), default="table",
                   help="table (default), csv or json (a list of rows)")
    p.set_defaults(func=_list)

    p = actions.add_parser("sample", help="sample a generator into a PNG grid (or .npz)")
    p.add_argument("zoo_dir", metavar="DIR")
    p.add_argument("generator", metavar="ID", help="generator id or name")
    p.add_argument("-n", type=int, default=64, help="number of images (default 64)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--labels", default=None,
                   help="one label for all images, or n comma-separated labels (default: uniform)")
    p.add_argument("--nrow", type=int, default=None, help="images per grid row")
    p.add_argument("--device", default="auto")
    p.add_argument("--out", required=True, help="grid.png, or samples.npz for the arrays")
    p.set_defaults(func=_sample)

    p = actions.add_parser("register-torchscript", help="add a TorchScript generator file")
    p.add_argument("zoo_dir", metavar="DIR")
    p.add_argument("file", metavar="FILE", help="module saved with torch.jit.save, (z, labels) -> [-1, 1]")
    p.add_argument("--name", required=True)
    p.add_argument("--latent-dim", type=int, required=True)
    p.add_argument("--num-classes", type=int, required=True)
    p.add_argument("--image-shape", required=True, help="H,W or H,W,3 (e.g. 28,28)")
    p.add_argument("--dataset", default="unknown")
    p.add_argument("--no-copy", action="store_true", help="record FILE where it is instead of copying it")
    _add_run_arguments(p)
    p.set_defaults(func=_register_torchscript)

    p = actions.add_parser("register-callable", help="add a Python factory 'module:function'")
    p.add_argument("zoo_dir", metavar="DIR")
    p.add_argument("ref", metavar="MODULE:FUNCTION",
                   help="importable factory returning an object with sample(n, labels, seed)")
    p.add_argument("--name", required=True)
    p.add_argument("--num-classes", type=int, required=True)
    p.add_argument("--image-shape", required=True, help="H,W or H,W,3 (e.g. 28,28)")
    p.add_argument("--dataset", default="unknown")
    p.add_argument("--kwargs", default=None,
                   help="JSON object of keyword arguments for the factory (files named there are hashed)")
    _add_run_arguments(p)
    p.set_defaults(func=_register_callable)

    p = actions.add_parser("register-samples",
                           help="add a set of generated images (class folders of PNG/.npy, or an npz)")
    p.add_argument("zoo_dir", metavar="DIR")
    p.add_argument("samples", metavar="SAMPLES",
                   help="folder of class subfolders (0/, 1/, ... or class names) of images or .npy "
                        "files, or an .npz with images and labels")
    p.add_argument("--name", required=True)
    p.add_argument("--num-classes", type=int, default=None, help="default: largest label + 1")
    p.add_argument("--dataset", default="unknown")
    p.add_argument("--with-replacement", action="store_true",
                   help="when more images of a class are asked for than are stored, draw with "
                        "replacement (logged) instead of failing")
    _add_run_arguments(p)
    p.set_defaults(func=_register_samples)

    p = actions.add_parser("import", help="register many members from a CSV manifest, all or nothing",
                           description="Columns: name, run, iteration, kind (native, torchscript, "
                                       "callable or samples), path, latent_dim, num_classes, "
                                       "image_shape, kwargs (JSON), dataset, replace. A relative "
                                       "path is relative to the manifest's folder.")
    p.add_argument("zoo_dir", metavar="DIR")
    p.add_argument("manifest", metavar="MANIFEST.csv")
    p.add_argument("--no-copy", action="store_true",
                   help="record TorchScript files where they are instead of copying them")
    p.set_defaults(func=_import)

    p = actions.add_parser("remove", help="remove a generator from the catalog")
    p.add_argument("zoo_dir", metavar="DIR")
    p.add_argument("generator", metavar="ID", help="generator id or name")
    p.add_argument("--delete-file", action="store_true", help="also delete its file")
    p.set_defaults(func=_remove)
    return parser
