"""Architecture registry (timm style): register, list and build the GAN families of the zoo.

An :class:`Architecture` bundles what training and loading need: generator and discriminator
builders taking one JSON-able config dict, the adversarial loss, and the default
hyper-parameters. The built-in families (``zoo.nets``) register themselves the first time the
registry is queried, so ``import zoo`` stays cheap and every entry point sees the same families.
"""

from __future__ import annotations

import importlib
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from torch import nn

__all__ = [
    "Architecture",
    "register_architecture",
    "get_architecture",
    "list_architectures",
    "create_generator",
    "create_discriminator",
    "resolve_config",
    "LOSSES",
    "DATA_KEYS",
]

#: Adversarial losses the training loop knows (see ``zoo.losses``).
LOSSES = ("bce", "ls", "wasserstein", "hinge")

#: Config keys that come from the data, not from the user's hyper-parameters.
DATA_KEYS = ("num_classes", "image_size", "channels")

_REGISTRY: dict[str, Architecture] = {}
_BUILTINS_LOADED = False
_LOCK = threading.RLock()


@dataclass(frozen=True)
class Architecture:
    """One GAN family.

    ``build_generator(cfg)`` / ``build_discriminator(cfg)`` take the full config (the family's
    ``defaults`` updated with the user's hyper-parameters plus ``num_classes``, ``image_size``
    and ``channels``). Generators map ``(z, labels)`` to ``(n, C, H, W)``; discriminators map
    ``(images, labels)`` to logits ``(n,)``, or to ``(logits, class_logits)`` when the family
    has an auxiliary classifier. ``loss`` is one of :data:`LOSSES`.
    """

    name: str
    description: str
    build_generator: Callable[[dict], nn.Module]
    build_discriminator: Callable[[dict], nn.Module]
    loss: str
    defaults: Mapping[str, Any]

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name or "@" in self.name or "/" in self.name:
            raise ValueError(
                f"architecture name must be a non-empty string without '@' or '/', got {self.name!r}"
            )
        if self.loss not in LOSSES:
            raise ValueError(
                f"architecture {self.name!r}: unknown loss {self.loss!r}; use one of {list(LOSSES)}"
            )
        if "latent_dim" not in self.defaults:
            raise ValueError(f"architecture {self.name!r}: defaults must include 'latent_dim'")
        clash = [k for k in DATA_KEYS if k in self.defaults]
        if clash:
            raise ValueError(
                f"architecture {self.name!r}: {clash} come from the data and cannot be defaults"
            )
        object.__setattr__(self, "defaults", MappingProxyType(dict(self.defaults)))


def _load_builtins() -> None:
    """Import ``zoo.nets`` once so the built-in families register themselves."""
    global _BUILTINS_LOADED
    with _LOCK:
        if _BUILTINS_LOADED:
            return
        _BUILTINS_LOADED = True
        try:
            importlib.import_module("zoo.nets")
        except BaseException:
            _BUILTINS_LOADED = False
            raise


def register_architecture(arch: Architecture, *, overwrite: bool = False) -> Architecture:
    """Add ``arch`` to the registry (returns it, so it can be used inline).

    Registering a name twice is an error unless ``overwrite=True``.
    """
    if not isinstance(arch, Architecture):
        raise ValueError(f"expected a zoo.registry.Architecture, got {type(arch).__name__}")
    with _LOCK:
        if arch.name in _REGISTRY and not overwrite:
            raise ValueError(
                f"architecture {arch.name!r} is already registered; pick another name or pass "
                "overwrite=True"
            )
        _REGISTRY[arch.name] = arch
    return arch


def list_architectures() -> list[str]:
    """Sorted names of every registered architecture."""
    _load_builtins()
    return sorted(_REGISTRY)


def get_architecture(name: str) -> Architecture:
    """The architecture called ``name``; unknown names raise ``ValueError`` listing the known."""
    _load_builtins()
    if isinstance(name, Architecture):
        return name
    try:
        return _REGISTRY[name]
    except (KeyError, TypeError):
        raise ValueError(
            f"unknown architecture {name!r}; known: {', '.join(sorted(_REGISTRY))}"
        ) from None


def resolve_config(name: str, config: Mapping[str, Any]) -> dict:
    """The family's defaults updated with ``config``; checks the data keys are present."""
    arch = get_architecture(name)
    if not isinstance(config, Mapping):
        raise ValueError(f"config must be a dict, got {type(config).__name__}")
    cfg = dict(arch.defaults)
    cfg.update(config)
    missing = [k for k in DATA_KEYS if k not in cfg]
    if missing:
        raise ValueError(
            f"config for {arch.name!r} lacks {missing}; pass e.g. "
            "{'num_classes': 2, 'image_size': 28, 'channels': 1}"
        )
    if cfg["image_size"] not in (28, 32):
        raise ValueError(f"image_size must be 28 or 32, got {cfg['image_size']!r}")
    if cfg["channels"] not in (1, 3):
        raise ValueError(f"channels must be 1 or 3, got {cfg['channels']!r}")
    if not isinstance(cfg["num_classes"], int) or cfg["num_classes"] < 1:
        raise ValueError(f"num_classes must be a positive integer, got {cfg['num_classes']!r}")
    return cfg


def create_generator(name: str, config: Mapping[str, Any]) -> nn.Module:
    """Build the generator of family ``name`` from ``config`` (defaults fill the gaps)."""
    arch = get_architecture(name)
    return arch.build_generator(resolve_config(arch.name, config))


def create_discriminator(name: str, config: Mapping[str, Any]) -> nn.Module:
    """Build the discriminator of family ``name`` from ``config`` (defaults fill the gaps)."""
    arch = get_architecture(name)
    return arch.build_discriminator(resolve_config(arch.name, config))
