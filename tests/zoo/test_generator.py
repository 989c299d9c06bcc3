"""The generator protocol: determinism, uint8 mapping, label handling and bad input."""

from __future__ import annotations

import textwrap

import numpy as np
import pytest
import torch
from torch import nn

from zoo.generator import (
    CallableGenerator,
    Generator,
    TorchGenerator,
    TorchScriptGenerator,
    normalize_image_shape,
    resolve_labels,
)

pytestmark = pytest.mark.filterwarnings("ignore::FutureWarning")  # torch.jit deprecation notices


class TinyG(nn.Module):
    """A small conditional generator: (z, labels) -> tanh images (n, C, H, W)."""

    def __init__(self, latent_dim: int = 8, num_classes: int = 3, size: int = 6, channels: int = 1,
                 activation: str = "tanh", dropout: float = 0.0):
        super().__init__()
        torch.manual_seed(0)  # the same weights every time
        self.size = size
        self.channels = channels
        self.embed = nn.Embedding(num_classes, latent_dim)
        self.fc = nn.Linear(latent_dim, channels * size * size)
        self.drop = nn.Dropout(dropout)
        self.use_tanh = activation == "tanh"
        nn.init.normal_(self.fc.weight, std=0.7)
        nn.init.normal_(self.embed.weight, std=2.0)

    def forward(self, z: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        x = self.fc(self.drop(z + self.embed(labels)))
        if self.use_tanh:
            x = torch.tanh(x)
        return x.view(z.shape[0], self.channels, self.size, self.size)


class ConstG(nn.Module):
    """Outputs a fixed value everywhere (to check the [-1, 1] -> uint8 mapping)."""

    def __init__(self, value: float):
        super().__init__()
        self.value = value

    def forward(self, z, labels):
        return torch.full((z.shape[0], 1, 2, 2), self.value)


def _gen(**kw) -> TorchGenerator:
    opts = dict(latent_dim=8, num_classes=3, image_shape=(6, 6), device="cpu")
    opts.update(kw)
    return TorchGenerator(TinyG(), **opts)


def test_sample_shape_dtype_and_protocol():
    g = _gen()
    x = g.sample(10, seed=1)
    assert x.dtype == np.uint8 and x.shape == (10, 6, 6)
    assert isinstance(g, Generator)
    assert x.min() < 64 and x.max() > 192  # really spans the range
    rgb = TorchGenerator(TinyG(channels=3), latent_dim=8, num_classes=3, image_shape=(6, 6, 3),
                         device="cpu")
    y = rgb.sample(4)
    assert y.shape == (4, 6, 6, 3) and y.dtype == np.uint8


def test_same_seed_same_bytes_across_batch_sizes():
    a = _gen(batch_size=256).sample(50, seed=7)
    b = _gen(batch_size=7).sample(50, seed=7)
    c = _gen(batch_size=1).sample(50, seed=7)
    assert a.tobytes() == b.tobytes() == c.tobytes()
    assert a.tobytes() != _gen().sample(50, seed=8).tobytes()
    # asking again gives the same bytes
    assert _gen().sample(50, seed=7).tobytes() == a.tobytes()


def test_labels_none_draws_uniform_labels_from_the_seed():
    g = _gen()
    drawn = resolve_labels(600, None, 3, seed=5)
    assert drawn.dtype == np.int64 and set(np.unique(drawn)) == {0, 1, 2}
    assert np.all(np.abs(np.bincount(drawn) - 200) < 50)
    assert np.array_equal(drawn, resolve_labels(600, None, 3, seed=5))
    assert g.sample(30, seed=5).tobytes() == g.sample(30, labels=drawn[:30], seed=5).tobytes()
    # labels matter: the same codes with other labels give other images
    zeros = g.sample(30, labels=np.zeros(30, int), seed=5)
    twos = g.sample(30, labels=[2] * 30, seed=5)
    assert zeros.tobytes() != twos.tobytes()


def test_uint8_mapping_and_clamping():
    for value, want in [(-1.0, 0), (1.0, 255), (0.0, 128), (5.0, 255), (-3.0, 0), (0.5, 191)]:
        g = TorchGenerator(ConstG(value), latent_dim=2, num_classes=1, image_shape=(2, 2),
                           device="cpu", output_activation="none")
        assert np.all(g.sample(3) == want), value


def test_eval_mode_makes_dropout_inactive():
    g = TorchGenerator(TinyG(dropout=0.5), latent_dim=8, num_classes=3, image_shape=(6, 6), device="cpu")
    assert not g.module.training
    assert g.sample(20, seed=3).tobytes() == g.sample(20, seed=3).tobytes()


@pytest.mark.parametrize("n", [0, -3, 2.5, "4", True, None])
def test_bad_n(n):
    with pytest.raises(ValueError, match="n \\(number of images\\)"):
        _gen().sample(n)


@pytest.mark.parametrize("labels, match", [
    ([0, 1], "2 entries but n=4"),
    ([0, 1, 2, 3], "label 3 out of range"),
    ([0, -1, 0, 0], "label -1 out of range"),
    ([0.5, 1, 1, 1], "must be integers"),
    (np.zeros((4, 2), int), "shape"),
])
def test_bad_labels(labels, match):
    with pytest.raises(ValueError, match=match):
        _gen().sample(4, labels=labels)


def test_bad_constructor_arguments_and_wrong_output_shape():
    with pytest.raises(ValueError, match="torch.nn.Module"):
        TorchGenerator(lambda z, y: z, latent_dim=2, num_classes=1, image_shape=(2, 2))
    with pytest.raises(ValueError, match="output_activation"):
        _gen(output_activation="relu")
    with pytest.raises(ValueError, match="latent_dim"):
        _gen(latent_dim=0)
    with pytest.raises(ValueError, match="batch_size"):
        _gen(batch_size=0)
    with pytest.raises(ValueError, match="image_shape"):
        _gen(image_shape=(6, 6, 2))
    with pytest.raises(ValueError, match="seed"):
        _gen().sample(2, seed=1.5)
    with pytest.raises(ValueError, match="expected \\(2, 1, 7, 7\\)"):
        _gen(image_shape=(7, 7)).sample(2)
    nan = TorchGenerator(ConstG(float("nan")), latent_dim=2, num_classes=1, image_shape=(2, 2),
                         device="cpu")
    with pytest.raises(ValueError, match="NaN"):
        nan.sample(2)


def test_normalize_image_shape():
    assert normalize_image_shape([28, 28]) == (28, 28)
    assert normalize_image_shape((28, 28, 1)) == (28, 28)
    assert normalize_image_shape(np.array([32, 32, 3])) == (32, 32, 3)
    for bad in ["28,28", (28,), (28, 28, 4), (0, 28), (28.5, 28)]:
        with pytest.raises(ValueError):
            normalize_image_shape(bad)


def test_torchscript_generator_matches_the_module(tmp_path):
    module = TinyG()
    path = tmp_path / "g.pt"
    torch.jit.save(torch.jit.script(module), str(path))
    ts = TorchScriptGenerator(path, latent_dim=8, num_classes=3, image_shape=(6, 6), device="cpu",
                              batch_size=5)
    native = TorchGenerator(module, latent_dim=8, num_classes=3, image_shape=(6, 6), device="cpu")
    assert isinstance(ts, Generator)
    assert ts.sample(12, seed=2).tobytes() == native.sample(12, seed=2).tobytes()


def test_torchscript_bad_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.pt"):
        TorchScriptGenerator(tmp_path / "nope.pt", latent_dim=8, num_classes=3, image_shape=(6, 6))
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"definitely not a zip archive" * 10)
    with pytest.raises(ValueError, match="not a readable TorchScript file"):
        TorchScriptGenerator(junk, latent_dim=8, num_classes=3, image_shape=(6, 6))
    plain = tmp_path / "plain.pt"
    torch.save(TinyG().state_dict(), plain)
    with pytest.raises(ValueError, match="torch.jit.save"):
        TorchScriptGenerator(plain, latent_dim=8, num_classes=3, image_shape=(6, 6))


