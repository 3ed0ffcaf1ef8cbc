"""`tumorsynth generate`: shards = one run, resume, skips, datalist, quality filter, workers."""
from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from TumorSynthLib.cli import main
from TumorSynthLib.core.errors import InputError
from TumorSynthLib.core.events import parse_event
from TumorSynthLib.datasets.generate import (
    GenerateConfig,
    generate,
    parse_shard,
    parse_stage_mix,
    stage_for,
)
from TumorSynthLib.segmentation.datasets import find_cases
from TumorSynthLib.core.volume_io import load_volume
from Testing.fixtures.models import write_untrained_checkpoint

HEALTHY = ("case0", "case1")


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    """Two healthy phantoms and one whose label already holds a liver tumor (id 205)."""
    from TumorSynthLib.phantom import make_abdomen
    from TumorSynthLib.core.volume_io import save_volume

    root = tmp_path_factory.mktemp("gen_input")
    for seed, name in enumerate((*HEALTHY, "case2_real")):
        ct, organs, _ = make_abdomen(seed=seed, shape=(96, 96, 40), spacing=(3.75, 3.75, 6.0))
        labels = organs
        if name.endswith("real"):
            arr = np.array(organs.array, copy=True)
            arr[tuple(np.argwhere(arr == 5)[:20].T)] = 205
            labels = organs.with_array(arr)
        save_volume(ct, root / name / "image.nii.gz")
        save_volume(labels, root / name / "label.nii.gz")
    return root


def config(dataset: Path, out: Path, **kw) -> GenerateConfig:
    return GenerateConfig(input=str(dataset), out=str(out), per_case=2, seed=5, device="cpu", **kw)


def strip_timing(report: dict) -> dict:
    return {k: v for k, v in report.items() if k != "timing"}


@pytest.fixture(scope="module")
def unsharded(dataset, tmp_path_factory):
    out = tmp_path_factory.mktemp("gen_one")
    return out, generate(config(dataset, out))


def test_one_run_writes_healthy_cases_and_skips_real_tumors(unsharded):
    out, summary = unsharded
    names = [f"{c}_v{v}" for c in HEALTHY for v in (0, 1)]
    assert summary["generated"] == 4 and summary["failed"] == [] and summary["tumors"] == 4
    assert [s["name"] for s in summary["skipped"]] == ["case2_real_v0", "case2_real_v1"]
    assert "real liver tumor" in summary["skipped"][0]["reason"]
    for name in names:
        image = load_volume(out / name / "image.nii.gz")
        labels = load_volume(out / name / "label.nii.gz")
        report = json.loads((out / name / "report.json").read_text())
        assert image.metadata["synthetic"] and report["synthetic"]
        assert np.count_nonzero(labels.array == 205) == report["tumors"][0]["n_voxels"] > 0
        assert report["tumors"][0]["stage"] == stage_for(5, report["case_id"], report["variant"], 0,
                                                         parse_stage_mix(None))
    assert not (out / "case2_real_v0").exists()
    training, _ = find_cases(out / "dataset.json")
    assert sorted(c.case_id for c in training) == names
    assert all(Path(c.image).is_file() and Path(c.label).is_file() for c in training)
    assert sorted(c.case_id for c in find_cases(out)[0]) == names
    rows = (out / "manifest.csv").read_text().splitlines()
    assert rows[0].startswith("name,case_id,variant") and len(rows) == 5
    assert summary["seconds_per_generated_case"] > 0


def test_two_shards_write_the_same_files_as_one_run(dataset, unsharded, tmp_path):
    one, _ = unsharded
    halves = [generate(config(dataset, tmp_path, shard=(i, 2))) for i in (0, 1)]
    assert sum(h["generated"] for h in halves) == 4 and sum(h["items"] for h in halves) == 6
    assert (tmp_path / "summary-shard-0-of-2.json").is_file()
    for name in (f"{c}_v{v}" for c in HEALTHY for v in (0, 1)):
        for file in ("image.nii.gz", "label.nii.gz"):
            assert (one / name / file).read_bytes() == (tmp_path / name / file).read_bytes(), name
        reports = [json.loads((d / name / "report.json").read_text()) for d in (one, tmp_path)]
        assert strip_timing(reports[0]) == strip_timing(reports[1])
    for file in ("dataset.json", "manifest.csv"):
        assert (one / file).read_bytes() == (tmp_path / file).read_bytes()


def test_rerun_resumes_and_refuses_other_settings(dataset, unsharded, tmp_path):
    one, _ = unsharded
    cfg = config(dataset, tmp_path, layout="flat")
    assert generate(cfg)["generated"] == 4
    (tmp_path / "reports" / "case1_v0.json").unlink()      # as if killed before the report
    again = generate(cfg)
    assert again["resumed"] == 3 and again["generated"] == 1
    assert ((tmp_path / "imagesTr" / "case1_v0.nii.gz").read_bytes()
            == (one / "case1_v0" / "image.nii.gz").read_bytes())
    assert sorted(c.case_id for c in find_cases(tmp_path)[0]) == sorted(
        c.case_id for c in find_cases(tmp_path / "dataset.json")[0])
    with pytest.raises(InputError, match="other settings"):
        generate(replace(cfg, method="cellular"))


