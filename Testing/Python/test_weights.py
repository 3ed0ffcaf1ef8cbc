"""Model registry: shipped Models.json (+ schema), user models in $TUMORSYNTH_HOME, CLI."""
from __future__ import annotations

import json
from importlib import resources

import pytest

from Testing.fixtures.models import write_untrained_checkpoint
from TumorSynthLib.cli import main
from TumorSynthLib.core import model_registry as weights
from TumorSynthLib.core.errors import InputError, ModelError


@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("TUMORSYNTH_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


def _package_files() -> dict[str, float]:
    root = resources.files("TumorSynthLib").joinpath("resources")
    return {p.name: p.stat().st_mtime for p in root.iterdir()}  # type: ignore[attr-defined]


def test_shipped_registry_matches_its_schema():
    root = resources.files("TumorSynthLib").joinpath("resources")
    data = json.loads(root.joinpath("Models.json").read_text())
    assert weights.schema_errors(data, weights.registry_schema()) == []
    for entry in weights.shipped_models():      # every shipped file exists with its SHA256
        assert weights.sha256_file(entry.path) == entry.sha256


def test_schema_validator_reports_violations():
    schema = weights.registry_schema()
    bad = {"schema_version": 1, "models": [{"id": "Bad Id", "file": "x.pt", "sha256": "0" * 63,
                                           "task": "segmentation", "organ": "liver", "oops": 1}]}
    errors = weights.schema_errors(bad, schema)
    assert any("id" in e for e in errors) and any("sha256" in e for e in errors)
    assert any("oops" in e for e in errors)
    assert weights.schema_errors({"models": []}, schema) == ["$: missing 'schema_version'"]


def test_add_list_resolve_remove(home, tmp_path):
    before = _package_files()
    ckpt = write_untrained_checkpoint(tmp_path / "best.pt")
    entry = weights.add_model(ckpt, "liver-test", "tiny")
    assert entry.source == "user" and entry.organ == "liver" and entry.task == "segmentation"
    assert (home / "models" / "liver-test.pt").is_file()
    assert [e.id for e in weights.user_models()] == ["liver-test"]
    assert weights.resolve_model("liver-test") == home / "models" / "liver-test.pt"
    assert weights.resolve_model(ckpt) == ckpt                       # a path passes through
    with pytest.raises(InputError, match="already registered"):
        weights.add_model(ckpt, "another-id")
    with pytest.raises(InputError, match="exists already"):
        weights.add_model(write_untrained_checkpoint(tmp_path / "b.pt", channels=(4, 16)), "liver-test")
    weights.remove_model("liver-test")
    assert weights.user_models() == [] and not (home / "models" / "liver-test.pt").exists()
    with pytest.raises(InputError, match="no model"):
        weights.remove_model("liver-test")
    assert _package_files() == before                                # nothing written into the install


def test_tampered_or_foreign_files_are_refused(home, tmp_path):
    ckpt = write_untrained_checkpoint(tmp_path / "best.pt")
    weights.add_model(ckpt, "liver-test")
    stored = home / "models" / "liver-test.pt"
    assert weights.resolve_model(stored) == stored                  # a registered file, by path
    stored.write_bytes(stored.read_bytes()[:-10] + b"0123456789")
    with pytest.raises(ModelError, match="SHA256"):
        weights.resolve_model("liver-test")
    with pytest.raises(ModelError, match="SHA256"):
        weights.resolve_model(stored)                               # by path: checked as well
    assert weights.resolve_model(ckpt) == ckpt                      # an unregistered file passes
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a checkpoint")
    with pytest.raises(ModelError):
        weights.add_model(junk)
    with pytest.raises(ModelError, match="neither"):
        weights.resolve_model("No Such Thing!")
    (home / "models" / "models.json").write_text("{broken")
    with pytest.raises(ModelError, match="index"):
        weights.list_models()


def test_models_cli(home, tmp_path, capsys):
    ckpt = write_untrained_checkpoint(tmp_path / "best.pt", organ="pancreas")
    assert main(["models", "list", "--json"]) == 0
    assert [m for m in json.loads(capsys.readouterr().out) if m["source"] == "user"] == []  # shipped ones only
    assert main(["models", "add", str(ckpt), "--id", "panc-1"]) == 0
    assert "added panc-1" in capsys.readouterr().out
    assert main(["models", "list", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert [(m["id"], m["organ"], m["source"]) for m in listed if m["source"] == "user"] == [
        ("panc-1", "pancreas", "user")]
    assert main(["models", "remove", "panc-1"]) == 0
    assert main(["models", "remove"]) == 2                            # missing ID: a user error
    assert "needs a model ID" in capsys.readouterr().err
