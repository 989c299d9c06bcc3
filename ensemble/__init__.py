"""gan-ensemble: select a Pareto-optimal ensemble of GAN generators and export its data.

The public API, one import away (``from ensemble import ScoreTables, EnsembleSearch``). The
stages live in subpackages named for what they hold:

- :mod:`ensemble.data`: real data (MedMNIST flags, npz files, ImageFolder trees);
- :mod:`ensemble.features`: the timm embedder, its weight sources and the feature cache;
- :mod:`ensemble.scoring`: exact k-NN density/coverage and the score tables (Intra-d / Inter-d);
- :mod:`ensemble.label_fidelity`: each generator's label agreement (a classifier of real images);
- :mod:`ensemble.search`: NSGA-II and friends over ensembles, rules that pick G*, saved results;
- :mod:`ensemble.synthesis`: sampling an ensemble class-balanced and writing the dataset;
- :mod:`ensemble.downstream`: train on synthetic, test on real;
- :mod:`ensemble.pipeline`: all of it end to end; :mod:`ensemble.seeds`: every stage seed;
  :mod:`ensemble.parallel`: where heavy tasks run.

Names are imported on first use, so ``import ensemble`` stays cheap (no torch until needed).
"""

from __future__ import annotations

import importlib
from typing import Any

from ensemble.version import __version__

#: public name -> the module that defines it
_EXPORTS: dict[str, str] = {
    # real data
    "Dataset": "ensemble.data",
    "load_dataset": "ensemble.data",
    # embeddings
    "Embedder": "ensemble.features",
    "FeatureCache": "ensemble.features",
    "compute_features": "ensemble.features",
    # scores
    "ScoreTables": "ensemble.scoring",
    "score_catalog": "ensemble.scoring",
    "score_features": "ensemble.scoring",
    "density_coverage": "ensemble.scoring",
    "knn_radii": "ensemble.scoring",
    "d_score": "ensemble.scoring",
    "label_agreement_table": "ensemble.label_fidelity",
    # search and selection
    "EnsembleSearch": "ensemble.search",
    "Ensemble": "ensemble.search",
    "list_algorithms": "ensemble.search",
    "register_algorithm": "ensemble.search",
    "list_rules": "ensemble.search",
    "register_objective": "ensemble.search",
    "get_objective": "ensemble.search",
    "list_objectives": "ensemble.search",
    "register_rule": "ensemble.search",
    "ValidationContext": "ensemble.search",
    "save_search_outputs": "ensemble.search",
    "load_front": "ensemble.search",
    "load_selected": "ensemble.search",
    # the synthetic dataset
    "SyntheticSamples": "ensemble.synthesis",
    "sample_ensemble": "ensemble.synthesis",
    "export_dataset": "ensemble.synthesis",
    "list_export_formats": "ensemble.synthesis",
    "register_export_format": "ensemble.synthesis",
    # downstream
    "build_arms": "ensemble.downstream",
    "compare": "ensemble.downstream",
    "summarize": "ensemble.downstream",
    "train_classifier": "ensemble.downstream",
    "list_classifiers": "ensemble.downstream",
    # everything end to end
    "PipelineConfig": "ensemble.pipeline",
    "make_config": "ensemble.pipeline",
    "run_pipeline": "ensemble.pipeline",
    # execution backends
    "get_backend": "ensemble.parallel",
    "list_backends": "ensemble.parallel",
}

__all__ = ["__version__", *sorted(_EXPORTS)]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'ensemble' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
