"""``tumorsynth segment``: apply a trained model to CT scans (organ + tumor labelmap + summary)."""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from ..core.errors import InputError
from .common import EXIT_OK, command_parser, write_json

EPILOG = """outputs: a labelmap on the input's own grid {0 background, 1 organ, 2 tumor} and a JSON
summary (tumor count, volumes in ml, equivalent and RECIST diameters in mm, centroids in RAS).
--out ending in .nii.gz / .nii / .nrrd: that file + the summary beside it (NAME.json);
otherwise a folder receiving CASE.nii.gz + CASE.json per input. Predicted tumors must touch the
organ (predicted, or --organs) and components below --min-radius-mm are removed.

models: `default` (used when --model is not given) is the shipped model for tumors of the liver,
pancreas and kidneys (label 1 = any of those organs); trained on synthetic tumors in phantoms
only, so treat its output on real scans as a research aid, not a diagnosis. Any checkpoint
written by `tumorsynth train`, or a model id of `tumorsynth models list`, works too.

examples:
  tumorsynth segment --image ct.nii.gz --out pred.nii.gz          (the default model)
  tumorsynth segment --model runs/liver1/best.pt --image ct.nii.gz --out pred.nii.gz
  tumorsynth segment --model liver-unet-1a2b3c4d --image scans/ --out preds/
  tumorsynth segment --model best.pt --image ct.nii.gz --organs organs.nii.gz --out pred/"""

_VOLUME_SUFFIXES = (".nii.gz", ".nii", ".nrrd")


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    parser = command_parser(
        subparsers, "segment", help="segment organ and tumors with a trained model",
        description="Sliding-window inference of a TumorSynth segmentation model; the output is "
                    "aligned with the input image.",
        epilog=EPILOG, run=run,
    )
    p = parser.add_argument
    p("--model", default="default",
      help="checkpoint (.pt) or a model id from `tumorsynth models list` (default: default, the "
           "shipped liver / pancreas / kidney tumor model)")
    p("--image", required=True, help="CT file, DICOM series folder, or folder of CT files")
    p("--organs", default=None, help="organ labelmap (file, or folder matched by case id) bounding tumors")
    p("--labels", default="auto", help="convention of --organs (auto, totalseg, msd, lits, kits, binary)")
    p("--out", required=True, help="output file (.nii.gz/.nrrd) or folder")
    p("--min-radius-mm", type=float, default=3.0, help="drop tumor components below this equivalent radius")
    p("--overlap", type=float, default=0.5, help="sliding-window overlap (default 0.5, Gaussian weights)")
    return parser


def image_inputs(image: Path) -> list[Path]:
    """The CT inputs: the folder's volume files, or the single file / DICOM folder."""
    from ..segmentation.datasets import is_volume_file

    if not image.exists():
        raise InputError(f"--image '{image}' does not exist")
    if image.is_dir():
        files = sorted(p for p in image.iterdir() if is_volume_file(p))
        return files or [image]
    return [image]


def output_paths(out: Path, case_id: str, batch: bool) -> tuple[Path, Path]:
    """(labelmap path, summary path) of one case."""
    if not batch and out.name.lower().endswith(_VOLUME_SUFFIXES):
        stem = out.name[: -len(next(s for s in _VOLUME_SUFFIXES if out.name.lower().endswith(s)))]
        return out, out.with_name(f"{stem}.json")
    if out.name.lower().endswith(_VOLUME_SUFFIXES):
        raise InputError(f"--out '{out}' is a file name but --image holds several scans; give a folder")
    return out / f"{case_id}.nii.gz", out / f"{case_id}.json"


def organs_for(organs: Path | None, case_id: str, batch: bool) -> Path | None:
    if organs is None:
        return None
    if not batch or organs.is_file():
        return organs
    from ..segmentation.datasets import case_id_of, is_volume_file

    matches = [p for p in organs.iterdir() if is_volume_file(p) and case_id_of(p) == case_id]
    if not matches:
        raise InputError(f"no organ labelmap for case '{case_id}' in '{organs}' (matched by file name)")
    return matches[0]


def run(args: argparse.Namespace) -> int:
    from ..core.events import event_session
    from ..segmentation.device import resolve_device
    from ..segmentation.infer import load_segmentation_model
    from ..core.model_registry import resolve_model

    with event_session(args.events, desc="segment") as events:
        inputs = image_inputs(Path(args.image).expanduser())
        loaded = load_segmentation_model(resolve_model(args.model), resolve_device(args.device))
        events.start(0, total=len(inputs), model=str(loaded.path), organ=loaded.organ)
        for i, path in enumerate(inputs, start=1):
            summary = segment_one(args, loaded, path, batch=len(inputs) > 1)
            events.progress(i, case_id=summary["case_id"], output=summary["output"],
                            tumor_count=summary["tumor_count"])
            events.log(f"{summary['case_id']}: {summary['tumor_count']} tumor(s), "
                       f"{summary['total_tumor_ml']:.2f} ml -> {summary['output']}")
        events.done(len(inputs), outputs=str(args.out))
    return EXIT_OK


def segment_one(args: argparse.Namespace, loaded: Any, path: Path, batch: bool) -> dict[str, Any]:
    """Segment one scan, write its labelmap and summary; returns the summary."""
    from ..segmentation.datasets import case_id_of
    from ..segmentation.infer import segment_volume
    from ..core.volume_io import ensure_not_overwriting, load_volume, save_volume

    case_id = case_id_of(path)
    label_path, summary_path = output_paths(Path(args.out).expanduser(), case_id, batch)
    organs = Path(args.organs).expanduser() if args.organs else None
    organ_path = organs_for(organs, case_id, batch)
    ensure_not_overwriting(label_path, path, organ_path)
    organ_vol = load_volume(organ_path) if organ_path else None
    labels, summary = segment_volume(loaded, load_volume(path), organ_vol, organs_convention=args.labels,
                                     min_radius_mm=args.min_radius_mm, overlap=args.overlap)
    save_volume(labels, label_path)
    summary.update(image=str(path), output=str(label_path), case_id=case_id)
    summary_path.parent.mkdir(parents=True, exist_ok=True)
    write_json(summary_path, summary)
    return summary
