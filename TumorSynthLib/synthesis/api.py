"""``synthesize``: put one or more synthetic tumors into a CT scan (the engine's entry point).

The scan is analysed once (cached per ``Volume``); each spec (``count`` = k gives k tumors: the
first at the click, if any, the others at sampled places) is placed and run through the stages
(``pipeline``), and its ROI becomes a patch of the result. Inputs are never modified; outside
each tumor's ROI the output equals the input bit for bit. Reports: ``synthesis.report``.

Quality filter (FreeTumor's idea, methods.md): with ``quality`` given, a tumor is kept when
``quality(image_roi_hu, tumor_mask, affine_roi, organ) >= quality_threshold``; otherwise it is
drawn again from the next retry stream of its seed, up to ``tries`` times, and the best is kept
(its report says so). A sampled place that does not fit is retried the same way.
"""
from __future__ import annotations

import time
from dataclasses import replace
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from ..anatomy.site import TumorSpec
from ..core.allocator import tune_allocator
from ..core.blas import single_threaded_blas
from ..core.errors import InputError, PlacementError
from ..core.files import shown
from ..core.volume import Volume
from .case import SynthesisCase
from .options import coerce_option
from .pipeline import TumorOutcome
from .result import Synthesis

#: The one quality contract: (image ROI in HU, tumor mask of the ROI, ROI affine, organ) -> P.
QualityCheck = Callable[[np.ndarray, np.ndarray, np.ndarray, str], float]


def expand_specs(specs: TumorSpec | Sequence[TumorSpec]) -> list[TumorSpec]:
    """One spec per tumor: ``options["count"] = k`` gives k tumors, the first at the spec's
    click (if it has one) and the others at sampled places of the same organ."""
    items = [specs] if isinstance(specs, TumorSpec) else list(specs)
    if not items:
        raise InputError("no tumor requested: pass at least one TumorSpec")
    out: list[TumorSpec] = []
    for spec in items:
        check_spec(spec)
        options = dict(spec.options or {})
        if "count" not in options:
            out.append(spec)
            continue
        count = coerce_option("count", options.pop("count"))
        first = replace(spec, options=options)
        sampled = replace(first, center_ras=None, center_voxel=None)
        out += [first] + [sampled] * (count - 1)
    return out


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, (bool, np.bool_))


def _check_point(name: str, value: Any) -> None:
    if value is None:
        return
    try:
        ok = len(value) == 3 and all(_is_number(v) and np.isfinite(v) for v in value)
    except TypeError:
        ok = False
    if not ok:
        raise InputError(f"TumorSpec.{name} must be three finite numbers or None, got {shown(value)}")


def check_spec(spec: Any) -> None:
    """InputError unless ``spec`` is a TumorSpec whose fields have usable types (the API's
    first check, so a wrong type never surfaces as a TypeError deep in the engine)."""
    if not isinstance(spec, TumorSpec):
        raise InputError(f"expected TumorSpec objects, got {type(spec).__name__}")
    for name in ("organ", "stage", "method"):
        if not isinstance(getattr(spec, name), str):
            raise InputError(f"TumorSpec.{name} must be a string, got {shown(getattr(spec, name))}")
    for name in ("geometry", "appearance"):
        if getattr(spec, name) is not None and not isinstance(getattr(spec, name), str):
            raise InputError(f"TumorSpec.{name} must be a string or None, got {shown(getattr(spec, name))}")
    _check_point("center_ras", spec.center_ras)
    _check_point("center_voxel", spec.center_voxel)
    d = spec.diameter_mm
    if d is not None and not (_is_number(d) and np.isfinite(d) and d > 0):
        raise InputError(f"TumorSpec.diameter_mm must be a positive number of mm or None, got {shown(d)}")
    if not (isinstance(spec.seed, (int, np.integer)) and not isinstance(spec.seed, bool) and spec.seed >= 0):
        raise InputError(f"TumorSpec.seed must be an integer >= 0, got {shown(spec.seed)}")
    if spec.options is not None and not isinstance(spec.options, Mapping):
        raise InputError(f"TumorSpec.options must be a mapping, got {type(spec.options).__name__}")


