"""Downstream evaluation: classifiers, metrics against sklearn, training on real data, arms."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn import metrics as skm

from ensemble.downstream import (
    METRICS,
    ResNet18Cifar,
    TrainingSource,
    build_arms,
    classification_metrics,
    compare,
    create_classifier,
    epoch_indices,
    evaluate_classifier,
    list_classifiers,
    plot_comparison,
    run_protocol,
    summarize,
    train_classifier,
)
from ensemble.search import Ensemble

HERE = Path(__file__).resolve().parent


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """One torch thread: on a shared 2-core machine, more threads only contend (4x slower here)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def pneumonia_val(data_root):
    from ensemble.data import load_medmnist

    return load_medmnist("pneumoniamnist", split="val", root=data_root, download=False)


@pytest.fixture(scope="module")
def pneumonia_test(data_root):
    from ensemble.data import load_medmnist

    return load_medmnist("pneumoniamnist", split="test", root=data_root, download=False)


def test_registry_and_architectures():
    assert {"small-cnn", "resnet18-cifar"} <= set(list_classifiers())
    with pytest.raises(ValueError, match="known: .*small-cnn"):
        create_classifier("vgg-nope")
    net = create_classifier("resnet18-cifar", in_channels=1, num_classes=3)
    assert isinstance(net, ResNet18Cifar)
    stem = net.stem[0]
    assert stem.kernel_size == (3, 3) and stem.stride == (1, 1) and stem.in_channels == 1
    assert not any(isinstance(m, torch.nn.MaxPool2d) for m in net.modules())
    assert net(torch.zeros(2, 1, 28, 28)).shape == (2, 3)
    rgb = create_classifier("small-cnn", in_channels=3, num_classes=4)
    assert rgb(torch.zeros(2, 3, 32, 32)).shape == (2, 4)


def test_binary_metrics_match_sklearn(rng):
    y = rng.integers(0, 2, 300)
    p1 = np.clip(0.35 * y + rng.random(300) * 0.65, 0, 1)
    proba = np.stack([1 - p1, p1], axis=1)
    pred = proba.argmax(1)
    got = classification_metrics(y, proba)
    assert set(got) == set(METRICS)
    assert got["accuracy"] == pytest.approx(skm.accuracy_score(y, pred))
    assert got["precision"] == pytest.approx(skm.precision_score(y, pred))
    assert got["recall"] == pytest.approx(skm.recall_score(y, pred))
    assert got["specificity"] == pytest.approx(skm.recall_score(y, pred, pos_label=0))
    assert got["f1"] == pytest.approx(skm.f1_score(y, pred))
    assert got["roc_auc"] == pytest.approx(skm.roc_auc_score(y, p1))
    assert got["g_mean"] == pytest.approx(np.sqrt(got["recall"] * got["specificity"]))
    # Predicting everything positive: recall 1, specificity 0, g-mean 0.
    allpos = classification_metrics(y, np.tile([0.0, 1.0], (300, 1)))
    assert allpos["recall"] == 1.0 and allpos["specificity"] == 0.0 and allpos["g_mean"] == 0.0


def test_multiclass_metrics_match_sklearn(rng):
    y = rng.integers(0, 4, 400)
    logits = rng.normal(size=(400, 4)) + 1.5 * np.eye(4)[y]
    proba = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    pred = proba.argmax(1)
    got = classification_metrics(y, proba)
    assert got["precision"] == pytest.approx(skm.precision_score(y, pred, average="macro"))
    assert got["recall"] == pytest.approx(skm.recall_score(y, pred, average="macro"))
    assert got["f1"] == pytest.approx(skm.f1_score(y, pred, average="macro"))
    assert got["roc_auc"] == pytest.approx(skm.roc_auc_score(y, proba, multi_class="ovr", average="macro"))
    cm = skm.confusion_matrix(y, pred)
    spec = [(cm.sum() - cm[c].sum() - cm[:, c].sum() + cm[c, c]) / (cm.sum() - cm[c].sum())
            for c in range(4)]
    assert got["specificity"] == pytest.approx(np.mean(spec))
    # A class missing from y_true makes the AUC undefined, not an exception.
    assert np.isnan(classification_metrics(np.zeros(5, int), np.tile([0.5, 0.5], (5, 1)))["roc_auc"])


def test_member_sampler_is_uniform_over_members():
    groups = np.r_[np.zeros(1000, int), np.ones(10, int), np.full(90, 2)]
    idx = epoch_indices(len(groups), np.random.default_rng(0), size=30_000, sampler="member",
                        groups=groups)
    share = np.bincount(groups[idx], minlength=3) / len(idx)
    np.testing.assert_allclose(share, 1 / 3, atol=0.015)
    # every image of the small member is reachable
    assert set(idx[groups[idx] == 1]) == set(range(1000, 1010))
    perm = epoch_indices(7, np.random.default_rng(0), size=10, sampler="shuffle")
    assert len(perm) == 10 and set(perm[:7]) == set(range(7))
    with pytest.raises(ValueError, match="unknown sampler"):
        epoch_indices(5, np.random.default_rng(0), sampler="nope")
    with pytest.raises(ValueError, match="needs groups"):
        epoch_indices(5, np.random.default_rng(0), sampler="member")


