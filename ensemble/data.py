"""Real data: MedMNIST flags (local npz or download), ImageFolder trees, and plain arrays.

Every loader returns a :class:`Dataset`: uint8 images ``(N, H, W)`` or ``(N, H, W, C)``, int64
labels ``(N,)``, the class names and the dataset name. The data location is an argument or the
``GAN_ENSEMBLE_DATA`` environment variable; nothing is hard-coded.

Data that cannot give a fair test is refused with an error that names the file and the fix
(:func:`check_fair`): an empty split, a single class, a class without images (labels with gaps),
negative labels, an npz that is not one, an unreadable image, grayscale mixed with colour. An
ImageFolder tree without ``train/val/test`` folders is split once, seeded and stratified
(:func:`split_indices`), so that validation and test never see training images; the split is
recorded in ``Dataset.meta["split_made"]``.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ensemble.seeds import split_seed
from zoo.arrays import check_images as validate_images
from zoo.io import read_npz

__all__ = [
    "LabelledImages",
    "Dataset",
    "load_dataset",
    "load_medmnist",
    "load_image_folder",
    "from_arrays",
    "list_medmnist_flags",
    "medmnist_info",
    "unsupported_reason",
    "check_fair",
    "split_indices",
    "validate_images",
    "validate_labels",
    "data_root",
    "DATA_ENV",
    "MEDMNIST_SIZES",
    "SPLIT_FRACTIONS",
]

log = logging.getLogger(__name__)

DATA_ENV = "GAN_ENSEMBLE_DATA"
SPLITS = ("train", "val", "test")
#: The image sizes MedMNIST+ ships (``{flag}.npz`` at 28 px, ``{flag}_{size}.npz`` otherwise).
MEDMNIST_SIZES = (28, 64, 128, 224)
#: The train/val/test fractions of the split made for an ImageFolder tree without split folders
#: (about MedMNIST's own: 70/10/20).
SPLIT_FRACTIONS = {"train": 0.7, "val": 0.1, "test": 0.2}
_IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".gif"}


class LabelledImages:
    """What every labelled image set here offers (:class:`Dataset`, and
    :class:`~ensemble.synthesis.sample.SyntheticSamples`): ``images`` uint8 ``(N, H, W)`` or
    ``(N, H, W, C)``, int64 ``labels`` ``(N,)`` and ``class_names``; the length, the number of
    classes and the image shape follow from them."""

    images: np.ndarray
    labels: np.ndarray
    class_names: list[str]

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def image_shape(self) -> tuple[int, ...]:
        """``(H, W)`` for grayscale, ``(H, W, C)`` for colour images."""
        return tuple(self.images.shape[1:])

    def __len__(self) -> int:
        return len(self.labels)


@dataclass
class Dataset(LabelledImages):
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
    if labels.size and labels.min() < 0:
        raise ValueError(f"{name} out of range: found {int(labels.min())}; labels are class indices "
                         "0, 1, ..., K-1 and cannot be negative: relabel the classes from 0")
    if labels.size and (labels.min() < 0 or labels.max() >= num_classes):
        bad = labels[(labels < 0) | (labels >= num_classes)][0]
        raise ValueError(
            f"{name} out of range: found {int(bad)}, expected 0 <= label < {num_classes} "
            f"({num_classes} classes)"
        )
    return labels


def check_fair(ds: Dataset, source: object = None) -> Dataset:
    """Refuse a split that cannot give a fair test: empty, a single class, or a class with no
    images (labels with gaps). Returns ``ds``; the error names the split, ``source`` and the fix."""
    where = f"the {ds.split} split of {ds.name}" + (f" ({source})" if source is not None else "")
    if len(ds) == 0:
        raise ValueError(f"{where} is empty; use data with images in every split")
    counts = np.bincount(ds.labels, minlength=ds.num_classes)
    present = np.flatnonzero(counts)
    if len(present) < 2:
        raise ValueError(
            f"{where} has a single class ({ds.class_names[int(present[0])]!r}, label "
            f"{int(present[0])}); class-conditional generators and their scores need at least two "
            "classes: add the images of the other classes")
    empty = np.flatnonzero(counts == 0)
    if len(empty):
        names = ", ".join(f"{ds.class_names[int(c)]!r} (label {int(c)})" for c in empty[:5])
        raise ValueError(
            f"{where} has no images of class {names}: the labels have gaps (found "
            f"{', '.join(map(str, present[:10].tolist()))}{', ...' if len(present) > 10 else ''} "
            f"of 0..{ds.num_classes - 1}); relabel the classes 0..K-1 without gaps, or add "
            "images of every class to every split")
    return ds


def split_indices(labels: np.ndarray, seed: int = 0,
                  fractions: dict[str, float] | None = None) -> dict[str, np.ndarray]:
    """A seeded, stratified train/val/test split of ``labels``: sorted indices per split.

    Each class is shuffled with ``ensemble.seeds.split_seed(seed, "train-val-test")`` and cut by
    ``fractions`` (default :data:`SPLIT_FRACTIONS`), rounding val and test to the nearest image,
    so the three parts are disjoint and keep the class proportions. A class too small to give
    every split an image is refused.
    """
    fractions = dict(SPLIT_FRACTIONS if fractions is None else fractions)
    if set(fractions) != set(SPLITS) or any(f <= 0 for f in fractions.values()):
        raise ValueError(f"fractions must give train, val and test a positive share, got {fractions}")
    labels = np.asarray(labels)
    rng = np.random.default_rng(split_seed(seed, "train-val-test"))
    total = sum(fractions.values())
    parts: dict[str, list[np.ndarray]] = {s: [] for s in SPLITS}
    for c in np.unique(labels):
        members = rng.permutation(np.flatnonzero(labels == c))
        n_val = int(round(len(members) * fractions["val"] / total))
        n_test = int(round(len(members) * fractions["test"] / total))
        if min(n_val, n_test, len(members) - n_val - n_test) < 1:
            raise ValueError(
                f"class with label {int(c)} has only {len(members)} images, too few for a "
                f"{'/'.join(f'{fractions[s]:g}' for s in SPLITS)} train/val/test split; add images "
                "or provide train/, val/ and test/ folders")
        parts["val"].append(members[:n_val])
        parts["test"].append(members[n_val:n_val + n_test])
        parts["train"].append(members[n_val + n_test:])
    return {s: np.sort(np.concatenate(parts[s])) for s in SPLITS}


def data_root(root: str | os.PathLike | None = None) -> Path | None:
    """The data folder: ``root`` if given, else ``$GAN_ENSEMBLE_DATA``, else None."""
    if root is not None:
        return Path(root).expanduser()
    env = os.environ.get(DATA_ENV)
    return Path(env).expanduser() if env else None


def medmnist_info() -> dict:
    """medmnist's ``INFO`` table: per flag its task, class names and split sizes."""
    from medmnist.info import INFO

    return INFO


