"""Sample-set members: a stored set of generated images that samples like a generator.

Any generative model can join a zoo through its samples: a folder of class subfolders holding PNG
(or other image) files or ``.npy`` arrays, as PyTorch-StudioGAN stores them or as an ImageFolder
tree, or an ``.npz`` file with ``images`` and ``labels``. :class:`SampleSetGenerator` offers the
:class:`zoo.generator.Generator` interface over such a set: labels are drawn as every generator
draws them, then each class's images are drawn from that class's stored images, deterministically
for a seed and without replacement. Asking for more images of a class than are stored is an
error saying how many there are, unless ``replace=True`` (then they are drawn with replacement
and a warning says so).

A set is identified by :func:`sample_set_digest`, a content hash over its sorted relative file
paths and their bytes, so the same files give the same hash on any machine.
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from zoo.arrays import check_images
from zoo.generator import check_n, resolve_labels
from zoo.io import sha256_file
from zoo.seeding import derive_seed

__all__ = [
    "SampleSetGenerator",
    "IMAGE_SUFFIXES",
    "sample_set_files",
    "sample_set_digest",
    "read_sample_set",
]

log = logging.getLogger(__name__)

#: Files read from a sample folder: images PIL can open, and ``.npy`` arrays.
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".npy")


def _class_dirs(root: Path) -> list[Path]:
    return sorted((p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")),
                  key=lambda p: p.name)


def _class_index(dirs: Sequence[Path]) -> dict[str, int]:
    """Integer folder names (StudioGAN: ``0/``, ``1/``) are the labels; other names are sorted
    and numbered from 0, as torchvision's ImageFolder does."""
    names = [d.name for d in dirs]
    if names and all(n.isdigit() for n in names):
        return {n: int(n) for n in names}
    return {n: i for i, n in enumerate(names)}


def sample_set_files(path: str | os.PathLike) -> list[tuple[str, int]]:
    """The files of a sample folder as ``(relative posix path, label)``, sorted by path.

    Hidden files and files with other suffixes are skipped; class folders may nest files deeper.
    """
    root = Path(path)
    if not root.is_dir():
        raise FileNotFoundError(f"sample folder {str(root)!r} not found")
    dirs = _class_dirs(root)
    if not dirs:
        raise ValueError(f"sample folder {str(root)!r} has no class subfolders; put each class's "
                         "images in a subfolder (0/, 1/, ... or one folder per class name)")
    index = _class_index(dirs)
    files = []
    for d in dirs:
        for f in d.rglob("*"):
            rel = f.relative_to(root)
            if (f.is_file() and f.suffix.lower() in IMAGE_SUFFIXES
                    and not any(part.startswith(".") for part in rel.parts)):
                files.append((rel.as_posix(), index[d.name]))
    if not files:
        raise ValueError(f"sample folder {str(root)!r} holds no image files "
                         f"({', '.join(IMAGE_SUFFIXES)}) in its class subfolders")
    return sorted(files)


def sample_set_digest(path: str | os.PathLike) -> str:
    """Content hash of a sample set: sha256 of an npz file's bytes, or for a folder of the sorted
    relative paths of its files (see :func:`sample_set_files`) each with its bytes' sha256."""
    p = Path(path)
    if p.is_file():
        return sha256_file(p)
    h = hashlib.sha256(b"gan-ensemble sample folder v1\n")
    for rel, _ in sample_set_files(p):
        h.update(rel.encode("utf-8") + b"\0" + sha256_file(p / rel).encode("ascii") + b"\n")
    return h.hexdigest()


def _read_npy(f: Path) -> np.ndarray:
    try:
        arr = np.load(f, allow_pickle=False)
    except ValueError as exc:
        raise ValueError(f"{str(f)!r} is not a plain .npy array ({exc})") from exc
    if arr.ndim == 3 and arr.shape[0] in (1, 3) and arr.shape[-1] not in (1, 3):
        arr = np.moveaxis(arr, 0, -1)  # CHW (as torch writes) -> HWC
    if arr.dtype != np.uint8:
        raise ValueError(
            f"{str(f)!r} holds dtype {arr.dtype}; sample images must be uint8 in [0, 255]. Save "
            "them with np.clip(np.round((x + 1) * 127.5), 0, 255).astype(np.uint8) for x in [-1, 1]"
        )
    return arr


def _read_image(f: Path) -> np.ndarray:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(f) as im:
            if im.mode not in ("L", "RGB"):
                im = im.convert("RGB" if "A" in im.mode or im.mode in ("P", "CMYK") else "L")
            return np.asarray(im, dtype=np.uint8)
    except (UnidentifiedImageError, OSError) as exc:
        raise ValueError(f"cannot read image {str(f)!r} ({exc})") from exc


