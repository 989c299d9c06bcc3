"""The execution layer: the backend registry, local and Dask backends, task order and errors.

The cluster (``cluster``, tests/ensemble/conftest.py) is a real ``dask.distributed.LocalCluster``
on 127.0.0.1 with two single-threaded worker processes.
"""

from __future__ import annotations

import math
import sys

import pytest

from ensemble.parallel import DaskBackend, LocalBackend, get_backend

pytest.importorskip("distributed")


def test_get_backend_names_and_errors(cluster):
    assert isinstance(get_backend(), LocalBackend) and get_backend().n_jobs == 1
    assert get_backend("local", n_jobs=2).n_jobs == 2
    b = LocalBackend(3)
    assert get_backend(b) is b
    assert isinstance(get_backend(cluster[1]), DaskBackend)
    with pytest.raises(ValueError, match="unknown backend 'spark'; known: dask, local"):
        get_backend("spark")
    with pytest.raises(ValueError, match="--scheduler applies to backend 'dask'"):
        get_backend("local", scheduler="tcp://127.0.0.1:8786")
    with pytest.raises(ValueError, match="n_jobs"):
        LocalBackend(0)
    with pytest.raises(ValueError, match="needs a scheduler"):
        DaskBackend().map(abs, [1])  # no default client, no $DASK_SCHEDULER_ADDRESS
    with pytest.raises(ValueError, match="cannot reach the dask scheduler"):
        DaskBackend("tcp://127.0.0.1:9", timeout=1).map(abs, [1])


def test_backends_are_a_registry():
    from ensemble.parallel import BACKENDS, Backend, list_backends, register_backend

    assert list_backends() == ["dask", "local"] and BACKENDS.get("local") is LocalBackend

    @register_backend("serial-test")
    class Serial(Backend):
        name = "serial-test"

        def map(self, fn, items, *, desc=None):
            return [fn(item) for item in items]

    try:
        assert "serial-test" in list_backends()
        b = get_backend("serial-test")
        assert isinstance(b, Serial) and b.map(math.factorial, [3, 4]) == [6, 24]
        with pytest.raises(ValueError, match="takes no scheduler/n_jobs"):
            get_backend("serial-test", n_jobs=2)
        with pytest.raises(ValueError, match="already registered"):
            register_backend("serial-test", Serial)
        with pytest.raises(ValueError, match="subclass of ensemble.parallel.Backend"):
            register_backend("not-a-backend", object)
    finally:
        BACKENDS.remove("serial-test")
    assert "serial-test" not in list_backends()


def test_missing_dask_says_how_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "distributed", None)  # import distributed -> ImportError
    with pytest.raises(ImportError, match=r"pip install 'gan-ensemble\[dask\]'"):
        get_backend("dask")


def test_map_keeps_order_and_raises_task_errors(cluster):
    items = list(range(20, 0, -1))
    expect = [math.factorial(i) for i in items]
    assert LocalBackend(1).map(math.factorial, items) == expect
    with DaskBackend(cluster[0].scheduler_address, retries=0) as b:  # an address: own client
        assert b.map(math.factorial, items, desc="test") == expect
        assert b.n_workers == 2
        with pytest.raises(ValueError, match="math domain error"):
            b.map(math.sqrt, [4.0, -1.0])
        client = b.client
    assert client.status == "closed" and cluster[1].status == "running"
