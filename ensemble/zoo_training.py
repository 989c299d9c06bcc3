"""Training the zoo as independent tasks: one GAN training run per task, on any backend.

:func:`train_zoo` fans the runs out as :func:`train_run_task` items on an
:mod:`ensemble.parallel` backend (in this process by default). A task is a module-level function
of one picklable item: it carries the data's flag or path (a :class:`DataSpec`), seeds and
hyper-parameters, never live models, and writes what it trains into a zoo folder, so the zoo does
not depend on the backend and a run that lost a worker resumes from its last saved state. With a
parallel backend each new run trains in its own staging zoo and joins the target zoo, in input
order, when done.
"""

from __future__ import annotations

import logging
import os
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["DataSpec", "train_zoo", "train_run_task", "STAGING_DIR"]

log = logging.getLogger(__name__)

STAGING_DIR = ".staging"  # inside a zoo folder: runs trained by parallel tasks before they join it


@dataclass(frozen=True)
class DataSpec:
    """Where a task finds its training data: a MedMNIST flag, an ``.npz`` or an ImageFolder.

    ``subset``: a seeded stratified subset of that many images (``subset_seed``), as
    ``gan-ensemble zoo train --subset`` takes it; ``size``: a MedMNIST flag's image size (28, or
    MedMNIST+'s 64, 128, 224).
    """

    source: str
    split: str = "train"
    root: str | None = None
    subset: int | None = None
    subset_seed: int = 0
    size: int = 28

    @classmethod
    def resolve(cls, source: str | os.PathLike, split: str = "train",
                root: str | os.PathLike | None = None, subset: int | None = None,
                subset_seed: int = 0, size: int = 28) -> DataSpec:
        """A spec that other machines can follow: absolute paths, the data root made explicit
        (``root`` else ``$GAN_ENSEMBLE_DATA`` of this process)."""
        from ensemble.data import data_root

        p = Path(source).expanduser()
        src = str(p.resolve()) if p.exists() else str(source)
        r = data_root(root)
        return cls(src, split=split, root=str(r.resolve()) if r is not None else None,
                   subset=subset, subset_seed=subset_seed, size=size)

    def load(self):
        from ensemble.data import load_dataset

        ds = load_dataset(self.source, split=self.split, root=self.root, size=self.size)
        if self.subset is not None:
            if isinstance(self.subset, bool) or not isinstance(self.subset, int) or self.subset < 1:
                raise ValueError(f"subset must be a positive number of images, got {self.subset!r}")
            ds = ds.subset(self.subset, seed=self.subset_seed)
        return ds


_RUN_KEYS = ("arch", "name", "seed", "iterations", "snapshots", "batch_size")


def _resolve_runs(runs: Sequence[Mapping[str, Any]], ds, *, iterations, snapshots, batch_size,
                  seed) -> list[dict]:
    """Validate every run spec and give it its final name (as :func:`zoo.train.train` would)."""
    from zoo.config import build_config, default_run_name
    from zoo.registry import get_architecture

    if isinstance(runs, Mapping) or not isinstance(runs, Sequence) or not runs:
        raise ValueError("runs must be a non-empty list of dicts such as "
                         "[{'arch': 'dcgan'}, {'arch': 'lsgan', 'lr': 1e-4}]")
    out, seen = [], {}
    for i, spec in enumerate(runs):
        if not isinstance(spec, Mapping) or "arch" not in spec:
            raise ValueError(f"run {i} is {spec!r}; each run is a dict with at least 'arch' "
                             "(a zoo family) plus optional name, seed and hyper-parameters")
        spec = dict(spec)
        arch = get_architecture(spec.pop("arch")).name  # unknown families fail before any work
        name = spec.pop("name", None)
        run_seed = int(spec.pop("seed", seed))
        its = int(spec.pop("iterations", iterations))
        snaps = sorted({int(s) for s in spec.pop("snapshots", snapshots)})
        bs = int(spec.pop("batch_size", batch_size))
        hparams = spec
        config = build_config(arch, num_classes=ds.num_classes, image_size=ds.images.shape[1],
                              channels=3 if ds.images.ndim == 4 else 1, batch_size=bs, **hparams)
        run = name if name is not None else default_run_name(arch, config, run_seed)
        if run in seen:
            raise ValueError(f"runs {seen[run]} and {i} are both named {run!r}; give one a "
                             "different name= (or different settings)")
        seen[run] = i
        out.append({"arch": arch, "run": run, "seed": run_seed, "iterations": its,
                    "snapshots": snaps, "batch_size": bs, "hparams": hparams})
    return out


def train_run_task(item: Mapping[str, Any]) -> dict:
    """Train one run (``item["run"]``) into ``item["zoo_dir"]``; return its snapshot names.

    The task loads the data itself (``item["data"]``, a :class:`DataSpec`) and calls
    :func:`zoo.train.train`, which resumes from the run's last saved state when the folder holds
    one (e.g. after the worker running it died).
    """
    import torch

    from zoo.train import train

    ds = item["data"].load()
    threads = item.get("torch_threads")
    before = torch.get_num_threads()
    if threads:
        torch.set_num_threads(int(threads))
    try:
        ids = train(item["arch"], ds.images, ds.labels, out_dir=item["zoo_dir"],
                    iterations=item["iterations"], snapshots=item["snapshots"],
                    batch_size=item["batch_size"], seed=item["seed"], device=item["device"],
                    name=item["run"], dataset=item.get("dataset_name") or ds.name,
                    num_classes=ds.num_classes, **item["hparams"])
    finally:
        torch.set_num_threads(before)
    return {"run": item["run"], "ids": ids,
            "names": [f"{item['run']}@{s}" for s in item["snapshots"]]}


