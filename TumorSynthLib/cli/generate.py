"""``tumorsynth generate``: synthetic tumors for every healthy case of a dataset (batch)."""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from ..core.errors import InputError
from ..core.events import event_session
from ..datasets.generate import GenerateConfig, generate, parse_shard, parse_stage_mix
from .common import EXIT_FAILURE, EXIT_OK, command_parser, finite_float

EPILOG = """input (--input): a folder of image/label pairs (imagesTr/+labelsTr/, images/+labels/, one
folder per case with image.nii.gz + label.nii.gz, NAME.nii.gz + NAME_label.nii.gz) or a datalist
JSON {"training": [{"image", "label"}]}. Labels of any convention (--labels auto guesses:
totalseg, msd, lits, kits, binary). Only healthy cases get tumors: a case whose label already
holds the organ's tumor id (a real tumor), or lacks the organ, is skipped and listed.

outputs in --out (labels keep the input's convention, tumor ids added; every image is marked
synthetic): --layout folders: <case>_v<variant>/image.nii.gz, label.nii.gz, report.json;
--layout flat: imagesTr/<case>_v<variant>.nii.gz, labelsTr/..., reports/...; always
dataset.json (a datalist for `tumorsynth train --data`), manifest.csv and summary.json
(summary-shard-I-of-N.json with --shard). Outputs already finished are skipped, so an
interrupted run resumes by running the same command again. Each output depends only on
(--seed, case, variant): shards, workers and reruns give identical files. Exit code 1 when
any case failed (reasons in the summary).

quality filter (FreeTumor): with --quality MODEL each tumor is kept when the segmentation model
finds at least --threshold of it (P = |tumor AND predicted tumor| / |tumor|), else redrawn
(up to --quality-tries draws; the best is kept and report.json says so).

examples:
  tumorsynth generate --input healthy/ --organ liver --method handcrafted --per-case 3 --out synth/
  tumorsynth generate --input datalist.json --organ pancreas --method cellular \\
      --stage-mix early=0.6,intermediate=0.3,advanced=0.1 --tumors-per-image 2 --workers 2 --out synth/
  tumorsynth generate --input healthy/ --organ liver --method handcrafted --shard 0/4 --out synth/
      (run 1/4, 2/4 and 3/4 elsewhere, same --out: together they equal one unsharded run)
  tumorsynth generate --input healthy/ --organ liver --method handcrafted \\
      --quality runs/liver1/best.pt --threshold 0.7 --out synth/"""


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    parser = command_parser(
        subparsers, "generate", help="add synthetic tumors to every healthy case of a dataset",
        description="Batch synthesis: for each healthy case of a dataset, write --per-case "
                    "variants with synthetic tumors, a datalist and a manifest.",
        epilog=EPILOG, run=run,
    )
    p = parser.add_argument
    p("--input", required=True, type=Path, help="folder of image/label pairs or a datalist JSON")
    p("--out", required=True, type=Path, help="output folder (created; reruns resume)")
    p("--organ", default="liver", help="organ receiving tumors: liver, pancreas, kidney (default liver)")
    p("--method", default="handcrafted", help="synthesis method (default handcrafted; see `tumorsynth info`)")
    p("--stage-mix", default=None, metavar="STAGE=W,...",
      help="stage weights summing to 1 (default early=0.8,intermediate=0.1,advanced=0.1)")
    p("--per-case", type=int, default=1, metavar="N", help="variants per case (default 1)")
    p("--tumors-per-image", type=int, default=1, metavar="M", help="tumors in each variant (default 1)")
    p("--workers", type=int, default=1, metavar="K", help="parallel processes (default 1)")
    p("--shard", default=None, metavar="I/N", help="do only part I of N of the work (I in 0..N-1)")
    p("--quality", default=None, metavar="MODEL",
      help="segmentation checkpoint or model id used as quality filter (default: none)")
    p("--threshold", type=finite_float, default=None, help="quality threshold P (default 0.7; needs --quality)")
    p("--quality-tries", type=int, default=3, help="draws per tumor with --quality (default 3)")
    p("--labels", default="auto", help="label convention of the input: auto (default), totalseg, msd, "
                                       "lits, kits, binary")
    p("--layout", default="folders", choices=("folders", "flat"),
      help="output layout (default folders; flat = imagesTr/ + labelsTr/)")
    return parser


def config_from_args(args: argparse.Namespace) -> Any:
    """A checked ``GenerateConfig`` from the parsed flags."""

    if args.threshold is not None and args.quality is None:
        raise InputError("--threshold needs --quality MODEL (the segmentation model that scores tumors)")
    return GenerateConfig(
        input=str(args.input), out=str(args.out), organ=args.organ, method=args.method,
        stage_mix=parse_stage_mix(args.stage_mix), per_case=args.per_case,
        tumors_per_image=args.tumors_per_image, workers=args.workers, shard=parse_shard(args.shard),
        quality=args.quality, threshold=0.7 if args.threshold is None else args.threshold,
        quality_tries=args.quality_tries, labels=args.labels, layout=args.layout, seed=args.seed,
        device=args.device,
    ).check()


def run(args: argparse.Namespace) -> int:

    config = config_from_args(args)
    with event_session(args.events, desc="generate") as events:
        summary = generate(config, events)
        events.log(summary_text(summary))
    return EXIT_FAILURE if summary["failed"] else EXIT_OK


def summary_text(summary: dict[str, Any]) -> str:
    """The summary for people (stderr)."""
    i, n = summary["shard"]
    lines = [f"generated {summary['generated']} case(s) with {summary['tumors']} tumor(s), "
             f"{summary['resumed']} already finished, {len(summary['skipped'])} skipped, "
             f"{len(summary['failed'])} failed" + (f" (shard {i}/{n})" if n > 1 else "")]
    per_case = summary.get("seconds_per_generated_case")
    if per_case is not None:
        lines.append(f"  {per_case:.2f} s per generated case")
    q = summary.get("quality")
    if q and q["tumors"]:
        lines.append(f"  quality filter: {q['passed']}/{q['tumors']} tumors passed P >= {q['threshold']:g} "
                     f"({q['checks']} checks, {q['seconds_per_check']:.3f} s each)")
    reasons: dict[str, list[str]] = {}
    for kind in ("skipped", "failed"):
        for entry in summary[kind]:
            reasons.setdefault(f"{kind}: {entry['reason']}", []).append(entry["name"])
    for reason, names in reasons.items():
        shown = ", ".join(names[:4]) + (f" (+{len(names) - 4})" if len(names) > 4 else "")
        lines.append(f"  {reason} [{shown}]")
    lines.append(f"  datalist: {summary.get('datalist')}  manifest: {summary.get('manifest')}")
    return "\n".join(lines)
