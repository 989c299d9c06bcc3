"""Sample a class-balanced synthetic dataset from an ensemble of generators.

:func:`sample_ensemble` asks every member of an ensemble (a :class:`~ensemble.search.Ensemble`
or a list of catalog names) for its share of images of every class. Each member is sampled once,
with all of its labels, from the seed ``ensemble.seeds.member_sample_seed(seed, name)``, so the same root seed
gives the same bytes whatever else changes, and a member's images do not depend on which other
members sit in the ensemble when its share is the same.

How the images are shared out: class ``c`` gets ``class_counts[c]`` images (``n_per_class`` for
every class by default). Within a class the members share the work equally, or in proportion to
``member_weights``; the remainder of the integer division goes to the members with the largest
fractional shares, ties broken by a rotation that starts at member ``c % M`` so that, over the
classes, no member is systematically favoured. The final order is **shuffled** with the seed (not
grouped by class or member), so any prefix of the dataset is close to balanced by class and member.
Every image keeps its provenance: which generator, which snapshot, the seed and its position in
that generator's sample, and its label.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ensemble.data import LabelledImages
from ensemble.seeds import member_sample_seed

__all__ = [
    "SyntheticSamples",
    "sample_ensemble",
    "allocate",
    "resolve_class_counts",
    "class_names_for",
    "default_n_per_class",
    "balanced_n_per_class",
    "PROVENANCE_COLUMNS",
    "ensemble_members",
    "parse_image_shape",
]

log = logging.getLogger(__name__)

PROVENANCE_COLUMNS = ("generator", "name", "iteration", "seed", "index", "label")


@dataclass
class SyntheticSamples(LabelledImages):
    """Synthetic images with labels and per-image provenance.

    ``images`` uint8 ``(N, H, W)`` or ``(N, H, W, 3)``; ``labels`` int64 ``(N,)``;
    ``provenance`` has one row per image with columns ``generator`` (the run), ``name`` (catalog
    name), ``iteration``, ``seed`` (the seed the generator was sampled with), ``index`` (position in
    that generator's sample) and ``label``; ``meta`` records how the samples were made.
    """

    images: np.ndarray
    labels: np.ndarray
    class_names: list[str]
    provenance: pd.DataFrame
    meta: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.labels = np.asarray(self.labels, dtype=np.int64)
        if len(self.images) != len(self.labels) or len(self.provenance) != len(self.labels):
            raise ValueError(
                f"images ({len(self.images)}), labels ({len(self.labels)}) and provenance "
                f"({len(self.provenance)}) must have one entry per image"
            )
        missing = [c for c in PROVENANCE_COLUMNS if c not in self.provenance.columns]
        if missing:
            raise ValueError(f"provenance lacks columns {missing}; expected {list(PROVENANCE_COLUMNS)}")

    @property
    def members(self) -> list[str]:
        """Member names in ensemble order (those that contributed at least one image included)."""
        members = self.meta.get("members")
        if members:
            return [str(m) for m in members]
        return list(dict.fromkeys(self.provenance["name"].astype(str)))

    @property
    def groups(self) -> np.ndarray:
        """int64 ``(N,)``: for each image, the index of its member in :attr:`members`."""
        lookup = {m: i for i, m in enumerate(self.members)}
        return np.array([lookup[n] for n in self.provenance["name"].astype(str)], dtype=np.int64)

    def class_counts(self) -> np.ndarray:
        """Images per class, ``(num_classes,)``."""
        return np.bincount(self.labels, minlength=self.num_classes)

    def counts_table(self) -> pd.DataFrame:
        """Images per member (rows) and class (columns)."""
        table = pd.crosstab(self.provenance["name"], self.provenance["label"])
        table = table.reindex(index=self.members, columns=range(self.num_classes), fill_value=0)
        table.columns = list(self.class_names)
        return table

    def to_dataset(self, split: str = "train"):
        """The images and labels as an :class:`ensemble.data.Dataset`."""
        from ensemble.data import Dataset

        return Dataset(self.images, self.labels, list(self.class_names),
                       str(self.meta.get("dataset") or "synthetic"), split,
                       {"synthetic": True, "members": self.members})


def class_names_for(dataset: str | None, num_classes: int) -> list[str]:
    """Class names of a MedMNIST flag when ``dataset`` is one, else ``"0"``, ``"1"``, ..."""
    if dataset:
        try:
            from ensemble.data import list_medmnist_flags, medmnist_info

            if dataset in list_medmnist_flags():
                labels = medmnist_info()[dataset]["label"]
                if len(labels) == num_classes:
                    return [str(labels[str(i)]) for i in range(num_classes)]
        except ImportError:  # medmnist missing: fall back to numbers
            pass
    return [str(i) for i in range(num_classes)]


def balanced_n_per_class(labels: np.ndarray, num_classes: int | None = None) -> int:
    """ceil(N / classes) for real training labels: THE default number of images per class.

    A class-balanced synthetic set as large as the real training split (the reference's size);
    the export, the pipeline, the downstream arms and the studies all use it.
    """
    import math

    labels = np.asarray(labels)
    k = int(num_classes or (int(labels.max()) + 1 if labels.size else 0))
    if k < 1 or labels.size == 0:
        raise ValueError("no labels given to size the synthetic set; pass n_per_class")
    return int(math.ceil(labels.size / k))


def default_n_per_class(dataset: str, root: str | None = None) -> int:
    """ceil(|real train| / classes) of ``dataset``: the reference's synthetic size, class-balanced.

    For a MedMNIST flag the split sizes come from medmnist's metadata (no file needed); otherwise
    the training split is loaded from ``dataset`` (an npz file or an ImageFolder tree) or ``root``.
    """
    import math

    from ensemble.data import list_medmnist_flags, load_dataset, medmnist_info

    if dataset in list_medmnist_flags():
        info = medmnist_info()[dataset]
        return int(math.ceil(info["n_samples"]["train"] / len(info["label"])))
    ds = load_dataset(dataset, split="train", root=root)
    return int(math.ceil(len(ds) / ds.num_classes))


def resolve_class_counts(num_classes: int, n_per_class: int | None = None,
                         class_counts: Sequence[int] | Mapping[int, int] | None = None) -> np.ndarray:
    """The number of images wanted per class, ``(num_classes,)`` int64.

    Exactly one of ``n_per_class`` (the same for every class: class-balanced) and ``class_counts``
    (a sequence of length ``num_classes`` or a ``{class: count}`` mapping, absent classes 0).
    """
    if n_per_class is None and class_counts is None:
        raise ValueError(
            "how many images? pass n_per_class (class-balanced, e.g. the real training size / "
            "number of classes) or class_counts (one count per class)"
        )
    if n_per_class is not None and class_counts is not None:
        raise ValueError("pass either n_per_class or class_counts, not both")
    if n_per_class is not None:
        if isinstance(n_per_class, bool) or not isinstance(n_per_class, (int, np.integer)) or n_per_class < 1:
            raise ValueError(f"n_per_class must be a positive integer, got {n_per_class!r}")
        return np.full(num_classes, int(n_per_class), dtype=np.int64)
    if isinstance(class_counts, Mapping):
        counts = np.zeros(num_classes, dtype=np.int64)
        for c, n in class_counts.items():
            c = int(c)
            if not 0 <= c < num_classes:
                raise ValueError(f"class_counts names class {c}, but there are {num_classes} classes (0..{num_classes - 1})")
            counts[c] = n
    else:
        counts = np.asarray(list(class_counts))
        if counts.shape != (num_classes,):
            raise ValueError(
                f"class_counts has {counts.size} entries but the generators have {num_classes} classes; "
                "give one count per class"
            )
    if not np.issubdtype(counts.dtype, np.integer) or (counts < 0).any() or counts.sum() == 0:
        raise ValueError(f"class_counts must be non-negative integers with a positive total, got {counts.tolist()}")
    return counts.astype(np.int64)


def allocate(class_counts: np.ndarray, n_members: int,
             member_weights: Sequence[float] | None = None) -> np.ndarray:
    """Share ``class_counts`` among ``n_members``: int64 ``(n_members, num_classes)``.

    Largest-remainder rounding of ``count * weight``; ties go to members in the rotated order
    ``c % M, c % M + 1, ...`` so that with equal weights the spare images cycle over the members.
    Every column sums exactly to its class count.
    """
    counts = np.asarray(class_counts, dtype=np.int64)
    if n_members < 1:
        raise ValueError("an ensemble needs at least one member")
    if member_weights is None:
        w = np.full(n_members, 1.0 / n_members)
    else:
        w = np.asarray(member_weights, dtype=np.float64)
        if w.shape != (n_members,):
            raise ValueError(f"member_weights has {w.size} entries for {n_members} members; give one weight per member")
        if not np.all(np.isfinite(w)) or (w < 0).any() or w.sum() <= 0:
            raise ValueError(f"member_weights must be finite, non-negative and not all zero, got {w.tolist()}")
        w = w / w.sum()
    out = np.zeros((n_members, len(counts)), dtype=np.int64)
    for c, n in enumerate(counts):
        exact = n * w
        base = np.floor(exact + 1e-9).astype(np.int64)
        spare = int(n - base.sum())
        if spare > 0:
            rot = (np.arange(n_members) - c) % n_members  # rank of each member in the rotation
            frac = exact - base
            # Largest fraction first; ties by rotated position. Zero-weight members never get extras.
            order = sorted(np.flatnonzero(w > 0), key=lambda m: (-round(frac[m], 9), rot[m]))
            for m in order[:spare]:
                base[m] += 1
        out[:, c] = base
    return out


def ensemble_members(ensemble) -> tuple[list[str], dict]:
    """Member names of an :class:`~ensemble.search.Ensemble` or a list of names, and a record of it."""
    from ensemble.search.result import Ensemble

    if isinstance(ensemble, Ensemble):
        return list(ensemble.members), {
            "members": list(ensemble.members),
            "intra_d": ensemble.intra_d,
            "inter_d": ensemble.inter_d,
            "rule": ensemble.rule,
            "rule_params": dict(ensemble.rule_params),
            "ensemble_meta": dict(ensemble.meta),
        }
    if isinstance(ensemble, str):
        ensemble = [ensemble]
    members = [str(m) for m in ensemble]
    if not members:
        raise ValueError("the ensemble is empty; pass at least one generator name")
    if len(set(members)) != len(members):
        raise ValueError(f"ensemble members repeat: {members}")
    return members, {"members": members, "rule": "manual"}


def parse_image_shape(value) -> tuple[int, ...]:
    """An image shape from a catalog row (a JSON list or a sequence) as a tuple of ints."""
    if isinstance(value, str):
        import json

        value = json.loads(value)
    return tuple(int(v) for v in value)


def sample_ensemble(ensemble, catalog, n_per_class: int | None = None,
                    class_counts: Sequence[int] | Mapping[int, int] | None = None,
                    member_weights: Sequence[float] | Mapping[str, float] | None = None,
                    seed: int = 0, device: str = "auto",
                    class_names: Sequence[str] | None = None) -> SyntheticSamples:
    """Sample a labelled synthetic dataset from the ensemble's members (see the module docstring).

    ``ensemble``: an :class:`~ensemble.search.Ensemble` or a list of catalog names; ``catalog``:
    a :class:`zoo.catalog.Catalog`. Give ``n_per_class`` (class-balanced) or ``class_counts``.
    ``member_weights`` (one per member, or ``{name: weight}``) shares each class among the members
    unequally; by default equally. All members must agree on image shape and number of classes.
    """
    members, ens_meta = ensemble_members(ensemble)
    if hasattr(ensemble, "verify"):
        ensemble.verify(catalog)  # the members are the generators that were scored (provenance)
    if isinstance(member_weights, Mapping):
        unknown = sorted(set(member_weights) - set(members))
        if unknown:
            raise ValueError(f"member_weights names {unknown}, which are not members of the ensemble {members}")
        member_weights = [float(member_weights.get(m, 0.0)) for m in members]

    rows = []
    for name in members:
        try:
            rows.append(catalog.get(name))
        except KeyError as exc:
            raise ValueError(
                f"ensemble member {name!r} is not in the catalog ({exc}); pass the zoo the "
                "ensemble was selected from"
            ) from exc
    num_classes = {int(r["num_classes"]) for r in rows}
    shapes = {parse_image_shape(r["image_shape"]) for r in rows}
    if len(num_classes) != 1 or len(shapes) != 1:
        detail = ", ".join(f"{r['name']}: {int(r['num_classes'])} classes, shape {parse_image_shape(r['image_shape'])}"
                           for r in rows)
        raise ValueError(
            f"ensemble members disagree on image shape or number of classes ({detail}); "
            "an ensemble must hold generators of one dataset"
        )
    (k,) = num_classes
    (shape,) = shapes
    datasets = sorted({str(r.get("dataset")) for r in rows
                       if r.get("dataset") and str(r.get("dataset")) != "unknown"})
    dataset = datasets[0] if len(datasets) == 1 else None
    if class_names is None:
        class_names = class_names_for(dataset, k)
    class_names = [str(c) for c in class_names]
    if len(class_names) != k:
        raise ValueError(f"class_names has {len(class_names)} names but the generators have {k} classes")

    counts = resolve_class_counts(k, n_per_class, class_counts)
    alloc = allocate(counts, len(members), member_weights)

    images, labels, prov = [], [], []
    for m, (name, row) in enumerate(zip(members, rows, strict=True)):
        n_m = int(alloc[m].sum())
        if n_m == 0:
            continue
        member_labels = np.repeat(np.arange(k, dtype=np.int64), alloc[m])
        member_seed = member_sample_seed(seed, name)
        gen = catalog.load(name, device=device)
        out = np.asarray(gen.sample(n_m, labels=member_labels, seed=member_seed))
        if out.dtype != np.uint8 or out.shape != (n_m, *shape):
            raise ValueError(
                f"generator {name!r} returned {out.dtype} {out.shape} for {n_m} images; the catalog "
                f"says uint8 {(n_m, *shape)}. Fix its catalog entry or its sample()"
            )
        log.info("sampled %d images from %s (seed %d)", n_m, name, member_seed)
        images.append(out)
        labels.append(member_labels)
        iteration = row.get("iteration")
        prov.append(pd.DataFrame({
            "generator": str(row.get("run") or name),
            "name": name,
            "iteration": int(iteration) if iteration is not None else -1,
            "seed": np.full(n_m, member_seed, dtype=np.int64),
            "index": np.arange(n_m, dtype=np.int64),
            "label": member_labels,
        }))
        del gen

    order = np.random.default_rng(member_sample_seed(seed, "order")).permutation(int(counts.sum()))
    all_images = np.concatenate(images)[order]
    all_labels = np.concatenate(labels)[order]
    provenance = pd.concat(prov, ignore_index=True).iloc[order].reset_index(drop=True)
    meta = {
        **ens_meta,
        "dataset": dataset,
        "num_classes": k,
        "image_shape": list(shape),
        "seed": int(seed),
        "class_counts": counts.tolist(),
        "allocation": {name: alloc[m].tolist() for m, name in enumerate(members)},
        "member_weights": None if member_weights is None else [float(x) for x in member_weights],
        "order": "shuffled",
    }
    return SyntheticSamples(all_images, all_labels, class_names, provenance, meta)
