"""The shipped default segmentation model: its registry entry, its file, and that it does its job on
a clearly visible phantom lesion (and ignores an invisible one) as segmenter and quality filter.

These load the real shipped weights (2-3 MB, CPU): a few seconds in all.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from TumorSynthLib.cli import main
from TumorSynthLib.core import model_registry as registry
from TumorSynthLib.core.errors import ModelError
from TumorSynthLib.phantom import make_abdomen
from TumorSynthLib.phantom.lesions import add_sphere_lesion, lesion_centre
from TumorSynthLib.core.volume_io import save_volume

ORGANS = ("liver", "pancreas", "kidney")


@pytest.fixture(scope="module")
def default_entry():
    entries = {e.id: e for e in registry.shipped_models()}
    assert "default" in entries, "Models.json has no 'default' model (tools/train_default_segmenter.py)"
    return entries["default"]


@pytest.fixture(scope="module")
def coarse_phantom():
    """A venous phantom on a 2 mm grid (the model's own spacing: nothing to resample)."""
    return make_abdomen(seed=4242, shape=(176, 144, 96), spacing=(2.0, 2.0, 2.5))


def test_registry_entry_file_and_checkpoint(default_entry):
    from TumorSynthLib.segmentation.checkpoint import check_label_set, load_checkpoint

    assert default_entry.task == "segmentation" and default_entry.organ == ",".join(ORGANS)
    path = registry.resolve_model("default")
    assert path == Path(default_entry.path) and path.stat().st_size < 10_000_000
    assert registry.sha256_file(path) == default_entry.sha256
    assert registry.resolve_model(str(path)) == path              # by path: verified too
    payload = load_checkpoint(path)
    assert "optimizer" not in payload and payload["label_names"][2] == "tumor"
    for organ in ORGANS:
        check_label_set(payload, path, organ)
    assert payload["provenance"]["command"].startswith("python tools/train_default_segmenter.py")
    assert default_entry.extra["step"] == payload["step"]


@pytest.mark.parametrize("organ", ["liver", "pancreas", "kidney"])
def test_quality_p_of_visible_and_invisible_lesions(coarse_phantom, organ):
    from TumorSynthLib.segmentation.tasks import task_label_array
    from TumorSynthLib.segmentation.quality import QualityFilter

    ct, labels, _ = coarse_phantom
    region = task_label_array(np.asarray(labels.array), organ, "totalseg") == 1
    centre = lesion_centre(region, ct.spacing, 20.0, image=np.asarray(ct.array))
    qf = QualityFilter("default", device="cpu", organ=organ)
    visible, mask = add_sphere_lesion(ct, region, centre, 20.0, 40.0)
    invisible, _ = add_sphere_lesion(ct, region, centre, 20.0, 0.0)
    assert qf.score_volume(visible, mask) >= 0.8
    assert qf.score_volume(invisible, mask) < qf.threshold


def test_segment_cli_uses_the_default_model(coarse_phantom, tmp_path):
    from TumorSynthLib.segmentation.tasks import task_label_array

    ct, labels, _ = coarse_phantom
    liver = task_label_array(np.asarray(labels.array), "liver", "totalseg") == 1
    image, mask = add_sphere_lesion(ct, liver, lesion_centre(liver, ct.spacing, 30.0), 30.0, 45.0)
    path = save_volume(image, tmp_path / "ct.nii.gz")
    assert main(["segment", "--image", str(path), "--out", str(tmp_path / "pred.nii.gz"), "--device", "cpu"]) == 0
    summary = json.loads((tmp_path / "pred.json").read_text())
    assert summary["model"] == str(registry.resolve_model("default")) and summary["tumor_count"] >= 1
    from TumorSynthLib.core.volume_io import load_volume

    pred = np.asarray(load_volume(tmp_path / "pred.nii.gz").array)
    assert (pred[mask] == 2).mean() > 0.5                           # the lesion is found


def test_a_replaced_shipped_file_is_refused(default_entry, tmp_path, monkeypatch):
    fake = tmp_path / "default-segmentation.pt"
    fake.write_bytes(b"not the shipped model")
    entry = registry.ModelEntry(**{**default_entry.__dict__, "path": str(fake)})
    monkeypatch.setattr(registry, "shipped_models", lambda: [entry])
    with pytest.raises(ModelError, match="SHA256"):
        registry.resolve_model("default")
    with pytest.raises(ModelError, match="SHA256"):
        registry.resolve_model(fake)                              # given by path: checked as well


@pytest.fixture(scope="module")
def training_script():
    """tools/train_default_segmenter.py as a module."""
    import importlib.util

    script = Path(__file__).resolve().parents[2] / "tools" / "train_default_segmenter.py"
    spec = importlib.util.spec_from_file_location("train_default_segmenter_under_test", script)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_training_script_works_in_absolute_paths(training_script, tmp_path, monkeypatch):
    """A relative --work once put build/seg/build/seg/... into the datalist (read against its own
    folder): every phantom was skipped and a whole run trained on one case."""
    module = training_script
    monkeypatch.chdir(tmp_path)
    args = module.parse_args(["--work", "build/seg", "--out", "build/model.pt", "--no-register"])
    assert args.work == tmp_path / "build" / "seg" and args.work.is_absolute()
    assert args.out == tmp_path / "build" / "model.pt"


def test_the_training_script_resumes_a_run_with_its_own_recipe(training_script, tmp_path):
    """A fresh run takes the recipe (log-uniform contrast draw); a run whose config.json predates
    the recorded draw resumes with the uniform draw it began with, and its own contrast range."""
    from TumorSynthLib.segmentation.config import TrainConfig

    module = training_script
    fresh = module.parse_args(["--work", str(tmp_path / "fresh"), "--no-register"])
    module.recipe_defaults(fresh, tmp_path / "fresh" / "run")
    assert fresh.tumor_contrast == module.RECIPE["tumor_contrast"] and fresh.tumor_contrast_draw == "log-uniform"
    run = tmp_path / "old" / "run"
    run.mkdir(parents=True)
    older = TrainConfig(data="d.json", out=str(run), tumor_contrast=(0.4, 1.3)).to_dict()
    del older["tumor_contrast_draw"]
    (run / "config.json").write_text(json.dumps(older))
    resumed = module.parse_args(["--work", str(tmp_path / "old"), "--no-register", "--resume"])
    module.recipe_defaults(resumed, run)
    assert resumed.tumor_contrast == (0.4, 1.3) and resumed.tumor_contrast_draw == "uniform"
