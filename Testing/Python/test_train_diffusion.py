"""``tumorsynth train-diffusion`` end to end on the tiny tumor dataset (fixtures/diffusion.py):
events, checkpoints, budget, SIGTERM and resume with the same batches, refusal of a changed
configuration, the latent configuration, and ``synth`` showing the denoising steps."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from TumorSynthLib import TumorSpec, synthesize
from TumorSynthLib.cli import main
from TumorSynthLib.synthesis.learned.checkpoint import (
    load_diffusion_model,
    read_diffusion_checkpoint,
)
from TumorSynthLib.synthesis.learned.sampler import InpaintSampler

REPO = Path(__file__).resolve().parents[2]
TINY = ["--patch", "16", "--channels", "8,16", "--batch-size", "2", "--val-patches", "2", "--device", "cpu"]


def _events(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def _run(capsys, *args) -> tuple[int, list[dict]]:
    code = main(["train-diffusion", *args, "--events", "jsonl"])
    return code, _events(capsys.readouterr().out)


def test_events_checkpoints_budget_and_resume(diffusion_dataset, tmp_path, capsys):
    flags = ["--data", str(diffusion_dataset), *TINY, "--ckpt-every", "1", "--val-every", "0"]
    code, full = _run(capsys, *flags, "--out", str(tmp_path / "full"), "--max-steps", "4")
    assert code == 0
    kinds = [e["event"] for e in full]
    assert kinds[0] == "start" and kinds[-1] == "done" and "validation" in kinds and "checkpoint" in kinds
    assert full[0]["training"]["tumors"] >= 2 and full[0]["held_out"]["tumors"] >= 1
    reference = {e["step"]: e["loss"] for e in full if e["event"] == "progress"}
    assert list(reference) == [1, 2, 3, 4] and all(np.isfinite(list(reference.values())))
    run = tmp_path / "full"
    assert {"last.pt", "best.pt", "config.json", "events.jsonl"} <= {p.name for p in run.iterdir()}
    assert read_diffusion_checkpoint(run / "last.pt")["step"] == 4

    code, first = _run(capsys, *flags, "--out", str(tmp_path / "part"), "--max-steps", "2")
    code, resumed = _run(capsys, *flags, "--out", str(tmp_path / "part"), "--max-steps", "4", "--resume")
    assert code == 0 and resumed[0]["resumed"] and resumed[0]["step"] == 2
    losses = {e["step"]: e["loss"] for e in first + resumed if e["event"] == "progress"}
    assert losses == pytest.approx(reference, rel=1e-5)                 # same batches, same weights

    code, _ = _run(capsys, *flags, "--out", str(tmp_path / "part"), "--max-steps", "4")
    assert code == 2                                                     # would overwrite a run
    wider = [f if f != "8,16" else "16,32" for f in flags]
    assert main(["train-diffusion", *wider, "--out", str(tmp_path / "part"), "--max-steps", "6", "--resume"]) == 2
    assert "cannot resume" in capsys.readouterr().err                    # another model: refused
    code, budget = _run(capsys, *flags, "--out", str(tmp_path / "budget"), "--max-steps", "50",
                        "--max-minutes", "0.001")
    assert code == 0 and budget[-1]["reason"] == "max_minutes" and budget[-1]["step"] < 50


def test_a_checkpoint_with_moments_in_another_layout_resumes_exactly(diffusion_dataset, tmp_path, capsys):
    """Training runs channels-last; a checkpoint written before (contiguous optimiser moments)
    must resume to the same losses: the fused AdamW pairs weights and moments as flat memory."""
    import torch

    flags = ["--data", str(diffusion_dataset), *TINY, "--ckpt-every", "1", "--val-every", "0"]
    _, full = _run(capsys, *flags, "--out", str(tmp_path / "full"), "--max-steps", "4")
    _, first = _run(capsys, *flags, "--out", str(tmp_path / "part"), "--max-steps", "2")
    last = tmp_path / "part" / "last.pt"
    raw = torch.load(last, weights_only=True)
    moments = [m for state in raw["optimizer"]["state"].values() for m in state.values() if m.dim() == 5]
    assert any(not m.is_contiguous() for m in moments)                  # channels-last now
    for state in raw["optimizer"]["state"].values():
        for key, value in state.items():
            state[key] = value.contiguous()
    torch.save(raw, last)
    _, resumed = _run(capsys, *flags, "--out", str(tmp_path / "part"), "--max-steps", "4", "--resume")
    weights = [read_diffusion_checkpoint(tmp_path / run / "last.pt")["train_denoiser"] for run in ("full", "part")]
    for name, value in weights[0].items():                               # mis-paired moments move
        assert torch.allclose(value, weights[1][name], atol=1e-6), name  # every weight by ~the rate
    losses = {e["step"]: e["loss"] for e in first + resumed if e["event"] == "progress"}
    assert losses == pytest.approx({e["step"]: e["loss"] for e in full if e["event"] == "progress"}, rel=1e-5)


def test_sigterm_saves_last_and_exits_130(diffusion_dataset, tmp_path):
    cmd = [sys.executable, "-m", "TumorSynthLib.cli", "train-diffusion", "--data", str(diffusion_dataset), *TINY,
           "--out", str(tmp_path / "run"), "--max-steps", "500", "--ckpt-every", "2", "--val-every", "0",
           "--events", "jsonl"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, cwd=REPO,
                            env={**os.environ, "PYTHONPATH": str(REPO)})
    seen = []
    for line in proc.stdout:
        seen.append(json.loads(line))
        if seen[-1]["event"] in ("checkpoint", "done", "error"):
            break
    proc.send_signal(signal.SIGTERM)
    rest, _ = proc.communicate(timeout=40)
    seen += _events(rest)
    assert proc.returncode == 130 and seen[-1]["event"] == "done" and seen[-1]["reason"] == "signal"
    assert read_diffusion_checkpoint(tmp_path / "run" / "last.pt")["step"] == seen[-1]["step"]


def test_latent_configuration_trains_samples_and_composites(diffusion_dataset, diffusion_home, tmp_path, capsys):
    code, events = _run(capsys, "--data", str(diffusion_dataset), "--config", "latent", "--patch", "16",
                        "--channels", "8,16", "--ae-channels", "8,8,8", "--ae-steps", "2", "--max-steps", "2",
                        "--timesteps", "20", "--sample-steps", "5", "--batch-size", "2", "--val-patches", "2", "--val-every", "0",
                        "--device", "cpu", "--out", str(tmp_path / "latent"))
    assert code == 0
    phases = [e["phase"] for e in events if e["event"] == "progress"]
    assert phases == ["autoencoder", "autoencoder", "denoiser", "denoiser"]
    model = load_diffusion_model(tmp_path / "latent" / "last.pt", "cpu")
    cfg = model.config
    assert cfg.kind == "latent" and cfg.latent_patch == 4 and cfg.sampler == "ddim" and cfg.latent_scale != 1.0
    image = np.zeros((16, 16, 16), np.float32)
    mask = np.zeros((16, 16, 16), bool)
    mask[4:12, 4:12, 4:12] = True
    run = InpaintSampler(model, image, mask, seed=0)
    assert run.total_steps == 5 and run.result().shape == (16, 16, 16)
    from TumorSynthLib.phantom import make_abdomen

    ct, organs, _ = make_abdomen(seed=3, shape=(96, 96, 40), spacing=(3.75, 3.75, 6.0))
    out = synthesize(ct, organs, [TumorSpec(organ="liver", diameter_mm=15.0, method="diffusion",
                                            options={"diffusion_model": str(tmp_path / "latent" / "last.pt")})])
    assert out.reports[0]["appearance_info"]["config"] == "latent"


def test_no_tumor_labels_is_a_clear_error(tmp_path, capsys):
    from TumorSynthLib.core.volume import Volume
    from TumorSynthLib.core.volume_io import save_volume

    image = Volume(np.zeros((20, 20, 20), np.int16), np.eye(4))
    labels = Volume(np.ones((20, 20, 20), np.int16), np.eye(4))
    save_volume(image, tmp_path / "d" / "a" / "image.nii.gz")
    save_volume(labels, tmp_path / "d" / "a" / "label.nii.gz")
    code = main(["train-diffusion", "--data", str(tmp_path / "d"), "--out", str(tmp_path / "o"), *TINY])
    err = capsys.readouterr().err
    assert code == 2 and "no tumor" in err and "skipped case" in err


def test_synth_cli_reports_each_denoising_step(tiny_diffusion_models, diffusion_home, tmp_path, capsys):
    from TumorSynthLib.core.volume_io import save_volume
    from TumorSynthLib.phantom import make_abdomen

    ct, organs, _ = make_abdomen(seed=1, shape=(96, 96, 40), spacing=(3.75, 3.75, 6.0))
    save_volume(ct, tmp_path / "ct.nii.gz")
    save_volume(organs, tmp_path / "organs.nii.gz")
    code = main(["synth", "--image", str(tmp_path / "ct.nii.gz"), "--organs", str(tmp_path / "organs.nii.gz"),
                 "--tumor", "organ=liver,diameter=15,method=diffusion,diffusion_model=tiny-diffusion",
                 "--out", str(tmp_path / "out"), "--events", "jsonl"])
    assert code == 0
    steps = [(e["stage_step"], e["stage_total"]) for e in _events(capsys.readouterr().out)
             if e.get("stage") == "appearance"]
    assert steps == [(0, 4), (1, 4), (2, 4), (3, 4), (4, 4)]
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert report["tumors"][0]["appearance_info"]["model_id"] == "tiny-diffusion"


def test_cosine_schedule_is_fitted_to_the_budget_and_resumes(diffusion_dataset, tmp_path, monkeypatch, capsys):
    from TumorSynthLib.segmentation import optim

    # a 6 s budget: keep 30 % of it in reserve, so a slow step on a busy host cannot reach the
    # time limit before the fitted step count (3 % of 6 s is shorter than one step's jitter)
    for name, value in (("FIT_SKIP", 1), ("FIT_MEASURE", 2), ("FIT_EVERY", 2), ("FIT_WINDOW", 6), ("FIT_MARGIN", 0.3)):
        monkeypatch.setattr(optim, name, value)
    flags = ["--data", str(diffusion_dataset), *TINY, "--ckpt-every", "1", "--val-every", "0", "--lr", "1e-3",
             "--warmup-steps", "1"]
    code, events = _run(capsys, *flags, "--out", str(tmp_path / "fit"), "--max-steps", "100000",
                        "--max-minutes", "0.1")
    done = events[-1]
    assert code == 0 and done["reason"] == "max_steps" and 3 < done["step"] < 100000   # ended by the fit
    payload = read_diffusion_checkpoint(tmp_path / "fit" / "last.pt")
    assert payload["train"]["max_steps"] == done["step"]
    assert payload["scheduler"]["_last_lr"][0] == pytest.approx(1e-5, rel=1e-6)    # annealed to 1 %
    rates = [e["lr"] for e in events if e["event"] == "progress"]
    assert rates[1] > rates[-1] and max(rates) <= 1e-3 * (1 + 1e-6)

    code, constant = _run(capsys, *flags, "--out", str(tmp_path / "const"), "--max-steps", "3",
                          "--lr-schedule", "constant")
    assert code == 0 and {e["lr"] for e in constant if e["event"] == "progress"} == {1e-3}
    code, joined = _run(capsys, *flags, "--out", str(tmp_path / "const"), "--max-steps", "6", "--resume")
    rates = [e["lr"] for e in joined if e["event"] == "progress"]            # joins the cosine at step 3
    assert code == 0 and rates[0] < 1e-3 and rates == sorted(rates, reverse=True) and rates[-1] > 1e-5
    annealed = read_diffusion_checkpoint(tmp_path / "const" / "last.pt")["scheduler"]["_last_lr"][0]
    assert annealed == pytest.approx(1e-5)


def test_a_resumed_run_takes_its_own_rate_and_shape_from_the_first_step(diffusion_dataset, tmp_path, capsys):
    import torch

    from TumorSynthLib.segmentation.optim import WarmupCosine

    flags = ["--data", str(diffusion_dataset), *TINY, "--ckpt-every", "1", "--val-every", "0", "--warmup-steps", "1"]
    run = ["--out", str(tmp_path / "run")]
    assert _run(capsys, *flags, *run, "--max-steps", "4", "--lr", "1e-3")[0] == 0
    code, longer = _run(capsys, *flags, *run, "--max-steps", "8", "--lr", "1e-3", "--resume")
    expected = WarmupCosine(torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=1e-3), 1, 8)
    expected.go_to(4)
    first = next(e for e in longer if e["event"] == "progress")
    assert code == 0 and first["step"] == 5
    assert first["lr"] == pytest.approx(expected.get_last_lr()[0], rel=1e-6)   # not the 1 % it had ended on
    code, constant = _run(capsys, *flags, *run, "--max-steps", "10", "--lr", "5e-4", "--lr-schedule", "constant",
                          "--resume")
    assert code == 0 and {e["lr"] for e in constant if e["event"] == "progress"} == {5e-4}
