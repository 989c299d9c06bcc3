"""Write synthetic samples to disk as a dataset other tools can read, atomically.

Layout of ``out_dir`` (every file except ``meta.json`` is byte-identical for the same samples)::

    train/<class>/<generator>_<iteration>_<index>.png   # torchvision.datasets.ImageFolder tree
    <flag>_synthetic.npz                                # MedMNIST layout: train_images, train_labels (N, 1)
    manifest.csv                                        # one row per image: file, label, provenance
    meta.json                                           # versions, ensemble, seed, counts, hashes, time

Class folders are the class names made file-system safe. ImageFolder numbers classes by sorted
folder name, so when the names do not sort in label order they are prefixed with the zero-padded
label (``0_basophil``, ``1_eosinophil``, ...): the tree's ImageFolder targets always equal the
labels. PNGs are written by Pillow without metadata or timestamps; the npz is a zip written with a
fixed date, so both are deterministic.

Atomicity: everything is written into a hidden temporary folder beside ``out_dir`` and renamed into
place at the end; a failure part-way removes the temporary folder and leaves no target. A folder
already at ``out_dir`` is refused unless ``overwrite=True``, in which case it is renamed aside, the
new one renamed in, and only then the old one deleted. (A hard kill can leave the hidden
``.<name>.tmp-*`` folder behind, never a half-written ``out_dir``.)
"""

from __future__ import annotations

import csv
import datetime as _dt
import io
import json
import logging
import os
import re
import shutil
import uuid
import zipfile
from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np

from ensemble.synth import SyntheticSamples
from zoo.io import sha256_file

__all__ = ["export_dataset", "list_formats", "class_folder_names", "write_npz_deterministic",
           "MANIFEST_COLUMNS"]

log = logging.getLogger(__name__)

MANIFEST_COLUMNS = ("filename", "npz_index", "label", "label_name", "generator", "name",
                    "iteration", "seed", "index")
_ZIP_DATE = (1980, 1, 1, 0, 0, 0)


def _safe(text: str) -> str:
    """File-system-safe form of ``text``: runs of other characters become ``_``."""
    return re.sub(r"[^A-Za-z0-9.\-]+", "_", str(text)).strip("._")


def class_folder_names(class_names: Iterable[str]) -> list[str]:
    """Folder name per class, in label order, such that sorted folder order equals label order."""
    names = [str(c) for c in class_names]
    safe = [_safe(c) or str(i) for i, c in enumerate(names)]
    if len(set(safe)) == len(safe) and sorted(safe) == safe:
        return safe
    width = len(str(len(names) - 1))
    return [f"{i:0{width}d}_{s}" if s != str(i) else f"{i:0{width}d}" for i, s in enumerate(safe)]


def _file_stems(samples: SyntheticSamples) -> list[str]:
    """``<generator>_<iteration>_<index>`` per image; unique (member-prefixed on a clash)."""
    prov = samples.provenance
    width = max(5, len(str(int(prov["index"].max()))))
    gens = [_safe(g) or "generator" for g in prov["generator"].astype(str)]
    stems = [f"{g}_{int(it)}_{int(ix):0{width}d}"
             for g, it, ix in zip(gens, prov["iteration"], prov["index"], strict=True)]
    if len(set(stems)) != len(stems):
        groups = samples.groups
        stems = [f"m{int(m):02d}_{s}" for m, s in zip(groups, stems, strict=True)]
    if len(set(stems)) != len(stems):
        raise ValueError("provenance does not identify images uniquely (repeated generator, iteration and index)")
    return stems


def _save_png(array: np.ndarray, path: Path) -> None:
    """One image as a PNG without metadata (deterministic bytes)."""
    from PIL import Image

    mode = "L" if array.ndim == 2 else "RGB"
    Image.fromarray(np.ascontiguousarray(array), mode=mode).save(path, format="PNG", compress_level=6)


def _write_png(samples: SyntheticSamples, tmp: Path, ctx: dict) -> None:
    from tqdm.auto import tqdm

    folders = ctx["class_folders"]
    for f in folders:
        (tmp / "train" / f).mkdir(parents=True, exist_ok=True)
    files = []
    for i in tqdm(range(len(samples)), desc="export png", unit="img", leave=False):
        rel = f"train/{folders[int(samples.labels[i])]}/{ctx['stems'][i]}.png"
        _save_png(samples.images[i], tmp / rel)
        files.append(rel)
    ctx["png_files"] = files


def write_npz_deterministic(path: str | os.PathLike, arrays: dict[str, np.ndarray]) -> None:
    """Like ``np.savez_compressed`` but byte-identical for identical arrays (fixed zip dates)."""
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for key, arr in arrays.items():
            buf = io.BytesIO()
            np.lib.format.write_array(buf, np.ascontiguousarray(arr), allow_pickle=False)
            info = zipfile.ZipInfo(f"{key}.npy", date_time=_ZIP_DATE)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            zf.writestr(info, buf.getvalue())


def _write_npz(samples: SyntheticSamples, tmp: Path, ctx: dict) -> None:
    dtype = np.uint8 if samples.num_classes <= 256 else np.int64  # MedMNIST stores uint8 labels
    rel = f"{ctx['flag']}_synthetic.npz" if ctx["flag"] else "synthetic.npz"
    write_npz_deterministic(tmp / rel, {
        "train_images": samples.images,
        "train_labels": samples.labels.astype(dtype).reshape(-1, 1),
    })
    ctx["npz_file"] = rel


_FORMATS: dict[str, Callable[[SyntheticSamples, Path, dict], None]] = {
    "png": _write_png,
    "npz": _write_npz,
}


