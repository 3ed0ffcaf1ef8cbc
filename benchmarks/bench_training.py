"""Segmentation training on this CPU: speed, online-synthesis share, and a longer experiment.

Prints

1. training steps/s of the default CPU setting (UNet (16, 32, 64, 128), 64^3 patches at 1.5 mm,
   1 case x 2 patches per step, prob 0.5 of online tumors, the default loader workers);
2. the synthesis share: seconds spent in ``RandTumorSynthd`` (read from the samples' records,
   loader workers included) over the training's wall seconds, for each available synthesis
   method (target <= 10 % for ``handcrafted``);
3. a longer run (``--minutes``, default 15): train on healthy phantoms with online
   ``handcrafted`` tumors, then segment phantoms carrying ``cellular`` tumors (standing in for
   real tumors: no real tumor CT is available here) and evaluate them: tumor DSC, NSD, organ DSC,
   sensitivity by size and false positives.

    python benchmarks/bench_training.py [--minutes 15] [--long-steps N] [--speed-steps 12]
                                        [--skip-long] [--out DIR]
"""
from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path


from TumorSynthLib import TumorSpec, TumorSynthError, synthesize
from TumorSynthLib.core.events import EventStream
from TumorSynthLib.phantom import make_abdomen
from TumorSynthLib.segmentation.config import TrainConfig
from TumorSynthLib.segmentation.train import train
from TumorSynthLib.synthesis.catalogue import method_entries
from TumorSynthLib.core.volume_io import save_volume

EVAL_STAGES = ("tiny", "early", "early", "intermediate")


def write_healthy(root: Path, n_train: int, n_val: int) -> Path:
    """Healthy phantoms (default 1.4 x 1.4 x 2.5 mm grid) as a datalist; reused when present."""
    datalist = root / "datalist.json"
    if datalist.exists():
        return datalist
    entries: dict[str, list] = {"training": [], "validation": []}
    for i in range(n_train + n_val):
        ct, organs, _ = make_abdomen(seed=100 + i)
        image = save_volume(ct, root / f"healthy{i}" / "image.nii.gz")
        label = save_volume(organs, root / f"healthy{i}" / "label.nii.gz")
        key = "training" if i < n_train else "validation"
        entries[key].append({"image": str(image), "label": str(label)})
    datalist.write_text(json.dumps(entries, indent=1))
    return datalist


def write_eval(root: Path, n_cases: int, method: str) -> tuple[Path, Path]:
    """Phantoms carrying ``method`` tumors of mixed stages: images/ and labels/ by case id."""
    images, labels = root / "images", root / "labels"
    if images.exists() and len(list(images.iterdir())) == n_cases:
        return images, labels
    for i in range(n_cases):
        ct, organs, _ = make_abdomen(seed=500 + i)
        for attempt in range(5):
            specs = [TumorSpec(organ="liver", stage=s, method=method, seed=1000 * attempt + 10 * i + k)
                     for k, s in enumerate(EVAL_STAGES[: 2 + i % 3])]
            try:
                result = synthesize(ct, organs, specs, labels="totalseg", case_id=f"eval{i}")
                break
            except TumorSynthError:
                continue
        else:
            raise SystemExit(f"could not place {method} tumors in eval phantom {i}")
        save_volume(result.image, images / f"eval{i}.nii.gz", synthetic=True)
        save_volume(result.labels, labels / f"eval{i}.nii.gz")
    return images, labels


def quiet() -> EventStream:
    return EventStream("none", show_bar=False)


def speed(datalist: Path, out: Path, method: str, steps: int) -> dict[str, float]:
    """Steps/s and synthesis share of ``steps`` steps of the default CPU setting."""
    shutil.rmtree(out / f"speed-{method}", ignore_errors=True)
    cfg = TrainConfig(data=str(datalist), out=str(out / f"speed-{method}"), method=method, max_steps=steps,
                      val_every=0, ckpt_every=10**6, device="cpu", warmup_steps=1)   # default loader workers
    result = train(cfg, quiet())
    stats = result.synthesis
    return {"steps_per_s": result.step / result.seconds, "step_s": result.seconds / result.step,
            "data_s": result.timing["data_s"] / result.step, "compute_s": result.timing["compute_s"] / result.step,
            "synthesis_share": stats["seconds"] / result.seconds,
            "synthesis_s_per_tumor": stats["seconds"] / max(1, stats["samples"] - stats["skipped_real_tumor"]),
            "tumors": stats["applied"], "failed": stats["failed"]}


