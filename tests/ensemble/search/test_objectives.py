"""Objectives as a registry: the published pair unchanged, class-intra-d exact against prdc,
coverage-overlap against a brute-force Jaccard, searches on any objective set, and degenerate
members kept out of G*."""

from __future__ import annotations

import inspect
import json
import logging
from itertools import combinations

import numpy as np
import pandas as pd
import pytest

import ensemble
from ensemble.cli import main
from ensemble.scoring.knn import d_score
from ensemble.scoring.tables import ScoreTables
from ensemble.search import (
    EnsembleSearch,
    get_objective,
    list_objectives,
    list_rules,
    load_front,
    load_selected,
    register_objective,
    resolve_objectives,
)
from ensemble.search.objectives import OBJECTIVES

K = 5


def _labelled(P: int = 6, n_per_class: int = 70, dim: int = 6, n_classes: int = 3, seed: int = 0,
              constant: bool = False):
    """Real points in ``n_classes`` Gaussian clusters; generators sample each class's cluster with
    their own shift and spread (some swap two classes' conditioning); optionally one generator
    whose every sample is the same far-away point (a collapsed, "black image" generator)."""
    rng = np.random.default_rng(seed)
    centers = rng.normal(0, 3.0, size=(n_classes, dim))
    y = np.repeat(np.arange(n_classes), n_per_class)
    real = centers[y] + rng.normal(0, 1.0, (len(y), dim))
    fakes, labels = {}, {}
    for g in range(P):
        n = int(rng.integers(60, 120))
        lab = rng.integers(0, n_classes, size=n)
        cond = lab if g % 3 else (lab + 1) % n_classes  # every third generator mislabels
        fakes[f"g{g}"] = (centers[cond] + rng.normal(0, rng.uniform(0.2, 0.6), dim)
                          + rng.normal(0, rng.uniform(0.6, 1.3), (n, dim))).astype(np.float32)
        labels[f"g{g}"] = lab
    if constant:
        fakes["black"] = np.full((90, dim), 25.0, np.float32)
        labels["black"] = rng.integers(0, n_classes, size=90)
    return real.astype(np.float32), y, fakes, labels


@pytest.fixture(scope="module")
def labelled():
    real, y, fakes, labels = _labelled()
    tables = ScoreTables.from_features(real, fakes, k=K, real_labels=y, fake_labels=labels, progress=False)
    return real, y, fakes, labels, tables


@pytest.fixture(scope="module")
def with_constant():
    real, y, fakes, labels = _labelled(constant=True)
    return ScoreTables.from_features(real, fakes, k=K, real_labels=y, fake_labels=labels, progress=False)


def _all_masks(P: int) -> np.ndarray:
    codes = np.arange(1, 1 << P)
    return ((codes[:, None] >> np.arange(P)) & 1).astype(bool)


# ---------------------------------------------------------------------------- the registry
def test_registry_lists_the_built_ins_with_directions():
    assert {"intra-d", "inter-d", "class-intra-d", "coverage-overlap"} <= set(list_objectives())
    assert ensemble.list_objectives() == list_objectives()
    assert ensemble.get_objective("inter-d") is get_objective("inter-d")
    dirs = {n: get_objective(n).direction for n in ("intra-d", "inter-d", "class-intra-d", "coverage-overlap")}
    assert dirs == {"intra-d": "max", "inter-d": "min", "class-intra-d": "max", "coverage-overlap": "min"}
    assert get_objective("inter-d").needs_pairwise and not get_objective("coverage-overlap").needs_pairwise
    with pytest.raises(ValueError, match="known: .*coverage-overlap"):
        get_objective("no-such")


def test_resolve_objectives_checks_names():
    assert [o.name for o in resolve_objectives("class-intra-d,coverage-overlap")] == [
        "class-intra-d", "coverage-overlap"]
    with pytest.raises(ValueError, match="at least two"):
        resolve_objectives(["intra-d"])
    with pytest.raises(ValueError, match="repeat"):
        resolve_objectives(["intra-d", "intra-d"])
    with pytest.raises(ValueError, match="unknown objective"):
        resolve_objectives(["intra-d", "nope"])


