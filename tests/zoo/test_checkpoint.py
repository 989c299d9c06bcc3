"""Generator checkpoints: round trip, atomic writes, and refusal of every kind of bad file."""

from __future__ import annotations

import os
import pickle
import shlex

import numpy as np
import pytest
import torch
from torch import nn

from zoo.checkpoint import FORMAT, load_generator, read_checkpoint, save_generator
from zoo.generator import TorchGenerator
from zoo.io import sha256_file

CFG = {"latent_dim": 8, "num_classes": 2, "image_size": 28, "channels": 1,
       "output_activation": "tanh", "lr": 2e-4}


def _module(tiny, seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return tiny.G(CFG)


def _saved(tiny, tmp_path, name="G_10.pt", **kw):
    module = _module(tiny)
    path = tmp_path / "runs" / "tiny" / name
    digest = save_generator(path, architecture=kw.get("architecture", tiny.name),
                            config=kw.get("config", CFG), state_dict=module.state_dict(),
                            iteration=kw.get("iteration", 10))
    return module, path, digest


def test_round_trip_same_images(tiny, tmp_path):
    module, path, digest = _saved(tiny, tmp_path)
    assert digest == sha256_file(path)
    assert [p.name for p in path.parent.iterdir()] == ["G_10.pt"]  # no temp files left
    g = load_generator(path, sha256=digest, device="cpu")
    assert isinstance(g, TorchGenerator)
    assert (g.num_classes, g.image_shape, g.latent_dim) == (2, (28, 28), 8)
    assert g.meta["architecture"] == tiny.name and g.meta["iteration"] == 10 and g.meta["config"] == CFG
    direct = TorchGenerator(module, latent_dim=8, num_classes=2, image_shape=(28, 28), device="cpu")
    assert g.sample(16, seed=3).tobytes() == direct.sample(16, seed=3).tobytes()
    payload = read_checkpoint(path)
    assert payload["format"] == FORMAT and set(payload["state_dict"]) == set(module.state_dict())


def test_rgb_config_gives_rgb_images(tiny, tmp_path):
    cfg = dict(CFG, channels=3, image_size=32)
    torch.manual_seed(0)
    path = tmp_path / "rgb.pt"
    save_generator(path, architecture=tiny.name, config=cfg, state_dict=tiny.G(cfg).state_dict(),
                   iteration=0)
    x = load_generator(path, device="cpu").sample(3)
    assert x.shape == (3, 32, 32, 3) and x.dtype == np.uint8


def test_save_refuses_bad_arguments_and_writes_nothing(tiny, tmp_path):
    sd = _module(tiny).state_dict()
    out = tmp_path / "x.pt"
    with pytest.raises(ValueError, match="lacks \\['image_size'\\]"):
        save_generator(out, architecture=tiny.name,
                       config={k: v for k, v in CFG.items() if k != "image_size"},
                       state_dict=sd, iteration=1)
    with pytest.raises(ValueError, match="JSON"):
        save_generator(out, architecture=tiny.name, config=dict(CFG, lr=object()), state_dict=sd,
                       iteration=1)
    with pytest.raises(ValueError, match="iteration"):
        save_generator(out, architecture=tiny.name, config=CFG, state_dict=sd, iteration=-1)
    with pytest.raises(ValueError, match="expected a tensor"):
        save_generator(out, architecture=tiny.name, config=CFG, state_dict={"w": [1.0]}, iteration=1)
    with pytest.raises(ValueError, match="architecture"):
        save_generator(out, architecture="", config=CFG, state_dict=sd, iteration=1)
    assert list(tmp_path.iterdir()) == []


def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="G_404.pt"):
        load_generator(tmp_path / "G_404.pt")


def test_sha256_mismatch(tiny, tmp_path):
    _, path, digest = _saved(tiny, tmp_path)
    with pytest.raises(ValueError, match="changed or replaced"):
        load_generator(path, sha256="0" * 64, device="cpu")
    assert load_generator(path, sha256=digest, device="cpu").num_classes == 2


