#!/usr/bin/env python
"""Train TumorSynth's default tumor segmentation model and register it as ``default``.

One small 3D UNet for tumors of the liver, pancreas and kidneys with the universal 3-class label
set {0 background, 1 organ (liver | pancreas | kidney), 2 tumor}, trained on CPU from healthy
data only, with tumors of every available synthesis method made online:

* data: procedural phantoms (``--train-seeds`` seeds x both contrast phases, a quarter of the
  seeds also on a coarse 3 mm grid) and the TotalSegmentator example CT (real, non-contrast,
  3 mm) when ``../shared/data`` is present; validation on other phantom seeds. The benchmark
  (``benchmarks/bench_segmentation.py``) uses seeds from ``BENCH_SEED_BASE`` on, never seen here.
* recipe (chosen for speed per CPU-minute on a shared 2-core machine): 3 mm voxels, 40^3
  patches (120 mm), 4 per step, centred on background, each organ and each organ's tumors
  (1:1:1:1:2:2:2); the synthetic tumors' level to the organ rescaled by a factor drawn
  log-uniformly in 0.25-1.3, their grain kept, in half of the organs (``--tumor-contrast``); tumors in each organ with probability 0.7, stages early / intermediate / advanced
  0.3 / 0.5 / 0.2, 1-2 tumors per organ, methods used equally often; each case keeps its
  synthetic tumors for ``--synth-reuse`` epochs (new patches every time: synthesis, about 2 s
  per case, then costs a quarter of a step); one torch thread (``--threads``); batch Dice +
  cross-entropy, AdamW (peak 2e-3), warm-up + cosine fitted to ``--minutes`` (the first steps
  measure this machine's speed, ``TrainConfig.fit_schedule``).
* outputs: the weights-only checkpoint ``--out`` (default
  ``TumorSynthLib/resources/models/default-segmentation.pt``), ``<out stem>.train.json`` beside
  it (command, seed, data, config, loss curve, validations, timing) and, unless
  ``--no-register``, the ``default`` entry of ``TumorSynthLib/resources/Models.json`` with the
  file's SHA256.

Train one session fitted to a budget (the shipped model: 17144 steps in 79.6 min, one CPU
thread, the last checkpoint shipped)::

    nice -n 5 python tools/train_default_segmenter.py --minutes 82 --ship last --methods handcrafted,cellular,adversarial \
        --tumor-contrast 0.3:1.3 --tumor-contrast-draw uniform

Ship the best checkpoint of a run that is still going (or was killed) without waiting::

    python tools/train_default_segmenter.py --export-only

``--ship last`` ships the last checkpoint instead of the best: "best" is chosen on four
validation cases, a noisy pick (the shipped model's run: best 0.759 at step 9600, last 0.725).

Trial run without touching the shipped model::

    python tools/train_default_segmenter.py --minutes 15 --out build/trial/model.pt --no-register
"""
from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from TumorSynthLib.core.events import EventStream, run_sessions  # noqa: E402
from TumorSynthLib.core.files import sha256_file  # noqa: E402
from TumorSynthLib.datasets.phantom_pool import write_phantom_pool  # noqa: E402
from TumorSynthLib.segmentation.config import CONTRAST_DRAWS, resumed_contrast_draw  # noqa: E402

