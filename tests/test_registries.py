"""One contract test over every name of every registry (``zoo.registry.Registry``).

Every module of both packages is imported first, so every registry exists and its built-in
entries are registered; the cases are then collected from the registries themselves: a newly
registered entry is tested without anyone adding it to a list, and a new kind of registry fails
here until it has a contract below.
"""

from __future__ import annotations

import importlib
import pkgutil

import numpy as np
import pytest
import torch

import ensemble
import zoo
from zoo.registry import get_registry, list_registries


def _import_all() -> None:
    for pkg in (zoo, ensemble):
        for info in pkgutil.walk_packages(pkg.__path__, pkg.__name__ + "."):
            if info.name.endswith("__main__"):
                continue
            importlib.import_module(info.name)


_import_all()
CASES = [(kind, name) for kind in list_registries() for name in get_registry(kind).list()]


def test_registries_found():
    kinds = set(list_registries())
    assert {"architecture", "backend", "search algorithm", "selection rule", "export format"} <= kinds
    assert len(CASES) >= 20


@pytest.fixture(scope="module")
def toy_tables():
    from ensemble.scoring.tables import ScoreTables

    rng = np.random.default_rng(0)
    real = rng.normal(size=(120, 8)).astype(np.float32)
    fakes = {f"g{i}": (rng.normal(size=(60, 8)) * (0.6 + 0.2 * i) + 0.3 * i).astype(np.float32)
             for i in range(6)}
    return ScoreTables.from_features(real, fakes, k=5, progress=False)


@pytest.fixture(scope="module")
def fitted(toy_tables):
    from ensemble.search import EnsembleSearch

    return EnsembleSearch(algorithm="exhaustive", seed=0, progress=False).fit(toy_tables)


def _check_architecture(name, arch, request):
    from zoo.registry import create_discriminator, create_generator

    cfg = {"num_classes": 2, "image_size": 28, "channels": 1}
    g = create_generator(name, cfg)
    d = create_discriminator(name, cfg)
    z = torch.randn(3, int(arch.defaults["latent_dim"]))
    y = torch.tensor([0, 1, 0])
    with torch.no_grad():
        x = g.eval()(z, y)
        out = d.eval()(x, y)
    assert x.shape == (3, 1, 28, 28)
    logits = out[0] if isinstance(out, tuple) else out
    assert logits.reshape(-1).shape == (3,)


def _square(v):
    return v * v


def _check_backend(name, cls, request):
    from ensemble.parallel import get_backend

    if name != "dask":
        with get_backend(name) as b:
            assert b.map(_square, [1, 2, 3]) == [1, 4, 9]
        return
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=False,
                                  dashboard_address=None) as cluster, distributed.Client(cluster) as client:
        with get_backend(name, scheduler=client) as b:
            assert b.map(_square, [1, 2, 3]) == [1, 4, 9]


def _check_algorithm(name, fn, request):
    from ensemble.search import EnsembleSearch

    tables = request.getfixturevalue("toy_tables")
    s = EnsembleSearch(algorithm=name, pop_size=12, n_gen=4, seed=0, progress=False).fit(tables)
    assert len(s.front_) >= 1
    sizes = s.front_["members"].map(len)
    assert (sizes >= 2).all()
    again = EnsembleSearch(algorithm=name, pop_size=12, n_gen=4, seed=0, progress=False).fit(tables)
    assert s.front_["members"].tolist() == again.front_["members"].tolist()  # seeded


def _rule_context(request):
    """What a rule that needs data beyond the front gets: a catalog of real callable toy generators
    named as the toy tables' generators, and toy real training and validation splits."""
    from pathlib import Path

    from ensemble.search import ValidationContext
    from zoo.catalog import Catalog

    tables = request.getfixturevalue("toy_tables")
    request.getfixturevalue("monkeypatch").syspath_prepend(str(Path(__file__).parent / "ensemble"))
    from _synth_toys import make_toy

    cat = Catalog(request.getfixturevalue("tmp_path") / "zoo")
    for i, name in enumerate(tables.names):
        cat.register_callable("_synth_toys:make_toy", name=name, num_classes=2, image_shape=(28, 28),
                              dataset="toy", style=i)
    gen = make_toy(style=1)
    ty, vy = np.tile([0, 1], 16), np.tile([0, 1], 20)
    return ValidationContext(cat, (gen.sample(32, labels=ty, seed=1), ty), (gen.sample(40, labels=vy, seed=2), vy),
                             steps=2, warmup_steps=1, samples_per_epoch=64, n_per_class=4, device="cpu")


def _check_rule(name, fn, request):
    from ensemble.search import rule_needs_context

    search = request.getfixturevalue("fitted")
    params = {"context": _rule_context(request)} if rule_needs_context(name) else {}
    e = search.select(name, **params)
    assert e.rule == name and len(e.members) >= 2
    assert any(list(m) == e.members for m in search.front_["members"])
    if params:  # without its context, such a rule says what it needs
        with pytest.raises(ValueError, match="context"):
            search.select(name)


def _check_export_format(name, writer, request):
    import pandas as pd

    from ensemble.synthesis import SyntheticSamples, export_dataset

    tmp = request.getfixturevalue("tmp_path")
    n = 6
    labels = np.array([0, 1] * 3)
    prov = pd.DataFrame({"generator": "g", "name": "g@1", "iteration": 1, "seed": 0,
                         "index": np.arange(n), "label": labels})
    s = SyntheticSamples(np.full((n, 8, 8), 7, np.uint8), labels, ["a", "b"], prov, {"members": ["g@1"]})
    out = export_dataset(s, tmp / name, formats=[name])
    assert (out / "meta.json").is_file() and (out / "manifest.csv").is_file()
    assert any(p.is_file() and p.name not in ("meta.json", "manifest.csv") for p in out.rglob("*"))


def _check_classifier(name, factory, request):
    from ensemble.downstream import create_classifier

    model = create_classifier(name, in_channels=1, num_classes=2).eval()
    with torch.no_grad():
        out = model(torch.zeros(2, 1, 28, 28))
    assert out.shape == (2, 2)


def _check_objective(name, fn, request):
    tables = request.getfixturevalue("toy_tables")
    masks = np.zeros((3, len(tables.names)), bool)
    masks[0, :2] = masks[1, 1:4] = masks[2, :] = True
    values = np.asarray(fn(tables, masks), dtype=float)
    assert values.shape == (3,) and np.isfinite(values).all()


CONTRACTS = {
    "architecture": _check_architecture,
    "backend": _check_backend,
    "search algorithm": _check_algorithm,
    "selection rule": _check_rule,
    "export format": _check_export_format,
    "downstream classifier": _check_classifier,
    "objective": _check_objective,
}


@pytest.mark.parametrize("kind,name", CASES, ids=[f"{k}:{n}" for k, n in CASES])
def test_registry_entry_honours_its_contract(kind, name, request):
    assert kind in CONTRACTS, f"registry {kind!r} has no contract in tests/test_registries.py: add one"
    CONTRACTS[kind](name, get_registry(kind).get(name), request)


@pytest.mark.parametrize("kind", list_registries())
def test_unknown_names_list_the_known_ones(kind):
    reg = get_registry(kind)
    with pytest.raises(ValueError, match="known: ") as err:
        reg.get("no-such-entry")
    for name in reg.list():
        assert name in str(err.value)
