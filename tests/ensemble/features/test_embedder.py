"""Embedder: timm backbones, preprocessing, weight sources, in-domain training, bad input."""

from __future__ import annotations

import socket
import time

import numpy as np
import pytest
import timm
import torch

from ensemble.features import indomain
from ensemble.features.cache import FeatureCache
from ensemble.features.embedder import Embedder, preprocess
from zoo.io import sha256_file

BACKBONE = "test_resnet"  # timm's tiny test ResNet (0.4 M parameters, 96 features)


@pytest.fixture(scope="module")
def images(pneumonia_small):
    return pneumonia_small.images[:64]


@pytest.fixture(scope="module")
def labelled(pneumonia_small):
    return pneumonia_small.images[:128], pneumonia_small.labels[:128]


def _reference_features(model, images, image_size, mean, std):
    """What the embedder should compute: timm model (head removed) on preprocessed images."""
    model = model.eval()
    model.reset_classifier(0)
    x = preprocess(torch.from_numpy(images), image_size=image_size,
                   mean=torch.tensor(mean, dtype=torch.float32), std=torch.tensor(std, dtype=torch.float32),
                   replicate=True)
    with torch.inference_mode():
        return model(x).numpy()


def test_constructor_only_stores_params():
    e = Embedder("no_such_model_xyz", weights="random", image_size=7, channels="weird")
    assert e.backbone == "no_such_model_xyz" and e.image_size == 7
    assert not hasattr(e, "model_")


def test_scikit_learn_contract_and_clone(images, tmp_path):
    from sklearn.base import clone

    e = Embedder(BACKBONE, weights="random", image_size=32, device="cpu", seed=4, epochs=2,
                 cache_dir=tmp_path)
    params = e.get_params(deep=True)
    assert params == {"backbone": BACKBONE, "weights": "random", "image_size": 32,
                      "channels": "replicate", "device": "cpu", "batch_size": 256, "seed": 4,
                      "epochs": 2, "lr": 1e-3, "fit_batch_size": 128, "cache_dir": tmp_path}
    assert e.fit(images[:8], np.array([0, 1] * 4)) is e and e.model_ is not None
    c = clone(e)
    assert c is not e and c.get_params() == params and not hasattr(c, "model_")
    np.testing.assert_array_equal(c.embed(images[:8]), e.embed(images[:8]))
    assert c.set_params(seed=5, image_size=40) is c and (c.seed, c.image_size) == (5, 40)
    with pytest.raises(ValueError, match="Invalid parameter"):
        c.set_params(no_such_param=1)


def test_shape_determinism_and_seed(images):
    state = torch.get_rng_state()
    a = Embedder(BACKBONE, image_size=32, seed=0)
    fa = a.embed(images)
    assert torch.equal(state, torch.get_rng_state()), "the global torch RNG must not be touched"
    assert fa.dtype == np.float32 and fa.shape == (64, 96) and a.dim == 96
    assert np.isfinite(fa).all() and fa.std(0).mean() > 0
    fb = Embedder(BACKBONE, image_size=32, seed=0, batch_size=7).embed(images)
    np.testing.assert_allclose(fa, fb, rtol=1e-4, atol=1e-6)
    fc = Embedder(BACKBONE, image_size=32, seed=1).embed(images)
    assert not np.allclose(fa, fc)
    assert a.identity == "random:seed0"
    parts = a.cache_key_parts()
    assert parts["backbone"] == BACKBONE and parts["weights"] == "random:seed0"
    assert parts["image_size"] == 32 and parts["channels"] == "replicate"


def test_matches_timm_model_with_data_config(images):
    e = Embedder(BACKBONE, image_size=48, seed=3)
    feats = e.embed(images[:8])
    with torch.random.fork_rng(devices=[]):
        from zoo.seeding import derive_seed

        torch.manual_seed(derive_seed(3, "embed", "init", BACKBONE))
        model = timm.create_model(BACKBONE, num_classes=0, in_chans=3)
    cfg = timm.data.resolve_data_config({}, model=model)
    ref = _reference_features(model, images[:8], 48, cfg["mean"], cfg["std"])
    np.testing.assert_allclose(feats, ref, rtol=1e-5, atol=1e-6)


