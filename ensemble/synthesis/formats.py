"""Export formats of a synthetic dataset: a registry of writers, one per format.

A format writer is ``fn(samples, folder, ctx) -> None``: it writes its files into ``folder`` (the
temporary folder :func:`ensemble.synthesis.export.export_dataset` fills before it renames it into
place) and records what it wrote in ``ctx`` (``png_files``, ``npz_file``). Built in: ``png`` (a
``torchvision.datasets.ImageFolder`` tree under ``train/``, with a ``train/metadata.csv`` that
Hugging Face ``datasets`` reads as ``load_dataset("imagefolder", data_dir=out)``) and ``npz`` (MedMNIST layout). Every
file is byte-identical for the same samples: PNGs carry no metadata or time, the npz is a zip with
fixed dates. New formats join with :func:`register_export_format`.
"""

from __future__ import annotations

import io
import os
import re
import zipfile
from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np

from ensemble.synthesis.sample import SyntheticSamples
from zoo.registry import Registry

__all__ = [
    "ExportFormat",
    "register_export_format",
    "get_export_format",
    "list_export_formats",
    "class_folder_names",
    "file_stems",
    "safe_name",
    "write_npz_deterministic",
    "write_hf_metadata",
]

#: A writer: ``fn(samples, folder, ctx)``.
ExportFormat = Callable[[SyntheticSamples, Path, dict], None]

ZIP_DATE = (1980, 1, 1, 0, 0, 0)
HF_METADATA = "metadata.csv"  # the name Hugging Face datasets' imagefolder builder looks for

EXPORT_FORMATS: Registry[ExportFormat] = Registry("export format")


def register_export_format(name: str, writer: ExportFormat | None = None, *, overwrite: bool = False):
    """Register an export format writer (usable as a decorator)."""
    return EXPORT_FORMATS.register(name, writer, overwrite=overwrite)


def get_export_format(name: str) -> ExportFormat:
    """The writer of format ``name``; unknown names raise ``ValueError`` listing the known."""
    return EXPORT_FORMATS.get(name)


def list_export_formats() -> list[str]:
    """Export formats :func:`~ensemble.synthesis.export.export_dataset` knows."""
    return EXPORT_FORMATS.list()


def safe_name(text: str) -> str:
    """File-system-safe form of ``text``: runs of other characters become ``_``."""
    return re.sub(r"[^A-Za-z0-9.\-]+", "_", str(text)).strip("._")


def class_folder_names(class_names: Iterable[str]) -> list[str]:
    """Folder name per class, in label order, such that sorted folder order equals label order."""
    names = [str(c) for c in class_names]
    safe = [safe_name(c) or str(i) for i, c in enumerate(names)]
    if len(set(safe)) == len(safe) and sorted(safe) == safe:
        return safe
    width = len(str(len(names) - 1))
    return [f"{i:0{width}d}_{s}" if s != str(i) else f"{i:0{width}d}" for i, s in enumerate(safe)]


def file_stems(samples: SyntheticSamples) -> list[str]:
    """``<generator>_<iteration>_<index>`` per image; unique (member-prefixed on a clash)."""
    prov = samples.provenance
    width = max(5, len(str(int(prov["index"].max()))))
    gens = [safe_name(g) or "generator" for g in prov["generator"].astype(str)]
    stems = [f"{g}_{int(it)}_{int(ix):0{width}d}"
             for g, it, ix in zip(gens, prov["iteration"], prov["index"], strict=True)]
    if len(set(stems)) != len(stems):
        groups = samples.groups
        stems = [f"m{int(m):02d}_{s}" for m, s in zip(groups, stems, strict=True)]
    if len(set(stems)) != len(stems):
        raise ValueError("provenance does not identify images uniquely (repeated generator, iteration and index)")
    return stems


def save_png(array: np.ndarray, path: Path) -> None:
    """One image as a PNG without metadata (deterministic bytes)."""
    from PIL import Image

    mode = "L" if array.ndim == 2 else "RGB"
    Image.fromarray(np.ascontiguousarray(array), mode=mode).save(path, format="PNG", compress_level=6)


def write_png(samples: SyntheticSamples, tmp: Path, ctx: dict) -> None:
    """``train/<class folder>/<stem>.png`` per image: a torchvision ImageFolder tree."""
    from tqdm.auto import tqdm

    folders = ctx["class_folders"]
    for f in folders:
        (tmp / "train" / f).mkdir(parents=True, exist_ok=True)
    files = []
    for i in tqdm(range(len(samples)), desc="export png", unit="img", leave=False):
        rel = f"train/{folders[int(samples.labels[i])]}/{ctx['stems'][i]}.png"
        save_png(samples.images[i], tmp / rel)
        files.append(rel)
    ctx["png_files"] = files
    write_hf_metadata(samples, tmp / "train", [f.split("/", 1)[1] for f in files])
    ctx["extra_files"] = [*ctx.get("extra_files", []), f"train/{HF_METADATA}"]


def write_hf_metadata(samples: SyntheticSamples, folder: Path, files: list[str]) -> None:
    """``metadata.csv`` in the split folder, for Hugging Face ``datasets``' imagefolder builder.

    Its ``file_name`` column (relative to that folder: the builder reads a split's metadata from
    the split's own folder) is what the builder joins on; ``load_dataset("imagefolder",
    data_dir=out)`` then gives each image its ``label`` and provenance columns. Labels are written
    as integers, the class name beside them. torchvision's ImageFolder ignores the file (it reads
    class sub-folders only).
    """
    import csv

    prov = samples.provenance
    with open(folder / HF_METADATA, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(["file_name", "label", "label_name", "generator", "name", "iteration", "seed", "index"])
        for i, rel in enumerate(files):
            label = int(samples.labels[i])
            w.writerow([rel, label, samples.class_names[label], prov["generator"].iat[i],
                        prov["name"].iat[i], int(prov["iteration"].iat[i]), int(prov["seed"].iat[i]),
                        int(prov["index"].iat[i])])


def write_npz_deterministic(path: str | os.PathLike, arrays: dict[str, np.ndarray]) -> None:
    """Like ``np.savez_compressed`` but byte-identical for identical arrays (fixed zip dates)."""
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for key, arr in arrays.items():
            buf = io.BytesIO()
            np.lib.format.write_array(buf, np.ascontiguousarray(arr), allow_pickle=False)
            info = zipfile.ZipInfo(f"{key}.npy", date_time=ZIP_DATE)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            zf.writestr(info, buf.getvalue())


def write_npz(samples: SyntheticSamples, tmp: Path, ctx: dict) -> None:
    """``<flag>_synthetic.npz`` with ``train_images`` and ``train_labels`` (N, 1), as MedMNIST."""
    dtype = np.uint8 if samples.num_classes <= 256 else np.int64  # MedMNIST stores uint8 labels
    rel = f"{ctx['flag']}_synthetic.npz" if ctx["flag"] else "synthetic.npz"
    write_npz_deterministic(tmp / rel, {
        "train_images": samples.images,
        "train_labels": samples.labels.astype(dtype).reshape(-1, 1),
    })
    ctx["npz_file"] = rel


register_export_format("png", write_png)
register_export_format("npz", write_npz)
