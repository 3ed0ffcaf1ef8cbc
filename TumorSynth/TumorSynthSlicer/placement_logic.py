"""One click -> one tumor: world RAS + panel settings -> engine call -> output nodes.

The engine (``TumorSynthLib``) is imported here lazily, inside the functions that call it, so
this module itself imports only slicer, vtk and numpy. The engine sees the *output* volume's
voxels (a copy of the CT made on the first tumor) as an ``[i, j, k]`` view with its world
affine; the input volume node is never handed over, so it stays bit-identical.

Fast methods run at once (``place_tumor``). The cellular automaton can instead be grown a few
steps per timer tick (``GrowthJob``) so the user watches it grow and can stop it.

With a quality filter (``load_quality_filter``: the shipped ``default`` segmentation model by
default) every placed tumor is scored: ``report["quality_p"]`` is the share of the tumor the
model finds (FreeTumor's P), shown in the "Quality P" column of the tumors table.

Example::

    session = TumorSession(ctNode)
    request = TumorRequest(organ="liver", stage="early", diameterMm=15, seed=3)
    placement = place_tumor(session, clickRas, request, organMask=liverMask)
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import numpy as np

from . import segment_logic
from .errors import MissingDependencyError
from .output_logic import TumorSession


@dataclass
class TumorRequest:
    """The panel's "Tumor" section. ``diameterMm`` None lets the stage choose a size."""

    organ: str = "liver"
    stage: str = "early"
    diameterMm: float | None = None
    method: str = "handcrafted"
    seed: int = 0
    options: dict[str, Any] = field(default_factory=dict)


@dataclass
class Placement:
    """What one click produced."""

    segmentIds: list[str]
    reports: list[dict[str, Any]]
    result: Any = None


def engine() -> Any:
    """The ``TumorSynthLib`` modules the placement needs, or a clear error if absent."""
    try:
        from TumorSynthLib.synthesis import api, base
        from TumorSynthLib.core import volume
    except ImportError as exc:
        raise MissingDependencyError(
            f"the TumorSynth engine could not be loaded ({exc}); install the extension's "
            "Python dependencies (button 'Install dependencies') and restart Slicer"
        ) from exc
    return api, base, volume


def make_specs(request: TumorRequest, ras: Sequence[float]) -> list[Any]:
    """The engine's ``TumorSpec`` list for a click at world RAS ``ras`` (mm).

    ``options["count"] = k`` gives the clicked tumor plus k - 1 tumors at locations the engine
    samples in the organ (k tumors at one click would overlap)."""
    _api, base, _volume = engine()
    options = dict(request.options)
    count = int(options.pop("count", 1) or 1)
    common = {"organ": request.organ, "diameter_mm": request.diameterMm,
              "stage": request.stage, "method": request.method, "seed": int(request.seed),
              "options": options}
    clicked = base.TumorSpec(center_ras=tuple(float(v) for v in ras), **common)
    return [clicked] + [base.TumorSpec(center_ras=None, **common) for _ in range(count - 1)]


def engine_inputs(session: TumorSession, organMask: np.ndarray | None) -> tuple[Any, Any, Any]:
    """(image Volume, organ labels Volume or None, the labels array passed) for the engine."""
    _api, _base, volume = engine()
    image_array, affine = session.engineImage()
    passed = session.engineLabels(organMask)
    image = volume.Volume(image_array, affine, {"case_id": session.inputVolume.GetName()})
    organs = None if passed is None else volume.Volume(passed, affine)
    return image, organs, passed


def place_tumor(session: TumorSession, ras: Sequence[float], request: TumorRequest,
                organMask: np.ndarray | None = None,
                synthesize: Callable[..., Any] | None = None, quality: Any = None) -> Placement:
    """Synthesize the tumor(s) of one click and write them into the session's outputs.

    ``organMask`` is a boolean ``[i, j, k]`` mask on the CT grid (None: the engine grows an
    organ region from the click). ``synthesize`` defaults to the engine's; tests may inject
    another with the same signature. ``quality``: an object with ``score_volume(image, mask)``
    (a ``QualityFilter``) that scores each tumor before it is recorded. On failure the outputs
    are left as they were (and removed again if this was the first tumor).
    """
    fresh = not session.hasOutputs
    try:
        image, organs, passed = engine_inputs(session, organMask)
        call = synthesize or engine()[0].synthesize
        result = call(image, organs, make_specs(request, ras), labels="binary",
                      case_id=session.inputVolume.GetName())
    except Exception:
        if fresh:
            session.removeOutputs()
        raise
    return _record(session, result, passed, request.organ, quality)


