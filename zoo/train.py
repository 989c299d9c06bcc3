"""Training loop of the zoo: train a registered GAN family, snapshot it into a catalog, resume.

:func:`train` validates its inputs, builds the family's nets from one config, trains them and at
each snapshot iteration writes ``out_dir/runs/<run>/G_<iteration>.pt`` (the EMA weights when
``ema > 0``) and registers it in ``Catalog(out_dir)`` as ``"{run}@{iteration}"``. Beside the
generator it writes the full training state (``state_<iteration>.pt``: both nets, optimisers,
EMA, iteration; tensors and primitives only; the newest is kept) so that calling :func:`train`
again with the same run and settings resumes from the last snapshot. ``run.json`` records the
run's settings (architecture, config, seed, a hash of the data) so that a name is never reused
for other settings. Every random draw of iteration ``it`` (batch,
``z``, fake labels, augmentation, dropout) comes from ``derive_seed(seed, run, "iter", it)``,
so an interrupted and resumed run gives the same weights as an uninterrupted one (bit for bit on
the CPU).

:class:`GANTrainer` is the loop itself (one ``step()`` per generator update), used by
:func:`train` and by the benchmark.
"""

from __future__ import annotations

import contextlib
import copy
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
from torch import nn
from tqdm.auto import tqdm

from .arrays import check_images
from .device import resolve_device
from .diffaug import diff_augment
from .io import atomic_write, exclusive_lock
from .losses import (
    auxiliary_loss,
    discriminator_loss,
    drift_penalty,
    generator_loss,
    gradient_penalty,
)
from .registry import DATA_KEYS, Architecture, get_architecture, resolve_config
from .seeding import derive_seed, torch_generator

__all__ = [
    "train",
    "GANTrainer",
    "build_config",
    "default_run_name",
    "validate_hparams",
    "STATE_FORMAT",
]

log = logging.getLogger(__name__)

STATE_FORMAT = "gan-ensemble-train-state/1"
RUN_FILE = "run.json"
_RUN_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]{0,99}$")
_STATE_FILE = re.compile(r"^state_(\d+)\.pt$")

# --------------------------------------------------------------------------- hyper-parameters

_CHOICES = {
    "optimizer": ("adam", "sgd", "rmsprop"),
    "output_activation": ("tanh", "none"),
}
# key -> (kind, low, high, low_inclusive): numeric ranges checked by validate_hparams.
_RANGES: dict[str, tuple[type, float, float, bool]] = {
    "lr": (float, 0.0, math.inf, False),
    "beta1": (float, 0.0, 1.0, True),
    "beta2": (float, 0.0, 1.0, True),
    "momentum": (float, 0.0, 1.0, True),
    "dropout": (float, 0.0, 1.0, True),
    "ema": (float, 0.0, 1.0, True),
    "clip": (float, 0.0, math.inf, True),
    "gp": (float, 0.0, math.inf, True),
    "drift": (float, 0.0, math.inf, True),
    "aux_weight": (float, 0.0, math.inf, True),
    "latent_dim": (int, 1, math.inf, True),
    "batch_size": (int, 1, math.inf, True),
    "n_critic": (int, 1, math.inf, True),
    "g_width": (int, 1, math.inf, True),
    "d_width": (int, 1, math.inf, True),
    "embed_dim": (int, 1, math.inf, True),
    "stage_iters": (int, 1, math.inf, True),
}


def _coerce(key: str, value: Any, default: Any) -> Any:
    """Turn numpy scalars into Python ones and check the value's type against the default's."""
    if isinstance(value, np.generic):
        value = value.item()
    kind = _RANGES[key][0] if key in _RANGES else type(default)
    if kind is bool or isinstance(default, bool):
        if not isinstance(value, bool):
            raise ValueError(f"hyper-parameter {key}={value!r} must be True or False")
        return value
    if kind is int:
        if isinstance(value, bool) or not isinstance(value, int):
            if isinstance(value, float) and value.is_integer():
                return int(value)
            raise ValueError(f"hyper-parameter {key}={value!r} must be an integer")
        return value
    if kind is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValueError(f"hyper-parameter {key}={value!r} must be a number")
        return float(value)
    if kind is str:
        if not isinstance(value, str):
            raise ValueError(f"hyper-parameter {key}={value!r} must be a string")
        return value
    return value


