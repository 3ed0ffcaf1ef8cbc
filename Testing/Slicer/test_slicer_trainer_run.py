"""The Trainer logic drives the real ``tumorsynth`` CLI: train with events, cancel, resume; then
apply the model and evaluate it, with the results loaded back into the scene.

Scene volumes are written as a datalist into the run folder (as the Trainer module does), a
tiny phantom run is started through ``BackgroundJobs`` with ``--events jsonl``, cancelled once
it has taken two steps (the CLI saves ``last.pt`` on SIGTERM), then resumed to completion.
Budget: ~25 s for training on 2 CPU cores (interpreter + torch start-ups dominate), ~20 s for
apply + evaluate.
"""
from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest

from slicer_test_phantom import require_slicer_core

require_slicer_core()
if importlib.util.find_spec("TumorSynthLib.cli.train") is None:
    pytest.skip("the `tumorsynth train` command is not available yet", allow_module_level=True)
if importlib.util.find_spec("torch") is None:
    pytest.skip("training needs torch", allow_module_level=True)

REPO = Path(__file__).resolve().parents[2]
TINY = ["--spacing", "6", "--patch", "32", "--channels", "4,8,16", "--val-every", "0",
        "--ckpt-every", "1", "--workers", "0", "--samples-per-case", "1"]


def _phantom_nodes(scene, slicer_mod):
    from TumorSynthLib.phantom import make_abdomen

    ct, organs, _names = make_abdomen(0, shape=(64, 64, 32), spacing=(5.6, 5.6, 7.5))
    image = slicer_mod.util.addVolumeFromArray(ct.array.transpose(2, 1, 0), ct.affine, name="P0")
    label = slicer_mod.util.addVolumeFromArray(organs.array.transpose(2, 1, 0), organs.affine,
                                               name="P0 labels",
                                               nodeClassName="vtkMRMLLabelMapVolumeNode")
    return image, label


def _jobs(scene):
    from TumorSynthSlicer.process_logic import ManualScheduler
    from TumorSynthSlicer.trainer_logic import BackgroundJobs

    scheduler = ManualScheduler()
    return scheduler, BackgroundJobs(scene, scheduler, python=sys.executable, libDir=str(REPO))


def _wait(scheduler, done, timeout=45.0):
    assert scheduler.pump(timeoutS=timeout, until=lambda: bool(done)), "the job did not end"
    return done[0]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """Train (cancelled at step 2), then resume; returns what each run reported."""
    slicer = require_slicer_core()
    from TumorSynthSlicer.segment_logic import register_converter_rules
    from TumorSynthSlicer.trainer_logic import TrainRequest

    register_converter_rules()
    scene = slicer.vtkMRMLScene()
    slicer.mrmlScene = scene
    image, label = _phantom_nodes(scene, slicer)
    out = tmp_path_factory.mktemp("run") / "liver1"
    scheduler, jobs = _jobs(scene)
    request = TrainRequest(data=[(image, label)], outDir=str(out), organ="liver",
                           maxSteps=400, device="cpu", labels="totalseg", extra=TINY)
    first_done, updates = [], []
    first = jobs.train(request, onUpdate=lambda p: updates.append(p.step),
                       onDone=first_done.append)
    assert scheduler.pump(timeoutS=45, until=lambda: first.step >= 2)
    jobs.cancel(graceS=20)
    _wait(scheduler, first_done)
    had_last = (out / "last.pt").exists()
    stopped_at = first.step

    request.data, request.resume, request.maxSteps = str(out / "data" / "datalist.json"), True, \
        stopped_at + 2
    second_done = []
    second = jobs.train(request, onDone=second_done.append)
    result = _wait(scheduler, second_done)
    return {"first": first, "second": second, "result": result, "had_last": had_last,
            "stopped_at": stopped_at, "updates": updates, "out": out}


def test_train_cancel_resume(trained):
    first, second = trained["first"], trained["second"]
    assert first.status == "cancelled" and trained["had_last"]        # last.pt on SIGTERM
    assert first.last.get("v") == 1 and first.total == 400 and first.percent < 100
    assert len(first.losses) >= 2 and trained["updates"]
    assert (trained["out"] / "data" / "datalist.json").exists()
    assert second.status == "done", second.error
    assert second.fraction == 1.0 and second.step == trained["stopped_at"] + 2
    assert second.losses[0][0] >= trained["stopped_at"]                # resumed, not restarted
    assert trained["result"].outputs["last.pt"].exists()


def test_apply_and_evaluate_come_back_into_the_scene(trained, scene, slicer_mod):
    from TumorSynthSlicer import segment_logic, table_logic
    from TumorSynthSlicer.volume_logic import array_ijk, labelmap_on_grid

    image, label = _phantom_nodes(scene, slicer_mod)
    scheduler, jobs = _jobs(scene)
    done = []
    jobs.segment(str(trained["result"].outputs["last.pt"]), image, device="cpu",
                 onDone=done.append)
    applied = _wait(scheduler, done)
    assert applied.progress.status == "done", applied.progress.error
    seg = applied.outputs["segmentation"]
    assert seg.GetSegmentation().ContainsRepresentation("Closed surface")
    assert applied.outputs["summary"]["tumor_count"] == \
        applied.outputs["table"].GetTable().GetNumberOfRows()

    labels = array_ijk(label).copy()
    liver = np.argwhere(labels == 5)
    centre = liver[len(liver) // 2]
    box = tuple(slice(c - 1, c + 2) for c in centre)
    labels[box] = np.where(labels[box] == 5, 205, labels[box])     # a small liver tumor
    reference = labelmap_on_grid(image, labels, "reference")
    done = []
    outcome = jobs.evaluate(reference, reference, image, organ="liver", onDone=done.append)
    names = [segment_logic.segment_name(outcome["segmentation"], s)
             for s in segment_logic.segment_ids(outcome["segmentation"])]
    assert names == ["True positive"]                 # a reference against itself
    evaluated = _wait(scheduler, done)
    assert evaluated.progress.status == "done", evaluated.progress.error
    metrics = evaluated.outputs["metricsTable"]
    assert table_logic.column_values(metrics, "Metric")[0] == "Tumor DSC (mean)"
    assert float(table_logic.column_values(metrics, "Value")[0]) == pytest.approx(1.0)
    assert evaluated.outputs["chart"].GetNumberOfPlotSeriesNodes() == 1
    assert np.all(np.isfinite([float(v) for v in
                               table_logic.column_values(evaluated.outputs["sizeTable"],
                                                         "Tumors")]))
