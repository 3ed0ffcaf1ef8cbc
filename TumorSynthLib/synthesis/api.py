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
from typing import Any, Callable, Sequence

import numpy as np

from ..anatomy.site import TumorSpec
from ..core.errors import InputError, PlacementError
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
        if not isinstance(spec, TumorSpec):
            raise InputError(f"expected TumorSpec objects, got {type(spec).__name__}")
        options = dict(spec.options or {})
        if "count" not in options:
            out.append(spec)
            continue
        count = coerce_option("count", options.pop("count"))
        first = replace(spec, options=options)
        sampled = replace(first, center_ras=None, center_voxel=None)
        out += [first] + [sampled] * (count - 1)
    return out


def synthesize(image: Volume, organs: Volume | None, specs: TumorSpec | Sequence[TumorSpec],
               labels: str = "totalseg", *, case_id: str | None = None, variant: int = 0,
               quality: QualityCheck | None = None, quality_threshold: float = 0.7,
               tries: int = 3) -> Synthesis:
    """Put the tumors of ``specs`` (applied in order, each on the previous result) into
    ``image`` (CT in HU) with ``organs`` labels in convention ``labels`` (or None: the organ is
    grown from each click). Returns a ``Synthesis``; inputs are untouched.

    Raises InputError / GeometryError (bad inputs), PlacementError (no valid place),
    DependencyError (a provider cannot run here)."""
    if quality is not None and not (0.0 <= float(quality_threshold) <= 1.0 and int(tries) >= 1):
        raise InputError("quality_threshold must be in [0, 1] and tries >= 1")
    case = SynthesisCase(image, organs, labels, case_id=case_id, variant=variant)
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


__all__ = ["QualityCheck", "expand_specs", "synthesize"]
