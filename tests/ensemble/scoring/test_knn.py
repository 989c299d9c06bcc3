"""ensemble.scoring.knn against the reference implementation (prdc 0.2) and plain numpy/scipy.

prdc decides every ``dist < radius`` on float32 distances; our blocked float32 pass plus exact
recomputation must reach the very same decisions, so counts are compared as integers.
"""

from __future__ import annotations

import contextlib
import io

import numpy as np
import prdc
import pytest
import torch
from prdc.prdc import compute_nearest_neighbour_distances, compute_pairwise_distance
from scipy import linalg

from ensemble.scoring.knn import (
    check_features,
    compare_sets,
    d_score,
    density_coverage,
    fake_counts_and_hits,
    fid,
    knn_radii,
)

K = 5


# ---------------------------------------------------------------------------- helpers
def reference_prdc(real: np.ndarray, fake: np.ndarray, k: int = K) -> dict[str, float]:
    """prdc.compute_prdc with its per-call print silenced."""
    with contextlib.redirect_stdout(io.StringIO()):
        return {key: float(v) for key, v in prdc.compute_prdc(real, fake, k).items()}


def reference_prdc_full_sort(real: np.ndarray, fake: np.ndarray, k: int = K) -> dict[str, float]:
    """compute_prdc on prdc's own distances, radii by a full sort.

    prdc's argpartition needs n >= k + 2; this variant also works at n = k + 1.
    """
    r_rad = np.sort(compute_pairwise_distance(real), axis=1)[:, k]
    f_rad = np.sort(compute_pairwise_distance(fake), axis=1)[:, k]
    d = compute_pairwise_distance(real, fake)
    inside = d < r_rad[:, None]
    return {
        "precision": float(inside.any(0).mean()),
        "recall": float((d < f_rad[None, :]).any(1).mean()),
        "density": float(inside.sum(0).mean() / k),
        "coverage": float((d.min(1) < r_rad).mean()),
    }


def as_counts(res: dict, n_real: int, n_fake: int, k: int = K) -> dict[str, int]:
    """Ratios back to the integer counts they are made of (each must be an integer)."""
    raw = {
        "density": res["density"] * k * n_fake,
        "coverage": res["coverage"] * n_real,
        "precision": res["precision"] * n_fake,
        "recall": res["recall"] * n_real,
    }
    for name, v in raw.items():
        assert abs(v - round(v)) < 1e-6, f"{name} = {v} is not a count"
    return {name: int(round(v)) for name, v in raw.items()}


def assert_same_as_prdc(ours: dict, ref: dict, n_real: int, n_fake: int, k: int = K) -> None:
    assert as_counts(ours, n_real, n_fake, k) == as_counts(ref, n_real, n_fake, k)
    for key in ("precision", "recall", "density", "coverage"):
        assert ours[key] == pytest.approx(ref[key], rel=1e-6, abs=1e-12), key
    assert ours["d"] == pytest.approx(d_score(ref["density"], ref["coverage"]), rel=1e-6, abs=1e-12)


def relu_features(rng: np.random.Generator, n: int, dim: int, offset: float = 0.0,
                  mix: np.ndarray | None = None) -> np.ndarray:
    """Non-negative, correlated features like pooled ReLU activations; ``offset`` grows the norms."""
    if mix is None:
        mix = rng.standard_normal((dim, dim)) / np.sqrt(dim)
    return np.maximum(rng.standard_normal((n, dim)) @ mix + offset, 0.0).astype(np.float32)


def naive_float32_radii(x: np.ndarray, k: int = K) -> np.ndarray:
    """k-NN radii from a plain float32 |a|² + |b|² − 2ab (what a careless GPU version would do)."""
    t = torch.from_numpy(x)
    sq = (t * t).sum(1)
    d2 = sq[:, None] + sq[None, :] - 2.0 * t @ t.T
    return d2.clamp_min(0).sqrt().sort(dim=1).values[:, k].numpy()


