"""One contract for every registered provider and method: whatever a geometry or appearance
provider does, the pipeline's promises hold (ROI-only change, inputs untouched, determinism,
size within +-20 %, the declared report fields, a smooth change that keeps the scan's grain)."""
from __future__ import annotations

import itertools

import numpy as np
import pytest

from TumorSynthLib import TumorSpec, synthesize
from TumorSynthLib.synthesis import registry
from TumorSynthLib.synthesis.lesion_types import LESION_TYPES
from TumorSynthLib.synthesis.report import REPORT_KEYS

registry.discover()
PAIRS = sorted(itertools.product(registry.geometry_names(), registry.appearance_names()))
METHODS = sorted(registry.methods())


def _skip_unless_available(geometry: str, appearance: str) -> None:
    for kind, name in (("geometry", geometry), ("appearance", appearance)):
        ok, why = registry.availability(kind, name)
        if not ok:
            pytest.skip(f"{kind} '{name}' is not available here: {why}")


def _run(phantom, geometry: str, appearance: str, seed: int = 3, stage: str = "intermediate"):
    ct, organs, _ = phantom
    benign = {t.appearance: t.name for t in LESION_TYPES.values() if t.benign}   # a cyst's paint makes a cyst
    options = {"lesion": benign[appearance]} if appearance in benign else {}
    spec = TumorSpec(organ="liver", stage=stage, diameter_mm=30.0, seed=seed, method="handcrafted",
                     geometry=geometry, appearance=appearance, options=options)
    return synthesize(ct, organs, spec)


@pytest.mark.parametrize("geometry, appearance", PAIRS)
def test_every_provider_pair_keeps_the_contract(phantom_small, geometry, appearance):
    _skip_unless_available(geometry, appearance)
    ct, organs, _ = phantom_small
    before = (ct.array.copy(), organs.array.copy())
    a = _run(phantom_small, geometry, appearance)
    b = _run(phantom_small, geometry, appearance)
    assert np.array_equal(ct.array, before[0]) and np.array_equal(organs.array, before[1])
    outside = np.ones(ct.shape, dtype=bool)
    outside[a.roi.slices] = False
    assert np.array_equal(a.image.array[outside], ct.array[outside])
    assert np.array_equal(a.labels.array[outside], organs.array[outside])
    assert np.array_equal(a.image.array, b.image.array) and np.array_equal(a.labels.array, b.labels.array)
    strip = [{k: v for k, v in r.items() if k != "timing"} for r in (a.reports[0], b.reports[0])]
    assert strip[0] == strip[1]
    rep = a.reports[0]
    assert set(REPORT_KEYS) <= set(rep), set(REPORT_KEYS) - set(rep)
    assert (rep["geometry"], rep["appearance"]) == (geometry, appearance)
    ratio = rep["diameter_measured_mm"] / rep["diameter_target_mm"]
    assert abs(ratio - 1) <= 0.2 or (rep["size_limited_by_organ"] and rep["organ_fill_fraction"] >= 0.9)
    tumor = a.tumor_instances.array > 0
    assert np.count_nonzero(a.labels.array == rep["tumor_id"]) == np.count_nonzero(tumor) == rep["n_voxels"]
    if rep["lesion"] != "hemangioma":      # a venous-phase hemangioma fills in, isodense to the vessels
        assert rep["mean_tumor_hu"] < rep["organ_median_hu"]


@pytest.mark.parametrize("appearance", registry.appearance_names())
def test_every_appearance_declares_its_solid_part_inside_the_tumor(phantom_small, monkeypatch, appearance):
    """``Appearance.solid_hu`` (the shading applies it unfaded) is on ``solid_box``, zero
    outside the tumor's mask, and part of the change (not added on top of it)."""
    _skip_unless_available("ellipsoid", appearance)
    from TumorSynthLib.synthesis import pipeline

    seen = []
    real_shade = pipeline.shade
    monkeypatch.setattr(pipeline, "shade", lambda site, scene, geometry, look, *rest:
                        seen.append((geometry, look)) or real_shade(site, scene, geometry, look, *rest))
    _run(phantom_small, "ellipsoid", appearance)
    geometry, look = seen[0]
    assert look.solid_hu is not None and look.solid_box is not None, "every shipped appearance starts from solid_change"
    assert look.solid_hu.shape == tuple(look.solid_box.shape) and look.solid_hu.dtype == np.float32
    inside = geometry.mask[look.solid_box.slices]
    assert not np.any(look.solid_hu[~inside]) and np.any(look.solid_hu[inside])
    assert not np.any(look.change_hu[look.solid_box.slices][~inside & (look.solid_hu != 0)])


@pytest.mark.parametrize("method", METHODS)
def test_every_method_is_a_named_pair_of_registered_providers(method):
    pair = registry.get_method(method)
    assert pair.geometry in registry.geometry_names() and pair.appearance in registry.appearance_names()
    assert registry.resolve(method) == (pair.geometry, pair.appearance)


def test_providers_declare_their_options_in_the_table():
    from TumorSynthLib.synthesis.options import option_spec

    for kind, names in (("geometry", registry.geometry_names()), ("appearance", registry.appearance_names())):
        for name in names:
            for key in registry.provider_class(kind, name).options:
                assert option_spec(key).reader == name, (kind, name, key)
