"""The downstream protocol: train per arm and seed, test on real data, and summarise.

Two ways to run it:

- in memory, :func:`run_protocol` (one training set, one row per seed) and :func:`compare` (every
  arm of a ``{name: TrainingSource}`` mapping), then :func:`summarize` (mean ± std per arm plus
  the single / random-ensemble aggregates). This is ``gan-ensemble evaluate``.
- journaled, for long studies: :class:`Journal` is an append-only CSV with one line per finished
  (arm, seed), flushed and fsynced as each training ends; :func:`plan_runs` lists what is not in
  the journal yet (seed-major: every arm gets seed 0 before any arm gets seed 1, so a run cut short
  still compares all arms on the seeds it finished), :func:`run_journaled` trains them on an
  :mod:`ensemble.parallel` backend with :func:`train_arm` as the task, and a rerun skips finished
  work and gives the same table. :func:`summarize_groups` then averages arms into the rows a report
  shows (per seed first, then mean ± std over the seeds complete for every arm of a row), and
  :func:`compare_groups` runs the paired tests of :mod:`ensemble.downstream.statistics` between
  rows, Holm-adjusted over the table.

Every arm uses the same seeds, and a seed fixes the classifier's initialisation and draws, so arms
are paired by seed.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from ensemble.downstream.arms import (
    EQUAL_SAMPLES_ARM,
    Arm,
    arm_kind,
    best_single_by_validation,
    equal_samples_arm,
)
from ensemble.downstream.metrics import METRICS, choose_threshold, evaluate_classifier
from ensemble.downstream.sources import TrainingSource, as_arrays, as_source
from ensemble.downstream.statistics import holm, paired_test
from ensemble.downstream.training import class_weights, train_classifier

__all__ = [
    "run_protocol",
    "compare",
    "summarize",
    "best_single",
    "add_equal_samples_arm",
    "JOURNAL_COLUMNS",
    "Journal",
    "plan_runs",
    "train_arm",
    "run_journaled",
    "group_values",
    "summarize_groups",
    "compare_groups",
]

log = logging.getLogger(__name__)

#: Columns of a journal line: the arm, the seed, the settings digest, validation and test metrics
#: (at the decision threshold the task asks for, ``threshold``), the g-mean at the default
#: threshold 0.5 (arg-max) beside them, and the training's cost.
JOURNAL_COLUMNS = (["arm_id", "arm", "kind", "members", "n_members", "seed", "settings"]
                   + [f"val_{m}" for m in METRICS] + [f"test_{m}" for m in METRICS]
                   + ["threshold", "val_g_mean_05", "test_g_mean_05"]
                   + ["best_epoch", "epochs_run", "best_val_loss", "seconds", "ok"])


def _class_weight_of(class_weight, real_labels, num_classes: int | None):
    """The ``class_weight`` a training gets: ``"real"`` becomes the real training frequencies."""
    if class_weight is None or not isinstance(class_weight, str) or class_weight == "balanced":
        return class_weight
    if class_weight != "real":
        raise ValueError(f"class_weight must be None, 'real', 'balanced' or one weight per class, "
                         f"got {class_weight!r}")
    if real_labels is None:
        raise ValueError("class_weight='real' weights the loss by the real training class frequencies: "
                         "pass real_labels (the real training labels)")
    y = np.asarray(real_labels).reshape(-1).astype(np.int64)
    return class_weights(y, int(num_classes or int(y.max()) + 1))


def run_protocol(train_set, val_set, test_set, *, seeds: Iterable[int] = (0, 1, 2),
                 model: str = "small-cnn", epochs: int = 100, class_weight=None,
                 threshold: str | None = None, real_labels: np.ndarray | None = None,
                 **train_kwargs) -> pd.DataFrame:
    """Train once per seed on ``train_set``, test on ``test_set``: one row per seed.

    ``train_set``: a :class:`TrainingSource`, Dataset, SyntheticSamples or (images, labels);
    ``val_set`` / ``test_set``: real Datasets or (images, labels). ``class_weight``: None,
    ``"real"`` (the loss weighted by the frequencies of ``real_labels``, the real training labels,
    as the reference does, also for synthetic data), ``"balanced"`` or one weight per class.
    ``threshold``: None (arg-max) or ``"val"`` (binary tasks: the decision threshold that maximises
    g-mean on the real validation split, :func:`~ensemble.downstream.metrics.choose_threshold`).
    Other keywords go to :func:`~ensemble.downstream.training.train_classifier` (e.g. ``steps``,
    ``warmup_steps``). Columns: ``seed``, the test :data:`METRICS`, ``val_<metric>`` (the same on
    the validation split, with the same threshold), ``threshold``, ``best_epoch``, ``epochs_run``,
    ``steps``, ``best_val_loss``, ``seconds``.
    """
    if threshold not in (None, "val"):
        raise ValueError(f"threshold must be None (arg-max) or 'val', got {threshold!r}")
    src = as_source(train_set)
    vx, vy = as_arrays(val_set, "val_set")
    sx, sy = as_arrays(test_set, "test_set")
    k = train_kwargs.get("num_classes") or max(int(src.labels.max()), int(np.max(vy)), int(np.max(sy))) + 1
    weight = _class_weight_of(class_weight, real_labels, max(int(k), 2))
    rows = []
    for s in seeds:
        clf = train_classifier(src.images, src.labels, vx, vy, model=model, epochs=epochs, seed=int(s),
                               samples_per_epoch=src.samples_per_epoch, sampler=src.sampler,
                               groups=src.groups, class_weight=weight, **train_kwargs)
        thr = None
        if threshold == "val" and clf.num_classes == 2:
            thr = choose_threshold(vy, clf.predict_proba(vx))
        val_m = evaluate_classifier(clf, vx, vy, threshold=thr)
        row = {"seed": int(s), **evaluate_classifier(clf, sx, sy, threshold=thr),
               **{f"val_{m}": v for m, v in val_m.items()}, "threshold": thr,
               "best_epoch": clf.best_epoch, "epochs_run": clf.epochs_run, "steps": clf.steps_run,
               "best_val_loss": clf.best_val_loss, "seconds": round(clf.seconds, 3)}
        log.info("%s seed %d: g_mean %.4f roc_auc %.4f accuracy %.4f (%d steps)", src.name or "train", s,
                 row["g_mean"], row["roc_auc"], row["accuracy"], clf.steps_run)
        rows.append(row)
    return pd.DataFrame(rows)


def compare(arms: Mapping[str, TrainingSource], val, test, *, seeds: Iterable[int] = (0, 1, 2),
            model: str = "small-cnn", epochs: int = 100, class_weight=None,
            real_labels: np.ndarray | None = None, **train_kwargs) -> pd.DataFrame:
    """Run :func:`run_protocol` for every arm: a tidy table (``arm``, ``seed``, metrics, ...).

    Every arm uses the same seeds, so arms are paired by seed (same initialisation).
    ``class_weight="real"`` takes the real training labels from ``real_labels``, else from the
    ``"real"`` arm.
    """
    if not arms:
        raise ValueError("no arms to compare; build them with build_arms(...) or pass {name: source}")
    if isinstance(class_weight, str) and class_weight == "real" and real_labels is None:
        if "real" not in arms:
            raise ValueError("class_weight='real' needs the real training labels: pass real_labels "
                             "or a 'real' arm")
        real_labels = as_source(arms["real"]).labels
    seeds = [int(s) for s in seeds]
    frames = []
    for name, source in arms.items():
        log.info("downstream arm %s", name)
        df = run_protocol(source, val, test, seeds=seeds, model=model, epochs=epochs,
                          class_weight=class_weight, real_labels=real_labels, **train_kwargs)
        df.insert(0, "arm", name)
        frames.append(df)
    return pd.concat(frames, ignore_index=True)


def best_single(df: pd.DataFrame, best_by: str = "g_mean") -> str | None:
    """The generator of the ``single:<name>`` arm with the best mean *validation* ``best_by``.

    ``df`` is the table of :func:`compare` (its ``val_<metric>`` columns); None when it has no
    single arm. Never chosen on the test split (see
    :func:`~ensemble.downstream.arms.best_single_by_validation`).
    """
    singles = df[df["arm"].map(arm_kind) == "single"]
    if not len(singles):
        return None
    col = f"val_{best_by}"
    if col not in df.columns:
        raise ValueError(f"the table has no {col!r} column: the best single arm is chosen on the "
                         "validation split (rerun compare() to record it)")
    stats = singles.groupby("arm", sort=False)[col].mean().reset_index()
    stats["name"] = stats["arm"].str.slice(len("single:"))
    return best_single_by_validation(stats, col)


def add_equal_samples_arm(df: pd.DataFrame, catalog, ensemble, val, test, *, n_per_class: int,
                          seed: int, device: str = "auto", samples_per_epoch: int | None = None,
                          best_by: str = "g_mean", **compare_kwargs) -> pd.DataFrame:
    """``df`` with the :data:`~ensemble.downstream.arms.EQUAL_SAMPLES_ARM` arm added.

    The best single generator (:func:`best_single`, chosen on validation) sampled with |G*| times
    ``n_per_class`` images per class (:func:`~ensemble.downstream.arms.equal_samples_arm`), trained
    and tested like the other arms (``device`` and ``compare_kwargs`` as given to :func:`compare`),
    so that "more generators" is told apart from "more images". ``df`` unchanged when it has no
    single arm.
    """
    from ensemble.synthesis.sample import ensemble_members

    name = best_single(df, best_by)
    if name is None:
        log.info("no single-generator arms: the best-single, equal-samples arm is left out")
        return df
    size = len(ensemble_members(ensemble)[0])
    src = equal_samples_arm(catalog, name, size, n_per_class=n_per_class, seed=seed, device=device,
                            samples_per_epoch=samples_per_epoch)
    extra = compare({EQUAL_SAMPLES_ARM: src}, val, test, device=device, **compare_kwargs)
    return pd.concat([df, extra], ignore_index=True)


def summarize(df: pd.DataFrame, metrics: Sequence[str] | None = None,
              best_by: str = "g_mean") -> pd.DataFrame:
    """Mean ± std over seeds per arm, plus aggregate rows.

    Columns: ``arm``, ``n_runs``, ``<metric>_mean``, ``<metric>_std``, ``aggregate``, ``note``.
    Aggregates: ``single (mean)`` (mean over single generators of their mean; std across the
    generators), ``single (best)`` (the single generator with the best mean *validation*
    ``best_by``, :func:`best_single`, named in ``note``; left out when ``df`` has no validation
    columns) and ``random-ensemble (mean)`` (like ``single (mean)``).
    """
    if "arm" not in df.columns:
        raise ValueError("summarize expects the table from compare() (an 'arm' column)")
    metrics = [m for m in (metrics or METRICS) if m in df.columns]
    if best_by not in metrics:
        raise ValueError(f"best_by={best_by!r} is not among the metric columns {metrics}")
    arms = list(dict.fromkeys(df["arm"]))
    g = df.groupby("arm", sort=False)[metrics]
    mean, std, n = g.mean().reindex(arms), g.std().reindex(arms), g.size().reindex(arms)

    def row(arm, m, s, n_runs, aggregate=False, note=""):
        r = {"arm": arm, "n_runs": int(n_runs)}
        for k in metrics:
            r[f"{k}_mean"] = float(m[k])
            r[f"{k}_std"] = float(s[k]) if pd.notna(s[k]) else float("nan")
        r["aggregate"] = aggregate
        r["note"] = note
        return r

    rows = [row(a, mean.loc[a], std.loc[a], n.loc[a]) for a in arms]
    for kind, label in (("single", "single"), ("random", "random-ensemble")):
        names = [a for a in arms if arm_kind(a) == kind]
        if not names:
            continue
        m = mean.loc[names]
        rows.append(row(f"{label} (mean)", m.mean(), m.std() if len(names) > 1 else m.mean() * np.nan,
                        n.loc[names].sum(), True, f"mean over {len(names)} {label} arms; std across them"))
        if kind == "single":
            if f"val_{best_by}" not in df.columns:
                log.warning("no val_%s column: 'single (best)' is chosen on validation, so it is left out",
                            best_by)
                continue
            best = "single:" + best_single(df, best_by)
            rows.append(row("single (best)", mean.loc[best], std.loc[best], n.loc[best], True,
                            f"{best} (best mean validation {best_by})"))
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------- journaled protocol


class Journal:
    """Append-only CSV of finished (arm, seed) trainings (columns :data:`JOURNAL_COLUMNS`).

    ``settings`` is a digest of everything that changes a result (model, schedule, samples,
    seeds of the data): :meth:`load` keeps only lines made with it, so a journal shared by runs
    with other settings is never mixed. A line cut off by a killed run is ended before the next
    append and skipped when read.
    """

    def __init__(self, path: str | os.PathLike, settings: str,
                 columns: Sequence[str] = JOURNAL_COLUMNS) -> None:
        self.path = Path(path)
        self.settings = str(settings)
        self.columns = list(columns)

    def load(self) -> dict[tuple[str, int], dict]:
        """``{(arm_id, seed): row}`` of the finished lines made with this journal's settings."""
        if not self.path.exists():
            return {}
        df = pd.read_csv(self.path, on_bad_lines="skip", dtype={"arm_id": str, "settings": str})
        df = df[(df["ok"] == 1) & (df["settings"] == self.settings) & df["test_g_mean"].notna()]
        return {(r["arm_id"], int(r["seed"])): r for r in df.to_dict("records")}

    def append(self, rows: Iterable[Mapping]) -> None:
        """Write ``rows`` (each with every column), one line each, flushed and fsynced."""
        new_file = not self.path.exists() or self.path.stat().st_size == 0
        if not new_file:  # a run killed mid-line left no newline: end that line first
            with open(self.path, "rb") as f:
                f.seek(-1, os.SEEK_END)
                torn = f.read(1) != b"\n"
            if torn:
                with open(self.path, "a") as f:
                    f.write("\n")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "a", newline="") as f:
            if new_file:
                f.write(",".join(self.columns) + "\n")
            for row in rows:
                pd.DataFrame([dict(row)])[self.columns].to_csv(f, header=False, index=False)
                f.flush()
                os.fsync(f.fileno())


