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
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Generic, TypeVar

from torch import nn

from .arrays import check_image_size

__all__ = [
    "Registry",
    "list_registries",
    "get_registry",
    "Architecture",
    "register_architecture",
    "get_architecture",
    "list_architectures",
    "create_generator",
    "create_discriminator",
    "resolve_config",
    "stored_config",
    "ARCHITECTURES",
    "LOSSES",
    "DATA_KEYS",
]

#: Adversarial losses the training loop knows (see ``zoo.losses``).
LOSSES = ("bce", "ls", "wasserstein", "hinge")

#: Config keys that come from the data, not from the user's hyper-parameters.
DATA_KEYS = ("num_classes", "image_size", "channels")

T = TypeVar("T")

_REGISTRIES: dict[str, Registry] = {}
_LOCK = threading.RLock()


class Registry(Generic[T]):
    """A named table of one kind of thing (architectures, rules, backends, ...), timm style.

    ``register(name, obj)`` adds an entry (usable as a decorator: ``@reg.register("name")``);
    a name registered twice is refused unless ``overwrite=True``. ``get(name)`` returns it, and an
    unknown name raises ``ValueError`` listing the known ones; ``list()`` gives the sorted names.
    ``loader`` (optional) is called once before the first look-up, so built-in entries can live
    in modules that register themselves without the registry importing them at import time.
    Every registry records itself by ``kind`` (see :func:`list_registries`), so one contract test
    can run over every entry of every registry.
    """

    def __init__(self, kind: str, *, loader: Callable[[], None] | None = None,
                 check: Callable[[str, Any], None] | None = None) -> None:
        if not isinstance(kind, str) or not kind:
            raise ValueError(f"registry kind must be a non-empty string, got {kind!r}")
        self.kind = kind
        self._entries: dict[str, T] = {}
        self._loader = loader
        self._loaded = loader is None
        self._check = check
        with _LOCK:
            if kind in _REGISTRIES:
                raise ValueError(f"a registry of {kind!r} already exists; use get_registry({kind!r})")
            _REGISTRIES[kind] = self

    def _load(self) -> None:
        if self._loaded:
            return
        with _LOCK:
            if self._loaded:
                return
            self._loaded = True
            try:
                self._loader()
            except BaseException:
                self._loaded = False
                raise

    def register(self, name: str, obj: T | None = None, *, overwrite: bool = False):
        """Add ``obj`` as ``name`` and return it; without ``obj``, a decorator that does so."""
        if not isinstance(name, str) or not name.strip():
            raise ValueError(f"{self.kind} name must be a non-empty string, got {name!r}")

        def add(o: T) -> T:
            if self._check is not None:
                self._check(name, o)
            with _LOCK:
                if name in self._entries and not overwrite:
                    raise ValueError(f"{self.kind} {name!r} is already registered; pick another "
                                     "name or pass overwrite=True")
                self._entries[name] = o
            return o

        return add(obj) if obj is not None else add

    def get(self, name: str) -> T:
        """The entry called ``name``; an unknown name raises ``ValueError`` listing the known."""
        self._load()
        try:
            return self._entries[name]
        except (KeyError, TypeError):
            raise ValueError(f"unknown {self.kind} {name!r}; known: {', '.join(self.list()) or '(none)'}"
                             ) from None

    def remove(self, name: str) -> T:
        """Take ``name`` out of the registry and return its entry (unknown names raise)."""
        entry = self.get(name)
        with _LOCK:
            del self._entries[name]
        return entry

    def list(self) -> list[str]:
        """Sorted names of every registered entry."""
        self._load()
        return sorted(self._entries)

    def __contains__(self, name: object) -> bool:
        self._load()
        return name in self._entries

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}, {len(self._entries)} entries)"


def list_registries() -> list[str]:
    """Kinds of every registry created so far (import a package to create its registries)."""
    return sorted(_REGISTRIES)


def get_registry(kind: str) -> Registry:
    """The registry of ``kind``; unknown kinds raise ``ValueError`` listing the known."""
    try:
        return _REGISTRIES[kind]
    except KeyError:
        raise ValueError(f"unknown registry {kind!r}; known: {', '.join(list_registries())}") from None