def test_preprocess_resizes_normalises_and_replicates():
    x = torch.full((2, 28, 28), 255, dtype=torch.uint8)
    out = preprocess(x, image_size=32, mean=torch.tensor([0.5, 0.5, 0.5]), std=torch.tensor([0.5, 0.5, 0.5]),
                     replicate=True)
    assert out.shape == (2, 3, 32, 32)
    torch.testing.assert_close(out, torch.ones_like(out))
    rgb = torch.zeros((1, 16, 16, 3), dtype=torch.uint8)
    rgb[..., 1] = 255
    out = preprocess(rgb, image_size=16, mean=torch.zeros(3), std=torch.ones(3), replicate=True)
    assert out.shape == (1, 3, 16, 16) and out[0, 1].min() == 1 and out[0, 0].max() == 0


def test_native_vs_replicate_channels(images):
    rep = Embedder(BACKBONE, channels="replicate")
    nat = Embedder(BACKBONE, channels="native")
    fr, fn = rep.embed(images), nat.embed(images)
    assert fr.shape == fn.shape == (64, 96)
    assert rep.in_chans_ == 3 and nat.in_chans_ == 1
    assert nat.mean_.numel() == 1 and float(nat.mean_) == pytest.approx(float(rep.mean_.mean()))
    assert not np.allclose(fr, fn)
    # colour input works with both policies
    rgb = np.repeat(images[:4, ..., None], 3, axis=-1)
    assert Embedder(BACKBONE).embed(rgb).shape == (4, 96)
    # replicate: a grayscale image equals its 3-channel copy
    np.testing.assert_allclose(rep.embed(rgb), fr[:4], rtol=1e-5, atol=1e-6)
    # a native embedder built for one channel refuses colour later
    with pytest.raises(ValueError, match="channel"):
        nat.embed(rgb)


def _trained_like_model(seed=5, num_classes=10):
    torch.manual_seed(seed)
    return timm.create_model(BACKBONE, num_classes=num_classes)  # includes a classifier head


def test_local_weights_roundtrip_pth_and_safetensors(images, tmp_path):
    from safetensors.torch import save_file

    model = _trained_like_model()
    sd = model.state_dict()
    pth, st, wrapped = tmp_path / "w.pth", tmp_path / "w.safetensors", tmp_path / "ckpt.pt"
    torch.save(sd, pth)
    save_file({k: v.contiguous() for k, v in sd.items()}, str(st))
    torch.save({"epoch": 3, "state_dict": {"module." + k: v for k, v in sd.items()}}, wrapped)
    cfg = timm.data.resolve_data_config({}, model=model)
    ref = _reference_features(model, images[:16], 32, cfg["mean"], cfg["std"])
    for path in (pth, st, wrapped):
        e = Embedder(BACKBONE, weights=str(path), image_size=32)
        np.testing.assert_allclose(e.embed(images[:16]), ref, rtol=1e-5, atol=1e-6)
        assert e.identity == f"file:{sha256_file(path)}"
    assert Embedder(BACKBONE, weights=pth).identity != Embedder(BACKBONE, weights=st).identity
    # a 3-channel stem is adapted to native single-channel input
    assert Embedder(BACKBONE, weights=pth, channels="native").embed(images[:4]).shape == (4, 96)


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")
def test_bad_weights_files(images, tmp_path):
    sd = _trained_like_model().state_dict()
    missing = tmp_path / "missing_keys.pth"
    torch.save({k: v for k, v in sd.items() if not k.startswith("layer1")}, missing)
    with pytest.raises(ValueError, match="missing key"):
        Embedder(BACKBONE, weights=missing).embed(images[:2])
    other = tmp_path / "resnet18.pth"
    torch.save(timm.create_model("resnet10t", num_classes=0).state_dict(), other)
    with pytest.raises(ValueError, match="does not fit backbone"):
        Embedder(BACKBONE, weights=other).embed(images[:2])
    with pytest.raises(FileNotFoundError, match="not found"):
        Embedder(BACKBONE, weights=tmp_path / "nope.pth").embed(images[:2])
    bad_suffix = tmp_path / "w.txt"
    bad_suffix.write_text("x")
    with pytest.raises(ValueError, match="suffix"):
        Embedder(BACKBONE, weights=bad_suffix).embed(images[:2])
    corrupt = tmp_path / "corrupt.pth"
    corrupt.write_bytes(b"\x80\x04garbage")
    with pytest.raises(ValueError, match="cannot read weights file"):
        Embedder(BACKBONE, weights=corrupt).embed(images[:2])
    code = tmp_path / "code.pth"
    torch.save({"fn": _trained_like_model}, code)  # a pickle that references code
    with pytest.raises(ValueError, match="cannot read weights file"):
        Embedder(BACKBONE, weights=code).embed(images[:2])


