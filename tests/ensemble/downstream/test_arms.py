"""Arms: the standard comparison from a catalog, and the study's arm choices (never on test)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from ensemble.downstream.arms import (
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
from ensemble.search.result import Ensemble


def test_build_arms_from_catalog(toy_catalog, pneumonia_small):
    cat = toy_catalog
    names = [f"toy{s}@0" for s in range(4)]
    ens = Ensemble(names[:2], intra_d=0.9, inter_d=0.1, rule="max-intra")
    arms = build_arms(cat, ens, pneumonia_small, n_per_class=10, n_random=2, seed=0, device="cpu")
    assert list(arms)[:2] == ["real", "G*"]
    assert {f"single:{n}" for n in names} <= set(arms)
    assert "naive (all pooled)" in arms
    randoms = [a for a in arms if a.startswith("random-ensemble-")]
    assert len(randoms) == 2
    for a in randoms:
        assert len(arms[a].meta["members"]) == 2 and set(arms[a].meta["members"]) != set(names[:2])
    assert len(arms["real"]) == len(pneumonia_small)
    g = arms["G*"]
    assert len(g) == 40 and g.samples_per_epoch == len(pneumonia_small) and g.sampler == "member"
    assert np.bincount(g.groups).tolist() == [20, 20]
    assert np.bincount(g.labels).tolist() == [20, 20]
    assert len(arms["naive (all pooled)"]) == 80
    # A member's images are the same in every arm it belongs to (sampled once).
    single = arms[f"single:{names[0]}"]
    np.testing.assert_array_equal(g.images[g.groups == 0], single.images)

    without = build_arms(cat, ens, pneumonia_small, n_per_class=10, n_random=2, seed=0, device="cpu",
                         singles=False)
    assert not any(a.startswith("single:") for a in without)
    assert [a for a in without if a.startswith("random-")] == randoms  # same draws without singles
    for a in randoms:
        assert without[a].meta["members"] == arms[a].meta["members"]


def test_random_ensembles_exclude_gstar_and_are_seeded():
    pool = [f"g{i}" for i in range(5)]
    gstar = ("g1", "g3")
    sets = random_ensembles(pool, 2, 20, seed=7, exclude=[gstar])
    assert len(sets) == math.comb(5, 2) - 1  # every other pair, each once
    assert frozenset(gstar) not in {frozenset(s) for s in sets}
    assert len({frozenset(s) for s in sets}) == len(sets)
    assert all(list(s) == sorted(s, key=pool.index) for s in sets)  # members in pool order
    assert random_ensembles(pool, 2, 3, seed=7, exclude=[gstar]) == sets[:3]
    assert random_ensembles(pool, 2, 3, seed=8, exclude=[gstar]) != sets[:3]
    # the draw: rng.choice(len(pool), size, replace=False), redrawn when excluded or seen
    rng = np.random.default_rng(11)
    first = tuple(pool[j] for j in np.sort(rng.choice(5, 3, replace=False)))
    assert random_ensembles(pool, 3, 1, seed=11) == [first]
    assert random_ensembles(pool, 5, 4, seed=0, exclude=[pool]) == []
    with pytest.raises(ValueError, match="cannot draw"):
        random_ensembles(pool, 6, 1, seed=0)


def test_sample_singles_is_a_seeded_subset_in_order():
    names = [f"g{i}" for i in range(10)]
    assert sample_singles(names, None, seed=0) == names
    assert sample_singles(names, 12, seed=0) == names
    pick = sample_singles(names, 4, seed=3)
    assert len(pick) == 4 and pick == [n for n in names if n in pick]
    assert sample_singles(names, 4, seed=3) == pick and sample_singles(names, 4, seed=4) != pick


def test_best_single_by_score_and_by_validation_never_by_test():
    class Tables:
        names = ["a", "b", "c"]
        d = np.array([0.2, 0.7, 0.7])

    assert best_single_by_score(Tables()) == "b"  # ties: first in table order
    stats = pd.DataFrame({"name": ["c", "a", "b"], "val_g_mean": [0.5, 0.8, 0.8],
                          "test_g_mean": [0.9, 0.1, 0.1]})
    assert best_single_by_validation(stats) == "a"  # ties: first name
    with pytest.raises(ValueError, match="validation split"):
        best_single_by_validation(stats, "test_g_mean")
    with pytest.raises(ValueError, match="no single"):
        best_single_by_validation(stats.iloc[:0])


def test_arm_ids_depend_on_members_only():
    a = Arm("G* (knee, random)", "gstar", ("x@1", "y@2"))
    b = Arm("random |E|=2 #0", "random", ("y@2", "x@1"))
    assert a.id == b.id and len(a.id) == 16 and Arm("real", "real").id == "real"
    assert Arm("single: x@1", "single", ("x@1",)).id != a.id
    with pytest.raises(ValueError, match="unknown arm kind"):
        Arm("x", "best", ("a",))
    with pytest.raises(ValueError, match="at least one member"):
        Arm("x", "single", ())
    assert [arm_kind(s) for s in ("single:a", "random-ensemble-0", "G*")] == ["single", "random", "arm"]


def test_equal_samples_arm_has_as_many_images_as_gstar(toy_catalog):
    arm = equal_samples_arm(toy_catalog, "toy1@0", 3, n_per_class=10, seed=0, device="cpu",
                            samples_per_epoch=50)
    assert arm.name == EQUAL_SAMPLES_ARM and arm.meta == {"members": ["toy1@0"], "times": 3}
    assert np.bincount(arm.labels).tolist() == [30, 30]  # |G*| x n_per_class per class, one generator
    assert set(arm.groups.tolist()) == {0} and arm.samples_per_epoch == 50 and arm.sampler == "member"
    assert len(np.unique(arm.images.reshape(60, -1), axis=0)) == 60  # distinct images, not repeats
    with pytest.raises(ValueError, match="positive"):
        equal_samples_arm(toy_catalog, "toy1@0", 0, n_per_class=10, seed=0, device="cpu")
