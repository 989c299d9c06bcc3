"""One-pass CPU reduction of a distance block: the comparisons the score tables need.

After each block's matrix product (``g = |b_j|² − 2 a_i·b_j``), :func:`ensemble.scoring.knn.compare_sets`
needs, per row and per column, how many ``d² = g + |a_i|²`` fall below a lower threshold and how
many below an upper one (the two edges of the rounding-error band). As torch ops that is about ten
passes over the block, as costly as the product itself on a CPU; ``torch.compile`` fuses it to two
passes, but its column reduction walks the block column-major. This C loop does everything in one
row-major pass, with the per-column counters small enough to stay in cache.

It is built once per machine with the system C compiler (``$CC``, else ``cc``/``gcc``/``clang``)
into the cache folder (``kernels/``, keyed by source, compiler and CPU), loaded with ctypes, and
works on float32 CPU tensors. Plain IEEE arithmetic (no ``-ffast-math``; an add and compares only,
so no FMA contraction): it decides exactly what the torch ops decide. Without a compiler,
:func:`load` returns None and the caller runs the torch ops instead (same integers, slower).
"""

from __future__ import annotations

import ctypes
import hashlib
import logging
import os
import platform
import shutil
import subprocess
import tempfile
from pathlib import Path

import torch

from zoo.io import atomic_write

log = logging.getLogger(__name__)

__all__ = ["load", "block_counts"]

_SOURCE = r"""
#include <stdint.h>
#include <stddef.h>

/* d2 = g[i, j] + asq[i].  A side (thresholds per row): in_r[i] = #{j: d2 < lo_r[i]},
   may_r[i] = #{j: d2 <= hi_r[i]}, in_c_a[j] += #{i: d2 < lo_r[i]}.  B side (thresholds per
   column): in_c[j] += #{i: d2 < lo_c[j]}, may_c[j] += #{i: d2 <= hi_c[j]},
   in_r_b[i] = #{j: d2 < lo_c[j]}.  Column counters accumulate (the caller zeroes them).
   Band pairs (lo <= d2 <= hi: the bound cannot decide them) are listed per side in
   (band_i, band_j), at most cap of them; n_band[side] counts them all, so a count above cap tells
   the caller that the list is incomplete.  Nearest row per column (NB, the memorisation audit):
   nn_m1[j] = the smallest d2 of column j so far, nn_arg[j] its row (row0 + i; the first on
   ties), nn_m2[j] the second smallest (ties included); they accumulate over blocks (the caller
   starts them at +inf). */
static inline __attribute__((always_inline)) void work(
    const float *restrict g, int64_t rows, int64_t cols, const float *restrict asq,
    const float *restrict lo_r, const float *restrict hi_r,
    const float *restrict lo_c, const float *restrict hi_c,
    int32_t *restrict in_r, int32_t *restrict may_r, int32_t *restrict in_c_a,
    int32_t *restrict in_c, int32_t *restrict may_c, int32_t *restrict in_r_b,
    int32_t *restrict band_i, int32_t *restrict band_j, int64_t cap, int64_t *restrict n_band,
    float *restrict nn_m1, float *restrict nn_m2, int32_t *restrict nn_arg, int64_t row0,
    const int A, const int CA, const int B, const int RB, const int NB)
{
    int64_t na = 0, nb = 0;
    for (int64_t i = 0; i < rows; ++i) {
        const float *restrict row = g + i * cols;
        const float a = asq[i];
        const float lr = A ? lo_r[i] : 0.0f, hr = A ? hi_r[i] : 0.0f;
        int32_t ci = 0, cm = 0, rb = 0, rbm = 0;
        for (int64_t j = 0; j < cols; ++j) {
            const float v = row[j] + a;
            if (A) {
                const int32_t x = v < lr;
                ci += x;
                cm += v <= hr;
                if (CA) in_c_a[j] += x;
            }
            if (B) {
                const int32_t y = v < lo_c[j], w = v <= hi_c[j];
                in_c[j] += y;
                may_c[j] += w;
                rb += y;
                rbm += w;
            }
            if (NB) {  /* rarely taken once the minima settle: predictable branches */
                if (v < nn_m1[j]) {
                    nn_m2[j] = nn_m1[j];
                    nn_m1[j] = v;
                    nn_arg[j] = (int32_t)(row0 + i);
                } else if (v < nn_m2[j]) {
                    nn_m2[j] = v;
                }
            }
        }
        if (A) {
            in_r[i] = ci;
            may_r[i] = cm;
            if (cm != ci) {  /* rare: list this row's band pairs while the row is in cache */
                for (int64_t j = 0; j < cols; ++j) {
                    const float v = row[j] + a;
                    if (v >= lr && v <= hr) {
                        if (na < cap) { band_i[na] = (int32_t)i; band_j[na] = (int32_t)j; }
                        ++na;
                    }
                }
            }
        }
        if (RB) in_r_b[i] = rb;
        if (B && rbm != rb) {  /* the same for B's band, per row */
            for (int64_t j = 0; j < cols; ++j) {
                const float v = row[j] + a;
                if (v >= lo_c[j] && v <= hi_c[j]) {
                    if (nb < cap) { band_i[cap + nb] = (int32_t)i; band_j[cap + nb] = (int32_t)j; }
                    ++nb;
                }
            }
        }
    }
    n_band[0] = na;
    n_band[1] = nb;
}

#define VARIANT(A, CA, B, RB, NB) \
    case (A) | (CA) << 1 | (B) << 2 | (RB) << 3 | (NB) << 4: \
        work(g, rows, cols, asq, lo_r, hi_r, lo_c, hi_c, in_r, may_r, in_c_a, in_c, may_c, in_r_b, \
             band_i, band_j, cap, n_band, nn_m1, nn_m2, nn_arg, row0, A, CA, B, RB, NB); return 0;

int ge_block_counts(const float *g, int64_t rows, int64_t cols, const float *asq,
                    const float *lo_r, const float *hi_r, const float *lo_c, const float *hi_c,
                    int32_t *in_r, int32_t *may_r, int32_t *in_c_a,
                    int32_t *in_c, int32_t *may_c, int32_t *in_r_b,
                    int32_t *band_i, int32_t *band_j, int64_t cap, int64_t *n_band,
                    float *nn_m1, float *nn_m2, int32_t *nn_arg, int64_t row0, int flags)
{
    switch (flags) {
        VARIANT(1, 0, 0, 0, 0) VARIANT(1, 1, 0, 0, 0) VARIANT(0, 0, 1, 0, 0) VARIANT(0, 0, 1, 1, 0)
        VARIANT(1, 0, 1, 0, 0) VARIANT(1, 1, 1, 0, 0) VARIANT(1, 0, 1, 1, 0) VARIANT(1, 1, 1, 1, 0)
        VARIANT(1, 0, 0, 0, 1) VARIANT(1, 1, 0, 0, 1) VARIANT(0, 0, 1, 0, 1) VARIANT(0, 0, 1, 1, 1)
        VARIANT(1, 0, 1, 0, 1) VARIANT(1, 1, 1, 0, 1) VARIANT(1, 0, 1, 1, 1) VARIANT(1, 1, 1, 1, 1)
        VARIANT(0, 0, 0, 0, 1)
    }
    return 1;  /* a combination without a side, or with an extra of an absent side */
}
"""

