"""The built-in GAN families. Importing this package registers them with ``zoo.registry``.

- ``dcgan``, ``lsgan``, ``wgan``, ``acgan``: convolutional DCGAN-style nets (:mod:`.dcgan`)
- ``wgan-gp``, ``sngan``: residual nets (:mod:`.resnet`)
- ``cgan``: fully connected conditional GAN (:mod:`.mlp`)
- ``progan``: progressive growing with fade-in (:mod:`.progan`)
"""

from __future__ import annotations

from . import dcgan, mlp, progan, resnet  # noqa: F401  (registration side effects)
from .common import COMMON_DEFAULTS

__all__ = ["COMMON_DEFAULTS"]
