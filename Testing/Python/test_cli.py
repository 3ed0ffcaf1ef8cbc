"""The ``tumorsynth`` command line, run in-process through ``main([...])`` (one subprocess test)."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from scipy import ndimage

from TumorSynthLib.cli import COMMAND_MODULES, main
from TumorSynthLib.core.events import parse_event
from TumorSynthLib.core.volume_io import load_volume, save_volume

SMALL_PHANTOM = {"shape": (96, 96, 40), "spacing": (3.75, 3.75, 6.0)}


@pytest.fixture(scope="module")
def phantom_files(tmp_path_factory):
    """(ct path, organs path, RAS of a deep liver voxel, RAS of an air voxel)."""
    from TumorSynthLib.phantom import make_abdomen

    ct, organs, _ = make_abdomen(seed=0, **SMALL_PHANTOM)
    folder = tmp_path_factory.mktemp("phantom")
    ct_path = save_volume(ct, folder / "ct.nii.gz")
    organs_path = save_volume(organs, folder / "organs.nii.gz")
    depth = ndimage.distance_transform_edt(organs.array == 5, sampling=organs.spacing)
    liver = ct.voxel_to_ras(np.unravel_index(int(np.argmax(depth)), depth.shape))
    air = ct.voxel_to_ras([1, 1, 1])
    return ct_path, organs_path, liver, air


def point(ras) -> str:
    return ":".join(f"{v:.2f}" for v in ras)


def synth_args(files, out: Path, seed: int = 3, *extra: str) -> list[str]:
    ct, organs, liver, _ = files
    return ["synth", "--image", str(ct), "--organs", str(organs), "--out", str(out),
            "--tumor", f"organ=liver,stage=early,diameter=15,point={point(liver)},seed={seed}",
            "--tumor", "organ=kidney,stage=early,diameter=12", "--seed", str(seed), *extra]


def without_timing(report: dict) -> dict:
    return {k: v for k, v in report.items() if k != "timing"}


def one_error_line(stderr: str) -> str:
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1, stderr
    assert "Traceback" not in stderr
    assert lines[0].startswith("error: ")
    return lines[0]


@pytest.mark.parametrize("command", [None, *COMMAND_MODULES])
def test_help_of_each_command_exits_0(command, capsys):
    assert main(([command.replace("_", "-")] if command else []) + ["--help"]) == 0   # export_dicom -> export-dicom
    out = capsys.readouterr().out
    assert "examples:" in out and "usage: tumorsynth" in out


def test_usage_error_exits_2(capsys):
    assert main(["synth", "--image", "x.nii.gz"]) == 2
    assert "required" in capsys.readouterr().err


def test_synth_writes_outputs_and_same_seed_gives_same_bytes(phantom_files, tmp_path, capsys):
    out = tmp_path / "case"
    assert main(synth_args(phantom_files, out)) == 0
    names = ("image.nii.gz", "label.nii.gz", "preview.png")
    first = {n: (out / n).read_bytes() for n in names}
    report = json.loads((out / "report.json").read_text())
    assert "wrote" in capsys.readouterr().err

    assert report["synthetic"] is True and len(report["tumors"]) == 2
    assert report["command"][:2] == ["tumorsynth", "synth"]
    assert report["label_names"]["205"] == "liver_tumor"
    assert "timing" not in json.dumps(without_timing(report))  # one timing object only
    image, labels = load_volume(out / "image.nii.gz"), load_volume(out / "label.nii.gz")
    assert image.metadata["synthetic"] and labels.metadata["synthetic"]
    liver_tumor = report["tumors"][0]
    centre = np.rint(image.ras_to_voxel(liver_tumor["centroid_ras"])).astype(int)
    assert labels.array[tuple(centre)] == 205

    assert main(synth_args(phantom_files, out)) == 0  # same seed, same folder: same bytes
    assert {n: (out / n).read_bytes() for n in names} == first
    assert without_timing(json.loads((out / "report.json").read_text())) == without_timing(report)

    other = tmp_path / "other"
    assert main(synth_args(phantom_files, other, seed=4)) == 0
    assert (other / "image.nii.gz").read_bytes() != first["image.nii.gz"]
    assert (other / "label.nii.gz").read_bytes() != first["label.nii.gz"]


def test_click_outside_the_organ_is_one_line_and_exit_2(phantom_files, tmp_path, capsys):
    ct, organs, _, air = phantom_files
    code = main(["synth", "--image", str(ct), "--organs", str(organs), "--out", str(tmp_path / "o"),
                 "--tumor", f"organ=liver,stage=early,point={point(air)}"])
    assert code == 2
    one_error_line(capsys.readouterr().err)


def test_missing_input_and_bad_tumor_keys_are_one_line_and_exit_2(phantom_files, tmp_path, capsys):
    ct = phantom_files[0]
    assert main(["synth", "--image", str(tmp_path / "missing.nii.gz"), "--out", str(tmp_path / "o"),
                 "--tumor", "organ=liver"]) == 2
    assert "does not exist" in one_error_line(capsys.readouterr().err)
    assert main(["synth", "--image", str(ct), "--out", str(tmp_path / "o"),
                 "--tumor", "organ=liver,size=3"]) == 2
    line = one_error_line(capsys.readouterr().err)
    assert "unknown key 'size'" in line and "diameter" in line


def test_synth_refuses_to_overwrite_its_input(phantom_files, tmp_path, capsys):
    ct, organs, liver, _ = phantom_files
    image_in = tmp_path / "image.nii.gz"
    image_in.write_bytes(Path(ct).read_bytes())
    before = image_in.read_bytes()
    code = main(["synth", "--image", str(image_in), "--organs", str(organs), "--out", str(tmp_path),
                 "--tumor", f"organ=liver,point={point(liver)}"])
    assert code == 2
    assert "never overwritten" in one_error_line(capsys.readouterr().err)
    assert image_in.read_bytes() == before


def test_region_grown_organ_and_label_overrides(phantom_files, tmp_path, capsys):
    ct, _, liver, _ = phantom_files
    out = tmp_path / "grown"
    assert main(["synth", "--image", str(ct), "--out", str(out), "--labels", "binary",
                 "--tumor", f"organ=liver,stage=early,diameter=14,point={point(liver)}",
                 "--tumor-label", "9"]) == 0
    report = json.loads((out / "report.json").read_text())
    assert report["tumors"][0]["organ_source"] == "region-grown"
    labels = load_volume(out / "label.nii.gz").array
    assert set(np.unique(labels).tolist()) == {0, 9}


def test_events_jsonl_keeps_stdout_for_events(phantom_files, tmp_path, capsys):
    assert main(synth_args(phantom_files, tmp_path / "ev", 3, "--events", "jsonl")) == 0
    captured = capsys.readouterr()
    events = [parse_event(line) for line in captured.out.splitlines()]
    assert events[0]["event"] == "start" and events[-1]["event"] == "done"
    assert events[-1]["outputs"]["report"].endswith("report.json")
    assert "wrote" in captured.err


def test_info_json_lists_methods(capsys):
    assert main(["info", "--json"]) == 0
    facts = json.loads(capsys.readouterr().out)
    assert facts["methods"]["handcrafted"]["available"] is True
    assert facts["device"] in ("cpu", "cuda") and facts["numpy"] == np.__version__
    for name, method in facts["methods"].items():
        assert method["available"] or method["reason"], name


def test_demo_writes_one_case_per_stage(tmp_path, capsys):
    out = tmp_path / "demo"
    assert main(["demo", "--out", str(out), "--small"]) == 0
    index = json.loads((out / "index.json").read_text())
    assert [c["stage"] for c in index["cases"]] == ["tiny", "early", "intermediate", "advanced"]
    for case in index["cases"]:
        assert [t["organ"] for t in case["tumors"]] == ["liver", "pancreas", "kidney"]
        for name in case["files"]:
            assert (out / case["folder"] / name).stat().st_size > 0
    assert (out / "phantom" / "ct.nii.gz").exists()
    assert str(out) in capsys.readouterr().err
    teaching = index["teaching"]                      # the DICOM teaching case (CT + SEG)
    assert len(list((out / teaching["ct"]).glob("IM*.dcm"))) == 48 and (out / teaching["seg"]).is_file()
    assert [s.split(" (")[0] for s in teaching["segments"]] == ["Tumor 1", "Tumor 2", "Tumor 3"]


def test_console_script_exit_code_and_single_error_line(tmp_path):
    script = Path(sys.executable).parent / "tumorsynth"
    if not script.exists():
        pytest.skip("the tumorsynth console script is not installed in this environment")
    proc = subprocess.run([str(script), "synth", "--image", str(tmp_path / "nope.nii.gz"),
                           "--tumor", "organ=liver", "--out", str(tmp_path / "o")],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert "does not exist" in one_error_line(proc.stderr)
    assert proc.stdout == ""


def test_unexpected_errors_exit_1_and_debug_shows_the_traceback(phantom_files, tmp_path, capsys,
                                                                 monkeypatch):
    import TumorSynthLib.cli.synth as synth_cmd

    def broken(*_args, **_kwargs):
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(synth_cmd, "load_inputs", broken)
    args = ["synth", "--image", str(phantom_files[0]), "--tumor", "organ=liver", "--out", str(tmp_path)]
    assert main(args) == 1
    line = one_error_line(capsys.readouterr().err)
    assert "RuntimeError: disk on fire" in line and "--debug" in line
    assert main([*args, "--debug"]) == 1
    assert "Traceback" in capsys.readouterr().err
    assert main([*args, "--events", "jsonl"]) == 1
    event = parse_event(capsys.readouterr().out.splitlines()[-1])
    assert event["event"] == "error" and event["exit_code"] == 1


def test_tumor_strings_become_specs():
    from TumorSynthLib.cli.synth import parse_tumor
    from TumorSynthLib.core.errors import InputError

    spec = parse_tumor("organ=kidney, stage=advanced,diameter=45.5,point=1:-2.5:3,method=cellular,"
                       "count=2,clip=0,necrosis=1,enhancement=hyper,steps=40,lobulation=0.4",
                       default_seed=7, extra_options={"tumor_label": 9})
    assert (spec.organ, spec.stage, spec.diameter_mm, spec.method, spec.seed) == \
        ("kidney", "advanced", 45.5, "cellular", 7)
    assert spec.center_ras == (1.0, -2.5, 3.0) and spec.center_voxel is None
    assert dict(spec.options) == {"tumor_label": 9, "count": 2, "clip_to_organ": False,
                                  "necrosis": True, "enhancement": "hyper", "steps": 40,
                                  "lobulation": 0.4}
    assert parse_tumor("voxel=1:2:3,seed=4").center_voxel == (1.0, 2.0, 3.0)
    for bad, message in (("point=1:2", "three numbers"), ("clip=maybe", "is a switch"), ("organ=liver,organ=kidney", "given twice"),
                         ("opt.lobulation=0.4", "unknown key"), ("steps=-2", "steps"),
                         ("point=1:2:3,voxel=1:2:3", "not both"), ("organ", "not key=value"),
                         ("diameter=big", "bad value for 'diameter'")):
        with pytest.raises(InputError, match=message):
            parse_tumor(bad)
