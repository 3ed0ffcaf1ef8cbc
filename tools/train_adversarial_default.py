#!/usr/bin/env python
"""Train the shipped ``adversarial`` generator (rerunnable; methods.md section 4).

No real tumor CT is available here: the "real" tumors the discriminator learns from are
**``cellular`` synthetic tumors on phantoms** standing in for real ones, so the shipped
generator learns to look like TumorSynth's automaton tumors and to be found by the default
segmentation model, not to look like real tumors. Train your own with real data:
``tumorsynth train-adversarial --data REAL_TUMORS --healthy HEALTHY --segmenter default``.

Steps: (1) phantoms (both phases) without tumors -> BUILD/healthy, phantoms with one cellular
tumor per organ -> BUILD/tumors (NIfTI pairs); (2) ``train_adversarial`` for ``--minutes``
against the frozen ``--segmenter``; (3) P of the generator's tumors on unseen phantoms, scored
by the segmenter (``--quality`` filter contract), next to ``handcrafted``; (4) with
``--install``, copy ``generator.pt`` to ``TumorSynthLib/resources/models/`` and register it
(SHA256) in ``Models.json``, with a ``.train.json`` provenance record.

    nice -n 10 nohup .venv/bin/python tools/train_adversarial_default.py --minutes 30 --install \
        > build/train-adversarial.log 2>&1 &
"""
from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

from TumorSynthLib import TumorSpec, synthesize
from TumorSynthLib.core.events import EventStream
from TumorSynthLib.core.files import write_json_atomic
from TumorSynthLib.core.model_registry import resolve_model, sha256_file
from TumorSynthLib.core.volume_io import save_volume
from TumorSynthLib.generative.adversarial_train import AdversarialConfig, train_adversarial
from TumorSynthLib.phantom import make_abdomen
from TumorSynthLib.segmentation.quality import QualityFilter
from TumorSynthLib.synthesis.learned.gan import GanConfig

ROOT = Path(__file__).resolve().parents[1]
RESOURCES = ROOT / "TumorSynthLib" / "resources"
MODEL_FILE = "models/adversarial-generator.pt"
MODEL_ID = "adversarial"
ORGANS = ("liver", "pancreas", "kidney")
GRID = dict(shape=(192, 192, 80), spacing=(1.8, 1.8, 3.0))
HEALTHY_SEEDS, TUMOR_SEEDS, EVAL_SEEDS = 4000, 4100, 4900
STANDIN = ("cellular tumors on phantoms stand in for real tumors (no real tumor CT was used): the generator "
           "imitates TumorSynth's automaton tumors")


def parse() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--minutes", type=float, default=30.0, help="training budget (default 30)")
    p.add_argument("--phantoms", type=int, default=6, help="phantom seeds per folder (default 6)")
    p.add_argument("--segmenter", default="default", help="frozen segmentation model (id or path)")
    p.add_argument("--build", default=str(ROOT / "build" / "adversarial-default"), help="work folder")
    p.add_argument("--eval-tumors", type=int, default=4, help="tumors per organ for the P figure")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1, help="torch threads (default 1: a shared machine)")
    p.add_argument("--install", action="store_true", help="ship the weights and register them")
    return p.parse_args()


def phantom(seed: int, index: int):
    return make_abdomen(seed=seed, phase=("venous", "noncontrast")[index % 2], **GRID)


def prepare(build: Path, n: int) -> dict:
    """NIfTI pairs: healthy phantoms, and phantoms with one cellular tumor per organ."""
    rng = np.random.default_rng(0)
    for folder in ("healthy", "tumors"):
        (build / folder).mkdir(parents=True, exist_ok=True)
    for i in range(n):
        image, labels, _ = phantom(HEALTHY_SEEDS + i, i)
        save_volume(image, build / "healthy" / f"h{i:02d}.nii.gz")
        save_volume(labels, build / "healthy" / f"h{i:02d}_label.nii.gz")
        image, labels, _ = phantom(TUMOR_SEEDS + i, i)
        specs = [TumorSpec(organ=o, method="cellular", diameter_mm=float(rng.uniform(15, 40)), seed=i,
                           stage=str(rng.choice(["early", "intermediate"]))) for o in ORGANS]
        result = synthesize(image, labels, specs, "totalseg", case_id=f"t{i:02d}")
        save_volume(result.image, build / "tumors" / f"t{i:02d}.nii.gz", synthetic=True)
        save_volume(result.labels, build / "tumors" / f"t{i:02d}_label.nii.gz", synthetic=True)
        print(f"prepared phantom pair {i + 1}/{n}", file=sys.stderr, flush=True)
    return {"healthy_seeds": [HEALTHY_SEEDS + i for i in range(n)],
            "tumor_seeds": [TUMOR_SEEDS + i for i in range(n)], "grid": GRID,
            "phases": "venous / noncontrast alternating", "tumors": "one cellular tumor per organ, 15-40 mm"}