FOREIGN = textwrap.dedent('''
    import numpy as np

    class Noise:
        def __init__(self, shape, classes, dtype="uint8", extra=0):
            self.image_shape = tuple(shape)
            self.num_classes = classes
            self.dtype = dtype
            self.extra = extra
            self.calls = []

        def sample(self, n, labels=None, seed=0):
            self.calls.append((n, None if labels is None else np.asarray(labels).copy(), seed))
            rng = np.random.default_rng(seed)
            x = rng.integers(0, 256, size=(n + self.extra, *self.image_shape))
            flat = x.reshape(len(x), -1)  # a view: writes the label into the first pixel
            flat[:n, 0] = labels if labels is not None else 0
            return x.astype(self.dtype)

    def build(shape=(5, 5), classes=2, dtype="uint8", extra=0):
        return Noise(shape, classes, dtype, extra)

    not_callable = 3
''')


@pytest.fixture
def foreign_module(tmp_path, monkeypatch):
    pkg = tmp_path / "foreign_src"
    pkg.mkdir()
    (pkg / "foreign_gens_t1.py").write_text(FOREIGN)
    monkeypatch.syspath_prepend(str(pkg))
    return "foreign_gens_t1"


def test_callable_generator_round_trip(foreign_module):
    g = CallableGenerator(f"{foreign_module}:build", num_classes=2, image_shape=(5, 5))
    assert isinstance(g, Generator)
    x = g.sample(9, seed=4)
    assert x.dtype == np.uint8 and x.shape == (9, 5, 5)
    assert x.tobytes() == g.sample(9, seed=4).tobytes()
    # the wrapper draws labels the common way and passes them explicitly
    n, passed, seed = g.obj.calls[0]
    assert (n, seed) == (9, 4)
    assert np.array_equal(passed, resolve_labels(9, None, 2, seed=4))
    assert np.array_equal(x[:, 0, 0], passed)
    kw = CallableGenerator(f"{foreign_module}:build", num_classes=3, image_shape=(4, 4, 3),
                           shape=(4, 4, 3), classes=3)
    assert kw.sample(2, labels=[2, 1]).shape == (2, 4, 4, 3)


