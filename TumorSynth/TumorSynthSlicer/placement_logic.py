"""One click -> one tumor: world RAS + panel settings -> engine call -> output nodes.

The engine (``TumorSynthLib``) is imported here lazily, inside the functions that call it, so
this module itself imports only slicer, vtk and numpy. The engine sees the *output* volume's
voxels (a copy of the CT made on the first tumor) as an ``[i, j, k]`` view with its world
affine; the input volume node is never handed over, so it stays bit-identical.

Fast methods run at once (``place_tumor``). Methods that run in steps (cellular growth,
diffusion denoising; the engine catalogue says which) can instead be advanced a few steps per
timer tick (``LiveJob``, over the engine's ``SynthesisJob``) so the user watches the tumor form
and can stop it: a growing tumor as a segment, a tumor being denoised as the model's current
estimate written into the output volume (one denoiser call per tick).

With a quality filter (``load_quality_filter``: the shipped ``default`` segmentation model by
default) every placed tumor is scored: ``report["quality_p"]`` is the share of the tumor the
model finds (FreeTumor's P), shown in the "Quality P" column of the tumors table.

Example::

    session = TumorSession(ctNode)
    request = TumorRequest(organ="liver", stage="early", diameterMm=15, seed=3)
    placement = place_tumor(session, clickRas, request, organMask=liverMask)
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from . import segment_logic
from .errors import MissingDependencyError
from .output_logic import TumorSession
from .volume_logic import array_ijk, write_patch

#: What each stage of a live job is called in the progress text (multi-step, one-shot).
STAGE_WORDS = {"geometry": ("growing", "shaping"), "appearance": ("denoising", "painting")}


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

    @property
    def warnings(self) -> list[str]:
        """The reports' warnings, once each (numbered by tumor when there are several)."""
        from TumorSynthLib.synthesis.report import report_warnings

        return report_warnings(self.reports)


def engine() -> Any:
    """The ``TumorSynthLib`` entry points the placement needs, or a clear error if absent."""
    try:
        import TumorSynthLib
        from TumorSynthLib.synthesis.live import SynthesisJob
        from TumorSynthLib.volume import Volume
    except ImportError as exc:
        raise MissingDependencyError(
            f"the TumorSynth engine could not be loaded ({exc}); install the extension's Python "
            "dependencies (button 'Install dependencies') and restart Slicer"
        ) from exc
    return TumorSynthLib, SynthesisJob, Volume


def make_spec(request: TumorRequest, ras: Sequence[float]) -> Any:
    """The engine's ``TumorSpec`` for a click at world RAS ``ras`` (mm). ``options["count"] = k``
    means, as everywhere in the engine, the clicked tumor plus k - 1 at sampled places."""
    lib, _job, _volume = engine()
    return lib.TumorSpec(center_ras=tuple(float(v) for v in ras), organ=request.organ,
                         diameter_mm=request.diameterMm, stage=request.stage, method=request.method,
                         seed=int(request.seed), options=dict(request.options))


def engine_inputs(session: TumorSession, organMask: np.ndarray | None) -> tuple[Any, Any, Any]:
    """(image Volume, organ labels Volume or None, the labels array passed) for the engine."""
    _lib, _job, Volume = engine()
    image_array, affine = session.engineImage()
    passed = session.engineLabels(organMask)
    image = Volume(image_array, affine, {"case_id": session.inputVolume.GetName()})
    organs = None if passed is None else Volume(passed, affine)
    return image, organs, passed


