"""ScoreTables: the exact Intra-d / Inter-d decomposition against prdc on pooled samples."""

from __future__ import annotations

import contextlib
import io
import itertools

import numpy as np
import prdc
import pytest

from ensemble.scoring.knn import d_score
from ensemble.scoring.tables import ScoreTables

K = 5
DIM = 8
N_REAL = 157  # not a multiple of 8: exercises the bit packing of ``hits``
# names deliberately not in alphabetical order (first-name mode must sort them itself)
SIZES = {"zeta@20": 70, "alpha@10": 55, "m-gan@5": 90, "beta@40": 64, "c": 48}


def reference_d(real: np.ndarray, fake: np.ndarray) -> tuple[float, float, float]:
    """(density, coverage, d) by prdc.compute_prdc (print silenced)."""
    with contextlib.redirect_stdout(io.StringIO()):
        r = prdc.compute_prdc(real, fake, K)
    dens, cov = float(r["density"]), float(r["coverage"])
    return dens, cov, float(d_score(dens, cov))


@pytest.fixture(scope="module")
def features():
    rng = np.random.default_rng(0)
    real = rng.standard_normal((N_REAL, DIM)).astype(np.float32)
    fakes = {}
    for i, (name, n) in enumerate(SIZES.items()):
        shift = np.zeros(DIM)
        shift[i % DIM] = 0.6 * i  # each generator covers a different part of the real set
        f = rng.standard_normal((n, DIM)) * (0.6 + 0.15 * i) + shift
        fakes[name] = f.astype(np.float32)
    fakes["m-gan@5"][:20] = real[:20]  # exact copies of real points: ties at distance 0
    fakes["c"][10:20] = fakes["c"][:10]  # duplicates inside one generator
    return real, fakes


@pytest.fixture(scope="module")
def tables(features):
    real, fakes = features
    return ScoreTables.from_features(real, fakes, k=K, progress=False)


@pytest.fixture(scope="module")
def directed_ref(features):
    """d(S_g, S_h) by prdc with S_g as the reference set, for every ordered pair."""
    _, fakes = features
    names = list(fakes)
    out = np.full((len(names), len(names)), np.nan)
    for (g, a), (h, b) in itertools.permutations(enumerate(names), 2):
        out[g, h] = reference_d(fakes[a], fakes[b])[2]
    return out


