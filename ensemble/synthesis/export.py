"""Write synthetic samples to disk as a dataset other tools can read, atomically.

Layout of ``out_dir`` (every file except ``meta.json`` is byte-identical for the same samples)::

    train/<class>/<generator>_<iteration>_<index>.png   # torchvision.datasets.ImageFolder tree
    train/metadata.csv                                  # file_name, label, ...: Hugging Face imagefolder
    <flag>_synthetic.npz                                # MedMNIST layout: train_images, train_labels (N, 1)
    manifest.csv                                        # one row per image: file, label, provenance
    meta.json                                           # versions, ensemble, seed, counts, hashes, time

Class folders are the class names made file-system safe. ImageFolder numbers classes by sorted
folder name, so when the names do not sort in label order they are prefixed with the zero-padded
label (``0_basophil``, ``1_eosinophil``, ...): the tree's ImageFolder targets always equal the
labels. PNGs are written by Pillow without metadata or timestamps; the npz is a zip written with a
fixed date, so both are deterministic.

Atomicity: everything is written into a hidden temporary folder beside ``out_dir`` and renamed into
place at the end; a failure part-way removes the temporary folder and leaves no target.

Nothing the user made is deleted: a folder already at ``out_dir`` is refused unless
``overwrite=True``, and even then it is replaced only when it is a dataset this function wrote
(its ``meta.json`` carries the format tag) and holds no file that such an export does not write
(checked against its own ``meta.json`` and ``manifest.csv``); a zoo catalog, a run folder or any
foreign file makes it refuse, naming the folder and the file. The old folder is renamed aside,
the new one renamed in, and only then the old one deleted. A hard kill can leave a hidden
``.<name>.tmp-*`` or ``.<name>.old-*`` folder beside ``out_dir``; each records the process that
made it, and the next export to the same ``out_dir`` removes those whose process is gone.
"""

from __future__ import annotations

import csv
import datetime as _dt
import json
import logging
import os
import shutil
import uuid
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from ensemble.synthesis.formats import (
    class_folder_names,
    file_stems,
    get_export_format,
    list_export_formats,
    safe_name,
)
from ensemble.synthesis.sample import SyntheticSamples
from zoo.io import HOST, process_alive, sha256_file

__all__ = ["export_dataset", "check_replaceable", "MANIFEST_COLUMNS", "FORMAT"]

log = logging.getLogger(__name__)

#: Format tag of ``meta.json``: what marks a folder as one this module wrote.
FORMAT = "gan-ensemble-synthetic/1"
MANIFEST_COLUMNS = ("filename", "npz_index", "label", "label_name", "generator", "name",
                    "iteration", "seed", "index")
OWNER_FILE = ".gan-ensemble-owner"  # inside a temporary folder: "host pid"


def write_manifest(samples: SyntheticSamples, path: Path, ctx: dict) -> None:
    """``manifest.csv``: one row per image with its file, label and provenance."""
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


def _jsonable(obj: Any) -> Any:
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