def _promote(zoo_dir: Path, run: str) -> list[int]:
    """Move a run trained in ``zoo_dir/.staging/<run>`` into the zoo and register its snapshots."""
    from zoo.catalog import Catalog

    stage = zoo_dir / STAGING_DIR / run
    src, dest = stage / "runs" / run, zoo_dir / "runs" / run
    if dest.exists():
        raise FileExistsError(f"cannot move the staged run {run!r} to {str(dest)!r}: it exists; "
                              f"remove one of {str(dest)!r} and {str(src)!r}")
    rows = Catalog(stage, create=False).list().sort_values("iteration").to_dict("records")
    dest.parent.mkdir(parents=True, exist_ok=True)
    os.replace(src, dest)
    catalog = Catalog(zoo_dir)
    ids = []
    for row in rows:  # the path relative to the zoo folder is the same in the staging zoo
        ids.append(catalog.add(path=zoo_dir / row["path"], name=row["name"], run=row["run"],
                               kind=row["kind"], architecture=row["architecture"],
                               config=row["config"], dataset=row["dataset"],
                               image_shape=row["image_shape"], num_classes=row["num_classes"],
                               iteration=row["iteration"], sha256=row["sha256"]))
    shutil.rmtree(stage, ignore_errors=True)
    staging = zoo_dir / STAGING_DIR
    if staging.is_dir() and not any(staging.iterdir()):
        staging.rmdir()
    return ids


def train_zoo(runs: Sequence[Mapping[str, Any]], *, out_dir: str | os.PathLike,
              data: DataSpec | str | os.PathLike, iterations: int, snapshots: Sequence[int],
              batch_size: int = 64, seed: int = 0, device: str = "auto", backend: Any = None,
              torch_threads: int | None = None, dataset_name: str | None = None,
              progress: bool = True) -> list[dict]:
    """Train several zoo runs as independent tasks; return one dict per run, in input order.

    ``runs``: dicts with ``arch`` (a zoo family) and optionally ``name``, ``seed``,
    ``iterations``, ``snapshots``, ``batch_size`` (overriding the shared arguments) and the
    family's hyper-parameters. ``data``: a :class:`DataSpec` (or a flag / path), loaded by each
    task. ``backend``: an :mod:`ensemble.parallel` backend or name (default: in-process).
    ``dataset_name``: the catalog's ``dataset`` column (default: the loaded dataset's name).
    ``torch_threads``: pin torch's CPU threads in every task. CPU training is bit-for-bit
    reproducible only for one thread count, so pin it (e.g. 1, as Dask workers with one thread
    each run) to get the same generator bytes from every backend; None leaves torch's default.

    With a parallel backend each new run trains in its own staging zoo
    (``out_dir/.staging/<run>``, resumable there) and joins ``out_dir`` when done, in input
    order, so the catalog lists the generators in the same order whatever the backend (the
    order the score tables, and so the search, use). Runs already in the catalog are extended
    in place; a run with every snapshot there trains nothing, but is still checked against the
    settings it was trained with (another config, seed or data under its name is refused). Each dict: ``run``, ``arch``, ``ids``
    (catalog ids), ``names`` (``"{run}@{iteration}"``), ``trained`` (False when skipped).
    """
    from ensemble.parallel import using_backend
    from zoo.catalog import Catalog

    if not isinstance(data, DataSpec):
        data = DataSpec.resolve(data)
    zoo_dir = Path(out_dir).expanduser()
    ds = data.load()  # fail fast on bad data here, before any task starts
    specs = _resolve_runs(runs, ds, iterations=iterations, snapshots=snapshots,
                          batch_size=batch_size, seed=seed)
    del ds
    catalog = Catalog(zoo_dir)
    existing = catalog.list()
    with using_backend(backend) as b:
        items, kinds = [], []
        for spec in specs:
            run = spec["run"]
            have = set(existing.loc[existing["run"] == run, "iteration"].astype(int))
            if set(spec["snapshots"]) <= have:
                # nothing to train, but the run is still checked against its recorded settings
                # (train() refuses another config, seed or data under the same name)
                kinds.append("done")
                items.append({**spec, "zoo_dir": str(zoo_dir), "data": data, "device": device,
                              "torch_threads": torch_threads, "dataset_name": dataset_name})
                continue
            in_zoo = bool(have) or (zoo_dir / "runs" / run).exists()
            # a staged run left by an interrupted parallel call resumes there, whatever the backend
            staged = not in_zoo and (not b.in_process or (zoo_dir / STAGING_DIR / run).is_dir())
            kinds.append("staged" if staged else "direct")
            zdir = zoo_dir / STAGING_DIR / run if staged else zoo_dir
            items.append({**spec, "zoo_dir": str(zdir), "data": data, "device": device,
                          "torch_threads": torch_threads, "dataset_name": dataset_name})
        if items:
            log.info("training %d run(s) on %r (%d already complete, checked only)",
                     len(items) - kinds.count("done"), b, kinds.count("done"))
        results = iter(b.map(train_run_task, items, desc="zoo runs" if progress else None))
        out = []
        for spec, kind in zip(specs, kinds, strict=True):
            run = spec["run"]
            next(results)
            if kind == "staged":
                _promote(zoo_dir, run)
            rows = catalog.list()
            rows = rows[rows["run"] == run].set_index("iteration")
            out.append({"run": run, "arch": spec["arch"], "trained": kind != "done",
                        "ids": [int(rows.loc[s, "id"]) for s in spec["snapshots"]],
                        "names": [str(rows.loc[s, "name"]) for s in spec["snapshots"]]})
    return out
