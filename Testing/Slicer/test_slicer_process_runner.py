"""The background process runner: JSON-lines events through an injected scheduler, cancel of the
whole process tree, progress/ETA folding. Uses small Python child scripts (no engine)."""
from __future__ import annotations

import os
import sys
import textwrap
import time

import pytest

from slicer_test_phantom import require_slicer_core

require_slicer_core()

EMITTER = textwrap.dedent("""
    import json, sys, time
    total = 4
    print(json.dumps({"v": 1, "event": "start", "step": 0, "total": total, "elapsed_s": 0,
                      "eta_s": None}), flush=True)
    print("a human line on stderr", file=sys.stderr, flush=True)
    for step in range(1, total + 1):
        print(json.dumps({"v": 1, "event": "progress", "step": step, "total": total,
                          "elapsed_s": 0.01 * step, "eta_s": 0.01 * (total - step),
                          "loss": 1.0 / step}), flush=True)
        time.sleep(0.01)
    print(json.dumps({"v": 1, "event": "validation", "step": total, "total": total,
                      "metrics": {"tumor_dsc": 0.5}}), flush=True)
    print("not json on stdout", flush=True)
    print(json.dumps({"v": 1, "event": "done", "step": total, "total": total}), flush=True)
""")

TREE = textwrap.dedent("""
    import json, subprocess, sys, time
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    with open(sys.argv[1], "w") as f:
        f.write(str(child.pid))
    print(json.dumps({"v": 1, "event": "start", "step": 0, "total": 10}), flush=True)
    time.sleep(60)
""")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/stat") as stat:          # a zombie counts as ended
        return stat.read().split()[2] != "Z"


def _runner(progress, logs, finished):
    from TumorSynthSlicer.process_logic import ManualScheduler, ProcessRunner

    scheduler = ManualScheduler()
    runner = ProcessRunner(scheduler, onEvent=progress.update, onLog=logs.append,
                           onFinished=lambda code, cancelled: finished.append((code, cancelled)),
                           pollMs=20)
    return scheduler, runner


def test_events_logs_and_completion_arrive_through_the_scheduler(tmp_path):
    from TumorSynthSlicer.progress_logic import RunProgress

    script = tmp_path / "emit.py"
    script.write_text(EMITTER)
    progress, logs, finished = RunProgress(), [], []
    scheduler, runner = _runner(progress, logs, finished)
    runner.start([sys.executable, str(script)])
    assert progress.events == 0                       # nothing is delivered outside pump()
    assert scheduler.pump(timeoutS=20, until=lambda: bool(finished))
    assert finished == [(0, False)] and not runner.running
    assert progress.status == "done" and progress.fraction == 1.0
    assert [s for s, _ in progress.losses] == [1, 2, 3, 4]
    assert progress.lastDice() == 0.5
    assert "a human line on stderr" in logs and "not json on stdout" in logs


@pytest.mark.skipif(sys.platform != "linux", reason="checks processes through /proc")
def test_cancel_ends_the_whole_process_tree(tmp_path):
    from TumorSynthSlicer.progress_logic import RunProgress

    script, pid_file = tmp_path / "tree.py", tmp_path / "child.pid"
    script.write_text(TREE)
    progress, logs, finished = RunProgress(), [], []
    scheduler, runner = _runner(progress, logs, finished)
    runner.start([sys.executable, str(script), str(pid_file)])
    assert scheduler.pump(timeoutS=20, until=lambda: progress.events > 0 and pid_file.exists())
    grandchild = int(pid_file.read_text())
    assert _alive(grandchild)
    runner.cancel(graceS=5)
    assert scheduler.pump(timeoutS=20, until=lambda: bool(finished))
    assert finished[0][1] is True                     # reported as cancelled
    deadline = time.monotonic() + 5
    while _alive(grandchild) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(grandchild)
    progress.finished(*finished[0])
    assert progress.status == "cancelled"


def test_a_missing_program_raises_a_clear_error():
    from TumorSynthSlicer.errors import ProcessError
    from TumorSynthSlicer.process_logic import ManualScheduler, ProcessRunner

    with pytest.raises(ProcessError, match="could not start"):
        ProcessRunner(ManualScheduler()).start(["/nonexistent/tumorsynth-python"])


def test_progress_eta_text_and_failed_runs():
    from TumorSynthSlicer.progress_logic import RunProgress, format_duration

    progress = RunProgress()
    progress.update({"event": "progress", "step": 30, "total": 120, "eta_s": 185.2, "loss": 0.7})
    assert progress.percent == 25 and progress.etaText() == "ETA 3 min 06 s"
    progress.update({"event": "error", "step": 31, "message": "out of memory: use --device cpu"})
    progress.finished(1, False)
    assert progress.status == "error" and "out of memory" in progress.error
    assert format_duration(7300) == "2 h 01 min" and format_duration(4.2) == "5 s"


def test_curve_tables_follow_the_progress(scene):
    from TumorSynthSlicer.progress_logic import CurveTables, RunProgress

    progress = RunProgress()
    curves = CurveTables(scene, "run")
    for step, loss in ((1, 0.9), (2, 0.8)):
        progress.update({"event": "progress", "step": step, "total": 4, "loss": loss})
    progress.update({"event": "validation", "step": 2, "metrics": {"tumor_dsc": 0.4}})
    curves.sync(progress)
    curves.sync(progress)                             # idempotent
    assert curves.loss.GetTable().GetNumberOfRows() == 2
    assert curves.dice.GetTable().GetNumberOfRows() == 1
    assert curves.chart.GetNumberOfPlotSeriesNodes() == 2