def unsupported_reason(flag: str) -> str | None:
    """Why a MedMNIST flag cannot be used (3-D, multi-label, ordinal), or None if it can."""
    info = medmnist_info().get(flag)
    if info is None:
        return None
    task = info.get("task", "")
    if flag.endswith("3d"):
        return ("it holds 3-D volumes (28x28x28), and the zoo's generators and embedders work on 2-D "
                "images")
    if "multi-label" in task:
        return (f"it is multi-label ({len(info['label'])} yes/no findings per image), and the zoo's "
                "generators are conditioned on one class per image")
    if "ordinal" in task:
        return ("its labels are ordinal grades, and class-conditional sampling and per-class "
                "scores treat labels as unordered classes, which would misreport it")
    return None


def list_medmnist_flags() -> list[str]:
    """The 2D MedMNIST flags with single-label, unordered classification tasks."""
    return sorted(f for f in medmnist_info() if unsupported_reason(f) is None)


def _medmnist_file(flag: str, size: int) -> str:
    return f"{flag}.npz" if size == 28 else f"{flag}_{size}.npz"


def load_medmnist(flag: str, split: str = "train", root: str | os.PathLike | None = None,
                  size: int = 28, download: bool = True) -> Dataset:
    """Load a 2D MedMNIST split from ``{root}/{flag}.npz`` (or MedMNIST+ ``{flag}_{size}.npz``
    for ``size`` 64, 128 or 224).

    When the file is missing and ``download`` is true, medmnist's own download is tried (online
    only). When neither works, the error says which file to put where.
    """
    info_all = medmnist_info()
    flags = list_medmnist_flags()
    reason = unsupported_reason(flag) if isinstance(flag, str) else None
    if reason is not None:
        raise ValueError(f"MedMNIST dataset {flag!r} is not supported: {reason}; use one of the "
                         f"2D flags {', '.join(flags)}")
    if flag not in flags:
        raise ValueError(f"unknown MedMNIST dataset flag {flag!r}; known 2D flags: {', '.join(flags)}")
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; use one of {', '.join(SPLITS)}")
    if isinstance(size, bool) or size not in MEDMNIST_SIZES:
        raise ValueError(f"MedMNIST size must be one of {', '.join(map(str, MEDMNIST_SIZES))} "
                         f"(pixels), got {size!r}")
    info = info_all[flag]
    fname = _medmnist_file(flag, size)
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
    arrays = read_npz(path, [f"{split}_images", f"{split}_labels"], what="MedMNIST file",
                      fix=f"download {fname} again (https://zenodo.org/records/10519652)")
    images, labels = arrays[f"{split}_images"], arrays[f"{split}_labels"]
    if images.ndim >= 3 and tuple(images.shape[1:3]) != (size, size):
        raise ValueError(f"{path} holds {images.shape[1]}x{images.shape[2]} images, but size={size} "
                         f"asks for {size}x{size}; put the MedMNIST+ file {fname} of that size there")
    expected = info["n_samples"][split]
    if len(images) != expected:
        log.warning("%s %s split has %d images, medmnist.INFO says %d", flag, split, len(images), expected)
    names = [info["label"][str(i)] for i in range(len(info["label"]))]
    return _checked(images, labels, names, flag, split, path,
                    {"source": str(path), "task": info["task"], "size": size})


