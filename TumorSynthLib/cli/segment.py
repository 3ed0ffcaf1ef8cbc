"""``tumorsynth segment``: apply a trained model to CT scans (organ + tumor labelmap + summary)."""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from ..core.errors import InputError
from ..core.events import event_session
from ..core.model_registry import resolve_model
from ..core.volume_io import ensure_not_overwriting, load_volume, save_volume
from ..core.files import path_inside, prepare_output_folder, safe_name
from ..core.locks import folder_lock
from ..segmentation.datasets import case_id_of, case_name_of, is_volume_file
from .common import EXIT_OK, command_parser, finite_float, write_json

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
    p("--min-radius-mm", type=finite_float, default=None,
      help="drop tumor components below this equivalent radius in mm (default: the model's own, 3 mm or "
           "1.5 of its voxels, whichever is larger: 4.5 mm for the default model)")
    p("--overlap", type=finite_float, default=0.5, help="sliding-window overlap (default 0.5, Gaussian weights)")
    return parser


def image_inputs(image: Path) -> list[Path]:
    """The CT inputs: the folder's volume files, or the single file / DICOM folder."""

    if not image.exists():
        raise InputError(f"--image '{image}' does not exist")
    if image.is_dir():
        files = sorted(p for p in image.iterdir() if is_volume_file(p))
        return files or [image]
    return [image]


def case_names(inputs: list[Path]) -> list[str]:
    """Safe, distinct output names of the inputs (``files.safe_name`` of each case name)."""
    names = [safe_name(case_name_of(p), "case name") for p in inputs]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise InputError(f"several --image files give the case name(s) {', '.join(twice[:4])}; rename them "
                         "so that each scan has its own name")
    return names


def is_file_output(out: Path, batch: bool) -> bool:
    """True when --out names one labelmap file (not a folder)."""
    as_file = out.name.lower().endswith(_VOLUME_SUFFIXES)
    if as_file and batch:
        raise InputError(f"--out '{out}' is a file name but --image holds several scans; give a folder")
    return as_file


def output_paths(out: Path, case_id: str, batch: bool) -> tuple[Path, Path]:
    """(labelmap path, summary path) of one case."""
    if is_file_output(out, batch):
        stem = out.name[: -len(next(s for s in _VOLUME_SUFFIXES if out.name.lower().endswith(s)))]
        return out, out.with_name(f"{stem}.json")
    return path_inside(out, f"{case_id}.nii.gz"), path_inside(out, f"{case_id}.json")


def organs_for(organs: Path | None, case_id: str, batch: bool) -> Path | None:
    if organs is None:
        return None
    if not organs.exists():
        raise InputError(f"--organs '{organs}' does not exist")
    if not batch or organs.is_file():
        return organs

    matches = [p for p in organs.iterdir() if is_volume_file(p) and case_id_of(p) == case_id]
    if not matches:
        raise InputError(f"no organ labelmap for case '{case_id}' in '{organs}' (matched by file name)")
    return matches[0]


def lock_output(out: Path, batch: bool) -> Any:
    """Check that the outputs can be written and take the lock of the output folder (one
    ``segment`` per folder; a single output file is locked alone)."""
    if is_file_output(out, batch):
        if out.is_dir():
            raise InputError(f"--out '{out}' is a folder; give a file name ending in .nii.gz or a folder without a suffix")
        folder = prepare_output_folder(out.parent, "the folder of --out")
        return folder_lock(folder, f"tumorsynth segment --out {out}", key=f"segment-{safe_name(out.name)}")
    folder = prepare_output_folder(out)
    return folder_lock(folder, f"tumorsynth segment --out {out}")


def run(args: argparse.Namespace) -> int:
    from ..segmentation.device import resolve_device
    from ..segmentation.infer import load_segmentation_model

    if (args.min_radius_mm is not None and args.min_radius_mm < 0) or not 0.0 <= args.overlap < 1.0:
        raise InputError("--min-radius-mm must be >= 0 and --overlap in [0, 1)")
    out = Path(args.out).expanduser()
    inputs = image_inputs(Path(args.image).expanduser())
    batch = len(inputs) > 1
    names = case_names(inputs)
    organs = Path(args.organs).expanduser() if args.organs else None
    organ_paths = [organs_for(organs, name_of, batch) for name_of in (case_id_of(p) for p in inputs)]
    loaded = load_segmentation_model(resolve_model(args.model), resolve_device(args.device))
    with event_session(args.events, desc="segment") as events, lock_output(out, batch):
        events.start(0, total=len(inputs), model=str(loaded.path), organ=loaded.organ)
        for i, (path, name, organ_path) in enumerate(zip(inputs, names, organ_paths), start=1):
            summary = segment_one(args, loaded, path, name, organ_path, batch)
            events.progress(i, case_id=summary["case_id"], output=summary["output"],
                            tumor_count=summary["tumor_count"])
            events.log(f"{summary['case_id']}: {summary['tumor_count']} tumor(s), "
                       f"{summary['total_tumor_ml']:.2f} ml -> {summary['output']}")
        events.done(len(inputs), outputs=str(args.out))
    return EXIT_OK


def segment_one(args: argparse.Namespace, loaded: Any, path: Path, case_id: str, organ_path: Path | None,
                batch: bool) -> dict[str, Any]:
    """Segment one scan, write its labelmap and summary; returns the summary. The old summary
    goes first, so a crash never leaves a summary beside a labelmap it does not describe."""
    from ..segmentation.infer import segment_volume

    label_path, summary_path = output_paths(Path(args.out).expanduser(), case_id, batch)
    for target in (label_path, summary_path):
        ensure_not_overwriting(target, path, organ_path)
    organ_vol = load_volume(organ_path) if organ_path else None
    labels, summary = segment_volume(loaded, load_volume(path), organ_vol, organs_convention=args.labels,
                                     min_radius_mm=args.min_radius_mm, overlap=args.overlap)
    summary.update(image=str(path), output=str(label_path), case_id=case_id)
    summary_path.unlink(missing_ok=True)
    save_volume(labels, label_path)
    write_json(summary_path, summary)
    return summary
