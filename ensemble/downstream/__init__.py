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

from ensemble.downstream.arms import (
    ARM_KINDS,
    EQUAL_SAMPLES_ARM,
    Arm,
    arm_kind,
    best_single_by_score,
    best_single_by_validation,
    build_arms,
    equal_samples_arm,
    random_ensembles,
    sample_singles,
)
from ensemble.downstream.metrics import (
    METRICS,
    choose_threshold,
    classification_metrics,
    evaluate_classifier,
)
from ensemble.downstream.models import (
    CLASSIFIERS,
    ResNet18Cifar,
    SmallCNN,
    create_classifier,
    get_classifier,
    list_classifiers,
    register_classifier,
)
from ensemble.downstream.plots import plot_comparison, plot_metric_panels
from ensemble.downstream.protocol import (
    JOURNAL_COLUMNS,
    Journal,
    add_equal_samples_arm,
    best_single,
    compare,
    compare_groups,
    group_values,
    plan_runs,
    run_journaled,
    run_protocol,
    summarize,
    summarize_groups,
    train_arm,
)
from ensemble.downstream.sources import (
    SAMPLERS,
    SampleStore,
    TrainingSource,
    as_arrays,
    as_source,
    epoch_indices,
    real_splits,
    resize_images,
    slug,
)
from ensemble.downstream.statistics import ALPHA, holm, paired_test, verdict
from ensemble.downstream.training import (
    TrainedClassifier,
    class_weights,
    predict_proba,
    steps_per_epoch,
    to_input,
    train_classifier,
)

__all__ = [
    # models
    "SmallCNN",
    "ResNet18Cifar",
    "CLASSIFIERS",
    "register_classifier",
    "get_classifier",
    "list_classifiers",
    "create_classifier",
    # sources
    "SAMPLERS",
    "TrainingSource",
    "SampleStore",
    "as_source",
    "as_arrays",
    "epoch_indices",
    "resize_images",
    "real_splits",
    "slug",
    # training
    "TrainedClassifier",
    "train_classifier",
    "predict_proba",
    "to_input",
    "class_weights",
    "steps_per_epoch",
    # metrics
    "METRICS",
    "classification_metrics",
    "evaluate_classifier",
    "choose_threshold",
    # arms
    "ARM_KINDS",
    "Arm",
    "arm_kind",
    "build_arms",
    "random_ensembles",
    "sample_singles",
    "best_single_by_score",
    "best_single_by_validation",
    "EQUAL_SAMPLES_ARM",
    "equal_samples_arm",
    # protocol
    "run_protocol",
    "compare",
    "summarize",
    "best_single",
    "add_equal_samples_arm",
    "JOURNAL_COLUMNS",
    "Journal",
    "plan_runs",
    "train_arm",
    "run_journaled",
    "group_values",
    "summarize_groups",
    "compare_groups",
    # statistics
    "ALPHA",
    "paired_test",
    "holm",
    "verdict",
    # plots
    "plot_comparison",
    "plot_metric_panels",
]
