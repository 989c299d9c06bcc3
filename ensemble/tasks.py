"""Task functions of the heavy stages, and the code that fans them out on a backend.

Every task is a module-level function of one picklable item (a dict) so that any
:mod:`ensemble.parallel` backend can run it in this process, in a loky worker or on a Dask worker.
Items carry paths, seeds, constructor parameters and arrays, never live models or open files; a
task rebuilds what it needs (the dataset from its flag or path, the generator from the zoo
catalog, the embedder from its parameters) and writes what it computes where the local code path
writes it (the zoo folder, the content-keyed feature cache). Results therefore do not depend on
the backend, and a run that lost a worker, or was stopped, resumes from what was written.

- :func:`train_zoo` / :func:`train_run_task`: one GAN training run per task.
- :func:`embed_generator_task`: sample one generator and embed the images into the feature cache
  (used by :func:`ensemble.features.compute_features`).
- :func:`score_generator_task` / :func:`score_pair_block_task` and :func:`score_on_backend`: the
  per-generator pass against the real set and blocks of generator pairs of
  :meth:`ensemble.scores.ScoreTables.from_features`.
"""

from __future__ import annotations

import logging
import math
import os
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "DataSpec",
    "train_zoo",
    "train_run_task",
    "embed_generator_task",
    "score_generator_task",
    "score_pair_block_task",
    "score_on_backend",
    "pair_blocks",
]

log = logging.getLogger(__name__)

STAGING_DIR = ".staging"  # inside a zoo folder: runs trained by parallel tasks before they join it


# ============================================================================ zoo training


@dataclass(frozen=True)
class DataSpec:
    """Where a task finds its training data: a MedMNIST flag, an ``.npz`` or an ImageFolder.

    ``subset``: a seeded stratified subset of that many images (``subset_seed``), as
    ``gan-ensemble zoo train --subset`` takes it.
    """

    source: str
    split: str = "train"
    root: str | None = None
    subset: int | None = None
    subset_seed: int = 0

    @classmethod
    def resolve(cls, source: str | os.PathLike, split: str = "train",
                root: str | os.PathLike | None = None, subset: int | None = None,
                subset_seed: int = 0) -> DataSpec:
        """A spec that other machines can follow: absolute paths, the data root made explicit
        (``root`` else ``$GAN_ENSEMBLE_DATA`` of this process)."""
        from ensemble.data import data_root

        p = Path(source).expanduser()
        src = str(p.resolve()) if p.exists() else str(source)
        r = data_root(root)
        return cls(src, split=split, root=str(r.resolve()) if r is not None else None,
                   subset=subset, subset_seed=subset_seed)

    def load(self):
        from ensemble.data import load_dataset

        ds = load_dataset(self.source, split=self.split, root=self.root)
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
    in place (or skipped when every snapshot is there). Each dict: ``run``, ``arch``, ``ids``
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
                kinds.append("done")
                continue
            in_zoo = bool(have) or (zoo_dir / "runs" / run).exists()
            # a staged run left by an interrupted parallel call resumes there, whatever the backend
            staged = not in_zoo and (not b.in_process or (zoo_dir / STAGING_DIR / run).is_dir())
            kinds.append("staged" if staged else "direct")
            zdir = zoo_dir / STAGING_DIR / run if staged else zoo_dir
            items.append({**spec, "zoo_dir": str(zdir), "data": data, "device": device,
                          "torch_threads": torch_threads, "dataset_name": dataset_name})
        if items:
            log.info("training %d run(s) on %r (%d already complete)", len(items), b,
                     kinds.count("done"))
        results = iter(b.map(train_run_task, items, desc="zoo runs" if progress else None))
        out = []
        for spec, kind in zip(specs, kinds, strict=True):
            run = spec["run"]
            if kind != "done":
                next(results)
            if kind == "staged":
                _promote(zoo_dir, run)
            rows = catalog.list()
            rows = rows[rows["run"] == run].set_index("iteration")
            out.append({"run": run, "arch": spec["arch"], "trained": kind != "done",
                        "ids": [int(rows.loc[s, "id"]) for s in spec["snapshots"]],
                        "names": [str(rows.loc[s, "name"]) for s in spec["snapshots"]]})
    return out