def test_register_a_custom_objective_and_search_on_it(labelled):
    tables = labelled[-1]

    @register_objective("test-size", direction="min")
    def size(tables, masks):
        return np.atleast_2d(masks).sum(1).astype(float)

    try:
        assert get_objective("test-size")(tables, np.eye(6, dtype=bool)[:2]).tolist() == [1.0, 1.0]
        with pytest.raises(ValueError, match="already registered"):
            register_objective("test-size", size, direction="min")
        s = EnsembleSearch("exhaustive", objectives=("intra-d", "test-size")).fit(tables)
        assert list(s.front_.columns[:4]) == ["members", "size", "intra_d", "test_size"]
        assert (s.front_["test_size"] == s.front_["size"]).all()
        # a front of (fidelity up, size down): one point per size, fidelity rising with size
        assert s.front_["intra_d"].is_monotonic_decreasing and s.front_["size"].is_monotonic_decreasing
    finally:
        OBJECTIVES.remove("test-size")


# ---------------------------------------------------------------------------- the values
def test_default_objectives_are_the_tables_methods(labelled):
    tables = labelled[-1]
    X = _all_masks(tables.n_generators)
    np.testing.assert_array_equal(get_objective("intra-d")(tables, X), tables.intra_d(X))
    np.testing.assert_array_equal(get_objective("inter-d")(tables, X), tables.inter_d(X))


def test_class_intra_d_equals_prdc_per_class_on_the_pooled_samples(labelled):
    prdc = pytest.importorskip("prdc")
    real, y, fakes, labels, tables = labelled
    names = tables.names
    X = _all_masks(len(names))
    got = get_objective("class-intra-d")(tables, X)
    rng = np.random.default_rng(1)
    for row in rng.choice(len(X), size=12, replace=False):
        members = [names[j] for j in np.flatnonzero(X[row])]
        ds = []
        for c in np.unique(y):
            pooled = np.concatenate([fakes[m][labels[m] == c] for m in members])
            r = prdc.compute_prdc(real_features=real[y == c], fake_features=pooled, nearest_k=K)
            ds.append(d_score(r["density"], r["coverage"]))
        assert abs(got[row] - np.mean(ds)) < 1e-9, members


def test_class_intra_d_tells_mislabelled_generators_apart(labelled):
    tables = labelled[-1]
    one = np.eye(tables.n_generators, dtype=bool)
    cls = get_objective("class-intra-d")(tables, one)
    mislabelled = np.array([int(n[1:]) % 3 == 0 for n in tables.names])
    # Intra-d pools unlabelled samples and cannot see wrong conditioning; class-intra-d does
    assert cls[mislabelled].max() < cls[~mislabelled].min()


def _covered(real_c: np.ndarray, fake_c: np.ndarray) -> np.ndarray:
    d_rr = np.sqrt(((real_c[:, None].astype(np.float64) - real_c[None]) ** 2).sum(-1))
    radii = np.sort(d_rr, axis=1)[:, K]
    if len(fake_c) == 0:
        return np.zeros(len(real_c), bool)
    d_rf = np.sqrt(((real_c[:, None].astype(np.float64) - fake_c[None]) ** 2).sum(-1))
    return (d_rf < radii[:, None]).any(1)


def test_coverage_overlap_is_the_mean_jaccard_of_member_pairs_per_class(labelled):
    real, y, fakes, labels, tables = labelled
    names = tables.names
    hits = {(n, c): _covered(real[y == c], fakes[n][labels[n] == c]) for n in names for c in np.unique(y)}

    def jaccard(a, b):
        if not a.any() or not b.any():
            return 1.0
        return (a & b).sum() / (a | b).sum()

    X = _all_masks(len(names))
    got = get_objective("coverage-overlap")(tables, X)
    for row in np.flatnonzero(X.sum(1) >= 2)[::7]:
        members = [names[j] for j in np.flatnonzero(X[row])]
        want = np.mean([np.mean([jaccard(hits[g, c], hits[h, c]) for c in np.unique(y)])
                        for g, h in combinations(members, 2)])
        assert abs(got[row] - want) < 1e-12
    assert np.isnan(got[X.sum(1) == 1]).all()