def random_masks(p: int, n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    masks = rng.random((n, p)) < rng.uniform(0.2, 0.9, (n, 1))
    return np.concatenate([masks, np.ones((1, p), bool), np.eye(p, dtype=bool)[:2]])


# ---------------------------------------------------------------------------- values
def test_per_generator_scores_match_prdc(tables, features):
    real, fakes = features
    assert tables.names == list(fakes)
    assert tables.n_real == N_REAL and tables.k == K
    np.testing.assert_array_equal(tables.n_fake, list(SIZES.values()))
    for g, name in enumerate(tables.names):
        dens, cov, d = reference_d(real, fakes[name])
        assert tables.density[g] == pytest.approx(dens, abs=1e-12)
        assert tables.coverage[g] == pytest.approx(cov, abs=1e-12)
        assert tables.d[g] == pytest.approx(d, abs=1e-12)
        assert tables.counts[g] == round(dens * K * SIZES[name])
        assert tables.hits[:, g].sum() == round(cov * N_REAL)
    assert 0.05 < tables.coverage.min() and tables.coverage.max() < 0.99  # a non-trivial case


def test_intra_d_equals_prdc_on_pooled_samples(tables, features):
    real, fakes = features
    masks = random_masks(len(fakes), 10, seed=1)
    intra = tables.intra_d(masks)
    dens, cov = tables.density_coverage(masks)
    assert intra.shape == dens.shape == cov.shape == (len(masks),)
    for i, m in enumerate(masks):
        pooled = np.concatenate([fakes[n] for n, on in zip(tables.names, m, strict=True) if on])
        ref_dens, ref_cov, ref_d = reference_d(real, pooled)
        assert dens[i] == pytest.approx(ref_dens, abs=1e-9)
        assert cov[i] == pytest.approx(ref_cov, abs=1e-9)
        assert intra[i] == pytest.approx(ref_d, abs=1e-9)
        assert tables.intra_d(m) == pytest.approx(ref_d, abs=1e-9)


def test_pairwise_matches_prdc(tables, directed_ref):
    off = ~np.eye(len(tables.names), dtype=bool)
    np.testing.assert_allclose(tables.pairwise_directed[off], directed_ref[off], rtol=0, atol=1e-12)
    np.testing.assert_allclose(tables.pairwise[off], (0.5 * (directed_ref + directed_ref.T))[off],
                               rtol=0, atol=1e-12)
    assert np.isnan(np.diag(tables.pairwise)).all()
    assert tables.meta["inter_mode"] == "symmetric"
    # the case is asymmetric enough for the fold to matter
    assert np.nanmax(np.abs(directed_ref - directed_ref.T)) > 0.05


def test_inter_d_symmetric_equals_mean_over_pairs(tables, directed_ref):
    masks = random_masks(len(tables.names), 12, seed=2)
    inter = tables.inter_d(masks)
    for i, m in enumerate(masks):
        members = np.flatnonzero(m)
        if len(members) < 2:
            assert np.isnan(inter[i])
            continue
        ref = np.mean([0.5 * (directed_ref[g, h] + directed_ref[h, g])
                       for g, h in itertools.combinations(members, 2)])
        assert inter[i] == pytest.approx(ref, abs=1e-9)
        assert tables.inter_d(m) == pytest.approx(ref, abs=1e-9)


def test_inter_d_first_name_mode(features, directed_ref):
    real, fakes = features
    t = ScoreTables.from_features(real, fakes, k=K, inter_mode="first-name", progress=False)
    assert t.meta["inter_mode"] == "first-name"
    names = t.names
    for i, j in itertools.combinations(range(len(names)), 2):
        ref, other = (i, j) if names[i] < names[j] else (j, i)
        assert t.pairwise[i, j] == t.pairwise[j, i] == pytest.approx(directed_ref[ref, other], abs=1e-12)
    for m in random_masks(len(names), 8, seed=3):
        members = np.flatnonzero(m)
        if len(members) < 2:
            continue
        expected = np.mean([directed_ref[min(g, h, key=names.__getitem__), max(g, h, key=names.__getitem__)]
                            for g, h in itertools.combinations(members, 2)])
        assert t.inter_d(m) == pytest.approx(expected, abs=1e-9)


def test_population_equals_row_by_row(tables):
    masks = random_masks(len(tables.names), 30, seed=4)
    masks = np.concatenate([masks, np.zeros((1, len(tables.names)), bool)])
    intra, inter = tables.intra_d(masks), tables.inter_d(masks)
    dens, cov = tables.density_coverage(masks)
    for i, m in enumerate(masks):
        np.testing.assert_equal(intra[i], tables.intra_d(m))
        np.testing.assert_equal(inter[i], tables.inter_d(m))
        np.testing.assert_equal((dens[i], cov[i]), tables.density_coverage(m))
    # 0/1 integer masks are accepted and mean the same
    np.testing.assert_array_equal(tables.intra_d(masks.astype(int)), intra)


def test_empty_and_single_member_masks(tables):
    p = len(tables.names)
    empty = np.zeros(p, bool)
    assert np.isnan(tables.intra_d(empty))
    assert np.isnan(tables.inter_d(empty))
    one = np.eye(p, dtype=bool)[2]
    assert tables.intra_d(one) == pytest.approx(tables.d[2], abs=1e-12)
    assert np.isnan(tables.inter_d(one))
    two = np.eye(p, dtype=bool)[1] | one
    assert tables.inter_d(two) == pytest.approx(tables.pairwise[1, 2], abs=1e-12)


def test_mask_errors(tables):
    p = len(tables.names)
    with pytest.raises(ValueError, match="mask has 3 entries"):
        tables.intra_d(np.ones(3, bool))
    with pytest.raises(ValueError, match=f"mask has {p + 1} entries"):
        tables.inter_d(np.ones((4, p + 1), bool))
    with pytest.raises(ValueError, match="boolean"):
        tables.intra_d(np.full(p, 2))
    with pytest.raises(ValueError, match="not in the score tables"):
        tables.mask_of(["no-such-generator"])
    np.testing.assert_array_equal(tables.mask_of(["c", "zeta@20"]), [1, 0, 0, 0, 1])


# ---------------------------------------------------------------------------- views and files
def test_subset_equals_tables_built_on_the_subset(tables, features):
    real, fakes = features
    names = ["c", "alpha@10", "m-gan@5"]
    sub = tables.subset(names)
    direct = ScoreTables.from_features(real, {n: fakes[n] for n in names}, k=K, progress=False)
    assert sub.names == names
    for field in ("counts", "n_fake", "hits", "density", "coverage", "d", "pairwise", "pairwise_directed"):
        np.testing.assert_array_equal(getattr(sub, field), getattr(direct, field), err_msg=field)
    m = np.array([True, False, True])
    assert sub.intra_d(m) == tables.intra_d(tables.mask_of(["c", "m-gan@5"]))
    assert sub.inter_d(m) == tables.inter_d(tables.mask_of(["c", "m-gan@5"]))


def test_summary_sorted_by_d(tables):
    s = tables.summary()
    assert list(s.columns) == ["name", "n_fake", "density", "coverage", "d", "degenerate"]
    assert sorted(s["name"]) == sorted(tables.names)
    assert (np.diff(s["d"].to_numpy()) <= 0).all()
    assert s.iloc[0]["name"] == tables.names[int(np.argmax(tables.d))]


def _assert_tables_equal(a: ScoreTables, b: ScoreTables) -> None:
    assert a.names == b.names and a.k == b.k and a.n_real == b.n_real and a.meta == b.meta
    for field in ("counts", "n_fake", "hits", "density", "coverage", "d", "pairwise", "pairwise_directed"):
        x, y = getattr(a, field), getattr(b, field)
        assert x.dtype == y.dtype, field
        np.testing.assert_array_equal(x, y, err_msg=field)
    assert list(a.by_class) == list(b.by_class)
    for c in a.by_class:
        _assert_tables_equal(a.by_class[c], b.by_class[c])


def test_save_load_round_trip_with_by_class(features, tmp_path):
    real, fakes = features
    t = ScoreTables.from_features(real, fakes, k=K, meta={"dataset": "toy", "seed": 3}, progress=False)
    # per-class tables: the first 77 / last 80 real points against halves of every generator
    t.by_class["normal"] = ScoreTables.from_features(
        real[:77], {n: f[: len(f) // 2] for n, f in fakes.items()}, k=K, meta={"class": "normal"},
        progress=False)
    t.by_class["pneumonia"] = ScoreTables.from_features(
        real[77:], {n: f[len(f) // 2:] for n, f in fakes.items()}, k=K, inter_mode="first-name",
        progress=False)
    path = t.save(tmp_path / "tables.npz")
    assert path.is_file() and not list(tmp_path.glob("*.tmp*"))
    back = ScoreTables.load(path)
    _assert_tables_equal(t, back)
    masks = random_masks(len(t.names), 6, seed=5)
    np.testing.assert_array_equal(back.intra_d(masks), t.intra_d(masks))
    np.testing.assert_array_equal(back.inter_d(masks), t.inter_d(masks))
    # subset keeps the per-class tables in step
    sub = back.subset(["beta@40", "c"])
    assert sub.by_class["normal"].names == ["beta@40", "c"]
    np.testing.assert_array_equal(sub.by_class["pneumonia"].hits,
                                  t.by_class["pneumonia"].hits[:, [3, 4]])


def test_load_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="not found"):
        ScoreTables.load(tmp_path / "missing.npz")
    other = tmp_path / "other.npz"
    np.savez(other, x=np.arange(3))
    with pytest.raises(ValueError, match="not a score-tables file"):
        ScoreTables.load(other)
    junk = tmp_path / "junk.npz"
    junk.write_bytes(b"this is not an npz archive")
    with pytest.raises(ValueError, match="junk.npz.* is not an .npz archive"):
        ScoreTables.load(junk)


# ---------------------------------------------------------------------------- bad input
def test_bad_inputs(features):
    real, fakes = features
    two = {n: fakes[n] for n in ["alpha@10", "c"]}

    def build(r=real, f=two, **kw):
        return ScoreTables.from_features(r, f, progress=False, **kw)

    bad = real.copy()
    bad[5, 1] = np.nan
    with pytest.raises(ValueError, match="real features contains NaN"):
        build(r=bad)
    with pytest.raises(ValueError, match="'c' contains NaN or inf"):
        build(f={**two, "c": np.where(np.arange(DIM) == 0, np.inf, two["c"])})
    with pytest.raises(ValueError, match="'c' have dimension 7"):
        build(f={**two, "c": two["c"][:, :7]})
    with pytest.raises(ValueError, match="at least 6"):
        build(r=real[:K])
    with pytest.raises(ValueError, match="'c' has 0 rows"):
        build(f={**two, "c": np.zeros((0, DIM), np.float32)})
    with pytest.raises(ValueError, match="Inter-d needs at least k\\+1"):
        build(f={**two, "c": two["c"][:K]})
    with pytest.raises(ValueError, match="non-empty dict"):
        build(f=list(two.values()))
    with pytest.raises(ValueError, match="non-empty dict"):
        build(f={})
    with pytest.raises(ValueError, match="unknown inter_mode"):
        build(inter_mode="sym")
    for k in (0, -1, True, 2.5):
        with pytest.raises(ValueError, match="k must be a positive integer"):
            build(k=k)


@pytest.mark.parametrize("k", ["5", None])
def test_non_integer_k_is_a_value_error(features, k):
    real, fakes = features
    with pytest.raises(ValueError, match="k must be a positive integer"):
        ScoreTables.from_features(real, {"c": fakes["c"]}, k=k, progress=False)


def test_tables_without_pairwise(features):
    real, fakes = features
    two = {"alpha@10": fakes["alpha@10"], "c": fakes["c"][:3]}  # too few for Inter-d: fine here
    t = ScoreTables.from_features(real, two, k=K, pairwise=False, progress=False)
    assert t.intra_d(np.array([True, True])) == pytest.approx(
        reference_d(real, np.concatenate(list(two.values())))[2], abs=1e-9)
    with pytest.raises(ValueError, match="pairwise=False"):
        t.inter_d(np.array([True, True]))


@pytest.mark.parametrize("backend", [None, "local"])
def test_tables_identical_with_the_block_kernel(features, tables, monkeypatch, backend):
    """Table builds on a CPU use the one-pass C block kernel: same tables to the bit as torch ops."""
    import ensemble.scoring.knn as m

    real, fakes = features
    calls = []
    real_sums = m._block_sums

    def spy(flags, fn, *args):
        calls.append(fn is not None)
        return real_sums(flags, fn, *args)

    monkeypatch.setattr(m, "_block_sums", spy)
    monkeypatch.setattr(m, "_KERNEL_MIN_ELEMS", 0)  # the kernel even for these small sets
    with_kernel = ScoreTables.from_features(real, fakes, k=K, progress=False, backend=backend)
    assert calls and all(calls)
    monkeypatch.setenv("GAN_ENSEMBLE_KERNEL", "0")
    monkeypatch.setattr(m, "_KERNEL_MIN_ELEMS", 1 << 62)  # torch ops only
    calls.clear()
    _assert_tables_equal(ScoreTables.from_features(real, fakes, k=K, progress=False, backend=backend),
                         with_kernel)
    assert calls and not any(calls)
    _assert_tables_equal(with_kernel, tables)


def test_label_agreement_column_round_trips_and_is_checked(features, tmp_path):
    """Issue 17: tables carry each generator's label agreement (summary, subset, file); bad values
    and a table missing a generator are refused."""
    import pandas as pd

    real, fakes = features
    t = ScoreTables.from_features(real, fakes, k=K, progress=False)
    assert t.label_agreement is None and "label_agreement" not in t.summary().columns
    values = {n: 0.1 * (i + 1) for i, n in enumerate(reversed(t.names))}
    table = pd.DataFrame({"name": list(values), "label_agreement": list(values.values())})
    table.attrs.update({"val_accuracy": 0.9, "epochs": 3})
    t.add_label_agreement(table)
    assert t.label_agreement.tolist() == [values[n] for n in t.names]
    assert t.meta["label_fidelity"] == {"val_accuracy": 0.9, "epochs": 3}
    s = t.summary().set_index("name")
    assert list(s.columns) == ["n_fake", "density", "coverage", "d", "label_agreement", "degenerate"]
    assert s["label_agreement"].to_dict() == pytest.approx(values)
    assert t.subset(["c", "zeta@20"]).label_agreement.tolist() == [values["c"], values["zeta@20"]]
    back = ScoreTables.load(t.save(tmp_path / "t.npz"))
    np.testing.assert_array_equal(back.label_agreement, t.label_agreement)
    assert back.meta["label_fidelity"]["val_accuracy"] == 0.9
    with pytest.raises(ValueError, match="lacks generator"):
        t.add_label_agreement(table.iloc[1:])
    with pytest.raises(ValueError, match=r"shares in \[0, 1\]"):
        t.add_label_agreement(table.assign(label_agreement=1.5))
    assert t.label_agreement.tolist() == [values[n] for n in t.names]  # unchanged by the refusals
