"""Scoring: k-NN density/coverage (pure), the C block kernel, score tables and building them.

- :mod:`.knn`: pure k-NN metric functions on feature arrays (exact against ``prdc``);
- :mod:`.blockkernel`: the one-pass C kernel behind :func:`~.knn.compare_sets` on the CPU;
- :mod:`.tables`: :class:`ScoreTables`, the data the search needs (Intra-d / Inter-d), made
  from features (:func:`score_features`) or from a zoo catalog (:func:`score_catalog`);
- :mod:`.build`: the computing behind those two, with its per-generator and pair-block tasks;
- :mod:`.degenerate`: which generators collapsed or cover almost no real point.
- :mod:`.memorisation`: the memorisation audit (nearest real images, authenticity, held-out test).
"""

from ensemble.scoring.build import (
    catalog_fields,
    embed_holdout,
    feature_fields,
    pair_blocks,
    score_generator_task,
    score_pair_block_task,
)
from ensemble.scoring.degenerate import degenerate_reason, feature_spread
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
    knn_radii_many,
    nearest_neighbours,
    prepare_features,
)
from ensemble.scoring.memorisation import (
    ALPHA,
    MEMORISATION_COLUMNS,
    byte_copies,
    close_flags,
    memorisation_table,
    reference_rate,
)
from ensemble.scoring.tables import INTER_MODES, ScoreTables, score_catalog, score_features

__all__ = [
    "ALPHA",
    "INTER_MODES",
    "MEMORISATION_COLUMNS",
    "PairStats",
    "PreparedFeatures",
    "ScoreTables",
    "byte_copies",
    "catalog_fields",
    "close_flags",
    "check_features",
    "check_k",
    "compare_sets",
    "d_score",
    "degenerate_reason",
    "feature_spread",
    "density_coverage",
    "embed_holdout",
    "fake_counts_and_hits",
    "feature_fields",
    "fid",
    "ieee_float32_matmul",
    "knn_radii",
    "knn_radii_many",
    "memorisation_table",
    "nearest_neighbours",
    "pair_blocks",
    "prepare_features",
    "reference_rate",
    "score_catalog",
    "score_features",
    "score_generator_task",
    "score_pair_block_task",
]
