"""What each stage of a run costs: wall time, CPU time and peak memory, kept across resumes.

:class:`StageTimer` times named stages (``with timer.stage("zoo") as st: ...``). A stage that did
work adds its wall and CPU seconds to the stage's totals, so a run killed and resumed still reports
what each stage cost; a stage served from its cache (``st.did_work = False``, or ``st.cached =
True``) adds nothing. CPU time counts this process and its finished children
(``os.times``); peak resident memory is sampled every ``every`` seconds in a thread, of this
process and of this process plus its worker processes (``psutil``; without it, the operating
system's lifetime peaks from ``resource``). With a ``path``, the totals live in a JSON file
(written atomically after each stage).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

__all__ = ["StageRecord", "StageTimer", "PeakMemory", "shutdown_idle_workers"]

log = logging.getLogger(__name__)


def _rss() -> tuple[int, int]:
    """(RSS of this process, RSS of this process plus all its descendants), bytes."""
    try:
        import psutil
    except ImportError:  # lifetime peaks: coarser, but still an upper bound of the stage's peak
        import resource

        own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        return own, own + resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024
    me = psutil.Process()
    own = me.memory_info().rss
    total = own
    for child in me.children(recursive=True):
        with contextlib.suppress(psutil.Error):
            total += child.memory_info().rss
    return own, total


class PeakMemory:
    """Context manager sampling the RSS of this process and its workers in a thread; keeps the
    peaks in ``own`` and ``total`` (bytes)."""

    def __init__(self, every: float = 0.2) -> None:
        self.every, self.own, self.total = every, 0, 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _poll(self) -> None:
        own, total = _rss()
        self.own, self.total = max(self.own, own), max(self.total, total)

    def _run(self) -> None:
        while not self._stop.is_set():
            self._poll()
            self._stop.wait(self.every)

    def __enter__(self) -> PeakMemory:
        self._poll()
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self._poll()


def shutdown_idle_workers() -> None:
    """Stop idle joblib/loky workers so that they do not count in the next stage's memory."""
    try:
        from joblib.externals.loky import get_reusable_executor

        get_reusable_executor().shutdown(wait=True)
    except Exception:  # noqa: BLE001 - nothing to shut down
        pass


@dataclass
class StageRecord:
    """One invocation of a stage: the body reports whether it did work and a note; when the stage
    ends, the timer fills in what this invocation measured (even when served from cache)."""

    name: str
    did_work: bool = True
    note: str = ""
    wall_s: float = 0.0
    cpu_s: float = 0.0

    @property
    def cached(self) -> bool:
        """The stage was served from its cache (the opposite of ``did_work``)."""
        return not self.did_work

    @cached.setter
    def cached(self, value: bool) -> None:
        self.did_work = not value


class StageTimer:
    """Wall time, CPU time and peak memory per stage; see the module docstring.

    ``data[name]`` holds ``wall_s``, ``cpu_s``, ``peak_rss_mb`` (this process),
    ``peak_rss_tree_mb`` (with its workers), ``invocations`` (times it did work), ``note`` and
    ``last_cached``. ``echo(message)`` reports each stage's start and end (default: the log);
    ``idle_workers`` stops idle worker processes after each stage (see
    :func:`shutdown_idle_workers`).
    """

    def __init__(self, path: str | os.PathLike | None = None, *, echo: Callable[[str], None] | None = None,
                 every: float = 0.2, idle_workers: bool = True) -> None:
        self.path = Path(path) if path is not None else None
        self.echo = echo or log.info
        self.every = every
        self.idle_workers = idle_workers
        self.data: dict[str, dict] = {}
        if self.path is not None and self.path.exists():
            try:
                self.data = json.loads(self.path.read_text()) or {}
            except (OSError, json.JSONDecodeError):
                self.data = {}

    @contextlib.contextmanager
    def stage(self, name: str, replace: bool = False) -> Iterator[StageRecord]:
        """Time the stage ``name``; ``replace``: the stage is redone on every invocation, so keep
        the latest measurement only instead of adding to the totals."""
        rec = StageRecord(name)
        self.echo(f"stage {name} ...")
        t0, c0 = time.perf_counter(), os.times()
        with PeakMemory(self.every) as peak:
            yield rec
        if self.idle_workers:
            shutdown_idle_workers()
        wall = time.perf_counter() - t0
        c1 = os.times()
        cpu = sum(getattr(c1, a) - getattr(c0, a)
                  for a in ("user", "system", "children_user", "children_system"))
        rec.wall_s, rec.cpu_s = wall, cpu
        fresh = {"wall_s": 0.0, "cpu_s": 0.0, "peak_rss_mb": 0.0, "peak_rss_tree_mb": 0.0,
                 "invocations": 0, "note": ""}
        if replace:
            self.data[name] = fresh
        entry = self.data.setdefault(name, fresh)
        if rec.did_work:
            entry["wall_s"] += wall
            entry["cpu_s"] += cpu
            entry["peak_rss_mb"] = max(entry["peak_rss_mb"], peak.own / 2**20)
            entry["peak_rss_tree_mb"] = max(entry["peak_rss_tree_mb"], peak.total / 2**20)
            entry["invocations"] += 1
            if rec.note:
                entry["note"] = rec.note
        entry["last_cached"] = not rec.did_work
        self.save()
        self.echo(f"stage {name} {'done' if rec.did_work else 'cached'} in {wall:.1f} s")

    def save(self) -> None:
        """Write :attr:`data` to :attr:`path` atomically (nothing to do without a path)."""
        if self.path is None:
            return
        from zoo.io import atomic_write

        text = json.dumps(self.data, indent=2, sort_keys=True, default=str)
        atomic_write(self.path, lambda p: p.write_text(text + "\n"))

    def total_wall(self) -> float:
        """Wall seconds summed over every stage."""
        return sum(e["wall_s"] for e in self.data.values() if isinstance(e, dict) and "wall_s" in e)
