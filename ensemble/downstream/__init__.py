"""Downstream value of synthetic data: train a classifier on it, validate and test on real data.

The protocol (METHOD.md §5): a classifier trained from scratch (the reference uses a CIFAR-style
ResNet-18; :class:`SmallCNN` is a fast stand-in for quick runs), Adam (lr 1e-3, batch 64),
ReduceLROnPlateau (patience 5) and early stopping on the *real* validation loss, best-validation
weights restored, images scaled to [-1, 1]. For an ensemble, each training draw picks a member
uniformly and then one of its images, about |real train| draws per epoch. Test metrics on the real
test split: accuracy, precision, recall, specificity, F1, g-mean = sqrt(recall * specificity) and
ROC AUC (binary: positive class 1; multi-class: macro one-vs-rest), repeated over seeds.

Modules, one concept each:

- :mod:`~ensemble.downstream.models`: the classifiers and their registry;
- :mod:`~ensemble.downstream.sources`: an arm's training data and how an epoch draws from it;
- :mod:`~ensemble.downstream.training`: the training loop;
- :mod:`~ensemble.downstream.metrics`: test metrics;
- :mod:`~ensemble.downstream.arms`: which arms, and how each is chosen (never on test);
- :mod:`~ensemble.downstream.protocol`: in-memory and journaled (resumable) protocols, summaries;
- :mod:`~ensemble.downstream.statistics`: paired tests and Holm's adjustment;
- :mod:`~ensemble.downstream.plots`: figures.

:func:`build_arms` makes the standard comparison (real data, G*, every single generator, all
generators pooled, random ensembles of |G*| members), :func:`compare` runs it,
:func:`add_equal_samples_arm` adds the best single generator (chosen on validation) sampled with
|G*| times as many images, :func:`summarize` gives mean ± std per arm and :func:`plot_comparison`
draws it.

On small data (issue 13) set the budget in optimizer steps with a floor and a warm-up
(``steps`` / ``min_steps`` / ``warmup_steps`` of :func:`train_classifier`), weight the loss by the
real training class frequencies (``class_weight="real"``) and choose a binary decision threshold
on the real validation split (``threshold="val"``); the quickstart profiles do.
"""


# Every public name of the modules below (their ``__all__``), in this order.
from ensemble.downstream import (
    arms,
    metrics,
    models,
    plots,
    protocol,
    sources,
    statistics,
    training,
)
from ensemble.downstream.arms import *  # noqa: F403
from ensemble.downstream.metrics import *  # noqa: F403
from ensemble.downstream.models import *  # noqa: F403
from ensemble.downstream.plots import *  # noqa: F403
from ensemble.downstream.protocol import *  # noqa: F403
from ensemble.downstream.sources import *  # noqa: F403
from ensemble.downstream.statistics import *  # noqa: F403
from ensemble.downstream.training import *  # noqa: F403

__all__ = [name for module in (models, sources, training, metrics, arms, protocol, statistics, plots) for name in module.__all__]
