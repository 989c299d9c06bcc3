"""Scoring: k-NN density/coverage (pure), the C block kernel, score tables and building them.

- :mod:`.knn`: pure k-NN metric functions on feature arrays (exact against ``prdc``);
- :mod:`.blockkernel`: the one-pass C kernel behind :func:`~.knn.compare_sets` on the CPU;
- :mod:`.tables`: :class:`ScoreTables`, the data the search needs (Intra-d / Inter-d);
- :mod:`.build`: building tables from features (:func:`score_features`) or from a zoo catalog
  (:func:`score_catalog`), with their per-generator and pair-block tasks.
"""

from ensemble.scoring.build import (
    pair_blocks,
    score_catalog,
    score_features,
    score_generator_task,
    score_pair_block_task,
)
from ensemble.scoring.knn import (
    PairStats,
    PreparedFeatures,
    check_features,
    check_k,
    compare_sets,
    d_score,
    density_coverage,
    fake_counts_and_hits,
    fid,
    ieee_float32_matmul,
    knn_radii,
    prepare_features,
)
from ensemble.scoring.tables import INTER_MODES, ScoreTables

__all__ = [
    "INTER_MODES",
    "PairStats",
    "PreparedFeatures",
    "ScoreTables",
    "check_features",
    "check_k",
    "compare_sets",
    "d_score",
    "density_coverage",
    "fake_counts_and_hits",
    "fid",
    "ieee_float32_matmul",
    "knn_radii",
    "pair_blocks",
    "prepare_features",
    "score_catalog",
    "score_features",
    "score_generator_task",
    "score_pair_block_task",
]
