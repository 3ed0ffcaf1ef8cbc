"""``tumorsynth export-dicom``: a synthetic case as a DICOM CT series plus a DICOM SEG."""
from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from ..core.errors import InputError
from ..core.events import event_session
from ..core.volume_io import load_volume
from ..datasets.dicom_export import SeriesText, export_case
from ..datasets.dicom_segments import segments_from_labels
from .common import command_parser

EPILOG = """input: a case folder written by `tumorsynth synth`, `generate` (folders layout) or `demo`
(image.nii.gz, label.nii.gz, report.json), or --image / --labels [--report] files.

output in --out:
  ct/IM0001.dcm ...   the CT series (int16 HU; SeriesDescription "SYNTHETIC TUMOR - not for
                      diagnosis", ImageComments, ImageType DERIVED\\SECONDARY, new UIDs, and
                      "SYNTHETIC" burned into the top-left corner unless --no-burn-in)
  seg/tumors.dcm      DICOM SEG, one segment per tumor (SNOMED CT: Neoplasm of liver /
                      pancreas / kidney), referencing the CT series
  export.json         provenance (UIDs, segments, source files)
Import the --out folder in Slicer (DICOM module > Import) or a PACS viewer: both series load,
the SEG as a segmentation over the CT. The same case and --seed give the same files.

examples:
  tumorsynth export-dicom --case demo-output/early --out teaching/early-dicom
  tumorsynth export-dicom --image case1/image.nii.gz --labels case1/label.nii.gz \\
      --report case1/report.json --out case1-dicom --no-burn-in"""


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    parser = command_parser(
        subparsers, "export-dicom", help="write a synthetic case as DICOM CT + SEG",
        description="Export a synthetic case as a DICOM CT series marked synthetic and its tumors "
                    "as a DICOM Segmentation object, for teaching files, PACS and Slicer.",
        epilog=EPILOG, run=run,
    )
    p = parser.add_argument
    p("--case", type=Path, help="case folder with image.nii.gz, label.nii.gz and report.json")
    p("--image", type=Path, help="the synthetic CT (instead of --case)")
    p("--labels", type=Path, help="its labelmap with the tumors (instead of --case)")
    p("--report", type=Path, help="its report.json (tumor organs, sizes; optional)")
    p("--out", required=True, type=Path, help="output folder (created)")
    p("--no-burn-in", action="store_true", help="do not burn 'SYNTHETIC' into the pixels")
    p("--no-seg", action="store_true", help="write the CT series only")
    p("--patient-name", default="SYNTHETIC^TUMORSYNTH", help="PatientName (default SYNTHETIC^TUMORSYNTH)")
    return parser


def case_files(args: argparse.Namespace) -> tuple[Path, Path | None, Path | None]:
    """(image, labels or None, report or None) from --case or --image/--labels/--report."""
    if args.case is not None:
        if args.image or args.labels:
            raise InputError("give either --case or --image/--labels, not both")
        report = args.case / "report.json"
        return args.case / "image.nii.gz", args.case / "label.nii.gz", report if report.is_file() else None
    if args.image is None:
        raise InputError("give --case DIR (a synth/demo case folder) or --image CT [--labels LABELS]")
    if args.labels is None and not args.no_seg:
        raise InputError("--image needs --labels (the tumors for the SEG), or add --no-seg")
    return args.image, args.labels, args.report


def run(args: argparse.Namespace) -> int:

    image_path, labels_path, report_path = case_files(args)
    with event_session(args.events, total=2, desc="export-dicom") as events:
        events.start(0, command="export-dicom")
        image = load_volume(image_path)
        report = json.loads(report_path.read_text(encoding="utf-8")) if report_path else {}
        segments = []
        if not args.no_seg and labels_path is not None:
            labels = load_volume(labels_path)
            segments = segments_from_labels(labels, report.get("tumors") or [], report.get("label_names"))
        events.progress(1, message="case read")
        text = SeriesText(burn_in=not args.no_burn_in, patient_name=args.patient_name)
        provenance = {"synthetic": True, "command": ["tumorsynth", *getattr(args, "argv", [])],
                      "source": {"image": str(image_path), "labels": None if labels_path is None else str(labels_path),
                                 "report": None if report_path is None else str(report_path)},
                      "source_marked_synthetic": bool(image.metadata.get("synthetic") or report.get("synthetic"))}
        result = export_case(image, segments, args.out, text=text, seed=args.seed,
                             with_seg=not args.no_seg, provenance=provenance)
        events.log(f"wrote {len(result.ct_files)} CT slices to {args.out / 'ct'}"
                   + (f" and {len(result.segments)} segment(s) to {result.seg_file}" if result.seg_file else ""))
        events.done(2, out=str(args.out), series_uid=result.series_uid, seg=str(result.seg_file or ""))
    return 0
