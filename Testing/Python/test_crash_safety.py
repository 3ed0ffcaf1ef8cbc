"""Crash safety: ``kill -9`` of ``synth`` and ``generate`` at random moments leaves the previous
complete outputs or the new complete outputs, never a mix, and a rerun finishes; two
``generate`` runs on one folder: one runs, the other is refused (exit 2); the pieces these rest
on (staged folders, locks) on their own."""
from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from TumorSynthLib.cli import main
from TumorSynthLib.core.errors import InputError
from TumorSynthLib.core.files import recover_staged, staged_folder, write_json_atomic
from TumorSynthLib.core.locks import LockInfo, folder_lock, pid_alive
from TumorSynthLib.core.volume_io import save_volume

REPO = Path(__file__).resolve().parents[2]
SMALL = {"shape": (64, 64, 32), "spacing": (5.0, 5.0, 7.5)}


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> dict[str, Path]:
    from TumorSynthLib.phantom import make_abdomen

    root = tmp_path_factory.mktemp("crash")
    ct, organs, _ = make_abdomen(seed=0, **SMALL)
    files = {"ct": save_volume(ct, root / "ct.nii.gz"), "organs": save_volume(organs, root / "organs.nii.gz")}
    pair = {"image": str(files["ct"]), "label": str(files["organs"])}
    files["datalist"] = root / "datalist.json"
    files["datalist"].write_text(json.dumps({"training": [dict(pair, case_id="a"), dict(pair, case_id="b")]}))
    return files


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def assert_complete_case(folder: Path) -> dict:
    """The case in ``folder`` is whole: a report whose SHA-256 match every file it names."""
    report = json.loads((folder / "report.json").read_text())
    assert report["outputs"] and set(report["sha256"]) == set(report["outputs"])
    for key, name in report["outputs"].items():
        assert _sha(folder / name) == report["sha256"][key], f"{folder / name} does not match its report"
    return report


def _synth_argv(inputs: dict[str, Path], out: Path, seed: int) -> list[str]:
    return ["synth", "--image", str(inputs["ct"]), "--organs", str(inputs["organs"]), "--out", str(out),
            "--tumor", "organ=liver,stage=early", "--tumor", "organ=kidney,stage=early", "--seed", str(seed)]


