"""Realism on the phantom (both phases): the realism issue's checks, measured with the same
figures as ``benchmarks/bench_realism.py`` (``TumorSynthLib.datasets.realism``).

Each test makes a few tumors at sampled places and checks one property: the scan's grain kept,
nothing but soft tissue near the organ moved, a kidney left at least half whole, a pancreas
tumor darker than the non-fat parenchyma and inside its outline, cellular tumors that push
(spherical, not a wedge), kidney shapes like KiTS19's manual masks, and the warnings that reach
the user (field of view, thin organ) on stderr and as events.
"""
from __future__ import annotations

import io
import json
from contextlib import redirect_stderr, redirect_stdout

import numpy as np
import pytest

from TumorSynthLib import TumorSpec, synthesize
from TumorSynthLib.core.volume import Volume
from TumorSynthLib.datasets.realism import summarise, tumor_metrics
from TumorSynthLib.volume import save_volume

KITS = {"sphericity": 0.80, "elongation": 0.85, "flatness": 0.70}


@pytest.fixture(scope="module")
def phases(phantom_default):
    """{phase: (ct, organs)} of the default phantom, venous and non-contrast."""
    from TumorSynthLib.phantom import make_abdomen

    ct, organs, _ = make_abdomen(seed=0, phase="noncontrast")
    return {"venous": phantom_default[:2], "noncontrast": (ct, organs)}


def metrics(ct, organs, organ, stage, method, seeds, **options):
    rows = []
    for seed in seeds:
        res = synthesize(ct, organs, TumorSpec(organ=organ, stage=stage, method=method, seed=seed, options=options))
        rows.append(tumor_metrics(ct, organs, res))
    return rows


@pytest.mark.parametrize("method,organ", [("handcrafted", "liver"), ("handcrafted", "kidney"),
                                          ("cellular", "liver"), ("handcrafted", "pancreas")])
def test_tumors_keep_the_scans_grain(phases, method, organ):
    """Grain (high-pass robust SD) inside intermediate tumors is 0.85-1.15 of the organ's."""
    ct, organs = phases["venous"]
    rows = metrics(ct, organs, organ, "intermediate", method, range(3))
    grain = summarise(rows, "grain_ratio")
    assert grain is not None and 0.85 <= grain <= 1.15, [r["grain_ratio"] for r in rows]


@pytest.mark.parametrize("method", ["handcrafted", "cellular"])
def test_mass_effect_moves_only_soft_tissue_near_the_organ(phases, method):
    """Advanced liver tumors with mass effect: no bone, air or outside-body voxel changes and
    nothing farther than 10 mm outside the liver; the tumor pushed (voxels moved)."""
    ct, organs = phases["venous"]
    for seed in (0, 1):
        res = synthesize(ct, organs, TumorSpec(organ="liver", stage="advanced", method=method, seed=seed,
                                               options={"mass_effect": True}))
        m = tumor_metrics(ct, organs, res)
        assert (m["changed_bone"], m["changed_air"], m["changed_far"]) == (0, 0, 0), m
        assert res.reports[0]["mass_effect"]["moved_voxels"] > 0


@pytest.mark.parametrize("method", ["handcrafted", "cellular"])
def test_vessels_beside_the_pancreas_stay_where_they_are(phases, method):
    """The large veins next to the pancreas are labelled vessels outside it: an advanced tumor
    bends only the vessels within the organ's margin (seed 1 used to move the vein 17 mm out)."""
    ct, organs = phases["venous"]
    res = synthesize(ct, organs, TumorSpec(organ="pancreas", stage="advanced", method=method, seed=1,
                                           options={"mass_effect": True}))
    m = tumor_metrics(ct, organs, res)
    assert (m["changed_bone"], m["changed_air"], m["changed_far"]) == (0, 0, 0), m


@pytest.mark.parametrize("method", ["handcrafted", "cellular"])
def test_advanced_kidney_tumors_leave_half_the_kidney(phases, method):
    ct, organs = phases["venous"]
    rows = metrics(ct, organs, "kidney", "advanced", method, (0, 1))
    assert all(r["organ_share"] <= 0.5 for r in rows), [r["organ_share"] for r in rows]
    assert any(r["outside_share"] > 0.1 for r in rows)            # they may bulge out of the cortex
    assert all(r["size_ratio"] > 0.85 for r in rows)              # at their size


