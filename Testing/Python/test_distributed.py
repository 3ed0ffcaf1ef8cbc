"""`tumorsynth train` under torchrun: 2 CPU processes (gloo) stay in lock-step and only rank 0
writes files."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import torch

from Testing.fixtures.models import TINY_CHANNELS

REPO = Path(__file__).resolve().parents[2]

#: Runs in every rank: the train command's own flag parsing and training, then each rank dumps
#: its final weights so the test can compare them.
RANK_SCRIPT = """
import os, sys, torch
from TumorSynthLib.cli import build_parser
from TumorSynthLib.cli.train import config_from_args
from TumorSynthLib.core.events import EventStream
from TumorSynthLib.segmentation.train import train

args = build_parser().parse_args(sys.argv[2:])
out = args.out
result = train(config_from_args(args), EventStream("none", show_bar=False, log_path=out + "/events.jsonl"))
torch.save(result.model.state_dict(), os.path.join(sys.argv[1], f"rank{os.environ['RANK']}.pt"))
"""


def test_two_rank_gloo_run_keeps_ranks_identical(seg_phantom_dataset, tmp_path):
    script = tmp_path / "rank.py"
    script.write_text(RANK_SCRIPT)
    run_dir, dumps = tmp_path / "run", tmp_path / "dumps"
    dumps.mkdir()
    flags = ["train", "--data", str(seg_phantom_dataset.datalist), "--out", str(run_dir),
             "--channels", ",".join(map(str, TINY_CHANNELS)), "--spacing", "3", "--patch", "32",
             "--samples-per-case", "1", "--max-steps", "4", "--ckpt-every", "2", "--val-every", "0",
             "--workers", "0", "--device", "cpu", "--seed", "0"]
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone",
                           "--nproc-per-node", "2", str(script), str(dumps), *flags],
                          capture_output=True, text=True, env=env, cwd=REPO, timeout=55)
    assert proc.returncode == 0, proc.stderr[-3000:]

    ranks = [torch.load(dumps / f"rank{r}.pt", weights_only=True) for r in (0, 1)]
    for key, value in ranks[0].items():
        assert torch.equal(value, ranks[1][key]), key
    written = sorted(p.name for p in run_dir.iterdir() if p.suffix == ".pt" or p.name.startswith("."))
    assert written == ["last.pt"]
    saved = torch.load(run_dir / "last.pt", weights_only=True)
    assert saved["step"] == 4
    for key, value in ranks[0].items():
        assert torch.equal(saved["model"][key], value), key
    events = [json.loads(line) for line in (run_dir / "events.jsonl").read_text().splitlines()]
    assert [e["event"] for e in events].count("start") == 1
    assert events[0]["world_size"] == 2 and events[-1]["event"] == "done"
    assert [e["step"] for e in events if e["event"] == "progress"] == [1, 2, 3, 4]
