"""``tumorsynth web`` end to end in headless Chromium: a user's click in Slicer's axial view
(served by trame-slicer) makes a tumor that shows as an outline over darker pixels; errors of
the engine reach the page; undo, the download zip and per-tab scenes work."""
from __future__ import annotations

import json
import os
import shutil
import zipfile

import numpy as np
import pytest

from Testing.Web.conftest import REPO, open_page
from Testing.Web.web_helpers import (
    axial_pixels, click_in_axial, inside_outline, outline_mask, probe, state, wait_for_messages,
    wait_for_tumors,
)

SCREENSHOT = REPO / "docs" / "images" / "web-front-end.png"
OUTPUT = REPO / "Testing" / "Web" / "output"


def _place_in_liver(page) -> tuple[list[dict], np.ndarray, np.ndarray, dict]:
    where = probe(page, "liver")
    assert where["organ_at_voxel"] == "liver"
    page.wait_for_timeout(500)
    before = axial_pixels(page)
    click_in_axial(page, where)
    tumors = wait_for_tumors(page, 1)
    return tumors, before, axial_pixels(page), where


def test_click_in_liver_outlines_a_darker_tumor_of_the_requested_size(page):
    page.evaluate("() => window.trame.state.set('stage', 'intermediate')")
    page.wait_for_function("() => window.trame.state.get('diameter_min') == 20")  # range follows
    page.evaluate("() => window.trame.state.set('diameter', 30)")
    page.wait_for_function("() => document.querySelector('#ts-diameter')"
                           ".closest('.v-input').textContent.includes('30')")
    requested = float(state(page, "diameter"))
    tumors, before, after, where = _place_in_liver(page)
    outline = outline_mask(after) & ~outline_mask(before)
    assert outline.sum() >= 12, "no tumor outline appeared in the axial view"
    rows, cols = np.nonzero(outline)
    view = where["views"]["axial"]
    assert abs(cols.mean() - view["x"]) < 25 and abs(rows.mean() - view["y"]) < 25
    inside = inside_outline(outline)
    assert inside.sum() >= 4
    darker = before[inside][:, 0].astype(float).mean() - after[inside][:, 0].astype(float).mean()
    assert darker > 5.0, f"the tumor is not darker than the liver it replaced ({darker:.1f})"
    (row,) = tumors
    assert row["organ"] == "liver" and row["method"] == "handcrafted"
    assert abs(float(row["diameter"]) - requested) <= 0.2 * requested
    assert state(page, "tumor_count") == 1 and state(page, "can_undo")
    messages = state(page, "messages")
    assert messages[0]["type"] == "success" and "synthetic" in messages[0]["text"]
    OUTPUT.mkdir(exist_ok=True)
    page.screenshot(path=str(OUTPUT / SCREENSHOT.name))
    if os.environ.get("TUMORSYNTH_UPDATE_SCREENSHOTS"):
        shutil.copyfile(OUTPUT / SCREENSHOT.name, SCREENSHOT)


def _engine_message(ras) -> str:
    """What the engine says for a liver tumor at ``ras`` on the web page's phantom."""
    from TumorSynthLib import TumorSpec, synthesize
    from TumorSynthLib.core.errors import TumorSynthError
    from TumorSynthLib.volume import Volume
    from TumorSynthWeb.scene import PHANTOM_SHAPE, PHANTOM_SPACING

    from TumorSynthLib.phantom import make_abdomen

    ct, labels, _names = make_abdomen(0, shape=PHANTOM_SHAPE, spacing=PHANTOM_SPACING)
    organs = Volume(np.where(labels.array == 5, 1, 0).astype(np.uint8), labels.affine)
    spec = TumorSpec(organ="liver", stage="early", diameter_mm=15.0, center_ras=tuple(ras), seed=0)
    with pytest.raises(TumorSynthError) as error:
        synthesize(ct, organs, [spec], labels="binary", case_id="Phantom 0")
    return str(error.value)


def test_click_outside_the_body_shows_the_engine_message(page):
    where = probe(page, "outside")
    assert where["organ_at_voxel"] is None
    click_in_axial(page, where)
    messages = wait_for_messages(page, 2)
    assert messages[0]["type"] == "error"
    clicked = state(page, "last_click_ras")
    assert np.allclose(clicked, where["ras"], atol=3.0)            # within a voxel (2.5-4 mm)
    assert messages[0]["text"] == _engine_message(clicked)
    assert messages[0]["text"] in page.inner_text("#ts-messages")
    assert state(page, "tumors") == [] and state(page, "tumor_count") == 0


