"""Every stage seed, one scheme: the root seed of a run gives each random choice through here.

The stage commands (``gan-ensemble score``, ``search``, ``export``, ``evaluate``), the pipeline
(``quickstart``), the studies and the notebooks all take their seeds from these functions, so the
stages run one after another with ``--seed 0`` give the same tables, front, ``selected.json`` and
exported bytes as ``quickstart --seed 0`` with the same settings. Each seed is
``zoo.seeding.derive_seed(root, stage, *keys)``: a stable hash, independent of the order in which
stages run and of the machine.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from zoo.seeding import derive_seed

__all__ = [
    "STAGES",
    "stage_seed",
    "real_subset_seed",
    "zoo_seed",
    "embedder_seed",
    "score_seed",
    "search_seed",
    "export_seed",
    "grid_seed",
    "arms_seed",
    "split_seed",
    "member_sample_seed",
    "label_classifier_seed",
    "label_sample_seed",
]

#: The stage names a seed can be derived for (a typo is an error, not a new stream of numbers).
STAGES = ("real-subset", "zoo", "embedder", "score", "search", "export", "grid",
          "downstream-arms", "split", "synth", "label-fidelity",
          # the studies' own design choices
          "fit-subset", "downstream-samples", "real-grid", "random-ensembles", "singles", "bootstrap")


def stage_seed(root: int, stage: str, *keys: object) -> int:
    """The 63-bit seed of ``stage`` (one of :data:`STAGES`) under root seed ``root``."""
    if stage not in STAGES:
        raise ValueError(f"unknown seed stage {stage!r}; known: {', '.join(STAGES)}")
    return derive_seed(root, stage, *keys)


def real_subset_seed(root: int) -> int:
    """Seed of the stratified subset of real images scored against (``--subset`` / ``n_real``)."""
    return stage_seed(root, "real-subset")


def zoo_seed(root: int, architecture: str, hparams: Mapping[str, Any]) -> int:
    """Training seed of one zoo run: its family and hyper-parameters, under the root seed."""
    return stage_seed(root, "zoo", architecture, json.dumps(dict(hparams), sort_keys=True))


def embedder_seed(root: int) -> int:
    """Seed of the embedder (random initialisation, in-domain training)."""
    return stage_seed(root, "embedder")


def score_seed(root: int) -> int:
    """Seed of the generated samples that are embedded and scored."""
    return stage_seed(root, "score")


def search_seed(root: int) -> int:
    """Seed of the ensemble search (31 bits: pymoo and numpy take it as is)."""
    return stage_seed(root, "search") % (2**31)


def export_seed(root: int) -> int:
    """Seed of the exported synthetic dataset."""
    return stage_seed(root, "export")


def grid_seed(root: int, name: str) -> int:
    """Seed of the sample grid shown for generator ``name``."""
    return stage_seed(root, "grid", name)


def arms_seed(root: int) -> int:
    """Seed of the downstream arms' synthetic training sets (random ensembles, sampling)."""
    return stage_seed(root, "downstream-arms")


def split_seed(root: int, purpose: str) -> int:
    """Seed of a seeded, stratified split of real data made for ``purpose`` (e.g. ``"val"``)."""
    return stage_seed(root, "split", purpose)


def member_sample_seed(seed: int, name: str) -> int:
    """Seed of member ``name``'s images inside one synthetic set made with ``seed`` (``"order"``:
    the seed of the set's shuffle). A member's images do not depend on the other members."""
    return stage_seed(seed, "synth", name)


def label_classifier_seed(root: int) -> int:
    """Seed of the classifier of real images that judges label agreement (:mod:`ensemble.label_fidelity`)."""
    return stage_seed(root, "label-fidelity", "classifier")


def label_sample_seed(root: int, name: str) -> int:
    """Seed of generator ``name``'s samples (and their labels) judged for label agreement."""
    return stage_seed(root, "label-fidelity", "samples", name)