def plan_runs(arms: Sequence[Arm], seeds: Iterable[int],
              done: Collection[tuple[str, int]] = ()) -> list[tuple[Arm, int]]:
    """The (arm, seed) trainings still to do, seed-major, one per distinct arm id and seed."""
    todo, queued = [], set(done)
    for seed in seeds:
        for arm in arms:
            if (arm.id, int(seed)) in queued:
                continue
            queued.add((arm.id, int(seed)))
            todo.append((arm, int(seed)))
    return todo


def train_arm(task: Mapping) -> dict:
    """Train one classifier for one (arm, seed); metrics on the real validation and test splits.

    A module-level task for :func:`run_journaled` (a backend may run it in another process), so
    it reads everything from paths: ``task`` holds ``arm_id``, ``arm``, ``kind``, ``members``,
    ``seed``, ``settings``, ``samples_dir`` (a :class:`~ensemble.downstream.sources.SampleStore`),
    ``dataset`` and ``data_root`` (the real splits), ``model``, ``epochs``, ``patience``,
    ``lr_patience``, ``samples_per_epoch``, ``device``, ``threads`` (torch threads) and ``quiet``
    (no progress bars); optional: ``steps``, ``min_steps``, ``warmup_steps``, ``class_weight`` (one
    weight per class, e.g. :func:`~ensemble.downstream.training.class_weights` of the real training
    labels), ``threshold`` (``"val"``: the g-mean-maximising threshold on the validation split, for
    binary tasks), as :func:`run_protocol` takes them. A study that varies the generators' sampling
    seed with the classifier's passes one ``samples_dir`` per seed. Returns one journal row;
    ``*_g_mean_05`` are the g-mean at the default threshold (0.5, the arg-max).
    """
    import torch

    from ensemble.data import load_dataset
    from ensemble.downstream.sources import SampleStore

    t = dict(task)
    if t.get("quiet"):
        os.environ["TQDM_DISABLE"] = "1"
    torch.set_num_threads(int(t.get("threads", 1)))
    dataset, root = t["dataset"], t.get("data_root")
    val = load_dataset(dataset, split="val", root=root)
    test = load_dataset(dataset, split="test", root=root)
    members = list(t["members"])
    if t["kind"] == "real":
        train = load_dataset(dataset, split="train", root=root)
        src = TrainingSource(train.images, train.labels, sampler="shuffle", name="real")
    else:
        src = SampleStore(t["samples_dir"]).source(members, samples_per_epoch=t["samples_per_epoch"],
                                                   name=t["arm"])
    clf = train_classifier(src.images, src.labels, val.images, val.labels, model=t["model"],
                           epochs=t["epochs"], patience=t["patience"], lr_patience=t["lr_patience"],
                           seed=int(t["seed"]), device=t.get("device", "auto"),
                           samples_per_epoch=src.samples_per_epoch, sampler=src.sampler,
                           groups=src.groups, progress=not t.get("quiet"), steps=t.get("steps"),
                           min_steps=int(t.get("min_steps") or 0),
                           warmup_steps=int(t.get("warmup_steps") or 0),
                           class_weight=t.get("class_weight"))
    thr = None
    if t.get("threshold") == "val" and clf.num_classes == 2:
        thr = choose_threshold(val.labels, clf.predict_proba(val.images))
    row = {"arm_id": t["arm_id"], "arm": t["arm"], "kind": t["kind"], "members": " ".join(members),
           "n_members": len(members), "seed": int(t["seed"]), "settings": t["settings"]}
    row.update({f"val_{k}": v for k, v in evaluate_classifier(clf, val.images, val.labels, threshold=thr).items()})
    row.update({f"test_{k}": v for k, v in evaluate_classifier(clf, test.images, test.labels, threshold=thr).items()})
    row["threshold"] = thr if thr is not None else float("nan")
    for split, ds in (("val", val), ("test", test)):
        row[f"{split}_g_mean_05"] = (row[f"{split}_g_mean"] if thr is None else
                                     evaluate_classifier(clf, ds.images, ds.labels)["g_mean"])
    row.update(best_epoch=clf.best_epoch, epochs_run=clf.epochs_run, best_val_loss=clf.best_val_loss,
               seconds=round(clf.seconds, 3), ok=1)
    return row