# ============================================================================ embedding


def embed_generator_task(item: Mapping[str, Any]) -> np.ndarray:
    """Sample one generator and embed the images; store them in the feature cache; return them.

    ``item``: ``zoo_dir``, ``name``, ``sha256`` (the catalog's, checked), ``n_samples``,
    ``labels``, ``sample_seed``, ``image_shape``, ``embedder`` (constructor parameters) and
    ``in_domain_weights`` (the trained weights file for ``weights="in-domain"``), ``cache_root``
    and ``key`` (None: no caching), ``meta`` (stored with the entry). A cache hit (e.g. written
    by an earlier attempt of this task) is returned without sampling.
    """
    from ensemble.cache import FeatureCache

    n = int(item["n_samples"])
    store = FeatureCache(item["cache_root"]) if item.get("key") is not None else None
    if store is not None:
        hit = store.get(item["key"])
        if hit is not None and hit.ndim == 2 and len(hit) == n and hit.dtype == np.float32:
            return hit
    from zoo.catalog import Catalog

    catalog = Catalog(item["zoo_dir"], create=False)
    name = item["name"]
    row = catalog.get(name)
    if str(row["sha256"]) != str(item["sha256"]):
        raise ValueError(f"generator {name!r} changed in {item['zoo_dir']!r} while it was being "
                         "scored (sha256 differs); run the scoring again")
    embedder = build_embedder(item["embedder"], item.get("in_domain_weights"))
    gen = catalog.load(name, device=embedder.device)
    shape = tuple(item["image_shape"])
    images = np.asarray(gen.sample(n, labels=np.asarray(item["labels"]), seed=int(item["sample_seed"])))
    del gen
    if images.dtype != np.uint8 or images.shape != (n, *shape):
        raise ValueError(
            f"generator {name!r} returned {images.dtype} {images.shape} for {n} images; expected "
            f"uint8 {(n, *shape)}. Fix its sample() or catalog entry"
        )
    feats = embedder.embed(images, progress=False)
    if store is not None:
        store.put(item["key"], feats, item.get("meta") or {})
    return feats


EMBEDDER_PARAMS = ("backbone", "weights", "image_size", "channels", "device", "batch_size", "seed",
                   "epochs", "lr", "fit_batch_size", "cache_dir")


def embedder_params(embedder: Any) -> tuple[dict, str | None]:
    """(constructor parameters, in-domain weights file or None) that rebuild ``embedder`` elsewhere."""
    params = {}
    for k in EMBEDDER_PARAMS:
        v = getattr(embedder, k)
        params[k] = os.fspath(v) if isinstance(v, os.PathLike) else v
    weights_file = None
    if embedder.weights_kind == "in-domain":
        path = getattr(embedder, "weights_path_", None)
        if path is None:
            raise ValueError("weights='in-domain' needs training first: call "
                             "embedder.fit(train_images, train_labels) before scoring")
        weights_file = os.fspath(path)
    return params, weights_file


def build_embedder(params: Mapping[str, Any], in_domain_weights: str | None = None):
    """Rebuild an :class:`~ensemble.embed.Embedder` from :func:`embedder_params` (any machine).

    For ``weights="in-domain"`` the trained backbone is read from ``in_domain_weights`` (in the
    feature cache, a shared folder on a cluster): the same weights, so the same features.
    """
    from ensemble.embed import Embedder

    params = dict(params)
    if params.get("weights") == "in-domain":
        if not in_domain_weights or not Path(in_domain_weights).is_file():
            raise FileNotFoundError(
                f"in-domain weights {in_domain_weights!r} not found on this machine; the feature "
                "cache folder (--cache-dir) must be shared by every worker"
            )
        params["weights"] = in_domain_weights
    return Embedder(**params)


# ============================================================================ score tables