def _case(name: str) -> tuple[np.ndarray, np.ndarray, dict]:
    """Named (real, fake, kwargs) inputs; every one seeded."""
    rng = np.random.default_rng(sum(map(ord, name)))
    if name == "gauss N!=M":
        return (rng.standard_normal((300, 16)).astype(np.float32),
                (rng.standard_normal((220, 16)) * 1.2 + 0.3).astype(np.float32), {})
    if name == "relu D=512 large offset":
        mix = rng.standard_normal((512, 512)) / np.sqrt(512)
        return (relu_features(rng, 260, 512, 50.0, mix), relu_features(rng, 200, 512, 50.2, mix), {})
    if name == "relu D=512 large offset, small blocks":
        mix = rng.standard_normal((512, 512)) / np.sqrt(512)
        return (relu_features(rng, 120, 512, 50.0, mix), relu_features(rng, 130, 512, 50.0, mix),
                {"block_elems": 1300})  # 10-13 rows a block: 10+ blocks per pass
    if name == "D=1":
        return (rng.standard_normal((200, 1)).astype(np.float32),
                rng.standard_normal((150, 1)).astype(np.float32), {})
    if name == "duplicates":
        real = rng.standard_normal((200, 8)).astype(np.float32)
        real[150:180] = real[:30]  # duplicates inside real (some radii may become 0)
        real[180:] = real[0]  # one point 21 times: radius 0
        fake = np.concatenate([real[:60], real[190:], rng.standard_normal((90, 8)).astype(np.float32)])
        return real, fake, {}
    if name == "duplicates, small blocks":
        real, fake, _ = _case("duplicates")
        return real, fake, {"block_elems": 97}
    if name == "small N=k+2":
        return (rng.standard_normal((K + 2, 4)).astype(np.float32),
                rng.standard_normal((K + 2, 4)).astype(np.float32), {})
    if name == "k=1":
        return (rng.standard_normal((80, 3)).astype(np.float32),
                rng.standard_normal((60, 3)).astype(np.float32), {"k": 1})
    if name == "k=10 fake far away":
        return (rng.standard_normal((100, 6)).astype(np.float32),
                (rng.standard_normal((90, 6)) + 3.0).astype(np.float32), {"k": 10})
    raise KeyError(name)


CASES = [
    "gauss N!=M",
    "relu D=512 large offset",
    "relu D=512 large offset, small blocks",
    "D=1",
    "duplicates",
    "duplicates, small blocks",
    "small N=k+2",
    "k=1",
    "k=10 fake far away",
]


# ---------------------------------------------------------------------------- density/coverage
@pytest.mark.parametrize("name", CASES)
def test_density_coverage_equals_prdc(name):
    real, fake, kw = _case(name)
    k = kw.pop("k", K)
    ours = density_coverage(real=real, fake=fake, k=k, **kw)
    ref = reference_prdc(real, fake, k)
    assert_same_as_prdc(ours, ref, len(real), len(fake), k)


def test_large_offsets_defeat_naive_float32():
    """The large-offset case is a real test: plain float32 distances get the radii wrong there."""
    real, _, _ = _case("relu D=512 large offset")
    ref = compute_nearest_neighbour_distances(real, K)
    assert (naive_float32_radii(real) != ref).mean() > 0.5
    np.testing.assert_array_equal(knn_radii(real, K), ref)


def test_small_n_equal_k_plus_one():
    """N = M = k+1 (each point's k-th neighbour is the farthest point); prdc itself needs k+2."""
    rng = np.random.default_rng(11)
    real = rng.standard_normal((K + 1, 3)).astype(np.float32)
    fake = (rng.standard_normal((K + 1, 3)) * 0.5).astype(np.float32)
    ours = density_coverage(real=real, fake=fake, k=K)
    assert_same_as_prdc(ours, reference_prdc_full_sort(real, fake), K + 1, K + 1)
    expected = np.sort(compute_pairwise_distance(real), axis=1)[:, K]
    np.testing.assert_array_equal(knn_radii(real, K), expected)


