"""Settings of one pipeline run: :class:`PipelineConfig`, named size profiles, validation.

One root ``seed`` gives every random choice (through :mod:`ensemble.seeds`). ``digest(*fields)``
keys the stage caches on the settings each stage depends on.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass

__all__ = ["PipelineConfig", "PROFILES", "list_profiles", "make_config", "ZOO_SETTINGS"]

#: Settings that decide the zoo's files: a rerun into the same folder must keep them.
ZOO_SETTINGS = ("dataset", "families", "variants", "iterations", "snapshots", "batch_size", "seed")


@dataclass
class PipelineConfig:
    """Every setting of one run; one root ``seed`` gives every random choice."""

    dataset: str = "pneumoniamnist"
    data_root: str | None = None
    size: int = 28  # a MedMNIST flag's image size: 28, or MedMNIST+'s 64, 128, 224
    profile: str = "quick"
    # zoo
    families: tuple[str, ...] = ("dcgan", "lsgan", "acgan", "cgan")
    variants: tuple[dict, ...] = ()  # extra (family, hparams) runs: {"arch": ..., **hparams}
    iterations: int = 500
    snapshots: tuple[int, ...] = (300, 400, 500)
    batch_size: int = 64
    # embeddings and scores
    backbone: str = "resnet18"
    weights: str = "random"
    image_size: int = 32
    channels: str = "replicate"
    n_samples: int | None = None  # per generator; None = as many as real training images
    n_real: int | None = None  # real training images used for scoring; None = all
    k: int = 5
    # label agreement of every generator (ensemble.label_fidelity): epochs of the small CNN judge,
    # trained on the real training split and early-stopped on the validation split; 0 skips it
    label_epochs: int = 3
    # search
    pop_size: int = 100
    n_gen: int = 200
    min_size: int = 2
    rule: str = "max-fidelity"
    objectives: tuple[str, ...] = ("intra-d", "inter-d")
    keep_degenerate: bool = False
    # export and downstream
    n_per_class: int = 750
    downstream_model: str = "small-cnn"
    downstream_seeds: tuple[int, ...] = (0, 1)
    downstream_epochs: int = 8
    downstream_patience: int = 3
    # the budget in optimizer steps (None: downstream_epochs), its floor, and the warm-up before
    # any checkpoint or early stop: an epoch of a small set is a handful of steps
    downstream_steps: int | None = 300
    downstream_min_steps: int = 0
    downstream_warmup_steps: int = 100
    class_weight: str | None = "real"  # loss weighted by the real training class frequencies
    threshold: str | None = "val"  # binary decision threshold chosen on the real validation split
    samples_per_epoch: int | None = 1500  # draws between validation passes, every arm alike
    n_random: int = 2
    downstream: bool = True
    seed: int = 0
    device: str = "auto"
    # where the heavy stages run (see docs/cluster.md); not part of any cache key
    backend: str = "local"
    scheduler: str | None = None
    n_jobs: int | None = None

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def digest(self, *fields_: str) -> str:
        """Short hash of the named settings (all when none): keys the stage caches."""
        d = self.to_dict()
        if fields_:
            d = {k: d[k] for k in fields_}
        for key in ("data_root", "device", "backend", "scheduler", "n_jobs"):
            d.pop(key, None)
        return hashlib.sha256(json.dumps(d, sort_keys=True, default=str).encode()).hexdigest()[:16]


PROFILES: dict[str, dict] = {
    # A few minutes on a 2-core CPU: 4 families x 3 snapshots, small samples.
    "quick": dict(families=("dcgan", "lsgan", "acgan", "cgan"), iterations=500,
                  snapshots=(300, 400, 500), n_samples=1500, n_per_class=750,
                  downstream_seeds=(0, 1), downstream_epochs=8, downstream_patience=3,
                  downstream_steps=300, downstream_warmup_steps=100, samples_per_epoch=1500),
    # Seconds: for tests and notebooks (a handful of iterations; the numbers mean nothing).
    "tiny": dict(families=("dcgan", "cgan"), iterations=6, snapshots=(3, 6), batch_size=32,
                 n_samples=200, n_real=400, pop_size=20, n_gen=10, n_per_class=40,
                 downstream_seeds=(0,), downstream_epochs=1, downstream_steps=None,
                 downstream_warmup_steps=0, samples_per_epoch=128, n_random=1, label_epochs=1),
    # The reference protocol's sizes (METHOD.md): a GPU is advisable.
    "paper": dict(families=("dcgan", "lsgan", "wgan", "wgan-gp", "sngan", "acgan", "cgan", "progan"),
                  iterations=100_000, snapshots=(20_000, 40_000, 60_000, 80_000, 100_000),
                  batch_size=64, n_samples=None, n_per_class=None, downstream_model="resnet18-cifar",
                  downstream_seeds=tuple(range(20)), downstream_epochs=100, downstream_patience=10,
                  downstream_steps=None, downstream_min_steps=2000, downstream_warmup_steps=1850,
                  samples_per_epoch=None, n_random=5, pop_size=100, n_gen=200, label_epochs=20),
}


def list_profiles() -> list[str]:
    """Names of the size profiles."""
    return sorted(PROFILES)


def make_config(profile: str = "quick", **overrides) -> PipelineConfig:
    """A config from a named profile with ``overrides`` (None values are ignored)."""
    if profile not in PROFILES:
        raise ValueError(f"unknown profile {profile!r}; known profiles: {', '.join(list_profiles())}")
    names = {f.name for f in dataclasses.fields(PipelineConfig)}
    unknown = sorted(set(overrides) - names)
    if unknown:
        raise ValueError(f"unknown pipeline settings {unknown}; known: {sorted(names)}")
    values = dict(PROFILES[profile])
    values.update({k: v for k, v in overrides.items() if v is not None})
    values["profile"] = profile
    cfg = PipelineConfig(**values)
    if cfg.iterations <= 0:
        raise ValueError(f"iterations must be positive, got {cfg.iterations}")
    if isinstance(cfg.label_epochs, bool) or not isinstance(cfg.label_epochs, int) or cfg.label_epochs < 0:
        raise ValueError(f"label_epochs must be 0 (no label agreement) or a positive integer, "
                         f"got {cfg.label_epochs!r}")
    if not cfg.snapshots or max(cfg.snapshots) > cfg.iterations:
        raise ValueError(f"snapshots {cfg.snapshots} must be within 1..iterations={cfg.iterations}")
    return cfg
