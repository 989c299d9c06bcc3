"""Resumable training runs of the zoo: train a registered GAN family, snapshot it into a catalog.

:func:`train` validates its inputs, builds the run's config (:mod:`zoo.config`), trains with a
:class:`zoo.trainer.GANTrainer` and at each snapshot iteration writes
``out_dir/runs/<run>/G_<iteration>.pt`` (the EMA weights when ``ema > 0``) and registers it in
``Catalog(out_dir)`` as ``"{run}@{iteration}"``. Beside the generator it writes the full
training state (``state_<iteration>.pt``: both nets, optimisers, EMA, iteration; tensors and
primitives only; the newest is kept) so that calling :func:`train` again with the same run and
settings resumes from the last snapshot. ``run.json`` records the run's settings
(architecture, config, seed, a hash of the data) so that a name is never reused for other
settings. The trainer's per-iteration seeding makes an interrupted and resumed run give the same
weights as an uninterrupted one (bit for bit on the CPU).
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import logging
import math
import re
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from .arrays import check_labels, check_training_images
from .config import build_config, default_run_name, validate_hparams
from .device import resolve_device
from .io import atomic_write, exclusive_lock
from .registry import get_architecture
from .seeding import derive_seed
from .trainer import GANTrainer

__all__ = ["train", "RUN_FILE"]

log = logging.getLogger(__name__)

#: The file in a run's folder that records its settings.
RUN_FILE = "run.json"
_RUN_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]{0,99}$")
_STATE_FILE = re.compile(r"^state_(\d+)\.pt$")

# --------------------------------------------------------------------------- input checks


def _check_int(value: Any, what: str, minimum: int = 1) -> int:
    if isinstance(value, np.integer):
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{what} must be an integer >= {minimum}, got {value!r}")
    return value


def _check_snapshots(snapshots: Any, iterations: int) -> list[int]:
    if isinstance(snapshots, (int, np.integer)) and not isinstance(snapshots, bool):
        snapshots = [snapshots]
    if not isinstance(snapshots, Iterable) or isinstance(snapshots, (str, bytes)):
        raise ValueError(f"snapshots must be a list of iterations, e.g. [{iterations}], "
                         f"got {snapshots!r}")
    snaps = list(snapshots)
    if not snaps:
        raise ValueError(f"snapshots is empty; pass the iterations to save, e.g. [{iterations}]")
    out = []
    for s in snaps:
        if isinstance(s, np.integer):
            s = int(s)
        if isinstance(s, bool) or not isinstance(s, int):
            raise ValueError(f"snapshot {s!r} is not an integer iteration")
        if not 1 <= s <= iterations:
            raise ValueError(f"snapshot {s} is outside 1..{iterations} (iterations={iterations}); "
                             "pass snapshots within the training length or raise iterations")
        out.append(s)
    if any(b <= a for a, b in zip(out, out[1:], strict=False)):
        raise ValueError(f"snapshots must be strictly increasing, got {out}; sort them and drop "
                         "duplicates")
    return out


def _data_fingerprint(images: np.ndarray, labels: np.ndarray) -> str:
    h = hashlib.sha256()
    h.update(json.dumps([list(images.shape), str(images.dtype)]).encode())
    h.update(np.ascontiguousarray(images).tobytes())
    h.update(np.ascontiguousarray(labels, dtype=np.int64).tobytes())
    return h.hexdigest()

# --------------------------------------------------------------------------- runs on disk


def _state_files(run_dir: Path) -> dict[int, Path]:
    out = {}
    if run_dir.is_dir():
        for p in run_dir.iterdir():
            m = _STATE_FILE.match(p.name)
            if m:
                out[int(m.group(1))] = p
    return out


def _diff(old: Mapping[str, Any], new: Mapping[str, Any]) -> str:
    keys = sorted(set(old) | set(new))
    parts = [f"{k}: {old.get(k, '<unset>')!r} -> {new.get(k, '<unset>')!r}"
             for k in keys if old.get(k, "<unset>") != new.get(k, "<unset>")]
    return "; ".join(parts[:6]) + ("; ..." if len(parts) > 6 else "")


def _check_run_identity(run_dir: Path, rows: list[dict], identity: dict[str, Any]) -> None:
    """Refuse to mix settings under one run name; record the run's settings on first use."""
    run = identity["run"]
    fix = (f"pass name='<new run name>' for a new run (or a new out_dir), or the same settings "
           f"to resume run {run!r}")
    path = run_dir / RUN_FILE
    if path.is_file():
        try:
            old = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            raise ValueError(f"run file {str(path)!r} is unreadable ({exc}); delete the run folder "
                             "to retrain it, or pass another name=") from exc
        started = bool(rows) or bool(_state_files(run_dir)) or any(run_dir.glob("G_*.pt"))
        if old != identity and not started:  # nothing was saved under the old settings
            log.info("run %s: replacing the settings of a run that saved nothing", run)
            old = identity
            text = json.dumps(identity, indent=2, sort_keys=True)
            atomic_write(path, lambda tmp: tmp.write_text(text))
        if old.get("architecture") != identity["architecture"]:
            raise ValueError(f"run {run!r} in {str(run_dir.parent.parent)!r} is a "
                             f"{old.get('architecture')!r} run, not {identity['architecture']!r}; {fix}")
        if old.get("config") != identity["config"]:
            raise ValueError(f"run {run!r} exists with a different config ({_diff(old['config'], identity['config'])}); {fix}")
        if old.get("seed") != identity["seed"]:
            raise ValueError(f"run {run!r} exists with seed {old.get('seed')!r}, not "
                             f"{identity['seed']!r}; {fix}")
        if old.get("data_sha256") != identity["data_sha256"]:
            raise ValueError(f"run {run!r} was trained on different images or labels; {fix}")
        return
    for row in rows:
        if row["architecture"] != identity["architecture"] or row["config"] != identity["config"]:
            raise ValueError(
                f"run {run!r} is in the catalog as {row['name']!r} with a different setup "
                f"({row['architecture']} vs {identity['architecture']}; "
                f"{_diff(row['config'], identity['config']) or 'same config'}); {fix}")
    text = json.dumps(identity, indent=2, sort_keys=True)
    atomic_write(path, lambda tmp: tmp.write_text(text))