def test_float64_input():
    """float64 features are used as float32 (what prdc compares for float32 input)."""
    rng = np.random.default_rng(5)
    real = rng.standard_normal((300, 32)) * 5 + 10
    fake = rng.standard_normal((200, 32)) * 5 + 10
    ours = density_coverage(real=real, fake=fake)
    assert_same_as_prdc(ours, reference_prdc(real.astype(np.float32), fake.astype(np.float32)), 300, 200)
    # prdc run in float64 decides the same pairs on generic data
    assert as_counts(ours, 300, 200) == as_counts(reference_prdc(real, fake), 300, 200)


def test_reused_radii_and_no_precision_recall():
    rng = np.random.default_rng(6)
    real = rng.standard_normal((150, 10)).astype(np.float32)
    fake = (rng.standard_normal((120, 10)) + 0.4).astype(np.float32)
    full = density_coverage(real=real, fake=fake)
    radii = knn_radii(real, K)
    again = density_coverage(real=real, fake=fake, real_radii=radii)
    assert again == full
    dc = density_coverage(real=real, fake=fake, real_radii=radii, precision_recall=False)
    assert np.isnan(dc["recall"])
    assert {key: dc[key] for key in ("precision", "density", "coverage", "d")} == {
        key: full[key] for key in ("precision", "density", "coverage", "d")}
    # recall is not needed, so a fake set smaller than k+1 is fine
    small = density_coverage(real=real, fake=fake[:3], precision_recall=False)
    ref = reference_prdc_full_sort(real, np.concatenate([fake[:3]] * 3))  # same balls, 3x the samples
    assert small["coverage"] == pytest.approx(ref["coverage"])
    assert small["density"] == pytest.approx(ref["density"])


def test_result_does_not_depend_on_matmul_precision():
    """TF32 / bf16 matmuls (allowed by this global switch on GPUs) must not change any decision."""
    real, fake, _ = _case("relu D=512 large offset")
    old = torch.get_float32_matmul_precision()
    try:
        torch.set_float32_matmul_precision("medium")
        ours = density_coverage(real=real, fake=fake)
        radii = knn_radii(real, K)
    finally:
        torch.set_float32_matmul_precision(old)
    assert_same_as_prdc(ours, reference_prdc(real, fake), len(real), len(fake))
    np.testing.assert_array_equal(radii, compute_nearest_neighbour_distances(real, K))


def _matmul_settings():
    return (torch.backends.mkldnn.matmul.fp32_precision, torch.backends.cuda.matmul.fp32_precision)


@pytest.mark.parametrize("how", ["legacy medium", "new-api bf16/tf32"])
def test_distance_products_run_in_ieee_float32_whatever_the_global_switch(monkeypatch, how):
    """Every product that decides a radius or a count runs in IEEE float32, on any CPU.

    This is checked at the product itself, so it fails on CPUs without bf16 units too (where the
    switch happens not to change the numbers), and the caller's settings come back unchanged.
    """
    from ensemble.scoring import knn as metrics_mod

    seen = []
    real_addmm = torch.addmm

    def spy(*args, **kwargs):
        seen.append(_matmul_settings())
        return real_addmm(*args, **kwargs)

    rng = np.random.default_rng(3)
    real = rng.standard_normal((120, 8)).astype(np.float32)
    fake = rng.standard_normal((90, 8)).astype(np.float32)
    saved = _matmul_settings()
    try:
        if how == "legacy medium":
            torch.set_float32_matmul_precision("medium")
        else:
            torch.backends.mkldnn.matmul.fp32_precision = "bf16"
            torch.backends.cuda.matmul.fp32_precision = "tf32"
        before = _matmul_settings()
        monkeypatch.setattr(metrics_mod.torch, "addmm", spy)
        density_coverage(real=real, fake=fake)
        knn_radii(real, K)
        monkeypatch.undo()
        assert seen and all(s == ("ieee", "ieee") for s in seen)
        assert _matmul_settings() == before
    finally:
        torch.backends.mkldnn.matmul.fp32_precision, torch.backends.cuda.matmul.fp32_precision = saved


