"""Hostile inputs, table-driven: each case runs one command (in-process, ``main([...])``) or one
API call the way a careless or malicious user would, and asserts the exit code (or exception
class), the key words of the one-line message, that no input file changed, that no code from a
checkpoint ran and that no partial output was left behind."""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pytest

from hostile_world import (
    PWNED,
    World,
    files_under,
    make_world,
    plant_lock,
    sleeping_process,
    snapshot,
)
from TumorSynthLib import TumorSpec, synthesize
from TumorSynthLib.cli import main
from TumorSynthLib.core.errors import GeometryError, InputError, TumorSynthError
from TumorSynthLib.core.volume import Volume
from TumorSynthLib.core.volume_io import load_volume, save_volume


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> World:
    return make_world(tmp_path_factory.mktemp("hostile") / "inputs")


@dataclass
class Cli:
    """One command-line case. ``argv(world, tmp) -> argv`` (``tmp / "out"`` is the usual
    output); ``setup(world, tmp)`` prepares the scene; ``leaves``: files a failed run may add
    to ``tmp / "out"`` (train keeps its event log)."""

    id: str
    argv: Callable[[World, Path], list[str]]
    code: int
    words: tuple[str, ...] = ()
    setup: Callable[[World, Path], Any] | None = None
    leaves: tuple[str, ...] = ()
    env: dict[str, str] = field(default_factory=dict)
    check: Callable[[World, Path], None] | None = None


def synth(w: World, out: Path, *extra: str, image: str | None = None, organs: str | None = None,
          tumor: str | None = None) -> list[str]:
    return ["synth", "--image", image or str(w.ct), "--organs", organs or str(w.organs), "--out", str(out),
            "--tumor", tumor or f"organ=liver,stage=early,diameter=12,point={w.liver_ras}", *extra]


def gen(w: World, out: Path, *extra: str, data: str | None = None) -> list[str]:
    return ["generate", "--input", data or w["dl_good"], "--organ", "liver", "--out", str(out), *extra]


def train(w: World, out: Path, *extra: str, data: str | None = None) -> list[str]:
    return ["train", "--data", data or w["dl_good"], "--out", str(out), "--device", "cpu", "--max-steps", "2",
            "--channels", "4,8", "--patch", "16", "--spacing", "6", "--workers", "0", *extra]


def segment(w: World, out: Path, *extra: str, model: str | None = None, image: str | None = None) -> list[str]:
    return ["segment", "--model", model or w["model"], "--image", image or str(w.ct), "--out", str(out),
            "--device", "cpu", *extra]


def evaluate(w: World, out: Path, *extra: str, pred: str | None = None, gt: str | None = None) -> list[str]:
    return ["evaluate", "--pred", pred or w["msd"], "--gt", gt or str(w.organs), "--out", str(out), *extra]


def _foreign(w: World, t: Path) -> None:
    (t / "out").mkdir()
    (t / "out" / "notes.txt").write_text("mine")


def _copy_input_into_out(w: World, t: Path) -> None:
    (t / "out").mkdir()
    (t / "out" / "image.nii.gz").write_bytes(w.ct.read_bytes())


def _symlinked_report(w: World, t: Path) -> None:
    (t / "out").mkdir()
    (t / "victim.txt").write_text("precious")
    os.symlink(t / "victim.txt", t / "out" / "report.json")


def _victim_intact(w: World, t: Path) -> None:
    assert (t / "victim.txt").read_text() == "precious"
    assert not (t / "out" / "report.json").is_symlink()
    assert json.loads((t / "out" / "report.json").read_text())["synthetic"] is True


def _escape_contained(w: World, t: Path) -> None:
    assert not (w.root.parent / "escaped").exists() and not (w.root.parent / "abs_case").exists()
    assert not (t / "escaped").exists()
    names = sorted(p.name for p in (t / "out").iterdir() if p.is_dir())
    assert names == ["escaped_v0", "hostile0_inputs_abs_case_v0"] or len(names) == 2, names
    assert all((t / "out" / n / "report.json").is_file() for n in names)