def _check_call(labels: Any, case_id: Any, variant: Any, quality: Any, quality_threshold: Any, tries: Any) -> None:
    if not isinstance(labels, str):
        raise InputError(f"labels must name a convention (a string), got {shown(labels)}")
    if case_id is not None and not isinstance(case_id, str):
        raise InputError(f"case_id must be a string or None, got {shown(case_id)}")
    if not isinstance(variant, (int, np.integer)) or isinstance(variant, bool) or variant < 0:
        raise InputError(f"variant must be an integer >= 0, got {shown(variant)}")
    if quality is not None and not callable(quality):
        raise InputError(f"quality must be a callable (image_roi, mask, affine_roi, organ) -> P, got "
                         f"{type(quality).__name__}")
    if not (_is_number(quality_threshold) and 0.0 <= float(quality_threshold) <= 1.0):
        raise InputError(f"quality_threshold must be a number in [0, 1], got {shown(quality_threshold)}")
    if not isinstance(tries, (int, np.integer)) or isinstance(tries, bool) or tries < 1:
        raise InputError(f"tries must be an integer >= 1, got {shown(tries)}")


def synthesize(image: Volume, organs: Volume | None, specs: TumorSpec | Sequence[TumorSpec],
               labels: str = "totalseg", *, case_id: str | None = None, variant: int = 0,
               quality: QualityCheck | None = None, quality_threshold: float = 0.7,
               tries: int = 3) -> Synthesis:
    """Put the tumors of ``specs`` (applied in order, each on the previous result) into
    ``image`` (CT in HU) with ``organs`` labels in convention ``labels`` (or None: the organ is
    grown from each click). Returns a ``Synthesis``; inputs are untouched.

    Raises InputError / GeometryError (bad inputs), PlacementError (no valid place),
    DependencyError (a provider cannot run here)."""
    _check_call(labels, case_id, variant, quality, quality_threshold, tries)
    if not isinstance(specs, TumorSpec) and not isinstance(specs, Sequence):
        raise InputError(f"specs must be a TumorSpec or a list of them, got {type(specs).__name__}")
    tune_allocator()                       # once per process (core/allocator.py)
    case = SynthesisCase(image, organs, labels, case_id=case_id, variant=variant)
    with single_threaded_blas():           # tiny matrices only: OpenBLAS threads would just spin
        for index, spec in enumerate(expand_specs(specs)):
            outcome, verdict = _best_attempt(case, spec, index, quality, float(quality_threshold), int(tries))
            case.add(outcome, quality=verdict)
    return case.result()


def _best_attempt(case: SynthesisCase, spec: TumorSpec, index: int, quality: QualityCheck | None,
                  threshold: float, tries: int) -> tuple[TumorOutcome, dict[str, Any] | None]:
    """The one retry loop: draw, score (with a quality check), keep the best."""
    sampled = spec.center_ras is None and spec.center_voxel is None
    attempts = tries if (quality is not None or sampled) else 1
    best: tuple[TumorOutcome, float | None, int] | None = None
    error: PlacementError | None = None
    for attempt in range(attempts):
        t0 = time.perf_counter()
        try:
            outcome = case.start(spec, index, attempt).finish()
        except PlacementError as exc:
            if not sampled:
                raise
            error = exc
            continue
        outcome.timing["total_s"] = time.perf_counter() - t0
        score = None if quality is None else float(
            quality(outcome.image_roi, outcome.tumor_mask, outcome.site.affine_roi, outcome.site.organ))
        if best is None or (score is not None and score > best[1]):
            best = (outcome, score, attempt + 1)
        if quality is None or score >= threshold:
            break
    if best is None:
        raise error  # type: ignore[misc]
    outcome, score, kept = best
    verdict = None if quality is None else {
        "score": score, "threshold": threshold, "attempts": attempt + 1, "kept_attempt": kept,
        "passed": score >= threshold}
    return outcome, verdict


__all__ = ["QualityCheck", "check_spec", "expand_specs", "synthesize"]
