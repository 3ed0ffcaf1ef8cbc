"""Figures of ``tumorsynth evaluate``: the worst-case montage has the radiological orientation of
the synthesis preview whatever the array order, and no title or label is cut off."""
from __future__ import annotations

import json

import numpy as np
import pytest

from TumorSynthLib.core.display import plane_slice
from TumorSynthLib.segmentation.report import dsc_figure, montage_figure, sensitivity_figure, worst_case_slice


def _scene(flip_lr: bool):
    """A reference tumor on the patient's right and anterior; arrays in RAS or in LPS order."""
    shape = (40, 30, 20)
    ref = np.zeros(shape, dtype=np.uint8)
    ref[28:34, 20:25, 8:12] = 2          # right (high R index) and anterior (high A index) in RAS order
    affine = np.diag([2.0, 2.0, 3.0, 1.0])
    if flip_lr:                           # the same anatomy stored LPS-like: i grows to the left
        ref = ref[::-1, ::-1]
        affine = np.diag([-2.0, -2.0, 3.0, 1.0])
    return ref, affine


@pytest.mark.parametrize("flip", [False, True])
def test_worst_case_slice_is_radiological_whatever_the_array_order(flip):
    ref, affine = _scene(flip)
    s = worst_case_slice(ref, ref, None, affine)
    rows, cols = np.nonzero(s["ref"] == 2)
    h, w = s["ref"].shape
    assert cols.mean() < w / 2        # the patient's right on the image left
    assert rows.mean() < h / 2        # anterior up
    preview = plane_slice(ref, affine, np.argwhere(ref == 2).mean(axis=0), "axial")[0]
    assert np.array_equal(preview, s["ref"])          # the preview's orientation, exactly


def _texts_inside(fig) -> None:
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    box = fig.bbox
    from matplotlib.text import Text

    texts = [t for t in fig.findobj(Text) if t.get_text() and t.get_visible()]
    assert texts
    for t in texts:
        ext = t.get_window_extent(renderer)
        assert ext.x0 >= box.x0 - 1 and ext.x1 <= box.x1 + 1 and ext.y0 >= box.y0 - 1 and ext.y1 <= box.y1 + 1, \
            f"'{t.get_text()}' is cut off"


def test_titles_and_labels_fit_in_their_figures():
    long_id = "a-rather-long-case-identifier-from-some-hospital-0042"
    ref, affine = _scene(False)
    case = {"case_id": long_id, "tumor_dsc": 0.5, "_slice": worst_case_slice(ref, ref, None, affine)}
    from TumorSynthLib.segmentation.metrics import SIZE_BUCKETS

    summary = {"by_size": {b[0]: {"sensitivity": 0.5, "n_tumors": 2} for b in SIZE_BUCKETS}}
    for fig in (montage_figure([case]), dsc_figure([case]), sensitivity_figure(summary)):
        _texts_inside(fig)


def test_a_single_file_evaluation_is_named_after_its_case_folder(phantom_small, tmp_path):
    from TumorSynthLib.core.volume_io import save_volume
    from TumorSynthLib.segmentation.evaluate import evaluate_predictions

    _, organs, _ = phantom_small
    task = organs.with_array((np.asarray(organs.array) == 5).astype(np.int16))
    gt = save_volume(task, tmp_path / "case7" / "label.nii.gz")
    pred = save_volume(task, tmp_path / "preds" / "pred.nii.gz")
    evaluate_predictions(pred, gt, tmp_path / "eval", organ="liver")
    cases = json.loads((tmp_path / "eval" / "summary.json").read_text())["cases"]
    assert [c["case_id"] for c in cases] == ["case7"]