def list_formats() -> list[str]:
    """Export formats :func:`export_dataset` knows."""
    return sorted(_FORMATS)


def _write_manifest(samples: SyntheticSamples, path: Path, ctx: dict) -> None:
    prov = samples.provenance
    files = ctx.get("png_files") or [""] * len(samples)
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(MANIFEST_COLUMNS)
        for i in range(len(samples)):
            label = int(samples.labels[i])
            w.writerow([files[i], i, label, samples.class_names[label], prov["generator"].iat[i],
                        prov["name"].iat[i], int(prov["iteration"].iat[i]), int(prov["seed"].iat[i]),
                        int(prov["index"].iat[i])])


def _jsonable(obj):
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, float) and not np.isfinite(obj):
        return None
    if obj is None or isinstance(obj, (str, int, float, bool)):
        return obj
    return str(obj)


def _build_meta(samples: SyntheticSamples, tmp: Path, ctx: dict, extra: dict | None) -> dict:
    from ensemble import __version__

    sm = samples.meta
    ens_meta = sm.get("ensemble_meta") or {}
    table = samples.counts_table()
    files = {}
    for rel in [ctx.get("npz_file"), "manifest.csv"]:
        if rel:
            files[rel] = sha256_file(tmp / rel)
    meta = {
        "format": "gan-ensemble-synthetic/1",
        "package": "gan-ensemble",
        "version": __version__,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "dataset": sm.get("dataset") or ens_meta.get("dataset"),
        "flag": ctx["flag"],
        "n_images": len(samples),
        "num_classes": samples.num_classes,
        "image_shape": list(samples.image_shape),
        "class_names": list(samples.class_names),
        "class_folders": ctx["class_folders"],
        "class_counts": samples.class_counts().tolist(),
        "member_counts": {m: [int(x) for x in table.loc[m]] for m in table.index},
        "backbone": ens_meta.get("backbone"),
        "weights": ens_meta.get("weights"),
        "k": ens_meta.get("k"),
        "ensemble": {
            "members": samples.members,
            "intra_d": sm.get("intra_d"),
            "inter_d": sm.get("inter_d"),
            "rule": sm.get("rule"),
            "rule_params": sm.get("rule_params"),
            "meta": ens_meta,
        },
        "seed": sm.get("seed"),
        "member_weights": sm.get("member_weights"),
        "order": sm.get("order"),
        "formats": ctx["formats"],
        "files": files,
    }
    if extra:
        meta.update(extra)
    return _jsonable(meta)


def export_dataset(samples: SyntheticSamples, out_dir: str | os.PathLike,
                   formats: Iterable[str] = ("png", "npz"), overwrite: bool = False,
                   flag: str | None = None, meta: dict | None = None) -> Path:
    """Write ``samples`` to ``out_dir`` (see the module docstring); returns ``out_dir``.

    ``formats``: any of :func:`list_formats` (``manifest.csv`` and ``meta.json`` are always
    written). ``flag`` names the npz (``<flag>_synthetic.npz``; default: the samples' dataset).
    ``meta``: extra entries for ``meta.json``.
    """
    if not isinstance(samples, SyntheticSamples):
        raise ValueError(f"samples must be SyntheticSamples (from ensemble.synth.sample_ensemble), got {type(samples).__name__}")
    if isinstance(formats, str):
        formats = [f.strip() for f in formats.split(",") if f.strip()]
    formats = list(dict.fromkeys(str(f).lower() for f in formats))
    unknown = [f for f in formats if f not in _FORMATS]
    if unknown or not formats:
        raise ValueError(f"unknown export format(s) {unknown or formats}; known: {', '.join(list_formats())}")
    out = Path(out_dir).expanduser()
    if out.exists() and not out.is_dir():
        raise FileExistsError(f"{out} exists and is not a folder; choose another --out")
    if out.exists() and not overwrite:
        raise FileExistsError(f"{out} already exists; pass overwrite=True (--overwrite) to replace it")
    flag = _safe(flag or samples.meta.get("dataset") or "") or None

    out.parent.mkdir(parents=True, exist_ok=True)
    tag = uuid.uuid4().hex[:8]
    tmp = out.parent / f".{out.name}.tmp-{tag}"
    tmp.mkdir()
    try:
        ctx = {"flag": flag, "formats": formats, "stems": _file_stems(samples),
               "class_folders": class_folder_names(samples.class_names)}
        for fmt in formats:
            _FORMATS[fmt](samples, tmp, ctx)
        _write_manifest(samples, tmp / "manifest.csv", ctx)
        text = json.dumps(_build_meta(samples, tmp, ctx, meta), indent=2, sort_keys=True)
        (tmp / "meta.json").write_text(text + "\n", encoding="utf-8")
        _swap_in(tmp, out, overwrite, tag)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    log.info("exported %d images to %s (%s)", len(samples), out, ", ".join(formats))
    return out


def _swap_in(tmp: Path, out: Path, overwrite: bool, tag: str) -> None:
    """Rename ``tmp`` to ``out``; an existing ``out`` is moved aside first and deleted last."""
    if not out.exists():
        os.rename(tmp, out)
        return
    if not overwrite:
        raise FileExistsError(f"{out} appeared while exporting; pass overwrite=True to replace it")
    old = out.parent / f".{out.name}.old-{tag}"
    os.rename(out, old)
    try:
        os.rename(tmp, out)
    except BaseException:
        os.rename(old, out)
        raise
    shutil.rmtree(old, ignore_errors=True)