ORGANS = "liver,pancreas,kidney"
MODEL_ID = "default"
DEFAULT_OUT = REPO / "TumorSynthLib" / "resources" / "models" / "default-segmentation.pt"
REGISTRY = REPO / "TumorSynthLib" / "resources" / "Models.json"
EXAMPLE = REPO.parent / "shared" / "data" / "totalsegmentator-example"
TRAIN_SEED_BASE, VAL_SEED_BASE, BENCH_SEED_BASE = 1000, 2000, 3000
STAGE_MIX = {"early": 0.3, "intermediate": 0.5, "advanced": 0.2}
#: Recipe defaults of a fresh run (a resumed run keeps its own).
RECIPE = {"tumor_weight": 6.0, "tumor_contrast": (0.25, 1.3)}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                epilog=__doc__.split("\n\n", 1)[1],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--minutes", type=float, default=55.0, help="training budget in minutes (default 55)")
    p.add_argument("--seed", type=int, default=0, help="seed of the run (sample order, tumors, init)")
    p.add_argument("--out", type=Path, default=DEFAULT_OUT, help="checkpoint to write")
    p.add_argument("--work", type=Path, default=REPO / "build" / "default-segmenter",
                   help="data and run folder (phantoms are reused between runs)")
    p.add_argument("--no-register", action="store_true", help="do not touch Models.json")
    p.add_argument("--resume", action="store_true",
                   help="continue the killed run in WORK/run (default: a fresh run replaces it)")
    p.add_argument("--rebuild-data", action="store_true", help="render the phantoms again")
    p.add_argument("--train-seeds", type=int, default=16, help="phantom seeds for training (x2 phases)")
    p.add_argument("--val-seeds", type=int, default=2, help="phantom seeds for validation (x2 phases)")
    p.add_argument("--methods", default=None, help="synthesis methods (default: every available one)")
    p.add_argument("--channels", default="16,32,64,128", help="UNet widths (default 16,32,64,128)")
    p.add_argument("--spacing", type=float, default=3.0, help="model voxel size in mm (default 3)")
    p.add_argument("--patch", type=int, default=40, help="patch side in voxels (default 40: 120 mm)")
    p.add_argument("--samples-per-case", type=int, default=4, help="patches per case and step (default 4)")
    p.add_argument("--tumor-weight", type=float, default=None,
                   help="patch centres: background 1, each organ 1, tumors this, shared equally by "
                        f"the organs' tumors (default {RECIPE['tumor_weight']:g}: 2 each; --resume: the run's)")
    p.add_argument("--tumor-contrast", type=contrast_range, default=None, metavar="LO:HI",
                   help="contrast jitter of the synthetic tumors in half of the organs, factor drawn "
                        "log-uniformly (default 0.25:1.3: venous kidney tumors are made 50-105 HU below "
                        "the organ, 0.25 makes them 15-26 HU; never below 15 HU; 'none': off; --resume: the run's)")
    p.add_argument("--tumor-contrast-draw", choices=CONTRAST_DRAWS, default=None,
                   help="how the jitter's factor is drawn (default log-uniform; the model registered "
                        "with sha256 4b1477c9... used 0.3:1.3 uniform; --resume: the run's)")
    p.add_argument("--synth-reuse", type=int, default=4,
                   help="epochs a case keeps its synthetic tumors, new patches each time (default 4)")
    p.add_argument("--threads", type=int, default=1,
                   help="torch threads of the training process (default 1: the machine is shared)")
    p.add_argument("--lr", type=float, default=2e-3, help="peak learning rate (default 2e-3)")
    p.add_argument("--prob", type=float, default=0.7, help="chance that an organ gets tumors (default 0.7)")
    p.add_argument("--steps", type=int, default=None,
                   help="fixed step count (default: measured speed x --minutes)")
    p.add_argument("--val-every", type=int, default=600, help="validate every N steps (default 600)")
    p.add_argument("--workers", type=int, default=1, help="data loading processes (default 1)")
    p.add_argument("--no-example-ct", action="store_true", help="phantoms only")
    p.add_argument("--ship", choices=("best", "last"), default="best",
                   help="checkpoint to ship: best (best validation tumor DSC on the few validation cases) "
                        "or last (default best)")
    p.add_argument("--trained-on", default=None,
                   help="the registry's description of the training (default: generated; say how a "
                        "resumed run's methods changed)")
    p.add_argument("--export-only", action="store_true",
                   help="no training: ship the best (else the last) checkpoint of the run in WORK/run, "
                        "e.g. while it is still running")
    args = p.parse_args(argv)
    # The datalist lists the phantoms under --work; the trainer reads its relative paths against
    # the datalist's own folder, so a relative --work (build/seg) became build/seg/build/seg/...
    # and every phantom was skipped as unreadable: one session's 81-min run trained on the example
    # CT alone. Absolute paths from here on.
    args.work, args.out = args.work.resolve(), args.out.resolve()
    return args


