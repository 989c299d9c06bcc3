"""Fixtures shared by the tests of the heavy stages' backends (parallel, scoring, zoo training).

``cluster``: a real ``dask.distributed.LocalCluster`` on 127.0.0.1 (two single-threaded worker
processes, no dashboard), one per test module that asks for it, closed at the module's end.
``toy_zoo``: a zoo of real callable generators (``_synth_toys``) that the worker processes import.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
TOY = "_synth_toys:make_toy"


@pytest.fixture(scope="module")
def cluster():
    """Two worker processes on 127.0.0.1; they import ``_synth_toys`` (sys.path is inherited)."""
    distributed = pytest.importorskip("distributed")
    with pytest.MonkeyPatch.context() as mp:
        mp.syspath_prepend(str(HERE))
        mp.setenv("TQDM_DISABLE", "1")
        with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                      host="127.0.0.1", dashboard_address=None) as lc, \
                distributed.Client(lc, set_as_default=False) as client:
            yield lc, client


@pytest.fixture(scope="module")
def toy_zoo(tmp_path_factory):
    from zoo.catalog import Catalog

    sys.path.insert(0, str(HERE))
    try:
        cat = Catalog(tmp_path_factory.mktemp("zoo"))
        for style in range(4):
            cat.register_callable(TOY, name=f"toy{style}@0", num_classes=2, image_shape=(28, 28),
                                  dataset="pneumoniamnist", style=style)
    finally:
        sys.path.remove(str(HERE))
    return cat


@pytest.fixture
def toy_catalog(tmp_path, monkeypatch):
    """A catalog of four toy generators ``toy0@0`` .. ``toy3@0`` (2 classes, 28x28; see
    ``_synth_toys.py``), for the synthesis and downstream tests."""
    from zoo.catalog import Catalog

    monkeypatch.syspath_prepend(str(Path(__file__).resolve().parent))
    cat = Catalog(tmp_path / "zoo")
    for s in range(4):
        cat.register_callable("_synth_toys:make_toy", name=f"toy{s}@0", num_classes=2,
                              image_shape=(28, 28), dataset="pneumoniamnist", style=s)
    return cat