# ---------------------------------------------------------------------------- k-NN radii
@pytest.mark.parametrize("shape,offset,block_elems", [
    ((400, 16), 0.0, None),
    ((333, 512), 50.0, None),
    ((250, 1), 0.0, None),
    ((150, 64), 20.0, 1000),  # 6 rows a block: 25 blocks
])
def test_knn_radii_bit_identical_to_prdc(shape, offset, block_elems):
    rng = np.random.default_rng(shape[0])
    x = relu_features(rng, shape[0], shape[1], offset) if offset else \
        rng.standard_normal(shape).astype(np.float32)
    for k in (1, K):
        ours = knn_radii(x, k, block_elems=block_elems)
        ref = compute_nearest_neighbour_distances(x, k)
        assert ours.dtype == np.float32
        np.testing.assert_array_equal(ours, ref)


def test_knn_radii_with_duplicates():
    rng = np.random.default_rng(7)
    x = rng.standard_normal((60, 5)).astype(np.float32)
    x = np.concatenate([x, x[:20], x[:3], x[:3]])  # pairs and quadruples
    ours = knn_radii(x, K, block_elems=64)
    np.testing.assert_array_equal(ours, compute_nearest_neighbour_distances(x, K))
    # a point present k+1 times has radius 0 (its duplicates are its k nearest neighbours)
    y = np.concatenate([x, np.repeat(x[:1], K, 0)])
    assert knn_radii(y, K)[0] == 0.0


# ---------------------------------------------------------------------------- ties at the radius
def _tie_counts(real: np.ndarray, fake: np.ndarray, k: int = K) -> tuple[int, int, int]:
    """(# pairs with d < rho, # with d == rho, # with d <= rho) on prdc's own float32 distances."""
    rho = compute_nearest_neighbour_distances(real, k)[:, None]
    d = compute_pairwise_distance(real, fake)
    return int((d < rho).sum()), int((d == rho).sum()), int((d <= rho).sum())


def _tie_grid(offset: float) -> tuple[np.ndarray, np.ndarray]:
    """2-D integer grid moved to ``offset``: many exact ties, big float32 cancellation far from 0."""
    grid = np.stack(np.meshgrid(np.arange(14), np.arange(14)), -1).reshape(-1, 2)
    real = grid.astype(np.float32) + offset
    fake = np.concatenate([grid, grid[::3] + [0, 1], grid[::5] + [1, 1]]).astype(np.float32) + offset
    return real, fake


@pytest.mark.parametrize("dim,offset,block_elems", [
    (2, 1000.0, None),  # 2-D integer grid moved far from 0: big float32 cancellation
    (2, 1000.0, 37),
    (96, 100.0, None),  # integer points in 96-D
])
def test_exact_ties_respect_strict_less_than(dim, offset, block_elems):
    """Integer coordinates make many distances equal the radius exactly (float64 is exact)."""
    rng = np.random.default_rng(dim)
    if dim == 2:
        real, fake = _tie_grid(offset)
    else:
        real = rng.integers(0, 3, (220, dim)).astype(np.float32) + offset
        fake = np.concatenate([real[:50] + np.eye(dim, dtype=np.float32)[:50],
                               rng.integers(0, 3, (150, dim)).astype(np.float32) + offset])
    strict, ties, le = _tie_counts(real, fake)
    assert ties > 100 and le == strict + ties  # the case really is full of exact ties

    ours = density_coverage(real=real, fake=fake, block_elems=block_elems)
    assert_same_as_prdc(ours, reference_prdc(real, fake), len(real), len(fake))
    assert round(ours["density"] * K * len(fake)) == strict

    radii = knn_radii(real, K, block_elems=block_elems)
    np.testing.assert_array_equal(radii, compute_nearest_neighbour_distances(real, K))
    st = compare_sets(real, fake, radii_a=radii, block_elems=block_elems)
    assert st.count_a == strict
    assert st.n_exact >= ties  # every tie went through the exact path


