"""Real data: MedMNIST flags (local npz or download), ImageFolder trees, and plain arrays.

Every loader returns a :class:`Dataset`: uint8 images ``(N, H, W)`` or ``(N, H, W, C)``, int64
labels ``(N,)``, the class names and the dataset name. The data location is an argument or the
``GAN_ENSEMBLE_DATA`` environment variable; nothing is hard-coded.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from zoo.arrays import check_images as validate_images

__all__ = [
    "Dataset",
    "load_dataset",
    "load_medmnist",
    "load_image_folder",
    "from_arrays",
    "list_medmnist_flags",
    "medmnist_info",
    "validate_images",
    "validate_labels",
    "data_root",
    "DATA_ENV",
]

log = logging.getLogger(__name__)

DATA_ENV = "GAN_ENSEMBLE_DATA"
SPLITS = ("train", "val", "test")
_IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".gif"}


@dataclass
class Dataset:
    """Images and labels of one split, with what they mean."""

    images: np.ndarray
    labels: np.ndarray
    class_names: list[str]
    name: str
    split: str = "train"
    meta: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.images = validate_images(self.images)
        self.labels = validate_labels(self.labels, len(self.class_names), n=len(self.images))

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def image_shape(self) -> tuple[int, ...]:
        """``(H, W)`` for grayscale, ``(H, W, C)`` for colour images."""
        return tuple(self.images.shape[1:])

    def __len__(self) -> int:
        return len(self.images)

    def subset(self, n: int, seed: int = 0, stratified: bool = True) -> Dataset:
        """A seeded random subset of ``n`` images (shuffled; class proportions kept when stratified)."""
        if n >= len(self):
            idx = np.random.default_rng(seed).permutation(len(self))
        elif stratified:
            rng = np.random.default_rng(seed)
            idx_parts = []
            counts = np.bincount(self.labels, minlength=self.num_classes)
            want = np.floor(counts / counts.sum() * n).astype(int)
            want[np.argmax(counts)] += n - want.sum()
            for c in range(self.num_classes):
                members = np.flatnonzero(self.labels == c)
                idx_parts.append(rng.choice(members, size=min(want[c], len(members)), replace=False))
            idx = rng.permutation(np.concatenate(idx_parts))
        else:
            idx = np.random.default_rng(seed).choice(len(self), size=n, replace=False)
        return Dataset(self.images[idx], self.labels[idx], list(self.class_names), self.name,
                       self.split, dict(self.meta))


def validate_labels(labels: np.ndarray, num_classes: int, n: int | None = None,
                    name: str = "labels") -> np.ndarray:
    """Check labels are integers in ``[0, num_classes)``; return them as int64 ``(N,)``."""
    labels = np.asarray(labels)
    if labels.ndim == 2 and labels.shape[1] == 1:
        labels = labels[:, 0]
    if labels.ndim != 1:
        raise ValueError(f"{name} must have shape (N,) or (N, 1), got {labels.shape}")
    if labels.size and not np.issubdtype(labels.dtype, np.integer):
        if not np.all(np.equal(np.mod(labels, 1), 0)):
            raise ValueError(f"{name} must be integers, got dtype {labels.dtype}")
    labels = labels.astype(np.int64)
    if n is not None and len(labels) != n:
        raise ValueError(f"{name} has {len(labels)} entries but there are {n} images")
    if labels.size and (labels.min() < 0 or labels.max() >= num_classes):
        bad = labels[(labels < 0) | (labels >= num_classes)][0]
        raise ValueError(
            f"{name} out of range: found {int(bad)}, expected 0 <= label < {num_classes} "
            f"({num_classes} classes)"
        )
    return labels


def data_root(root: str | os.PathLike | None = None) -> Path | None:
    """The data folder: ``root`` if given, else ``$GAN_ENSEMBLE_DATA``, else None."""
    if root is not None:
        return Path(root).expanduser()
    env = os.environ.get(DATA_ENV)
    return Path(env).expanduser() if env else None


def medmnist_info() -> dict:
    """medmnist's metadata table ``{flag: {"label", "n_samples", "task", ...}}``."""
    from medmnist.info import INFO

    return INFO


def list_medmnist_flags() -> list[str]:
    """The 2D MedMNIST flags with single-label classification tasks."""
    info = medmnist_info()
    return sorted(
        f for f, v in info.items()
        if not f.endswith("3d") and v.get("task") != "multi-label, binary-class"
    )


