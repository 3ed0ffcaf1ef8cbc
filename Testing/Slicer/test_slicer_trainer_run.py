"""The Trainer logic drives the real ``tumorsynth train`` CLI: events, cancel, resume.

Scene volumes are written as a datalist (as the Trainer module does), a tiny phantom run is
started through ``ProcessRunner`` with ``--events jsonl``, cancelled once it has taken a step
(the CLI saves ``last.pt`` on SIGTERM), then resumed to completion. Budget: ~25 s on 2 CPU
cores (two interpreter start-ups with torch dominate).
"""
from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

pytest.importorskip("slicer", reason="slicer-core is not installed: Slicer logic tests skipped")
if importlib.util.find_spec("TumorSynthLib.cli.train") is None:
    pytest.skip("the `tumorsynth train` command is not available yet", allow_module_level=True)
if importlib.util.find_spec("torch") is None:
    pytest.skip("training needs torch", allow_module_level=True)

REPO = Path(__file__).resolve().parents[2]
TINY = ["--labels", "totalseg", "--spacing", "6", "--patch", "16", "--channels", "4,8,16",
        "--val-every", "0", "--ckpt-every", "1", "--workers", "0", "--samples-per-case", "1"]


@pytest.fixture
def datalist(scene, slicer_mod, tmp_path):
    from TumorSynthLib.phantom import make_abdomen
    from TumorSynthSlicer.files_logic import write_datalist

    ct, organs, _names = make_abdomen(0, shape=(64, 64, 32), spacing=(5.6, 5.6, 7.5))
    image = slicer_mod.util.addVolumeFromArray(ct.array.transpose(2, 1, 0), ct.affine, name="P0")
    label = slicer_mod.util.addVolumeFromArray(organs.array.transpose(2, 1, 0), organs.affine,
                                               name="P0 labels",
                                               nodeClassName="vtkMRMLLabelMapVolumeNode")
    return write_datalist([(image, label)], tmp_path / "data")


def _run(args, progress, cancel_at_step=None, timeout=40.0):
    from TumorSynthSlicer.process_logic import (ManualScheduler, ProcessRunner, engine_env,
                                                tumorsynth_command)

    finished = []
    scheduler = ManualScheduler()
    runner = ProcessRunner(scheduler, onEvent=progress.update,
                           onFinished=lambda code, cancelled: finished.append((code, cancelled)),
                           pollMs=50)
    runner.start(tumorsynth_command(sys.executable, "train", args), env=engine_env(str(REPO)))
    if cancel_at_step is not None:
        assert scheduler.pump(timeoutS=timeout, until=lambda: progress.step >= cancel_at_step)
        runner.cancel(graceS=20)
    assert scheduler.pump(timeoutS=timeout, until=lambda: bool(finished)), "run did not end"
    progress.finished(*finished[0])
    return finished[0]


def test_train_cancel_resume(datalist, tmp_path):
    from TumorSynthSlicer.process_logic import train_args
    from TumorSynthSlicer.progress_logic import RunProgress

    out = tmp_path / "run"
    first = RunProgress()
    code, cancelled = _run(train_args(str(datalist), "liver", "handcrafted", str(out),
                                      maxSteps=400, device="cpu", extra=TINY),
                           first, cancel_at_step=2)
    assert cancelled and first.status == "cancelled"
    assert code != 0
    assert first.last.get("v") == 1 and first.total == 400
    assert len(first.losses) >= 2 and first.percent < 100
    assert (out / "last.pt").exists()                       # saved on SIGTERM
    stopped_at = first.step

    resumed = RunProgress()
    code, cancelled = _run(train_args(str(datalist), "liver", "handcrafted", str(out),
                                      maxSteps=stopped_at + 2, device="cpu", resume=True,
                                      extra=TINY), resumed)
    assert (code, cancelled) == (0, False), resumed.error
    assert resumed.status == "done" and resumed.fraction == 1.0
    assert resumed.losses[0][0] > stopped_at - 1              # continued, not restarted
    assert resumed.step == stopped_at + 2