def validate_hparams(arch: Architecture, hparams: Mapping[str, Any]) -> dict[str, Any]:
    """Check names and values of user hyper-parameters for ``arch``; return them normalised."""
    known = list(arch.defaults)
    data_keys = [k for k in hparams if k in DATA_KEYS]
    if data_keys:
        raise ValueError(
            f"{data_keys} come from the training data (images and labels), not from "
            "hyper-parameters; use the num_classes= argument to set the number of classes"
        )
    unknown = [k for k in hparams if k not in arch.defaults]
    if unknown:
        raise ValueError(
            f"unknown hyper-parameter(s) {unknown} for architecture {arch.name!r}; known: "
            f"{', '.join(known)}"
        )
    out: dict[str, Any] = {}
    for key, value in hparams.items():
        value = _coerce(key, value, arch.defaults[key])
        if key in _CHOICES and value not in _CHOICES[key]:
            raise ValueError(f"hyper-parameter {key}={value!r}; use one of {list(_CHOICES[key])}")
        if key in _RANGES:
            _, lo, hi, lo_inc = _RANGES[key]
            ok = (value >= lo if lo_inc else value > lo) and value < hi
            if key in ("beta1", "beta2", "momentum", "dropout", "ema"):
                ok = lo <= value < 1.0
            if not ok or (isinstance(value, float) and not math.isfinite(value)):
                lo_s = "[" if lo_inc else "("
                hi_s = "inf)" if hi == math.inf else f"{hi:g})"
                raise ValueError(f"hyper-parameter {key}={value!r} is out of range; use a value in "
                                 f"{lo_s}{lo:g}, {hi_s}")
        out[key] = value
    return out


def build_config(arch: str | Architecture, *, num_classes: int, image_size: int, channels: int,
                 **hparams: Any) -> dict[str, Any]:
    """The full JSON-able config of a run: the family's defaults, the hyper-parameters, the data keys."""
    arch = get_architecture(arch)
    cfg = dict(arch.defaults)
    user = validate_hparams(arch, hparams)
    cfg.update(user)
    if cfg["optimizer"] == "adam" and cfg.get("momentum", 0.0) > 0:
        raise ValueError(f"momentum={cfg['momentum']!r} applies to optimizer 'sgd' or 'rmsprop'; "
                         "Adam uses beta1/beta2 (set optimizer='sgd' or drop momentum)")
    passed_betas = [k for k in ("beta1", "beta2") if k in user]
    if cfg["optimizer"] != "adam" and passed_betas:
        raise ValueError(f"{passed_betas} apply to optimizer 'adam', not {cfg['optimizer']!r}; "
                         "use momentum for sgd/rmsprop")
    cfg.update(num_classes=int(num_classes), image_size=int(image_size), channels=int(channels))
    return resolve_config(arch.name, cfg)


def _fmt_value(value: Any) -> str:
    if isinstance(value, float):
        if value != 0 and (abs(value) < 1e-2 or abs(value) >= 1e4):
            return np.format_float_scientific(value, trim="-", exp_digits=1)
        return f"{value:g}"
    return str(value)


_SHORT = {"batch_size": "bs", "latent_dim": "z", "n_critic": "ncrit", "output_activation": "out"}


