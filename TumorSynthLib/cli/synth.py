"""``tumorsynth synth``: put tumors into one CT scan and write image, labels, report and preview."""
from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from ..anatomy.organs import CONVENTIONS, ORGANS, STAGES
from ..anatomy.site import TumorSpec
from ..core.errors import InputError
from ..core.events import event_session
from ..core.volume_io import ensure_not_overwriting, load_volume
from ..datasets import outputs
from ..segmentation.quality import QualityFilter
from ..synthesis.api import synthesize
from ..synthesis.lesion_types import resolve_spec
from ..synthesis.options import OPTIONS, coerce_option, option_names, validate_options
from ..synthesis.pipeline import listen_steps
from ..synthesis.registry import appearance_names, geometry_names, method_names
from ..synthesis.report import report_warnings
from .common import command_parser, finite_float
from .step_progress import StepProgress

OUTPUT_FILES = {"image": "image.nii.gz", "labels": "label.nii.gz",
                "report": "report.json", "preview": "preview.png"}

def _triple(value: str) -> tuple[float, float, float]:
    parts = [float(p) for p in value.split(":")]
    if len(parts) != 3:
        raise ValueError(f"expected three numbers separated by ':', got '{value}'")
    return parts[0], parts[1], parts[2]


#: --tumor key -> (TumorSpec field, parser). Every other key is an option of the engine's table.
SPEC_KEYS: dict[str, tuple[str, Callable[[str], Any]]] = {
    "organ": ("organ", str), "stage": ("stage", str), "diameter": ("diameter_mm", float),
    "point": ("center_ras", _triple), "voxel": ("center_voxel", _triple), "method": ("method", str),
    "geometry": ("geometry", str), "appearance": ("appearance", str), "seed": ("seed", int),
}
#: Short --tumor names of option keys.
OPTION_ALIASES = {"clip": "clip_to_organ"}


def tumor_keys_help() -> str:
    """The --tumor keys, from the engine catalogue (so the help lists what exists)."""

    lines = ["tumor keys (comma-separated key=value; give --tumor once per tumor; each key once):",
             f"  organ={'|'.join(ORGANS)}   stage={'|'.join(STAGES)}",
             "  diameter=MM          equivalent-sphere diameter in mm (default: drawn from the stage)",
             "  point=X:Y:Z          click in RAS mm (as 3D Slicer shows it)",
             "  voxel=I:J:K          click as array indices; neither point nor voxel: a sampled place",
             f"  method={'|'.join(method_names())}   seed=N (default: --seed)",
             f"  geometry={'|'.join(geometry_names())}   appearance={'|'.join(appearance_names())}"
             "   (override one half of the method)"]
    alias = {v: k for k, v in OPTION_ALIASES.items()}
    for o in OPTIONS:
        key = alias.get(o.name, o.name)
        reader = "" if o.reader == "shared" else f" [{o.reader}]"
        lines.append(f"  {key + '=' + o.kind.upper():<28} {o.help}{reader}")
    return "\n".join(lines)


QUALITY_HELP = """quality filter (FreeTumor): with --quality MODEL each tumor is scored by a segmentation model,
P = |tumor AND predicted tumor| / |tumor|, and redrawn (new seed variant) while P < --threshold,
up to --quality-tries draws; the best draw is kept and report.json says so ("quality" of each
tumor). `--quality default` uses the shipped liver / pancreas / kidney model."""


EXAMPLES = """examples:
  tumorsynth synth --image ct.nii.gz --organs organs.nii.gz \\
      --tumor "organ=liver,stage=early,diameter=15,point=-60:10:120,seed=3" --out case1/
  tumorsynth synth --image ct.nii.gz --organs organs.nii.gz \\
      --tumor "organ=liver,stage=advanced" --tumor "organ=kidney,stage=early,count=2" --out case2/
  tumorsynth synth --image ct.nii.gz --tumor "organ=liver,voxel=60:40:70" --out case3/
      (no organ labels: the organ is region-grown from the click)
  tumorsynth synth ... --tumor "organ=liver,stage=intermediate,geometry=cellular,appearance=procedural"
  tumorsynth synth ... --tumor "organ=liver,lesion=cyst,diameter=20" \\
      --tumor "organ=liver,lesion=hemangioma,diameter=25,phase=arterial"
      (benign distractors for teaching; the report says lesion type and benign)
  tumorsynth synth --image ct.nii.gz --organs organs.nii.gz \\
      --tumor "organ=pancreas,stage=intermediate" --quality default --out case4/

outputs in --out: image.nii.gz (marked synthetic), label.nii.gz, report.json, preview.png.
The same command with the same seed writes the same bytes (report.json differs only in 'timing')."""


