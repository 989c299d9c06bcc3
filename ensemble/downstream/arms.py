"""Which training sets a downstream comparison trains on: the arms, and how each is chosen.

:func:`build_arms` makes the standard comparison of ``gan-ensemble evaluate`` (real data, G*, every
single generator, all generators pooled, random ensembles of |G*| members) as
:class:`~ensemble.downstream.sources.TrainingSource` objects. The choices a study makes are here
too, as pure functions of names, scores and seeds, so every user picks arms the same way:

- :func:`random_ensembles`: seeded random sets of one size that are none of the excluded sets
  (the G* found by the search), to show whether *the selection* matters;
- :func:`sample_singles`: a seeded sample of the single generators when training every one is
  too costly;
- :func:`best_single_by_score`: the generator with the highest score d (chosen without any
  downstream result);
- :func:`best_single_by_validation`: the generator whose classifier did best on the *validation*
  split. Arms are never chosen on the test split; a test-chosen "best" is only an upper bound.
- :func:`equal_samples_arm`: the best single generator sampled with |G*| times as many images
  (:data:`EQUAL_SAMPLES_ARM`), so that "more generators" is told apart from "more images".

:class:`Arm` names an arm by its members, so two labels for the same member set share one id
(and one set of trainings in a journal, see :mod:`ensemble.downstream.protocol`).
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ensemble.downstream.sources import TrainingSource, as_arrays
from zoo.seeding import derive_seed

__all__ = [
    "ARM_KINDS",
    "EQUAL_SAMPLES_ARM",
    "equal_samples_arm",
    "Arm",
    "arm_kind",
    "build_arms",
    "random_ensembles",
    "sample_singles",
    "best_single_by_score",
    "best_single_by_validation",
]

log = logging.getLogger(__name__)

#: Kinds of arm: real training data, a selected ensemble, one generator, all pooled, a random set.
ARM_KINDS = ("real", "gstar", "single", "naive", "random")


@dataclass(frozen=True)
class Arm:
    """One arm of a comparison: a ``label`` to show, its ``kind`` (:data:`ARM_KINDS`) and members.

    ``id`` depends on the members only (``"real"`` for real data): arms with the same member set
    share their trainings.
    """

    label: str
    kind: str
    members: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.kind not in ARM_KINDS:
            raise ValueError(f"unknown arm kind {self.kind!r}; known: {', '.join(ARM_KINDS)}")
        object.__setattr__(self, "members", tuple(str(m) for m in self.members))
        if self.kind != "real" and not self.members:
            raise ValueError(f"arm {self.label!r} ({self.kind}) needs at least one member")

    @property
    def id(self) -> str:
        """``"real"``, or a 16-hex digest of the sorted member names."""
        if self.kind == "real":
            return "real"
        text = json.dumps(sorted(self.members), sort_keys=True, default=str)
        return hashlib.sha256(text.encode()).hexdigest()[:16]


#: Label of the arm "best single generator, sampled with |G*| times as many images".
EQUAL_SAMPLES_ARM = "best single, equal samples"


def arm_kind(label: str) -> str:
    """``"single"`` / ``"random"`` for the per-generator / random-ensemble arms of :func:`build_arms`
    (labels ``single:<name>`` and ``random-ensemble-<i>``), else ``"arm"``."""
    if label.startswith("single:"):
        return "single"
    if label.startswith("random-ensemble-"):
        return "random"
    return "arm"


def random_ensembles(pool: Sequence[str], size: int, n: int, *, seed: int,
                     exclude: Iterable[Collection[str]] = ()) -> list[tuple[str, ...]]:
    """``n`` distinct random sets of ``size`` generators from ``pool``, none of them in ``exclude``.

    Each draw is ``rng.choice(len(pool), size, replace=False)`` with
    ``rng = numpy.random.default_rng(seed)``; a set drawn before or excluded is drawn again. Fewer
    than ``n`` come back when fewer sets exist. Members are in ``pool`` order.
    """
    pool = [str(p) for p in pool]
    size, n = int(size), int(n)
    if size < 1 or size > len(pool):
        raise ValueError(f"cannot draw sets of {size} from {len(pool)} generators")
    seen = {frozenset(str(m) for m in e) for e in exclude}
    excluded = sum(len(s) == size and s <= set(pool) for s in seen)
    want = min(n, math.comb(len(pool), size) - excluded)
    rng = np.random.default_rng(seed)
    out: list[tuple[str, ...]] = []
    while len(out) < want:
        pick = np.sort(rng.choice(len(pool), size=size, replace=False))
        names = frozenset(pool[j] for j in pick)
        if names in seen:
            continue
        seen.add(names)
        out.append(tuple(pool[j] for j in pick))
    return out


def sample_singles(names: Sequence[str], n: int | None, *, seed: int) -> list[str]:
    """A seeded sample of ``n`` of ``names`` (in their order); all of them when ``n`` is None or
    not smaller than ``len(names)``."""
    names = [str(x) for x in names]
    if n is None or int(n) >= len(names):
        return names
    pick = set(np.random.default_rng(seed).choice(len(names), int(n), replace=False).tolist())
    return [x for i, x in enumerate(names) if i in pick]


def best_single_by_score(tables) -> str:
    """The generator with the highest score d in ``tables`` (a ScoreTables): chosen before any
    downstream training (ties: the first in table order)."""
    return str(tables.names[int(np.argmax(tables.d))])


def best_single_by_validation(stats: pd.DataFrame, metric: str = "val_g_mean") -> str:
    """The generator whose classifiers have the best mean ``metric`` on the *validation* split.

    ``stats`` has one row per generator: ``name`` and ``metric`` (ties: the first name in sorted
    order). Choosing on a ``test_`` column is refused: that would be an optimistic upper bound, not
    a baseline.
    """
    if metric.startswith("test"):
        raise ValueError(f"choose the best single generator on the validation split, not {metric!r}")
    if not len(stats):
        raise ValueError("no single-generator results to choose from")
    order = stats.sort_values([metric, "name"], ascending=[False, True])
    return str(order["name"].iloc[0])


def equal_samples_arm(catalog, name: str, size: int, *, n_per_class: int, seed: int,
                      device: str = "auto", samples_per_epoch: int | None = None) -> TrainingSource:
    """Generator ``name`` alone, sampled with ``size`` × ``n_per_class`` images per class.

    ``size`` is |G*|: the arm sees as many distinct images as G* does (``n_per_class`` from each of
    its members) but from one generator. Sampled as :func:`build_arms` samples (``seed``), drawn
    ``samples_per_epoch`` images per epoch; labelled :data:`EQUAL_SAMPLES_ARM`, ``meta`` names the
    generator.
    """
    from ensemble.synthesis.sample import sample_ensemble

    if int(size) < 1 or int(n_per_class) < 1:
        raise ValueError(f"size and n_per_class must be positive, got {size} and {n_per_class}")
    s = sample_ensemble([str(name)], catalog, n_per_class=int(size) * int(n_per_class), seed=seed,
                        device=device)
    return TrainingSource(s.images, s.labels, groups=np.zeros(len(s), dtype=np.int64),
                          samples_per_epoch=samples_per_epoch, sampler="member", name=EQUAL_SAMPLES_ARM,
                          meta={"members": [str(name)], "times": int(size)})


def _compatible_pool(catalog, members: list[str], rows: list[dict]) -> list[str]:
    from ensemble.synthesis.sample import parse_image_shape

    k = int(rows[0]["num_classes"])
    shape = parse_image_shape(rows[0]["image_shape"])
    table = catalog.list()
    pool = [str(r["name"]) for _, r in table.iterrows()
            if int(r["num_classes"]) == k and parse_image_shape(r["image_shape"]) == shape]
    for m in members:
        if m not in pool:
            pool.append(m)
    return pool


def build_arms(catalog, ensemble, real_train, *, n_per_class: int | None = None, n_random: int = 3,
               seed: int = 0, pool: Sequence[str] | None = None, device: str = "auto",
               samples_per_epoch: int | None = None, singles: bool = True) -> dict[str, TrainingSource]:
    """The standard arms: ``real``, ``G*``, ``single:<name>`` per pool generator,
    ``naive (all pooled)`` and ``random-ensemble-<i>`` (``n_random`` random sets of |G*| members).

    Every pool generator is sampled once (``n_per_class`` images per class, default
    :func:`~ensemble.synthesis.sample.balanced_n_per_class` of the real labels, ``seed`` as in
    :func:`~ensemble.synthesis.sample.sample_ensemble`) and the arms share those images; each synthetic arm draws ``samples_per_epoch`` (default |real train|)
    images per epoch, a member uniformly, then one of its images. ``pool`` defaults to every
    catalog generator with the ensemble's image shape and number of classes. ``singles=False``
    leaves out the ``single:<name>`` arms (the generators still make up the naive pool).
    """
    from ensemble.search.result import Ensemble
    from ensemble.synthesis.sample import (
        balanced_n_per_class,
        ensemble_members,
        parse_image_shape,
        sample_ensemble,
    )

    members, _ = ensemble_members(ensemble)
    if hasattr(ensemble, "verify"):
        ensemble.verify(catalog)  # the members are the generators that were scored (provenance)
    real_x, real_y = as_arrays(real_train, "real_train")
    rows = []
    for m in members:
        try:
            rows.append(catalog.get(m))
        except KeyError as exc:
            raise ValueError(f"ensemble member {m!r} is not in the catalog") from exc
    k = int(rows[0]["num_classes"])
    gen_shape = parse_image_shape(rows[0]["image_shape"])
    if tuple(real_x.shape[1:]) != gen_shape:
        raise ValueError(
            f"real images are {tuple(real_x.shape[1:])} but the generators make {gen_shape}; resize "
            f"the real splits first, e.g. resize_images(images, {gen_shape[0]})"
        )
    pool = [str(p) for p in pool] if pool is not None else _compatible_pool(catalog, members, rows)
    for name in dict.fromkeys([*members, *pool]):
        r = catalog.get(name)
        if int(r["num_classes"]) != k or parse_image_shape(r["image_shape"]) != gen_shape:
            raise ValueError(
                f"generator {name!r} makes {int(r['num_classes'])} classes of {parse_image_shape(r['image_shape'])} "
                f"but {members[0]!r} makes {k} of {gen_shape}; every arm must come from one dataset"
            )
    if n_per_class is None:
        n_per_class = balanced_n_per_class(real_y, k)
    spe = int(samples_per_epoch or len(real_y))

    from tqdm.auto import tqdm

    samples = {}
    for name in tqdm(pool, desc="sample arms", unit="generator", leave=False):
        samples[name] = sample_ensemble([name], catalog, n_per_class=n_per_class, seed=seed,
                                        device=device)

    def combine(names: Sequence[str], arm: str) -> TrainingSource:
        imgs = np.concatenate([samples[x].images for x in names])
        labs = np.concatenate([samples[x].labels for x in names])
        grp = np.concatenate([np.full(len(samples[x]), i) for i, x in enumerate(names)])
        return TrainingSource(imgs, labs, groups=grp, samples_per_epoch=spe, sampler="member",
                              name=arm, meta={"members": list(names)})

    arms: dict[str, TrainingSource] = {
        "real": TrainingSource(real_x, real_y, sampler="shuffle", name="real"),
        "G*": combine(members, "G*"),
    }
    for name in pool if singles else ():
        arms[f"single:{name}"] = combine([name], f"single:{name}")
    arms["naive (all pooled)"] = combine(pool, "naive (all pooled)")

    size = len(members)
    picks = random_ensembles(pool, size, n_random, exclude=[members],
                             seed=derive_seed(seed, "downstream", "random-ensembles"))
    if len(picks) < int(n_random):
        log.warning("only %d random ensembles of %d out of %d generators differ from G*", len(picks),
                    size, len(pool))
    for i, ordered in enumerate(picks):
        arms[f"random-ensemble-{i}"] = combine(list(ordered), f"random-ensemble-{i}")
    if isinstance(ensemble, Ensemble):
        arms["G*"].meta.update({"intra_d": ensemble.intra_d, "inter_d": ensemble.inter_d,
                                "rule": ensemble.rule})
    return arms