class PendingPlacement:
    """One click split where threads meet: the constructor reads the engine's inputs from the
    scene (main thread), ``run()`` calls the engine (any thread: it touches no MRML node), and
    ``record()`` writes the result into the outputs (main thread). A front end that must keep
    its views responsive (the web front end) runs ``run()`` in a worker thread; ``place_tumor``
    runs the three in a row.

    While ``run()`` is under way the output volume must not change (its voxels are what the
    engine reads): front ends refuse further clicks, undo and clear meanwhile (``ClickGate``).
    """

    def __init__(self, session: TumorSession, ras: Sequence[float], request: TumorRequest,
                 organMask: np.ndarray | None = None,
                 synthesize: Callable[..., Any] | None = None, quality: Any = None) -> None:
        self.session = session
        self.request = request
        self.quality = quality
        self._fresh = not session.hasOutputs
        self.result: Any = None
        try:
            self._image, self._organs, self._passed = engine_inputs(session, organMask)
            self._synthesize = synthesize or engine()[0].synthesize
            self._spec = make_spec(request, ras)
        except Exception:
            self.discard()
            raise

    def run(self) -> Any:
        """Call the engine (no MRML access); returns and keeps its result."""
        self.result = self._synthesize(self._image, self._organs, [self._spec], labels="binary",
                                       case_id=self.session.inputVolume.GetName())
        return self.result

    def record(self) -> Placement:
        """Write the engine's result into the session's outputs (main thread)."""
        if self.result is None:
            raise RuntimeError("record() before run(): the engine has not run yet")
        return _record(self.session, self.result, self._passed, self.request.organ, self.quality)

    def discard(self) -> None:
        """Forget the click: outputs created for it (first tumor) are removed again."""
        if self._fresh and self.session.tumorCount == 0:
            self.session.removeOutputs()


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
    pending = PendingPlacement(session, ras, request, organMask, synthesize, quality)
    try:
        pending.run()
    except Exception:
        pending.discard()
        raise
    return pending.record()


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


class LiveJob:
    """One tumor formed step by step from a timer (cellular growth, diffusion denoising).

    ``tick()`` advances the engine job -- ``stepsPerTick`` growth steps, or one denoising step
    (one denoiser call) -- and shows the current tumor as a "Tumor N (forming)" segment and,
    while an appearance is being denoised, its current HU estimate in the output volume's ROI;
    ``progress`` / ``progressText`` follow the steps. ``finish()`` restores the ROI and records
    the final tumor like ``place_tumor`` (undo then works as for any tumor); ``stop()`` abandons
    it, restores the ROI and removes the preview. The caller's timer decides the pace; the
    caller must ignore further clicks while a job runs (``click_logic.ClickGate``). ``tick()``
    is ``show(advance())``: a front end may run ``advance()`` in a worker thread.
    ``quality`` scores the final tumor as in ``place_tumor``.
    """

    def __init__(self, session: TumorSession, ras: Sequence[float], request: TumorRequest,
                 organMask: np.ndarray | None = None, stepsPerTick: int = 5,
                 jobFactory: Callable[..., Any] | None = None, start: bool = True,
                 quality: Any = None) -> None:
        self.session = session
        self.request = request
        self.quality = quality
        self.stepsPerTick = max(1, int(stepsPerTick))
        self._fresh = not session.hasOutputs
        self.job: Any = None
        self.state: Any = None
        self._previewId: str | None = None
        self._shownBox: tuple[tuple[int, ...], tuple[int, ...], np.ndarray] | None = None
        try:
            self._image, self._organs, self._passed = engine_inputs(session, organMask)
            self._factory = jobFactory or engine()[1]
            self._spec = make_spec(request, ras)
        except Exception:
            self.stop()
            raise
        if start:
            try:
                self.begin()
            except Exception:
                self.stop()
                raise

    def begin(self) -> Any:
        """Create the engine job: the tumor is placed (a click outside the organ raises here).
        No MRML access: with ``start=False`` a front end may call it in a worker thread (and
        ``stop()`` on the main thread if it raises)."""
        self.job = self._factory(self._image, self._organs, self._spec, labels="binary",
                                 case_id=self.session.inputVolume.GetName())
        return self.job

    @property
    def done(self) -> bool:
        return self.state is not None and bool(self.state.done)

    @property
    def progress(self) -> float:
        """Progress of the running stage in [0, 1] (0 before the first tick)."""
        return 0.0 if self.state is None else float(self.state.fraction)

    @property
    def progressText(self) -> str:
        return progress_text(self.state)

    def tick(self) -> Any:
        """Advance the job and refresh the previews; returns the engine's state."""
        return self.show(self.advance())

    def advance(self) -> Any:
        """Advance the engine ``stepsPerTick`` growth steps or one denoising step (one denoiser
        call). No MRML access: any thread."""
        stage = getattr(self.job, "stage", "geometry")
        return self.job.advance(self.stepsPerTick if stage == "geometry" else 1)

    def show(self, state: Any) -> Any:
        """Show ``state`` (from ``advance``): the preview segment and, while denoising, the HU
        estimate in the output volume (main thread)."""
        self.state = state
        self._showPreview(state)
        self._showEstimate(state)
        return state

    def finish(self) -> Placement:
        """Record the tumor as it is now (a growing geometry is stopped first; denoising keeps
        its current estimate)."""
        return self.record(self.finalize())

    def finalize(self) -> Any:
        """Stop the growth and let the engine finish the tumor (appearance, report); returns
        the engine's result. No MRML access: any thread."""
        self.job.stop()
        return self.job.result()

    def record(self, result: Any) -> Placement:
        """Restore the ROI, replace the preview with the finished tumor in the outputs (main
        thread)."""
        self._removePreview()
        self._restoreEstimate()
        return _record(self.session, result, self._passed, self.request.organ, self.quality)

    def stop(self) -> None:
        """Abandon the job: the outputs are as before the click."""
        self._removePreview()
        self._restoreEstimate()
        if self._fresh and self.session.tumorCount == 0:
            self.session.removeOutputs()

    def _showEstimate(self, state: Any) -> None:
        """Write the engine's current HU estimate of the ROI into the output volume (the ROI's
        voxels from before are kept to be restored)."""
        image = getattr(state, "image", None)
        volume = self.session.outputVolume
        if image is None or volume is None:
            return
        lo = tuple(int(v) for v in state.roi.lo)
        hi = tuple(int(v) for v in state.roi.hi)
        if self._shownBox is None:
            box = tuple(slice(a, b) for a, b in zip(lo, hi))
            self._shownBox = (lo, hi, array_ijk(volume)[box].copy())
        write_patch(volume, (lo, hi), image)

    def _restoreEstimate(self) -> None:
        if self._shownBox is not None and self.session.outputVolume is not None \
                and self.session.outputVolume.GetScene() is not None:
            lo, hi, before = self._shownBox
            write_patch(self.session.outputVolume, (lo, hi), before)
        self._shownBox = None

    def _showPreview(self, state: Any) -> None:
        mask, lo = preview_mask(state)
        if mask is None:
            return
        seg = self.session.segmentation
        if self._previewId is None:
            name = f"Tumor {self.session.tumorCount + 1} (forming)"
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