def _escape_flat(w: World, t: Path) -> None:
    images = sorted(p.name for p in (t / "out" / "imagesTr").iterdir())
    labels = sorted(p.name for p in (t / "out" / "labelsTr").iterdir())
    assert len(images) == 2 and images == labels
    assert load_volume(t / "out" / "imagesTr" / images[0]).array.dtype.kind == "f"   # the image, not a label


def _live_lock(w: World, t: Path) -> None:
    proc = sleeping_process()
    plant_lock(t / "out", proc.pid)
    t.joinpath("pid").write_text(str(proc.pid))
    return proc


def _stale_lock(w: World, t: Path) -> None:
    plant_lock(t / "out", 2 ** 22 + 12345)


def _no_lock_left(w: World, t: Path) -> None:
    assert not (t / "out" / ".tumorsynth.lock").exists()


def _existing_run(w: World, t: Path) -> None:
    (t / "out").mkdir()
    (t / "out" / "last.pt").write_bytes(b"old run")


def _out_is_file(w: World, t: Path) -> None:
    (t / "out").write_text("a file")


def _home_is_file(w: World, t: Path) -> None:
    (t / "home").write_text("not a folder")


def _corrupt_index(w: World, t: Path) -> None:
    (t / "home" / "models").mkdir(parents=True)
    (t / "home" / "models" / "models.json").write_text("{broken")


def _images_folder(w: World, t: Path) -> None:
    (t / "scans").mkdir()
    for name in ("a.nii.gz", "b.nii.gz"):
        (t / "scans" / name).write_bytes(w.ct.read_bytes())


def _no_code_ran(w: World, t: Path) -> None:
    assert not (w.root.parent / PWNED).exists()