def test_train_on_real_pneumonia(pneumonia_small, pneumonia_val, pneumonia_test):
    val = pneumonia_val.subset(200, seed=1)
    clf = train_classifier(pneumonia_small.images, pneumonia_small.labels, val.images, val.labels,
                           model="small-cnn", epochs=2, seed=0, device="cpu", progress=False)
    h = clf.history
    assert list(h.columns[:4]) == ["epoch", "train_loss", "val_loss", "val_accuracy"]
    assert len(h) == clf.epochs_run == 2
    assert clf.best_epoch == int(h.loc[h["val_loss"].idxmin(), "epoch"])
    test = pneumonia_test.subset(300, seed=0)
    m = evaluate_classifier(clf, test.images, test.labels)
    assert m["roc_auc"] > 0.7  # learned something real from 512 images (chance is 0.5)
    # Same seed, same first epoch.
    again = train_classifier(pneumonia_small.images, pneumonia_small.labels, val.images, val.labels,
                             model="small-cnn", epochs=1, seed=0, device="cpu", progress=False)
    assert again.history["val_loss"].iloc[0] == pytest.approx(h["val_loss"].iloc[0], rel=1e-5)


def test_best_weights_restored_and_early_stopping(pneumonia_small):
    # Validation labels flipped: the better the network learns, the worse its validation loss, so
    # the best epoch comes early and training must stop and roll back to it.
    x, y = pneumonia_small.images[:128], pneumonia_small.labels[:128]
    clf = train_classifier(x, y, x[:64], 1 - y[:64], epochs=8, patience=2, lr_patience=1, lr=3e-3,
                           batch_size=32, seed=1, device="cpu", progress=False)
    h = clf.history
    assert clf.epochs_run < 8 and clf.epochs_run == clf.best_epoch + 2
    assert h["val_loss"].iloc[-1] > clf.best_val_loss
    proba = clf.predict_proba(x[:64])
    loss = float(-np.mean(np.log(proba[np.arange(64), 1 - y[:64]] + 1e-12)))
    assert loss == pytest.approx(clf.best_val_loss, rel=1e-4)
    assert loss < h["val_loss"].iloc[-1]


def test_train_bad_inputs(pneumonia_small):
    x, y = pneumonia_small.images[:20], pneumonia_small.labels[:20]
    with pytest.raises(ValueError, match="validation images"):
        train_classifier(x, y, np.zeros((4, 32, 32), np.uint8), np.zeros(4), epochs=1, device="cpu")
    with pytest.raises(ValueError, match="needs groups"):
        train_classifier(x, y, x, y, sampler="member", epochs=1, device="cpu")
    with pytest.raises(ValueError, match="unknown classifier"):
        train_classifier(x, y, x, y, model="nope", epochs=1, device="cpu")


