"""Training data of one downstream arm, and how an epoch draws from it.

A :class:`TrainingSource` holds the images and labels one arm trains on, and, for an ensemble,
the member each image came from. METHOD.md §5: for an ensemble, each training draw picks a member
uniformly and then one of its images (sampler ``"member"``), about |real train| draws per epoch;
real data is shuffled each epoch. :func:`epoch_indices` is the pure draw; :func:`as_source` and
:func:`as_arrays` accept the shapes users pass (Dataset, SyntheticSamples, ``(images, labels)``).
:class:`SampleStore` keeps one class-balanced sample per generator on disk, so every arm that uses
a generator trains on the same images (and worker processes read them instead of re-sampling).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

__all__ = [
    "SAMPLERS",
    "TrainingSource",
    "as_source",
    "as_arrays",
    "epoch_indices",
    "resize_images",
    "slug",
    "SampleStore",
    "real_splits",
]

log = logging.getLogger(__name__)

SAMPLERS = ("shuffle", "uniform", "member")


@dataclass
class TrainingSource:
    """Training images for one arm, and how an epoch draws from them.

    ``groups`` (int ``(N,)``, optional): the member each image came from. ``sampler``:
    ``"shuffle"`` (a permutation of all images per epoch), ``"uniform"`` (draws with replacement)
    or ``"member"`` (each draw picks a group uniformly, then one of its images; needs ``groups``);
    None picks ``"member"`` when there are groups, else ``"shuffle"``. ``samples_per_epoch``:
    draws per epoch (default: all images).
    """

    images: np.ndarray
    labels: np.ndarray
    groups: np.ndarray | None = None
    samples_per_epoch: int | None = None
    sampler: str | None = None
    name: str = ""
    meta: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        from ensemble.data import validate_images

        self.images = validate_images(self.images, "training images")
        self.labels = np.asarray(self.labels).reshape(-1).astype(np.int64)
        if len(self.labels) != len(self.images):
            raise ValueError(f"{len(self.images)} training images but {len(self.labels)} labels")
        if self.groups is not None:
            self.groups = np.asarray(self.groups).reshape(-1).astype(np.int64)
            if len(self.groups) != len(self.images):
                raise ValueError(f"groups has {len(self.groups)} entries for {len(self.images)} images")

    def __len__(self) -> int:
        return len(self.labels)

    @classmethod
    def from_dataset(cls, ds, name: str | None = None, **kwargs) -> TrainingSource:
        """All images of an :class:`ensemble.data.Dataset`, shuffled each epoch."""
        return cls(ds.images, ds.labels, name=name or ds.name, **kwargs)

    @classmethod
    def from_samples(cls, samples, name: str = "synthetic", **kwargs) -> TrainingSource:
        """Synthetic samples; draws pick a member uniformly, then an image (METHOD §5)."""
        return cls(samples.images, samples.labels, groups=samples.groups, name=name,
                   meta={"members": samples.members}, **kwargs)


def as_source(obj) -> TrainingSource:
    """``obj`` as a :class:`TrainingSource` (a TrainingSource, SyntheticSamples, Dataset or
    ``(images, labels)``); anything else raises ``ValueError`` naming what is accepted."""
    from ensemble.synthesis.sample import SyntheticSamples

    if isinstance(obj, TrainingSource):
        return obj
    if isinstance(obj, SyntheticSamples):
        return TrainingSource.from_samples(obj)
    if isinstance(obj, tuple) and len(obj) == 2:
        return TrainingSource(*obj)
    if hasattr(obj, "images") and hasattr(obj, "labels"):
        return TrainingSource.from_dataset(obj)
    raise ValueError(
        f"cannot train on {type(obj).__name__}; pass a TrainingSource, a Dataset, SyntheticSamples "
        "or an (images, labels) tuple"
    )


def as_arrays(obj, what: str) -> tuple[np.ndarray, np.ndarray]:
    """``(images, labels)`` of a Dataset or an ``(images, labels)`` tuple (``what`` names it in errors)."""
    if isinstance(obj, tuple) and len(obj) == 2:
        return np.asarray(obj[0]), np.asarray(obj[1]).reshape(-1)
    if hasattr(obj, "images") and hasattr(obj, "labels"):
        return obj.images, np.asarray(obj.labels).reshape(-1)
    raise ValueError(f"{what} must be a Dataset or an (images, labels) tuple, got {type(obj).__name__}")


def epoch_indices(n: int, rng: np.random.Generator, *, size: int | None = None,
                  sampler: str = "shuffle", groups: np.ndarray | None = None) -> np.ndarray:
    """Indices of the images drawn in one epoch (pure; see :class:`TrainingSource`)."""
    size = n if size is None else int(size)
    if size < 1 or n < 1:
        raise ValueError(f"an epoch needs at least one image; got {n} images and {size} draws")
    if sampler == "shuffle":
        reps = -(-size // n)
        return np.concatenate([rng.permutation(n) for _ in range(reps)])[:size]
    if sampler == "uniform":
        return rng.integers(0, n, size=size)
    if sampler == "member":
        if groups is None:
            raise ValueError("sampler 'member' needs groups: the member index of every image")
        order = np.argsort(groups, kind="stable")
        present, starts, counts = np.unique(groups[order], return_index=True, return_counts=True)
        g = rng.integers(0, len(present), size=size)
        within = np.floor(rng.random(size) * counts[g]).astype(np.int64)
        return order[starts[g] + np.minimum(within, counts[g] - 1)]
    raise ValueError(f"unknown sampler {sampler!r}; known: {', '.join(SAMPLERS)}")


def resize_images(images: np.ndarray, size: int | Sequence[int]) -> np.ndarray:
    """uint8 images resized to ``size`` (``H`` or ``(H, W)``) with Pillow's bilinear filter.

    For comparing with generators trained at another size (the reference resized MedMNIST's 28 px
    to 32 px); channels are kept.
    """
    from PIL import Image

    h, w = (int(size), int(size)) if np.isscalar(size) else (int(size[0]), int(size[1]))
    if images.shape[1:3] == (h, w):
        return images
    out = np.empty((len(images), h, w, *images.shape[3:]), dtype=np.uint8)
    for i, im in enumerate(images):
        out[i] = np.asarray(Image.fromarray(im).resize((w, h), Image.BILINEAR))
    return out




def real_splits(catalog, ensemble, *, dataset: str | None = None, root: str | os.PathLike | None = None,
                splits: Sequence[str] = ("train", "val", "test"), size: int = 28) -> tuple[dict, str, bool]:
    """The real splits an ensemble's generators are compared against, at the generators' size.

    ``dataset`` defaults to the one recorded in the ensemble (``meta["dataset"]``), else in the
    catalog row of its first member. Images are resized (:func:`resize_images`) when the
    generators make another size. Returns ``({split: Dataset}, dataset, resized)``.
    """
    from ensemble.data import load_dataset
    from ensemble.synthesis.sample import ensemble_members, parse_image_shape

    members, _ = ensemble_members(ensemble)
    row = catalog.get(members[0])
    meta = getattr(ensemble, "meta", None) or {}
    dataset = dataset or meta.get("dataset") or row.get("dataset")
    if not dataset or dataset == "unknown":
        raise ValueError("which real dataset? pass dataset= / --dataset (a MedMNIST flag such as "
                         "pneumoniamnist, an npz file or an ImageFolder tree)")
    out = {s: load_dataset(dataset, split=s, root=root, size=size) for s in splits}
    shape = parse_image_shape(row["image_shape"])
    first = out[splits[0]]
    resized = first.image_shape[:2] != shape[:2]
    if resized:
        log.info("resizing real %s images from %s to %s to match the generators", dataset,
                 first.image_shape[:2], shape[:2])
        for ds in out.values():
            ds.images = resize_images(ds.images, shape[:2])
    return out, str(dataset), resized


def slug(text: str) -> str:
    """``text`` with every character other than letters, digits and ``-_.`` replaced by ``_``
    (a file name for a generator name such as ``dcgan-lr0.0002@300``)."""
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in text)


class SampleStore:
    """One class-balanced sample per generator, ``<directory>/<slug(name)>.npz``, shared by arms.

    Each file holds ``images``, ``labels`` and a ``key`` (the generator's checkpoint hash, the
    images per class and the seed): :meth:`ensure` samples only generators whose file is missing
    or was made with another key, so a study resumes where it stopped. :meth:`source` builds an
    arm's :class:`TrainingSource` from its members' samples (groups = member index, sampler
    ``"member"``: a member uniformly, then one of its images).
    """

    def __init__(self, directory: str | os.PathLike) -> None:
        self.directory = Path(directory)

    def path(self, name: str) -> Path:
        """The file of generator ``name``."""
        return self.directory / f"{slug(name)}.npz"

    @staticmethod
    def key(catalog, name: str, n_per_class: int, seed: int) -> str:
        """What a sample depends on: the checkpoint's hash, the images per class, the seed."""
        return f"{catalog.get(name)['sha256']}:{int(n_per_class)}:{int(seed)}"

    def is_current(self, name: str, key: str) -> bool:
        """Whether ``name``'s file exists and was made with ``key``."""
        path = self.path(name)
        if not path.exists():
            return False
        with np.load(path, allow_pickle=False) as z:
            return str(z["key"]) == key

    def ensure(self, catalog, names: Sequence[str], *, n_per_class: int, seed: int,
               device: str = "auto") -> int:
        """Sample every generator of ``names`` that has no current file (seeded as
        :func:`ensemble.synthesis.sample.sample_ensemble`); returns how many were sampled."""
        from ensemble.synthesis.sample import sample_ensemble
        from zoo.io import atomic_write

        self.directory.mkdir(parents=True, exist_ok=True)
        work = 0
        for name in names:
            key = self.key(catalog, name, n_per_class, seed)
            if self.is_current(name, key):
                continue
            s = sample_ensemble([name], catalog, n_per_class=n_per_class, seed=seed, device=device)

            def write(p: Path, s=s, key=key) -> None:
                with open(p, "wb") as f:
                    np.savez(f, images=s.images, labels=s.labels, key=np.array(key))

            atomic_write(self.path(name), write)
            work += 1
        return work

    def load(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        """``(images, labels)`` of generator ``name``."""
        path = self.path(name)
        if not path.exists():
            raise FileNotFoundError(f"no sample of {name!r} at {path}; run SampleStore.ensure(...) first")
        with np.load(path, allow_pickle=False) as z:
            return z["images"], z["labels"]

    def source(self, members: Sequence[str], *, samples_per_epoch: int | None = None,
               name: str = "") -> TrainingSource:
        """The training set of an arm made of ``members`` (their samples, concatenated)."""
        if not members:
            raise ValueError("an arm needs at least one member")
        xs, ys, gs = [], [], []
        for i, m in enumerate(members):
            x, y = self.load(m)
            xs.append(x)
            ys.append(y)
            gs.append(np.full(len(y), i, dtype=np.int64))
        return TrainingSource(np.concatenate(xs), np.concatenate(ys), groups=np.concatenate(gs),
                              samples_per_epoch=samples_per_epoch, sampler="member", name=name,
                              meta={"members": list(members)})