@pytest.mark.parametrize("text, message", [
    ("early=0.8,intermediate=0.1", "sum to 1"),
    ("early=0.5,late=0.5", "unknown stage"),
    ("early=0.5,early=0.5", "twice"),
    ("early=abc", "not a number"),
    ("early=1.5,advanced=-0.5", ">= 0"),
    ("early", "early=0.8"),
])
def test_stage_mix_errors(text, message):
    with pytest.raises(InputError, match=message):
        parse_stage_mix(text)


def test_option_parsing():
    assert parse_stage_mix("early=0.8, intermediate=0.1,advanced=0.1") == {
        "early": 0.8, "intermediate": 0.1, "advanced": 0.1}
    assert parse_stage_mix("tiny=0.3333333,early=0.6666667") == {"tiny": 0.3333333, "early": 0.6666667}
    assert parse_shard("1/3") == (1, 3) and parse_shard(None) == (0, 1)
    for bad in ("3/3", "-1/2", "1", "a/b", "0/0"):
        with pytest.raises(InputError, match="I/N"):
            parse_shard(bad)
    with pytest.raises(InputError, match="per-case"):
        GenerateConfig(input=".", out="x", per_case=0).check()


def test_cli_quality_filter_with_trained_model(dataset, tiny_segmentation_run, tmp_path, capsys):
    ckpt = tiny_segmentation_run.checkpoint
    code = main(["generate", "--input", str(dataset), "--organ", "liver", "--method", "handcrafted",
                 "--quality", str(ckpt), "--threshold", "0.7", "--quality-tries", "2",
                 "--shard", "0/3", "--device", "cpu", "--events", "jsonl", "--out", str(tmp_path)])
    assert code == 0
    events = [parse_event(line) for line in capsys.readouterr().out.splitlines()]
    assert events[0]["event"] == "start" and events[-1]["event"] == "done"
    summary = json.loads((tmp_path / "summary-shard-0-of-3.json").read_text())
    assert summary["generated"] == 1 and summary["quality"]["tumors"] == 1
    report = json.loads((tmp_path / "case0_v0" / "report.json").read_text())
    q = report["tumors"][0]["quality"]
    assert q["threshold"] == 0.7 and 0.0 <= q["score"] <= 1.0 and 1 <= q["attempts"] <= 2
    assert q["passed"] == (q["score"] >= 0.7) and (q["passed"] or q["attempts"] == 2)
    assert summary["quality"]["pass_rate"] == float(q["passed"])
    assert report["settings"]["quality"]["model"] == str(Path(ckpt).resolve())


def test_cli_errors(dataset, tmp_path, capsys):
    assert main(["generate", "--input", str(dataset), "--threshold", "0.5", "--out", str(tmp_path)]) == 2
    assert "--threshold needs --quality" in capsys.readouterr().err
    assert main(["generate", "--input", str(dataset), "--stage-mix", "early=0.9", "--out", str(tmp_path)]) == 2
    assert "sum to 1" in capsys.readouterr().err
    assert main(["generate", "--input", str(dataset), "--out", str(dataset)]) == 2
    pancreas = write_untrained_checkpoint(tmp_path / "pancreas.pt", organ="pancreas")
    assert main(["generate", "--input", str(dataset), "--quality", str(pancreas), "--out", str(tmp_path)]) == 2
    assert "trained for the pancreas" in capsys.readouterr().err


def test_a_broken_case_fails_with_its_reason_and_the_rest_goes_on(dataset, tmp_path, capsys):
    from TumorSynthLib.core.volume import Volume
    from TumorSynthLib.core.volume_io import save_volume

    labels = load_volume(dataset / "case0" / "label.nii.gz")
    (tmp_path / "in" / "bad").mkdir(parents=True)
    (tmp_path / "in" / "bad" / "image.nii.gz").write_bytes((dataset / "case0" / "image.nii.gz").read_bytes())
    save_volume(Volume(labels.array[:, :, :30], labels.affine), tmp_path / "in" / "bad" / "label.nii.gz")
    for name in ("image.nii.gz", "label.nii.gz"):
        (tmp_path / "in" / "good").mkdir(exist_ok=True)
        (tmp_path / "in" / "good" / name).write_bytes((dataset / "case1" / name).read_bytes())
    code = main(["generate", "--input", str(tmp_path / "in"), "--out", str(tmp_path / "out")])
    assert code == 1
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["generated"] == 1 and [f["name"] for f in summary["failed"]] == ["bad_v0"]
    assert "grid" in summary["failed"][0]["reason"] and "bad_v0" in capsys.readouterr().err


def test_spawned_workers_give_the_same_files(dataset, unsharded, tmp_path):
    one, _ = unsharded
    summary = generate(replace(config(dataset, tmp_path), per_case=1, workers=2))
    assert summary["generated"] == 2
    for name in ("case0_v0", "case1_v0"):
        assert (one / name / "image.nii.gz").read_bytes() == (tmp_path / name / "image.nii.gz").read_bytes()
