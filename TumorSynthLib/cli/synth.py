"""``tumorsynth synth``: put tumors into one CT scan and write image, labels, report and preview."""
from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any, Callable, Sequence

from ..core.errors import InputError
from .common import command_parser, split_timing, write_json

OUTPUT_FILES = {"image": "image.nii.gz", "labels": "label.nii.gz",
                "report": "report.json", "preview": "preview.png"}

EPILOG = """tumor keys (comma-separated key=value; give --tumor once per tumor):
  organ=liver|pancreas|kidney   stage=tiny|early|intermediate|advanced
  diameter=MM                   equivalent-sphere diameter in mm (default: drawn from the stage)
  point=X:Y:Z                   click in RAS mm (as 3D Slicer shows it)
  voxel=I:J:K                   click as array indices; neither point nor voxel: a sampled place
  method=handcrafted|cellular   seed=N (default: --seed)
  count=K  clip=0|1  enhancement=hypo|hyper  necrosis=0|1  capsule=0|1  satellites=0|1
  mass_effect=0|1  steps=N (cellular)  tnm=CATEGORY (e.g. T1a, instead of a diameter)
  opt.NAME=VALUE                any other option of the method, passed as is

quality filter (FreeTumor): with --quality MODEL each tumor is scored by a segmentation model,
P = |tumor AND predicted tumor| / |tumor|, and redrawn (new seed variant) while P < --threshold,
up to --quality-tries draws; the best draw is kept and report.json says so ("quality" of each
tumor). `--quality default` uses the shipped liver / pancreas / kidney model.

examples:
  tumorsynth synth --image ct.nii.gz --organs organs.nii.gz \\
      --tumor "organ=liver,stage=early,diameter=15,point=-60:10:120,seed=3" --out case1/
  tumorsynth synth --image ct.nii.gz --organs organs.nii.gz \\
      --tumor "organ=pancreas,stage=intermediate" --quality default --out case4/
  tumorsynth synth --image ct.nii.gz --organs organs.nii.gz \\
      --tumor "organ=liver,stage=advanced" --tumor "organ=kidney,stage=early,count=2" --out case2/
  tumorsynth synth --image ct.nii.gz --tumor "organ=liver,voxel=60:40:70" --out case3/
      (no organ labels: the organ is region-grown from the click)

outputs in --out: image.nii.gz (marked synthetic), label.nii.gz, report.json, preview.png.
The same command with the same seed writes the same bytes (report.json differs only in 'timing')."""


def _flag(value: str) -> bool:
    text = value.strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"expected 0 or 1, got '{value}'")


def _triple(value: str) -> tuple[float, float, float]:
    parts = [float(p) for p in value.split(":")]
    if len(parts) != 3:
        raise ValueError(f"expected three numbers separated by ':', got '{value}'")
    return parts[0], parts[1], parts[2]


#: key -> (TumorSpec field or options key, parser).
SPEC_KEYS: dict[str, tuple[str, Callable[[str], Any]]] = {
    "organ": ("organ", str), "stage": ("stage", str), "diameter": ("diameter_mm", float),
    "point": ("center_ras", _triple), "voxel": ("center_voxel", _triple),
    "method": ("method", str), "seed": ("seed", int),
}
OPTION_KEYS: dict[str, tuple[str, Callable[[str], Any]]] = {
    "count": ("count", int), "clip": ("clip_to_organ", _flag), "steps": ("steps", int),
    "enhancement": ("enhancement", str), "necrosis": ("necrosis", _flag),
    "capsule": ("capsule", _flag), "satellites": ("satellites", _flag),
    "mass_effect": ("mass_effect", _flag), "tnm": ("tnm", str),
}


def _literal(value: str) -> Any:
    """A number when ``value`` reads as one, else the text."""
    for parse in (int, float):
        try:
            return parse(value)
        except ValueError:
            pass
    return value


def _method_option(key: str) -> tuple[str | None, Callable[[str], Any]]:
    """``opt.NAME`` passes NAME straight to the method's options (e.g. ``opt.lobulation=0.4``)."""
    if key.startswith("opt.") and len(key) > 4:
        return key[4:], _literal
    return None, str