def pair_blocks(p: int, n_workers: int = 1) -> list[list[tuple[int, int]]]:
    """Split the pairs (g, h), g < h, of ``p`` generators into tiles of contiguous groups.

    A tile (groups i <= j) needs only the features of its two groups, so blocks move little data;
    about ``8 × n_workers`` blocks, largest first, keep every worker busy to the end.
    """
    if p < 2:
        return []
    n_groups = max(1, min(p, math.ceil(math.sqrt(16 * max(1, n_workers)))))
    bounds = np.linspace(0, p, n_groups + 1).round().astype(int)
    groups = [range(bounds[i], bounds[i + 1]) for i in range(n_groups) if bounds[i + 1] > bounds[i]]
    blocks = []
    for i, gi in enumerate(groups):
        for gj in groups[i:]:
            pairs = [(g, h) for g in gi for h in gj if g < h]
            if pairs:
                blocks.append(pairs)
    return sorted(blocks, key=len, reverse=True)  # stable: equal sizes keep their order


def score_generator_task(item: Mapping[str, Any]) -> tuple[int, np.ndarray, np.ndarray | None]:
    """One generator against the real set: (count, hits (N,), the generator's k-NN radii or None)."""
    from ensemble.metrics import prepare_features
    from ensemble.scores import _score_generator

    pr = prepare_features(item["real"], center=item["center"], device=item["device"],
                          name="real features")
    pf = prepare_features(item["fake"], center=pr.center, device=pr.c32.device, name=item["name"])
    count, hits, fr = _score_generator(pr, item["radii"], pf, k=item["k"], name=item["name"],
                                       pairwise=item["pairwise"])
    return int(count), np.asarray(hits, bool), fr


def score_pair_block_task(item: Mapping[str, Any]) -> list[tuple[int, int, float, float]]:
    """d in both directions for a block of generator pairs: ``[(g, h, d(S_g,S_h), d(S_h,S_g))]``.

    ``item["fakes"]``/``["radii"]``/``["n_fake"]``: ``[(g, value), ...]`` for the generators of
    the block; ``center``: the real features' centre (every set is centred on it, as in the
    in-process loop).
    """
    from ensemble.metrics import prepare_features
    from ensemble.scores import _score_pair

    feats, radii, n_fake = dict(item["fakes"]), dict(item["radii"]), dict(item["n_fake"])
    prepared = {g: prepare_features(f, center=item["center"], device=item["device"], name=f"generator {g}")
                for g, f in feats.items()}
    out = []
    for g, h in item["pairs"]:
        d_gh, d_hg = _score_pair(prepared[g], prepared[h], radii[g], radii[h], n_fake[g],
                                 n_fake[h], item["k"])
        out.append((int(g), int(h), float(d_gh), float(d_hg)))
    return out


def score_on_backend(backend, real: np.ndarray, radii: np.ndarray, center: np.ndarray,
                     fakes: Sequence[np.ndarray], names: Sequence[str], *, k: int, pairwise: bool,
                     device: Any, progress: bool, counts: np.ndarray, hits: np.ndarray,
                     directed: np.ndarray) -> None:
    """Fill ``counts``, ``hits`` and ``directed`` (score-table arrays) with tasks on ``backend``."""
    p = len(names)
    dev = device if isinstance(device, str) else str(device)
    real_h, radii_h, center_h, *fake_h = backend.scatter([real, radii, center, *fakes])
    items = [{"real": real_h, "radii": radii_h, "center": center_h, "fake": fake_h[g],
              "name": names[g], "k": k, "pairwise": pairwise, "device": dev} for g in range(p)]
    fradii = []
    for g, (count, hit, fr) in enumerate(backend.map(score_generator_task, items,
                                                     desc="score vs real" if progress else None)):
        counts[g], hits[:, g] = count, hit
        fradii.append(fr)
    if not pairwise:
        return
    n_fake = [len(f) for f in fakes]
    items = []
    for pairs in pair_blocks(p, backend.n_workers):
        gens = sorted({g for pair in pairs for g in pair})
        items.append({"fakes": [(g, fake_h[g]) for g in gens], "radii": [(g, fradii[g]) for g in gens],
                      "n_fake": [(g, np.int64(n_fake[g])) for g in gens], "pairs": pairs,
                      "center": center_h, "k": k, "device": dev})
    for block in backend.map(score_pair_block_task, items, desc="score pairs" if progress else None):
        for g, h, d_gh, d_hg in block:
            directed[g, h], directed[h, g] = d_gh, d_hg