def run_journaled(tasks: Sequence[Mapping], journal: Journal, *, task: Callable[[Mapping], dict] = train_arm,
                  backend=None, on_row: Callable[[dict], None] | None = None) -> int:
    """Run ``task`` over ``tasks`` on ``backend`` and append each result to ``journal``.

    ``backend``: an :mod:`ensemble.parallel` backend (default: in this process, one task after the
    other). Tasks go to the backend in rounds of one task per worker, and each round's rows are
    journaled as soon as it ends, so a killed run loses at most one round. Returns the number of
    rows written; ``on_row(row)`` is called for each (e.g. to print progress).
    """
    import torch

    from ensemble.parallel import LocalBackend

    backend = backend if backend is not None else LocalBackend(1)
    per_round = max(1, int(getattr(backend, "n_workers", 1) or 1))
    tasks = list(tasks)
    threads = torch.get_num_threads()
    written = 0
    try:
        for i in range(0, len(tasks), per_round):
            rows = backend.map(task, tasks[i:i + per_round], desc="downstream")
            journal.append(rows)
            written += len(rows)
            for row in rows:
                if on_row is not None:
                    on_row(row)
    finally:
        torch.set_num_threads(threads)  # an in-process task sets its own thread count
    return written


# --------------------------------------------------------------------------- report rows


