"""compute_features: sampling, labels, caching (warm hits, invalidation, resume) and bad input.

The zoo holds real callable generators (the zoo's foreign-generator kind) from a module written
into the test's folder, so the test can count their sample() calls and edit their source.
"""

from __future__ import annotations

import importlib
import sys
import textwrap

import numpy as np
import pytest

from ensemble.features import FeatureSet, compute_features, sample_labels
from ensemble.features.cache import FeatureCache
from ensemble.features.embedder import Embedder
from zoo.seeding import derive_seed

GEN_SOURCE = textwrap.dedent('''
    """Stripe generators for the feature tests (class = stripe period, style = brightness)."""
    import numpy as np

    CALLS = []     # (style, n, seed) of every sample() call
    FAIL = set()   # styles whose sample() raises (a run killed part-way)
    BASE = {base}


    class Stripes:
        def __init__(self, style, size):
            self.style, self.num_classes, self.image_shape = style, 2, (size, size)

        def sample(self, n, labels=None, seed=0):
            CALLS.append((self.style, n, seed))
            if self.style in FAIL:
                raise RuntimeError("killed")
            rng = np.random.default_rng([seed, self.style])
            labels = np.asarray(labels)
            h = self.image_shape[0]
            rows = np.arange(h)[None, :, None] % (2 + labels[:, None, None]) == 0
            img = BASE + 30.0 * self.style + 150.0 * rows + rng.normal(0, 10, (n, h, h))
            return np.clip(np.round(img), 0, 255).astype(np.uint8)


    def make(style=0, size=28):
        return Stripes(style, size)
''')


@pytest.fixture
def genmod(tmp_path, monkeypatch, request):
    """Write the generator module under a unique name and import it."""
    name = f"featgen_{request.node.name.replace('[', '_').replace(']', '_')}"
    (tmp_path / "mods").mkdir()
    (tmp_path / "mods" / f"{name}.py").write_text(GEN_SOURCE.format(base=40.0))
    monkeypatch.syspath_prepend(str(tmp_path / "mods"))
    monkeypatch.setattr(sys, "dont_write_bytecode", True)
    mod = importlib.import_module(name)
    yield mod
    sys.modules.pop(name, None)


@pytest.fixture
def zoo(tmp_path, genmod):
    from zoo.catalog import Catalog

    cat = Catalog(tmp_path / "zoo")
    for style in range(3):
        cat.register_callable(f"{genmod.__name__}:make", name=f"g{style}@0", num_classes=2,
                              image_shape=(28, 28), dataset="pneumoniamnist", style=style)
    genmod.CALLS.clear()
    return cat


@pytest.fixture(scope="module")
def real(pneumonia_small):
    return pneumonia_small.images[:48], pneumonia_small.labels[:48]


def _embedder():
    return Embedder("test_resnet", weights="random", image_size=32, device="cpu")


def test_features_shapes_labels_and_meta(zoo, genmod, real, tmp_path):
    x, y = real
    fs = compute_features(zoo, x, _embedder(), n_samples=40, seed=0, cache=tmp_path / "c",
                          real_labels=y, progress=False)
    assert isinstance(fs, FeatureSet) and fs.names == ["g0@0", "g1@0", "g2@0"]
    assert fs.real.shape == (48, 96) and fs.real.dtype == np.float32
    np.testing.assert_array_equal(fs.real_labels, y)
    for name in fs.names:
        assert fs.fake[name].shape == (40, 96) and fs.fake[name].dtype == np.float32
        lab = fs.fake_labels[name]
        assert lab.dtype == np.int64 and lab.shape == (40,) and set(lab.tolist()) == {0, 1}
    # each generator sampled once, with its derived seed and the requested count
    assert sorted(genmod.CALLS) == sorted((s, 40, derive_seed(0, "sample", f"g{s}@0")) for s in range(3))
    assert not np.allclose(fs.fake["g0@0"], fs.fake["g1@0"])
    assert fs.meta["backbone"] == "test_resnet" and fs.meta["weights"] == "random:seed0"
    assert fs.meta["image_size"] == 32 and fs.meta["channels"] == "replicate"
    assert fs.meta["n_samples"] == 40 and fs.meta["seed"] == 0 and "package_version" in fs.meta
    # real features do not depend on the generators: equal to a direct embedding
    np.testing.assert_allclose(fs.real, _embedder().embed(x), rtol=1e-5, atol=1e-6)