def load_quality_filter(model: str = "default", device: str = "auto") -> tuple[Any, str]:
    """(``QualityFilter`` of ``model``, "") or (None, the reason it is not available: engine or
    torch missing, model not installed, ...). Never raises: the score is an extra."""
    try:
        from TumorSynthLib.segmentation.quality import QualityFilter
    except ImportError as exc:
        return None, f"the segmentation engine is not available ({exc})"
    try:
        return QualityFilter(model, device=device), ""
    except Exception as exc:  # a missing or damaged model must not stop tumor placement
        return None, str(exc)


def score_tumors(result: Any, quality: Any) -> None:
    """Set ``report["quality_p"]`` of each tumor of ``result`` (a ``Synthesis``) to the share
    of it that ``quality`` finds; a tumor it cannot score gets ``report["quality_error"]``."""
    if quality is None:
        return
    instances = np.asarray(result.tumor_instances.array)
    for number, report in enumerate(result.reports, start=1):
        mask = instances == number
        if not mask.any():
            continue
        try:
            report["quality_p"] = float(quality.score_volume(result.image, mask))
        except Exception as exc:  # e.g. a model that does not cover this organ
            report["quality_error"] = str(exc)


def _record(session: TumorSession, result: Any, passed: np.ndarray | None,
            organ: str, quality: Any = None) -> Placement:
    score_tumors(result, quality)
    if result.roi is None or result.roi.is_empty:
        return Placement([], list(result.reports), result)
    ids = session.record(result.image.array, result.labels.array, result.tumor_instances.array,
                         result.roi.lo, result.roi.hi, result.reports, passed, organ)
    return Placement(ids, list(result.reports), result)


class GrowthJob:
    """Live growth of one cellular-automaton tumor, advanced from a timer.

    ``tick()`` advances ``stepsPerTick`` automaton steps and shows the current tumor as a
    "Tumor N (growing)" segment; ``finish()`` records the final tumor like ``place_tumor``;
    ``stop()`` abandons it and removes the preview. The caller's timer decides the pace.
    ``quality`` scores the final tumor as in ``place_tumor``.
    """

    def __init__(self, session: TumorSession, ras: Sequence[float], request: TumorRequest,
                 organMask: np.ndarray | None = None, stepsPerTick: int = 5,
                 growthFactory: Callable[..., Any] | None = None, quality: Any = None) -> None:
        self.session = session
        self.request = request
        self.quality = quality
        self.stepsPerTick = max(1, int(stepsPerTick))
        self._fresh = not session.hasOutputs
        try:
            image, organs, self._passed = engine_inputs(session, organMask)
            factory = growthFactory or _cellular_growth_class()
            self.growth = factory(image, organs, make_specs(request, ras)[0], labels="binary",
                                  case_id=session.inputVolume.GetName())
        except Exception:
            if self._fresh:
                session.removeOutputs()
            raise
        self.state: Any = None
        self._previewId: str | None = None

    @property
    def done(self) -> bool:
        return self.state is not None and bool(self.state.done)

    def tick(self) -> Any:
        """Advance the automaton and refresh the preview segment; returns the growth state."""
        self.state = self.growth.advance(self.stepsPerTick)
        self._showPreview(self.state)
        return self.state

    def finish(self) -> Placement:
        """Record the final tumor (ends the growth if it is still running)."""
        self._removePreview()
        return _record(self.session, self.growth.result(), self._passed, self.request.organ,
                       self.quality)

    def stop(self) -> None:
        """Abandon the growth: the outputs are as before the click."""
        self._removePreview()
        if self._fresh and self.session.tumorCount == 0:
            self.session.removeOutputs()

    def _showPreview(self, state: Any) -> None:
        mask, lo = preview_mask(state)
        if mask is None:
            return
        seg = self.session.segmentation
        if self._previewId is None:
            name = f"Tumor {self.session.tumorCount + 1} (growing)"
            self._previewId = segment_logic.add_mask_segment(
                seg, name, mask, lo, self.session.outputVolume,
                color=segment_logic.tumor_color(self.session.tumorCount + 1))
        else:
            segment_logic.set_segment_mask(seg, self._previewId, mask, lo,
                                           self.session.outputVolume)

    def _removePreview(self) -> None:
        if self._previewId is not None and self.session.segmentation is not None:
            segment_logic.remove_segments(self.session.segmentation, [self._previewId])
        self._previewId = None


