"""Building score tables: the same tables in this process, in local processes and on Dask.

The cluster (``cluster``, tests/ensemble/conftest.py) is a real ``dask.distributed.LocalCluster``
on 127.0.0.1 (two single-threaded worker processes). The zoo (``toy_zoo``) holds real callable
generators (``_synth_toys``) that the worker processes import, and a tiny timm embedder.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
import pytest

from ensemble.features.embedder import Embedder
from ensemble.parallel import DaskBackend, LocalBackend
from ensemble.scoring.build import pair_blocks
from ensemble.scoring.tables import ScoreTables

distributed = pytest.importorskip("distributed")

HERE = Path(__file__).resolve().parents[1]  # tests/ensemble: _synth_toys lives there
FIELDS = ("counts", "n_fake", "hits", "density", "coverage", "d", "pairwise", "pairwise_directed")


@pytest.fixture(scope="module")
def real(pneumonia_small):
    return pneumonia_small.images[:64], pneumonia_small.labels[:64]


def _embedder() -> Embedder:
    return Embedder("test_resnet", weights="random", image_size=32, device="cpu")


def _score(zoo, real, cache, backend=None, per_class=False) -> ScoreTables:
    x, y = real
    return ScoreTables.compute(zoo, x, _embedder(), n_samples=40, k=3, seed=0, cache_dir=cache,
                               per_class=per_class, real_labels=y, backend=backend, progress=False)


@pytest.fixture(scope="module")
def reference(toy_zoo, real, tmp_path_factory):
    """The tables of the default, in-process code path (no backend)."""
    sys.path.insert(0, str(HERE))
    try:
        return _score(toy_zoo, real, tmp_path_factory.mktemp("ref-cache"), per_class=True)
    finally:
        sys.path.remove(str(HERE))


def _assert_same(a: ScoreTables, b: ScoreTables) -> None:
    assert a.names == b.names
    for f in FIELDS:
        assert np.array_equal(getattr(a, f), getattr(b, f), equal_nan=True), f
    assert list(a.by_class) == list(b.by_class)
    for c in a.by_class:
        _assert_same(a.by_class[c], b.by_class[c])


def test_pair_blocks_cover_every_pair_once():
    for p in (1, 2, 3, 7, 16, 33):
        for w in (1, 2, 16):
            pairs = [pr for block in pair_blocks(p, w) for pr in block]
            assert sorted(pairs) == [(g, h) for g in range(p) for h in range(g + 1, p)]
    blocks = pair_blocks(32, 2)
    assert len(blocks) == 21  # 6 groups of 5-6: 6 + 15 tiles, the largest first
    assert [len(b) for b in blocks] == sorted((len(b) for b in blocks), reverse=True)


class _Recording(LocalBackend):
    """The in-process local backend, recording which task functions it ran."""

    def __init__(self) -> None:
        super().__init__(1)
        self.ran: list[str] = []

    def map(self, fn, items, *, desc=None):
        items = list(items)
        self.ran += [fn.__name__] * len(items)
        return super().map(fn, items, desc=desc)


def test_the_default_path_is_the_in_process_local_backend(toy_zoo, real, reference, tmp_path):
    """No backend and LocalBackend(1) run the same tasks; a backend given runs every one of them."""
    rec = _Recording()
    sys.path.insert(0, str(HERE))
    try:
        tables = _score(toy_zoo, real, tmp_path / "cache", backend=rec, per_class=True)
    finally:
        sys.path.remove(str(HERE))
    _assert_same(reference, tables)
    p = len(tables.names)
    assert rec.ran.count("embed_generator_task") == p  # a cold cache: every generator sampled
    # the overall tables and one per class: p passes against real each, pair blocks for the rest
    assert rec.ran.count("score_generator_task") == 3 * p
    # per_class tables give class-intra-d's per-class fields without extra passes (issue 13)
    assert tables.has_labels
    for i, (c, t) in enumerate(zip(np.unique(tables.real_labels), tables.by_class.values(), strict=True)):
        np.testing.assert_array_equal(tables.class_counts[i], t.counts)
        np.testing.assert_array_equal(tables.class_n_fake[i], t.n_fake)
        np.testing.assert_array_equal(tables.class_hits[tables.real_labels == c], t.hits)
    assert set(rec.ran) == {"embed_generator_task", "score_generator_task", "score_pair_block_task"}


def test_score_stage_on_dask_equals_local(cluster, toy_zoo, real, reference, tmp_path):
    cache = tmp_path / "cache"  # a cold cache: the workers sample, embed and write it
    tables = _score(toy_zoo, real, cache, backend=DaskBackend(cluster[0].scheduler_address),
                    per_class=True)
    _assert_same(reference, tables)
    assert len(tables.by_class) == 2
    # the workers wrote the same content-keyed entries as the in-process path
    from ensemble.features.cache import FeatureCache

    assert len(FeatureCache(cache)) == 5  # four generators + the real set


def test_from_features_local_processes_equal_in_process():
    rng = np.random.default_rng(0)
    real = rng.normal(size=(120, 16)).astype(np.float32)
    fakes = {f"g{i}": (rng.normal(size=(60, 16)) * (1 + 0.2 * i)).astype(np.float32) for i in range(5)}
    a = ScoreTables.from_features(real, fakes, k=4, progress=False)
    _assert_same(a, ScoreTables.from_features(real, fakes, k=4, progress=False, backend="local"))
    _assert_same(a, ScoreTables.from_features(real, fakes, k=4, progress=False,
                                              backend=LocalBackend(2)))


def test_cli_score_and_zoo_train_take_backend_flags(cluster, toy_zoo, data_root, tmp_path, capsys):
    from ensemble.cli import main
    from ensemble.features.cache import FeatureCache

    addr = cluster[0].scheduler_address
    common = ["score", "--zoo", str(toy_zoo.zoo_dir), "--dataset", "pneumoniamnist", "--data-root",
              str(data_root), "--backbone", "test_resnet", "--subset", "48", "--n-samples", "24",
              "--k", "3", "--device", "cpu", "--top", "0", "--label-epochs", "0",
              "--cache-dir", str(tmp_path / "c")]
    sys.path.insert(0, str(HERE))
    try:
        assert main([*common, "--out", str(tmp_path / "b.npz"), "--backend", "dask",
                     "--scheduler", addr]) == 0
        assert f"DaskBackend(scheduler='{addr}'" in capsys.readouterr().out
        # the 4 generators (written by the workers), the real and the held-out validation images
        assert len(FeatureCache(tmp_path / "c")) == 6
        # the default backend on the same (now warm) cache: the same tables
        assert main([*common, "--out", str(tmp_path / "a.npz")]) == 0
    finally:
        sys.path.remove(str(HERE))
    _assert_same(ScoreTables.load(tmp_path / "a.npz"), ScoreTables.load(tmp_path / "b.npz"))
    assert main(["zoo", "train", "--dataset", "x", "--families", "dcgan", "--out", str(tmp_path / "z"),
                 "--backend", "local", "--scheduler", addr]) == 2  # --scheduler needs --backend dask


# ---------------------------------------------------------------------------- worker failure
# (last: the killed workers restart cold, which would slow the tests after it)


class _KillOnce(distributed.WorkerPlugin):
    """Kill the worker process the first time it starts a task whose key has a given prefix."""

    def __init__(self, marker_dir: str, prefixes: tuple[str, ...]) -> None:
        self.marker_dir, self.prefixes = marker_dir, prefixes

    def transition(self, key, start, finish, **kwargs):
        if finish != "executing":
            return
        for prefix in self.prefixes:
            if str(key).startswith(prefix):
                try:  # exactly once over all workers, restarted ones included
                    fd = os.open(os.path.join(self.marker_dir, prefix), os.O_CREAT | os.O_EXCL)
                except FileExistsError:
                    return
                os.close(fd)
                os._exit(1)


def test_worker_killed_mid_run_gives_the_same_tables(cluster, toy_zoo, real, reference, tmp_path):
    import cloudpickle

    lc, client = cluster
    # the workers cannot import this test module: ship the plugin class by value
    cloudpickle.register_pickle_by_value(sys.modules[__name__])
    prefixes = ("embed_generator_task", "score_pair_block_task")
    client.register_plugin(_KillOnce(str(tmp_path), prefixes), name="kill-once")
    try:
        tables = _score(toy_zoo, real, tmp_path / "cache", backend=DaskBackend(client, retries=0),
                        per_class=True)
    finally:  # (the restarted workers are not awaited: the module's cluster closes next)
        cloudpickle.unregister_pickle_by_value(sys.modules[__name__])
        client.unregister_worker_plugin("kill-once")
    assert all((tmp_path / p).exists() for p in prefixes), "no worker was killed"
    _assert_same(reference, tables)