# ---------------------------------------------------------------------------- pair statistics
def test_fake_counts_and_hits_and_compare_sets_match_distance_matrix():
    rng = np.random.default_rng(8)
    a = relu_features(rng, 130, 24, 3.0)
    b = relu_features(rng, 110, 24, 3.1)
    ra, rb = knn_radii(a, K), knn_radii(b, K)
    d = compute_pairwise_distance(a, b)
    in_a, in_b = d < ra[:, None], d < rb[None, :]

    count, hits = fake_counts_and_hits(a, ra, b)
    assert count == in_a.sum()
    np.testing.assert_array_equal(hits, d.min(1) < ra)

    st = compare_sets(a, b, radii_a=ra, radii_b=rb, block_elems=300)
    assert (st.n_a, st.n_b, st.count_a, st.count_b) == (130, 110, in_a.sum(), in_b.sum())
    np.testing.assert_array_equal(st.rows_a, in_a.any(1))
    np.testing.assert_array_equal(st.cols_a, in_a.any(0))
    np.testing.assert_array_equal(st.rows_b, in_b.any(1))
    np.testing.assert_array_equal(st.cols_b, in_b.any(0))

    only = compare_sets(a, b, radii_b=rb, need=("cols_b",))
    assert only.count_a is None and only.rows_b is None and only.count_b == in_b.sum()
    np.testing.assert_array_equal(only.cols_b, in_b.any(0))


def _kernel_or_skip():
    """The C block kernel; skip where no C compiler exists (torch ops then do the work)."""
    from ensemble.scoring import blockkernel

    if blockkernel._compiler() is None:
        pytest.skip("no C compiler here: the block kernel cannot be built")
    fn = blockkernel.load()
    assert fn is not None, "a C compiler exists but the block kernel did not build (see the log)"
    return fn


def _tie_case():
    """The tie grid with both sets' radii: exact ties on both sides of compare_sets."""
    a, b = _tie_grid(1000.0)
    return a, b, knn_radii(a, K), knn_radii(b, K)


@pytest.mark.parametrize("need", [
    None,  # every field: rows and columns on both sides
    ("rows_a", "cols_b"),  # what a generator pair needs
    ("rows_a",),  # what a generator against real needs (A side only)
    ("cols_b", "rows_b"),  # B side only
])
@pytest.mark.parametrize("band_cap", [None, 3])  # 3: band lists overflow, slices are searched
def test_compare_sets_block_kernel_equals_torch_ops_and_distance_matrix(need, band_cap, monkeypatch):
    """The one-pass C kernel reaches the very decisions of the torch ops and of prdc."""
    import functools

    from ensemble.scoring import blockkernel

    _kernel_or_skip()
    if band_cap is not None:
        monkeypatch.setattr(blockkernel, "block_counts",
                            functools.partial(blockkernel.block_counts, band_cap=band_cap))
    a, b, ra, rb = _tie_case()
    radii_a = None if need == ("cols_b", "rows_b") else ra
    radii_b = None if need == ("rows_a",) else rb
    d = compute_pairwise_distance(a, b)
    in_a, in_b = d < ra[:, None], d < rb[None, :]
    kw = dict(radii_a=radii_a, radii_b=radii_b, need=need, block_elems=2000)
    ops = compare_sets(a, b, kernel=False, **kw)
    fast = compare_sets(a, b, kernel=True, **kw)
    assert fast.n_exact == ops.n_exact > 100  # ties went through the exact path on both
    if radii_a is not None:
        assert fast.count_a == ops.count_a == in_a.sum()
    if radii_b is not None:
        assert fast.count_b == ops.count_b == in_b.sum()
    want = {"rows_a": in_a.any(1), "cols_a": in_a.any(0), "rows_b": in_b.any(1), "cols_b": in_b.any(0)}
    for field in need or want:
        np.testing.assert_array_equal(getattr(fast, field), want[field], err_msg=field)
        np.testing.assert_array_equal(getattr(ops, field), want[field], err_msg=field)