def _save_state(run_dir: Path, state: dict[str, Any]) -> Path:
    it = state["iteration"]
    path = run_dir / f"state_{it}.pt"
    buf = io.BytesIO()  # serialise in memory: the zip's record names do not depend on the temp name
    torch.save(state, buf)
    atomic_write(path, lambda tmp: tmp.write_bytes(buf.getvalue()))
    for old_it, old in _state_files(run_dir).items():  # keep only the newest state(s)
        if old_it < it:
            old.unlink(missing_ok=True)
    return path


def _load_state(path: Path) -> dict[str, Any]:
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unreadable file gets the same advice
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]  # torch's text runs on
        raise ValueError(f"training state {str(path)!r} is unreadable ({first}); delete it to "
                         "resume from an earlier snapshot (or from scratch)") from exc
    if not isinstance(state, dict):
        raise ValueError(f"training state {str(path)!r} is not a dict; delete it")
    return state


@contextlib.contextmanager
def _forked_rng(device: torch.device):
    devices = []
    if device.type == "cuda":
        devices = [device.index if device.index is not None else torch.cuda.current_device()]
    with torch.random.fork_rng(devices=devices):
        yield


def train(arch: str, images: np.ndarray, labels: np.ndarray, *, out_dir: str | Path,
          iterations: int, snapshots: Sequence[int], batch_size: int = 64, seed: int = 0,
          device: str | torch.device = "auto", name: str | None = None,
          dataset: str = "unknown", num_classes: int | None = None,
          **hparams: Any) -> list[int]:
    """Train family ``arch`` on uint8 ``images`` and int ``labels``; return the snapshots' catalog ids.

    Saves the generator at each iteration in ``snapshots`` to ``out_dir/runs/<run>/G_<it>.pt``
    and registers it in ``Catalog(out_dir)`` as ``"{run}@{it}"``; ``run`` is ``name`` or
    :func:`default_run_name`. Calling again with the same run and settings resumes from the last
    saved state and skips snapshots already in the catalog. ``hparams`` are the family's
    hyper-parameters (``zoo.get_architecture(arch).defaults`` lists them). ``num_classes``
    defaults to ``max(labels) + 1``.
    """
    from .catalog import Catalog
    from .checkpoint import save_generator

    architecture = get_architecture(arch)
    images = check_training_images(images)
    labels, num_classes = check_labels(labels, len(images), num_classes)
    iterations = _check_int(iterations, "iterations")
    snapshots = _check_snapshots(snapshots, iterations)
    batch_size = _check_int(batch_size, "batch_size")
    if batch_size > len(images):
        raise ValueError(f"batch_size {batch_size} is larger than the {len(images)} training images; "
                         f"pass batch_size <= {len(images)}")
    derive_seed(seed)  # validates the seed (an integer)
    seed = int(seed)
    dev = resolve_device(device)
    channels = 3 if images.ndim == 4 else 1
    validate_hparams(architecture, hparams)
    config = build_config(architecture, num_classes=num_classes, image_size=images.shape[1],
                          channels=channels, batch_size=batch_size, **hparams)
    run = name if name is not None else default_run_name(architecture, config, seed)
    if not isinstance(run, str) or not _RUN_NAME.match(run):
        raise ValueError(f"run name {run!r} is not allowed; use letters, digits and . _ + - "
                         "(at most 100 characters, no '@' or '/')")

    out_dir = Path(out_dir).expanduser()
    run_dir = out_dir / "runs" / run
    catalog = Catalog(out_dir)
    rows = catalog.list()
    rows = [r for r in rows.to_dict("records") if r["run"] == run]
    data_sha = _data_fingerprint(images, labels)
    identity = {"run": run, "architecture": architecture.name, "config": config, "seed": seed,
                "data_sha256": data_sha}
    _check_run_identity(run_dir, rows, identity)
    done = {int(r["iteration"]): int(r["id"]) for r in rows}
    missing = [s for s in snapshots if s not in done]
    if not missing:
        log.info("run %s: all %d snapshots are already in the catalog", run, len(snapshots))
        return [done[s] for s in snapshots]

    image_shape = tuple(images.shape[1:])
    with exclusive_lock(run_dir / ".lock", f"run {run!r}"), _forked_rng(dev):  # one trainer per run
        trainer = GANTrainer(architecture, config, images, labels, seed=seed, run=run, device=dev)
        states = {it: p for it, p in _state_files(run_dir).items() if it <= missing[0]}
        if states:
            start = max(states)
            trainer.load_state_dict(_load_state(states[start]))
            log.info("run %s: resuming from iteration %d", run, start)

        def snapshot(it: int) -> None:
            if it in missing and it not in done:
                path = run_dir / f"G_{it}.pt"
                sha = save_generator(path, architecture=architecture.name, config=config,
                                     state_dict=trainer.generator_state_dict(), iteration=it)
                done[it] = catalog.add(
                    name=f"{run}@{it}", run=run, kind="native", architecture=architecture.name,
                    config=config, dataset=dataset, image_shape=image_shape,
                    num_classes=num_classes, iteration=it, path=path, sha256=sha)
                log.info("run %s: saved snapshot %d (catalog id %d)", run, it, done[it])
            if it > max(_state_files(run_dir), default=0):
                _save_state(run_dir, trainer.state_dict())

        if trainer.iteration in missing:
            snapshot(trainer.iteration)
        end = missing[-1]
        log_every = max(1, min(1000, (end - trainer.iteration) // 10))
        t0, it0 = time.perf_counter(), trainer.iteration
        bar = tqdm(total=end, initial=trainer.iteration, desc=run, unit="it", leave=False)
        try:
            while trainer.iteration < end:
                losses = trainer.step()
                it = trainer.iteration
                bar.update(1)
                if it % log_every == 0 or it in snapshots:
                    values = {k: float(v) for k, v in losses.items()}
                    if not all(math.isfinite(v) for v in values.values()):
                        raise ValueError(
                            f"run {run!r} diverged at iteration {it} ({values}); lower lr, change "
                            "the optimizer or pick another snapshot")
                    rate = (it - it0) / max(time.perf_counter() - t0, 1e-9)
                    bar.set_postfix({k: f"{v:.3f}" for k, v in values.items()})
                    log.info("run %s: it %d/%d loss_d %.4f loss_g %.4f (%.1f it/s)", run, it,
                             end, values["loss_d"], values["loss_g"], rate)
                if it in snapshots:
                    snapshot(it)
        finally:
            bar.close()
    return [done[s] for s in snapshots]