def group_values(rows: Mapping[tuple[str, int], Mapping], arm_ids: Sequence[str], metric: str,
                 seeds: Iterable[int]) -> tuple[np.ndarray, np.ndarray]:
    """``(seeds, values)``: per seed, the mean of ``metric`` over ``arm_ids``, on the seeds
    finished for every one of them (``rows`` as :meth:`Journal.load` gives them)."""
    done = [int(s) for s in seeds if all((a, int(s)) in rows for a in arm_ids)]
    vals = np.array([[rows[(a, s)][metric] for a in arm_ids] for s in done], float)
    return np.array(done), (vals.mean(1) if len(done) else np.zeros(0))


def summarize_groups(rows: Mapping[tuple[str, int], Mapping],
                     groups: Mapping[str, tuple[Sequence[str], str]], seeds: Iterable[int], *,
                     metrics: Sequence[str] = ("g_mean", "accuracy", "f1", "roc_auc"),
                     val_metric: str = "g_mean") -> pd.DataFrame:
    """One row per group ``{label: (arm_ids, note)}``: arms averaged per seed, then over seeds.

    Columns: ``arm`` (the label), ``note``, ``n_seeds`` (seeds finished for every arm of the
    group), ``<metric>_mean`` / ``<metric>_std`` of the test metrics, ``val_<val_metric>`` (mean
    validation value) and ``spread`` (for a group of several arms: std and min-max of the arms'
    own mean test ``val_metric``). Groups without arms are left out.
    """
    seeds = [int(s) for s in seeds]
    out = []
    for label, (ids, note) in groups.items():
        ids = list(ids)
        if not ids:
            continue
        r = {"arm": label, "note": note}
        done, _ = group_values(rows, ids, f"test_{val_metric}", seeds)
        r["n_seeds"] = len(done)
        for m in metrics:
            _, v = group_values(rows, ids, f"test_{m}", seeds)
            r[f"{m}_mean"] = float(v.mean()) if len(v) else float("nan")
            r[f"{m}_std"] = float(v.std(ddof=1)) if len(v) > 1 else float("nan")
        _, vv = group_values(rows, ids, f"val_{val_metric}", seeds)
        r[f"val_{val_metric}"] = float(vv.mean()) if len(vv) else float("nan")
        if len(ids) > 1:
            per = [group_values(rows, [i], f"test_{val_metric}", seeds)[1].mean() for i in ids]
            r["spread"] = f"{np.std(per, ddof=1):.3f} ({np.min(per):.3f}-{np.max(per):.3f})"
        else:
            r["spread"] = ""
        out.append(r)
    return pd.DataFrame(out)