def test_default_n_samples_is_real_count_and_names_subset(zoo, real):
    x, _ = real
    fs = compute_features(zoo, x, _embedder(), names=["g2@0", "g0@0"], cache=False, progress=False)
    assert fs.names == ["g2@0", "g0@0"]
    assert fs.fake["g2@0"].shape == (48, 96) and fs.meta["n_samples"] == 48


def test_warm_cache_only_loads(zoo, genmod, real, tmp_path):
    x, _ = real
    cache = FeatureCache(tmp_path / "c")
    first = compute_features(zoo, x, _embedder(), n_samples=24, cache=cache, progress=False)
    assert len(genmod.CALLS) == 3 and len(cache) == 4  # three generators + the real set
    genmod.CALLS.clear()
    second = compute_features(zoo, x, _embedder(), n_samples=24, cache=cache, progress=False)
    assert genmod.CALLS == [], "a warm cache must not sample the generators again"
    np.testing.assert_array_equal(first.real, second.real)
    for name in first.names:
        np.testing.assert_array_equal(first.fake[name], second.fake[name])
        np.testing.assert_array_equal(first.fake_labels[name], second.fake_labels[name])
    # anything the features depend on is a miss: seed, sample count, embedder weights, image size
    compute_features(zoo, x, _embedder(), n_samples=24, seed=1, cache=cache, progress=False)
    assert len(genmod.CALLS) == 3
    compute_features(zoo, x, _embedder(), n_samples=25, cache=cache, progress=False)
    assert len(genmod.CALLS) == 6
    compute_features(zoo, x, Embedder("test_resnet", seed=1, image_size=32), n_samples=24, cache=cache,
                     progress=False)
    assert len(genmod.CALLS) == 9
    compute_features(zoo, x, Embedder("test_resnet", image_size=40), n_samples=24, cache=cache,
                     progress=False)
    assert len(genmod.CALLS) == 12


def test_changed_generator_is_never_served_stale(zoo, genmod, real, tmp_path):
    from zoo.catalog import Catalog

    x, _ = real
    cache = FeatureCache(tmp_path / "c")
    before = compute_features(zoo, x, _embedder(), n_samples=24, cache=cache, progress=False)
    genmod.CALLS.clear()
    # edit the generators' source (new sha256), re-register them under the same names
    path = tmp_path / "mods" / f"{genmod.__name__}.py"
    path.write_text(GEN_SOURCE.format(base=90.0))
    mod = importlib.reload(genmod)
    zoo2 = Catalog(tmp_path / "zoo")
    for style in range(3):
        zoo2.remove(f"g{style}@0")
        zoo2.register_callable(f"{mod.__name__}:make", name=f"g{style}@0", num_classes=2,
                               image_shape=(28, 28), style=style)
    mod.CALLS.clear()
    after = compute_features(zoo2, x, _embedder(), n_samples=24, cache=cache, progress=False)
    assert len(mod.CALLS) == 3, "a changed checkpoint must be sampled again"
    np.testing.assert_array_equal(before.real, after.real)  # the real entry is still valid
    assert not np.allclose(before.fake["g0@0"], after.fake["g0@0"])


def test_killed_run_resumes_from_cache(zoo, genmod, real, tmp_path):
    x, _ = real
    cache = FeatureCache(tmp_path / "c")
    genmod.FAIL.add(2)
    with pytest.raises(RuntimeError, match="killed"):
        compute_features(zoo, x, _embedder(), n_samples=24, cache=cache, progress=False)
    assert len(cache) == 3  # real + g0 + g1 were kept
    genmod.FAIL.clear()
    genmod.CALLS.clear()
    fs = compute_features(zoo, x, _embedder(), n_samples=24, cache=cache, progress=False)
    assert [c[0] for c in genmod.CALLS] == [2], "only the unfinished generator is sampled"
    assert fs.names == ["g0@0", "g1@0", "g2@0"]


