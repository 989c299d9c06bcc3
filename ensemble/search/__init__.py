"""Search over ensembles: the Pareto front of (Intra-d ↑, Inter-d ↓) and rules that pick G*.

The objectives are a registry (``list_objectives()``: intra-d, inter-d, class-intra-d,
coverage-overlap; :mod:`~ensemble.search.objectives`); the default pair is the paper's.

``EnsembleSearch(...).fit(tables)`` searches ensembles of the scored generators with a registered
algorithm (``list_algorithms()``: nsga2, random, exhaustive, greedy); ``.select(rule)`` picks G*
(an :class:`Ensemble`) with a registered rule (``list_rules()``); :func:`save_search_outputs`
writes the run's files and :func:`load_front` & co. read them back.

Modules: :mod:`~ensemble.search.estimator` (EnsembleSearch), :mod:`~ensemble.search.archive`
(every evaluation, the front), :mod:`~ensemble.search.operators` (pymoo operators on masks),
:mod:`~ensemble.search.algorithms`, :mod:`~ensemble.search.rules`, :mod:`~ensemble.search.validated`
(the ``validated`` rule: a brief downstream check of front candidates on real validation data),
:mod:`~ensemble.search.indicators` (non-domination, hypervolume, IGD, the HV reference),
:mod:`~ensemble.search.result` (Ensemble, selected.json), :mod:`~ensemble.search.outputs` (the
one writer and reader of front.csv, evaluated.csv, history.csv, selected.json).
"""

from ensemble.search.algorithms import (
    ALGORITHMS,
    DEFAULT_GREEDY_LAMBDAS,
    EXHAUSTIVE_MAX_P,
    get_algorithm,
    list_algorithms,
    register_algorithm,
)
from ensemble.search.archive import Archive
from ensemble.search.estimator import EnsembleSearch
from ensemble.search.indicators import (
    hv_reference,
    hypervolume,
    igd,
    nondominated,
    nondominated_nd,
    normalised_objectives,
)
from ensemble.search.objectives import (
    DEFAULT_OBJECTIVES,
    OBJECTIVES,
    Objective,
    get_objective,
    list_objectives,
    register_objective,
    resolve_objectives,
)
from ensemble.search.operators import (
    CROSSOVERS,
    ArchiveRecorder,
    BatchMating,
    MaskDuplicates,
    MaskProblem,
    SizeRepair,
    SparseSampling,
    random_masks,
    size_repair,
)
from ensemble.search.outputs import (
    load_evaluated,
    load_front,
    load_history,
    load_selected,
    save_search_outputs,
)
from ensemble.search.result import Ensemble
from ensemble.search.rules import (
    RULES,
    check_rule_params,
    get_rule,
    list_rules,
    register_rule,
    rule_needs_context,
)
from ensemble.search.validated import (
    VALIDATION_METRICS,
    ValidationContext,
    select_validated,
    split_halves,
    validation_candidates,
    validation_cost,
)

__all__ = [
    "EnsembleSearch",
    "Ensemble",
    "Archive",
    "ALGORITHMS",
    "register_algorithm",
    "get_algorithm",
    "list_algorithms",
    "EXHAUSTIVE_MAX_P",
    "DEFAULT_GREEDY_LAMBDAS",
    "OBJECTIVES",
    "Objective",
    "DEFAULT_OBJECTIVES",
    "register_objective",
    "get_objective",
    "list_objectives",
    "resolve_objectives",
    "RULES",
    "register_rule",
    "get_rule",
    "list_rules",
    "check_rule_params",
    "rule_needs_context",
    "ValidationContext",
    "VALIDATION_METRICS",
    "select_validated",
    "validation_candidates",
    "validation_cost",
    "split_halves",
    "nondominated",
    "nondominated_nd",
    "hypervolume",
    "igd",
    "hv_reference",
    "normalised_objectives",
    "CROSSOVERS",
    "random_masks",
    "size_repair",
    "MaskProblem",
    "SparseSampling",
    "SizeRepair",
    "MaskDuplicates",
    "BatchMating",
    "ArchiveRecorder",
    "save_search_outputs",
    "load_front",
    "load_evaluated",
    "load_history",
    "load_selected",
]