@pytest.mark.parametrize("phase", ["venous", "noncontrast"])
@pytest.mark.parametrize("method", ["handcrafted", "cellular"])
def test_pancreas_tumors_are_darker_and_inside_the_outline(phases, phase, method):
    ct, organs = phases[phase]
    rows = metrics(ct, organs, "pancreas", "intermediate", method, (0, 1))
    assert all(r["drop_hu"] is not None and r["drop_hu"] > 0 for r in rows), [r["drop_hu"] for r in rows]
    assert max(r["outside_share"] for r in rows) <= 0.10, [r["outside_share"] for r in rows]


def test_a_fatty_pancreas_gets_a_tumor_darker_than_its_parenchyma(phases):
    """Half the pancreas turned to fat (-60 HU): the tumor replaces fat and parenchyma alike
    and ends darker than the non-fat parenchyma, not brighter than the fatty organ's mean."""
    ct, organs = phases["noncontrast"]
    image = np.array(ct.array, copy=True)
    pancreas = organs.array == 7
    lobules = pancreas & (np.random.default_rng(0).random(ct.shape) < 0.5)
    image[lobules] = -60.0 + np.random.default_rng(1).normal(0, 10, int(lobules.sum()))
    fatty = Volume(image, ct.affine, dict(ct.metadata))
    for seed in (0, 1):
        res = synthesize(fatty, organs, TumorSpec(organ="pancreas", stage="intermediate", seed=seed))
        m = tumor_metrics(fatty, organs, res)
        assert m["drop_hu"] > 0 and m["fat_share"] > 0.3, m


def test_small_tumors_in_the_fatty_3mm_pancreas_keep_their_level(example_ct_paths):
    """Early tumors in the example CT's fatty pancreas replace fat with parenchyma-level tissue
    plus re-synthesised grain; that grain is spatially correlated, so over a 50-voxel tumor its
    mean was +-10 HU: one came out 12 HU brighter than the organ (drop -9.9 HU against the
    shell's parenchyma). The grain is zero-mean now and every tumor is darker than the organ."""
    from TumorSynthLib.core.volume_io import load_volume

    ct, seg = (load_volume(p) for p in example_ct_paths)
    for seed in range(3):
        res = synthesize(ct, seg, TumorSpec(organ="pancreas", stage="early", method="handcrafted", seed=seed))
        report, m = res.reports[0], tumor_metrics(ct, seg, res)
        assert report["mean_tumor_hu"] < report["organ_median_hu"], (seed, report["mean_tumor_hu"])
        assert m["drop_hu"] is None or m["drop_hu"] > 0, (seed, m["drop_hu"])


def test_advanced_cellular_liver_tumors_push_instead_of_filling_a_wedge(phases):
    """Rounder than the wedge the issue measured (sphericity 0.68 on the example CT; the
    issue's bar is a median of 0.70), in one piece (satellites off: they are separate nodules by
    design). Sampled liver centres prefer a depth of 0.4 r, so the capsule no longer cuts them."""
    ct, organs = phases["venous"]
    rows = metrics(ct, organs, "liver", "advanced", "cellular", (0, 3), satellites=False)
    assert summarise(rows, "sphericity") >= 0.70, [r["sphericity"] for r in rows]
    assert all(r["components"] == 1 for r in rows)


def test_mass_effect_keeps_the_grain_on_the_3mm_example_ct(example_ct_paths):
    """At 3 mm each voxel moves on its own and the ring around a large tumor takes its tissue
    from a smaller sphere; the scanner's fine noise stays in place, so the organ shell keeps its
    grain and the tumor is not topped up past it (advanced kidney grain ratios were 1.16-1.17)."""
    from TumorSynthLib.core.volume_io import load_volume

    ct, seg = (load_volume(p) for p in example_ct_paths)
    rows = metrics(ct, seg, "kidney", "advanced", "handcrafted", (0, 1))
    assert all(0.85 <= r["grain_ratio"] <= 1.15 for r in rows), [r["grain_ratio"] for r in rows]


