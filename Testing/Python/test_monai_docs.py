"""docs/monai.md: its MONAI pipeline example runs as written on a small phantom."""
from __future__ import annotations

import json
import re
import time

import numpy as np


def _example(repo_root) -> str:
    text = (repo_root / "docs" / "monai.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", text, flags=re.S)
    assert blocks, "docs/monai.md has no python example"
    return blocks[0]


def test_readme_links_the_monai_page(repo_root):
    assert "docs/monai.md" in (repo_root / "README.md").read_text()


def test_the_monai_example_runs_on_a_phantom(repo_root, tmp_path, monkeypatch, capsys):
    from TumorSynthLib.core.volume import Volume
    from TumorSynthLib.core.volume_io import save_volume
    from TumorSynthLib.phantom import make_abdomen

    ct, organs, _ = make_abdomen(seed=1, shape=(80, 80, 36), spacing=(4.0, 4.0, 6.0))
    save_volume(ct, tmp_path / "ct.nii.gz")
    save_volume(Volume((np.asarray(organs.array) == 5).astype(np.uint8), organs.affine), tmp_path / "liver.nii.gz")
    monkeypatch.chdir(tmp_path)
    namespace: dict = {"__name__": "monai_example"}
    t0 = time.perf_counter()
    exec(compile(_example(repo_root), "docs/monai.md", "exec"), namespace)
    assert time.perf_counter() - t0 < 30
    batch, tally = namespace["batch"], namespace["tally"]
    assert tuple(batch["image"].shape) == (2, 1, 96, 96, 64)
    assert 0.0 <= float(batch["image"].min()) and float(batch["image"].max()) <= 1.0     # windowed
    assert tally.stats["samples"] == 1                                  # one scan, two crops
    record = json.loads(batch["tumorsynth"][0])
    assert record["applied"] == (tally.stats["applied"] == 1)
    if record["applied"]:                                               # prob 0.8, seed 0
        assert (batch["label"] == 2).any() and record["tumors"][0]["organ"] == "liver"
    assert "'samples': 1" in capsys.readouterr().out