def default_run_name(arch: str | Architecture, config: Mapping[str, Any], seed: int = 0) -> str:
    """``arch`` plus a short, stable suffix naming the non-default hyper-parameters and seed.

    E.g. ``dcgan``, ``dcgan-lr1e-4-sgd``, ``wgan-gp-diffaug-ema0.999-s1``. Overlong names fall
    back to a hash of the settings.
    """
    arch = get_architecture(arch)
    parts: list[str] = []
    for key, default in arch.defaults.items():
        value = config.get(key, default)
        if value == default and type(value) is type(default):
            continue
        if key == "optimizer":
            parts.append(str(value))
        elif isinstance(value, bool):
            parts.append(key if value else f"no{key}")
        else:
            parts.append(f"{_SHORT.get(key, key.replace('_', ''))}{_fmt_value(value)}")
    if seed != 0:  # large derived seeds get a short stable tag instead of 19 digits
        parts.append(f"s{seed}" if 0 < seed < 10**6 else
                     f"s{hashlib.sha256(str(seed).encode()).hexdigest()[:8]}")
    name = "-".join([arch.name, *parts])
    if len(name) > 60:
        digest = hashlib.sha256("-".join(parts).encode()).hexdigest()[:10]
        name = f"{arch.name}-{digest}"
    return name


# --------------------------------------------------------------------------- input checks


def _check_images(images: Any) -> np.ndarray:
    images = check_images(images)
    h, w = images.shape[1:3]
    if h != w or h not in (28, 32):
        raise ValueError(f"images are {h}x{w}, but the zoo trains on 28x28 or 32x32 images; "
                         "resize them first (e.g. MedMNIST at size 28)")
    return images


def _check_labels(labels: Any, n: int, num_classes: int | None) -> tuple[np.ndarray, int]:
    labels = np.asarray(labels)
    if labels.ndim == 2 and labels.shape[1] == 1:
        labels = labels[:, 0]
    if labels.ndim != 1:
        raise ValueError(f"labels must have shape (N,) or (N, 1), got {labels.shape}")
    if len(labels) != n:
        raise ValueError(f"labels has {len(labels)} entries but there are {n} images; pass one "
                         "label per image")
    if not np.issubdtype(labels.dtype, np.integer):
        if not (np.issubdtype(labels.dtype, np.floating) and np.all(np.mod(labels, 1) == 0)):
            raise ValueError(f"labels must be integers, got dtype {labels.dtype}")
    labels = labels.astype(np.int64)
    if labels.min() < 0:
        raise ValueError(f"labels out of range: found {int(labels.min())}; labels must be >= 0")
    if num_classes is None:
        num_classes = int(labels.max()) + 1
    elif isinstance(num_classes, bool) or not isinstance(num_classes, (int, np.integer)) \
            or num_classes < 1:
        raise ValueError(f"num_classes must be a positive integer, got {num_classes!r}")
    num_classes = int(num_classes)
    if labels.max() >= num_classes:
        raise ValueError(f"labels out of range: found {int(labels.max())}, expected 0 <= label < "
                         f"{num_classes}; pass num_classes={int(labels.max()) + 1} or fix the labels")
    return labels, num_classes


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


# --------------------------------------------------------------------------- the loop


def _make_optimizer(cfg: Mapping[str, Any], params: Iterable[nn.Parameter]) -> torch.optim.Optimizer:
    params = [p for p in params if p.requires_grad]
    name = cfg["optimizer"]
    if name == "adam":
        return torch.optim.Adam(params, lr=cfg["lr"], betas=(cfg["beta1"], cfg["beta2"]))
    if name == "sgd":
        return torch.optim.SGD(params, lr=cfg["lr"], momentum=cfg["momentum"])
    if name == "rmsprop":
        return torch.optim.RMSprop(params, lr=cfg["lr"], momentum=cfg["momentum"])
    raise ValueError(f"optimizer {name!r}; use one of {list(_CHOICES['optimizer'])}")