def test_callable_generator_bad_refs_and_outputs(foreign_module):
    ref = f"{foreign_module}:build"
    for bad in ["no_colon", "a:b:c", ":build", "mod:", "1mod:f"]:
        with pytest.raises(ValueError, match="package.module:function"):
            CallableGenerator(bad, num_classes=2, image_shape=(5, 5))
    with pytest.raises(ValueError, match="cannot import module"):
        CallableGenerator("no_such_module_xyz:build", num_classes=2, image_shape=(5, 5))
    with pytest.raises(ValueError, match="no attribute"):
        CallableGenerator(f"{foreign_module}:missing", num_classes=2, image_shape=(5, 5))
    with pytest.raises(ValueError, match="not callable"):
        CallableGenerator(f"{foreign_module}:not_callable", num_classes=2, image_shape=(5, 5))
    with pytest.raises(ValueError, match="keyword arguments"):
        CallableGenerator(ref, num_classes=2, image_shape=(5, 5), colour=True)
    with pytest.raises(ValueError, match="num_classes=3"):
        CallableGenerator(ref, num_classes=3, image_shape=(5, 5))
    with pytest.raises(ValueError, match="image_shape"):
        CallableGenerator(ref, num_classes=2, image_shape=(6, 6))
    g = CallableGenerator(ref, num_classes=2, image_shape=(5, 5), dtype="float32")
    with pytest.raises(ValueError, match="sample\\(\\) must be uint8 in \\[0, 255\\], got dtype float32"):
        g.sample(3)
    g = CallableGenerator(ref, num_classes=2, image_shape=(5, 5), extra=1)
    with pytest.raises(ValueError, match="returned shape \\(4, 5, 5\\), expected \\(3, 5, 5\\)"):
        g.sample(3)
    g = CallableGenerator(ref, num_classes=2, image_shape=(5, 5))
    with pytest.raises(ValueError, match="n \\(number"):
        g.sample(0)
    with pytest.raises(ValueError, match="out of range"):
        g.sample(2, labels=[0, 2])


