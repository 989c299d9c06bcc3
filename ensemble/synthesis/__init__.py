"""The synthetic dataset: sample an ensemble class-balanced (:mod:`.sample`), write it to disk
(:mod:`.export`) in registered formats (:mod:`.formats`)."""

from ensemble.synthesis.export import MANIFEST_COLUMNS, check_replaceable, export_dataset
from ensemble.synthesis.formats import (
    class_folder_names,
    get_export_format,
    list_export_formats,
    register_export_format,
    write_npz_deterministic,
)
from ensemble.synthesis.sample import (
    PROVENANCE_COLUMNS,
    SyntheticSamples,
    allocate,
    balanced_n_per_class,
    class_names_for,
    default_n_per_class,
    ensemble_members,
    parse_image_shape,
    resolve_class_counts,
    sample_ensemble,
)

__all__ = [
    "MANIFEST_COLUMNS",
    "PROVENANCE_COLUMNS",
    "SyntheticSamples",
    "allocate",
    "check_replaceable",
    "class_folder_names",
    "class_names_for",
    "balanced_n_per_class",
    "default_n_per_class",
    "ensemble_members",
    "export_dataset",
    "get_export_format",
    "list_export_formats",
    "parse_image_shape",
    "register_export_format",
    "resolve_class_counts",
    "sample_ensemble",
    "write_npz_deterministic",
]
