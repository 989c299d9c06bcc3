"""The whole method end to end: zoo → embeddings → score tables → search → G* → dataset → downstream.

Used by ``gan-ensemble quickstart`` and the notebooks. Every stage is cached in the run folder:
the zoo resumes and skips finished snapshots, features are cached by content, and the score tables
and the downstream comparison are reused when their inputs have not changed. ``report.md`` lists
what each stage produced and how long it took.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from zoo.io import atomic_write
from zoo.seeding import derive_seed

__all__ = ["PipelineConfig", "PROFILES", "list_profiles", "make_config", "run_pipeline", "RunResult"]

log = logging.getLogger(__name__)


@dataclass
class PipelineConfig:
    """Every setting of one run; one root ``seed`` gives every random choice."""

    dataset: str = "pneumoniamnist"
    data_root: str | None = None
    profile: str = "quick"
    # zoo
    families: tuple[str, ...] = ("dcgan", "lsgan", "acgan", "cgan")
    variants: tuple[dict, ...] = ()  # extra (family, hparams) runs: {"arch": ..., **hparams}
    iterations: int = 500
    snapshots: tuple[int, ...] = (300, 400, 500)
    batch_size: int = 64
    # embeddings and scores
    backbone: str = "resnet18"
    weights: str = "random"
    image_size: int = 32
    channels: str = "replicate"
    n_samples: int | None = None  # per generator; None = as many as real training images
    n_real: int | None = None  # real training images used for scoring; None = all
    k: int = 5
    # search
    pop_size: int = 100
    n_gen: int = 200
    min_size: int = 2
    rule: str = "max-fidelity"
    # export and downstream
    n_per_class: int = 750
    downstream_model: str = "small-cnn"
    downstream_seeds: tuple[int, ...] = (0, 1)
    downstream_epochs: int = 8
    downstream_patience: int = 3
    samples_per_epoch: int | None = 1500
    n_random: int = 2
    downstream: bool = True
    seed: int = 0
    device: str = "auto"
    # where the heavy stages run (see docs/cluster.md); not part of any cache key
    backend: str = "local"
    scheduler: str | None = None
    n_jobs: int | None = None

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def digest(self, *fields_: str) -> str:
        """Short hash of the named settings (all when none): keys the stage caches."""
        d = self.to_dict()
        if fields_:
            d = {k: d[k] for k in fields_}
        for key in ("data_root", "device", "backend", "scheduler", "n_jobs"):
            d.pop(key, None)
        return hashlib.sha256(json.dumps(d, sort_keys=True, default=str).encode()).hexdigest()[:16]


PROFILES: dict[str, dict] = {
    # A few minutes on a 2-core CPU: 4 families x 3 snapshots, small samples.
    "quick": dict(families=("dcgan", "lsgan", "acgan", "cgan"), iterations=500,
                  snapshots=(300, 400, 500), n_samples=1500, n_per_class=750,
                  downstream_seeds=(0, 1), downstream_epochs=8, downstream_patience=3,
                  samples_per_epoch=1500),
    # Seconds: for tests and notebooks (a handful of iterations; the numbers mean nothing).
    "tiny": dict(families=("dcgan", "cgan"), iterations=6, snapshots=(3, 6), batch_size=32,
                 n_samples=200, n_real=400, pop_size=20, n_gen=10, n_per_class=40,
                 downstream_seeds=(0,), downstream_epochs=1, samples_per_epoch=128, n_random=1),
    # The reference protocol's sizes (METHOD.md): a GPU is advisable.
    "paper": dict(families=("dcgan", "lsgan", "wgan", "wgan-gp", "sngan", "acgan", "cgan", "progan"),
                  iterations=100_000, snapshots=(20_000, 40_000, 60_000, 80_000, 100_000),
                  batch_size=64, n_samples=None, n_per_class=None, downstream_model="resnet18-cifar",
                  downstream_seeds=tuple(range(20)), downstream_epochs=100, downstream_patience=10,
                  samples_per_epoch=None, n_random=5, pop_size=100, n_gen=200),
}


def list_profiles() -> list[str]:
    return sorted(PROFILES)


def make_config(profile: str = "quick", **overrides) -> PipelineConfig:
    """A config from a named profile with ``overrides`` (None values are ignored)."""
    if profile not in PROFILES:
        raise ValueError(f"unknown profile {profile!r}; known profiles: {', '.join(list_profiles())}")
    names = {f.name for f in dataclasses.fields(PipelineConfig)}
    unknown = sorted(set(overrides) - names)
    if unknown:
        raise ValueError(f"unknown pipeline settings {unknown}; known: {sorted(names)}")
    values = dict(PROFILES[profile])
    values.update({k: v for k, v in overrides.items() if v is not None})
    values["profile"] = profile
    cfg = PipelineConfig(**values)
    if cfg.iterations <= 0:
        raise ValueError(f"iterations must be positive, got {cfg.iterations}")
    if not cfg.snapshots or max(cfg.snapshots) > cfg.iterations:
        raise ValueError(f"snapshots {cfg.snapshots} must be within 1..iterations={cfg.iterations}")
    return cfg


@dataclass
class RunResult:
    """What a run produced: paths, the selected ensemble, tables and timings."""

    out_dir: Path
    config: PipelineConfig
    timings: dict[str, float] = field(default_factory=dict)
    cached: dict[str, bool] = field(default_factory=dict)
    paths: dict[str, Path] = field(default_factory=dict)
    selected: object = None
    summary: pd.DataFrame | None = None


class _Stage:
    """Times a stage and records whether it was served from cache."""

    def __init__(self, result: RunResult, name: str):
        self.result, self.name, self.cached = result, name, False

    def __enter__(self):
        log.info("stage %s ...", self.name)
        self.t0 = time.perf_counter()
        return self

    def __exit__(self, *exc):
        dt = time.perf_counter() - self.t0
        self.result.timings[self.name] = dt
        self.result.cached[self.name] = self.cached
        log.info("stage %s done in %.1f s%s", self.name, dt, " (cached)" if self.cached else "")
        return False


def _zoo_runs(cfg: PipelineConfig) -> list[tuple[str, dict]]:
    runs = [(f, {}) for f in cfg.families]
    for v in cfg.variants:
        v = dict(v)
        runs.append((v.pop("arch"), v))
    return runs


def run_pipeline(config: PipelineConfig, out_dir: str | os.PathLike, *, progress: bool = True,
                 backend=None) -> RunResult:
    """Run every stage into ``out_dir`` (created; stages already done are reused).

    ``backend`` (an :mod:`ensemble.parallel` backend or a dask Client) runs the zoo and score
    stages' tasks; by default the config's ``backend``/``scheduler``/``n_jobs`` decide.
    """
    import contextlib

    from ensemble.parallel import backend_from_args, using_backend

    with contextlib.ExitStack() as stack:
        if backend is None:
            backend = backend_from_args(config)
        if backend is not None:
            backend = stack.enter_context(using_backend(backend))
        return _run(config, out_dir, progress, backend)


def _run(config: PipelineConfig, out_dir: str | os.PathLike, progress: bool, backend) -> RunResult:
    from ensemble.data import load_dataset
    from ensemble.embed import Embedder
    from ensemble.grids import save_grid
    from ensemble.plots import plot_front, plot_history
    from ensemble.scores import ScoreTables
    from ensemble.search import EnsembleSearch
    from ensemble.synth import sample_ensemble
    from zoo import Catalog, train
    from zoo.config import default_run_name

    cfg = config
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    figs = out / "figures"
    figs.mkdir(exist_ok=True)
    res = RunResult(out_dir=out, config=cfg)
    _write_json(out / "config.json", cfg.to_dict())

    with _Stage(res, "data"):
        train_ds = load_dataset(cfg.dataset, split="train", root=cfg.data_root)
        val_ds = load_dataset(cfg.dataset, split="val", root=cfg.data_root)
        test_ds = load_dataset(cfg.dataset, split="test", root=cfg.data_root)
        score_ds = train_ds if cfg.n_real is None else train_ds.subset(cfg.n_real, seed=derive_seed(cfg.seed, "real-subset"))

    zoo_dir = out / "zoo"
    with _Stage(res, "zoo") as st:
        before = len(Catalog(zoo_dir)) if (zoo_dir / "catalog.sqlite").exists() else 0
        runs = [{"arch": arch, "name": default_run_name(arch, hp),
                 "seed": derive_seed(cfg.seed, "zoo", arch, json.dumps(hp, sort_keys=True)), **hp}
                for arch, hp in _zoo_runs(cfg)]
        if backend is None:
            for r in runs:
                r = dict(r)
                train(r.pop("arch"), train_ds.images, train_ds.labels, out_dir=zoo_dir,
                      iterations=cfg.iterations, snapshots=list(cfg.snapshots),
                      batch_size=cfg.batch_size, device=cfg.device, dataset=cfg.dataset, **r)
        else:
            from ensemble.tasks import DataSpec, train_zoo

            train_zoo(runs, out_dir=zoo_dir,
                      data=DataSpec.resolve(cfg.dataset, split="train", root=cfg.data_root),
                      iterations=cfg.iterations, snapshots=list(cfg.snapshots),
                      batch_size=cfg.batch_size, device=cfg.device, dataset_name=cfg.dataset,
                      backend=backend, progress=progress)
        catalog = Catalog(zoo_dir)
        st.cached = len(catalog) == before and before > 0
    res.paths["zoo"] = zoo_dir

    tables_path = out / "tables.npz"
    score_key = cfg.digest("dataset", "families", "variants", "iterations", "snapshots", "batch_size",
                           "backbone", "weights", "image_size", "channels", "n_samples", "n_real",
                           "k", "seed")
    with _Stage(res, "score") as st:
        tables = _load_if_current(tables_path, score_key)
        if tables is not None:
            st.cached = True
        else:
            embedder = Embedder(backbone=cfg.backbone, weights=cfg.weights, image_size=cfg.image_size,
                                channels=cfg.channels, device=cfg.device,
                                seed=derive_seed(cfg.seed, "embedder"), cache_dir=out / "cache")
            if cfg.weights == "in-domain":
                embedder.fit(train_ds.images, train_ds.labels)
            tables = ScoreTables.compute(catalog, score_ds.images, embedder, n_samples=cfg.n_samples,
                                         k=cfg.k, seed=derive_seed(cfg.seed, "score"),
                                         cache_dir=out / "cache", progress=progress, backend=backend)
            tables.meta["pipeline_key"] = score_key
            tables.save(tables_path)
    res.paths["tables"] = tables_path

    with _Stage(res, "search"):
        search = EnsembleSearch(pop_size=cfg.pop_size, n_gen=cfg.n_gen, min_size=cfg.min_size,
                                seed=derive_seed(cfg.seed, "search") % (2**31)).fit(tables)
        selected = search.select(cfg.rule)
        selected.meta.update({"dataset": cfg.dataset, "root_seed": cfg.seed, "k": cfg.k,
                              "backbone": cfg.backbone, "weights": cfg.weights})
        search.front_.assign(members=search.front_["members"].map(" ".join)).to_csv(out / "front.csv", index=False)
        search.history_.to_csv(out / "history.csv", index=False)
        selected.save(out / "selected.json")
        plot_front(search, selected=selected, path=figs / "pareto.png")
        plot_history(search, path=figs / "history.png")
        rules = _compare_rules(search)
        rules.to_csv(out / "rules.csv", index=False)
    res.selected = selected
    res.paths.update(selected=out / "selected.json", front=out / "front.csv", pareto=figs / "pareto.png")

    with _Stage(res, "export"):
        from ensemble.export import export_dataset

        n_pc = cfg.n_per_class or int(np.bincount(train_ds.labels).max())
        samples = sample_ensemble(selected, catalog, n_per_class=n_pc,
                                  seed=derive_seed(cfg.seed, "export"), device=cfg.device,
                                  class_names=train_ds.class_names)
        export_dataset(samples, out / "dataset", overwrite=True, flag=cfg.dataset,
                       meta={"selected": selected.to_dict(), "root_seed": cfg.seed,
                             "backbone": cfg.backbone, "weights": cfg.weights, "k": cfg.k,
                             "dataset": cfg.dataset})
        member_dir = figs / "members"
        member_dir.mkdir(exist_ok=True)
        for name in selected.members:
            gen = catalog.load(name, device=cfg.device)
            labels = np.repeat(np.arange(gen.num_classes), 8)
            save_grid(gen.sample(len(labels), labels=labels, seed=derive_seed(cfg.seed, "grid", name)),
                      member_dir / f"{_safe(name)}.png", nrow=8)
        save_grid(train_ds.subset(64, seed=0).images, figs / "real.png", nrow=8)
    res.paths["dataset"] = out / "dataset"

    if cfg.downstream:
        with _Stage(res, "downstream") as st:
            res.summary, st.cached = _downstream(cfg, catalog, selected, train_ds, val_ds, test_ds, out, figs)
        res.paths["downstream"] = figs / "downstream.png"

    res.paths["report"] = write_report(res, tables, search, selected)
    return res


def _compare_rules(search) -> pd.DataFrame:
    from ensemble.search import list_rules

    rows = []
    for rule in list_rules():
        e = search.select(rule)
        rows.append({"rule": rule, "size": e.size, "intra_d": e.intra_d, "inter_d": e.inter_d,
                     "members": " ".join(e.members), "note": e.note})
    return pd.DataFrame(rows)


def _downstream(cfg, catalog, selected, train_ds, val_ds, test_ds, out: Path, figs: Path):
    from ensemble.downstream import build_arms, compare, plot_comparison, summarize

    key = cfg.digest() + ":" + ",".join(selected.members)
    table_path, summary_path = out / "comparison.csv", out / "summary.csv"
    key_path = out / ".downstream.key"
    if table_path.exists() and summary_path.exists() and key_path.exists() and key_path.read_text() == key:
        summary = pd.read_csv(summary_path)
        return summary, True
    n_pc = cfg.n_per_class or int(np.bincount(train_ds.labels).max())
    arms = build_arms(catalog, selected, train_ds, n_per_class=n_pc, n_random=cfg.n_random,
                      seed=derive_seed(cfg.seed, "downstream-arms"), device=cfg.device,
                      samples_per_epoch=cfg.samples_per_epoch)
    df = compare(arms, val_ds, test_ds, seeds=cfg.downstream_seeds, model=cfg.downstream_model,
                 epochs=cfg.downstream_epochs, patience=cfg.downstream_patience, device=cfg.device)
    summary = summarize(df)
    _write_csv(table_path, df)
    _write_csv(summary_path, summary)
    plot_comparison(summary, figs / "downstream.png", metric="g_mean")
    atomic_write(key_path, lambda p: p.write_text(key))
    return summary, False


def _load_if_current(path: Path, key: str):
    from ensemble.scores import ScoreTables

    if not path.exists():
        return None
    try:
        t = ScoreTables.load(path)
    except (ValueError, OSError):
        return None
    return t if t.meta.get("pipeline_key") == key else None


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name)


def _write_json(path: Path, obj) -> None:
    text = json.dumps(obj, indent=2, sort_keys=True, default=str)
    atomic_write(path, lambda p: p.write_text(text + "\n"))


def _write_csv(path: Path, df: pd.DataFrame) -> None:
    atomic_write(path, lambda p: df.to_csv(p, index=False))


def _isnan(v) -> bool:
    return isinstance(v, (float, np.floating)) and np.isnan(v)


def _md_table(df: pd.DataFrame, floatfmt: str = ".4f") -> str:
    cols = list(df.columns)
    lines = ["| " + " | ".join(map(str, cols)) + " |", "|" + "---|" * len(cols)]
    for _, row in df.iterrows():
        cells = ["" if _isnan(v) else format(v, floatfmt) if isinstance(v, (float, np.floating))
                 else str(v) for v in row]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def write_report(res: RunResult, tables, search, selected) -> Path:
    """``report.md`` beside the figures: what each stage produced and how long it took."""
    from ensemble import __version__

    cfg, out = res.config, res.out_dir
    lines = [
        f"# gan-ensemble run: {cfg.dataset} ({cfg.profile} profile)",
        "",
        f"gan-ensemble {__version__}; root seed {cfg.seed}; backbone {cfg.backbone} "
        f"({cfg.weights} weights, {cfg.image_size} px, {cfg.channels}); k = {cfg.k}.",
        "",
        "## Stages",
        "",
        "| stage | seconds | cached |",
        "|---|---|---|",
    ]
    for name, sec in res.timings.items():
        lines.append(f"| {name} | {sec:.1f} | {'yes' if res.cached.get(name) else 'no'} |")
    lines.append(f"| **total** | {sum(res.timings.values()):.1f} | |")
    single = tables.summary()
    lines += [
        "",
        f"## Zoo and scores ({tables.n_generators} generators)",
        "",
        "Per-generator density, coverage and d against the real training images:",
        "",
        _md_table(single),
        "",
        "## Search",
        "",
        f"NSGA-II, population {cfg.pop_size} × {cfg.n_gen} generations: {len(search.front_)} ensembles "
        "on the Pareto front.",
        "",
        "![Pareto front](figures/pareto.png)",
        "",
        f"**G\\*** (rule `{selected.rule}`): {selected.size} members, Intra-d {selected.intra_d:.4f}, "
        f"Inter-d {selected.inter_d:.4f}{' — ' + selected.note if selected.note else ''}",
        "",
    ]
    lines += [f"- `{m}`: ![{m}](figures/members/{_safe(m)}.png)" for m in selected.members]
    rules_path = out / "rules.csv"
    if rules_path.exists():
        lines += ["", "Selection rules compared on the same front:", "", _md_table(pd.read_csv(rules_path))]
    lines += ["", "Real images for comparison: ![real](figures/real.png)", "",
              "## Exported dataset", "",
              f"`dataset/` holds the ImageFolder tree (`train/<class>/*.png`), "
              f"`{cfg.dataset}_synthetic.npz` (MedMNIST layout), `manifest.csv` and `meta.json`.", ""]
    if res.summary is not None:
        cols = [c for c in res.summary.columns if c in ("arm", "n_runs", "g_mean_mean", "g_mean_std",
                                                        "accuracy_mean", "accuracy_std", "f1_mean",
                                                        "f1_std", "roc_auc_mean", "roc_auc_std", "note")]
        lines += ["## Downstream: train on synthetic, test on real", "",
                  f"Classifier `{cfg.downstream_model}`, seeds {list(cfg.downstream_seeds)}, up to "
                  f"{cfg.downstream_epochs} epochs with early stopping on the real validation split; "
                  "metrics on the real test split (mean ± std over seeds).", "",
                  "![downstream](figures/downstream.png)", "", _md_table(res.summary[cols]), ""]
    text = "\n".join(lines) + "\n"
    path = out / "report.md"
    atomic_write(path, lambda p: p.write_text(text))
    return path