def compare_groups(rows: Mapping[tuple[str, int], Mapping],
                   groups: Mapping[str, tuple[Sequence[str], str]],
                   pairs: Iterable[tuple[str, str]], seeds: Iterable[int], *, n_boot: int,
                   seed_of: Callable[[str, str, str], int],
                   metrics: Sequence[str] = ("g_mean", "accuracy", "f1", "roc_auc")) -> pd.DataFrame:
    """Paired tests of group ``a`` against group ``b`` for each ``(a, b)`` of ``pairs``.

    On the seeds finished for every arm of both groups, per seed the mean test metric of each
    group; :func:`~ensemble.downstream.statistics.paired_test` of the first metric gives the
    columns ``n``, ``diff``, ``lo``, ``hi``, ``p_t``, ``p_w``, the others ``d_<metric>`` and
    ``p_<metric>``; ``p_holm`` Holm-adjusts ``p_t`` over the table. ``seed_of(a, b, metric)``
    seeds each bootstrap. Columns ``G*`` and ``baseline`` name the pair; pairs with a missing or
    empty group, or no common seed, are left out.
    """
    seeds = [int(s) for s in seeds]
    out = []
    for a, b in pairs:
        if a not in groups or b not in groups or not groups[a][0] or not groups[b][0]:
            continue
        ids_a, ids_b = list(groups[a][0]), list(groups[b][0])
        common = [x for x in seeds if all((i, x) in rows for i in ids_a + ids_b)]
        if not common:
            continue
        row = {"G*": a, "baseline": b}
        for k, m in enumerate(metrics):
            va = np.array([np.mean([rows[(i, x)][f"test_{m}"] for i in ids_a]) for x in common])
            vb = np.array([np.mean([rows[(i, x)][f"test_{m}"] for i in ids_b]) for x in common])
            t = paired_test(va, vb, n_boot, seed_of(a, b, m))
            if k == 0:
                row.update(t)
            else:
                row[f"d_{m}"] = t["diff"]
                row[f"p_{m}"] = t["p_t"]
        out.append(row)
    table = pd.DataFrame(out)
    if len(table):
        table["p_holm"] = holm(table["p_t"].tolist())
    return table
