"""``tumorsynth evaluate``: score predicted labelmaps against references."""
from __future__ import annotations

import argparse
from typing import Any

from ..anatomy.organs import canonical_organ
from ..core.events import event_session
from ..segmentation.evaluate import evaluate_predictions
from .common import EXIT_OK, command_parser, finite_float

EPILOG = """metrics: tumor DSC, tumor NSD at --tolerance-mm (2 mm, spacing aware), organ DSC (organ
with its tumors), tumor-wise sensitivity and false positives by reference diameter (< 10, 10-20,
20-50, > 50 mm). A reference tumor (26-connected component) is detected when a predicted tumor
component (after removing components below --min-radius-mm) overlaps it by >= 1 voxel; a
predicted component touching no reference tumor is a false positive.

outputs in --out: cases.csv, tumors.csv, summary.json, sensitivity_by_size.png, dsc_per_case.png,
worst_cases.png.

examples:
  tumorsynth evaluate --pred pred.nii.gz --gt label.nii.gz --out eval/
  tumorsynth evaluate --pred preds/ --gt labelsTs/ --organ pancreas --images imagesTs/ --out eval/"""


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    parser = command_parser(
        subparsers, "evaluate", help="score predicted labelmaps against references",
        description="Tumor and organ Dice, surface Dice and size-stratified detection of "
                    "predicted labelmaps (files or folders matched by case id).",
        epilog=EPILOG, run=run,
    )
    p = parser.add_argument
    p("--pred", required=True, help="predicted labelmap, or folder of them")
    p("--gt", required=True, help="reference labelmap, or folder of them (same case ids)")
    p("--out", required=True, help="folder for the CSV, JSON and PNG files")
    p("--organ", default="liver", help="organ of the task (default liver)")
    p("--labels", default="auto", help="convention of --gt (auto, totalseg, msd, lits, kits, binary)")
    p("--pred-labels", default="auto", help="convention of --pred (default auto; segment writes msd-style 0/1/2)")
    p("--images", default=None, help="CT file or folder, drawn under the worst-case montage")
    p("--min-radius-mm", type=finite_float, default=3.0, help="predicted components below this are ignored")
    p("--tolerance-mm", type=finite_float, default=2.0, help="NSD tolerance in mm (default 2)")
    return parser


def run(args: argparse.Namespace) -> int:

    with event_session(args.events, desc="evaluate") as events:
        summary = evaluate_predictions(
            args.pred, args.gt, args.out, organ=canonical_organ(args.organ), gt_labels=args.labels,
            pred_labels=args.pred_labels, images=args.images, min_radius_mm=args.min_radius_mm,
            tolerance_mm=args.tolerance_mm, events=events)
        dsc, sens = summary["tumor_dsc"]["mean"], summary["sensitivity"]
        events.log(f"{summary['n_cases']} case(s): tumor DSC "
                   f"{'n/a' if dsc is None else f'{dsc:.3f}'}, sensitivity "
                   f"{'n/a' if sens is None else f'{sens:.3f}'}, false positives "
                   f"{summary['false_positives']}; files in {args.out}")
    return EXIT_OK