_FLAGS = ("-O3", "-march=native", "-fPIC", "-shared", "-std=c99", "-fno-fast-math")
_lib = None
_tried = False


def _compiler() -> str | None:
    for cand in (os.environ.get("CC"), "cc", "gcc", "clang"):
        if cand and shutil.which(cand):
            return cand
    return None


def _machine_key() -> str:
    """What ``-march=native`` depends on: the CPU (model and flags), so a shared cache is safe."""
    info = platform.machine() + platform.processor()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith(("model name", "flags", "Features")):
                info += line
                if line.startswith(("flags", "Features")):
                    break
    except OSError:
        pass
    return info


def _build(cc: str, out: Path) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "blockkernel.c"
        src.write_text(_SOURCE)
        lib = Path(tmp) / "blockkernel.so"
        proc = subprocess.run([cc, *_FLAGS, str(src), "-o", str(lib)], capture_output=True, text=True,
                              timeout=120)
        if proc.returncode != 0:
            raise RuntimeError(f"{cc} failed: {proc.stderr.strip()[-2000:]}")
        # another process building the same key writes the same bytes: the last rename wins
        atomic_write(out, lambda tmp_path: shutil.copyfile(lib, tmp_path))


def load():
    """The compiled kernel (a ctypes function), or None where it cannot be built; cached per process."""
    global _lib, _tried
    if _tried:
        return _lib
    _tried = True
    if os.environ.get("GAN_ENSEMBLE_KERNEL", "1").strip().lower() in ("0", "false", "no", "off"):
        log.info("GAN_ENSEMBLE_KERNEL=0: the one-pass block kernel is off")
        return None
    cc = _compiler()
    if cc is None:
        log.warning("no C compiler found (set CC): distance blocks are reduced with torch ops instead "
                    "(same values, slower)")
        return None
    from ensemble.features.cache import default_cache_root

    try:
        version = subprocess.run([cc, "--version"], capture_output=True, text=True).stdout.splitlines()[:1]
        key = hashlib.sha256("\n".join([_SOURCE, " ".join(_FLAGS), cc, *version, _machine_key()]).encode())
        path = default_cache_root() / "kernels" / f"blockkernel-{key.hexdigest()[:16]}.so"
        if not path.is_file():
            log.info("building the one-pass block kernel with %s into %s", cc, path)
            _build(cc, path)
        lib = ctypes.CDLL(str(path))
    except (OSError, RuntimeError, subprocess.SubprocessError) as exc:
        log.warning("could not build the one-pass block kernel (%s); distance blocks are reduced with "
                    "torch ops instead (same values, slower). Set GAN_ENSEMBLE_KERNEL=0 to skip the "
                    "attempt.", str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
        return None
    fn = lib.ge_block_counts
    fn.restype = ctypes.c_int
    fn.argtypes = [ctypes.c_void_p, ctypes.c_int64, ctypes.c_int64, *[ctypes.c_void_p] * 13, ctypes.c_int64,
                   ctypes.c_void_p, *[ctypes.c_void_p] * 3, ctypes.c_int64, ctypes.c_int]
    _lib = fn
    return _lib


def _ptr(t: torch.Tensor | None) -> int | None:
    return None if t is None else t.data_ptr()


def block_counts(fn, g: torch.Tensor, a_sq: torch.Tensor, lo_r, hi_r, lo_c, hi_c, *,
                 side_a: bool, cols_a: bool, side_b: bool, rows_b: bool,
                 band_cap: int = 1 << 16, nearest: tuple | None = None,
                 row0: int = 0) -> dict[str, torch.Tensor]:
    """Run the kernel ``fn`` (from :func:`load`) on one block.

    Returns the int32 counters by name, and per present side ``band_a``/``band_b``: the (row,
    column) int64 indices of the pairs inside the error band, or None when there were more than
    ``band_cap`` of them (the caller then finds them another way). ``nearest``: running
    ``(m1, m2, arg)`` per column (float32, float32, int32; updated in place): the smallest and
    second smallest approximate d² of each column and the row (``row0`` + block row) of the
    smallest, for the memorisation audit.
    """
    rows, cols = g.shape
    for name, t in (("g", g), ("a_sq", a_sq), ("lo_r", lo_r), ("hi_r", hi_r), ("lo_c", lo_c), ("hi_c", hi_c)):
        if t is not None and (t.dtype != torch.float32 or t.device.type != "cpu" or not t.is_contiguous()):
            raise ValueError(f"block kernel input {name} must be a contiguous float32 CPU tensor")
    z = lambda n: torch.zeros(n, dtype=torch.int32)  # noqa: E731
    out = {"in_r": z(rows) if side_a else None, "may_r": z(rows) if side_a else None,
           "in_c_a": z(cols) if cols_a else None, "in_c": z(cols) if side_b else None,
           "may_c": z(cols) if side_b else None, "in_r_b": z(rows) if rows_b else None}
    band_i = torch.empty(2 * band_cap, dtype=torch.int32)
    band_j = torch.empty(2 * band_cap, dtype=torch.int32)
    n_band = torch.zeros(2, dtype=torch.int64)
    if nearest is not None:
        for t, dt in zip(nearest, (torch.float32, torch.float32, torch.int32), strict=True):
            if t.dtype != dt or t.device.type != "cpu" or not t.is_contiguous() or t.shape != (cols,):
                raise ValueError("block kernel nearest buffers must be contiguous CPU (m1 float32, "
                                 "m2 float32, arg int32) of one entry per column")
    nn = nearest if nearest is not None else (None, None, None)
    flags = (int(side_a) | int(cols_a) << 1 | int(side_b) << 2 | int(rows_b) << 3
             | int(nearest is not None) << 4)
    err = fn(g.data_ptr(), rows, cols, a_sq.data_ptr(), _ptr(lo_r), _ptr(hi_r), _ptr(lo_c), _ptr(hi_c),
             *(_ptr(out[k]) for k in ("in_r", "may_r", "in_c_a", "in_c", "may_c", "in_r_b")),
             band_i.data_ptr(), band_j.data_ptr(), band_cap, n_band.data_ptr(),
             *(_ptr(t) for t in nn), int(row0), flags)
    if err:
        raise ValueError(f"block kernel: unsupported combination side_a={side_a}, cols_a={cols_a}, "
                         f"side_b={side_b}, rows_b={rows_b}, nearest={nearest is not None}")
    res = {k: v for k, v in out.items() if v is not None}
    for s, on, off in (("a", side_a, 0), ("b", side_b, band_cap)):
        if on:
            n = int(n_band[0 if s == "a" else 1])
            res[f"band_{s}"] = (None if n > band_cap else
                                (band_i[off:off + n].long(), band_j[off:off + n].long()))
    return res