CLI_CASES = [
    # -- synth ------------------------------------------------------------------------------------
    Cli("synth-missing-image", lambda w, t: synth(w, t / "out", image=str(t / "nope.nii.gz")), 2, ("does not exist",)),
    Cli("synth-image-is-empty-folder", lambda w, t: synth(w, t / "out", image=w["empty_dir"]), 2, ("no dicom",)),
    Cli("synth-image-is-text", lambda w, t: synth(w, t / "out", image=w["text"]), 2, ("cannot read",)),
    Cli("synth-totalseg-map-as-msd", lambda w, t: synth(w, t / "out", "--labels", "msd"), 2,
        ("'msd' convention does not use", "--labels totalseg")),
    Cli("synth-msd-map-as-totalseg", lambda w, t: synth(w, t / "out", organs=w["msd"]), 2,
        ("not a totalsegmentator map", "--labels msd")),
    Cli("synth-fractional-labels", lambda w, t: synth(w, t / "out", organs=w["frac"]), 2, ("not integers",)),
    Cli("synth-negative-labels", lambda w, t: synth(w, t / "out", organs=w["negative"]), 2, ("negative",)),
    Cli("synth-labels-other-grid", lambda w, t: synth(w, t / "out", organs=w["organs_small"]), 2,
        ("shape", "resample")),
    Cli("synth-tumor-label-is-the-right-kidney", lambda w, t: synth(w, t / "out", "--tumor-label", "2"), 2,
        ("--tumor-label 2", "kidney_right", "already used")),
    Cli("synth-necrosis-label-is-the-liver", lambda w, t: synth(w, t / "out", "--necrosis-label", "5"), 2,
        ("--necrosis-label 5", "liver")),
    Cli("synth-key-given-twice", lambda w, t: synth(w, t / "out", tumor="organ=liver,seed=1,seed=2"), 2,
        ("'seed' is given twice",)),
    Cli("synth-unknown-key", lambda w, t: synth(w, t / "out", tumor="organ=liver,colour=red"), 2,
        ("unknown key 'colour'",)),
    Cli("synth-option-no-method-reads", lambda w, t: synth(w, t / "out", tumor="organ=liver,steps=5"), 2,
        ("'steps'", "cellular")),
    Cli("synth-bad-number", lambda w, t: synth(w, t / "out", tumor="organ=liver,diameter=big"), 2,
        ("bad value for 'diameter'",)),
    Cli("synth-point-and-voxel", lambda w, t: synth(w, t / "out", tumor="organ=liver,point=1:2:3,voxel=1:2:3"), 2,
        ("not both",)),
    Cli("synth-unknown-method", lambda w, t: synth(w, t / "out", tumor="organ=liver,method=magic"), 2, ("magic",)),
    Cli("synth-unknown-organ", lambda w, t: synth(w, t / "out", tumor="organ=heart"), 2, ("unknown organ",)),
    Cli("synth-count-zero", lambda w, t: synth(w, t / "out", tumor="organ=liver,count=0"), 2, ("option 'count'",)),
    Cli("synth-negative-diameter", lambda w, t: synth(w, t / "out", tumor=f"organ=liver,diameter=-5,point={w.liver_ras}"),
        2, ("diameter",)),
    Cli("synth-click-in-air", lambda w, t: synth(w, t / "out", tumor=f"organ=liver,point={w.air_ras}"), 2, ("liver",)),
    Cli("synth-hu-1e30", lambda w, t: synth(w, t / "out", image=w["ct_1e30"]), 2, ("hounsfield",)),
    Cli("synth-nan-voxels", lambda w, t: synth(w, t / "out", image=w["ct_nan"]), 2, ("nan",)),
    Cli("synth-nan-affine", lambda w, t: synth(w, t / "out", image=w["nrrd_nan"]), 2, ("affine", "nan")),
    Cli("synth-nhdr-absolute-data-file", lambda w, t: synth(w, t / "out", image=w["nhdr_abs"]), 2,
        ("not beside the header",)),
    Cli("synth-nhdr-parent-data-file", lambda w, t: synth(w, t / "out", image=w["nhdr_up"]), 2,
        ("not beside the header",)),
    Cli("synth-out-is-a-file", lambda w, t: synth(w, t / "out"), 2, ("is a file",), setup=_out_is_file),
    Cli("synth-out-under-a-file", lambda w, t: synth(w, t / "f" / "out"), 2, ("cannot write",),
        setup=lambda w, t: (t / "f").write_text("x")),
    Cli("synth-out-impossible", lambda w, t: synth(w, Path("/proc/version/out")), 2, ("cannot write",)),
    Cli("synth-out-holds-foreign-files", lambda w, t: synth(w, t / "out"), 2, ("did not write", "notes.txt"),
        setup=_foreign),
    Cli("synth-input-inside-out", lambda w, t: synth(w, t / "out", image=str(t / "out" / "image.nii.gz")), 2,
        ("never overwritten",), setup=_copy_input_into_out),
    Cli("synth-bad-convention-name", lambda w, t: synth(w, t / "out", "--labels", "weird"), 2, ("invalid choice",)),
    Cli("synth-seed-not-a-number", lambda w, t: synth(w, t / "out", "--seed", "abc"), 2, ("invalid int",)),
    Cli("synth-symlinked-report-is-replaced", lambda w, t: synth(w, t / "out"), 0, setup=_symlinked_report,
        check=_victim_intact),
    # -- generate ---------------------------------------------------------------------------------
    Cli("generate-case-ids-leave-out", lambda w, t: gen(w, t / "out", data=w["dl_escape"]), 0,
        check=_escape_contained),
    Cli("generate-case-ids-flat-layout", lambda w, t: gen(w, t / "out", "--layout", "flat", data=w["dl_escape"]), 0,
        check=_escape_flat),
    Cli("generate-ids-collide-as-names", lambda w, t: gen(w, t / "out", data=w["dl_same_name"]), 2, ("share the id",)),
    Cli("generate-id-without-a-name", lambda w, t: gen(w, t / "out", data=w["dl_no_name"]), 2, ("no usable file name",)),
    Cli("generate-totalseg-as-msd", lambda w, t: gen(w, t / "out", "--labels", "msd", data=w["dl_msd_label"]), 2,
        ("--labels totalseg",)),
    Cli("generate-stage-mix-sum", lambda w, t: gen(w, t / "out", "--stage-mix", "early=0.5"), 2, ("sum to 1",)),
    Cli("generate-shard-out-of-range", lambda w, t: gen(w, t / "out", "--shard", "5/2"), 2, ("--shard",)),
    Cli("generate-per-case-zero", lambda w, t: gen(w, t / "out", "--per-case", "0"), 2, ("--per-case",)),
    Cli("generate-threshold-without-model", lambda w, t: gen(w, t / "out", "--threshold", "0.5"), 2, ("--quality",)),
    Cli("generate-quality-model-missing", lambda w, t: gen(w, t / "out", "--quality", str(t / "no.pt")), 2,
        ("neither an existing file",)),
    Cli("generate-input-missing", lambda w, t: gen(w, t / "out", data=str(t / "none")), 2, ("does not exist",)),
    Cli("generate-out-is-input", lambda w, t: gen(w, w.root), 2, ("is the input folder",)),
    Cli("generate-broken-datalist", lambda w, t: gen(w, t / "out", data=w["dl_broken"]), 2, ("cannot read the datalist",)),
    Cli("generate-datalist-without-label", lambda w, t: gen(w, t / "out", data=w["dl_missing_label"]), 2,
        ("needs 'image' and 'label'",)),
    Cli("generate-unknown-method", lambda w, t: gen(w, t / "out", "--method", "magic"), 2, ("unknown --method",)),
    Cli("generate-locked-out", lambda w, t: gen(w, t / "out"), 2, ("in use", "planted"), setup=_live_lock,
        leaves=(".tumorsynth.lock",)),
    Cli("generate-stale-lock-is-taken-over", lambda w, t: gen(w, t / "out"), 0, setup=_stale_lock,
        check=_no_lock_left),
    # -- train ------------------------------------------------------------------------------------
    Cli("train-lr-nan", lambda w, t: train(w, t / "out", "--lr", "nan"), 2, ("--lr", "finite")),
    Cli("train-max-steps-zero", lambda w, t: train(w, t / "out", "--max-steps", "0"), 2, ("--max-steps",),
        leaves=("events.jsonl",)),
    Cli("train-data-missing", lambda w, t: train(w, t / "out", data=str(t / "none")), 2, ("does not exist",),
        leaves=("events.jsonl",)),
    Cli("train-totalseg-as-msd", lambda w, t: train(w, t / "out", "--labels", "msd", data=w["dl_msd_label"]), 2,
        ("--labels totalseg",), leaves=("events.jsonl",)),
    Cli("train-unknown-model", lambda w, t: train(w, t / "out", "--model", "transformer9000"), 2,
        ("unknown --model",), leaves=("events.jsonl",)),
    Cli("train-resume-without-run", lambda w, t: train(w, t / "out", "--resume"), 2, ("--resume", "last.pt"),
        leaves=("events.jsonl",)),
    Cli("train-out-is-a-file", lambda w, t: train(w, t / "out"), 2, ("is a file",), setup=_out_is_file),
    Cli("train-existing-run", lambda w, t: train(w, t / "out"), 2, ("already holds a run", "--resume"),
        setup=_existing_run, leaves=("events.jsonl", "last.pt")),
    Cli("train-quality-model-missing", lambda w, t: train(w, t / "out", "--quality", str(t / "no.pt")), 2,
        ("neither an existing file",), leaves=("events.jsonl",)),
    Cli("train-patch-not-multiple", lambda w, t: train(w, t / "out", "--patch", "20"), 2, ("--patch",),
        leaves=("events.jsonl",)),
    Cli("train-prob-above-one", lambda w, t: train(w, t / "out", "--prob", "2"), 2, ("--prob",),
        leaves=("events.jsonl",)),
    Cli("train-channels-not-numbers", lambda w, t: train(w, t / "out", "--channels", "a,b"), 2, ("--channels",)),
    Cli("train-locked-out", lambda w, t: train(w, t / "out"), 2, ("in use",), setup=_live_lock,
        leaves=(".tumorsynth.lock", "events.jsonl")),
    # -- segment ----------------------------------------------------------------------------------
    Cli("segment-model-missing", lambda w, t: segment(w, t / "out", model=str(t / "no.pt")), 2,
        ("neither an existing file",)),
    Cli("segment-malicious-pickle", lambda w, t: segment(w, t / "out", model=w["model_evil"]), 2,
        ("never allows", "posix.system"), check=_no_code_ran),
    Cli("segment-architecture-mismatch", lambda w, t: segment(w, t / "out", model=w["model_wrong_arch"]), 2,
        ("do not fit",)),
    Cli("segment-unbuildable-model", lambda w, t: segment(w, t / "out", model=w["model_bad_config"]), 2,
        ("cannot be built",)),
    Cli("segment-five-classes", lambda w, t: segment(w, t / "out", model=w["model_5_classes"]), 2,
        ("another label set",)),
    Cli("segment-truncated-checkpoint", lambda w, t: segment(w, t / "out", model=w["model_truncated"]), 2,
        ("corrupt",)),
    Cli("segment-unknown-model-id", lambda w, t: segment(w, t / "out", model="no-such-model"), 2,
        ("no model with id",), env={"TUMORSYNTH_HOME": "{t}/home"}),
    Cli("segment-overlap-above-one", lambda w, t: segment(w, t / "out", "--overlap", "1.5"), 2, ("--overlap",)),
    Cli("segment-fractional-organs", lambda w, t: segment(w, t / "out.nii.gz", "--organs", w["frac"]), 2,
        ("not integers",)),
    Cli("segment-totalseg-organs-as-msd", lambda w, t: segment(w, t / "out.nii.gz", "--organs", str(w.organs),
                                                               "--labels", "msd"), 2, ("--labels totalseg",)),
    Cli("segment-hu-1e30", lambda w, t: segment(w, t / "out.nii.gz", image=w["ct_1e30"]), 2, ("hounsfield",)),
    Cli("segment-file-out-for-many-scans", lambda w, t: segment(w, t / "out.nii.gz", image=str(t / "scans")), 2,
        ("several scans",), setup=_images_folder),
    Cli("segment-out-under-a-file", lambda w, t: segment(w, t / "f" / "out"), 2, ("cannot write",),
        setup=lambda w, t: (t / "f").write_text("x")),
    # -- evaluate ---------------------------------------------------------------------------------
    Cli("evaluate-fractional-reference", lambda w, t: evaluate(w, t / "out", gt=w["frac"]), 2, ("not integers",)),
    Cli("evaluate-negative-reference", lambda w, t: evaluate(w, t / "out", gt=w["negative"]), 2, ("negative",)),
    Cli("evaluate-totalseg-reference-as-msd", lambda w, t: evaluate(w, t / "out", "--labels", "msd"), 2,
        ("--labels totalseg",)),
    Cli("evaluate-file-and-folder", lambda w, t: evaluate(w, t / "out", gt=str(w.root)), 2, ("both be files",)),
    Cli("evaluate-tolerance-nan", lambda w, t: evaluate(w, t / "out", "--tolerance-mm", "nan"), 2, ("finite",)),
    Cli("evaluate-out-under-a-file", lambda w, t: evaluate(w, t / "f" / "out"), 2, ("cannot write",),
        setup=lambda w, t: (t / "f").write_text("x")),
    Cli("evaluate-prediction-missing", lambda w, t: evaluate(w, t / "out", pred=str(t / "none.nii.gz")), 2,
        ("does not exist",)),
    # -- models -----------------------------------------------------------------------------------
    Cli("models-home-is-a-file", lambda w, t: ["models", "list"], 2, ("tumorsynth_home", "is a file"),
        setup=_home_is_file, env={"TUMORSYNTH_HOME": "{t}/home"}),
    Cli("models-add-home-is-a-file", lambda w, t: ["models", "add", w["model"]], 2, ("is a file",),
        setup=_home_is_file, env={"TUMORSYNTH_HOME": "{t}/home"}),
    Cli("models-add-missing-file", lambda w, t: ["models", "add", str(t / "no.pt")], 2, ("does not exist",),
        env={"TUMORSYNTH_HOME": "{t}/home"}),
    Cli("models-add-malicious-pickle", lambda w, t: ["models", "add", w["model_evil"]], 2, ("never allows",),
        env={"TUMORSYNTH_HOME": "{t}/home"}, check=_no_code_ran),
    Cli("models-add-bad-id", lambda w, t: ["models", "add", w["model"], "--id", "../evil"], 2, ("model id",),
        env={"TUMORSYNTH_HOME": "{t}/home"}),
    Cli("models-remove-unknown", lambda w, t: ["models", "remove", "nothing"], 2, ("no model with id",),
        env={"TUMORSYNTH_HOME": "{t}/home"}),
    Cli("models-corrupt-index", lambda w, t: ["models", "list"], 2, ("cannot read the user model index",),
        setup=_corrupt_index, env={"TUMORSYNTH_HOME": "{t}/home"}),
]