def _start(argv: list[str]) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.Popen([sys.executable, "-m", "TumorSynthLib.cli", *argv], cwd=REPO, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def _kill_at_random(proc: subprocess.Popen, parent: Path, rng: np.random.Generator, during_write: bool,
                    limit_s: float = 20.0) -> None:
    """``kill -9`` after a random delay, or (``during_write``) a random moment after the first
    staged file appeared in ``parent``."""
    t0 = time.monotonic()
    if during_write:
        while proc.poll() is None and time.monotonic() - t0 < limit_s:
            if any(p.is_file() for stage in parent.glob(".tmp-*") if stage.is_dir() for p in stage.iterdir()):
                break
            time.sleep(0.005)
        time.sleep(float(rng.uniform(0.0, 0.25)))
    else:
        time.sleep(float(rng.uniform(0.5, 6.0)))
    proc.kill()
    proc.wait()


def _tumor_seeds(report: dict) -> set[int]:
    return {int(t["seed"]) for t in report["tumors"]}


def test_kill_9_of_synth_leaves_the_old_or_the_new_case(inputs, tmp_path):
    out = tmp_path / "case"
    assert main(_synth_argv(inputs, out, seed=1)) == 0
    old = assert_complete_case(out)
    assert _tumor_seeds(old) == {1}
    rng = np.random.default_rng(12)
    seen = set()
    for attempt in range(4):
        proc = _start(_synth_argv(inputs, out, seed=2))
        _kill_at_random(proc, tmp_path, rng, during_write=attempt % 2 == 0)
        report = assert_complete_case(out)          # never a mix, never missing
        seeds = _tumor_seeds(report)
        assert seeds in ({1}, {2})
        seen.add(min(seeds))
        assert sorted(p.name for p in out.iterdir()) == ["image.nii.gz", "label.nii.gz", "preview.png", "report.json"]
    assert main(_synth_argv(inputs, out, seed=2)) == 0       # a rerun finishes (and cleans the stages)
    assert _tumor_seeds(assert_complete_case(out)) == {2}
    assert not list(tmp_path.glob(".tmp-*")) and not list(tmp_path.glob(".old-*"))


def _generate_argv(inputs: dict[str, Path], out: Path, per_case: int = 2) -> list[str]:
    return ["generate", "--input", str(inputs["datalist"]), "--organ", "liver", "--per-case", str(per_case),
            "--out", str(out), "--seed", "3"]


def test_kill_9_of_generate_leaves_only_complete_cases_and_a_rerun_finishes(inputs, tmp_path):
    reference = tmp_path / "reference"
    assert main(_generate_argv(inputs, reference)) == 0
    expected = {p.name: _sha(p / "image.nii.gz") for p in reference.iterdir() if p.is_dir()}
    assert len(expected) == 4
    out = tmp_path / "out"
    rng = np.random.default_rng(5)
    for attempt in range(3):
        proc = _start(_generate_argv(inputs, out))
        _kill_at_random(proc, out, rng, during_write=attempt != 1)
        for case in (p for p in out.iterdir() if p.is_dir() and not p.name.startswith(".")):
            assert_complete_case(case)
            assert _sha(case / "image.nii.gz") == expected[case.name]
    assert main(_generate_argv(inputs, out)) == 0
    cases = {p.name: p for p in out.iterdir() if p.is_dir() and not p.name.startswith(".")}
    assert {name: _sha(p / "image.nii.gz") for name, p in cases.items()} == expected
    assert json.loads((out / "dataset.json").read_text())["numTraining"] == 4
    assert not [p.name for p in out.iterdir() if p.name.startswith((".tmp-", ".old-", ".tumorsynth"))]


def test_two_generate_runs_on_one_folder_one_runs_the_other_exits_2(inputs, tmp_path, capsys):
    out = tmp_path / "out"
    first = _start(_generate_argv(inputs, out, per_case=8))
    t0 = time.monotonic()
    while not (out / ".tumorsynth.lock").exists() and first.poll() is None and time.monotonic() - t0 < 40:
        time.sleep(0.02)
    assert first.poll() is None, first.stderr.read()
    code = main(_generate_argv(inputs, out, per_case=8))
    line = capsys.readouterr().err.strip()
    assert code == 2 and f"pid {first.pid}" in line and "in use" in line, line
    _, stderr = first.communicate(timeout=50)
    assert first.returncode == 0, stderr
    assert json.loads((out / "dataset.json").read_text())["numTraining"] == 16
    assert not (out / ".tumorsynth.lock").exists()


def test_shards_of_one_split_share_a_folder_other_runs_do_not(tmp_path):
    from TumorSynthLib.datasets.outputs import lock_out

    settings = {"seed": 1}
    with lock_out(tmp_path, (0, 2), settings, "x"):
        with lock_out(tmp_path, (1, 2), settings, "x"):
            pass
        for shard, other in (((1, 2), {"seed": 2}), ((0, 1), settings), ((0, 2), settings), ((1, 3), settings)):
            with pytest.raises(InputError, match="in use"):
                lock_out(tmp_path, shard, other, "x")
    assert not list(tmp_path.glob(".tumorsynth*"))


def test_locks_name_their_holder_and_stale_ones_are_taken_over(tmp_path):
    lock = folder_lock(tmp_path, "tumorsynth first")
    with pytest.raises(InputError, match=f"pid {os.getpid()}.*tumorsynth first"):
        folder_lock(tmp_path, "tumorsynth second")
    lock.release()
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    (tmp_path / ".tumorsynth.lock").write_text(json.dumps({"pid": dead.pid, "host": LockInfo.mine("x").host,
                                                           "command": "gone"}))
    with folder_lock(tmp_path, "tumorsynth third") as taken:
        assert LockInfo.read(tmp_path / ".tumorsynth.lock").token == taken.info.token
    (tmp_path / ".tumorsynth.lock").write_text("{half a lock")          # unreadable: names no process
    folder_lock(tmp_path, "tumorsynth fourth").release()
    assert not (tmp_path / ".tumorsynth.lock").exists()


def test_a_zombie_or_a_reused_pid_is_not_alive():
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    time.sleep(0.5)                                   # exited, not yet waited for: a zombie
    assert not pid_alive(child.pid)
    child.wait()
    assert pid_alive(os.getpid()) and not pid_alive(os.getpid(), start_ticks=1)


def test_staged_folder_recovers_an_interrupted_swap(tmp_path):
    dest = tmp_path / "case"
    with staged_folder(dest) as stage:
        (stage / "a.txt").write_text("first")
    os.replace(dest, tmp_path / ".old-case")           # a crash between the two renames of a swap
    (tmp_path / ".tmp-case.999999999").mkdir()          # and a stage of a dead run
    recover_staged(tmp_path)
    assert (dest / "a.txt").read_text() == "first"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["case"]
    with pytest.raises(RuntimeError):
        with staged_folder(dest) as stage:
            (stage / "a.txt").write_text("second")
            raise RuntimeError("crash while writing")
    assert (dest / "a.txt").read_text() == "first" and sorted(p.name for p in tmp_path.iterdir()) == ["case"]


def test_the_next_write_removes_what_a_killed_writer_left(tmp_path):
    """kill -9 between the temporary file and its rename leaves ``.tmp-<pid>-...``: the next
    write of that file removes it; a live writer's file stays."""
    dead = tmp_path / ".tmp-999999999-abcd1234-dataset.json"
    live = tmp_path / f".tmp-{os.getpid()}-efgh5678-dataset.json"
    other = tmp_path / ".tmp-999999999-ijkl9012-manifest.csv"
    for p in (dead, live, other):
        p.write_text("{")
    write_json_atomic(tmp_path / "dataset.json", {"numTraining": 1})
    assert not dead.exists() and live.exists() and other.exists()
    assert json.loads((tmp_path / "dataset.json").read_text()) == {"numTraining": 1}


def test_a_full_disk_leaves_the_previous_case_and_says_so(inputs, tmp_path, capsys, monkeypatch):
    import errno

    from TumorSynthLib.datasets import outputs

    out = tmp_path / "case"
    assert main(_synth_argv(inputs, out, seed=1)) == 0
    before = {p.name: _sha(p) for p in out.iterdir()}
    real = outputs.write_volume_file

    def full_on_labels(volume, path, synthetic, description):
        if description == "labels":
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(volume, path, synthetic, description)

    monkeypatch.setattr(outputs, "write_volume_file", full_on_labels)
    assert main(_synth_argv(inputs, out, seed=2)) == 2
    assert "no space left" in capsys.readouterr().err.lower()
    assert {p.name: _sha(p) for p in out.iterdir()} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["case"]