def read_sample_set(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray]:
    """Read a sample folder or npz into ``(images uint8 (N, H, W[, 3]), labels int64 (N,))``."""
    p = Path(path)
    if p.is_file():
        if p.suffix.lower() != ".npz":
            raise ValueError(f"a sample set is a folder of class subfolders or an .npz file, got {str(p)!r}")
        try:
            with np.load(p, allow_pickle=False) as data:
                missing = {"images", "labels"} - set(data.files)
                if missing:
                    raise ValueError(f"{str(p)!r} lacks {sorted(missing)}; a sample npz holds 'images' "
                                     f"(N, H, W[, 3]) uint8 and 'labels' (N,), found {data.files}")
                images, labels = data["images"], data["labels"]
        except (OSError, EOFError) as exc:
            raise ValueError(f"{str(p)!r} is not a readable npz file ({exc})") from exc
        labels = np.asarray(labels)
        if labels.ndim == 2 and labels.shape[1] == 1:
            labels = labels[:, 0]
        if not np.issubdtype(labels.dtype, np.integer) or labels.ndim != 1:
            raise ValueError(f"{str(p)!r}: labels must be integers of shape (N,), got {labels.dtype} "
                             f"{labels.shape}")
    elif p.is_dir():
        files = sample_set_files(p)
        arrays = [_read_npy(p / rel) if rel.endswith(".npy") else _read_image(p / rel)
                  for rel, _ in files]
        shapes = {a.shape for a in arrays}
        if len(shapes) > 1:
            first = {a.shape: rel for a, (rel, _) in zip(arrays, files, strict=True)}
            raise ValueError(f"sample folder {str(p)!r} mixes image shapes: "
                             + ", ".join(f"{s} ({r})" for s, r in list(first.items())[:3]))
        images = np.stack(arrays)
        labels = np.array([label for _, label in files], dtype=np.int64)
    else:
        raise FileNotFoundError(f"sample set {str(p)!r} not found (a folder or an .npz file)")
    images = check_images(images, f"images of {str(p)!r}")
    if len(labels) != len(images):
        raise ValueError(f"{str(p)!r} has {len(images)} images but {len(labels)} labels")
    if labels.min() < 0:
        raise ValueError(f"{str(p)!r} has negative labels; labels are 0..num_classes-1")
    return images, labels.astype(np.int64)


class SampleSetGenerator:
    """A stored set of images with labels, sampled like a generator.

    ``sample(n, labels=None, seed=0)`` draws the labels as every zoo generator does, then for each
    class picks that many of its stored images without replacement (a seeded permutation per class);
    the same seed gives the same images. More images of a class than are stored is a ValueError,
    unless ``replace=True``: then that class is drawn with replacement and a warning says so.
    """

    def __init__(self, images: np.ndarray, labels: Sequence[int] | np.ndarray, *,
                 num_classes: int | None = None, replace: bool = False, source: str | None = None) -> None:
        images = check_images(np.asarray(images), "images")
        labels = np.asarray(labels)
        if labels.ndim != 1 or len(labels) != len(images) or not np.issubdtype(labels.dtype, np.integer):
            raise ValueError(f"labels must be integers of shape ({len(images)},), got {labels.dtype} "
                             f"{labels.shape}")
        if labels.min() < 0:
            raise ValueError("labels must be 0..num_classes-1, got a negative label")
        seen = int(labels.max()) + 1
        if num_classes is None:
            num_classes = seen
        if isinstance(num_classes, bool) or not isinstance(num_classes, (int, np.integer)) or num_classes < 1:
            raise ValueError(f"num_classes must be a positive integer, got {num_classes!r}")
        if seen > num_classes:
            raise ValueError(f"the sample set has label {seen - 1} but num_classes={num_classes}")
        if not isinstance(replace, (bool, np.bool_)):
            raise ValueError(f"replace must be True or False, got {replace!r}")
        self.images = np.ascontiguousarray(images)
        self.labels = labels.astype(np.int64)
        self.num_classes = int(num_classes)
        self.image_shape = tuple(int(d) for d in images.shape[1:])
        self.replace = bool(replace)
        self.source = source
        self._by_class = [np.flatnonzero(self.labels == c) for c in range(self.num_classes)]

    @classmethod
    def from_path(cls, path: str | os.PathLike, *, num_classes: int | None = None,
                  replace: bool = False) -> SampleSetGenerator:
        """Read a sample folder or npz (see :func:`read_sample_set`)."""
        images, labels = read_sample_set(path)
        return cls(images, labels, num_classes=num_classes, replace=replace, source=str(path))

    @property
    def class_counts(self) -> list[int]:
        """Stored images per class."""
        return [len(ix) for ix in self._by_class]

    def __len__(self) -> int:
        return len(self.images)

    def __repr__(self) -> str:
        where = f"{self.source!r}, " if self.source else ""
        return (f"SampleSetGenerator({where}{len(self)} images, num_classes={self.num_classes}, "
                f"image_shape={self.image_shape}, replace={self.replace})")

    def sample(self, n: int, labels: Sequence[int] | np.ndarray | None = None,
               seed: int = 0) -> np.ndarray:
        """``n`` stored uint8 images ``(n, *image_shape)`` of the given (or seeded uniform) labels."""
        n = check_n(n)
        y = resolve_labels(n, labels, self.num_classes, seed)
        out = np.empty((n, *self.image_shape), dtype=np.uint8)
        for c in range(self.num_classes):
            where = np.flatnonzero(y == c)
            if len(where) == 0:
                continue
            pool = self._by_class[c]
            rng = np.random.default_rng(derive_seed(seed, "samples", c))
            if len(where) <= len(pool):
                pick = pool[rng.permutation(len(pool))[:len(where)]]
            elif self.replace and len(pool) > 0:
                log.warning("%s: %d images of class %d asked for, %d stored; drawing with replacement",
                            self.source or "sample set", len(where), c, len(pool))
                pick = pool[rng.integers(0, len(pool), size=len(where))]
            else:
                hint = ("; register it with replace=True (--with-replacement) to draw with replacement"
                        if len(pool) > 0 else "")
                raise ValueError(
                    f"{self.source or 'sample set'}: {len(where)} images of class {c} asked for, but "
                    f"the set holds only {len(pool)} of that class "
                    f"(per class: {self.class_counts}){hint}"
                )
            out[where] = self.images[pick]
        return out
