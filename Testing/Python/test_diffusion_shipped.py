"""The shipped diffusion weights: listed in Models.json with their SHA256 and a record of how
they were trained, loadable strictly, and painting a liver tumor darker than the liver."""
from __future__ import annotations

import json

import numpy as np
import pytest

from TumorSynthLib import TumorSpec, synthesize
from TumorSynthLib.core.model_registry import sha256_file, shipped_models
from TumorSynthLib.synthesis.learned.checkpoint import default_model_ref, load_diffusion_model

SHIPPED_ID = "diffusion-pixel-v1"


@pytest.fixture(scope="module")
def entry():
    found = [e for e in shipped_models() if e.id == SHIPPED_ID]
    if not found:
        pytest.skip(f"{SHIPPED_ID} is not listed in Models.json (weights not installed)")
    return found[0]


def test_listed_with_sha256_and_training_record(entry):
    from pathlib import Path

    assert entry.task == "diffusion" and sha256_file(entry.path) == entry.sha256
    assert "no real tumor" in entry.extra["trained_on"] and default_model_ref() == SHIPPED_ID
    record = json.loads(Path(entry.path).with_suffix(".json").read_text())
    assert record["sha256"] == entry.sha256 and record["seed"] == 0
    assert record["data"]["cases"] and record["training"]["losses"]
    assert {"mae_ratio", "mean_error"} <= set(record["quality"]["all"])


def test_default_model_paints_a_darker_liver_tumor(entry, phantom_small):
    ct, organs, _ = phantom_small
    model = load_diffusion_model(None, "cpu")
    assert model.model_id == SHIPPED_ID and model.config.patch == 32 and model.config.timesteps == 4
    result = synthesize(ct, organs, [TumorSpec(organ="liver", stage="early", diameter_mm=18.0, method="diffusion",
                                               seed=1)])
    report = result.reports[0]
    assert report["appearance_info"]["model_sha256"] == entry.sha256
    assert report["measured_drop_hu"] is not None and report["measured_drop_hu"] > 5.0
    assert np.isfinite(result.image.array).all()