def test_per_class_labels_are_balanced(zoo, real):
    x, y = real
    fs = compute_features(zoo, x, _embedder(), n_samples=31, per_class=True, real_labels=y,
                          cache=False, progress=False)
    for lab in fs.fake_labels.values():
        counts = np.bincount(lab, minlength=2)
        assert counts.sum() == 31 and abs(int(counts[0]) - int(counts[1])) <= 1
    assert fs.meta["per_class"] is True
    with pytest.raises(ValueError, match="real_labels"):
        compute_features(zoo, x, _embedder(), per_class=True, cache=False, progress=False)


def test_sample_labels():
    a = sample_labels(1000, 3, seed=0)
    np.testing.assert_array_equal(a, sample_labels(1000, 3, seed=0))
    assert not np.array_equal(a, sample_labels(1000, 3, seed=1))
    assert a.dtype == np.int64 and set(a.tolist()) == {0, 1, 2}
    assert np.all(np.abs(np.bincount(a) / 1000 - 1 / 3) < 0.06)
    b = sample_labels(10, 3, seed=0, per_class=True)
    assert sorted(np.bincount(b).tolist()) == [3, 3, 4] and not np.all(np.diff(b) >= 0)


def test_bad_inputs(zoo, real, tmp_path):
    from zoo.catalog import Catalog

    x, y = real
    e = _embedder()
    with pytest.raises(ValueError, match=r"\(28, 28\).*\(32, 32\)|\(32, 32\).*\(28, 28\)"):
        compute_features(zoo, np.zeros((8, 32, 32), np.uint8), e, cache=False, progress=False)
    with pytest.raises(ValueError, match="not in the zoo catalog"):
        compute_features(zoo, x, e, names=["g0@0", "nope@1"], cache=False, progress=False)
    with pytest.raises(ValueError, match="no generators"):
        compute_features(Catalog(tmp_path / "empty"), x, e, cache=False, progress=False)
    with pytest.raises(ValueError, match="n_samples"):
        compute_features(zoo, x, e, n_samples=0, cache=False, progress=False)
    with pytest.raises(ValueError, match="uint8"):
        compute_features(zoo, x.astype(np.float32), e, cache=False, progress=False)
    with pytest.raises(ValueError, match="real_labels"):
        compute_features(zoo, x, e, real_labels=y[:-1], cache=False, progress=False)
    with pytest.raises(ValueError, match="only 2 classes"):
        compute_features(zoo, x, e, real_labels=np.full(len(x), 2), cache=False, progress=False)
    with pytest.raises(ValueError, match="cache"):
        compute_features(zoo, x, e, cache=3, progress=False)
    with pytest.raises(ValueError, match="in-domain"):
        compute_features(zoo, x, Embedder("test_resnet", weights="in-domain"), cache=False, progress=False)


def test_score_cli_writes_tables(zoo, data_root, tmp_path, capsys):
    """`gan-ensemble score` end to end on the stripe zoo (its feature stage is this module)."""
    import argparse

    from ensemble.cli import score
    from ensemble.scoring.tables import ScoreTables

    parser = argparse.ArgumentParser(prog="gan-ensemble")
    score.register(parser.add_subparsers(dest="command"))
    out = tmp_path / "tables.npz"
    argv = ["score", "--zoo", str(tmp_path / "zoo"), "--dataset", "pneumoniamnist", "--data-root",
            str(data_root), "--backbone", "test_resnet", "--subset", "64", "--n-samples", "32",
            "--label-epochs", "0", "--cache-dir", str(tmp_path / "c"), "--device", "cpu", "--out", str(out)]
    args = parser.parse_args(argv)
    assert isinstance(args.func(args), dict)  # the command's result (printed by main with --json)
    text = capsys.readouterr().out
    tables = ScoreTables.load(out)
    assert tables.names == ["g0@0", "g1@0", "g2@0"] and tables.n_real == 64
    best = tables.names[int(np.argmax(tables.d))]
    assert f"best single generator by d: {best}" in text and "3 generators scored" in text
    assert tables.meta["backbone"] == "test_resnet" and tables.meta["n_samples"] == 32
    bad = parser.parse_args(argv[:-1] + [str(tmp_path / "tables.csv")])
    with pytest.raises(ValueError, match=".npz"):
        bad.func(bad)