def parse_tumor(text: str, default_seed: int = 0, extra_options: dict[str, Any] | None = None):
    """A ``TumorSpec`` from ``"organ=liver,stage=early,diameter=15,point=X:Y:Z,..."``."""
    from ..anatomy.site import TumorSpec

    fields: dict[str, Any] = {"seed": default_seed}
    options: dict[str, Any] = dict(extra_options or {})
    for item in filter(None, (part.strip() for part in text.split(","))):
        key, sep, value = item.partition("=")
        key = key.strip().lower()
        if not sep or not value.strip():
            raise InputError(f"--tumor '{text}': '{item}' is not key=value")
        target = fields if key in SPEC_KEYS else options
        name, parse = SPEC_KEYS.get(key) or OPTION_KEYS.get(key) or _method_option(key)
        if name is None:
            known = ", ".join([*SPEC_KEYS, *OPTION_KEYS, "opt.NAME"])
            raise InputError(f"--tumor '{text}': unknown key '{key}'; known keys: {known}")
        try:
            target[name] = parse(value.strip())
        except ValueError as exc:
            raise InputError(f"--tumor '{text}': bad value for '{key}': {exc}") from None
    if "center_ras" in fields and "center_voxel" in fields:
        raise InputError(f"--tumor '{text}': give point= or voxel=, not both")
    return TumorSpec(**fields, options=options)


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    parser = command_parser(
        subparsers, "synth", help="put synthetic tumors into a CT scan",
        description="Put one or more synthetic tumors into a CT scan (NIfTI, NRRD or a DICOM "
                    "folder) and write the new image, labels, a provenance report and a preview.",
        epilog=EPILOG, run=run,
    )
    parser.add_argument("--image", required=True, type=Path, help="CT scan in HU")
    parser.add_argument("--organs", type=Path,
                        help="organ labelmap on the same grid (default: none, the organ is "
                             "region-grown from each click)")
    parser.add_argument("--labels", default="totalseg",
                        choices=("totalseg", "msd", "lits", "kits", "binary"),
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
    parser.add_argument("--threshold", type=float, default=None,
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
    from ..core.events import event_session

    specs = [parse_tumor(t, args.seed, tumor_options(args)) for t in args.tumor]
    if args.threshold is not None and args.quality is None:
        raise InputError("--threshold needs --quality MODEL (the segmentation model that scores tumors)")
    if args.quality_tries < 1:
        raise InputError(f"--quality-tries must be >= 1, got {args.quality_tries}")
    # A few seconds at most: events for programs, no progress bar for people (so an error is
    # the only line on stderr).
    with event_session(args.events, total=3, desc="synth") as events:
        events.emit("start", 0, command="synth")
        image, organs = load_inputs(args.image, args.organs, args.out)
        quality = quality_filter(args)
        events.emit("progress", 1, message="inputs loaded")
        from ..synthesis.api import synthesize

        result = synthesize(image, organs, specs, args.labels, case_id=args.case_id, quality=quality,
                            quality_threshold=0.7 if quality is None else quality.threshold,
                            quality_tries=args.quality_tries)
        events.emit("progress", 2, message=f"{len(result.reports)} tumor(s) synthesized")
        extra = None if quality is None else {"quality_filter": {**quality.describe(),
                                                                 "tries": args.quality_tries}}
        outputs = write_case(args.out, result, command=["tumorsynth", *getattr(args, "argv", [])],
                             inputs={"image": args.image, "organs": args.organs}, extra=extra)
        events.emit("done", 3, outputs={k: str(v) for k, v in outputs.items()})
        events.log(summary(args.out, result.reports))
    return 0


def quality_filter(args: argparse.Namespace) -> Any:
    """The ``QualityFilter`` of ``--quality`` (None without it)."""
    if args.quality is None:
        return None
    from ..segmentation.quality import QualityFilter

    threshold = 0.7 if args.threshold is None else args.threshold
    return QualityFilter(args.quality, threshold=threshold, device=args.device)


def load_inputs(image_path: Path, organs_path: Path | None, out_dir: Path):
    """(image, organs or None), after checking no output file would overwrite an input."""
    from ..core.volume_io import ensure_not_overwriting, load_volume

    for name in OUTPUT_FILES.values():
        ensure_not_overwriting(out_dir / name, image_path, organs_path)
    image = load_volume(image_path)
    organs = load_volume(organs_path) if organs_path is not None else None
    return image, organs


def write_case(out_dir: Path, result: Any, *, command: Sequence[str], inputs: dict[str, Any],
               extra: dict[str, Any] | None = None) -> dict[str, Path]:
    """Write image, labels, report.json and preview.png of one ``Synthesis`` into ``out_dir``."""
    from ..datasets.preview import write_preview
    from ..core.volume_io import save_volume

    t0 = time.perf_counter()
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {key: out_dir / name for key, name in OUTPUT_FILES.items()}
    save_volume(result.image, paths["image"], synthetic=True, description="image")
    save_volume(result.labels, paths["labels"], synthetic=True, description="labels")
    write_preview(result.image, result.labels, result.reports, paths["preview"],
                  instances=result.tumor_instances)
    case, case_timing = split_timing(result.case_report, "case")
    tumors, tumor_timing = split_timing(result.reports, "tumors")
    report = {
        "synthetic": True,
        "note": "contains synthetic tumors made by TumorSynth; not for diagnosis",
        "command": list(command),
        "inputs": {k: (None if v is None else str(v)) for k, v in inputs.items()},
        "outputs": dict(OUTPUT_FILES),
        "label_names": {str(k): v for k, v in sorted(result.label_names.items())},
        **(extra or {}),
        "case": case,
        "tumors": tumors,
        "timing": {**case_timing, **tumor_timing, "write_s": time.perf_counter() - t0},
    }
    write_json(paths["report"], report)
    return paths


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
