"""The memorisation audit (issue 16): exact nearest real images, authenticity, the held-out test.

Distances are checked against a brute-force float64 computation (squared differences summed in
float64, cast to float32, square-rooted) and prdc's own distances; the flags against members made
of copies of training images and of held-out real images.
"""

from __future__ import annotations

import numpy as np
import pytest
from prdc.prdc import compute_pairwise_distance

from ensemble.scoring.knn import compare_sets, knn_radii, knn_radii_many, nearest_neighbours
from ensemble.scoring.memorisation import (
    MEMORISATION_COLUMNS,
    byte_copies,
    close_flags,
    reference_rate,
)
from ensemble.scoring.tables import ScoreTables


def relu(rng: np.random.Generator, n: int, dim: int, mix: np.ndarray, offset: float = 0.0) -> np.ndarray:
    return (np.maximum(rng.standard_normal((n, dim)) @ mix + offset, 0.0)
            + 0.1 * rng.standard_normal((n, dim))).astype(np.float32)


def brute_nearest(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Brute force: float64 squared differences -> float32 -> sqrt, min over a (first on ties)."""
    d64 = ((a.astype(np.float64)[:, None, :] - b.astype(np.float64)[None]) ** 2).sum(-1)
    d = np.sqrt(d64.astype(np.float32))
    return d.min(0), d64.argmin(0)


@pytest.fixture(scope="module")
def split():
    """Real training, validation and test features from one distribution (D = 48)."""
    rng = np.random.default_rng(16)
    mix = rng.standard_normal((48, 48)) / np.sqrt(48)
    x = relu(rng, 1500, 48, mix, offset=0.3)
    return {"train": x[:800], "val": x[800:1000], "test": x[1000:], "mix": mix, "rng": rng}


@pytest.mark.parametrize("kernel", [True, False])
@pytest.mark.parametrize("block_elems", [None, 3000])
def test_nearest_distances_equal_brute_force(kernel, block_elems):
    rng = np.random.default_rng(3)
    mix = rng.standard_normal((32, 32)) / np.sqrt(32)
    a, b = relu(rng, 400, 32, mix, 2.0), relu(rng, 700, 32, mix, 2.0)
    b[:40] = a[100:140]  # exact copies
    a[7] = a[8]  # a duplicate in A: two rows at distance 0 from b[60]
    b[60] = a[8]
    b[61] = a[9] + np.float32(1e-3)  # near copies
    st = compare_sets(a, b, radii_a=knn_radii(a, 5), need=("rows_a",), nearest_b=True, kernel=kernel,
                      block_elems=block_elems)
    dist, idx = brute_nearest(a, b)
    np.testing.assert_array_equal(st.nn_dist_b, dist)
    np.testing.assert_array_equal(st.nn_index_b, idx)
    assert st.nn_index_b[60] == 7 and st.n_nn_exact >= 1  # the exact tie: lowest index, decided exactly
    assert st.nn_copy_b.sum() == 41 and st.nn_copy_b[:40].all() and st.nn_copy_b[60]
    # prdc's own distance matrix agrees wherever the features differ (it may leave ~1e-7 on copies)
    ref = compute_pairwise_distance(a, b)
    np.testing.assert_array_equal(st.nn_dist_b[~st.nn_copy_b], ref.min(0)[~st.nn_copy_b])
    # the audit leaves the other outputs as they were
    plain = compare_sets(a, b, radii_a=knn_radii(a, 5), need=("rows_a",), kernel=kernel,
                         block_elems=block_elems)
    assert plain.count_a == st.count_a and np.array_equal(plain.rows_a, st.rows_a)


@pytest.mark.parametrize("block_elems", [None, 700])
def test_knn_radii_many_equals_one_k_at_a_time(block_elems):
    """The audit's 1-NN radii come from the real radii's pass: each k as knn_radii gives it alone."""
    rng = np.random.default_rng(11)
    x = rng.standard_normal((300, 12)).astype(np.float32)
    x[200:230] = x[:30]  # duplicates: radii of 0 and wide bands
    many = knn_radii_many(x, (5, 1, 3), block_elems=block_elems)
    assert sorted(many) == [1, 3, 5]
    for k, r in many.items():
        np.testing.assert_array_equal(r, knn_radii(x, k, block_elems=block_elems))
    d = np.sort(compute_pairwise_distance(x), axis=1)
    np.testing.assert_array_equal(many[1][30:200], d[30:200, 1])
    with pytest.raises(ValueError, match="ks is empty"):
        knn_radii_many(x, ())


def test_nearest_neighbours_function_and_one_row():
    rng = np.random.default_rng(5)
    a, b = rng.standard_normal((1, 4)).astype(np.float32), rng.standard_normal((9, 4)).astype(np.float32)
    d, i = nearest_neighbours(a, b)
    assert (i == 0).all()
    np.testing.assert_array_equal(d, brute_nearest(a, b)[0])


def test_close_flags_and_reference_rate():
    nn1 = np.array([1.0, 2.0, 0.5], np.float32)
    assert close_flags([0.9, 2.0, 0.1], [0, 1, 2], nn1).tolist() == [True, False, True]
    assert reference_rate(0, 100) == pytest.approx(1 - 0.01 ** (1 / 100))  # Clopper-Pearson at k = 0
    assert reference_rate(10, 10) == 1.0
    assert reference_rate(5, 100) > 0.05


def test_copies_flagged_and_held_out_not(split):
    rng = split["rng"]
    train = split["train"]
    fakes = {
        "copies": train[rng.integers(0, len(train), 250)],  # 250 samples on training images
        "held-out": split["test"][:400],  # new real images: the honest rate
        "shifted": relu(rng, 300, 48, split["mix"], offset=0.45),
        "half-copies": np.concatenate([train[:120], split["test"][400:520]]),
    }
    t = ScoreTables.from_features(train, fakes, k=5, holdout=split["val"], progress=False)
    mem = t.memorisation
    assert list(mem.index) == t.names and set(MEMORISATION_COLUMNS) <= set(mem.columns)
    assert mem.loc["copies", "exact_copies"] == 250 == mem.loc["copies", "n_samples"]
    assert mem.loc["copies", "copy_rate"] == 1.0 and mem.loc["copies", "flagged"]
    assert not mem.loc["held-out", "flagged"] and mem.loc["held-out", "exact_copies"] == 0
    assert mem.loc["half-copies", "flagged"] and mem.loc["half-copies", "exact_copies"] == 120
    assert t.flagged == ["copies", "half-copies"]
    # the held-out rate is the validation split's close rate against the training images
    d, i = brute_nearest(train, split["val"])
    nn1 = knn_radii(train, 1)
    assert mem.loc["copies", "holdout_rate"] == pytest.approx(close_flags(d, i, nn1).mean())
    assert mem.attrs["n_holdout"] == len(split["val"]) and mem.attrs["alpha"] == 0.01
    # every sample's nearest real image: brute force
    for name, f in fakes.items():
        dist, idx = t.nearest(name)
        bd, bi = brute_nearest(train, f)
        np.testing.assert_array_equal(dist, bd)
        np.testing.assert_array_equal(idx, bi)
        assert mem.loc[name, "n_close"] == int(close_flags(bd, bi, nn1).sum())
    # the scores themselves do not change with the audit
    plain = ScoreTables.from_features(train, fakes, k=5, progress=False)
    assert plain.memorisation is None and plain.flagged == []
    for field in ("counts", "hits", "density", "coverage", "d"):
        assert np.array_equal(getattr(plain, field), getattr(t, field)), field
    np.testing.assert_array_equal(plain.pairwise_directed, t.pairwise_directed)


def test_audit_saved_loaded_and_subset(split, tmp_path):
    rng = split["rng"]
    fakes = {"a": split["train"][:60], "b": split["test"][:90], "c": relu(rng, 70, 48, split["mix"])}
    t = ScoreTables.from_features(split["train"], fakes, k=5, holdout=split["val"], progress=False)
    back = ScoreTables.load(t.save(tmp_path / "t.npz"))
    assert back.memorisation.equals(t.memorisation) and back.memorisation.attrs == t.memorisation.attrs
    np.testing.assert_array_equal(back.nn_index, t.nn_index)
    np.testing.assert_array_equal(back.nn_dist, t.nn_dist)
    sub = t.subset(["c", "a"])
    assert list(sub.memorisation.index) == ["c", "a"]
    np.testing.assert_array_equal(sub.nearest("a")[1], t.nearest("a")[1])
    assert t.memorisation_of(["a"])["a"]["exact_copies"] == 60
    # tables saved without an audit (older files) load with none
    old = ScoreTables.load(ScoreTables.from_features(split["train"], fakes, k=5, progress=False)
                           .save(tmp_path / "old.npz"))
    assert old.memorisation is None and old.memorisation_of(["a"]) == {}
    with pytest.raises(ValueError, match="no memorisation audit"):
        old.nearest("a")


def test_holdout_dimension_checked(split):
    with pytest.raises(ValueError, match="held-out real features have dimension"):
        ScoreTables.from_features(split["train"], {"a": split["test"][:20]}, holdout=split["val"][:, :5],
                                  pairwise=False, progress=False)


def test_byte_copies():
    rng = np.random.default_rng(0)
    train = rng.integers(0, 256, (50, 8, 8), dtype=np.uint8)
    imgs = rng.integers(0, 256, (10, 8, 8), dtype=np.uint8)
    imgs[3] = train[17]
    assert byte_copies(train, imgs).tolist() == [i == 3 for i in range(10)]
    assert not byte_copies(train, imgs.astype(np.int16)).any()


def test_regenerated_samples_are_the_scored_ones(toy_zoo, pneumonia_small):
    """The figure and byte copies draw the scored samples again: the same images, so the same features."""
    from ensemble.features import Embedder, compute_features
    from ensemble.scoring.memorisation import regenerate_scored_samples

    emb = Embedder("test_resnet", weights="random", image_size=32, device="cpu")
    real = pneumonia_small.images[:40]
    fs = compute_features(toy_zoo, real, emb, n_samples=12, seed=7, cache=False, progress=False)
    for name in fs.names[:2]:
        images = regenerate_scored_samples(toy_zoo, name, 12, 7, device="cpu")
        np.testing.assert_array_equal(emb.embed(images, progress=False), fs.fake[name])
