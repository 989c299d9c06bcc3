"""gan-ensemble: select a Pareto-optimal ensemble of GAN generators and export its data.

Stages: :mod:`ensemble.data` (real data), :mod:`ensemble.features` (timm features, cached),
:mod:`ensemble.scoring` (density/coverage, Intra-d / Inter-d tables), :mod:`ensemble.parallel`
(backends for the heavy tasks), :mod:`ensemble.zoo_training` (zoo runs as tasks),
:mod:`ensemble.search` (NSGA-II and friends), :mod:`ensemble.synth` and :mod:`ensemble.export`
(the synthetic dataset), :mod:`ensemble.downstream` (train on synthetic, test on real).
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("gan-ensemble")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0+unknown"
