"""The execution layer: run independent tasks on this machine or on a Dask cluster.

The heavy stages (training the zoo's runs, sampling and embedding each generator, scoring blocks of
generator pairs) are lists of independent tasks. A :class:`Backend` maps a module-level task
function over a list of items and returns the results in input order:

- :class:`LocalBackend` (``backend="local"``, the default): in this process, one task after the
  other (``n_jobs=1``), or in joblib/loky worker processes (``n_jobs > 1``, ``-1`` = all cores).
- :class:`DaskBackend` (``backend="dask"``): on a ``dask.distributed`` cluster, given the
  scheduler's address (``tcp://host:port``) or an existing ``Client``. A task whose worker dies is
  re-run elsewhere by the scheduler, one that raises is retried ``retries`` times.

Tasks carry paths, seeds and arrays, never live models, and write what they compute to the
content-keyed feature cache or the zoo folder, so the results do not depend on where a task ran,
and a run stopped half-way resumes from what was written. Large inputs shared by many tasks are
placed once with :meth:`Backend.scatter` and passed inside the items.

Backends are a registry (:func:`register_backend`, :func:`get_backend`, :func:`list_backends`):
each entry is a :class:`Backend` subclass, built from a name by its :meth:`Backend.from_options`.
Every heavy stage has one code path, through a backend: without one it is
``LocalBackend(n_jobs=1)``, which runs the tasks one after the other in this process.

Dask is optional: ``pip install 'gan-ensemble[dask]'``.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import uuid
import warnings
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from tqdm.auto import tqdm

from zoo.registry import Registry

__all__ = ["Backend", "LocalBackend", "DaskBackend", "BACKENDS", "register_backend", "get_backend",
           "list_backends", "using_backend", "add_backend_arguments", "backend_from_args"]

log = logging.getLogger(__name__)

DASK_INSTALL_HINT = "pip install 'gan-ensemble[dask]'"


def _progress_kwargs(desc: str | None) -> dict:
    # only ever force-disable: otherwise tqdm's defaults (and $TQDM_DISABLE) decide
    return {"desc": desc or "tasks", "leave": False, **({} if desc else {"disable": True})}


class Backend:
    """Runs a task function over a list of items; results come back in input order."""

    name = "backend"

    def map(self, fn: Callable[[Any], Any], items: Sequence[Any], *, desc: str | None = None) -> list:
        """``[fn(item) for item in items]``, possibly in parallel; ``desc`` titles a progress bar."""
        raise NotImplementedError

    def scatter(self, objs: Sequence[Any]) -> list:
        """Place large objects shared by many tasks once; pass the returned handles inside items.

        Handles stand for the objects wherever tasks run (on this machine, the objects themselves).
        """
        return list(objs)

    @property
    def n_workers(self) -> int:
        """How many tasks can run at once (used to size blocks of work)."""
        return 1

    @property
    def in_process(self) -> bool:
        """True when tasks run one by one in this process (no concurrency, no pickling)."""
        return False

    def close(self) -> None:
        """Release what this backend opened (nothing for a backend that opened nothing)."""

    @classmethod
    def from_options(cls, *, scheduler: Any = None, n_jobs: int | None = None) -> Backend:
        """This backend as :func:`get_backend` builds it from a name and the CLI options.

        The base class takes no options: it is built with its defaults.
        """
        if scheduler is not None or n_jobs is not None:
            raise ValueError(f"backend {cls.name!r} takes no scheduler/n_jobs options")
        return cls()

    def __enter__(self) -> Backend:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class LocalBackend(Backend):
    """Tasks on this machine: in-process and serial (``n_jobs=1``) or in loky processes."""

    name = "local"

    def __init__(self, n_jobs: int = 1) -> None:
        if isinstance(n_jobs, bool) or not isinstance(n_jobs, int) or n_jobs == 0 or n_jobs < -1:
            raise ValueError(f"n_jobs must be a positive integer or -1 (all cores), got {n_jobs!r}")
        self.n_jobs = n_jobs

    def __repr__(self) -> str:
        return f"LocalBackend(n_jobs={self.n_jobs})"

    @classmethod
    def from_options(cls, *, scheduler: Any = None, n_jobs: int | None = None) -> LocalBackend:
        if scheduler is not None:
            raise ValueError("--scheduler applies to backend 'dask'; pass --backend dask "
                             "(or drop --scheduler for the local backend)")
        return cls(1 if n_jobs is None else n_jobs)

    @property
    def n_workers(self) -> int:
        return (os.cpu_count() or 1) if self.n_jobs == -1 else self.n_jobs

    @property
    def in_process(self) -> bool:
        return self.n_jobs == 1

    def map(self, fn: Callable[[Any], Any], items: Sequence[Any], *, desc: str | None = None) -> list:
        items = list(items)
        if not items:
            return []
        with tqdm(total=len(items), unit="task", **_progress_kwargs(desc)) as bar:
            if self.n_jobs == 1 or len(items) == 1:
                out = []
                for item in items:
                    out.append(fn(item))
                    bar.update(1)
                return out
            from joblib import Parallel, delayed

            out = []
            jobs = min(self.n_workers, len(items))
            for result in Parallel(n_jobs=jobs, backend="loky", return_as="generator")(
                    delayed(fn)(item) for item in items):
                out.append(result)
                bar.update(1)
            return out


def _import_distributed():
    try:
        import distributed
    except ImportError as exc:
        raise ImportError(f"backend='dask' needs dask.distributed, which is not installed; "
                          f"{DASK_INSTALL_HINT}") from exc
    return distributed


class DaskBackend(Backend):
    """Tasks on a ``dask.distributed`` cluster.

    ``scheduler``: an address such as ``"tcp://10.0.0.5:8786"`` (a client is opened, and closed by
    :meth:`close`), an existing ``distributed.Client`` (used, never closed here), or None for the
    current default client or else the ``scheduler-address`` of the dask config
    (``$DASK_SCHEDULER_ADDRESS``). ``retries``: how often a task that raised is re-run (a task whose
    worker died is re-scheduled by the scheduler in any case). ``timeout``: seconds to wait when
    connecting to the scheduler.
    """

    name = "dask"

    def __init__(self, scheduler: Any = None, retries: int = 3, timeout: float = 30.0) -> None:
        if isinstance(retries, bool) or not isinstance(retries, int) or retries < 0:
            raise ValueError(f"retries must be a non-negative integer, got {retries!r}")
        self.scheduler = scheduler
        self.retries = retries
        self.timeout = timeout
        self._client = None
        self._owned = False

    def __repr__(self) -> str:
        where = self.scheduler if isinstance(self.scheduler, (str, type(None))) else "Client"
        return f"DaskBackend(scheduler={where!r}, retries={self.retries})"

    @classmethod
    def from_options(cls, *, scheduler: Any = None, n_jobs: int | None = None) -> DaskBackend:
        if n_jobs is not None and n_jobs != 1:
            log.info("n_jobs=%s is ignored by the dask backend (the cluster's workers decide)", n_jobs)
        _import_distributed()
        return cls(scheduler)

    @property
    def client(self):
        """The ``distributed.Client`` in use (connected on first use)."""
        if self._client is None:
            self._client, self._owned = self._connect()
        return self._client

    def _connect(self):
        distributed = _import_distributed()
        sched = self.scheduler
        if isinstance(sched, distributed.Client):
            return sched, False
        if sched is None:
            try:
                return distributed.default_client(), False
            except ValueError:
                import dask

                sched = dask.config.get("scheduler-address", None)
            if not sched:
                raise ValueError("backend='dask' needs a scheduler: pass its address (--scheduler "
                                 "tcp://HOST:8786 or scheduler=...), a distributed.Client, or set "
                                 "$DASK_SCHEDULER_ADDRESS")
        if not isinstance(sched, str) or not sched.strip():
            raise ValueError(f"scheduler must be an address such as 'tcp://HOST:8786' or a "
                             f"distributed.Client, got {sched!r}")
        try:
            client = distributed.Client(sched, timeout=self.timeout, set_as_default=False)
        except OSError as exc:
            raise ValueError(f"cannot reach the dask scheduler at {sched!r} within {self.timeout:g} s "
                             f"({exc}); start it (`dask scheduler`) or check --scheduler") from exc
        log.info("connected to dask scheduler %s", sched)
        return client, True

    @property
    def n_workers(self) -> int:
        return max(1, sum(self.client.nthreads().values()))

    def scatter(self, objs: Sequence[Any]) -> list:
        """Hand the objects to the cluster as tasks that return them.

        Unlike ``client.scatter``, the scheduler keeps each object in its task, so a copy lost
        with a dying worker is made again on another one instead of failing every task that needs
        it (the cost: the scheduler holds one serialised copy while the futures live).
        """
        objs = list(objs)
        if not objs:
            return []
        token = uuid.uuid4().hex[:8]
        with warnings.catch_warnings():  # "large graph": intended, each object is sent once
            warnings.filterwarnings("ignore", message=".*[Ll]arge graph.*")
            return [self.client.submit(_hold, obj, key=f"shared-{token}-{i}", pure=False)
                    for i, obj in enumerate(objs)]

    def map(self, fn: Callable[[Any], Any], items: Sequence[Any], *, desc: str | None = None) -> list:
        distributed = _import_distributed()
        items = list(items)
        if not items:
            return []
        client = self.client
        token = uuid.uuid4().hex[:8]
        prefix = getattr(fn, "__name__", "task")
        keys = [f"{prefix}-{token}-{i}" for i in range(len(items))]
        futures = client.map(fn, items, key=keys, pure=False, retries=self.retries)
        try:
            with tqdm(total=len(items), unit="task", **_progress_kwargs(desc)) as bar:
                for fut in distributed.as_completed(futures, loop=client.loop):
                    if fut.status == "error":
                        fut.result()  # re-raises the task's exception here
                    bar.update(1)
            return client.gather(futures)
        finally:
            client.cancel(futures)  # stops what still runs, frees results held by the workers

    def close(self) -> None:
        if self._client is not None and self._owned:
            self._client.close()
        self._client = None
        self._owned = False


def _hold(obj: Any) -> Any:
    """A task returning its argument (see :meth:`DaskBackend.scatter`)."""
    return obj


def _check_backend(name: str, cls: Any) -> None:
    if not (isinstance(cls, type) and issubclass(cls, Backend)):
        raise ValueError(f"backend {name!r} must be a subclass of ensemble.parallel.Backend, got {cls!r}")


#: Every backend by name: ``{"local": LocalBackend, "dask": DaskBackend, ...}``.
BACKENDS: Registry[type[Backend]] = Registry("backend", check=_check_backend)
BACKENDS.register("local", LocalBackend)
BACKENDS.register("dask", DaskBackend)


def register_backend(name: str, cls: type[Backend] | None = None, *, overwrite: bool = False):
    """Add a :class:`Backend` subclass as ``name`` (also usable as a class decorator).

    :func:`get_backend` builds it with ``cls.from_options(scheduler=..., n_jobs=...)``.
    """
    return BACKENDS.register(name, cls, overwrite=overwrite)


def list_backends() -> list[str]:
    """Sorted names of every registered backend."""
    return BACKENDS.list()


def get_backend(backend: str | Backend | Any = "local", *, scheduler: Any = None,
                n_jobs: int | None = None) -> Backend:
    """A :class:`Backend` from a registered name (``"local"``, ``"dask"``), a Backend, or a
    dask Client; None is the default, ``LocalBackend(n_jobs=1)`` (in this process).

    ``scheduler`` (dask only): address or Client; ``n_jobs`` (local only): worker processes.
    Unknown names raise ``ValueError`` listing the registered ones.
    """
    if backend is None:
        backend = "local"
    if isinstance(backend, Backend):
        if scheduler is not None or n_jobs is not None:
            raise ValueError("scheduler/n_jobs configure a backend given by name; "
                             f"{backend!r} is already configured")
        return backend
    if not isinstance(backend, str):
        distributed = sys.modules.get("distributed")
        if distributed is not None and isinstance(backend, distributed.Client):
            return DaskBackend(backend)
        raise ValueError(f"backend must be one of {', '.join(list_backends())}, a Backend or a "
                         f"distributed.Client, got {backend!r}")
    cls = BACKENDS.get(backend.strip().lower())
    return cls.from_options(scheduler=scheduler, n_jobs=n_jobs)


@contextlib.contextmanager
def using_backend(backend: str | Backend | Any = "local", *, scheduler: Any = None,
                  n_jobs: int | None = None) -> Iterator[Backend]:
    """:func:`get_backend` as a context: closes the backend only when it was made here."""
    made = not isinstance(backend, Backend)
    b = get_backend(backend, scheduler=scheduler, n_jobs=n_jobs)
    try:
        yield b
    finally:
        if made:
            b.close()


def add_backend_arguments(parser) -> None:
    """Add ``--backend``, ``--scheduler`` and ``--n-jobs`` to an argparse (sub-)parser."""
    parser.add_argument("--backend", choices=list_backends(), default="local",
                        help="where the heavy tasks run: local (this machine, default) or dask "
                             "(a dask.distributed cluster, see --scheduler)")
    parser.add_argument("--scheduler", default=None, metavar="ADDR",
                        help="dask scheduler address, e.g. tcp://10.0.0.5:8786 (default "
                             "$DASK_SCHEDULER_ADDRESS); with --backend dask")
    parser.add_argument("--n-jobs", type=int, default=None, metavar="N",
                        help="local worker processes (default 1: in this process; -1: all cores)")


def backend_from_args(args) -> Backend | None:
    """The backend the CLI flags of :func:`add_backend_arguments` ask for; None for the default,
    which every stage runs as ``LocalBackend(n_jobs=1)`` (in this process)."""
    backend = getattr(args, "backend", "local") or "local"
    scheduler, n_jobs = getattr(args, "scheduler", None), getattr(args, "n_jobs", None)
    if backend == "local" and scheduler is None and n_jobs in (None, 1):
        return None
    return get_backend(backend, scheduler=scheduler, n_jobs=n_jobs)