def load_medmnist(flag: str, split: str = "train", root: str | os.PathLike | None = None,
                  size: int = 28, download: bool = True) -> Dataset:
    """Load a 2D MedMNIST split from ``{root}/{flag}.npz`` (or ``{flag}_{size}.npz``).

    When the file is missing and ``download`` is true, medmnist's own download is tried (online
    only). When neither works, the error says which file to put where.
    """
    info_all = medmnist_info()
    flags = list_medmnist_flags()
    if flag not in flags:
        raise ValueError(f"unknown MedMNIST dataset flag {flag!r}; known 2D flags: {', '.join(flags)}")
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; use one of {', '.join(SPLITS)}")
    info = info_all[flag]
    fname = f"{flag}.npz" if size == 28 else f"{flag}_{size}.npz"
    root_path = data_root(root)
    path = root_path / fname if root_path is not None else None
    if path is None or not path.is_file():
        if download:
            path = _download_medmnist(flag, size, root_path)
        if path is None or not path.is_file():
            where = str(root_path) if root_path is not None else f"a folder given by --data-root or ${DATA_ENV}"
            raise FileNotFoundError(
                f"MedMNIST file {fname!r} not found in {where} and it could not be downloaded. "
                f"Put {fname} (from https://zenodo.org/records/10519652) into that folder, or set "
                f"{DATA_ENV} to the folder that holds it."
            )
    try:
        with np.load(path, allow_pickle=False) as npz:
            images = npz[f"{split}_images"]
            labels = npz[f"{split}_labels"]
    except KeyError as exc:
        raise ValueError(f"{path} has no {split}_images/{split}_labels arrays; is it a MedMNIST file?") from exc
    except (OSError, ValueError) as exc:
        raise ValueError(f"could not read {path} as an npz file ({exc}); download it again") from exc
    expected = info["n_samples"][split]
    if len(images) != expected:
        log.warning("%s %s split has %d images, medmnist.INFO says %d", flag, split, len(images), expected)
    names = [info["label"][str(i)] for i in range(len(info["label"]))]
    return Dataset(images, labels, names, flag, split,
                   {"source": str(path), "task": info["task"], "size": size})


def _download_medmnist(flag: str, size: int, root: Path | None) -> Path | None:
    """Try medmnist's downloader into ``root`` (or its default folder); None on failure."""
    try:
        import medmnist

        cls = getattr(medmnist, medmnist_info()[flag]["python_class"])
        kwargs = {"split": "train", "download": True, "size": size}
        if root is not None:
            root.mkdir(parents=True, exist_ok=True)
            kwargs["root"] = str(root)
        ds = cls(**kwargs)
        return Path(ds.root) / (f"{flag}.npz" if size == 28 else f"{flag}_{size}.npz")
    except Exception as exc:  # offline, or the server refused: report the local route instead
        log.info("medmnist download of %s failed: %s", flag, exc)
        return None


def load_image_folder(path: str | os.PathLike, name: str | None = None, split: str = "train",
                      grayscale: bool | None = None) -> Dataset:
    """Load an ImageFolder tree ``path/<class_name>/*.png`` (classes sorted by name)."""
    from PIL import Image

    root = Path(path)
    if not root.is_dir():
        raise FileNotFoundError(f"image folder {str(root)!r} does not exist")
    classes = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not classes:
        raise ValueError(f"{root} has no class sub-folders; expected {root}/<class_name>/<image>.png")
    images, labels = [], []
    for c, cname in enumerate(classes):
        for f in sorted((root / cname).iterdir()):
            if f.suffix.lower() in _IMAGE_SUFFIXES:
                with Image.open(f) as im:
                    images.append(np.asarray(im.convert("L" if im.mode in ("L", "I", "I;16", "1", "P") and grayscale is not False else "RGB")))
                labels.append(c)
    if not images:
        raise ValueError(f"no images found under {root}/<class_name>/")
    shapes = {im.shape for im in images}
    if len(shapes) != 1:
        raise ValueError(f"images under {root} have different shapes {sorted(shapes)}; resize them to one size")
    arr = np.stack(images).astype(np.uint8)
    if grayscale and arr.ndim == 4:
        arr = np.round(arr @ np.array([0.299, 0.587, 0.114])).clip(0, 255).astype(np.uint8)
    return Dataset(arr, np.asarray(labels), classes, name or root.name, split, {"source": str(root)})


def from_arrays(images: np.ndarray, labels: np.ndarray, class_names: list[str] | None = None,
                name: str = "arrays", split: str = "train") -> Dataset:
    """Wrap plain arrays as a :class:`Dataset` (validated)."""
    labels_arr = validate_labels(labels, num_classes=np.iinfo(np.int64).max)
    if class_names is None:
        class_names = [str(i) for i in range(int(labels_arr.max()) + 1)]
    return Dataset(images, labels_arr, list(class_names), name, split)


def load_dataset(source: str | os.PathLike, split: str = "train",
                 root: str | os.PathLike | None = None, size: int = 28) -> Dataset:
    """Load a MedMNIST flag, an ``.npz`` file in MedMNIST layout, or an ImageFolder directory."""
    s = str(source)
    p = Path(s).expanduser()
    if p.is_dir():
        sub = p / split
        return load_image_folder(sub if sub.is_dir() else p, split=split)
    if p.suffix == ".npz" and p.is_file():
        with np.load(p, allow_pickle=False) as npz:
            key_i, key_l = f"{split}_images", f"{split}_labels"
            if key_i not in npz:
                raise ValueError(f"{p} has no {key_i!r} array; keys: {sorted(npz.files)}")
            images, labels = npz[key_i], npz[key_l]
        flag = p.stem.split("_")[0]
        names = None
        if flag in list_medmnist_flags():
            lab = medmnist_info()[flag]["label"]
            names = [lab[str(i)] for i in range(len(lab))]
        ds = from_arrays(images, labels, names, name=flag, split=split)
        ds.meta["source"] = str(p)
        return ds
    return load_medmnist(s, split=split, root=root, size=size)