def test_mass_effect_keeps_the_grain_on_the_anisotropic_phantom(phases):
    """On the 1.4 x 1.4 x 2.5 mm venous phantom the push also moves single voxels: the moving
    rest must not carry the noise (a 3x3x3 split smoothed the shell around advanced kidney
    tumors by 16 %), and the tumor's grain target is the organ's before the push (measured in
    the pushed ring it held compressed structure): ratios were 1.38 / 1.22 / 1.30 here."""
    ct, organs = phases["venous"]
    ratios = [r["grain_ratio"] for r in metrics(ct, organs, "kidney", "advanced", "handcrafted", (1, 3, 4))]
    assert 0.85 <= float(np.median(ratios)) <= 1.12 and max(ratios) <= 1.2, ratios


@pytest.mark.parametrize("method", ["handcrafted", "cellular"])
def test_kidney_tumor_shapes_are_like_kits19(phases, method):
    """Median sphericity, elongation and flatness of intermediate and advanced kidney tumors
    within 0.05 (0.08 over this test's few tumors) of KiTS19's manual masks."""
    ct, organs = phases["venous"]
    rows = []
    for stage in ("intermediate", "advanced"):
        rows += metrics(ct, organs, "kidney", stage, method, (0, 1))
    for key, ref in KITS.items():
        assert abs(summarise(rows, key) - ref) <= 0.08, (key, [r[key] for r in rows])


def test_a_tumor_cut_by_the_scan_edge_is_reported_on_stderr_and_as_an_event(phantom_default, tmp_path):
    """A large tumor clicked at the liver's top slice: the report, stderr and the JSON-lines
    events all carry the field-of-view warning."""
    from TumorSynthLib.cli import main

    ct, organs, _ = phantom_default
    top = int(np.max(np.nonzero((organs.array == 5).any(axis=(0, 1)))))
    crop = slice(0, top + 1)
    image = Volume(np.array(ct.array[:, :, crop]), ct.affine, dict(ct.metadata))
    labels = Volume(np.array(organs.array[:, :, crop]), organs.affine, dict(organs.metadata))
    ij = np.argwhere(labels.array[:, :, top - 2] == 5).mean(axis=0)
    ras = (ct.affine @ np.array([ij[0], ij[1], top - 2, 1.0]))[:3]
    save_volume(image, tmp_path / "ct.nii.gz")
    save_volume(labels, tmp_path / "organs.nii.gz")
    out, err = io.StringIO(), io.StringIO()
    tumor = f"organ=liver,diameter=60,point={ras[0]:.1f}:{ras[1]:.1f}:{ras[2]:.1f}"
    with redirect_stdout(out), redirect_stderr(err):
        code = main(["synth", "--image", str(tmp_path / "ct.nii.gz"), "--organs", str(tmp_path / "organs.nii.gz"),
                     "--out", str(tmp_path / "case"), "--tumor", tumor, "--events", "jsonl"])
    assert code == 0
    events = [json.loads(line) for line in out.getvalue().splitlines()]
    warnings = [e["message"] for e in events if e["event"] == "warning"]
    assert any("field of view" in w for w in warnings), events
    assert "warning:" in err.getvalue() and "field of view" in err.getvalue()
    report = json.loads((tmp_path / "case" / "report.json").read_text())
    assert any("field of view" in w for t in report["tumors"] for w in t["warnings"])


def test_sampled_places_keep_the_tumor_inside_a_short_scan(phantom_default):
    """On a scan cut to 30 slices through the liver, sampled advanced tumors never touch the
    first or last slice."""
    ct, organs, _ = phantom_default
    ks = np.nonzero((organs.array == 5).any(axis=(0, 1)))[0]
    mid = int(ks.mean())
    crop = slice(mid - 15, mid + 15)
    shift = np.eye(4)
    shift[2, 3] = crop.start
    image = Volume(np.array(ct.array[:, :, crop]), ct.affine @ shift, dict(ct.metadata))
    labels = Volume(np.array(organs.array[:, :, crop]), organs.affine @ shift, dict(organs.metadata))
    for seed in range(3):
        res = synthesize(image, labels, TumorSpec(organ="liver", stage="intermediate", seed=seed))
        tumor = res.tumor_instances.array > 0
        assert not tumor[:, :, 0].any() and not tumor[:, :, -1].any()
        assert not any("field of view" in w for w in res.reports[0]["warnings"])


def test_a_thin_pancreas_warns_that_it_is_too_thin_for_the_stage(phases):
    ct, organs = phases["venous"]
    res = synthesize(ct, organs, TumorSpec(organ="pancreas", stage="advanced", seed=0))
    assert any("too thin" in w for w in res.reports[0]["warnings"]), res.reports[0]["warnings"]