@dataclass(frozen=True)
class Architecture:
    """One GAN family.

    ``build_generator(cfg)`` / ``build_discriminator(cfg)`` take the full config (the family's
    ``defaults`` updated with the user's hyper-parameters plus ``num_classes``, ``image_size``
    and ``channels``). Generators map ``(z, labels)`` to ``(n, C, H, W)``; discriminators map
    ``(images, labels)`` to logits ``(n,)``, or to ``(logits, class_logits)`` when the family
    has an auxiliary classifier. ``loss`` is one of :data:`LOSSES`.

    ``legacy`` holds, for hyper-parameters added to a family after checkpoints of it were saved,
    the value that reproduces the nets those checkpoints were saved from: a stored config without
    the key predates it and is read with that value (:func:`stored_config`), not the new default.
    """

    name: str
    description: str
    build_generator: Callable[[dict], nn.Module]
    build_discriminator: Callable[[dict], nn.Module]
    loss: str
    defaults: Mapping[str, Any]
    legacy: Mapping[str, Any] = field(default_factory=dict)

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
        stray = [k for k in self.legacy if k not in self.defaults]
        if stray:
            raise ValueError(f"architecture {self.name!r}: legacy keys {stray} are not in its defaults")
        object.__setattr__(self, "legacy", MappingProxyType(dict(self.legacy)))


def _load_builtins() -> None:
    """Import ``zoo.nets`` so the built-in families register themselves."""
    importlib.import_module("zoo.nets")


def _check_architecture(name: str, arch: Any) -> None:
    if not isinstance(arch, Architecture):
        raise ValueError(f"expected a zoo.registry.Architecture, got {type(arch).__name__}")
    if arch.name != name:
        raise ValueError(f"architecture {arch.name!r} registered under another name, {name!r}")


ARCHITECTURES: Registry[Architecture] = Registry("architecture", loader=_load_builtins,
                                                 check=_check_architecture)


def register_architecture(arch: Architecture, *, overwrite: bool = False) -> Architecture:
    """Add ``arch`` to the registry (returns it, so it can be used inline).

    Registering a name twice is an error unless ``overwrite=True``.
    """
    if not isinstance(arch, Architecture):
        raise ValueError(f"expected a zoo.registry.Architecture, got {type(arch).__name__}")
    return ARCHITECTURES.register(arch.name, arch, overwrite=overwrite)


def list_architectures() -> list[str]:
    """Sorted names of every registered architecture."""
    return ARCHITECTURES.list()


def get_architecture(name: str) -> Architecture:
    """The architecture called ``name``; unknown names raise ``ValueError`` listing the known."""
    if isinstance(name, Architecture):
        return name
    return ARCHITECTURES.get(name)


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
    check_image_size(cfg["image_size"])
    if cfg["channels"] not in (1, 3):
        raise ValueError(f"channels must be 1 or 3, got {cfg['channels']!r}")
    if not isinstance(cfg["num_classes"], int) or cfg["num_classes"] < 1:
        raise ValueError(f"num_classes must be a positive integer, got {cfg['num_classes']!r}")
    return cfg


def stored_config(name: str, config: Mapping[str, Any]) -> dict:
    """A config read from a saved file, resolved: keys the family gained after the file was saved
    take their ``legacy`` value (what the file's nets were built with), the rest as
    :func:`resolve_config`."""
    arch = get_architecture(name)
    if not isinstance(config, Mapping):
        raise ValueError(f"config must be a dict, got {type(config).__name__}")
    return resolve_config(arch.name, {**arch.legacy, **config})


def create_generator(name: str, config: Mapping[str, Any]) -> nn.Module:
    """Build the generator of family ``name`` from ``config`` (defaults fill the gaps)."""
    arch = get_architecture(name)
    return arch.build_generator(resolve_config(arch.name, config))


def create_discriminator(name: str, config: Mapping[str, Any]) -> nn.Module:
    """Build the discriminator of family ``name`` from ``config`` (defaults fill the gaps)."""
    arch = get_architecture(name)
    return arch.build_discriminator(resolve_config(arch.name, config))
