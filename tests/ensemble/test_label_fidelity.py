"""ensemble.label_fidelity: a classifier of real images judges whether samples show their class."""

from __future__ import annotations

import numpy as np
import pytest

from ensemble.label_fidelity import LabelClassifier, fit_label_classifier, label_agreement


def test_label_agreement_of_real_images_with_true_and_swapped_labels(pneumonia, pneumonia_small):
    train, held = pneumonia_small, pneumonia.subset(256, seed=1)
    judge = fit_label_classifier(train.images, train.labels, held.images, held.labels, epochs=2,
                                 seed=0, device="cpu")
    assert isinstance(judge, LabelClassifier) and 0.0 < judge.val_accuracy <= 1.0
    true = label_agreement(judge, held.images, held.labels)
    assert true == pytest.approx(judge.val_accuracy)  # same images, same labels
    swapped = label_agreement(judge.classifier, held.images, 1 - held.labels)
    assert swapped == pytest.approx(1.0 - true)  # two classes: every image agrees with one
    with pytest.raises(ValueError, match="255 labels for 256 images"):
        label_agreement(judge, held.images, held.labels[:-1])
    assert label_agreement(judge, held.images[:1], np.asarray([[held.labels[0]]])) in (0.0, 1.0)


@pytest.fixture(scope="module")
def split_for_members(data_root):
    """A classifier training set, a real validation subset and a disjoint, class-balanced pool of
    real training images (120 per class) that the sample-set members are made of."""
    from ensemble.data import Dataset, load_dataset

    train = load_dataset("pneumoniamnist", split="train", root=data_root)
    val = load_dataset("pneumoniamnist", split="val", root=data_root).subset(256, seed=1)
    perm = np.random.default_rng(0).permutation(len(train))
    fit_idx, rest = perm[:2048], perm[2048:]
    pool = np.concatenate([rest[train.labels[rest] == c][:120] for c in (0, 1)])
    fit = Dataset(train.images[fit_idx], train.labels[fit_idx], train.class_names, train.name)
    return fit, val, train.images[pool], train.labels[pool]


def test_label_agreement_table_real_members_high_shuffled_at_chance_swapped_low(split_for_members,
                                                                               tmp_path):
    """Real images under their own labels agree; under shuffled labels they sit at chance (1/K with
    balanced labels); under swapped labels they disagree. A real classifier fit, two epochs."""
    from ensemble.label_fidelity import label_agreement_table
    from zoo.catalog import Catalog

    train, val, images, labels = split_for_members
    rng = np.random.default_rng(1)
    (tmp_path / "zoo").mkdir()
    cat = Catalog(tmp_path / "zoo")
    for name, y in (("real", labels), ("shuffled", rng.permutation(labels)), ("swapped", 1 - labels)):
        np.savez(cat.zoo_dir / f"{name}.npz", images=images, labels=y)
        cat.register_samples(cat.zoo_dir / f"{name}.npz", name=name, num_classes=2)
    names = ["swapped", "real", "shuffled"]
    cache = tmp_path / "cache"
    df = label_agreement_table(cat, names, train, val, n_samples=200, seed=0, device="cpu", epochs=2,
                               cache_dir=cache)
    assert list(df.columns) == ["name", "label_agreement"] and df["name"].tolist() == names
    a = df.set_index("name")["label_agreement"]
    assert df.attrs["val_accuracy"] > 0.8 and df.attrs["labels"] == "balanced"
    assert df.attrs["n_samples"] == 200 and df.attrs["epochs"] == 2
    assert a["real"] >= 0.8
    assert 0.35 <= a["shuffled"] <= 0.65
    assert a["swapped"] <= 0.2
    # a second call (names=None: catalog order) reads the judge's predictions from the cache
    models = sorted((cache / "models").glob("label-classifier-*.safetensors"))
    assert len(models) == 1
    again = label_agreement_table(cat, None, train, val, n_samples=200, seed=0, device="cpu", epochs=2,
                                  cache_dir=cache)
    assert again.set_index("name")["label_agreement"].to_dict() == a.to_dict()
    assert again.attrs["val_accuracy"] == df.attrs["val_accuracy"]


def test_label_agreement_table_needs_a_validation_split(split_for_members, tmp_path):
    from ensemble.label_fidelity import label_agreement_table
    from zoo.catalog import Catalog

    train, _, images, labels = split_for_members
    (tmp_path / "zoo").mkdir()
    cat = Catalog(tmp_path / "zoo")
    np.savez(cat.zoo_dir / "real.npz", images=images, labels=labels)
    cat.register_samples(cat.zoo_dir / "real.npz", name="real", num_classes=2)
    with pytest.raises(ValueError, match="needs the real validation split"):
        label_agreement_table(cat, ["real"], train, None, n_samples=10, device="cpu")
    with pytest.raises(ValueError, match="epochs must be a positive integer"):
        label_agreement_table(cat, ["real"], train, train, n_samples=10, epochs=0, device="cpu")
