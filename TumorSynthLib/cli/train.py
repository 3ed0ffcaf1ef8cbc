"""``tumorsynth train``: train a tumor segmentation model with tumors synthesised online."""
from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

from ..core.errors import InputError
from ..core.events import event_session
from ..core.files import prepare_output_folder
from ..segmentation.config import CONTRAST_DRAWS, TrainConfig, resumed_contrast_draw, task_methods
from ..segmentation.tasks import task_name
from ..synthesis.registry import provider, resolve
from .common import EXIT_INTERRUPTED, EXIT_OK, command_parser, finite_float

EPILOG = """data (--data): a folder of image/label pairs (imagesTr/+labelsTr/, images/+labels/, one
folder per case with image.nii.gz + label.nii.gz, or NAME.nii.gz + NAME_label.nii.gz) or a
MONAI datalist JSON {"training": [{"image", "label"}], "validation": [...]}. Labels of any
convention (--labels) are mapped to {0 background, 1 organ, 2 tumor}. Healthy cases (no tumor
id) receive synthetic tumors online (--method, --prob, --stage-mix); cases with real tumors are
used as they are. Pairs whose image and label grids differ, and labels without the organ, are
SKIPPED with a warning (listed in the 'start' event); no usable case at all is an error.

outputs in --out: last.pt (every --ckpt-every steps and on Ctrl-C / SIGTERM), best.pt (best
validation tumor DSC), config.json, events.jsonl. Ctrl-C or SIGTERM saves last.pt and exits
with code 130; --resume continues from last.pt with the same step count and sample order.

examples:
  tumorsynth train --data healthy_livers/ --organ liver --method handcrafted --out runs/liver1
  tumorsynth train --data datalist.json --organ pancreas --method cellular --max-minutes 60 \\
      --events jsonl --out runs/panc
  tumorsynth train --data healthy_livers/ --organ liver --method handcrafted --resume --out runs/liver1
  tumorsynth train --data totalseg_cases/ --organ liver,pancreas,kidney --method handcrafted,cellular \
      --spacing 2 --out runs/abdomen          (one model for the three organs, as the default model)
  tumorsynth train --data healthy_livers/ --organ liver --quality default --out runs/liver-q
      (FreeTumor filter: keep only synthetic tumors the shipped model finds)
  torchrun --nproc-per-node 4 -m TumorSynthLib.cli train --data ... --out runs/ddp"""


def _ints(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(v) for v in text.split(",") if v.strip())
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got '{text}'") from exc


def _contrast(text: str) -> tuple[float, float]:
    try:
        lo, hi = (float(v) for v in text.split(":"))
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"expected LO:HI (two numbers, e.g. 0.5:1.2), got '{text}'") from exc
    return lo, hi


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    parser = command_parser(
        subparsers, "train", help="train a tumor segmentation model (synthetic tumors online)",
        description="Train a 3-class (background, organ, tumor) segmentation model on CT, adding "
                    "synthetic tumors to healthy cases as they are drawn.",
        epilog=EPILOG, run=run,
    )
    add_train_flags(parser)
    return parser