def test_hub_offline_fails_fast(images, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    t0 = time.monotonic()
    with pytest.raises(ValueError, match="offline") as info:
        Embedder("resnet18", weights="hub").embed(images[:2])
    assert time.monotonic() - t0 < 20
    assert "weights='random'" in str(info.value)


def test_hub_unreachable_fails_fast(images, monkeypatch):
    """Not flagged offline, but the hub cannot be reached: a quick probe, no minutes of retries."""
    import huggingface_hub.constants as hf_constants

    with socket.socket() as s:  # a local port with nothing listening: connection refused
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    monkeypatch.setattr(hf_constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{port}")
    monkeypatch.setenv("TORCH_HOME", "/nonexistent-torch-home")
    t0 = time.monotonic()
    with pytest.raises(ValueError, match="cannot be reached"):
        Embedder("test_resnet", weights="hub").embed(images[:2])
    assert time.monotonic() - t0 < 20


def test_hub_weights_from_local_cache(images, tmp_path, monkeypatch):
    """Hub weights already in the torch hub cache load offline (resnet10t's timm URL file)."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    torch.manual_seed(0)
    sd = timm.create_model("resnet10t", num_classes=1000).state_dict()
    url = timm.models.get_pretrained_cfg("resnet10t").url
    ckpt = tmp_path / "hub" / "checkpoints" / url.rsplit("/", 1)[-1]
    ckpt.parent.mkdir(parents=True)
    torch.save(sd, ckpt)
    hub = Embedder("resnet10t", weights="hub")
    assert hub.identity.startswith("hub:") and "resnet10t" in hub.identity
    np.testing.assert_allclose(hub.embed(images[:8]), Embedder("resnet10t", weights=ckpt).embed(images[:8]),
                               rtol=1e-5, atol=1e-6)


def test_in_domain_fit_and_reuse(labelled, monkeypatch):
    x, y = labelled
    e = Embedder(BACKBONE, weights="in-domain", image_size=32, epochs=1, fit_batch_size=64)
    with pytest.raises(ValueError, match="fit"):
        e.embed(x[:4])
    with pytest.raises(ValueError, match="fit"):
        e.identity  # noqa: B018
    assert e.fit(x, y) is e
    from safetensors.torch import load_file

    from ensemble.features.weights import state_digest

    assert e.identity == f"in-domain:{state_digest(load_file(str(e.weights_path_)))}"
    assert e.weights_path_.parent == FeatureCache().models_dir
    trained = e.embed(x[:16])
    assert trained.shape == (16, 96)
    assert not np.allclose(trained, Embedder(BACKBONE, image_size=32).embed(x[:16]))

    def no_training(*args, **kwargs):
        raise AssertionError("cached in-domain weights must be reused, not trained again")

    monkeypatch.setattr(indomain, "train_backbone", no_training)
    again = Embedder(BACKBONE, weights="in-domain", image_size=32, epochs=1, fit_batch_size=64).fit(x, y)
    assert again.identity == e.identity
    np.testing.assert_allclose(again.embed(x[:16]), trained, rtol=1e-5, atol=1e-6)
    # other data is another model
    with pytest.raises(AssertionError, match="reused"):
        Embedder(BACKBONE, weights="in-domain", image_size=32, epochs=1, fit_batch_size=64).fit(x[:64], y[:64])
    with pytest.raises(ValueError, match="2 classes"):
        Embedder(BACKBONE, weights="in-domain").fit(x[:8], np.zeros(8, np.int64))


def test_fit_is_a_no_op_for_fixed_weights(labelled):
    x, y = labelled
    e = Embedder(BACKBONE).fit(x, y)
    assert e.model_ is not None and e.identity == "random:seed0"


def test_bad_inputs(images):
    e = Embedder(BACKBONE)
    with pytest.raises(ValueError, match="uint8"):
        e.embed(images.astype(np.float32))
    with pytest.raises(ValueError, match="shape"):
        e.embed(images[0])
    with pytest.raises(ValueError, match="shape"):
        e.embed(np.zeros((2, 8, 8, 2), np.uint8))
    with pytest.raises(ValueError, match="empty"):
        e.embed(images[:0])
    with pytest.raises(ValueError, match="numpy"):
        e.embed(images.tolist())
    with pytest.raises(ValueError, match="resnet18"):
        Embedder("resnt18").embed(images[:2])
    with pytest.raises(ValueError, match="channels"):
        Embedder(BACKBONE, channels="rgb").embed(images[:2])
    with pytest.raises(ValueError, match="image_size"):
        Embedder(BACKBONE, image_size=2).embed(images[:2])
    with pytest.raises(ValueError, match="batch_size"):
        Embedder(BACKBONE, batch_size=0).embed(images[:2])
    with pytest.raises(ValueError, match="pretrained tag"):
        Embedder("resnet18.bogus").embed(images[:2])
    with pytest.raises(ValueError, match="larger image_size"):  # too small for its strides
        Embedder("test_convnext", image_size=16).embed(images[:2])


def test_state_digest_ignores_key_order_and_file_format():
    """The in-domain identity hashes tensors, so re-saving identical weights keeps cache keys."""
    import torch

    from ensemble.features.weights import state_digest

    a = {"w": torch.ones(2, 3), "b": torch.zeros(3, dtype=torch.int64)}
    assert state_digest(a) == state_digest(dict(reversed(list(a.items()))))
    assert state_digest(a) != state_digest({"w": torch.ones(2, 3) * 2, "b": a["b"]})
    assert state_digest(a) != state_digest({"w": torch.ones(3, 2), "b": a["b"]})
    assert state_digest({"n": torch.tensor(3)}) != state_digest({"n": torch.tensor(4)})  # 0-dim


def test_embedder_rebuilt_on_a_worker_gives_the_same_features(pneumonia_small, tmp_path):
    from ensemble.features.embedder import build_embedder, embedder_params

    x, y = pneumonia_small.images[:64], pneumonia_small.labels[:64]
    for weights in ("random", "in-domain"):
        emb = Embedder("test_resnet", weights=weights, image_size=32, device="cpu", epochs=1,
                       cache_dir=tmp_path).fit(x, y)
        params, weights_file = embedder_params(emb)
        assert (weights_file is not None) == (weights == "in-domain")
        assert np.array_equal(emb.embed(x[:16]), build_embedder(params, weights_file).embed(x[:16]))
    with pytest.raises(FileNotFoundError, match="must be shared by every worker"):
        build_embedder(params, str(tmp_path / "absent.safetensors"))
