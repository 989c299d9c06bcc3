"""Provenance travels with results (issue 11): ``selected.json`` records each member's sha256 as
scored, and export and evaluate refuse a zoo whose member of that name is another generator."""

from __future__ import annotations

import pytest

from ensemble.downstream import build_arms
from ensemble.search.result import Ensemble
from ensemble.synthesis.sample import sample_ensemble


def _selected(catalog, members):
    return Ensemble(members, intra_d=0.5, inter_d=0.1, rule="max-fidelity",
                    meta={"members_sha256": {m: catalog.get(m)["sha256"] for m in members}})


def test_export_and_arms_refuse_a_member_that_changed(toy_catalog, tmp_path, monkeypatch, pneumonia_small):
    from zoo.catalog import Catalog

    sel = _selected(toy_catalog, ["toy0@0", "toy1@0"])
    assert len(sample_ensemble(sel, toy_catalog, n_per_class=2, seed=0)) == 4  # the same zoo: fine

    # the same names in a zoo whose toy1@0 is another generator (another style: another hash)
    other = Catalog(tmp_path / "other-zoo")
    other.register_callable("_synth_toys:make_toy", name="toy0@0", num_classes=2, image_shape=(28, 28),
                            dataset="pneumoniamnist", style=0)
    other.register_callable("_synth_toys:make_toy", name="toy1@0", num_classes=2, image_shape=(28, 28),
                            dataset="pneumoniamnist", style=3)
    assert other.get("toy0@0")["sha256"] == toy_catalog.get("toy0@0")["sha256"]
    assert other.get("toy1@0")["sha256"] != toy_catalog.get("toy1@0")["sha256"]
    with pytest.raises(ValueError, match=r"member 'toy1@0' .* the zoo changed since the search"):
        sample_ensemble(sel, other, n_per_class=2, seed=0)
    with pytest.raises(ValueError, match=r"member 'toy1@0' .* the zoo changed since the search"):
        build_arms(other, sel, pneumonia_small, n_per_class=2, n_random=0)
    # a selection made before provenance was recorded still works (nothing to compare)
    old = Ensemble(["toy0@0", "toy1@0"], intra_d=0.5, inter_d=0.1, rule="max-fidelity")
    assert len(sample_ensemble(old, other, n_per_class=2, seed=0)) == 4