def _one_line(stderr: str) -> str:
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in stderr, stderr
    assert lines[0].startswith("error: ")
    assert "np.float64" not in lines[0] and "np.int" not in lines[0]
    return lines[0]


@pytest.mark.parametrize("case", CLI_CASES, ids=[c.id for c in CLI_CASES])
def test_hostile_command_line(case: Cli, world: World, tmp_path: Path, capsys, monkeypatch) -> None:
    for key, value in case.env.items():
        monkeypatch.setenv(key, value.format(t=tmp_path))
    before = snapshot(world.root)
    proc = case.setup(world, tmp_path) if case.setup else None
    out = tmp_path / "out"
    outputs_before = files_under(out) if out.is_dir() else []
    try:
        code = main(case.argv(world, tmp_path))
    finally:
        if hasattr(proc, "kill"):
            proc.kill()
            proc.wait()
    err = capsys.readouterr().err
    assert code == case.code, err
    if code != 0:
        line = _one_line(err).lower()
        for word in case.words:
            assert word.lower() in line, line
        if out.is_dir():
            added = set(files_under(out)) - set(outputs_before) - set(case.leaves)
            assert not added, f"partial outputs left: {sorted(added)}"
    assert snapshot(world.root) == before, "an input file changed"
    assert not (world.root.parent / PWNED).exists(), "code from a checkpoint ran"
    assert not list(tmp_path.glob(".tmp-*")) and not list(tmp_path.glob(".old-*"))
    if case.check is not None:
        case.check(world, tmp_path)


