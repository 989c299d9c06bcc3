"""k-NN precision, recall, density and coverage (Naeem et al. 2020), exact and in blocks.

Pure functions on feature arrays. Values equal ``prdc.compute_prdc`` (version 0.2) on the same
inputs: the comparisons ``dist < radius`` are decided on the very float32 distances prdc compares
(squared distance in float64 as ``sklearn.metrics.pairwise_distances`` does, cast to float32, then
square-rooted in float32). Two limits: float64 input is compared in float32 (prdc keeps float64),
and when feature norms dwarf the distances (norm²/distance² beyond ~1e5) the float64 summation
order itself (sklearn's BLAS vs ours) can move a distance by one float32 step; real embeddings sit
far below that (ratios of ~10-100).

How it is fast and small: distances are computed block by block with a float32 matrix product on
mean-centred features (O((N+M)·block) memory, never N×M). Each approximate squared distance
carries a rigorous rounding-error bound; only pairs whose comparison the bound cannot decide
(a tiny fraction, right at a radius) are recomputed in float64 the reference way. k-NN radii use
the float32 top-(k+1+margin) candidates, recomputed exactly and checked against the bound. On a
CPU the comparisons of each block run in one pass of a small C kernel (:mod:`ensemble.scoring.blockkernel`)
instead of ~10 torch passes, which puts the score tables near the cost of the bare matrix products.

The same pass can also find, for every point of B, its nearest point of A (``compare_sets(...,
nearest_b=True)``; the memorisation audit of :mod:`ensemble.scoring.memorisation`): each block
keeps the smallest and second smallest approximate d² per column; where the bound separates the
two, the nearest row is certain and only its exact (prdc-style float32) distance is computed; the
rare columns it cannot separate are recomputed exactly against all of A.
"""

from __future__ import annotations

import math
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import torch

from zoo.device import resolve_device

__all__ = [
    "check_features",
    "knn_radii",
    "knn_radii_many",
    "density_coverage",
    "d_score",
    "compare_sets",
    "PairStats",
    "PreparedFeatures",
    "prepare_features",
    "fake_counts_and_hits",
    "fid",
    "ieee_float32_matmul",
    "check_k",
    "rows_per_block",
    "nearest_neighbours",
]

_U32 = 2.0**-24  # unit round-off of float32
_EXTRA_CANDIDATES = 8  # margin of the k-NN candidate search
_DEFAULT_BLOCK_ELEMS = 1 << 23  # elements of one block of the distance matrix (32 MiB in float32)
_EXACT_ELEMS = 1 << 21  # float64 elements gathered at once by the exact path (16 MiB per operand)


def d_score(density: float | np.ndarray, coverage: float | np.ndarray) -> float | np.ndarray:
    """d = 2·D·C / (D + C + 1e-6), the harmonic-style mean of density and coverage."""
    return 2.0 * density * coverage / (density + coverage + 1e-6)


def check_features(x: np.ndarray, name: str = "features", min_rows: int = 1) -> np.ndarray:
    """Return ``x`` as a C-contiguous float32 (n, D) array, or raise a clear ValueError."""
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().numpy()
    x = np.asarray(x)
    if x.ndim != 2:
        raise ValueError(f"{name} must be a 2-D array (n, D), got shape {x.shape}")
    if not np.issubdtype(x.dtype, np.number):
        raise ValueError(f"{name} must be numeric, got dtype {x.dtype}")
    if len(x) < min_rows:
        raise ValueError(f"{name} has {len(x)} rows; at least {min_rows} are needed")
    x = np.ascontiguousarray(x, dtype=np.float32)
    if not np.isfinite(x).all():
        bad = np.argwhere(~np.isfinite(x))[0]
        raise ValueError(
            f"{name} contains NaN or inf (first at row {bad[0]}, column {bad[1]}); "
            "check the embedder's input images"
        )
    return x


@dataclass
class PreparedFeatures:
    """Features on the device, ready for blocked distance work.

    ``c32``/``csq``: mean-centred float32 copy and its squared norms (the fast, approximate path);
    ``x32``/``sq64``: the original values and their float64 squared norms (the exact path, which
    upcasts only the rows it gathers).
    """

    c32: torch.Tensor
    csq: torch.Tensor
    x32: torch.Tensor
    sq64: torch.Tensor
    center: torch.Tensor

    def __len__(self) -> int:
        return self.c32.shape[0]

    @property
    def dim(self) -> int:
        return self.c32.shape[1]


