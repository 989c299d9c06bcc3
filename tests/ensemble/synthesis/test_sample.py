"""sample_ensemble: exact class/member balance, provenance, determinism, bad input."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from ensemble.search.result import Ensemble
from ensemble.synthesis.sample import (
    PROVENANCE_COLUMNS,
    SyntheticSamples,
    allocate,
    sample_ensemble,
)
from zoo.seeding import derive_seed

HERE = Path(__file__).resolve().parent.parent  # tests/ensemble: _synth_toys.py
TOY = "_synth_toys:make_toy"


@pytest.fixture
def toy_catalog(tmp_path, monkeypatch):
    """A zoo of four toy callable generators (2 classes, 28x28) plus odd ones out."""
    from zoo.catalog import Catalog

    monkeypatch.syspath_prepend(str(HERE))
    cat = Catalog(tmp_path / "zoo")
    for s in range(4):
        cat.register_callable(TOY, name=f"toy{s}@0", num_classes=2, image_shape=(28, 28),
                              dataset="pneumoniamnist", style=s)
    cat.register_callable(TOY, name="three@0", num_classes=3, image_shape=(28, 28), classes=3, style=1)
    cat.register_callable(TOY, name="three-b@0", num_classes=3, image_shape=(28, 28), classes=3, style=2)
    cat.register_callable(TOY, name="big@0", num_classes=2, image_shape=(32, 32), size=32)
    cat.register_callable(TOY, name="rgb@0", num_classes=2, image_shape=(28, 28, 3), rgb=True)
    return cat


def test_exact_balance_per_class_and_member(toy_catalog):
    names = ["toy0@0", "toy1@0", "toy2@0"]
    s = sample_ensemble(names, toy_catalog, n_per_class=10, seed=0, device="cpu")
    assert isinstance(s, SyntheticSamples)
    assert s.images.shape == (20, 28, 28) and s.images.dtype == np.uint8 and s.labels.dtype == np.int64
    assert s.class_names == ["normal", "pneumonia"]
    assert s.class_counts().tolist() == [10, 10]
    # 10 = 3 + 3 + 3 + 1 spare; the spare image rotates: class 0 -> member 0, class 1 -> member 1.
    assert s.counts_table().to_numpy().tolist() == [[4, 3], [3, 4], [3, 3]]
    assert list(s.provenance.columns[:6]) == list(PROVENANCE_COLUMNS)
    np.testing.assert_array_equal(s.provenance["label"].to_numpy(), s.labels)
    assert s.members == names and s.groups.tolist() == [names.index(n) for n in s.provenance["name"]]
    assert s.meta["dataset"] == "pneumoniamnist" and s.meta["order"] == "shuffled"
    # shuffled, not grouped: labels are not sorted and a short prefix holds both classes
    assert not np.all(np.diff(s.labels) >= 0)
    assert set(s.labels[:8]) == {0, 1}


def test_provenance_reproduces_each_image(toy_catalog):
    names = ["toy0@0", "toy3@0"]
    s = sample_ensemble(names, toy_catalog, n_per_class=5, seed=7, device="cpu")
    for name in names:
        rows = s.provenance[s.provenance["name"] == name].sort_values("index")
        seed = int(rows["seed"].iloc[0])
        assert seed == derive_seed(7, "synth", name)
        assert rows["generator"].iloc[0] == name and rows["iteration"].iloc[0] == 0
        again = toy_catalog.load(name, device="cpu").sample(len(rows), labels=rows["label"].to_numpy(),
                                                           seed=seed)
        np.testing.assert_array_equal(s.images[rows.index.to_numpy()], again[rows["index"].to_numpy()])


def test_deterministic_and_seeded(toy_catalog):
    names = ["toy1@0", "toy2@0"]
    a = sample_ensemble(names, toy_catalog, n_per_class=6, seed=3, device="cpu")
    b = sample_ensemble(names, toy_catalog, n_per_class=6, seed=3, device="cpu")
    c = sample_ensemble(names, toy_catalog, n_per_class=6, seed=4, device="cpu")
    np.testing.assert_array_equal(a.images, b.images)
    np.testing.assert_array_equal(a.labels, b.labels)
    assert a.provenance.equals(b.provenance)
    assert not np.array_equal(a.images, c.images)


def test_weights_counts_and_ensemble_object(toy_catalog):
    ens = Ensemble(["toy0@0", "toy1@0", "toy2@0"], intra_d=0.8, inter_d=0.2, rule="max-intra",
                   meta={"backbone": "resnet18", "k": 5})
    s = sample_ensemble(ens, toy_catalog, n_per_class=8, member_weights=[2, 1, 1], seed=0, device="cpu")
    assert s.counts_table().to_numpy().tolist() == [[4, 4], [2, 2], [2, 2]]
    assert s.meta["rule"] == "max-intra" and s.meta["intra_d"] == 0.8
    assert s.meta["ensemble_meta"]["backbone"] == "resnet18"
    w = sample_ensemble(ens, toy_catalog, n_per_class=4, member_weights={"toy0@0": 1, "toy2@0": 1},
                        seed=0, device="cpu")
    assert w.counts_table().loc["toy1@0"].sum() == 0 and "toy1@0" not in set(w.provenance["name"])
    t = sample_ensemble(["three@0", "three-b@0"], toy_catalog, class_counts=[5, 0, 7], seed=0, device="cpu")
    assert t.class_counts().tolist() == [5, 0, 7] and t.class_names == ["0", "1", "2"]
    m = sample_ensemble(["three@0"], toy_catalog, class_counts={2: 3}, seed=0, device="cpu")
    assert m.labels.tolist() == [2, 2, 2]
    rgb = sample_ensemble(["rgb@0"], toy_catalog, n_per_class=2, seed=0, device="cpu")
    assert rgb.images.shape == (4, 28, 28, 3)


def test_allocate_properties():
    counts = np.array([7, 0, 13, 5, 1])
    a = allocate(counts, 3)
    assert a.sum(0).tolist() == counts.tolist()
    assert a.sum(1).max() - a.sum(1).min() <= 1  # the spares rotate over members
    b = allocate(np.array([100, 100]), 3, [0.5, 0.3, 0.2])
    assert b[:, 0].tolist() == [50, 30, 20] and b.sum(0).tolist() == [100, 100]


def test_bad_input(toy_catalog):
    with pytest.raises(ValueError, match="n_per_class"):
        sample_ensemble(["toy0@0"], toy_catalog)
    with pytest.raises(ValueError, match="not both"):
        sample_ensemble(["toy0@0"], toy_catalog, n_per_class=2, class_counts=[1, 1])
    with pytest.raises(ValueError, match="disagree"):
        sample_ensemble(["toy0@0", "three@0"], toy_catalog, n_per_class=2)
    with pytest.raises(ValueError, match="disagree"):
        sample_ensemble(["toy0@0", "big@0"], toy_catalog, n_per_class=2)
    with pytest.raises(ValueError, match="nope@1"):
        sample_ensemble(["toy0@0", "nope@1"], toy_catalog, n_per_class=2)
    with pytest.raises(ValueError, match="one weight per member"):
        sample_ensemble(["toy0@0", "toy1@0"], toy_catalog, n_per_class=2, member_weights=[1])
    with pytest.raises(ValueError, match="one count per class"):
        sample_ensemble(["toy0@0"], toy_catalog, class_counts=[1, 2, 3])
    with pytest.raises(ValueError, match="positive integer"):
        sample_ensemble(["toy0@0"], toy_catalog, n_per_class=0)
    with pytest.raises(ValueError, match="repeat"):
        sample_ensemble(["toy0@0", "toy0@0"], toy_catalog, n_per_class=2)