def test_block_kernel_counts_equal_torch_reductions():
    from ensemble.scoring import blockkernel

    fn = _kernel_or_skip()
    gen = torch.Generator().manual_seed(0)
    g = torch.randn(37, 53, generator=gen).round(decimals=1)  # coarse values: many exact ties
    a_sq = torch.rand(37, generator=gen).round(decimals=1)
    lo_r, lo_c = torch.randn(37, generator=gen).round(decimals=1), torch.randn(53, generator=gen).round(decimals=1)
    hi_r, hi_c = lo_r + 0.2, lo_c + 0.2
    got = blockkernel.block_counts(fn, g, a_sq, lo_r, hi_r, lo_c, hi_c, side_a=True, cols_a=True,
                                   side_b=True, rows_b=True)
    d2 = g + a_sq[:, None]
    want = {"in_r": (d2 < lo_r[:, None]).sum(1), "may_r": (d2 <= hi_r[:, None]).sum(1),
            "in_c_a": (d2 < lo_r[:, None]).sum(0), "in_c": (d2 < lo_c[None, :]).sum(0),
            "may_c": (d2 <= hi_c[None, :]).sum(0), "in_r_b": (d2 < lo_c[None, :]).sum(1)}
    for k, v in want.items():
        assert torch.equal(got[k].long(), v), k
    for side, lo, hi in (("a", lo_r[:, None], hi_r[:, None]), ("b", lo_c[None, :], hi_c[None, :])):
        ii, jj = got[f"band_{side}"]
        band = set(zip(ii.tolist(), jj.tolist(), strict=True))
        assert band == set(map(tuple, torch.nonzero((d2 >= lo) & (d2 <= hi)).tolist())), side
        assert band  # coarse values: some pairs sit in the band
    small = blockkernel.block_counts(fn, g, a_sq, lo_r, hi_r, lo_c, hi_c, side_a=True, cols_a=False,
                                     side_b=True, rows_b=False, band_cap=1)
    assert small["band_a"] is None and small["band_b"] is None  # overflow: the caller searches
    assert torch.equal(small["in_r"], got["in_r"]) and torch.equal(small["may_c"], got["may_c"])
    with pytest.raises(ValueError, match="contiguous float32"):
        blockkernel.block_counts(fn, g.double(), a_sq, lo_r, hi_r, None, None, side_a=True,
                                 cols_a=False, side_b=False, rows_b=False)


def test_without_a_compiler_torch_ops_give_the_same(monkeypatch, caplog):
    from ensemble.scoring import blockkernel

    monkeypatch.setattr(blockkernel, "_tried", False)
    monkeypatch.setattr(blockkernel, "_lib", None)
    monkeypatch.setattr(blockkernel, "_compiler", lambda: None)
    a, b, ra, rb = _tie_case()
    want = compare_sets(a, b, radii_a=ra, radii_b=rb, kernel=False)
    with caplog.at_level("WARNING", logger="ensemble.scoring.blockkernel"):
        got = compare_sets(a, b, radii_a=ra, radii_b=rb, kernel=True)
    assert "no C compiler found" in caplog.text
    assert (got.count_a, got.count_b, got.n_exact) == (want.count_a, want.count_b, want.n_exact)
    np.testing.assert_array_equal(got.rows_a, want.rows_a)
    np.testing.assert_array_equal(got.cols_b, want.cols_b)


def test_block_kernel_build_failure_and_opt_out(monkeypatch, caplog, tmp_path):
    from ensemble.scoring import blockkernel

    for env, expect in (({"GAN_ENSEMBLE_KERNEL": "0"}, None), ({"CC": str(tmp_path / "broken-cc")}, "failed")):
        monkeypatch.setattr(blockkernel, "_tried", False)
        monkeypatch.setattr(blockkernel, "_lib", None)
        monkeypatch.setenv("GAN_ENSEMBLE_CACHE", str(tmp_path / "cache"))
        for k, v in env.items():
            monkeypatch.setenv(k, v)
        if "CC" in env:  # a "compiler" that always fails
            cc = tmp_path / "broken-cc"
            cc.write_text("#!/bin/sh\necho 'cc: internal error' >&2\nexit 1\n")
            cc.chmod(0o755)
            monkeypatch.delenv("GAN_ENSEMBLE_KERNEL", raising=False)
        with caplog.at_level("WARNING", logger="ensemble.scoring.blockkernel"):
            assert blockkernel.load() is None
        if expect:
            assert "could not build" in caplog.text and "internal error" in caplog.text
        assert not list((tmp_path / "cache").rglob("*.so"))  # nothing half-built left behind