def _split(out: Any) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Discriminator output -> (adversarial logits, class logits or None)."""
    if isinstance(out, tuple):
        return out[0], out[1]
    return out, None


def _cpu_state(module: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().to("cpu", copy=True) for k, v in module.state_dict().items()}


class GANTrainer:
    """One GAN being trained: nets, optimisers, EMA and the per-iteration seeded update.

    ``images`` uint8 ``(N, H, W)`` / ``(N, H, W, 3)`` and ``labels`` int64 ``(N,)`` are moved to
    ``device`` once. Each :meth:`step` trains iteration ``self.iteration + 1``: ``n_critic``
    discriminator updates and one generator update. It reseeds torch's global generator (for
    dropout); :func:`train` runs it inside ``torch.random.fork_rng`` so callers' state is kept.
    """

    def __init__(self, arch: str | Architecture, config: Mapping[str, Any], images: np.ndarray,
                 labels: np.ndarray, *, seed: int = 0, run: str = "run",
                 device: str | torch.device = "auto") -> None:
        self.arch = get_architecture(arch)
        self.config = resolve_config(self.arch.name, config)
        self.seed = int(seed)
        self.run = run
        self.device = resolve_device(device)
        cfg = self.config
        images = _check_images(images)
        labels, _ = _check_labels(labels, len(images), cfg["num_classes"])
        x = torch.from_numpy(np.ascontiguousarray(images))
        x = x.unsqueeze(1) if x.ndim == 3 else x.permute(0, 3, 1, 2)
        if x.shape[1] != cfg["channels"] or x.shape[-1] != cfg["image_size"]:
            raise ValueError(f"images {tuple(images.shape[1:])} do not match the config "
                             f"(image_size {cfg['image_size']}, channels {cfg['channels']})")
        self.images = x.contiguous().to(self.device)
        self.labels = torch.from_numpy(labels).to(self.device)
        self.n = len(images)
        if cfg["batch_size"] > self.n:
            raise ValueError(f"batch_size {cfg['batch_size']} is larger than the {self.n} training "
                             f"images; pass batch_size <= {self.n}")
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(derive_seed(self.seed, run, "init"))
            self.G = self.arch.build_generator(dict(cfg))
            self.D = self.arch.build_discriminator(dict(cfg))
        # channels-last convolutions are ~25% faster on CPU (oneDNN) and on recent GPUs
        self.G.to(self.device, memory_format=torch.channels_last).train()
        self.D.to(self.device, memory_format=torch.channels_last).train()
        self.ema: nn.Module | None = None
        if cfg["ema"] > 0:
            self.ema = copy.deepcopy(self.G).requires_grad_(False)
        self.opt_g = _make_optimizer(cfg, self.G.parameters())
        self.opt_d = _make_optimizer(cfg, self.D.parameters())
        self.iteration = 0
        self.last_losses: dict[str, torch.Tensor] = {}

    # -- randomness -------------------------------------------------------------------------
    def _batch(self, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        idx = torch.randperm(self.n, generator=gen)[: self.config["batch_size"]].to(self.device)
        real = self.images[idx].to(torch.float32).div_(127.5).sub_(1.0)
        return real.contiguous(memory_format=torch.channels_last), self.labels[idx]

    def _codes(self, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        bs = self.config["batch_size"]
        z = torch.randn(bs, self.config["latent_dim"], generator=gen).to(self.device)
        y = torch.randint(self.config["num_classes"], (bs,), generator=gen).to(self.device)
        return z, y

    def _aug(self, x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        return diff_augment(x, generator=gen) if self.config["diffaug"] else x

    # -- one iteration ----------------------------------------------------------------------
    def step(self) -> dict[str, torch.Tensor]:
        """Train one iteration; return its (detached, on-device) losses."""
        it = self.iteration + 1
        cfg = self.config
        gen = torch_generator(derive_seed(self.seed, self.run, "iter", it))
        torch.manual_seed(derive_seed(self.seed, self.run, "iter", it, "torch"))
        for net in (self.G, self.D):
            if hasattr(net, "set_iteration"):
                net.set_iteration(it)
        kind = self.arch.loss
        aux_w = cfg.get("aux_weight", 0.0)

        self.D.requires_grad_(True)
        for _ in range(cfg["n_critic"]):
            real, y_real = self._batch(gen)
            z, y_fake = self._codes(gen)
            with torch.no_grad():
                fake = self.G(z, y_fake)
            real_in, fake_in = self._aug(real, gen), self._aug(fake, gen)
            out_r, cls_r = _split(self.D(real_in, y_real))
            out_f, cls_f = _split(self.D(fake_in, y_fake))
            loss_d = discriminator_loss(kind, out_r, out_f)
            if cfg.get("gp", 0.0) > 0:
                eps = torch.rand(real.shape[0], 1, 1, 1, generator=gen).to(self.device)
                loss_d = loss_d + cfg["gp"] * gradient_penalty(
                    lambda x, y=y_real: self.D(x, y), real_in, fake_in, eps)
            if cfg.get("drift", 0.0) > 0:
                loss_d = loss_d + cfg["drift"] * drift_penalty(out_r)
            if cls_r is not None and aux_w > 0:
                loss_d = loss_d + aux_w * (auxiliary_loss(cls_r, y_real) + auxiliary_loss(cls_f, y_fake))
            self.opt_d.zero_grad(set_to_none=True)
            loss_d.backward()
            self.opt_d.step()
            if cfg.get("clip", 0.0) > 0:
                with torch.no_grad():
                    for p in self.D.parameters():
                        p.clamp_(-cfg["clip"], cfg["clip"])

        self.D.requires_grad_(False)
        z, y_fake = self._codes(gen)
        fake = self.G(z, y_fake)
        out_f, cls_f = _split(self.D(self._aug(fake, gen), y_fake))
        loss_g = generator_loss(kind, out_f)
        if cls_f is not None and aux_w > 0:
            loss_g = loss_g + aux_w * auxiliary_loss(cls_f, y_fake)
        self.opt_g.zero_grad(set_to_none=True)
        loss_g.backward()
        self.opt_g.step()
        self.D.requires_grad_(True)
        if self.ema is not None:
            self._update_ema()
        self.iteration = it
        self.last_losses = {"loss_d": loss_d.detach(), "loss_g": loss_g.detach()}
        return self.last_losses

    @torch.no_grad()
    def _update_ema(self) -> None:
        decay = self.config["ema"]
        for pe, p in zip(self.ema.parameters(), self.G.parameters(), strict=True):
            pe.lerp_(p.detach(), 1.0 - decay)
        for be, b in zip(self.ema.buffers(), self.G.buffers(), strict=True):
            be.copy_(b)

    # -- state --------------------------------------------------------------------------------
    def generator_state_dict(self) -> dict[str, torch.Tensor]:
        """The weights to publish: the EMA generator's when ``ema > 0``, else the generator's."""
        return _cpu_state(self.ema if self.ema is not None else self.G)

    def state_dict(self) -> dict[str, Any]:
        """The full training state (tensors and primitives only: ``weights_only``-loadable)."""
        state = {
            "format": STATE_FORMAT,
            "architecture": self.arch.name,
            "config": dict(self.config),
            "run": self.run,
            "seed": self.seed,
            "iteration": self.iteration,
            "G": _cpu_state(self.G),
            "D": _cpu_state(self.D),
            "opt_g": self.opt_g.state_dict(),
            "opt_d": self.opt_d.state_dict(),
        }
        if self.ema is not None:
            state["ema"] = _cpu_state(self.ema)
        return state

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore a state from :meth:`state_dict` (same architecture, config, run and seed)."""
        if state.get("format") != STATE_FORMAT:
            raise ValueError(f"not a training state of this version (format {state.get('format')!r}, "
                             f"expected {STATE_FORMAT!r})")
        for key, mine in (("architecture", self.arch.name), ("config", self.config),
                          ("run", self.run), ("seed", self.seed)):
            if state.get(key) != mine:
                raise ValueError(f"training state {key} {state.get(key)!r} does not match this "
                                 f"run's {mine!r}")
        self.G.load_state_dict(state["G"])
        self.D.load_state_dict(state["D"])
        self.opt_g.load_state_dict(state["opt_g"])
        self.opt_d.load_state_dict(state["opt_d"])
        if self.ema is not None:
            self.ema.load_state_dict(state["ema"])
        self.iteration = int(state["iteration"])


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
        raise ValueError(f"training state {str(path)!r} is unreadable ({exc}); delete it to "
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
    images = _check_images(images)
    labels, num_classes = _check_labels(labels, len(images), num_classes)
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
