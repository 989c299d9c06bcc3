"""zoo: a catalog of GAN generators that all sample the same way.

Generators come from training here (:func:`train`, families in :mod:`zoo.nets`, listed by
:func:`list_architectures`) or from outside (TorchScript files, ``module:function`` factories such
as the StudioGAN and StyleGAN2-ADA wrappers of :mod:`zoo.foreign`, and sets of generated images,
:mod:`zoo.samples`).
Each is recorded in a zoo folder's :class:`Catalog` and used through the :class:`Generator`
protocol: ``sample(n, labels=None, seed=0) -> uint8 images``. The built-in families register
themselves the first time the architecture registry is queried, so ``import zoo`` stays cheap.
"""

from zoo.catalog import Catalog
from zoo.checkpoint import load_generator, save_generator
from zoo.foreign import SeededTorchGenerator, studiogan_generator, stylegan2ada_generator
from zoo.generator import CallableGenerator, Generator, TorchGenerator, TorchScriptGenerator
from zoo.registry import (
    Architecture,
    create_generator,
    get_architecture,
    list_architectures,
    register_architecture,
)
from zoo.samples import SampleSetGenerator
from zoo.train import train

__all__ = [
    "Architecture",
    "CallableGenerator",
    "Catalog",
    "Generator",
    "SampleSetGenerator",
    "SeededTorchGenerator",
    "TorchGenerator",
    "TorchScriptGenerator",
    "create_generator",
    "get_architecture",
    "list_architectures",
    "load_generator",
    "register_architecture",
    "save_generator",
    "studiogan_generator",
    "stylegan2ada_generator",
    "train",
]