def _checked(images: np.ndarray, labels: np.ndarray, class_names: list[str], name: str,
             split: str, source: object, meta: dict) -> Dataset:
    """A :class:`Dataset`, refused when it is empty or unfair (:func:`check_fair`)."""
    if len(images) == 0:
        raise ValueError(f"the {split} split of {name} ({source}) is empty; use data with images "
                         "in every split")
    return check_fair(Dataset(images, labels, class_names, name, split, meta), source)


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
        return Path(ds.root) / _medmnist_file(flag, size)
    except Exception as exc:  # offline, or the server refused: report the local route instead
        log.info("medmnist download of %s failed: %s", flag, exc)
        return None


#: PIL modes read as grayscale (a palette image too, as it always was); all others become RGB.
_GRAY_MODES = ("L", "I", "I;16", "1", "P")


def _read_image(f: Path, grayscale: bool | None) -> tuple[np.ndarray, bool]:
    """One image as uint8 (grayscale ``(H, W)`` or RGB ``(H, W, 3)``) and whether it was stored
    grayscale; an unreadable file raises a ValueError naming it."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(f) as im:
            gray = im.mode in _GRAY_MODES
            arr = np.asarray(im.convert("L" if gray and grayscale is not False else "RGB"))
    except (OSError, UnidentifiedImageError, ValueError, SyntaxError) as exc:
        raise ValueError(f"cannot read image {str(f)!r} ({type(exc).__name__}: {exc}); replace or "
                         "delete that file") from None
    return arr, gray


def load_image_folder(path: str | os.PathLike, name: str | None = None, split: str = "train",
                      grayscale: bool | None = None) -> Dataset:
    """Load an ImageFolder tree ``path/<class_name>/*.png`` (classes sorted by name).

    ``grayscale=None`` keeps the images' own mode and refuses a mix of grayscale and colour
    files; ``True`` converts colour images to grayscale, ``False`` grayscale ones to RGB.
    """
    root = Path(path)
    if not root.is_dir():
        raise FileNotFoundError(f"image folder {str(root)!r} does not exist")
    classes = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not classes:
        raise ValueError(f"{root} has no class sub-folders; expected {root}/<class_name>/<image>.png")
    images, labels, files, gray = [], [], [], []
    for c, cname in enumerate(classes):
        for f in sorted((root / cname).iterdir()):
            if f.suffix.lower() in _IMAGE_SUFFIXES:
                arr, is_gray = _read_image(f, grayscale)
                images.append(arr)
                gray.append(is_gray)
                files.append(f)
                labels.append(c)
    if not images:
        raise ValueError(f"no images found under {root}/<class_name>/")
    if grayscale is None and len(set(gray)) > 1:
        g = [f for f, is_g in zip(files, gray, strict=True) if is_g]
        col = [f for f, is_g in zip(files, gray, strict=True) if not is_g]
        raise ValueError(
            f"images under {root} mix grayscale ({len(g)}, e.g. {str(g[0])!r}) and colour "
            f"({len(col)}, e.g. {str(col[0])!r}) files; convert them all to one mode, or load with "
            "load_image_folder(..., grayscale=True) (or False for colour)")
    if grayscale:  # convert colour images with the ITU-R 601 weights (as for a colour-only tree)
        images = [im if im.ndim == 2 else np.round(im @ np.array([0.299, 0.587, 0.114]))
                  .clip(0, 255).astype(np.uint8) for im in images]
    sizes = {im.shape[:2] for im in images}
    if len(sizes) != 1:
        raise ValueError(f"images under {root} have different sizes {sorted(sizes)}; resize them "
                         "to one size")
    arr = np.stack(images).astype(np.uint8)
    return Dataset(arr, np.asarray(labels), classes, name or root.name, split, {"source": str(root)})


def from_arrays(images: np.ndarray, labels: np.ndarray, class_names: list[str] | None = None,
                name: str = "arrays", split: str = "train") -> Dataset:
    """Wrap plain arrays as a :class:`Dataset` (validated, and refused when unfair:
    :func:`check_fair`)."""
    labels_arr = validate_labels(labels, num_classes=np.iinfo(np.int64).max)
    if class_names is None:
        if not labels_arr.size:
            raise ValueError(f"the {split} split of {name} is empty; pass at least one image per class")
        class_names = [str(i) for i in range(int(labels_arr.max()) + 1)]
    return _checked(images, labels_arr, list(class_names), name, split, "arrays", {})


def _split_image_folder(root: Path, split: str, seed: int, make_split: bool) -> Dataset:
    """``split`` of an ImageFolder tree: its ``split/`` folder, or a part of a seeded split."""
    present = [s for s in SPLITS if (root / s).is_dir()]
    if present:
        if split not in present:
            raise FileNotFoundError(
                f"{root} has {'/, '.join(present)}/ but no {split}/ folder; add "
                f"{root / split}/<class_name>/ images (train, val and test must not overlap)")
        ds = load_image_folder(root / split, split=split)
        return check_fair(ds, root / split)
    if not make_split:
        raise ValueError(f"{root} has no train/, val/ and test/ folders, and a held-out {split} split "
                         "is required: arrange the images as train/, val/, test/<class_name>/ or "
                         "let gan-ensemble make a seeded split (make_split=True)")
    whole = load_image_folder(root, split=split)
    parts = split_indices(whole.labels, seed=seed)
    idx = parts[split]
    counts = {s: int(len(v)) for s, v in parts.items()}
    log.warning("%s has no train/val/test folders: using the %s part of a seeded, stratified "
                "%s split (seed %d; %s images), so validation and test never see training images",
                root, split, "/".join(f"{SPLIT_FRACTIONS[s]:g}" for s in SPLITS), seed,
                "/".join(str(counts[s]) for s in SPLITS))
    meta = {"source": str(root), "split_made": {
        "by": "ensemble.data.split_indices", "seed": int(seed),
        "split_seed": split_seed(seed, "train-val-test"), "fractions": dict(SPLIT_FRACTIONS),
        "counts": counts, "note": "no train/val/test folders: a seeded stratified split was made"}}
    ds = Dataset(whole.images[idx], whole.labels[idx], whole.class_names, whole.name, split, meta)
    return check_fair(ds, root)


def _looks_like_path(s: str) -> bool:
    return os.sep in s or "/" in s or Path(s).suffix.lower() in (".npz", ".npy", ".zip") \
        or s.startswith((".", "~"))


def load_dataset(source: str | os.PathLike, split: str = "train",
                 root: str | os.PathLike | None = None, size: int | None = None, *,
                 seed: int = 0, make_split: bool = True) -> Dataset:
    """Load a MedMNIST flag, an ``.npz`` file in MedMNIST layout, or an ImageFolder directory.

    ``size`` picks the MedMNIST+ file of a flag (28, the default, 64, 128 or 224 px) and, for an
    npz or a folder, is checked against the images. An ImageFolder without ``train/``, ``val/``
    and ``test/`` folders is split once with :func:`split_indices` (``seed``; recorded in
    ``meta["split_made"]``), or refused when ``make_split`` is false.
    """
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; use one of {', '.join(SPLITS)}")
    if size is not None and (isinstance(size, bool) or not isinstance(size, (int, np.integer))
                             or size < 1):
        raise ValueError(f"size must be a positive number of pixels, got {size!r}")
    s = str(source)
    p = Path(s).expanduser()
    if p.is_dir():
        ds = _split_image_folder(p, split, seed, make_split)
    elif p.is_file() and p.suffix.lower() == ".npz":
        arrays = read_npz(p, [f"{split}_images", f"{split}_labels"], what="dataset file",
                          fix=f"save it in MedMNIST layout with np.savez(path, {split}_images=..., "
                          f"{split}_labels=...) (train, val and test)")
        images, labels = arrays[f"{split}_images"], arrays[f"{split}_labels"]
        flag = p.stem.split("_")[0]
        names = None
        if flag in list_medmnist_flags():
            lab = medmnist_info()[flag]["label"]
            names = [lab[str(i)] for i in range(len(lab))]
        if len(images) == 0:
            raise ValueError(f"the {split} split of {flag} ({p}) is empty; use data with images in "
                             "every split")
        labels_arr = validate_labels(labels, num_classes=np.iinfo(np.int64).max, n=len(images))
        if names is None:
            names = [str(i) for i in range(int(labels_arr.max()) + 1)]
        ds = _checked(images, labels_arr, names, flag, split, p, {"source": str(p)})
    elif p.exists():
        raise ValueError(f"dataset {s!r} is a file but not an .npz; pass a MedMNIST flag, an .npz "
                         "file in MedMNIST layout or an ImageFolder directory")
    elif _looks_like_path(s):
        raise FileNotFoundError(f"dataset {s!r} not found: no such file or folder; check the path")
    else:
        if s not in medmnist_info():
            raise ValueError(
                f"dataset {s!r} is neither a file or folder nor a known MedMNIST flag; pass an .npz "
                f"file, an ImageFolder directory or one of {', '.join(list_medmnist_flags())}")
        return load_medmnist(s, split=split, root=root, size=28 if size is None else size)
    if size is not None and ds.images.shape[1:3] != (size, size):
        raise ValueError(f"{s} holds {ds.images.shape[1]}x{ds.images.shape[2]} images, not "
                         f"{size}x{size} (size={size}); resize the data or pass its own size")
    return ds