def test_unlabelled_tables_give_one_class(labelled):
    real, y, fakes, labels, _ = labelled
    plain = ScoreTables.from_features(real, fakes, k=K, progress=False)
    X = _all_masks(len(fakes))
    assert not plain.has_labels
    np.testing.assert_array_equal(plain.class_intra_d(X), plain.intra_d(X))
    with pytest.raises(ValueError, match="built with labels"):
        EnsembleSearch("exhaustive", objectives=("class-intra-d", "inter-d")).fit(plain)


# ---------------------------------------------------------------------------- the search
def test_explicit_default_objectives_give_the_same_front(labelled):
    tables = labelled[-1]
    a = EnsembleSearch("exhaustive").fit(tables)
    b = EnsembleSearch("exhaustive", objectives=("intra-d", "inter-d")).fit(tables)
    pd.testing.assert_frame_equal(a.front_, b.front_)
    assert list(a.front_.columns) == ["members", "size", "intra_d", "inter_d"]
    e = a.select("knee")
    assert e.objectives == {"intra-d": e.intra_d, "inter-d": e.inter_d}
    assert e.meta["objectives"] == ["intra-d", "inter-d"]


def test_search_without_the_pair_table(labelled):
    real, y, fakes, labels, _ = labelled
    tables = ScoreTables.from_features(real, fakes, k=K, real_labels=y, fake_labels=labels,
                                       pairwise=False, progress=False)
    assert not tables.has_pairwise
    with pytest.raises(ValueError, match="pairwise"):
        EnsembleSearch("exhaustive").fit(tables)
    s = EnsembleSearch("exhaustive", objectives="class-intra-d,coverage-overlap").fit(tables)
    assert list(s.front_.columns) == ["members", "size", "class_intra_d", "coverage_overlap",
                                      "intra_d", "inter_d"]
    assert s.front_["inter_d"].isna().all() and s.front_["intra_d"].notna().all()
    assert s.front_["class_intra_d"].is_monotonic_decreasing
    X = np.stack([tables.mask_of(m) for m in s.front_["members"]])
    np.testing.assert_array_equal(s.front_["class_intra_d"].to_numpy(), tables.class_intra_d(X))
    for rule in _front_only_rules():
        e = s.select(rule)
        assert any(list(m) == e.members for m in s.front_["members"])
        assert set(e.objectives) == {"class-intra-d", "coverage-overlap"}
    # the exact front under the same objectives: nothing evaluated dominates a front point
    F = np.column_stack([-s.evaluated_["class_intra_d"], s.evaluated_["coverage_overlap"]])
    for f in np.column_stack([-s.front_["class_intra_d"], s.front_["coverage_overlap"]]):
        assert not ((F <= f).all(1) & (F < f).any(1)).any()
    assert 0 < s.hypervolume_ <= 1


def test_nsga2_handles_three_objectives_and_is_seeded(labelled):
    tables = labelled[-1]
    objs = ("class-intra-d", "inter-d", "coverage-overlap")
    a = EnsembleSearch(pop_size=16, n_gen=6, seed=2, objectives=objs).fit(tables)
    b = EnsembleSearch(pop_size=16, n_gen=6, seed=2, objectives=objs).fit(tables)
    pd.testing.assert_frame_equal(a.front_, b.front_)
    assert {"class_intra_d", "inter_d", "coverage_overlap"} <= set(a.front_.columns)
    assert a.front_objectives().shape == (len(a.front_), 3)
    assert 0 < a.hypervolume_ <= 1


def test_search_outputs_and_cli_name_the_objectives(labelled, tmp_path, capsys):
    tables = labelled[-1]
    path = tables.save(tmp_path / "t.npz")
    rc = main(["search", "--tables", str(path), "--out", str(tmp_path / "s"), "--algorithm", "exhaustive",
               "--objectives", "class-intra-d,coverage-overlap", "--rule", "knee"])
    assert rc == 0
    front = load_front(tmp_path / "s")
    assert {"class_intra_d", "coverage_overlap", "intra_d", "inter_d"} <= set(front.columns)
    sel = json.loads((tmp_path / "s" / "selected.json").read_text())
    assert sel["meta"]["objectives"] == ["class-intra-d", "coverage-overlap"]
    assert set(sel["objectives"]) == {"class-intra-d", "coverage-overlap"}
    assert load_selected(tmp_path / "s").objectives == sel["objectives"]
    assert "objectives: class-intra-d" in capsys.readouterr().out
    assert main(["search", "--tables", str(path), "--out", str(tmp_path / "x"),
                 "--objectives", "intra-d"]) == 2