def parse_tumor(text: str, default_seed: int = 0, extra_options: dict[str, Any] | None = None):
    """A ``TumorSpec`` from ``"organ=liver,stage=early,diameter=15,point=X:Y:Z,..."``: spec
    keys, and option keys typed by the engine's option table. A key given twice, an unknown key
    or a value of the wrong type is an InputError that says what is allowed."""

    fields: dict[str, Any] = {"seed": default_seed}
    options: dict[str, Any] = dict(extra_options or {})
    seen: set[str] = set()
    for item in filter(None, (part.strip() for part in text.split(","))):
        key, sep, value = item.partition("=")
        key, value = key.strip().lower(), value.strip()
        if not sep or not value:
            raise InputError(f"--tumor '{text}': '{item}' is not key=value")
        if key in seen:
            raise InputError(f"--tumor '{text}': '{key}' is given twice; give each key once")
        seen.add(key)
        name = OPTION_ALIASES.get(key, key)
        if key in SPEC_KEYS:
            field, parse = SPEC_KEYS[key]
            try:
                fields[field] = parse(value)
            except ValueError as exc:
                raise InputError(f"--tumor '{text}': bad value for '{key}': {exc}") from None
        elif name in option_names():
            options[name] = coerce_option(name, value)
        else:
            known = ", ".join([*SPEC_KEYS, *OPTION_ALIASES, *(n for n in option_names() if n not in OPTION_ALIASES.values())])
            raise InputError(f"--tumor '{text}': unknown key '{key}'; known keys: {known}")
    if "center_ras" in fields and "center_voxel" in fields:
        raise InputError(f"--tumor '{text}': give point= or voxel=, not both")
    return TumorSpec(**fields, options=options)


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    parser = command_parser(
        subparsers, "synth", help="put synthetic tumors into a CT scan",
        description="Put one or more synthetic tumors into a CT scan (NIfTI, NRRD or a DICOM "
                    "folder) and write the new image, labels, a provenance report and a preview.",
        epilog=tumor_keys_help() + "\n\n" + QUALITY_HELP + "\n\n" + EXAMPLES, run=run,
    )
    parser.add_argument("--image", required=True, type=Path, help="CT scan in HU")
    parser.add_argument("--organs", type=Path,
                        help="organ labelmap on the same grid (default: none, the organ is "
                             "region-grown from each click)")
    parser.add_argument("--labels", default="totalseg", choices=CONVENTIONS,
                        help="label convention of --organs (default: totalseg)")
    parser.add_argument("--tumor", action="append", required=True, metavar="SPEC",
                        help="one tumor as key=value pairs (keys below); repeat for more")
    parser.add_argument("--out", required=True, type=Path, help="output folder (created)")
    parser.add_argument("--case-id", help="case name mixed into the seeds (default: none)")
    parser.add_argument("--tumor-label", type=int, help="label id for tumor voxels "
                        "(default: 200 + organ id for totalseg, else 2)")
    parser.add_argument("--necrosis-label", type=int,
                        help="separate label id for necrosis (default: necrosis keeps the tumor id)")
    parser.add_argument("--quality", metavar="MODEL",
                        help="keep only tumors this segmentation model finds (checkpoint, model id, "
                             "or `default`); see 'quality filter' below")
    parser.add_argument("--threshold", type=finite_float, default=None,
                        help="quality filter: minimum share P of the tumor found (default 0.7)")
    parser.add_argument("--quality-tries", type=int, default=3,
                        help="quality filter: draws per tumor before keeping the best (default 3)")
    return parser


def tumor_options(args: argparse.Namespace) -> dict[str, Any]:
    """Options every --tumor of this command gets (label ids, device)."""
    options: dict[str, Any] = {}
    if args.tumor_label is not None:
        options["tumor_label"] = args.tumor_label
    if args.necrosis_label is not None:
        options["necrosis_label"] = args.necrosis_label
    if args.device != "auto":
        options["device"] = args.device
    return options


