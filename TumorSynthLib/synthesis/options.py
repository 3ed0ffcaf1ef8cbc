"""The option keys of a ``TumorSpec``: one table with their types, ranges and readers.

Every front end validates through this table (the CLI's ``--tumor`` keys and its help, the
Slicer panel, ``synthesize``): an unknown key, a value of the wrong type, or a key that no stage
of the chosen method reads is an ``InputError`` that says what is allowed. Providers declare the
keys they read in their ``options`` attribute; the shared keys are read by placement, the
effects and the case (``readers`` below).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Iterable, Mapping

from ..core.errors import InputError
from ..core.files import shown
from .learned.config import DEFAULT_CHAINS
from .lesion_types import LESION_NAMES

SHARED = "shared"


@dataclass(frozen=True)
class OptionSpec:
    """One option key. ``kind``: bool | int | float | choice | text | range (two floats)."""

    name: str
    kind: str
    help: str
    choices: tuple[str, ...] = ()
    low: float | None = None
    high: float | None = None
    reader: str = SHARED            # "shared" or the provider name that reads it

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "type": self.kind, "help": self.help, "choices": list(self.choices),
                "min": self.low, "max": self.high, "reader": self.reader}


OPTIONS: tuple[OptionSpec, ...] = (
    OptionSpec("count", "int", "number of tumors of this kind: the first at the click (if any), "
               "the others at sampled places in the organ", low=1, high=100),
    OptionSpec("clip_to_organ", "bool", "1 keeps the tumor inside the organ, 0 lets it grow past "
               "the contour (default: inside; kidney tumors may bulge out with probability 0.5)"),
    OptionSpec("enhancement", "choice", "hypo: darker than the organ (default); hyper: brighter "
               "(arterial-phase HCC)", choices=("hypo", "hyper"), reader="procedural"),
    OptionSpec("necrosis", "bool", "force the necrotic core on (1) or off (0); default: drawn per stage"),
    OptionSpec("capsule", "bool", "force the capsule on (1) or off (0); default: drawn per stage (liver)"),
    OptionSpec("satellites", "bool", "force satellite nodules on (1) or off (0); default: drawn per stage"),
    OptionSpec("mass_effect", "bool", "force the mass effect on (1) or off (0); default: intermediate "
               "and advanced stages"),
    OptionSpec("mass_effect_strength", "float", "push at the tumor border as a fraction of its "
               "radius (default 0.3)", low=0.0, high=0.6),
    OptionSpec("tnm", "text", "a size category instead of a diameter: kidney T1a T1b T2, pancreas "
               "T1 T2 T3, liver LR-small LR-medium LR-large"),
    OptionSpec("tumor_label", "int", "label id of the tumor voxels instead of the convention's",
               low=1, high=32767),
    OptionSpec("necrosis_label", "int", "a separate label id for the necrotic core", low=1, high=32767),
    OptionSpec("liver_cc_range", "range", "cranio-caudal band (fractions lo:hi of the liver's "
               "extent) where sampled liver tumors go (default 0.3:0.7)", low=0.0, high=1.0),
    OptionSpec("steps", "int", "growth steps of the automaton (instead of growing to the diameter)",
               low=0, high=5000, reader="cellular"),
    OptionSpec("lobulation", "float", "lobulated growth, 0 (round) to 0.95 (default by stage)",
               low=0.0, high=0.95, reader="cellular"),
    OptionSpec("lesion", "choice", "lesion type: tumor (default, malignant), or a benign distractor "
               "for teaching: cyst (water density, no enhancement), hemangioma (liver; look depends "
               "on the phase)", choices=LESION_NAMES),
    OptionSpec("phase", "choice", "contrast phase a hemangioma is drawn for (default auto: "
               "estimated from the organ's HU; arterial must be given)",
               choices=("auto", "noncontrast", "arterial", "venous", "delayed"), reader="hemangioma"),
    OptionSpec("adversarial_model", "text", "model id or .pt path of the adversarial generator "
               "(default: the shipped one)", reader="adversarial"),
    OptionSpec("diffusion_model", "text", "diffusion model: a registered id (`tumorsynth models "
               "list`) or a checkpoint path (default: the shipped model)", reader="diffusion"),
    OptionSpec("diffusion_steps", "int", "denoiser calls per tumor (default: the model's; fewer "
               "than its timesteps needs diffusion_sampler=ddim)", low=1, high=1000, reader="diffusion"),
    OptionSpec("diffusion_chains", "int", "independent chains averaged into the tumor's pattern "
               f"(default {DEFAULT_CHAINS}, nearer the model's expected tumor for its surroundings, the "
               "scan supplying the grain; 1: one raw sample, more invented texture)", low=1, high=16,
               reader="diffusion"),
    OptionSpec("diffusion_sampler", "choice", "ddpm: ancestral, every timestep (default for T = 4 "
               "models); ddim: deterministic, any number of steps", choices=("ddpm", "ddim"),
               reader="diffusion"),
    OptionSpec("device", "choice", "where torch providers run (automaton, learned appearances; "
               "default auto: CUDA when present)", choices=("auto", "cpu", "cuda")),
)
_BY_NAME = {o.name: o for o in OPTIONS}
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def option_names() -> list[str]:
    return list(_BY_NAME)


def option_spec(name: str) -> OptionSpec:
    if name not in _BY_NAME:
        raise InputError(f"unknown option '{name}'; known options: {', '.join(_BY_NAME)}")
    return _BY_NAME[name]


def coerce_option(name: str, value: Any) -> Any:
    """``value`` (a Python value or the text given on a command line) as the option's type;
    InputError naming the option and what it accepts."""
    spec = option_spec(name)
    try:
        out = _COERCE[spec.kind](spec, value)
    except (TypeError, ValueError, OverflowError):
        out = None
    if out is None:
        raise InputError(f"option '{name}' {_expects(spec)}, got {shown(value)}")
    return out


def validate_options(options: Mapping[str, Any] | None, readers: Iterable[str]) -> dict[str, Any]:
    """Typed copy of ``options``. Every key must be known and read by one of ``readers`` (the
    chosen geometry and appearance providers; shared keys are always read)."""
    if options is None:
        return {}
    if not isinstance(options, Mapping):
        raise InputError(f"options must be a mapping of option names to values, got {type(options).__name__}")
    allowed = {SHARED, *readers}
    out: dict[str, Any] = {}
    for name, value in options.items():
        spec = option_spec(str(name))
        if spec.reader not in allowed:
            raise InputError(f"option '{name}' is read by the {spec.reader} provider only, which this "
                             f"tumor does not use (it uses {' + '.join(sorted(allowed - {SHARED}))})")
        out[str(name)] = coerce_option(str(name), value)
    return out


def _expects(spec: OptionSpec) -> str:
    if spec.kind == "bool":
        return "is a switch: 1/0 (true/false, on/off)"
    if spec.kind == "choice":
        return f"must be one of {', '.join(spec.choices)}"
    if spec.kind == "range":
        return f"must be two numbers lo:hi with {spec.low:g} <= lo < hi <= {spec.high:g}"
    if spec.kind == "text":
        return "must be a non-empty text"
    what = "a whole number" if spec.kind == "int" else "a number"
    return f"must be {what} from {spec.low:g} to {spec.high:g}"


def _bool(spec: OptionSpec, value: Any) -> bool | None:
    if isinstance(value, bool):
        return value
    if isinstance(value, (int, float)) and value in (0, 1):
        return bool(value)
    text = str(value).strip().lower()
    return True if text in _TRUE else False if text in _FALSE else None


def _number(spec: OptionSpec, value: Any) -> float | int | None:
    if isinstance(value, bool):
        return None
    x = float(value.strip()) if isinstance(value, str) else float(value)
    if not math.isfinite(x) or (spec.kind == "int" and x != int(x)):
        return None
    if (spec.low is not None and x < spec.low) or (spec.high is not None and x > spec.high):
        return None
    return int(x) if spec.kind == "int" else x


def _choice(spec: OptionSpec, value: Any) -> str | None:
    text = str(value).strip().lower()
    return text if text in spec.choices else None


def _text(spec: OptionSpec, value: Any) -> str | None:
    text = str(value).strip()
    return text or None


def _range(spec: OptionSpec, value: Any) -> tuple[float, float] | None:
    parts = str(value).replace(",", ":").split(":") if isinstance(value, str) else list(value)
    if len(parts) != 2:
        return None
    lo, hi = (float(p) for p in parts)
    ok = spec.low <= lo < hi <= spec.high  # type: ignore[operator]
    return (lo, hi) if ok else None


_COERCE = {"bool": _bool, "int": _number, "float": _number, "choice": _choice, "text": _text,
           "range": _range}

__all__ = ["OPTIONS", "OptionSpec", "coerce_option", "option_names", "option_spec", "validate_options"]