# ---------------------------------------------------------------------------- degenerate members
def _front_only_rules() -> list[str]:
    """Rules that pick from the front alone (every parameter but the front has a default).

    A rule that needs a context (``validated``) picks among front members too: a generator that
    is on no front point can never be its choice either.
    """
    from ensemble.search import get_rule, rule_needs_context

    out = []
    for r in list_rules():
        if rule_needs_context(r):
            continue

        params = list(inspect.signature(get_rule(r)).parameters.values())[1:]
        if all(p.default is not inspect.Parameter.empty or p.kind in (p.VAR_KEYWORD, p.VAR_POSITIONAL)
               for p in params):
            out.append(r)
    return out


def test_constant_generator_is_flagged_saved_and_summarised(with_constant, tmp_path, caplog):
    t = with_constant
    assert t.degenerate_names == ["black"]
    assert t.meta["degenerate"]["black"].startswith("collapsed")
    s = t.summary().set_index("name")["degenerate"]
    assert bool(s["black"]) and not s.drop("black").any()
    with caplog.at_level(logging.WARNING):
        back = ScoreTables.load(t.save(tmp_path / "t.npz"))
    assert "'black' is degenerate" in caplog.text
    np.testing.assert_array_equal(back.degenerate, t.degenerate)
    np.testing.assert_array_equal(back.class_hits, t.class_hits)
    np.testing.assert_array_equal(back.class_counts, t.class_counts)
    np.testing.assert_array_equal(back.real_labels, t.real_labels)
    sub = t.subset(["g1", "black", "g2"])
    assert sub.degenerate.tolist() == [False, True, False]
    X = _all_masks(3)
    full = np.zeros((len(X), t.n_generators), bool)
    full[:, [t.names.index(n) for n in sub.names]] = X
    np.testing.assert_array_equal(sub.class_intra_d(X), t.class_intra_d(full))
    # a file from before degenerate flags and labels: loads with none flagged and no labels
    with np.load(tmp_path / "t.npz") as z:
        old = {k: z[k] for k in z.files if k == "meta_json" or k in (
            "counts", "n_fake", "hits", "density", "coverage", "d", "pairwise", "pairwise_directed")}
    np.savez(tmp_path / "old.npz", **old)
    legacy = ScoreTables.load(tmp_path / "old.npz")
    assert not legacy.degenerate.any() and not legacy.has_labels


def test_a_healthy_set_has_no_degenerate_member(labelled):
    assert labelled[-1].degenerate_names == []


@pytest.mark.parametrize("objectives", [
    ("intra-d", "inter-d"), ("class-intra-d", "coverage-overlap"), ("intra-d", "coverage-overlap"),
    ("class-intra-d", "inter-d"), ("intra-d", "inter-d", "coverage-overlap"),
])
def test_constant_generator_never_enters_g_star(with_constant, objectives):
    s = EnsembleSearch("exhaustive", objectives=objectives).fit(with_constant)
    assert s.excluded_ == ["black"] and "black" not in s.tables_names_
    # no front point holds it, so no rule (validated included: it picks among front points) can
    assert not any("black" in m for m in s.front_["members"])
    rules = _front_only_rules()
    assert {"max-fidelity", "knee", "asf", "smallest-within"} <= set(rules)
    for rule in rules:
        e = s.select(rule)
        assert "black" not in e.members, (rule, objectives)
        assert e.meta["degenerate_excluded"] == ["black"]


def test_keep_degenerate_searches_it_and_inter_d_rewards_it(with_constant):
    kept = EnsembleSearch("exhaustive", keep_degenerate=True).fit(with_constant)
    assert kept.excluded_ == [] and "black" in kept.tables_names_
    # the bug of issue 13: with Inter-d, the collapsed generator looks perfectly non-redundant
    assert any("black" in m for m in kept.front_["members"])


def test_degenerate_members_are_kept_when_too_few_others_remain(with_constant, caplog):
    tables = with_constant.subset(["g1", "black"])
    with caplog.at_level(logging.WARNING):
        s = EnsembleSearch("exhaustive").fit(tables)
    assert s.excluded_ == [] and s.tables_names_ == ["g1", "black"]
    assert "too few others remain" in caplog.text