def test_block_kernel_policy(monkeypatch):
    import ensemble.scoring.knn as m

    _kernel_or_skip()
    cpu, big = torch.device("cpu"), m._KERNEL_MIN_ELEMS
    assert m._use_kernel(None, cpu, big) is not None and m._use_kernel(None, cpu, big - 1) is None
    assert m._use_kernel(True, cpu, 1) is not None and m._use_kernel(False, cpu, big) is None
    assert m._use_kernel(True, torch.device("meta"), big) is None  # torch ops off the CPU


def test_d_score():
    assert d_score(1.0, 1.0) == pytest.approx(1.0, abs=1e-6)
    assert d_score(0.0, 0.7) == 0.0
    assert d_score(2.0, 0.5) == pytest.approx(2 * 2.0 * 0.5 / (2.5 + 1e-6))
    np.testing.assert_allclose(d_score(np.array([0.5, 1.5]), np.array([0.5, 0.25])),
                               [0.5 / (1 + 1e-6), 0.75 / (1.75 + 1e-6)])


# ---------------------------------------------------------------------------- FID
def _fid_direct(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a.astype(np.float64), b.astype(np.float64)
    s1, s2 = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    covmean = np.real(linalg.sqrtm(s1 @ s2))
    diff = a.mean(0) - b.mean(0)
    return float(diff @ diff + np.trace(s1 + s2 - 2 * covmean))


def test_fid_matches_direct_computation():
    rng = np.random.default_rng(9)
    a = rng.standard_normal((400, 6)).astype(np.float32)
    b = (rng.standard_normal((300, 6)) @ np.diag([1, 2, 1, 0.5, 1, 1]) + 0.7).astype(np.float32)
    assert fid(a, b) == pytest.approx(_fid_direct(a, b), rel=1e-6)
    assert fid(a, b) > 1.0
    assert fid(a, a) == pytest.approx(0.0, abs=1e-6)
    # two Gaussians with known parameters: FID = |mu1 - mu2|^2 + tr(S1 + S2 - 2 (S1 S2)^1/2)
    c = np.zeros((2000, 3), np.float32)
    assert fid(c + rng.standard_normal((2000, 3)).astype(np.float32), c + 1.0 +
               2.0 * rng.standard_normal((2000, 3)).astype(np.float32)) == pytest.approx(6.0, rel=0.1)


# ---------------------------------------------------------------------------- bad input
def test_bad_inputs_raise_clear_errors():
    rng = np.random.default_rng(10)
    real = rng.standard_normal((50, 4)).astype(np.float32)
    fake = rng.standard_normal((40, 4)).astype(np.float32)
    bad = real.copy()
    bad[3, 2] = np.nan
    with pytest.raises(ValueError, match="NaN or inf.*row 3, column 2"):
        density_coverage(real=bad, fake=fake)
    bad[3, 2] = np.inf
    with pytest.raises(ValueError, match="NaN or inf"):
        density_coverage(real=real, fake=bad)
    with pytest.raises(ValueError, match="dimension"):
        density_coverage(real=real, fake=fake[:, :3])
    with pytest.raises(ValueError, match="at least"):
        density_coverage(real=real[:K], fake=fake)
    with pytest.raises(ValueError, match="2-D"):
        density_coverage(real=real[:, 0], fake=fake)
    with pytest.raises(ValueError, match="numeric"):
        check_features(np.array([["a", "b"]]))
    for k in (0, -1, True, 2.5, "5", None):
        with pytest.raises(ValueError, match="k must be a positive integer"):
            density_coverage(real=real, fake=fake, k=k)
        with pytest.raises(ValueError, match="k must be a positive integer"):
            knn_radii(real, k)
    with pytest.raises(ValueError, match="recall needs"):
        density_coverage(real=real, fake=fake[:3])
    with pytest.raises(ValueError, match="radii_a has shape"):
        compare_sets(real, fake, radii_a=np.ones(3, np.float32))
    with pytest.raises(ValueError, match="needs radii"):
        compare_sets(real, fake)
    with pytest.raises(ValueError, match="dimensions differ"):
        fid(real, fake[:, :2])
    with pytest.raises(TypeError):
        density_coverage(real, fake)  # keyword-only: positional use is a mistake