# -- data ---------------------------------------------------------------------------------------
def build_data(args: argparse.Namespace, log: Any) -> tuple[Path, dict[str, Any]]:
    """Write (or reuse) the phantoms and the datalist; returns (datalist, description)."""
    folder = args.work / "data"
    if args.rebuild_data and folder.exists():
        shutil.rmtree(folder)
    t0 = time.monotonic()
    shown = lambda i, n, cid: log(f"  phantom {i}/{n}: {cid}") if i == n or i % 8 == 0 else None  # noqa: E731
    train_seeds = list(range(TRAIN_SEED_BASE, TRAIN_SEED_BASE + args.train_seeds))
    coarse_seeds = train_seeds[:: 4]
    val_seeds = list(range(VAL_SEED_BASE, VAL_SEED_BASE + args.val_seeds))
    training = write_phantom_pool(folder, train_seeds, progress=shown)
    training += write_phantom_pool(folder, coarse_seeds, grids=("coarse",), progress=shown)
    validation = write_phantom_pool(folder, val_seeds, progress=shown)
    example = None
    ct, seg = EXAMPLE / "example_ct.nii.gz", EXAMPLE / "example_seg_fast_force_split.nii.gz"
    if not args.no_example_ct and ct.is_file() and seg.is_file():
        example = {"image": str(ct), "label": str(seg), "case_id": "totalseg-example",
                   "sha256": sha256_file(ct)}
        training.append(example)
    elif not args.no_example_ct:
        log(f"  note: the example CT is not at {EXAMPLE}; training on phantoms only")
    datalist = args.work / "datalist.json"
    keep = ("image", "label", "case_id")
    datalist.write_text(json.dumps({"training": [{k: e[k] for k in keep} for e in training],
                                    "validation": [{k: e[k] for k in keep} for e in validation]},
                                   indent=1) + "\n")
    description = {
        "phantom_train_seeds": train_seeds, "phantom_coarse_seeds": coarse_seeds,
        "phantom_validation_seeds": val_seeds, "phases": ["venous", "noncontrast"],
        "grids": {"default": "256x256x96 at 1.4x1.4x2.5 mm", "coarse": "120x120x80 at 3 mm"},
        "example_ct": None if example is None else {"image": "totalsegmentator-example/example_ct.nii.gz",
                                                    "sha256": example["sha256"]},
        "n_training": len(training), "n_validation": len(validation),
        "benchmark_seeds_start_at": BENCH_SEED_BASE, "prepare_s": round(time.monotonic() - t0, 1),
    }
    return datalist, description


def available_methods() -> str:
    from TumorSynthLib.synthesis.registry import availability, methods

    names = [name for name, pair in methods().items()
             if availability("geometry", pair.geometry)[0] and availability("appearance", pair.appearance)[0]]
    return ",".join(sorted(names))


