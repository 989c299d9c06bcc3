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


# Every public name of the modules below (their ``__all__``), in this order.
from ensemble.search import (
    algorithms,
    archive,
    estimator,
    indicators,
    objectives,
    operators,
    outputs,
    result,
    rules,
    validated,
)
from ensemble.search.algorithms import *  # noqa: F403
from ensemble.search.archive import *  # noqa: F403
from ensemble.search.estimator import *  # noqa: F403
from ensemble.search.indicators import *  # noqa: F403
from ensemble.search.objectives import *  # noqa: F403
from ensemble.search.operators import *  # noqa: F403
from ensemble.search.outputs import *  # noqa: F403
from ensemble.search.result import *  # noqa: F403
from ensemble.search.rules import *  # noqa: F403
from ensemble.search.validated import *  # noqa: F403

__all__ = [name for module in (estimator, archive, operators, algorithms, objectives, rules, validated, indicators, result, outputs) for name in module.__all__]