def prepare_features(x: np.ndarray, *, center: np.ndarray | torch.Tensor | None = None,
                     device: str | torch.device = "auto", name: str = "features") -> PreparedFeatures:
    """Move features to ``device`` once, centred on ``center`` (default: their own mean)."""
    dev = resolve_device(device)
    x = check_features(x, name)
    x32 = torch.from_numpy(x).to(dev)
    x64 = x32.double()
    if center is None:
        c = x64.mean(0)
    else:
        c = torch.as_tensor(center, dtype=torch.float64, device=dev)
    c32 = (x64 - c).to(torch.float32)
    sq64 = (x64 * x64).sum(1)
    del x64
    return PreparedFeatures(
        c32=c32,
        csq=(c32.double() ** 2).sum(1).to(torch.float32),
        x32=x32,
        sq64=sq64,
        center=c,
    )


def _as_prepared(x, center, device, name) -> PreparedFeatures:
    if isinstance(x, PreparedFeatures):
        return x
    return prepare_features(x, center=center, device=device, name=name)


def _gamma(dim: int) -> float:
    """Bound factor: |approx d² - exact d²| <= gamma · (|a|² + |b|²) for float32 work."""
    return 2.2 * (dim + 4) * _U32


@contextmanager
def ieee_float32_matmul():
    """Run float32 matrix products in full IEEE float32 for the duration of the block.

    The error bound of :func:`_gamma` assumes float32 products. A global switch
    (``torch.set_float32_matmul_precision("medium")``, or the per-backend ``fp32_precision``
    settings of torch >= 2.9) lets CPUs with bf16 matrix units (AMX, AVX-512 BF16) and GPUs with
    TF32 run float32 products at lower precision, which would void the bound and move radii and
    counts. The caller's settings are restored on exit, whatever they were.
    """
    backends = [b for b in (getattr(torch.backends, "mkldnn", None), getattr(torch.backends, "cuda", None))
                if b is not None and hasattr(getattr(b, "matmul", None), "fp32_precision")]
    if backends:  # torch >= 2.9: per-backend settings (the legacy getter may raise after a mix)
        saved = [b.matmul.fp32_precision for b in backends]
        try:
            for b in backends:
                b.matmul.fp32_precision = "ieee"
            yield
        finally:
            for b, v in zip(backends, saved, strict=True):
                b.matmul.fp32_precision = v
        return
    old_prec = torch.get_float32_matmul_precision()
    old_tf32 = torch.backends.cuda.matmul.allow_tf32
    try:
        torch.set_float32_matmul_precision("highest")
        torch.backends.cuda.matmul.allow_tf32 = False
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32 = old_tf32
        torch.set_float32_matmul_precision(old_prec)


def _gram_part(a: PreparedFeatures, lo: int, hi: int, b: PreparedFeatures,
               out: torch.Tensor | None = None) -> torch.Tensor:
    """``|b_j|² − 2 a_i·b_j`` (float32) for rows lo:hi of ``a``: the squared distance less ``|a_i|²``.

    ``out``: a reusable buffer of at least ``(hi − lo) · len(b)`` elements (fresh memory for every
    block costs page faults as large as a fair part of the product). The product always runs in
    IEEE float32 (:func:`ieee_float32_matmul`), whatever the global precision settings.
    """
    if out is not None:
        out = out[: (hi - lo) * len(b)].view(hi - lo, len(b))
    with ieee_float32_matmul():
        return torch.addmm(b.csq[None, :], a.c32[lo:hi], b.c32.T, beta=1.0, alpha=-2.0, out=out)


def _approx_d2(a: PreparedFeatures, lo: int, hi: int, b: PreparedFeatures,
               out: torch.Tensor | None = None) -> torch.Tensor:
    """Approximate squared distances (float32) of rows lo:hi of ``a`` to all of ``b``.

    Rounding error is at most ``_gamma(dim) · (|a_i|² + |b_j|²)`` (centred norms).
    """
    return _gram_part(a, lo, hi, b, out=out).add_(a.csq[lo:hi, None])


