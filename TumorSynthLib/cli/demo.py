"""``tumorsynth demo``: the built-in phantom with one case per stage, three tumors each.

Layout of ``--out`` (decided here and documented in the README):

    phantom/ct.nii.gz, phantom/organs.nii.gz   the healthy procedural abdomen (input of the cases)
    tiny/ early/ intermediate/ advanced/       one case per stage: a liver, a pancreas and a
                                               kidney tumor at sampled places (no click), each
                                               with image, label, report.json and preview.png
    teaching/early-dicom/                      the "early" case as a DICOM CT series marked
                                               synthetic (burned-in mark) + a DICOM SEG of its
                                               three tumors (``datasets/dicom_export.py``)
    index.json                                 what is where, with each tumor's size and centre

One case per stage keeps the tumors of a case in different organs, so they never overlap, and
lets a reader compare the stages side by side. The phantom CT is rounded to whole HU and stored
as int16, as scanners store CT (and the files are three times smaller than float32). Everything
is seeded: the same ``--seed`` gives the same bytes.
"""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import numpy as np

from ..anatomy.organs import STAGES
from ..anatomy.site import TumorSpec
from ..core.events import event_session
from ..core.volume_io import save_volume
from ..datasets.dicom_export import SeriesText, export_case
from ..datasets.dicom_segments import segments_from_instances
from ..phantom import make_abdomen
from ..synthesis.api import synthesize
from .common import command_parser, write_json
from .synth import summary, write_case

EPILOG = """examples:
  tumorsynth demo --out demo-output/
  tumorsynth demo --out demo-output/ --seed 1 --method cellular
  tumorsynth demo --out quick/ --small        (coarser phantom, for a quick look)

then open demo-output/<stage>/preview.png, or load image.nii.gz and label.nii.gz in a viewer."""

DEMO_ORGANS = ("liver", "pancreas", "kidney")
#: Diameter (mm) per stage and organ, inside each stage's range except the advanced pancreas
#: tumor: the phantom's pancreas holds ~36 ml and a request above 0.8 x the organ volume is
#: refused, so it gets 35 mm (the report carries a warning). The pancreas is 15-25 mm thick,
#: so its larger tumors are limited by the organ.
DEMO_DIAMETERS_MM = {
    "tiny": {"liver": 6.0, "pancreas": 6.0, "kidney": 6.0},
    "early": {"liver": 15.0, "pancreas": 12.0, "kidney": 15.0},
    "intermediate": {"liver": 35.0, "pancreas": 22.0, "kidney": 30.0},
    "advanced": {"liver": 70.0, "pancreas": 35.0, "kidney": 50.0},
}
#: The coarse phantom of ``--small`` (about 8x fewer voxels than the default).
SMALL_PHANTOM = {"shape": (128, 128, 48), "spacing": (2.8, 2.8, 5.0)}


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    parser = command_parser(
        subparsers, "demo", help="make example cases on the built-in phantom",
        description="Build the procedural abdominal CT phantom and put a liver, a pancreas and "
                    "a kidney tumor into it for each stage (tiny, early, intermediate, "
                    "advanced): one folder per stage with image, labels, report and preview.",
        epilog=EPILOG, run=run,
    )
    parser.add_argument("--out", required=True, type=Path, help="output folder (created)")
    parser.add_argument("--method", default="handcrafted",
                        help="synthesis method for every tumor (default: handcrafted)")
    parser.add_argument("--small", action="store_true",
                        help="use a coarser phantom (128x128x48 voxels) for a quicker run")
    return parser


def demo_specs(stage: str, method: str, seed: int) -> list:

    return [TumorSpec(organ=organ, stage=stage, diameter_mm=DEMO_DIAMETERS_MM[stage][organ],
                      method=method, seed=seed) for organ in DEMO_ORGANS]


def run(args: argparse.Namespace) -> int:

    out: Path = args.out
    with event_session(args.events, total=2 + len(STAGES), desc="demo") as events:
        events.start(0, command="demo")
        ct, organs, label_names = make_abdomen(seed=args.seed, **(SMALL_PHANTOM if args.small else {}))
        ct = ct.with_array(np.rint(ct.array).astype(np.int16))  # whole HU, as scanners store CT
        phantom_dir = out / "phantom"
        save_volume(ct, phantom_dir / "ct.nii.gz", synthetic=True, description="phantom CT")
        save_volume(organs, phantom_dir / "organs.nii.gz", synthetic=True, description="phantom organs")
        events.progress(1, message="phantom built")
        index: dict[str, Any] = {
            "synthetic": True, "seed": args.seed, "method": args.method,
            "phantom": {"ct": "phantom/ct.nii.gz", "organs": "phantom/organs.nii.gz",
                        "shape": list(ct.shape), "spacing": [round(float(s), 4) for s in ct.spacing],
                        "label_names": {str(k): v for k, v in sorted(label_names.items())}},
            "cases": [],
        }
        for step, stage in enumerate(STAGES, start=2):
            result = synthesize(ct, organs, demo_specs(stage, args.method, args.seed), "totalseg",
                                case_id=f"demo-{stage}")
            case_dir = out / stage
            write_case(case_dir, result, command=["tumorsynth", *getattr(args, "argv", [])],
                       inputs={"image": "phantom/ct.nii.gz", "organs": "phantom/organs.nii.gz"},
                       extra={"demo_stage": stage})
            index["cases"].append(case_entry(stage, result.reports))
            events.log(summary(case_dir, result.reports))
            events.progress(step, message=f"case '{stage}' written")
            if stage == TEACHING_STAGE:
                index["teaching"] = write_teaching(out, stage, result, args)
        events.progress(2 + len(STAGES), message="teaching case written")
        write_json(out / "index.json", index)
        events.log(f"demo written to {out}/: phantom/, {', '.join(s + '/' for s in STAGES)} "
                   f"and index.json; look at {out / 'advanced' / 'preview.png'} first")
        events.done(2 + len(STAGES), out=str(out), index=str(out / "index.json"))
    return 0


TEACHING_STAGE = "early"


def write_teaching(out: Path, stage: str, result: Any, args: argparse.Namespace) -> dict[str, Any]:
    """``teaching/<stage>-dicom/``: the case as DICOM CT (marked synthetic) + SEG."""

    folder = out / "teaching" / f"{stage}-dicom"
    segments = segments_from_instances(result.tumor_instances, result.reports)
    exported = export_case(result.image, segments, folder, text=SeriesText(), seed=args.seed, provenance={
        "synthetic": True, "command": ["tumorsynth", *getattr(args, "argv", [])],
        "source": {"case": f"{stage}/", "note": "demo case on the procedural phantom"}})
    return {"folder": f"teaching/{stage}-dicom/", "ct": f"teaching/{stage}-dicom/ct/",
            "seg": f"teaching/{stage}-dicom/seg/tumors.dcm", "series_uid": exported.series_uid,
            "segments": [s["label"] for s in exported.segments]}


def case_entry(stage: str, reports: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "stage": stage,
        "folder": f"{stage}/",
        "files": ["image.nii.gz", "label.nii.gz", "report.json", "preview.png"],
        "tumors": [{"organ": r.get("organ"), "tumor_id": r.get("tumor_id"),
                    "diameter_mm": round(float(r.get("diameter_measured_mm") or 0.0), 2),
                    "centroid_ras": [round(float(v), 2) for v in (r.get("centroid_ras") or [])]}
                   for r in reports],
    }