def score(generator: Path, segmenter: str, per_organ: int) -> dict:
    """Mean P (and acceptance at 0.7) of adversarial and handcrafted tumors on unseen phantoms."""
    qf = QualityFilter(segmenter, threshold=0.7, device="cpu")
    out = {}
    for method in ("adversarial", "handcrafted"):
        ps = []
        for i in range(per_organ):
            image, labels, _ = phantom(EVAL_SEEDS + i, i)
            for organ in ORGANS:
                opts = {"adversarial_model": str(generator)} if method == "adversarial" else {}
                spec = TumorSpec(organ=organ, method=method, diameter_mm=25.0, seed=100 + i, options=opts)
                result = synthesize(image, labels, spec, "totalseg", case_id=f"eval{i}")
                ps.append(qf.score_volume(result.image, np.asarray(result.tumor_instances.array) > 0))
        out[method] = {"mean_p": float(np.mean(ps)), "accept_0.7": float(np.mean(np.asarray(ps) >= 0.7)),
                       "n": len(ps), "p": [round(float(p), 3) for p in ps]}
    return out


def install(generator: Path, record: dict) -> None:
    target = RESOURCES / MODEL_FILE
    shutil.copyfile(generator, target)
    digest = sha256_file(target)
    registry = json.loads((RESOURCES / "Models.json").read_text())
    registry["models"] = [m for m in registry["models"] if m["id"] != MODEL_ID] + [{
        "id": MODEL_ID, "file": MODEL_FILE, "sha256": digest, "task": "adversarial",
        "organ": ",".join(ORGANS), "architecture": "monai-unet",
        "description": "adversarial appearance generator (after FreeTumor); " + STANDIN,
        "method": "adversarial", "size_bytes": target.stat().st_size, "step": record["steps"],
        "license": "Apache-2.0", "trained_on": record["trained_on"]}]
    (RESOURCES / "Models.json").write_text(json.dumps(registry, indent=2) + "\n")
    write_json_atomic(target.with_suffix(".train.json"), {**record, "sha256": digest})
    print(f"installed {target} ({target.stat().st_size} bytes, sha256 {digest})", file=sys.stderr)


def main() -> int:
    args = parse()
    torch.set_num_threads(args.threads)
    build = Path(args.build)
    t0 = time.monotonic()
    data = prepare(build, args.phantoms)
    seg_path = resolve_model(args.segmenter)
    trained_on = (f"{args.phantoms} healthy phantoms + {args.phantoms} phantoms with cellular tumors "
                  f"(3 per case); {STANDIN}")
    cfg = AdversarialConfig(data=str(build / "tumors"), healthy=str(build / "healthy"), out=str(build / "run"),
                            segmenter=str(seg_path), labels="totalseg", gan=GanConfig().to_dict(),
                            max_steps=1_000_000, max_minutes=args.minutes, seed=args.seed, device="cpu",
                            resume=(build / "run" / "last.pt").is_file(), trained_on=trained_on)
    result = train_adversarial(cfg, EventStream("jsonl"))
    tail = result.history[-50:]
    figures = score(result.generator, str(seg_path), args.eval_tumors)
    record = {"command": "python tools/train_adversarial_default.py " + " ".join(sys.argv[1:]),
              "git_commit": subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True,
                                           text=True).stdout.strip(),
              "stand_in": STANDIN, "data": data, "trained_on": trained_on, "steps": result.step,
              "train_minutes": round(result.seconds / 60.0, 1), "total_minutes": round((time.monotonic() - t0) / 60, 1),
              "stopped": result.stopped, "segmenter": {"path": seg_path.name, "sha256": sha256_file(seg_path)},
              "last_50_steps": {k: float(np.mean([h[k] for h in tail])) for k in ("g", "adv", "seg", "d", "p_hard")},
              "p_on_unseen_phantoms": figures, "gan_config": GanConfig().to_dict()}
    write_json_atomic(build / "record.json", record)
    print(json.dumps({k: record[k] for k in ("steps", "train_minutes", "last_50_steps", "p_on_unseen_phantoms")},
                     indent=1), file=sys.stderr)
    if args.install:
        install(result.generator, record)
    return 0


if __name__ == "__main__":
    sys.exit(main())
