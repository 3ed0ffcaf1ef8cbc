"""Training end to end on 3 mm phantoms with online synthetic tumors (CPU): checkpoints, kill
with SIGTERM, resume with the same steps and samples, and the data faults."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from Testing.fixtures.models import TINY_STEPS, tiny_train_kwargs
from TumorSynthLib.cli import main
from TumorSynthLib.core.errors import InputError, ModelError
from TumorSynthLib.segmentation.checkpoint import load_checkpoint
from TumorSynthLib.segmentation.config import TrainConfig
from TumorSynthLib.segmentation.datasets import check_cases, find_cases
from TumorSynthLib.segmentation.pipeline import EpochSampler
from TumorSynthLib.core.volume import Volume
from TumorSynthLib.core.volume_io import load_volume, save_volume

REPO = Path(__file__).resolve().parents[2]


def _events(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def _cli_flags(kwargs: dict) -> list[str]:
    """The `tumorsynth train` flags equal to the tiny TrainConfig arguments."""
    mix = ",".join(f"{k}={v}" for k, v in kwargs["stage_mix"].items())
    return ["--data", kwargs["data"], "--out", kwargs["out"], "--organ", "liver", "--method", "handcrafted",
            "--channels", ",".join(map(str, kwargs["channels"])), "--spacing", "3", "--patch", "32",
            "--max-steps", str(kwargs["max_steps"]), "--val-every", str(kwargs["val_every"]),
            "--ckpt-every", str(kwargs["ckpt_every"]), "--prob", str(kwargs["prob"]), "--stage-mix", mix,
            "--lr", str(kwargs["lr"]), "--warmup-steps", str(kwargs["warmup_steps"]),
            "--device", "cpu", "--seed", "0"]


def test_tiny_run_writes_checkpoints_and_the_loss_goes_down(tiny_segmentation_run):
    run = tiny_segmentation_run
    assert run.result.step == TINY_STEPS and run.result.stopped == "max_steps"
    assert np.mean(run.losses[-5:]) < np.mean(run.losses[:5])
    events = _events(run.run_dir / "events.jsonl")
    steps = [e["step"] for e in events if e["event"] == "progress"]
    assert steps == list(range(1, TINY_STEPS + 1))
    assert events[0]["event"] == "start" and events[-1]["event"] == "done"
    assert any(e["event"] == "validation" for e in events)
    last = load_checkpoint(run.run_dir / "last.pt")
    best = load_checkpoint(run.run_dir / "best.pt")
    assert last["step"] == TINY_STEPS and last["optimizer"] is not None
    assert "optimizer" not in best and best["config"]["organ"] == "liver"
    assert best["label_names"] == {0: "background", 1: "liver", 2: "liver_tumor"}
    assert best["preprocessing"]["spacing_mm"] == [3.0, 3.0, 3.0]


def test_sigterm_saves_and_resume_continues_identically(tiny_segmentation_run, tmp_path, capsys):
    """Kill a CLI run (1 data worker) with SIGTERM after its first checkpoint, resume it
    in-process up to step STOP_AT (same schedule): the step counter goes on from the saved step
    and every loss equals the uninterrupted fixture run's loss at that step (same weights, same
    samples)."""
    stop_at = 12
    kwargs = tiny_train_kwargs(tiny_segmentation_run.dataset, tmp_path / "run", val_every=0, ckpt_every=3)
    flags = _cli_flags(kwargs)                  # validation never changes the weights: skip it
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen([sys.executable, "-m", "TumorSynthLib.cli", "train", *flags, "--workers", "1",
                             "--events", "jsonl"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                            text=True, env=env, cwd=REPO)
    first = []
    for line in proc.stdout:
        first.append(json.loads(line))
        if first[-1]["event"] in ("checkpoint", "done", "error"):
            break
    proc.send_signal(signal.SIGTERM)
    rest, _ = proc.communicate(timeout=40)
    first += [json.loads(line) for line in rest.splitlines()]
    assert proc.returncode == 130, first[-1]
    done = first[-1]
    assert done["event"] == "done" and done["reason"] == "signal"
    assert done["synthesis"]["samples"] >= done["step"] > 0   # counted from the worker's samples
    saved = load_checkpoint(tmp_path / "run" / "last.pt")["step"]
    assert saved == done["step"] and 3 <= saved < stop_at

    assert main(["train", *flags, "--workers", "0", "--resume", "--stop-at", str(stop_at),
                 "--events", "jsonl"]) == 0
    resumed = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert resumed[0]["event"] == "start" and resumed[0]["step"] == saved and resumed[0]["resumed"]
    assert resumed[-1]["event"] == "done" and resumed[-1]["reason"] == "stop_at"
    losses = {e["step"]: e["loss"] for e in resumed if e["event"] == "progress"}
    assert list(losses) == list(range(saved + 1, stop_at + 1))
    assert load_checkpoint(tmp_path / "run" / "last.pt")["step"] == stop_at
    reference = {e["step"]: e["loss"] for e in _events(tiny_segmentation_run.run_dir / "events.jsonl")
                 if e["event"] == "progress"}
    before = [e["loss"] for e in first if e["event"] == "progress"]
    assert before == pytest.approx([reference[s] for s in range(1, len(before) + 1)], rel=1e-5)
    assert list(losses.values()) == pytest.approx([reference[s] for s in losses], rel=1e-5)


def test_refuses_to_overwrite_or_resume_another_task(tiny_segmentation_run, tmp_path):
    run_dir = tiny_segmentation_run.run_dir
    kwargs = tiny_train_kwargs(tiny_segmentation_run.dataset, run_dir, max_steps=TINY_STEPS + 5)
    from TumorSynthLib.segmentation.train import train

    with pytest.raises(InputError, match="--resume"):
        train(TrainConfig(**kwargs))
    with pytest.raises(ModelError, match="organ"):
        train(TrainConfig(**{**kwargs, "organ": "pancreas", "resume": True}))
    with pytest.raises(InputError, match="no last.pt"):
        train(TrainConfig(**{**kwargs, "out": str(tmp_path / "new"), "resume": True}))


def test_data_faults_are_skipped_with_a_reason_or_refused(seg_phantom_dataset, tmp_path):
    with pytest.raises(InputError, match="no image/label pairs"):
        find_cases(tmp_path)
    case = seg_phantom_dataset.root / "cases" / "phantom0"
    image = load_volume(case / "image.nii.gz")
    labels = load_volume(case / "label.nii.gz")
    bad = tmp_path / "bad"
    save_volume(image, bad / "shifted" / "image.nii.gz")
    shifted = Volume(labels.array, labels.affine @ np.diag([1.0, 1.0, 2.0, 1.0]))
    save_volume(shifted, bad / "shifted" / "label.nii.gz")
    save_volume(image, bad / "noliver" / "image.nii.gz")
    save_volume(labels.with_array(np.where(labels.array == 5, 0, labels.array)), bad / "noliver" / "label.nii.gz")
    warnings: list[str] = []
    kept, skipped = check_cases(find_cases(bad)[0], "liver", "auto", warn=warnings.append)
    assert kept == [] and {s["case_id"] for s in skipped} == {"shifted", "noliver"}
    reasons = " ".join(s["reason"] for s in skipped)
    assert "resample" in reasons and "no liver" in reasons and len(warnings) == 2
    with pytest.raises(InputError, match="no usable training case"):
        from TumorSynthLib.segmentation.datasets import split_cases

        split_cases(bad, "liver")


def test_epoch_sampler_shards_and_resumes():
    full = EpochSampler(5, seed=1)
    it = iter(full)
    stream = [next(it) for _ in range(12)]
    assert sorted(i for e, i in stream[:5]) == [0, 1, 2, 3, 4] and stream[5][0] == 1
    later = iter(EpochSampler(5, seed=1, start=7))
    assert [next(later) for _ in range(5)] == stream[7:12]
    ranks = [EpochSampler(5, seed=1, rank=r, world_size=2) for r in (0, 1)]
    shards = [r.epoch_indices(0) for r in ranks]
    assert len(shards[0]) == len(shards[1]) == 3 and set(shards[0]) | set(shards[1]) == set(range(5))


def test_folder_layouts_are_found(tmp_path):
    vol = Volume(np.zeros((4, 4, 4), np.int16), np.eye(4))
    for name in ("a", "b"):
        save_volume(vol, tmp_path / "msd" / "imagesTr" / f"{name}_0000.nii.gz")
        save_volume(vol, tmp_path / "msd" / "labelsTr" / f"{name}.nii.gz")
        save_volume(vol, tmp_path / "flat" / f"{name}.nii.gz")
        save_volume(vol, tmp_path / "flat" / f"{name}_seg.nii.gz")
    for layout in ("msd", "flat"):
        cases, _ = find_cases(tmp_path / layout)
        assert [c.case_id for c in cases] == ["a", "b"], layout
        assert all(Path(c.image) != Path(c.label) for c in cases)


@pytest.mark.parametrize("name, channels", [("unet", (4, 8)), ("dynunet", (4, 8, 16)), ("swinunetr", (12,))])
def test_every_architecture_builds_and_keeps_the_patch_shape(name, channels):
    from TumorSynthLib.segmentation.models import build_model, min_patch_side, model_config_for

    config = model_config_for(name, "cpu", channels)
    model = build_model(config).eval()
    side = min_patch_side(config)
    with torch.no_grad():
        out = model(torch.zeros(1, 1, side, side, side))
    assert out.shape == (1, 3, side, side, side)
    with pytest.raises(InputError):
        model_config_for("vnet", "cpu")


def test_a_datalist_whose_files_are_mostly_missing_is_refused(seg_phantom_dataset, tmp_path, capsys):
    """A few bad cases are skipped; a datalist whose paths point nowhere is a user error (a
    relative --work once made every phantom 'unreadable' and a whole run trained on one case)."""
    import json

    from TumorSynthLib.segmentation.datasets import split_cases

    case = seg_phantom_dataset.root / "cases" / "phantom0"
    entries = [{"image": str(case / "image.nii.gz"), "label": str(case / "label.nii.gz")}]
    entries += [{"image": f"nowhere/p{i}/image.nii.gz", "label": f"nowhere/p{i}/label.nii.gz"} for i in range(3)]
    datalist = tmp_path / "datalist.json"
    datalist.write_text(json.dumps({"training": entries}))
    with pytest.raises(InputError, match="do not exist.*own folder"):
        split_cases(datalist, "liver")
    out = tmp_path / "diffusion-run"             # every reader of cases refuses it, e.g. train-diffusion
    capsys.readouterr()
    assert main(["train-diffusion", "--data", str(datalist), "--out", str(out), "--max-steps", "1"]) == 2
    assert "do not exist" in capsys.readouterr().err and not (out / "last.pt").exists()
    datalist.write_text(json.dumps({"training": entries[:2]}))      # one bad case of two: skipped later
    assert len(find_cases(datalist)[0]) == 2


def test_loader_workers_leave_ctrl_c_to_the_main_process_and_freeze_the_inherited_objects():
    code = ("import gc, signal\n"
            "from TumorSynthLib.segmentation.train import init_loader_worker\n"
            "assert gc.get_freeze_count() == 0\n"
            "init_loader_worker(0)\n"
            "print(gc.get_freeze_count() > 1000, signal.getsignal(signal.SIGINT) is signal.SIG_IGN)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["True", "True"]