def _exact_dist(a: PreparedFeatures, ia: torch.Tensor, b: PreparedFeatures, ib: torch.Tensor) -> torch.Tensor:
    """prdc's float32 distance for pairs (ia[p], ib[p]): float64 squared distance → float32 → sqrt."""
    out = torch.empty(ia.shape[0], dtype=torch.float32, device=a.x32.device)
    chunk = max(1, _EXACT_ELEMS // a.x32.shape[1])
    for s in range(0, ia.shape[0], chunk):
        i, j = ia[s:s + chunk], ib[s:s + chunk]
        d = -2.0 * (a.x32[i].double() * b.x32[j].double()).sum(1)
        d += a.sq64[i]
        d += b.sq64[j]
        # Round d² to float32 as sklearn does, then take a correctly rounded float32 sqrt: torch's
        # float32 sqrt on CPU is not always correctly rounded, the float64 one rounded once more is.
        out[s:s + chunk] = d.clamp_min_(0.0).to(torch.float32).double().sqrt_().to(torch.float32)
    return out


def rows_per_block(n_cols: int, block_elems: int | None) -> int:
    """Rows of one block of a distance matrix with ``n_cols`` columns (``block_elems`` elements)."""
    return max(1, (block_elems or _DEFAULT_BLOCK_ELEMS) // max(1, n_cols))


def knn_radii(x: np.ndarray | PreparedFeatures, k: int = 5, *, device: str | torch.device = "auto",
              block_elems: int | None = None, name: str = "real features") -> np.ndarray:
    """Distance from each point to its k-th nearest neighbour in the same set, itself excluded.

    Equals prdc's ``compute_nearest_neighbour_distances``: the (k+1)-th smallest value of each row
    of the set's own distance matrix (the zero self-distance is the first). Returns float32 (n,).
    """
    return knn_radii_many(x, (k,), device=device, block_elems=block_elems, name=name)[k]


def knn_radii_many(x: np.ndarray | PreparedFeatures, ks: tuple[int, ...], *,
                   device: str | torch.device = "auto", block_elems: int | None = None,
                   name: str = "real features") -> dict[int, np.ndarray]:
    """:func:`knn_radii` for several ``ks`` from one pass over the distance blocks: ``{k: radii}``.

    Each k's radii are those :func:`knn_radii` gives alone (the candidates are the float32
    top-(max k + 1 + margin), and each k is decided in its own error band).
    """
    ks = tuple(dict.fromkeys(ks))
    if not ks:
        raise ValueError("ks is empty; pass at least one k")
    for k in ks:
        check_k(k)
    p = _as_prepared(x, None, device, name)
    n = len(p)
    kmax = max(ks)
    if n < kmax + 1:
        raise ValueError(f"{name} has {n} points; k-NN radii with k={kmax} need at least k+1 = {kmax + 1}")
    m = min(n, kmax + 1 + _EXTRA_CANDIDATES)
    radii = {k: torch.empty(n, dtype=torch.float32, device=p.c32.device) for k in ks}
    bmax = p.csq.max().double()
    step = rows_per_block(n, block_elems)
    buf = torch.empty(min(step, n) * n, dtype=torch.float32, device=p.c32.device)
    for lo in range(0, n, step):
        hi = min(n, lo + step)
        d2 = _approx_d2(p, lo, hi, p, out=buf)
        vals, idx = torch.topk(d2, m, dim=1, largest=False, sorted=True)
        del d2
        v = vals.double()
        for k in ks:
            radii[k][lo:hi] = _kth_from_candidates(p, lo, hi, v, idx, k, m, n, bmax)
    return {k: r.cpu().numpy() for k, r in radii.items()}


def _kth_from_candidates(p: PreparedFeatures, lo: int, hi: int, v: torch.Tensor, idx: torch.Tensor,
                         k: int, m: int, n: int, bmax: torch.Tensor) -> torch.Tensor:
    """The exact (k+1)-th smallest distance of rows lo:hi from their top-m float32 candidates."""
    # With |approx − exact| <= b, the (k+1)-th exact value lies in [v_k − b, v_k + b]: candidates
    # below v_k − 2b surely rank before it, those above v_k + 2b surely after. Only the band
    # between is recomputed exactly; the k-th sits at rank k − #below inside it.
    vk = v[:, k:k + 1]
    b = (_gamma(p.dim) * (p.csq[lo:hi].double() + bmax))[:, None] + vk.abs() * (8 * _U32)
    below = v < vk - 2 * b
    band = ~below & (v <= vk + 2 * b)
    rank = k - below.sum(1)
    rr, cc = torch.nonzero(band, as_tuple=True)
    ex = torch.full((hi - lo, m), float("inf"), dtype=torch.float32, device=v.device)
    ex[rr, cc] = _exact_dist(p, rr + lo, p, idx[rr, cc])
    kth = ex.sort(dim=1).values.gather(1, rank[:, None]).squeeze(1)
    if m < n:
        # A band reaching the last candidate means points beyond the candidates might belong
        # in it: recompute those rows in full (rare).
        for r in torch.nonzero(band[:, -1]).flatten().tolist():
            i = torch.full((n,), lo + r, device=idx.device, dtype=torch.long)
            row = _exact_dist(p, i, p, torch.arange(n, device=idx.device))
            kth[r] = torch.kthvalue(row.cpu(), k + 1).values.to(kth.device)
    return kth


@dataclass
class PairStats:
    """Outcome of comparing the distances between set A (n_a points) and set B (n_b points).

    With A's radii ``ra``: ``count_a`` = #{(i, j): d(a_i, b_j) < ra_i}, ``rows_a[i]`` = any_j,
    ``cols_a[j]`` = any_i. With B's radii ``rb``: ``count_b`` = #{(i, j): d < rb_j},
    ``rows_b[i]`` = any_j, ``cols_b[j]`` = any_i. Unused sides are None.
    """

    n_a: int
    n_b: int
    count_a: int | None = None
    rows_a: np.ndarray | None = None
    cols_a: np.ndarray | None = None
    count_b: int | None = None
    rows_b: np.ndarray | None = None
    cols_b: np.ndarray | None = None
    n_exact: int = 0  # pairs the error bound could not decide, recomputed exactly
    nn_dist_b: np.ndarray | None = None  # (n_b,) float32: exact distance of b_j to its nearest a_i
    nn_index_b: np.ndarray | None = None  # (n_b,) int64: that i (the lowest on exact ties)
    nn_copy_b: np.ndarray | None = None  # (n_b,) bool: b_j's features equal those of a_nn (a copy)
    n_nn_exact: int = 0  # columns whose nearest row the bound could not tell, recomputed in full


def _bands(radius: torch.Tensor, own_sq: torch.Tensor, other_max_sq: torch.Tensor, gamma: float):
    """Thresholds on approximate d² below/above which [d < radius] is certain."""
    thr2 = radius.double().pow(2)
    slack = gamma * (own_sq.double() + other_max_sq.double()) + thr2 * (8 * _U32)
    return (thr2 - slack).float(), (thr2 + slack).float()


# ----------------------------------------------------------------------- block reduction
# After each block's matrix product, every comparison compare_sets needs is a reduction of the
# block: per-row and per-column counts of [d² < lower threshold] and of [d² <= upper threshold].
# On the CPU a one-pass C kernel (ensemble.scoring.blockkernel) does it; elsewhere, or without a C
# compiler, torch ops do (about ten passes; fast on a GPU). Both give the same integers.
_KERNEL_MIN_ELEMS = 1 << 20  # distances per call below which torch ops are as fast


def _use_kernel(kernel: bool | None, dev: torch.device, n_elems: int):
    """The block kernel to use for this call, or None for torch ops."""
    if kernel is False or dev.type != "cpu":
        return None
    if kernel is None and n_elems < _KERNEL_MIN_ELEMS:
        return None
    from ensemble.scoring import blockkernel

    return blockkernel.load()


def _torch_side(d2, lo, hi, axis: int, other: bool) -> dict:
    """One side's reduction with torch ops: no integer copy of the block (count_nonzero/any)."""
    ins, may = d2 < lo, d2 <= hi
    count = torch.count_nonzero(ins)
    if int(torch.count_nonzero(may)) != int(count):
        unsure = may.logical_xor_(ins).any(axis)
    else:
        unsure = torch.zeros(d2.shape[1 - axis], dtype=torch.bool, device=d2.device)
    return {"count": int(count), "main": ins.any(axis), "unsure": unsure,
            "other": ins.any(1 - axis) if other else None, "band": None}


def _block_sums(flags: tuple[bool, bool, bool, bool], fn, g, a_sq, lo_r, hi_r, lo_c, hi_c,
                nearest: tuple | None = None, row0: int = 0) -> tuple[dict, bool]:
    """Reduce one block: ({side: outputs}, whether ``g`` still holds g rather than d²).

    Per side ("a", "b"): ``count`` of sure-inside pairs, ``main`` flags of the rows (A) or
    columns (B) holding one, ``unsure`` flags of the rows (A) or columns (B) holding undecided
    pairs, ``other``: the other axis' sure-inside flags (when ``flags`` ask), ``band``: the
    undecided pairs' (row, column) indices when known (else None: search the ``unsure`` slices).
    ``fn`` is the C kernel (``g`` is left as it is) or None: torch ops, which turn ``g`` into d²
    in place (no second block in memory). ``nearest``: the running per-column ``(m1, m2, arg)``
    of :func:`_update_nearest`, updated in place (rows of this block start at ``row0``).
    """
    side_a, cols_a, side_b, rows_b = flags
    if fn is not None:
        from ensemble.scoring.blockkernel import block_counts

        c = block_counts(fn, g, a_sq, lo_r if side_a else None, hi_r if side_a else None,
                         lo_c if side_b else None, hi_c if side_b else None,
                         side_a=side_a, cols_a=cols_a, side_b=side_b, rows_b=rows_b,
                         nearest=nearest, row0=row0)
        out = {}
        if side_a:
            out["a"] = {"count": int(c["in_r"].sum(dtype=torch.int64)), "main": c["in_r"] > 0,
                        "unsure": c["may_r"] != c["in_r"], "band": c["band_a"],
                        "other": c["in_c_a"] > 0 if cols_a else None}
        if side_b:
            out["b"] = {"count": int(c["in_c"].sum(dtype=torch.int64)), "main": c["in_c"] > 0,
                        "unsure": c["may_c"] != c["in_c"], "band": c["band_b"],
                        "other": c["in_r_b"] > 0 if rows_b else None}
        return out, True
    d2 = g.add_(a_sq[:, None])
    out = {}
    if side_a:
        out["a"] = _torch_side(d2, lo_r[:, None], hi_r[:, None], 1, cols_a)
    if side_b:
        out["b"] = _torch_side(d2, lo_c[None, :], hi_c[None, :], 0, rows_b)
    if nearest is not None:
        _update_nearest(nearest, d2, row0)
    return out, False


def _update_nearest(nearest: tuple, d2: torch.Tensor, row0: int) -> None:
    """Fold one block of approximate d² into the running per-column (m1, m2, arg), in place.

    The same values as the C kernel: m1/arg the smallest value and its first row, m2 the second
    smallest (a tie with m1 included), so the exact pass decides the same columns either way.
    """
    m1, m2, arg = nearest
    if d2.shape[0] >= 2:
        v, i = torch.topk(d2, 2, dim=0, largest=False, sorted=True)
        b1, b2, bi = v[0], v[1], i[0]
    else:
        b1, bi = d2[0], torch.zeros(d2.shape[1], dtype=torch.long, device=d2.device)
        b2 = torch.full_like(b1, float("inf"))
    new = b1 < m1
    m2.copy_(torch.where(new, torch.minimum(m1, b2), torch.minimum(m2, b1)))
    arg.copy_(torch.where(new, (bi + row0).to(arg.dtype), arg))
    m1.copy_(torch.where(new, b1, m1))


def _resolve_nearest(pa: PreparedFeatures, pb: PreparedFeatures, m1: torch.Tensor, m2: torch.Tensor,
                     arg: torch.Tensor, gamma: float) -> tuple[torch.Tensor, torch.Tensor, int]:
    """Exact nearest distances from the running (m1, m2, arg): (dist, index, columns redone).

    With every approximate d² within b of its exact value, a column whose runner-up (m2 − b) sits
    above its best (m1 + b) has its nearest row for certain: only that pair is computed exactly.
    Other columns (exact or near ties) get their approximate d² against every row again, and every
    row that may be the nearest is computed exactly.
    """
    amax = pa.csq.max().double()
    slack = gamma * (amax + pb.csq.double())
    b1 = slack + m1.double().abs() * (8 * _U32)
    b2 = slack + m2.double().abs() * (8 * _U32)
    sure = (m2.double() - b2) > (m1.double() + b1)  # an infinite m2 (one row of A) is sure
    idx = arg.long().clone()
    cols = torch.arange(len(pb), device=idx.device)
    dist = _exact_dist(pa, idx, pb, cols)
    redo = torch.nonzero(~sure).flatten()
    if len(redo):
        # Columns the bound cannot tell: their approximate d² against every row again (a product of
        # len(redo) columns only), every row that may be the nearest recomputed exactly.
        with ieee_float32_matmul():
            d2 = torch.addmm(pb.csq[redo][None, :], pa.c32, pb.c32[redo].T, beta=1.0, alpha=-2.0)
        d2.add_(pa.csq[:, None])
        # the nearest row's exact d² is at most m1 + b1, so a row whose approximate value (within
        # its own bound, at most b1 + slack here) is above m1 + 2·(b1 + slack) cannot be it
        cut = m1[redo].double() + 2 * (b1[redo] + slack[redo])
        ii, jj = torch.nonzero(d2.double() <= cut[None, :], as_tuple=True)  # every column keeps its best
        ex = _exact_dist(pa, ii, pb, redo[jj])
        best = torch.full((len(redo),), float("inf"), dtype=torch.float32, device=ex.device)
        best.scatter_reduce_(0, jj, ex, reduce="amin")
        # the lowest row index among exact ties (rows come in increasing order per column)
        first = torch.full((len(redo),), len(pa), dtype=torch.long, device=ex.device)
        first.scatter_reduce_(0, jj, torch.where(ex == best[jj], ii, len(pa)), reduce="amin")
        dist[redo], idx[redo] = best, first
    return dist, idx, len(redo)


def compare_sets(a, b, *, radii_a=None, radii_b=None, device: str | torch.device = "auto",
                 block_elems: int | None = None, need: tuple[str, ...] | None = None,
                 kernel: bool | None = None, nearest_b: bool = False) -> PairStats:
    """Count and flag the pairs of A × B that fall inside A's and/or B's k-NN balls.

    ``a``/``b`` are feature arrays or :class:`PreparedFeatures` (sharing one centre). One pass over
    the distance blocks serves both directions, so d(A, B) and d(B, A) cost one matrix product.
    ``need`` names the :class:`PairStats` fields wanted (default: all that the radii allow);
    skipping unused ones saves work on each block. ``kernel`` forces (True) or forbids (False) the
    one-pass C block kernel (:mod:`ensemble.scoring.blockkernel`); by default it is used on the CPU for
    calls of at least ~1M distances. Results are identical either way.

    ``nearest_b=True`` also finds, in the same pass, every point of B's nearest point of A:
    ``nn_dist_b`` (exact, prdc-style float32), ``nn_index_b`` and ``nn_copy_b`` (identical
    features); then the radii may both be None (the nearest neighbours alone).
    """
    need = set(need) if need is not None else {"rows_a", "cols_a", "rows_b", "cols_b"}
    if radii_a is None and radii_b is None and not nearest_b:
        raise ValueError("compare_sets needs radii_a, radii_b or both (or nearest_b=True)")
    pa = _as_prepared(a, None, device, "features A")
    pb = _as_prepared(b, pa.center, pa.c32.device, "features B")
    if pa.dim != pb.dim:
        raise ValueError(f"feature dimensions differ: {pa.dim} vs {pb.dim}; embed both with one backbone")
    if not torch.equal(pa.center, pb.center):
        pb = prepare_features(pb.x32.cpu().numpy(), center=pa.center, device=pa.c32.device)
    dev = pa.c32.device
    na, nb = len(pa), len(pb)
    gamma = _gamma(pa.dim)
    side_a, side_b = radii_a is not None, radii_b is not None
    flags = (side_a, side_a and "cols_a" in need, side_b, side_b and "rows_b" in need)
    fn = _use_kernel(kernel, dev, na * nb)
    # per side: count, row flags, column flags (the unwanted ones are computed anyway: cheap)
    count = {"a": 0, "b": 0}
    rows = {s: torch.zeros(na, dtype=torch.bool, device=dev) for s in "ab"}
    cols = {s: torch.zeros(nb, dtype=torch.bool, device=dev) for s in "ab"}
    lo_a = hi_a = lo_b = hi_b = torch.zeros(0, dtype=torch.float32, device=dev)  # absent sides: unread
    if side_a:
        ra = _radii_tensor(radii_a, na, "radii_a", dev)
        lo_a, hi_a = _bands(ra, pa.csq, pb.csq.max(), gamma)
    if side_b:
        rb = _radii_tensor(radii_b, nb, "radii_b", dev)
        lo_b, hi_b = _bands(rb, pb.csq, pa.csq.max(), gamma)
    n_exact = 0
    nearest = None
    if nearest_b:
        nearest = (torch.full((nb,), float("inf"), dtype=torch.float32, device=dev),
                   torch.full((nb,), float("inf"), dtype=torch.float32, device=dev),
                   torch.zeros(nb, dtype=torch.int32, device=dev))
    step = rows_per_block(nb, block_elems)
    buf = torch.empty(min(step, na) * nb, dtype=torch.float32, device=dev)
    for lo in range(0, na, step):
        hi = min(na, lo + step)
        g = _gram_part(pa, lo, hi, pb, out=buf)  # |b_j|² − 2 a_i·b_j; d² = g + |a_i|²
        a_sq = pa.csq[lo:hi]
        sums, g_kept = _block_sums(flags, fn, g, a_sq, lo_a[lo:hi], hi_a[lo:hi], lo_b, hi_b, nearest, lo)
        for s, r in sums.items():
            count[s] += r["count"]
            if s == "a":  # A's radii are per row: the row counts decide rows_a
                rows["a"][lo:hi] |= r["main"]
                if r["other"] is not None:
                    cols["a"] |= r["other"]
            else:  # B's radii are per column
                cols["b"] |= r["main"]
                if r["other"] is not None:
                    rows["b"][lo:hi] |= r["other"]
            # pairs the bound cannot decide: listed by the kernel, else found in the rows (A) or
            # columns (B) that hold them; decided from exact distances
            if r["band"] is not None:
                ii, jj = r["band"]
            else:
                at = torch.nonzero(r["unsure"]).flatten()
                if not len(at):
                    continue
                # d² of the slice: the C kernel left g as it was, torch ops made it d² in place
                if s == "a":
                    sub = g.index_select(0, at)
                    if g_kept:
                        sub += a_sq[at, None]
                    ii, jj = torch.nonzero((sub >= lo_a[lo + at, None]) & (sub <= hi_a[lo + at, None]),
                                           as_tuple=True)
                    ii = at[ii]
                else:
                    sub = g.index_select(1, at)
                    if g_kept:
                        sub += a_sq[:, None]
                    ii, jj = torch.nonzero((sub >= lo_b[None, at]) & (sub <= hi_b[None, at]),
                                           as_tuple=True)
                    jj = at[jj]
            if not len(ii):
                continue
            ii = ii + lo
            yes = _exact_dist(pa, ii, pb, jj) < (ra[ii] if s == "a" else rb[jj])
            n_exact += len(ii)
            count[s] += int(yes.sum())
            rows[s][ii[yes]] = True
            cols[s][jj[yes]] = True
        del g
    out = PairStats(n_a=na, n_b=nb, n_exact=n_exact)
    if nearest is not None:
        dist, idx, out.n_nn_exact = _resolve_nearest(pa, pb, *nearest, gamma)
        out.nn_dist_b = dist.cpu().numpy()
        out.nn_index_b = idx.cpu().numpy()
        out.nn_copy_b = (pa.x32[idx] == pb.x32).all(1).cpu().numpy()
    for s, on in (("a", side_a), ("b", side_b)):
        if not on:
            continue
        setattr(out, f"count_{s}", count[s])
        for field_, flags_ in ((f"rows_{s}", rows[s]), (f"cols_{s}", cols[s])):
            setattr(out, field_, flags_.cpu().numpy() if field_ in need else None)
    return out


def _radii_tensor(r, n: int, name: str, dev) -> torch.Tensor:
    r = np.asarray(r.cpu() if isinstance(r, torch.Tensor) else r, dtype=np.float32)
    if r.shape != (n,):
        raise ValueError(f"{name} has shape {r.shape}, expected ({n},): one radius per point")
    if not np.isfinite(r).all():
        raise ValueError(f"{name} contains NaN or inf")
    return torch.from_numpy(r).to(dev)


def nearest_neighbours(a, b, *, device: str | torch.device = "auto", block_elems: int | None = None,
                       kernel: bool | None = None) -> tuple[np.ndarray, np.ndarray]:
    """For every point of ``b``: (exact distance to its nearest point of ``a``, that point's index).

    Distances are prdc's float32 ones (float64 squared distance → float32 → sqrt), found in one
    blocked pass (see :func:`compare_sets`, ``nearest_b=True``); the lowest index wins exact ties.
    """
    st = compare_sets(a, b, device=device, block_elems=block_elems, kernel=kernel, nearest_b=True)
    return st.nn_dist_b, st.nn_index_b


def check_k(k: int) -> None:
    """Raise a ValueError unless ``k`` (of the k-NN radii) is a positive integer."""
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise ValueError(f"k must be a positive integer (the paper uses k=5), got {k!r}")


def fake_counts_and_hits(real, radii, fake, *, device: str | torch.device = "auto",
                         block_elems: int | None = None) -> tuple[int, np.ndarray]:
    """For one fake set: cnt = Σ_j Σ_i [‖s_j − r_i‖ < ρ_i] and hits[i] = [min_j ‖r_i − s_j‖ < ρ_i].

    These are the sufficient statistics of the exact Intra-d decomposition (METHOD.md §3).
    """
    st = compare_sets(real, fake, radii_a=radii, device=device, block_elems=block_elems,
                      need=("rows_a",))
    return st.count_a, st.rows_a


def density_coverage(*, real, fake, k: int = 5, real_radii: np.ndarray | None = None,
                     fake_radii: np.ndarray | None = None, precision_recall: bool = True,
                     device: str | torch.device = "auto", block_elems: int | None = None) -> dict[str, float]:
    """Precision, recall, density and coverage of ``fake`` against ``real`` (keyword-only).

    ``real_radii`` (from :func:`knn_radii`) can be passed to reuse them across calls. With
    ``precision_recall=False`` the fake set's own k-NN radii are not needed and recall is NaN.
    Also returns ``d`` = d_score(density, coverage).
    """
    check_k(k)
    real = check_features(real, "real features", min_rows=k + 1)
    fake = check_features(fake, "fake features", min_rows=1)
    if real.shape[1] != fake.shape[1]:
        raise ValueError(
            f"real features have dimension {real.shape[1]} but fake have {fake.shape[1]}; "
            "embed both with the same backbone"
        )
    pr = prepare_features(real, device=device, name="real features")
    pf = prepare_features(fake, center=pr.center, device=pr.c32.device, name="fake features")
    if real_radii is None:
        real_radii = knn_radii(pr, k, block_elems=block_elems)
    if precision_recall and fake_radii is None:
        if len(fake) < k + 1:
            raise ValueError(f"recall needs at least k+1 = {k + 1} fake points, got {len(fake)}; "
                             "pass precision_recall=False")
        fake_radii = knn_radii(pf, k, block_elems=block_elems, name="fake features")
    st = compare_sets(pr, pf, radii_a=real_radii, radii_b=fake_radii if precision_recall else None,
                      block_elems=block_elems)
    density = st.count_a / (k * len(fake))
    coverage = float(st.rows_a.mean())
    return {
        "precision": float(st.cols_a.mean()),
        "recall": float(st.rows_b.mean()) if precision_recall else math.nan,
        "density": float(density),
        "coverage": coverage,
        "d": float(d_score(density, coverage)),
    }


def fid(real_features: np.ndarray, fake_features: np.ndarray) -> float:
    """Fréchet distance between Gaussians fitted to two feature sets (FID on these embeddings)."""
    from scipy import linalg

    r = check_features(real_features, "real features", min_rows=2).astype(np.float64)
    f = check_features(fake_features, "fake features", min_rows=2).astype(np.float64)
    if r.shape[1] != f.shape[1]:
        raise ValueError(f"feature dimensions differ: {r.shape[1]} vs {f.shape[1]}")
    mu1, mu2 = r.mean(0), f.mean(0)
    s1, s2 = np.cov(r, rowvar=False), np.cov(f, rowvar=False)
    covmean = linalg.sqrtm(s1.dot(s2))
    if not np.isfinite(covmean).all():
        eps = 1e-6 * np.eye(s1.shape[0])
        covmean = linalg.sqrtm((s1 + eps).dot(s2 + eps))
    covmean = np.real(covmean)
    diff = mu1 - mu2
    return float(diff.dot(diff) + np.trace(s1) + np.trace(s2) - 2.0 * np.trace(covmean))
