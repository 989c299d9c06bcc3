"""train_zoo: the zoo's runs as tasks give the same zoo on every backend, in the same order.

The cluster (``cluster``, tests/ensemble/conftest.py) is a real ``dask.distributed.LocalCluster``
on 127.0.0.1 with two single-threaded worker processes.
"""

from __future__ import annotations

import pytest

from ensemble.parallel import DaskBackend
from ensemble.zoo_training import DataSpec, train_zoo

pytest.importorskip("distributed")


def test_train_zoo_on_dask_gives_the_same_zoo(cluster, data_root, tmp_path):
    from zoo.catalog import Catalog

    data = DataSpec.resolve("pneumoniamnist", root=data_root, subset=64, subset_seed=0)
    runs = [{"arch": "dcgan", "g_width": 8, "d_width": 8},
            {"arch": "lsgan", "name": "ls", "g_width": 8, "d_width": 8, "seed": 3}]
    # CPU training is bit-identical for one torch thread count: pin it, as single-thread workers do
    kw = dict(data=data, iterations=3, snapshots=[2, 3], batch_size=16, device="cpu", torch_threads=1,
              progress=False)
    local = train_zoo(runs, out_dir=tmp_path / "local", **kw)
    remote = train_zoo(runs, out_dir=tmp_path / "dask", backend=DaskBackend(cluster[1]), **kw)
    assert [r["names"] for r in local] == [r["names"] for r in remote]
    assert remote[1]["names"] == ["ls@2", "ls@3"] and remote[0]["run"].startswith("dcgan")
    a, b = Catalog(tmp_path / "local").list(), Catalog(tmp_path / "dask").list()
    assert list(a["name"]) == list(b["name"])  # same catalog order, whatever finished first
    assert list(a["sha256"]) == list(b["sha256"])  # bit-identical generators
    assert list(b["path"]) == [f"runs/{r['run']}/G_{s}.pt" for r in remote for s in (2, 3)]
    assert not (tmp_path / "dask" / ".staging").exists()
    again = train_zoo(runs, out_dir=tmp_path / "dask", backend=DaskBackend(cluster[1]), **kw)
    assert [r["trained"] for r in again] == [False, False]
    assert [r["ids"] for r in again] == [r["ids"] for r in remote]