def long_run(datalist: Path, out: Path, minutes: float, steps_per_s: float, eval_dir: tuple[Path, Path],
             steps: int | None = None, setting: dict | None = None) -> dict:
    """Train ~``minutes`` (or ``steps``, capped by ``minutes``) with online handcrafted tumors,
    then segment and evaluate. The cosine schedule spans the planned steps."""
    from TumorSynthLib.segmentation.evaluate import evaluate_predictions
    from TumorSynthLib.segmentation.infer import load_segmentation_model, segment_volume
    from TumorSynthLib.core.volume_io import load_volume

    import torch

    shutil.rmtree(out / "long", ignore_errors=True)
    max_steps = steps or max(20, int(steps_per_s * minutes * 60))   # the time budget caps it
    cfg = TrainConfig(data=str(datalist), out=str(out / "long"), method="handcrafted", max_steps=max_steps,
                      max_minutes=minutes, val_every=max(10, max_steps // 2), ckpt_every=100,
                      workers=1, device="cpu", prob=0.7, **(setting or {}))
    t0 = time.monotonic()
    result = train(cfg, EventStream("none", log_path=out / "long" / "events.jsonl"))
    train_s = time.monotonic() - t0
    model = load_segmentation_model(result.best or result.last, torch.device("cpu"))
    preds = out / "long" / "predictions"
    images, labels = eval_dir
    for image_path in sorted(images.iterdir()):
        pred, _ = segment_volume(model, load_volume(image_path))
        save_volume(pred, preds / image_path.name)
    summary = evaluate_predictions(preds, labels, out / "long" / "evaluation", organ="liver",
                                   gt_labels="totalseg", images=images)
    return {"steps": result.step, "train_minutes": train_s / 60, "stopped": result.stopped,
            "best_val_tumor_dsc": result.best_metric, "summary": summary}


def print_long(res: dict) -> None:
    s = res["summary"]
    fmt = lambda v: "n/a" if v is None else f"{v:.3f}"  # noqa: E731
    print(f"\nlonger run ({res['setting']['spacing_mm']} mm, {res['setting']['patch']}^3 patches): "
          f"{res['steps']} steps in {res['train_minutes']:.1f} min ({res['stopped']}), "
          f"best validation tumor DSC {fmt(res['best_val_tumor_dsc'])}")
    print(f"evaluation on {s['n_cases']} phantoms with cellular tumors ({s['n_ref_tumors']} tumors):")
    print(f"  tumor DSC {fmt(s['tumor_dsc']['mean'])} (median {fmt(s['tumor_dsc']['median'])}), "
          f"NSD@2mm {fmt(s['tumor_nsd']['mean'])}, organ DSC {fmt(s['organ_dsc']['mean'])}")
    print(f"  sensitivity {fmt(s['sensitivity'])}, false positives / case {fmt(s['false_positives_per_case'])}")
    for name, b in s["by_size"].items():
        print(f"    {name:>6} mm: {b['detected']}/{b['n_tumors']} detected "
              f"(sensitivity {fmt(b['sensitivity'])}), {b['false_positives']} false positives")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=15.0, help="budget of the longer run")
    parser.add_argument("--speed-steps", type=int, default=12, help="steps per speed measurement")
    parser.add_argument("--long-steps", type=int, default=None,
                        help="planned steps of the longer run (default: measured speed x --minutes)")
    parser.add_argument("--spacing", type=float, default=1.5, help="longer run: voxel size mm (default 1.5)")
    parser.add_argument("--patch", type=int, default=64, help="longer run: patch side (default 64)")
    parser.add_argument("--train-cases", type=int, default=6)
    parser.add_argument("--val-cases", type=int, default=2)
    parser.add_argument("--eval-cases", type=int, default=4)
    parser.add_argument("--skip-long", action="store_true", help="only the speed figures")
    parser.add_argument("--out", type=Path, default=None, help="work folder (default: a temp folder)")
    args = parser.parse_args(argv)
    out = args.out or Path(tempfile.mkdtemp(prefix="bench_training_"))
    print(f"work folder: {out}")
    t0 = time.monotonic()
    datalist = write_healthy(out / "healthy", args.train_cases, args.val_cases)
    print(f"phantoms ready in {time.monotonic() - t0:.0f} s")

    methods = []
    for name, entry in method_entries().items():
        if entry["available"]:
            methods.append(name)
        else:
            print(f"  {name}: not available ({entry['reason']})")
    print("\ndefault CPU setting: UNet (16, 32, 64, 128), 64^3 patches at 1.5 mm, 2 patches/step, prob 0.5")
    print(f"{'method':<12} {'steps/s':>8} {'s/step':>7} {'data s':>7} {'model s':>8} {'synthesis share':>16} "
          f"{'s/tumor':>8}")
    figures = {}
    for name in methods:
        f = speed(datalist, out, name, args.speed_steps)
        figures[name] = f
        flag = " (target < 10 %)" if name == "handcrafted" else ""
        print(f"{name:<12} {f['steps_per_s']:>8.3f} {f['step_s']:>7.2f} {f['data_s']:>7.2f} {f['compute_s']:>8.2f} "
              f"{100 * f['synthesis_share']:>15.1f}% "
              f"{f['synthesis_s_per_tumor']:>8.3f}{flag}")
    results = {"speed": figures}
    if not args.skip_long:
        method = "cellular" if "cellular" in methods else "handcrafted"
        eval_dir = write_eval(out / f"eval-{method}", args.eval_cases, method)
        setting = {"spacing_mm": args.spacing, "patch": args.patch}
        res = long_run(datalist, out, args.minutes, figures["handcrafted"]["steps_per_s"], eval_dir,
                       args.long_steps, setting)
        res["setting"] = setting
        print_long(res)
        results["long"] = {k: v for k, v in res.items()}
    (out / "bench_training.json").write_text(json.dumps(results, indent=1, default=str))
    print(f"\nfigures written to {out / 'bench_training.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