def add_train_flags(parser: argparse.ArgumentParser) -> None:
    p = parser.add_argument
    p("--data", required=True, help="folder of image/label pairs or a datalist JSON")
    p("--out", required=True, help="run folder (checkpoints, config, events)")
    p("--organ", default="liver",
      help="organ of the task: liver, pancreas, kidney, or several as one task, e.g. "
           "liver,pancreas,kidney (label 1 = any of them; needs totalseg labels) (default liver)")
    p("--method", default="handcrafted",
      help="synthesis method for healthy cases, or several used equally often, e.g. "
           "handcrafted,cellular (default handcrafted)")
    p("--labels", default="auto", help="label convention of the data: auto, totalseg, msd, lits, kits, binary")
    p("--model", default="unet", help="unet (default), swinunetr or dynunet")
    p("--channels", type=_ints, default=None, help="feature widths, e.g. 16,32,64,128 (SwinUNETR: 24)")
    p("--max-steps", type=int, default=2000, help="optimizer steps (default 2000)")
    p("--max-minutes", type=finite_float, default=None, help="stop (and save) after this many minutes")
    p("--fit-schedule", action="store_true",
      help="with --max-minutes: measure the speed over the first steps, then set --max-steps so the "
           "learning-rate schedule ends when the time is up (the new step count is saved; pass it "
           "as --max-steps with --resume)")
    p("--stop-at", type=int, default=None,
      help="save last.pt and stop at this step without changing the schedule (continue with --resume)")
    p("--resume", action="store_true", help="continue the run in --out from last.pt")
    p("--spacing", type=finite_float, default=1.5, help="isotropic training voxel size in mm (default 1.5)")
    p("--patch", type=int, default=None, help="patch side in voxels (default 64 on CPU, 96 on GPU)")
    p("--batch-size", type=int, default=1, help="cases per step (default 1)")
    p("--samples-per-case", type=int, default=2, help="patches drawn per case (default 2)")
    p("--tumor-weight", type=finite_float, default=2.0,
      help="patch centres are drawn on background, each organ and tumors in the ratio 1 : 1 : W "
           "(default 2; with several organs the tumors of each organ get W / n)")
    p("--tumor-contrast", type=_contrast, default=None, metavar="LO:HI",
      help="augmentation: in half of the organs with synthetic tumors, scale each tumor's mean "
           "difference to the organ median by a factor drawn log-uniformly in [LO, HI], e.g. "
           "0.25:1.3, keeping its grain (never below 15 HU; default: tumors as the methods make them)")
    p("--tumor-contrast-draw", choices=CONTRAST_DRAWS, default=None,
      help="how that factor is drawn: log-uniform (uniform in log f: faint tumors more often) or "
           "uniform (default: log-uniform; --resume: the run's own, uniform for runs made before 2026-12-05)")
    p("--lr", type=finite_float, default=1e-3, help="peak learning rate of AdamW (default 1e-3)")
    p("--warmup-steps", type=int, default=None, help="linear warm-up steps (default 5%% of --max-steps)")
    p("--val-every", type=int, default=250, help="validate every N steps (0: never; default 250)")
    p("--ckpt-every", type=int, default=50, help="write last.pt every N steps (default 50)")
    p("--workers", type=int, default=1, help="data loading processes (default 1; 0 = in-process)")
    p("--prob", type=finite_float, default=0.5, help="chance a healthy sample gets tumors (default 0.5)")
    p("--stage-mix", default="early=0.8,intermediate=0.1,advanced=0.1",
      help="stage weights of the synthetic tumors (default early=0.8,intermediate=0.1,advanced=0.1)")
    p("--tumors-per-image", type=_ints, default=(1,), help="tumors per sample: N or LOW,HIGH (default 1)")
    p("--synth-reuse", type=int, default=1, metavar="R",
      help="keep each case's synthetic tumors for R epochs, drawing new patches from it every time "
           "(synthesis costs 1/R per step; default 1: new tumors every time)")
    p("--cache-rate", type=finite_float, default=1.0, help="share of preprocessed cases kept in RAM (default 1)")
    p("--quality", default=None, metavar="MODEL",
      help="keep only synthetic tumors this segmentation model finds (FreeTumor quality filter): "
           "a checkpoint, a model id, or `default` (the shipped liver/pancreas/kidney model)")
    p("--threshold", type=finite_float, default=0.7, help="quality filter: minimum share found (default 0.7)")


def config_from_args(args: argparse.Namespace) -> Any:
    """The TrainConfig the flags describe (device-dependent defaults resolved)."""
    from ..segmentation.device import resolve_device
    from ..transforms import parse_stage_mix

    device = resolve_device(args.device)
    patch = args.patch or (96 if device.type == "cuda" else 64)
    tumors = tuple(args.tumors_per_image)
    if len(tumors) not in (1, 2):
        raise InputError("--tumors-per-image takes N or LOW,HIGH")
    return TrainConfig(
        data=str(args.data), out=str(args.out), organ=args.organ, method=args.method,
        labels=args.labels, model=args.model, channels=args.channels, spacing_mm=args.spacing,
        patch=patch, batch_size=args.batch_size, samples_per_case=args.samples_per_case,
        tumor_weight=args.tumor_weight, tumor_contrast=args.tumor_contrast,
        tumor_contrast_draw=args.tumor_contrast_draw or (resumed_contrast_draw(args.out) if args.resume else None)
        or CONTRAST_DRAWS[0], lr=args.lr,
        warmup_steps=args.warmup_steps, max_steps=args.max_steps, max_minutes=args.max_minutes,
        fit_schedule=args.fit_schedule,
        stop_at=args.stop_at,
        val_every=args.val_every, ckpt_every=args.ckpt_every, seed=args.seed, device=args.device,
        workers=args.workers, cache_rate=args.cache_rate, synth_reuse=args.synth_reuse, prob=args.prob,
        stage_mix=parse_stage_mix(args.stage_mix), num_tumors=(tumors[0], tumors[-1]), resume=args.resume,
        quality_model=args.quality, quality_threshold=args.threshold,
    )


def run(args: argparse.Namespace) -> int:
    out = Path(args.out).expanduser()
    is_main = int(os.environ.get("RANK", "0")) == 0
    if is_main:
        prepare_output_folder(out)      # before the event log is opened in it
    with event_session(args.events, desc="train", enabled=is_main,
                       log_path=out / "events.jsonl" if is_main else None) as events:
        try:
            args.organ = task_name(args.organ)
            for method in task_methods(args.method):
                for kind, name in zip(("geometry", "appearance"), resolve(method)):
                    provider(kind, name)
            cfg = config_from_args(args)
            from ..segmentation.train import train

            result = train(cfg, events)
        except Exception as exc:  # the CLI prints the error (and its event); keep it in the log
            events.error(str(exc), error=type(exc).__name__, log_only=True)
            raise
        if result.stopped == "signal":
            events.log(f"stopped at step {result.step}; last.pt saved; continue with --resume")
            return EXIT_INTERRUPTED
    return EXIT_OK