# -- training -----------------------------------------------------------------------------------
def train_config(args: argparse.Namespace, datalist: Path, run_dir: Path, max_steps: int, **extra: Any) -> Any:
    from TumorSynthLib.segmentation.config import TrainConfig

    kwargs = dict(
        data=str(datalist), out=str(run_dir), organ=ORGANS, method=args.methods, labels="totalseg",
        model="unet", channels=tuple(int(c) for c in args.channels.split(",")), spacing_mm=args.spacing,
        patch=args.patch, batch_size=1, samples_per_case=args.samples_per_case,
        tumor_weight=args.tumor_weight, tumor_contrast=args.tumor_contrast,
        tumor_contrast_draw=args.tumor_contrast_draw, lr=args.lr, synth_reuse=args.synth_reuse,
        max_steps=max_steps, val_every=args.val_every, ckpt_every=100, max_val_cases=2 * args.val_seeds,
        seed=args.seed, device="cpu", workers=args.workers, prob=args.prob, stage_mix=dict(STAGE_MIX),
        num_tumors=(1, 2), warmup_steps=min(200, max(20, max_steps // 25)))
    kwargs.update(extra)
    return TrainConfig(**kwargs)


def recipe_defaults(args: argparse.Namespace, run_dir: Path) -> None:
    """Fill the recipe flags left unset: a resumed run keeps its own (``config.json``), a fresh
    one takes ``RECIPE``; an explicit flag that differs from a resumed run's is said in the log."""
    saved = json.loads((run_dir / "config.json").read_text()) if args.resume and (run_dir / "config.json").is_file() else None
    for key in ("tumor_weight", "tumor_contrast"):
        if getattr(args, key) is None:
            value = saved.get(key) if saved is not None else RECIPE[key]
            setattr(args, key, tuple(value) if isinstance(value, list) else value)
        elif saved is not None and saved.get(key) != getattr(args, key):
            print(f"note: --{key.replace('_', '-')} {getattr(args, key)} differs from the resumed run's "
                  f"{saved.get(key)} (recorded in config.json from here on)", file=sys.stderr)
    if args.tumor_contrast == "none":
        args.tumor_contrast = None
    saved_draw = resumed_contrast_draw(run_dir) if saved is not None else None
    if args.tumor_contrast_draw is None:
        args.tumor_contrast_draw = saved_draw or CONTRAST_DRAWS[0]
    elif saved_draw is not None and saved_draw != args.tumor_contrast_draw:
        print(f"note: --tumor-contrast-draw {args.tumor_contrast_draw} differs from the resumed run's "
              f"{saved_draw} (recorded in config.json from here on)", file=sys.stderr)


def contrast_range(text: str) -> tuple[float, float] | str:
    """``LO:HI`` as two floats, or ``none``."""
    if text.strip().lower() == "none":
        return "none"
    try:
        lo, hi = (float(v) for v in text.split(":"))
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"expected LO:HI (e.g. 0.25:1.3) or none, got '{text}'") from exc
    return lo, hi


def run_training(args: argparse.Namespace, datalist: Path, log: Any) -> tuple[Any, dict[str, Any]]:
    """Train for ``--minutes`` (the schedule fitted to the budget after measuring the speed,
    see ``segmentation.train``), or ``--steps``; ``--resume`` continues a killed run with the
    step count it had fitted. Returns (TrainResult, timing facts)."""
    from TumorSynthLib.segmentation.train import train

    run_dir = args.work / "run"
    resume = bool(args.resume)
    if resume and not (run_dir / "last.pt").is_file():
        raise SystemExit(f"--resume: no run to continue in {run_dir}")
    recipe_defaults(args, run_dir)
    if not resume and run_dir.exists():
        log(f"starting afresh: removing the previous run in {run_dir}")
        shutil.rmtree(run_dir)
    events = EventStream("none", log_path=run_dir / "events.jsonl")
    t0 = time.monotonic()
    if resume:
        cfg = train_config(args, datalist, run_dir, args.steps or _saved_max_steps(run_dir),
                           max_minutes=args.minutes, resume=True)
    else:
        fit = args.steps is None
        cfg = train_config(args, datalist, run_dir, args.steps or int(60 * args.minutes),
                           max_minutes=args.minutes, fit_schedule=fit)
    result = train(cfg, events)
    facts = {"budget_minutes": args.minutes, "planned_steps": _saved_max_steps(run_dir),
             "train_s": round(time.monotonic() - t0, 1), "loop_s": round(result.seconds, 1),
             "stopped": result.stopped, "steps": result.step,
             "data_wait_s": round(result.timing.get("data_s", 0.0), 1),
             "compute_s": round(result.timing.get("compute_s", 0.0), 1)}
    return result, facts


def _saved_max_steps(run_dir: Path) -> int:
    config = json.loads((run_dir / "config.json").read_text())
    return int(config["max_steps"])


# -- export and registration --------------------------------------------------------------------
def loss_curve(run_dir: Path, every: int = 25) -> tuple[list[list[float]], list[dict[str, Any]]]:
    """([step, mean loss of the last ``every`` steps], validation events) from events.jsonl."""
    losses, validations = [], []
    for line in (run_dir / "events.jsonl").read_text().splitlines():
        event = json.loads(line)
        if event.get("event") == "progress" and event.get("loss") is not None:
            losses.append((int(event["step"]), float(event["loss"])))
        elif event.get("event") == "validation":
            validations.append({"step": event["step"], **(event.get("metrics") or {})})
    curve = []
    by_step = dict(losses)   # a resumed run repeats no step, but keep the last value of each
    steps = sorted(by_step)
    for i in range(0, len(steps), every):
        chunk = [by_step[s] for s in steps[i:i + every]]
        curve.append([steps[min(i + every, len(steps)) - 1], round(sum(chunk) / len(chunk), 5)])
    return curve, validations


def shipped_validation(validations: list[dict[str, Any]], step: int) -> tuple[float | None, dict[str, Any] | None]:
    """(validation tumor DSC of ``step``, else None; the run's best validation {step, tumor_dsc})."""
    own = next((v.get("tumor_dsc") for v in reversed(validations) if v.get("step") == step), None)
    best = max((v for v in validations if v.get("tumor_dsc") is not None), key=lambda v: v["tumor_dsc"], default=None)
    return own, None if best is None else {"step": best["step"], "tumor_dsc": best["tumor_dsc"]}


def export(source: Path, out: Path, provenance: dict[str, Any]) -> Path:
    """A weights-only copy of ``source`` (no optimiser state) with the provenance inside."""
    from TumorSynthLib.segmentation.checkpoint import load_checkpoint, save_checkpoint

    payload = load_checkpoint(source)
    for key in ("optimizer", "scheduler", "scaler"):
        payload.pop(key, None)
    payload["data"] = {"n_training": provenance["data"]["n_training"],
                       "n_validation": provenance["data"]["n_validation"], "skipped": []}
    payload["provenance"] = json.loads(json.dumps({k: provenance[k] for k in ("command", "seed", "data")}))
    return save_checkpoint(out, payload)


def register(out: Path, facts: dict[str, Any]) -> dict[str, Any]:
    """Write the ``default`` entry of the shipped Models.json (replacing an older one)."""
    from TumorSynthLib.core.model_registry import check_registry
    from TumorSynthLib.segmentation.checkpoint import label_names_of, load_checkpoint

    payload = load_checkpoint(out)
    rel = os.path.relpath(out.resolve(), REGISTRY.parent.resolve())
    if rel.startswith(".."):
        raise SystemExit(f"--out must be inside {REGISTRY.parent} to be registered (or pass --no-register)")
    entry = {
        "id": MODEL_ID, "file": rel.replace(os.sep, "/"), "sha256": sha256_file(out),
        "task": "segmentation", "organ": ORGANS,
        "description": "Default tumor segmentation model (liver, pancreas, kidney; 0 background, "
                       "1 organ, 2 tumor); trained on synthetic tumors in phantoms only",
        "architecture": str(payload["model_config"]["name"]),
        "method": str(payload["config"]["method"]),
        "label_names": {str(k): v for k, v in label_names_of(payload).items()},
        "size_bytes": out.stat().st_size, "step": int(payload["step"]),
        "best_metric": (facts.get("run_best_validation") or {}).get("tumor_dsc"),   # the run's best
        "validation_metric": facts.get("validation_tumor_dsc"),                     # this checkpoint's
        "license": "Apache-2.0",
        "trained_on": facts["trained_on"],
    }
    data = json.loads(REGISTRY.read_text())
    data["models"] = [m for m in data["models"] if m["id"] != MODEL_ID] + [entry]
    check_registry(data, str(REGISTRY))
    tmp = REGISTRY.with_name(f".{REGISTRY.name}.tmp")
    tmp.write_text(json.dumps(data, indent=2) + "\n")
    os.replace(tmp, REGISTRY)
    return entry


def git_commit() -> str | None:
    try:
        return subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True,
                              check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    log = lambda text: print(text, file=sys.stderr, flush=True)  # noqa: E731
    args.methods = args.methods or available_methods()
    args.work.mkdir(parents=True, exist_ok=True)
    command = "python " + shlex.join([os.path.relpath(__file__, REPO), *(argv if argv is not None else sys.argv[1:])])
    log(f"default segmentation model: organs {ORGANS}, methods {args.methods}, seed {args.seed}")
    datalist, data = build_data(args, log)
    log(f"data: {data['n_training']} training and {data['n_validation']} validation cases "
        f"({data['prepare_s']:.0f} s)")
    if args.export_only:
        source, facts, synthesis = run_so_far(args.work / "run", args.ship)
        log(f"exporting {source} of the run in {args.work / 'run'} (step {facts['steps']}, {facts['stopped']})")
    else:
        import torch

        torch.set_num_threads(max(1, args.threads))
        result, facts = run_training(args, datalist, log)
        best = result.best if args.ship == "best" else None
        source, synthesis = Path(best or result.last), result.synthesis
    ship(args, command, data, source, facts, synthesis, log)
    return 0


def run_so_far(run_dir: Path, ship: str = "best") -> tuple[Path, dict[str, Any], dict[str, Any]]:
    """(best checkpoint, else last, or last with ``ship="last"``; timing facts; synthesis
    counts) of a run that may still be going: what ``--export-only`` ships."""
    from TumorSynthLib.segmentation.checkpoint import load_checkpoint

    names = ("best.pt", "last.pt") if ship == "best" else ("last.pt",)
    source = next((run_dir / n for n in names if (run_dir / n).is_file()), None)
    if source is None:
        raise SystemExit(f"--export-only: no checkpoint in {run_dir} yet")
    last = load_checkpoint(run_dir / "last.pt") if (run_dir / "last.pt").is_file() else load_checkpoint(source)
    events = [json.loads(line) for line in (run_dir / "events.jsonl").read_text().splitlines() if line.strip()]
    done = next((e for e in reversed(events) if e.get("event") == "done"), None)
    facts = {"planned_steps": _saved_max_steps(run_dir), "steps": int(last["step"]),
             "stopped": done.get("reason") if done else "still running (exported while training)",
             "exported_at_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    return source, facts, (done or {}).get("synthesis") or {}


def ship(args: argparse.Namespace, command: str, data: dict[str, Any], source: Path, facts: dict[str, Any],
         synthesis: dict[str, Any], log: Any) -> None:
    """Export ``source`` to ``--out`` with its provenance record, and register it."""
    from TumorSynthLib.segmentation.checkpoint import load_checkpoint

    curve, validations = loss_curve(args.work / "run")
    payload = load_checkpoint(source)
    own, run_best = shipped_validation(validations, int(payload["step"]))
    provenance = {
        "command": command, "seed": args.seed, "git_commit": git_commit(), "data": data,
        "config": json.loads((args.work / "run" / "config.json").read_text()),
        "checkpoint_source": source.name, "checkpoint_step": int(payload["step"]), "timing": facts,
        "segments": (segments := run_sessions(args.work / "run" / "events.jsonl")),
        "total_loop_minutes": round(sum(seg["loop_s"] for seg in segments) / 60.0, 1),
        "synthesis": synthesis if synthesis.get("samples") else
        "counted in the data-loading worker process (not available here)",
        "validation_tumor_dsc": own, "run_best_validation": run_best, "validations": validations,
        "loss_curve": curve,
    }
    out = export(source, args.out, provenance)
    record = args.out.with_name(args.out.stem + ".train.json")
    record.write_text(json.dumps(provenance, indent=1) + "\n")
    log(f"wrote {out} ({out.stat().st_size / 1e6:.1f} MB, step {payload['step']}, "
        f"its validation tumor DSC {own}, the run's best {run_best}) and {record.name}")
    if not args.no_register:
        trained_on = (f"{data['n_training']} healthy cases ({len(data['phantom_train_seeds'])} phantom seeds x "
                      f"2 phases, {len(data['phantom_coarse_seeds'])} on a 3 mm grid"
                      f"{', the TotalSegmentator example CT' if data['example_ct'] else ''}) with online "
                      f"{args.methods.replace(',', ' + ')} tumors; {payload['step']} steps")
        entry = register(out, {"trained_on": args.trained_on or trained_on, "validation_tumor_dsc": own, "run_best_validation": run_best})
        log(f"registered '{entry['id']}' in {REGISTRY} (sha256 {entry['sha256'][:12]}...)")


if __name__ == "__main__":
    sys.exit(main())
