"""Live synthesis of one tumor for interactive front ends (Slicer, the web app).

``SynthesisJob(image, organs, spec)`` places the tumor at once (errors such as a click outside
the organ are raised here), then ``advance(n)`` runs ``n`` more steps of the current stage
(cellular growth steps, diffusion denoising steps; a one-shot stage takes one step) and returns
a ``LiveState`` to draw (the tumor mask of the ROI as it is now and, while an appearance such
as diffusion denoising forms, the ROI's current HU estimate), ``stop()`` ends the stage that is
running early (a growing tumor stays smaller; denoising keeps its current estimate), and
``result()`` finishes and returns the ``Synthesis``, the same as ``synthesize`` gives for that
spec however the steps were chunked.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..anatomy.site import TumorSpec
from ..core.allocator import tune_allocator
from ..core.blas import single_threaded_blas
from ..core.errors import InputError
from ..core.volume import Box, Volume
from .case import SynthesisCase
from .result import Synthesis


@dataclass
class LiveState:
    """A snapshot: the current stage ("geometry" | "appearance" | "done"), steps of that stage
    run and expected, the tumor mask of the ROI (None before it has a voxel), the ROI box, and
    ``image``: the ROI's HU as the tumor looks now (float32, ROI shape) while a stepping
    appearance forms it and once done (then read-only: it is the result's own array), else
    None."""

    stage: str
    step: int
    total_steps: int
    mask: np.ndarray | None
    roi: Box
    done: bool
    image: np.ndarray | None = None

    @property
    def fraction(self) -> float:
        """Progress of the current stage in [0, 1]."""
        if self.done:
            return 1.0
        return min(self.step / max(self.total_steps, 1), 0.99)


class SynthesisJob:
    """One tumor, advanced step by step (see the module docstring)."""

    def __init__(self, image: Volume, organs: Volume | None, spec: TumorSpec, labels: str = "totalseg",
                 *, case_id: str | None = None, variant: int = 0) -> None:
        if not isinstance(spec, TumorSpec):
            raise InputError(f"expected a TumorSpec, got {type(spec).__name__}")
        if (spec.options or {}).get("count", 1) not in (1, "1"):
            raise InputError("a live job makes one tumor; use synthesize() for count > 1")
        tune_allocator()
        self._case = SynthesisCase(image, organs, labels, case_id=case_id, variant=variant)
        with single_threaded_blas():
            self._job = self._case.start(spec, 0)
        self.site = self._job.site
        self._result: Synthesis | None = None

    @property
    def done(self) -> bool:
        return self._job.done

    @property
    def stage(self) -> str:
        """The stage running now: "geometry", "appearance" or "done"."""
        return self._job.stage

    @property
    def state(self) -> LiveState:
        mask = self._job.preview()
        return LiveState(self._job.stage, self._job.step, self._job.total_steps,
                         mask if mask is not None and mask.any() else None, self.site.roi, self._job.done,
                         self._job.preview_image())

    def advance(self, n: int = 1) -> LiveState:
        if self._result is not None:
            raise InputError("this job is finished (result() was called); start a new one")
        with single_threaded_blas():
            self._job.advance(n)
        return self.state

    def stop(self) -> None:
        self._job.stop()

    def result(self) -> Synthesis:
        if self._result is None:
            with single_threaded_blas():
                self._case.add(self._job.finish())
            self._result = self._case.result()
        return self._result


__all__ = ["LiveState", "SynthesisJob"]
