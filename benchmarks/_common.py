"""Shared helpers for the benchmarks: synthetic features and honest time / peak-memory figures.

How memory is measured: every contender runs in a **fresh Python subprocess** (nothing cached
from a previous contender, no allocator pools left behind). The subprocess imports the libraries
and loads the input features from ``.npy`` files first, and makes one unmeasured warm-up call on
64 rows of each input (so that library code paged in on first use and thread pools, paid once per
process, are not billed to the measured call); then it resets the kernel's peak-RSS
counter (``echo 5 > /proc/self/clear_refs``, Linux >= 4.0), notes the current RSS as the
baseline, runs the measured call and reads ``VmHWM`` (the peak RSS since the reset). The figure
reported is ``VmHWM - baseline``: the extra resident memory the call needed at its worst moment,
inputs and libraries excluded. Where ``clear_refs`` is not writable, a sampler thread reading
``/proc/self/statm`` every millisecond stands in (it can miss very short spikes; the output says
which method was used). On CUDA the peak of ``torch.cuda.max_memory_allocated`` is reported too.

Time is wall-clock (``time.perf_counter``) of the measured call only. The benchmark machine may
be shared: run each contender a few times (each in its own subprocess) and take the best.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
_PAGE = os.sysconf("SC_PAGE_SIZE")


# ---------------------------------------------------------------------------- features
def relu_like_features(rng: np.random.Generator, n: int, dim: int, *, mix: np.ndarray,
                       shift: float = 0.0, scale: float = 1.0) -> np.ndarray:
    """Non-negative, correlated features like pooled ReLU activations of a CNN.

    ``|z @ mix * scale + shift|`` with z standard normal: ``mix`` (dim, dim) gives the correlations
    (and a decaying spectrum), ``shift``/``scale`` move one "generator" away from another.
    """
    z = rng.standard_normal((n, dim), dtype=np.float32)
    return np.abs(z @ mix * scale + shift).astype(np.float32)


def mixing_matrix(rng: np.random.Generator, dim: int) -> np.ndarray:
    """A random (dim, dim) mixing matrix with a power-law spectrum (like real embeddings)."""
    q, _ = np.linalg.qr(rng.standard_normal((dim, dim)))
    spectrum = 1.0 / np.sqrt(np.arange(1, dim + 1))
    return (q * spectrum).astype(np.float32) @ np.linalg.qr(rng.standard_normal((dim, dim)))[0].astype(np.float32)


# ---------------------------------------------------------------------------- memory
def _rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * _PAGE


def _hwm_bytes() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmHWM in /proc/self/status")


class PeakMemory:
    """Context manager: extra peak RSS (bytes) of the code inside, over the RSS at entry."""

    def __enter__(self) -> PeakMemory:
        self.method = "VmHWM after clear_refs"
        try:
            with open("/proc/self/clear_refs", "w") as f:
                f.write("5")
        except OSError:
            self.method = "1 ms RSS sampler"
        self.baseline = _rss_bytes()
        self._peak = self.baseline
        self._stop = threading.Event()
        if self.method != "VmHWM after clear_refs":
            self._thread = threading.Thread(target=self._sample, daemon=True)
            self._thread.start()
        return self

    def _sample(self) -> None:
        while not self._stop.is_set():
            self._peak = max(self._peak, _rss_bytes())
            time.sleep(0.001)

    def __exit__(self, *exc) -> None:
        self._stop.set()
        if self.method == "VmHWM after clear_refs":
            self._peak = _hwm_bytes()
        else:
            self._thread.join()
            self._peak = max(self._peak, _rss_bytes())
        self.extra = max(0, self._peak - self.baseline)


# ---------------------------------------------------------------------------- subprocess runner
def run_isolated(script: str | Path, func: str, inputs: dict[str, str | Path], kwargs: dict,
                 *, warmup: bool = True, timeout: float | None = None) -> dict:
    """Run ``func(**arrays, **kwargs)`` from ``script`` in a fresh interpreter; measure it.

    ``inputs`` maps argument names to ``.npy`` files (or folders of ``.npy`` files, which arrive
    as dicts ``{file stem: array}``), loaded before the measurement starts. Returns the JSON dict
    ``{"seconds", "peak_bytes", "cuda_peak_bytes", "method", "result"}``; ``result`` is whatever
    ``func`` returned (it must be JSON-able). With ``warmup``, ``func`` first runs once, unmeasured,
    on the first 64 rows of every input.
    """
    spec = {"script": str(script), "func": func, "inputs": {k: str(v) for k, v in inputs.items()},
            "kwargs": kwargs, "warmup": warmup}
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "out.json"
        cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", json.dumps(spec), str(out)]
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(
            [str(REPO), os.environ.get("PYTHONPATH", "")]), TQDM_DISABLE="1")
        proc = subprocess.run(cmd, env=env, timeout=timeout, capture_output=True, text=True)
        if proc.returncode != 0:
            raise RuntimeError(f"{func} failed in its subprocess:\n{proc.stderr[-4000:]}")
        return json.loads(out.read_text())


def _load(path: str):
    p = Path(path)
    if p.is_dir():
        return {f.stem: np.load(f) for f in sorted(p.glob("*.npy"))}
    return np.load(p)


def _worker(spec_json: str, out_path: str) -> None:
    spec = json.loads(spec_json)
    mod_spec = importlib.util.spec_from_file_location("_bench_target", spec["script"])
    mod = importlib.util.module_from_spec(mod_spec)
    mod_spec.loader.exec_module(mod)
    fn = getattr(mod, spec["func"])
    arrays = {k: _load(v) for k, v in spec["inputs"].items()}
    import torch

    if spec.get("warmup", True):
        # one tiny call first, so that lazily loaded library code and thread pools (shared pages,
        # paid once per process) are not billed to the measured call
        small = {k: ({s: a[:64] for s, a in v.items()} if isinstance(v, dict) else v[:64])
                 for k, v in arrays.items()}
        fn(**small, **spec["kwargs"])

    cuda = torch.cuda.is_available()
    if cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    with PeakMemory() as mem:
        t0 = time.perf_counter()
        result = fn(**arrays, **spec["kwargs"])
        if cuda:
            torch.cuda.synchronize()
        seconds = time.perf_counter() - t0
    Path(out_path).write_text(json.dumps({
        "seconds": seconds, "peak_bytes": mem.extra, "method": mem.method,
        "cuda_peak_bytes": torch.cuda.max_memory_allocated() if cuda else None,
        "result": result,
    }))


def best_of(script: str | Path, func: str, inputs: dict, kwargs: dict, reps: int) -> dict:
    """``reps`` isolated runs: best time, all times, and the largest peak memory seen."""
    runs = [run_isolated(script, func, inputs, kwargs) for _ in range(reps)]
    return {
        "seconds": min(r["seconds"] for r in runs),
        "all_seconds": [r["seconds"] for r in runs],
        "peak_bytes": max(r["peak_bytes"] for r in runs),
        "cuda_peak_bytes": runs[0]["cuda_peak_bytes"],
        "method": runs[0]["method"],
        "result": runs[0]["result"],
        "results": [r["result"] for r in runs],
    }


def mib(n_bytes: float | None) -> str:
    return "-" if n_bytes is None else f"{n_bytes / 2**20:,.0f} MiB"


def sync_device(device) -> None:
    """Wait for ``device``'s queued work (CUDA kernels run asynchronously), so a timer around it
    measures the work; a no-op on a CPU."""
    import torch

    if torch.device(device).type == "cuda":
        torch.cuda.synchronize(device)


def device_line() -> str:
    import torch

    if torch.cuda.is_available():
        return f"CUDA {torch.cuda.get_device_name(0)}"
    return f"CPU, {os.cpu_count()} cores visible, torch threads {torch.get_num_threads()}"


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--worker", nargs=2, metavar=("SPEC_JSON", "OUT"), required=True)
    a = ap.parse_args()
    _worker(*a.worker)