def test_compare_summarize_plot(tmp_path, pneumonia_small, pneumonia_val):
    real = pneumonia_small.subset(128, seed=2)
    val = pneumonia_val.subset(64, seed=0)
    rng = np.random.default_rng(0)
    fake = {f"g{i}": rng.integers(0, 256, (64, 28, 28), dtype=np.uint8) for i in range(3)}
    lab = np.tile([0, 1], 32)

    def arm(names):
        return TrainingSource(np.concatenate([fake[n] for n in names]), np.tile(lab, len(names)),
                              groups=np.repeat(np.arange(len(names)), 64), samples_per_epoch=128)

    arms = {"real": TrainingSource.from_dataset(real), "G*": arm(["g0", "g1"]),
            "single:g0": arm(["g0"]), "single:g1": arm(["g1"]), "single:g2": arm(["g2"]),
            "random-ensemble-0": arm(["g1", "g2"])}
    df = compare(arms, val, val, seeds=(0, 1), epochs=1, device="cpu", progress=False)
    assert list(df.columns[:2]) == ["arm", "seed"] and set(METRICS) <= set(df.columns)
    assert len(df) == 12 and df.groupby("arm").size().eq(2).all()
    s = summarize(df)
    assert {"arm", "n_runs", "g_mean_mean", "g_mean_std", "aggregate", "note"} <= set(s.columns)
    rows = s.set_index("arm")
    assert {"single (mean)", "single (best)", "random-ensemble (mean)"} <= set(rows.index)
    singles = rows.loc[["single:g0", "single:g1", "single:g2"], "g_mean_mean"]
    assert rows.loc["single (mean)", "g_mean_mean"] == pytest.approx(singles.mean())
    assert rows.loc["single (best)", "g_mean_mean"] == pytest.approx(singles.max())
    assert rows.loc["single (best)", "note"].startswith(singles.idxmax())
    g = df[df.arm == "G*"]["accuracy"]
    assert rows.loc["G*", "accuracy_mean"] == pytest.approx(g.mean())
    assert rows.loc["G*", "accuracy_std"] == pytest.approx(g.std())
    png = plot_comparison(s, tmp_path / "downstream.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(ValueError, match="known"):
        plot_comparison(s, tmp_path / "x.png", metric="nope")
    # run_protocol accepts a plain (images, labels) tuple
    one = run_protocol((real.images, real.labels), val, val, seeds=(3,), epochs=1, device="cpu",
                       progress=False)
    assert isinstance(one, pd.DataFrame) and one["seed"].tolist() == [3]


def test_build_arms_from_catalog(tmp_path, monkeypatch, pneumonia_small):
    from zoo.catalog import Catalog

    monkeypatch.syspath_prepend(str(HERE))
    cat = Catalog(tmp_path / "zoo")
    names = []
    for s in range(4):
        cat.register_callable("_synth_toys:make_toy", name=f"toy{s}@0", num_classes=2,
                              image_shape=(28, 28), dataset="pneumoniamnist", style=s)
        names.append(f"toy{s}@0")
    ens = Ensemble(names[:2], intra_d=0.9, inter_d=0.1, rule="max-intra")
    arms = build_arms(cat, ens, pneumonia_small, n_per_class=10, n_random=2, seed=0, device="cpu")
    assert list(arms)[:2] == ["real", "G*"]
    assert {f"single:{n}" for n in names} <= set(arms)
    assert "naive (all pooled)" in arms
    randoms = [a for a in arms if a.startswith("random-ensemble-")]
    assert len(randoms) == 2
    for a in randoms:
        assert len(arms[a].meta["members"]) == 2 and set(arms[a].meta["members"]) != set(names[:2])
    assert len(arms["real"]) == len(pneumonia_small)
    g = arms["G*"]
    assert len(g) == 40 and g.samples_per_epoch == len(pneumonia_small) and g.sampler == "member"
    assert np.bincount(g.groups).tolist() == [20, 20]
    assert np.bincount(g.labels).tolist() == [20, 20]
    assert len(arms["naive (all pooled)"]) == 80
    # A member's images are the same in every arm it belongs to (sampled once).
    single = arms[f"single:{names[0]}"]
    np.testing.assert_array_equal(g.images[g.groups == 0], single.images)


def test_cli_evaluate(tmp_path, monkeypatch, pneumonia_small, pneumonia_val, pneumonia_test, capsys):
    import argparse

    from ensemble.cli import evaluate as evaluate_cli
    from zoo.catalog import Catalog

    monkeypatch.syspath_prepend(str(HERE))
    cat = Catalog(tmp_path / "zoo")
    for s in range(3):
        cat.register_callable("_synth_toys:make_toy", name=f"toy{s}@0", num_classes=2,
                              image_shape=(28, 28), dataset="pneumoniamnist", style=s)
    sel = Ensemble(["toy0@0", "toy1@0"], rule="max-intra").save(tmp_path / "selected.json")
    # A small file in MedMNIST layout stands in for the real splits (real images, fewer of them).
    small = tmp_path / "pneumoniamnist_small.npz"
    parts = {"train": pneumonia_small.subset(96, seed=0), "val": pneumonia_val.subset(48, seed=0),
             "test": pneumonia_test.subset(48, seed=0)}
    np.savez(small, **{f"{k}_images": v.images for k, v in parts.items()},
             **{f"{k}_labels": v.labels[:, None] for k, v in parts.items()})
    parser = argparse.ArgumentParser()
    evaluate_cli.register(parser.add_subparsers(dest="command"))
    out = tmp_path / "eval"
    args = parser.parse_args(["evaluate", "--zoo", str(cat.zoo_dir), "--selected", str(sel),
                              "--dataset", str(small), "--seeds", "0,1", "--epochs", "1",
                              "--n-per-class", "8", "--n-random", "1", "--device", "cpu",
                              "--out", str(out)])
    assert args.func(args) == 0
    df = pd.read_csv(out / "comparison.csv")
    assert set(df["arm"]) == {"real", "G*", "single:toy0@0", "single:toy1@0", "single:toy2@0",
                              "naive (all pooled)", "random-ensemble-0"}
    assert len(df) == 14 and set(METRICS) <= set(df.columns)
    s = pd.read_csv(out / "summary.csv")
    assert {"single (mean)", "single (best)"} <= set(s["arm"])
    assert (out / "downstream.png").read_bytes()[:4] == b"\x89PNG"
    assert "G*" in capsys.readouterr().out