# -- the API ------------------------------------------------------------------------------------------
@dataclass
class Api:
    id: str
    call: Callable[[World], Any]
    exc: type[BaseException]
    words: tuple[str, ...] = ()


def _ct(w: World) -> Volume:
    return load_volume(w.ct)


def _organs(w: World) -> Volume:
    return load_volume(w.organs)


def _spec(**fields: Any) -> TumorSpec:
    return TumorSpec(organ="liver", **fields)


API_CASES = [
    Api("image-is-an-array", lambda w: synthesize(np.zeros((8, 8, 8)), None, _spec()), InputError, ("Volume",)),
    Api("organs-is-an-array", lambda w: synthesize(_ct(w), np.zeros(3), _spec()), InputError, ("Volume",)),
    Api("spec-is-a-dict", lambda w: synthesize(_ct(w), _organs(w), {"organ": "liver"}), InputError, ("TumorSpec",)),
    Api("diameter-is-text", lambda w: synthesize(_ct(w), _organs(w), _spec(diameter_mm="big")), InputError,
        ("diameter_mm",)),
    Api("centre-has-two-numbers", lambda w: synthesize(_ct(w), _organs(w), _spec(center_ras=(1.0, 2.0))),
        InputError, ("center_ras",)),
    Api("seed-negative", lambda w: synthesize(_ct(w), _organs(w), _spec(seed=-1)), InputError, ("seed",)),
    Api("seed-numpy-float", lambda w: synthesize(_ct(w), _organs(w), _spec(seed=np.float64(1.5))), InputError,
        ("seed", "1.5")),
    Api("organ-is-a-number", lambda w: synthesize(_ct(w), _organs(w), _spec().__class__(organ=5)), InputError,
        ("organ",)),
    Api("options-a-list", lambda w: synthesize(_ct(w), _organs(w), _spec(options=[("count", 2)])), InputError,
        ("options",)),
    Api("option-numpy-value", lambda w: synthesize(_ct(w), _organs(w), _spec(options={"lobulation": np.float64(3.0)},
                                                                             method="cellular")),
        InputError, ("lobulation", "3.0")),
    Api("labels-not-a-string", lambda w: synthesize(_ct(w), _organs(w), _spec(), labels=5), InputError, ("labels",)),
    Api("threshold-is-text", lambda w: synthesize(_ct(w), _organs(w), _spec(), quality=lambda *a: 1.0,
                                                  quality_threshold="high"), InputError, ("quality_threshold",)),
    Api("quality-not-callable", lambda w: synthesize(_ct(w), _organs(w), _spec(), quality=0.7), InputError,
        ("callable",)),
    Api("tumor-label-collides", lambda w: synthesize(_ct(w), _organs(w), _spec(options={"tumor_label": 3})),
        InputError, ("kidney_left",)),
    Api("msd-call-on-totalseg-map", lambda w: synthesize(_ct(w), _organs(w), _spec(), labels="msd"), InputError,
        ("totalseg",)),
    Api("nan-affine", lambda w: Volume(np.zeros((4, 4, 4)), np.full((4, 4), np.nan)), GeometryError, ("nan",)),
    Api("affine-is-text", lambda w: Volume(np.zeros((4, 4, 4)), "eye"), GeometryError, ("affine",)),
    Api("array-is-none", lambda w: Volume(None, np.eye(4)), InputError, ("3d",)),
    Api("save-an-array", lambda w: save_volume(np.zeros((4, 4, 4)), w.root.parent / "x.nii.gz"), InputError,
        ("Volume",)),
    Api("load-none", lambda w: load_volume(None), InputError, ("path",)),
    Api("transform-prob-two", lambda w: __import__("TumorSynthLib.transforms", fromlist=["x"]).RandTumorSynthd(prob=2),
        InputError, ("prob",)),
    Api("generate-config-text", lambda w: __import__("TumorSynthLib.datasets.generate", fromlist=["x"]).GenerateConfig(
        input=w["dl_good"], out=str(w.root.parent / "g"), per_case="3").check(), InputError, ("--per-case",)),
    Api("train-config-nan", lambda w: __import__("TumorSynthLib.segmentation.config", fromlist=["x"]).TrainConfig(
        data=".", out=".", lr=float("nan")), InputError, ("--lr",)),
    Api("evaluate-path-is-number", lambda w: __import__("TumorSynthLib.segmentation.evaluate", fromlist=["x"])
        .evaluate_predictions(1, 2, 3), InputError, ("path",)),
]


@pytest.mark.parametrize("case", API_CASES, ids=[c.id for c in API_CASES])
def test_hostile_api_call(case: Api, world: World) -> None:
    before = snapshot(world.root)
    with pytest.raises(case.exc) as info:
        case.call(world)
    assert isinstance(info.value, TumorSynthError)
    text = str(info.value)
    for word in case.words:
        assert word.lower() in text.lower(), text
    assert "np.float64" not in text
    assert snapshot(world.root) == before


def test_there_are_enough_hostile_cases() -> None:
    assert len(CLI_CASES) + len(API_CASES) >= 60
    assert len({c.id for c in CLI_CASES + API_CASES}) == len(CLI_CASES) + len(API_CASES)
    for prefix in ("synth-", "generate-", "train-", "segment-", "evaluate-", "models-"):
        assert sum(c.id.startswith(prefix) for c in CLI_CASES) >= 6, prefix