def build_meta(samples: SyntheticSamples, tmp: Path, ctx: dict, extra: dict | None) -> dict:
    """The content of ``meta.json`` (JSON-able)."""
    from ensemble.version import __version__

    sm = samples.meta
    ens_meta = sm.get("ensemble_meta") or {}
    table = samples.counts_table()
    files = {}
    for rel in [ctx.get("npz_file"), *ctx.get("extra_files", []), "manifest.csv"]:
        if rel:
            files[rel] = sha256_file(tmp / rel)
    meta = {
        "format": FORMAT,
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


def check_replaceable(out: Path) -> None:
    """Raise unless ``out`` is a dataset folder that :func:`export_dataset` wrote, and nothing more.

    The files it may hold are ``meta.json``, ``manifest.csv``, the files listed in ``meta.json``
    and the image files listed in ``manifest.csv``; anything else (a zoo catalog, a run, the
    user's own files) means the folder is not ours to delete.
    """
    fix = "choose another --out (or move the folder away yourself)"
    meta_path = out / "meta.json"
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise FileExistsError(
            f"{out} exists and is not a dataset written by gan-ensemble export (no meta.json); "
            f"--overwrite replaces only such folders: {fix}") from None
    except (OSError, ValueError) as exc:
        raise FileExistsError(f"{out}: its meta.json cannot be read ({exc}); it is not replaced: {fix}"
                              ) from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        tag = meta.get("format") if isinstance(meta, dict) else None
        raise FileExistsError(f"{out} holds a meta.json of format {tag!r}, not {FORMAT!r}; it was not "
                              f"written by gan-ensemble export and is not replaced: {fix}")
    ours = {"meta.json", "manifest.csv", *map(str, (meta.get("files") or {}))}
    manifest = out / "manifest.csv"
    if manifest.is_file():
        with open(manifest, newline="", encoding="utf-8") as f:
            ours.update(row["filename"] for row in csv.DictReader(f) if row.get("filename"))
    foreign = []
    for path in sorted(out.rglob("*")):
        rel = path.relative_to(out).as_posix()
        if path.is_symlink() or (path.is_file() and rel not in ours):
            foreign.append(rel)
        elif path.is_dir() and not any(o.startswith(rel + "/") for o in ours):
            foreign.append(rel + "/")
        if len(foreign) >= 5:
            break
    if foreign:
        raise FileExistsError(f"{out} holds files that gan-ensemble export did not write ({', '.join(foreign)}); "
                              f"it is not replaced: {fix}")


def _owner_alive(folder: Path) -> bool:
    """Whether the process that made ``folder`` (recorded in its owner file) may still be running."""
    try:
        host, pid = (folder / OWNER_FILE).read_text(encoding="utf-8").split()
        return process_alive(host, int(pid))
    except (OSError, ValueError):
        return False  # no (readable) owner record: made by a run killed before it wrote one


def clean_stale(out: Path) -> list[Path]:
    """Remove the temporary folders of killed exports to ``out`` (only ours, only dead ones)."""
    removed = []
    if not out.parent.is_dir():
        return removed
    for prefix in (f".{out.name}.tmp-", f".{out.name}.old-"):
        for folder in out.parent.glob(prefix + "*"):
            if folder.is_dir() and not folder.is_symlink() and not _owner_alive(folder):
                shutil.rmtree(folder, ignore_errors=True)
                log.info("removed %s, left by an interrupted export", folder)
                removed.append(folder)
    return removed


def _claim(folder: Path) -> None:
    (folder / OWNER_FILE).write_text(f"{HOST} {os.getpid()}\n", encoding="utf-8")


def export_dataset(samples: SyntheticSamples, out_dir: str | os.PathLike,
                   formats: Iterable[str] = ("png", "npz"), overwrite: bool = False,
                   flag: str | None = None, meta: dict | None = None) -> Path:
    """Write ``samples`` to ``out_dir`` (see the module docstring); returns ``out_dir``.

    ``formats``: any of :func:`~ensemble.synthesis.formats.list_export_formats` (``manifest.csv``
    and ``meta.json`` are always written). ``flag`` names the npz (``<flag>_synthetic.npz``;
    default: the samples' dataset). ``meta``: extra entries for ``meta.json``. ``overwrite``
    replaces only a folder an earlier export wrote (:func:`check_replaceable`).
    """
    if not isinstance(samples, SyntheticSamples):
        raise ValueError("samples must be SyntheticSamples (from ensemble.sample_ensemble), "
                         f"got {type(samples).__name__}")
    if isinstance(formats, str):
        formats = [f.strip() for f in formats.split(",") if f.strip()]
    formats = list(dict.fromkeys(str(f).lower() for f in formats))
    if not formats:
        raise ValueError(f"no export format given; known: {', '.join(list_export_formats())}")
    writers = [get_export_format(f) for f in formats]
    out = Path(out_dir).expanduser()
    if out.exists() and not out.is_dir():
        raise FileExistsError(f"{out} exists and is not a folder; choose another --out")
    if out.exists():
        if not overwrite:
            raise FileExistsError(f"{out} already exists; pass overwrite=True (--overwrite) to replace "
                                  "a dataset that an earlier export wrote")
        check_replaceable(out)
    flag = safe_name(flag or samples.meta.get("dataset") or "") or None

    out.parent.mkdir(parents=True, exist_ok=True)
    clean_stale(out)
    tag = uuid.uuid4().hex[:8]
    tmp = out.parent / f".{out.name}.tmp-{tag}"
    tmp.mkdir()
    try:
        _claim(tmp)
        ctx = {"flag": flag, "formats": formats, "stems": file_stems(samples),
               "class_folders": class_folder_names(samples.class_names)}
        for writer in writers:
            writer(samples, tmp, ctx)
        write_manifest(samples, tmp / "manifest.csv", ctx)
        text = json.dumps(build_meta(samples, tmp, ctx, meta), indent=2, sort_keys=True)
        (tmp / "meta.json").write_text(text + "\n", encoding="utf-8")
        (tmp / OWNER_FILE).unlink()
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
    check_replaceable(out)
    old = out.parent / f".{out.name}.old-{tag}"
    os.rename(out, old)
    try:
        os.rename(tmp, out)
    except BaseException:
        os.rename(old, out)
        raise
    shutil.rmtree(old, ignore_errors=True)