def test_undo_restores_the_view(page):
    _tumors, before, after, _where = _place_in_liver(page)
    assert (outline_mask(after) & ~outline_mask(before)).sum() >= 12
    page.click("#ts-undo")
    wait_for_tumors(page, 0)
    assert not state(page, "can_undo") and state(page, "messages")[0]["text"] == "Last tumor removed."
    undone = axial_pixels(page)
    assert (outline_mask(undone) & ~outline_mask(before)).sum() <= 2
    assert np.abs(undone.astype(int) - before.astype(int)).mean() < 1.0


def test_download_zip_holds_synthetic_image_labels_report_and_preview(page, tmp_path):
    _place_in_liver(page)
    with page.expect_download() as info:
        page.click("#ts-download")
    path = tmp_path / info.value.suggested_filename
    info.value.save_as(path)
    with zipfile.ZipFile(path) as archive:
        names = sorted(archive.namelist())
        assert names == ["README.txt", "image.nii.gz", "label.nii.gz", "preview.png",
                         "report.json", "tumors.seg.nrrd"]
        report = json.loads(archive.read("report.json"))
        archive.extractall(tmp_path / "case")
        assert "SYNTHETIC" in archive.read("README.txt").decode()
        assert archive.read("preview.png")[:8] == b"\x89PNG\r\n\x1a\n"
    assert report["synthetic"] is True and report["tumor_count"] == 1
    assert report["source"].startswith("built-in phantom")
    assert report["tumors"][0]["organ"] == "liver"
    from TumorSynthLib.volume import load_volume

    image = load_volume(tmp_path / "case" / "image.nii.gz")
    labels = load_volume(tmp_path / "case" / "label.nii.gz")
    assert image.metadata["synthetic"] and labels.metadata["synthetic"]
    assert image.array.shape == labels.array.shape and (labels.array == 2).sum() > 0


def test_a_second_tab_has_its_own_scene(page, browser, web_url):
    _place_in_liver(page)
    other = open_page(browser, web_url)
    try:
        assert state(other, "tumors") == [] and state(other, "tumor_count") == 0
        assert outline_mask(axial_pixels(other)).sum() == 0
        where = probe(other, "liver")
        click_in_axial(other, where)
        assert len(wait_for_tumors(other, 1)) == 1
        assert len(state(page, "tumors")) == 1                        # the first tab unchanged
    finally:
        other.context.close()


def test_live_growth_shows_progress_and_ignores_a_second_click(page):
    """Cellular growth runs off the event loop with a progress bar; place mode is off while the
    tumor forms, so a second click starts nothing (one tumor), as in the Slicer module."""
    if not any(m["value"] == "cellular" and not m["disabled"] for m in state(page, "methods")):
        pytest.skip("the cellular method cannot run here (see tumorsynth info)")
    page.evaluate("() => { window.trame.state.set('method', 'cellular');"
                  " window.trame.state.set('live', true); }")
    page.wait_for_function("() => window.trame.state.get('method_live')")
    where = probe(page, "liver")
    click_in_axial(page, where)
    page.wait_for_function("() => window.trame.state.get('busy')")
    first_click = state(page, "last_click_ras")
    assert page.locator("#ts-progress").is_visible()
    where["views"]["axial"]["x"] += 12                              # a second click, nearby
    click_in_axial(page, where)
    page.wait_for_function("() => window.trame.state.get('growing')"
                           " || window.trame.state.get('tumors').length > 0")
    tumors = wait_for_tumors(page, 1)
    page.wait_for_timeout(1000)
    assert tumors[0]["method"] == "cellular" and state(page, "tumor_count") == 1
    assert state(page, "last_click_ras") == first_click            # the second click made no point
    assert not state(page, "busy")


def test_upload_a_ct_and_its_labels(page, tmp_path):
    from TumorSynthLib.phantom import make_abdomen
    from TumorSynthLib.volume import save_volume

    ct, labels, _names = make_abdomen(3, shape=(96, 96, 48), spacing=(3.0, 3.0, 5.0))
    save_volume(ct, tmp_path / "patient.nii.gz")
    save_volume(labels, tmp_path / "patient_organs.nii.gz")
    inputs = page.locator("input[type=file]")
    inputs.nth(0).set_input_files(str(tmp_path / "patient.nii.gz"))
    inputs.nth(1).set_input_files(str(tmp_path / "patient_organs.nii.gz"))
    page.wait_for_function("() => window.trame.state.get('messages')"
                           ".filter(m => m.text.startsWith('Uploaded')).length == 2")
    page.click("#ts-open")
    page.wait_for_function("() => document.querySelector('#ts-case-source')"
                           ".textContent.includes('patient.nii.gz')")
    page.wait_for_timeout(800)
    where = probe(page, "kidney")
    assert where["organ_at_voxel"] == "kidney"
    page.evaluate("() => window.trame.state.set('organ', 'kidney')")
    click_in_axial(page, where)
    (row,) = wait_for_tumors(page, 1)
    assert row["organ"] == "kidney"