# --------------------------------------------------------------------------- errors that name the generator


class NaNG(nn.Module):
    def forward(self, z: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return torch.full((z.shape[0], 1, 4, 4), float("nan"))


class ScaledG(nn.Module):
    """Outputs in [0, 255]: the classic mistake of a model that was not built for [-1, 1]."""

    def forward(self, z: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return (torch.sigmoid(z[:, :16]) * 255.0).reshape(-1, 1, 4, 4)


def test_nan_names_the_generator(tmp_path):
    g = TorchGenerator(NaNG(), latent_dim=16, num_classes=2, image_shape=(4, 4), device="cpu")
    g.name = "dcgan-x@500"
    with pytest.raises(ValueError, match=r"generator 'dcgan-x@500' produced NaN or infinite values"):
        g.sample(3)
    path = tmp_path / "nan.pt"
    torch.jit.save(torch.jit.script(NaNG()), str(path))
    ts = TorchScriptGenerator(path, latent_dim=16, num_classes=2, image_shape=(4, 4), device="cpu")
    with pytest.raises(ValueError, match=r"generator '.*nan\.pt' produced NaN"):
        ts.sample(2)


def test_output_far_outside_the_range_is_warned_about(caplog):
    g = TorchGenerator(ScaledG(), latent_dim=16, num_classes=2, image_shape=(4, 4), device="cpu")
    g.name = "foreign@0"
    with caplog.at_level("WARNING", logger="zoo.generator"):
        g.sample(4)
    warned = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert len(warned) == 1 and "generator 'foreign@0' outputs values up to" in warned[0]
    assert "far outside [-1, 1]" in warned[0] and "tanh" in warned[0]
    caplog.clear()
    with caplog.at_level("WARNING", logger="zoo.generator"):
        TorchGenerator(TinyG(latent_dim=16, num_classes=2, size=4), latent_dim=16, num_classes=2,
                       image_shape=(4, 4), device="cpu").sample(4)
    assert not [r for r in caplog.records if r.levelname == "WARNING"]


def test_torchscript_forward_must_take_z_and_labels(tmp_path):
    class OnlyZ(nn.Module):
        def forward(self, z: torch.Tensor) -> torch.Tensor:
            return z

    class ThreeArgs(nn.Module):
        def forward(self, z: torch.Tensor, labels: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
            return z

    class WithDefault(nn.Module):
        def forward(self, z: torch.Tensor, labels: torch.Tensor, scale: float = 1.0) -> torch.Tensor:
            return torch.tanh(z[:, :16].reshape(-1, 1, 4, 4) * scale)

    for cls, sig in ((OnlyZ, "z"), (ThreeArgs, "z, labels, style")):
        path = tmp_path / f"{cls.__name__}.pt"
        torch.jit.save(torch.jit.script(cls()), str(path))
        with pytest.raises(ValueError, match=rf"forward takes \({sig}\), but a generator's forward "
                                             r"must take \(z, labels\)"):
            TorchScriptGenerator(path, latent_dim=16, num_classes=2, image_shape=(4, 4), device="cpu")
    path = tmp_path / "default.pt"
    torch.jit.save(torch.jit.script(WithDefault()), str(path))
    g = TorchScriptGenerator(path, latent_dim=16, num_classes=2, image_shape=(4, 4), device="cpu")
    assert g.sample(2).shape == (2, 4, 4)


def test_a_forward_that_fails_names_the_generator_and_the_settings(tmp_path):
    g = TorchGenerator(TinyG(latent_dim=8, num_classes=2, size=4), latent_dim=5, num_classes=2,
                       image_shape=(4, 4), device="cpu")
    g.name = "mine"
    with pytest.raises(ValueError, match=r"generator 'mine' failed on z of shape \(2, 5\).*check "
                                         "latent_dim"):
        g.sample(2)
