"""Features: the embedding space in which generators are scored against the real images.

- :mod:`.embedder`: :class:`Embedder` (any timm backbone, its preprocessing) and carrying it to
  another process (:func:`embedder_params` / :func:`build_embedder`);
- :mod:`.weights`: the weight sources (random, hub, a local state-dict file, in-domain);
- :mod:`.indomain`: training the backbone on the real labelled images (``weights="in-domain"``);
- :mod:`.cache`: :class:`FeatureCache`, the content-keyed store of feature arrays;
- :mod:`.collect`: :class:`FeatureSet` and :func:`compute_features` (real + every generator,
  cached), with the per-generator task :func:`embed_generator_task`.
"""

from ensemble.features.cache import (
    CACHE_ENV,
    FeatureCache,
    canonical_json,
    default_cache_root,
    hash_arrays,
)
from ensemble.features.collect import (
    FeatureSet,
    compute_features,
    embed_generator_task,
    sample_labels,
)
from ensemble.features.embedder import (
    CHANNEL_POLICIES,
    EMBEDDER_PARAMS,
    Embedder,
    build_embedder,
    embedder_params,
    preprocess,
)
from ensemble.features.indomain import fit_in_domain, train_backbone
from ensemble.features.weights import (
    WEIGHT_KINDS,
    WEIGHT_SUFFIXES,
    load_state_dict_file,
    state_digest,
    weights_kind,
)

__all__ = [
    "CACHE_ENV",
    "CHANNEL_POLICIES",
    "EMBEDDER_PARAMS",
    "WEIGHT_KINDS",
    "WEIGHT_SUFFIXES",
    "Embedder",
    "FeatureCache",
    "FeatureSet",
    "build_embedder",
    "canonical_json",
    "compute_features",
    "default_cache_root",
    "embed_generator_task",
    "embedder_params",
    "fit_in_domain",
    "hash_arrays",
    "load_state_dict_file",
    "preprocess",
    "sample_labels",
    "state_digest",
    "train_backbone",
    "weights_kind",
]