def preview_mask(state: Any) -> tuple[np.ndarray | None, tuple[int, int, int]]:
    """(boolean tumor mask on the ROI grid, ROI offset) of a ``GrowthState``; (None, ...)
    before the tumor has any voxel."""
    mask = np.asarray(state.mask, dtype=bool)
    if not mask.any():
        return None, (0, 0, 0)
    return mask, tuple(int(v) for v in state.roi.lo)  # type: ignore[return-value]


def _cellular_growth_class() -> Callable[..., Any]:
    try:
        from TumorSynthLib.synthesis.cellular import CellularGrowth
    except ImportError as exc:
        raise MissingDependencyError(
            f"the cellular method needs PyTorch ({exc}); install it with the PyTorch "
            "extension (PyTorch Utils module) or choose the handcrafted method"
        ) from exc
    return CellularGrowth


# -- what the panel offers ------------------------------------------------------------------------
#: Methods the panel lists, in order (unavailable ones are shown greyed with the reason).
PANEL_METHODS = ("handcrafted", "cellular", "diffusion", "adversarial")
#: Diameter ranges (mm) used when the engine cannot be loaded (common.md "Stage and size").
FALLBACK_STAGE_RANGES = {"tiny": (4.0, 8.0), "early": (8.0, 20.0), "intermediate": (20.0, 50.0),
                         "advanced": (50.0, 100.0)}


def method_availability(names: Sequence[str] = PANEL_METHODS) -> dict[str, tuple[bool, str]]:
    """{method: (usable here, reason if not)} for the panel's method list."""
    try:
        _api, base, _volume = engine()
    except MissingDependencyError as exc:
        return {name: (False, str(exc)) for name in names}
    out = {}
    for name in names:
        try:
            base.get_method(name)
            out[name] = (True, "")
        except Exception as exc:   # DependencyError / InputError carry the reason to show
            out[name] = (False, _panel_reason(name, str(exc)))
    return out


def _panel_reason(method: str, reason: str) -> str:
    """The engine's reason, with advice that fits Slicer (no bare ``pip install``)."""
    if "unknown method" in reason:
        return f"the '{method}' method is not part of this TumorSynth version"
    if "torch" in reason.lower():
        return (f"the '{method}' method needs PyTorch: install it with the PyTorch extension "
                "(module PyTorch Utils), then restart Slicer")
    return reason


def diameter_range(stage: str, organ: str) -> tuple[float, float]:
    """Default diameter range (mm) of a stage for an organ (the slider's range)."""
    try:
        from TumorSynthLib.anatomy.organs import stage_diameter_range
        return stage_diameter_range(stage, organ)
    except Exception:
        return FALLBACK_STAGE_RANGES.get(stage, (4.0, 100.0))


def guess_organ(*names: str) -> str | None:
    """liver / pancreas / kidney named by any of ``names`` (segment name, terminology text),
    or None."""
    try:
        from TumorSynthLib.anatomy.organs import guess_organ_from_name
    except ImportError:
        guess_organ_from_name = None
    for name in names:
        if not name:
            continue
        for part in [name] + name.replace("^", "~").split("~"):
            organ = guess_organ_from_name(part) if guess_organ_from_name else None
            if organ is None:
                organ = next((o for o in ("liver", "pancreas", "kidney") if o in part.lower()),
                             None)
            if organ in ("liver", "pancreas", "kidney"):
                return organ
    return None


def organ_options(massEffect: str = "auto", necrosis: str = "auto", capsule: str = "auto",
                  satellites: str = "auto", count: int = 1) -> dict[str, Any]:
    """Engine options from the panel's tri-state switches ("auto" leaves the stage's random
    choice, "on"/"off" force it)."""
    options: dict[str, Any] = {}
    for key, value in (("mass_effect", massEffect), ("necrosis", necrosis),
                       ("capsule", capsule), ("satellites", satellites)):
        if value in ("on", "off"):
            options[key] = value == "on"
    if int(count) > 1:
        options["count"] = int(count)
    return options
