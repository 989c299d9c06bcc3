"""The architecture registry: listing, lookup, registration, building generators."""

from __future__ import annotations

import pytest
import torch

import zoo
from zoo import registry
from zoo.nets.dcgan import DCGANDiscriminator, DCGANGenerator

FAMILIES = ["acgan", "cgan", "dcgan", "lsgan", "progan", "sngan", "wgan", "wgan-gp"]


def test_builtin_families_are_listed():
    names = zoo.list_architectures()
    assert names == sorted(names)
    assert set(FAMILIES) <= set(names)


def test_reexports_from_zoo_package():
    assert zoo.get_architecture is registry.get_architecture
    assert zoo.Architecture is registry.Architecture


def test_unknown_name_lists_known():
    with pytest.raises(ValueError, match="unknown architecture 'stylegan9'.*dcgan.*wgan-gp"):
        zoo.get_architecture("stylegan9")
    with pytest.raises(ValueError, match="known"):
        zoo.create_generator("nope", {"num_classes": 2, "image_size": 28, "channels": 1})


def test_architecture_fields_and_frozen_defaults():
    arch = zoo.get_architecture("wgan")
    assert arch.loss == "wasserstein"
    assert arch.defaults["optimizer"] == "rmsprop" and arch.defaults["clip"] > 0
    for name in FAMILIES:
        a = zoo.get_architecture(name)
        for key in ("latent_dim", "lr", "optimizer", "output_activation", "dropout", "batch_size",
                    "ema", "diffaug", "n_critic"):
            assert key in a.defaults, (name, key)
        assert a.description
    with pytest.raises(TypeError):
        arch.defaults["lr"] = 1.0  # read-only mapping
    with pytest.raises(AttributeError):
        arch.loss = "bce"  # frozen dataclass


def test_architecture_validates_its_fields():
    with pytest.raises(ValueError, match="unknown loss 'l1'"):
        zoo.Architecture("x", "d", DCGANGenerator, DCGANDiscriminator, "l1", {"latent_dim": 8})
    with pytest.raises(ValueError, match="latent_dim"):
        zoo.Architecture("x", "d", DCGANGenerator, DCGANDiscriminator, "bce", {})
    with pytest.raises(ValueError, match="come from the data"):
        zoo.Architecture("x", "d", DCGANGenerator, DCGANDiscriminator, "bce",
                         {"latent_dim": 8, "num_classes": 2})
    with pytest.raises(ValueError, match="'@'"):
        zoo.Architecture("a@b", "d", DCGANGenerator, DCGANDiscriminator, "bce", {"latent_dim": 8})


def test_legacy_values_fill_keys_missing_from_stored_configs():
    """``legacy`` names, per hyper-parameter a family gained later, the value old files were built
    with: a stored config without the key gets it, one with the key keeps its own, and a fresh
    config still gets the default."""
    arch = zoo.get_architecture("progan")
    assert arch.defaults["label_embed"] is True and arch.legacy["label_embed"] is False
    data = {"num_classes": 2, "image_size": 28, "channels": 1}
    assert registry.stored_config("progan", data)["label_embed"] is False
    assert registry.stored_config("progan", {**data, "label_embed": True})["label_embed"] is True
    assert registry.resolve_config("progan", data)["label_embed"] is True
    with pytest.raises(ValueError, match=r"legacy keys \['gamma'\] are not in its defaults"):
        zoo.Architecture("x", "d", DCGANGenerator, DCGANDiscriminator, "bce", {"latent_dim": 8},
                         legacy={"gamma": 1.0})


def test_register_custom_architecture_and_duplicates():
    base = dict(zoo.get_architecture("dcgan").defaults)
    arch = zoo.Architecture(
        name="test-tiny-dcgan", description="a test family",
        build_generator=lambda cfg: DCGANGenerator(cfg), build_discriminator=DCGANDiscriminator,
        loss="ls", defaults={**base, "g_width": 4, "d_width": 4, "latent_dim": 8},
    )
    try:
        assert zoo.register_architecture(arch) is arch
        assert "test-tiny-dcgan" in zoo.list_architectures()
        with pytest.raises(ValueError, match="already registered"):
            zoo.register_architecture(arch)
        zoo.register_architecture(arch, overwrite=True)
        g = zoo.create_generator("test-tiny-dcgan", {"num_classes": 3, "image_size": 32, "channels": 3})
        out = g(torch.randn(2, 8), torch.tensor([0, 2]))
        assert out.shape == (2, 3, 32, 32)
        with pytest.raises(ValueError, match="Architecture"):
            zoo.register_architecture("dcgan")
    finally:
        if "test-tiny-dcgan" in registry.ARCHITECTURES:
            registry.ARCHITECTURES.remove("test-tiny-dcgan")


@pytest.mark.parametrize("name", FAMILIES)
@pytest.mark.parametrize("size,channels", [(28, 1), (32, 3)])
def test_create_generator_and_discriminator_shapes(name, size, channels):
    cfg = {"num_classes": 3, "image_size": size, "channels": channels}
    torch.manual_seed(0)
    g = zoo.create_generator(name, cfg)
    d = registry.create_discriminator(name, cfg)
    full = registry.resolve_config(name, cfg)
    if hasattr(g, "set_iteration"):  # progan: test the full-resolution stage
        g.set_iteration(10**6)
        d.set_iteration(10**6)
    z = torch.randn(4, full["latent_dim"])
    y = torch.tensor([0, 1, 2, 1])
    x = g(z, y)
    assert x.shape == (4, channels, size, size)
    assert x.dtype == torch.float32
    assert float(x.detach().abs().max()) <= 1.0  # tanh output
    out = d(x, y)
    logits = out[0] if isinstance(out, tuple) else out
    assert logits.shape == (4,)
    if name == "acgan":
        assert out[1].shape == (4, 3)
    # labels matter: the same z with other labels gives other images (class-conditional BN starts
    # label-independent at gain 1 / bias 0, so nudge the embeddings as training would)
    g.eval()
    with torch.no_grad():
        for m in g.modules():
            if isinstance(m, torch.nn.Embedding):
                m.weight.add_(0.1 * torch.randn_like(m.weight))
        assert not torch.allclose(g(z, y), g(z, torch.tensor([2, 2, 0, 0])))


def test_output_activation_none_is_unbounded():
    torch.manual_seed(0)
    cfg = {"num_classes": 2, "image_size": 28, "channels": 1, "output_activation": "none"}
    g = zoo.create_generator("dcgan", cfg)
    with torch.no_grad():
        for m in g.modules():
            if isinstance(m, torch.nn.ConvTranspose2d):
                m.weight.mul_(50)
        x = g(torch.randn(8, 100), torch.zeros(8, dtype=torch.long))
    assert float(x.abs().max()) > 1.0


def test_create_generator_needs_data_keys():
    with pytest.raises(ValueError, match="lacks.*num_classes"):
        zoo.create_generator("dcgan", {"image_size": 28, "channels": 1})
    for size in (48, 16, 128, "64", True):  # one error naming the size and the supported ones
        with pytest.raises(ValueError, match=f"image_size {size!r} is not supported.*28, 32 or 64 px"):
            zoo.create_generator("dcgan", {"num_classes": 2, "image_size": size, "channels": 1})
    with pytest.raises(ValueError, match="channels must be 1 or 3"):
        zoo.create_generator("dcgan", {"num_classes": 2, "image_size": 28, "channels": 4})