def run(args: argparse.Namespace) -> int:
    specs = [parse_tumor(t, args.seed, tumor_options(args)) for t in args.tumor]
    if args.threshold is not None and args.quality is None:
        raise InputError("--threshold needs --quality MODEL (the segmentation model that scores tumors)")
    if args.quality_tries < 1:
        raise InputError(f"--quality-tries must be >= 1, got {args.quality_tries}")
    check_specs(specs)
    out = output_folder(args.out)
    inputs = {"image": args.image, "organs": args.organs}
    given = tuple(v for v in inputs.values() if v is not None)
    # A few seconds at most: events for programs; for people a bar only while a stepping stage
    # (growth, denoising) runs, cleared afterwards (so an error is the only line on stderr).
    # The case folder appears only when complete.
    with event_session(args.events, total=3, desc="synth") as events, outputs.case_folder(out, given) as stage:
        events.emit("start", 0, command="synth")
        image, organs = load_inputs(args.image, args.organs, out)
        quality = quality_filter(args)
        events.emit("progress", 1, message="inputs loaded")
        with StepProgress(events) as progress, listen_steps(progress):
            result = synthesize(image, organs, specs, args.labels, case_id=args.case_id, quality=quality,
                                quality_threshold=0.7 if quality is None else quality.threshold,
                                tries=args.quality_tries)
        events.emit("progress", 2, message=f"{len(result.reports)} tumor(s) synthesized")
        for warning in report_warnings(result.reports):
            events.warning(warning)
        extra = None if quality is None else {"quality_filter": {**quality.describe(),
                                                                 "tries": args.quality_tries}}
        write_into(stage, result, command=["tumorsynth", *getattr(args, "argv", [])], inputs=inputs,
                   extra=extra)
    written = {k: out / name for k, name in outputs.CASE_FILES.items()}
    events.emit("done", 3, outputs={k: str(v) for k, v in written.items()})
    events.log(summary(out, result.reports))
    return 0


def check_specs(specs: Sequence[TumorSpec]) -> None:
    """Method names and option keys of every tumor, checked before any input is read."""
    for spec in specs:
        spec, geometry, appearance = resolve_spec(spec)
        validate_options({k: v for k, v in spec.options.items() if k != "count"}, (geometry, appearance))


def output_folder(out: Path) -> Path:
    """``--out`` as given (a symlink the user names is followed: it is their choice); a file
    there is refused before any work."""
    folder = Path(out).expanduser()
    if folder.is_symlink():
        folder = folder.resolve()
    if folder.exists() and not folder.is_dir():
        raise InputError(f"--out '{out}' is a file, not a folder; choose a folder for the case")
    return folder


def quality_filter(args: argparse.Namespace) -> Any:
    """The ``QualityFilter`` of ``--quality`` (None without it)."""
    if args.quality is None:
        return None
    threshold = 0.7 if args.threshold is None else args.threshold
    return QualityFilter(args.quality, threshold=threshold, device=args.device)


def load_inputs(image_path: Path, organs_path: Path | None, out_dir: Path):
    """(image, organs or None), after checking no output file would overwrite an input."""

    for name in OUTPUT_FILES.values():
        ensure_not_overwriting(out_dir / name, image_path, organs_path)
    image = load_volume(image_path)
    organs = load_volume(organs_path) if organs_path is not None else None
    return image, organs


def case_header(command: Sequence[str], inputs: dict[str, Any],
                extra: dict[str, Any] | None = None) -> tuple[dict[str, Any], tuple[Any, ...]]:
    """(report header, input paths given) of a case made by a command."""
    header = {"command": list(command), "inputs": {k: (None if v is None else str(v)) for k, v in inputs.items()},
              **(extra or {})}
    return header, tuple(v for v in inputs.values() if v is not None)


def write_into(stage: Path, result: Any, *, command: Sequence[str], inputs: dict[str, Any],
               extra: dict[str, Any] | None = None) -> dict[str, Path]:
    """The case files of one ``Synthesis`` in the staging folder of ``outputs.case_folder``."""
    header, given = case_header(command, inputs, extra)
    paths = outputs.case_paths(stage)
    return outputs.write_case(paths, result, header, given, preview=paths["preview"])


def write_case(folder: Path, result: Any, *, command: Sequence[str], inputs: dict[str, Any],
               extra: dict[str, Any] | None = None) -> dict[str, Path]:
    """Image, labels, preview.png and report.json of one ``Synthesis`` as the case folder
    ``folder``, which appears only when complete (``datasets.outputs.write_case_folder``: the
    one writer of synthetic cases)."""
    header, given = case_header(command, inputs, extra)
    return outputs.write_case_folder(Path(folder), result, header, given)


def summary(out_dir: Path, reports: Sequence[dict[str, Any]]) -> str:
    lines = [f"wrote {out_dir}/: {', '.join(OUTPUT_FILES.values())}"]
    for n, r in enumerate(reports, 1):
        centre = ", ".join(f"{v:.1f}" for v in (r.get("centroid_ras") or []))
        quality = r.get("quality")
        found = "" if not quality else f", quality P {quality['score']:.2f}" + (
            "" if quality.get("passed") else f" (below {quality['threshold']:g}: best of {quality['attempts']})")
        lines.append(f"  tumor {n}: {r.get('organ')} {r.get('stage')} "
                     f"{r.get('diameter_measured_mm', 0.0):.1f} mm at RAS ({centre}), "
                     f"label {r.get('tumor_id')}{found}")
    return "\n".join(lines)