def progress_text(state: Any) -> str:
    """"denoising: step 2 / 4", "growing: step 30 / 90", ... of an engine ``LiveState``."""
    if state is None:
        return "starting"
    if state.done:
        return "done"
    many, one = STAGE_WORDS.get(state.stage, (state.stage, state.stage))
    if state.total_steps <= 1:
        return one
    return f"{many}: step {state.step} / {state.total_steps}"


def preview_mask(state: Any) -> tuple[np.ndarray | None, tuple[int, int, int]]:
    """(boolean tumor mask on the ROI grid, ROI offset) of an engine ``LiveState``; (None, ...)
    before the tumor has any voxel."""
    if state.mask is None:
        return None, (0, 0, 0)
    mask = np.asarray(state.mask, dtype=bool)
    if not mask.any():
        return None, (0, 0, 0)
    return mask, tuple(int(v) for v in state.roi.lo)  # type: ignore[return-value]


def organ_options(massEffect: str = "auto", necrosis: str = "auto", capsule: str = "auto",
                  satellites: str = "auto", count: int = 1, lesion: str = "") -> dict[str, Any]:
    """Engine options from the panel's tri-state switches ("auto" leaves the stage's random
    choice, "on"/"off" force it) and its lesion type (empty: the engine's default, a tumor)."""
    options: dict[str, Any] = {"lesion": lesion} if lesion else {}
    for key, value in (("mass_effect", massEffect), ("necrosis", necrosis),
                       ("capsule", capsule), ("satellites", satellites)):
        if value in ("on", "off"):
            options[key] = value == "on"
    if int(count) > 1:
        options["count"] = int(count)
    return options