def test_truncated_and_corrupt_files(tiny, tmp_path):
    _, path, _ = _saved(tiny, tmp_path)
    data = path.read_bytes()
    for cut in (len(data) // 2, 100, 0):
        bad = tmp_path / f"cut{cut}.pt"
        bad.write_bytes(data[:cut])
        with pytest.raises(ValueError, match="truncated or corrupt") as info:
            load_generator(bad, device="cpu")
        assert bad.name in str(info.value)
    noise = tmp_path / "noise.pt"
    noise.write_bytes(np.random.default_rng(0).integers(0, 256, 5000, dtype=np.uint8).tobytes())
    with pytest.raises(ValueError, match="corrupt"):
        load_generator(noise, device="cpu")
    flipped = bytearray(data)
    flipped[len(flipped) // 2: len(flipped) // 2 + 64] = b"\xff" * 64
    corrupt = tmp_path / "flipped.pt"
    corrupt.write_bytes(bytes(flipped))
    with pytest.raises(ValueError, match="corrupt|do not match"):
        load_generator(corrupt, device="cpu")


class _Evil:
    """Unpickling this would run a shell command creating the marker file."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {shlex.quote(str(self.marker))}",))


class _Custom:
    """A harmless custom class: still code the weights-only loader must not import."""

    def __init__(self):
        self.x = 1


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")
def test_pickle_with_code_is_refused_and_not_run(tiny, tmp_path):
    marker = tmp_path / "pwned"
    sd = _module(tiny).state_dict()
    evil_payloads = {
        "reduce_in_state": {"format": FORMAT, "architecture": tiny.name, "config": CFG,
                            "state_dict": dict(sd, extra=_Evil(marker)), "iteration": 1},
        "reduce_top": _Evil(marker),
        "custom_class": {"format": FORMAT, "architecture": tiny.name, "config": CFG,
                         "state_dict": sd, "iteration": 1, "note": _Custom()},
    }
    for name, payload in evil_payloads.items():
        f = tmp_path / f"{name}.pt"
        torch.save(payload, f)
        with pytest.raises(ValueError, match="refusing to load") as info:
            load_generator(f, device="cpu")
        assert f.name in str(info.value)
        # plain (legacy, non-zip) pickle files too
        legacy = tmp_path / f"{name}.pkl"
        with open(legacy, "wb") as fh:
            pickle.dump(payload, fh)
        with pytest.raises(ValueError, match="refusing to load"):
            load_generator(legacy, device="cpu")
    assert not marker.exists()


def test_unknown_format_and_bare_state_dict(tiny, tmp_path):
    module = _module(tiny)
    other = tmp_path / "other.pt"
    torch.save({"format": "someone-else/3", "architecture": tiny.name, "config": CFG,
                "state_dict": module.state_dict(), "iteration": 0}, other)
    with pytest.raises(ValueError, match="someone-else/3"):
        load_generator(other, device="cpu")
    bare = tmp_path / "bare.pt"
    torch.save(module.state_dict(), bare)
    with pytest.raises(ValueError, match="bare state_dict.*save_generator"):
        load_generator(bare, device="cpu")
    incomplete = tmp_path / "incomplete.pt"
    torch.save({"format": FORMAT, "architecture": tiny.name, "config": CFG}, incomplete)
    with pytest.raises(ValueError, match="lacks \\['state_dict', 'iteration'\\]"):
        load_generator(incomplete, device="cpu")


def test_unknown_architecture(tiny, tmp_path):
    _, path, _ = _saved(tiny, tmp_path, architecture="no-such-gan")
    with pytest.raises(ValueError, match="'no-such-gan'.*register_architecture") as info:
        load_generator(path, device="cpu")
    assert tiny.name in str(info.value)  # lists the known architectures


def test_state_dict_not_matching_architecture(tiny, tmp_path):
    sd = _module(tiny).state_dict()
    wrong_shape = dict(CFG, latent_dim=4)  # stored config builds a smaller network than the weights
    path = tmp_path / "shape.pt"
    save_generator(path, architecture=tiny.name, config=wrong_shape, state_dict=sd, iteration=1)
    with pytest.raises(ValueError, match="do not match architecture.*size mismatch"):
        load_generator(path, device="cpu")
    missing = tmp_path / "missing.pt"
    save_generator(missing, architecture=tiny.name, config=CFG,
                   state_dict={k: v for k, v in sd.items() if k != "fc.bias"}, iteration=1)
    with pytest.raises(ValueError, match="Missing key"):
        load_generator(missing, device="cpu")
    extra = tmp_path / "extra.pt"
    save_generator(extra, architecture=tiny.name, config=CFG, state_dict=dict(sd, bogus=torch.zeros(1)),
                   iteration=1)
    with pytest.raises(ValueError, match="Unexpected key"):
        load_generator(extra, device="cpu")


def test_real_family_dcgan(tmp_path):
    from zoo.registry import create_generator, list_architectures

    assert "dcgan" in list_architectures()
    cfg = {"num_classes": 2, "image_size": 28, "channels": 1}
    torch.manual_seed(0)
    module = create_generator("dcgan", cfg)
    from zoo.registry import resolve_config

    full = resolve_config("dcgan", cfg)
    path = tmp_path / "dcgan.pt"
    save_generator(path, architecture="dcgan", config=full, state_dict=module.state_dict(), iteration=5)
    g = load_generator(path, device="cpu")
    direct = TorchGenerator(module, latent_dim=full["latent_dim"], num_classes=2, image_shape=(28, 28),
                            device="cpu")
    assert g.sample(8, seed=1).tobytes() == direct.sample(8, seed=1).tobytes()
    assert g.sample(8, seed=1, labels=[1] * 8).shape == (8, 28, 28)


def test_same_weights_give_the_same_file_bytes(tmp_path):
    """The sha256 in the catalog is a content hash: saving identical weights twice must agree."""
    import torch

    from zoo.checkpoint import save_generator

    sd = {"w": torch.arange(6, dtype=torch.float32).reshape(2, 3)}
    cfg = {"latent_dim": 8, "num_classes": 2, "image_size": 28, "channels": 1}
    kw = dict(architecture="dcgan", config=cfg, state_dict=sd, iteration=5)
    h1 = save_generator(tmp_path / "a.pt", **kw)
    h2 = save_generator(tmp_path / "sub" / "b.pt", **kw)
    assert h1 == h2
    assert (tmp_path / "a.pt").read_bytes() == (tmp_path / "sub" / "b.pt").read_bytes()
