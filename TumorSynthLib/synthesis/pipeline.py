"""One tumor through the stages (``contracts`` has the picture), in steps.

``TumorJob(site, geometry, appearance, rng)`` draws the effect plan and applies the mass effect
at once, then runs the geometry and the appearance as step jobs: ``advance(n)`` moves the
current stage on by ``n`` steps (a one-shot provider finishes in one step), ``preview()`` shows
the tumor as it is, ``stop()`` ends the stepping stage that runs (a growing geometry stays a
valid smaller tumor, denoising keeps its current estimate), and
``finish()`` runs what remains, then shading and composite, and returns the ``TumorOutcome``.
All randomness comes from the tumor's generator in a fixed order, so the outcome does not
depend on how the steps were chunked. ``preview_image()`` is the ROI's HU as the tumor looks now
(while a stepping appearance such as diffusion denoising forms it). Inside ``listen_steps(fn)``
``finish()`` advances one step at a time and calls ``fn(job)`` after each (command-line
progress bars and events per step).
"""
from __future__ import annotations

import time
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator

import numpy as np

from ..anatomy.site import Site
from ..core.errors import GeometryError, PlacementError
from ..core.volume import Box
from . import registry
from .contracts import EDGE_SIGMA_RANGE_MM, Appearance, EffectPlan, Geometry, Scene, soft_blend
from .effects.lesions import add_satellites
from .effects.mass_effect import push_scene
from .effects.plan import draw_effect_plan
from .effects.shading import Shading, shade, soft_weight

#: Soft-edge sigma (mm) of a live preview (the composite draws its own from the tumor's stream).
PREVIEW_EDGE_SIGMA_MM = 0.5 * sum(EDGE_SIGMA_RANGE_MM)
_STEP_LISTENER: ContextVar[Callable[["TumorJob"], None] | None] = ContextVar("tumor_step_listener", default=None)


@contextmanager
def listen_steps(callback: Callable[["TumorJob"], None]) -> Iterator[None]:
    """Within the block, every step of every ``TumorJob`` calls ``callback(job)``."""
    token = _STEP_LISTENER.set(callback)
    try:
        yield
    finally:
        _STEP_LISTENER.reset(token)


@dataclass
class TumorOutcome:
    """A finished tumor: the ROI's new image and labels and how they were made."""

    site: Site
    plan: EffectPlan
    scene: Scene
    geometry: Geometry
    appearance: Appearance
    shading: Shading
    image_roi: np.ndarray            # float32 HU of the ROI after the tumor
    labels_roi: np.ndarray           # labels of the ROI with the tumor written
    tumor_id: int
    necrosis_id: int | None
    geometry_name: str
    appearance_name: str
    draws: dict[str, Any] = field(default_factory=dict)
    timing: dict[str, float] = field(default_factory=dict)

    @property
    def tumor_mask(self) -> np.ndarray:
        return self.geometry.mask

    @property
    def necrosis_mask(self) -> np.ndarray | None:
        return self.shading.necrosis


class _OneShot:
    """A provider without steps, as a one-step job."""

    def __init__(self, run: Callable[[], Any]) -> None:
        self._run, self._result = run, None

    step = property(lambda self: int(self._result is not None))
    total_steps = property(lambda self: 1)
    done = property(lambda self: self._result is not None)

    def advance(self, n: int = 1) -> None:
        if n > 0 and self._result is None:
            self._result = self._run()

    def stop(self) -> None:
        pass

    def preview(self) -> np.ndarray | None:
        return None

    def finish(self) -> Any:
        self.advance(1)
        return self._result


def start_job(provider: Any, *args: Any) -> Any:
    """The provider's own step job, or a one-shot job around ``build`` / ``render``."""
    if hasattr(provider, "start"):
        return provider.start(*args)
    method = provider.build if hasattr(provider, "build") else provider.render
    return _OneShot(lambda: method(*args))


class TumorJob:
    """One tumor, stage by stage (see the module docstring)."""

    def __init__(self, site: Site, geometry: str, appearance: str, rng: np.random.Generator) -> None:
        self.site, self.rng = site, rng
        self.geometry_provider = registry.provider("geometry", geometry)
        self.appearance_provider = registry.provider("appearance", appearance)
        self.timing: dict[str, float] = {}
        t0 = time.perf_counter()
        self.plan = draw_effect_plan(site, site.options, rng)
        self.scene = push_scene(site, self.plan, site.options.get("mass_effect_strength"))
        self.timing["mass_effect_s"] = time.perf_counter() - t0
        self.stage = "geometry"
        self.geometry: Geometry | None = None
        self.appearance: Appearance | None = None
        t0 = time.perf_counter()
        self._job = start_job(self.geometry_provider, site, self.scene, self.plan, rng)
        self.timing["geometry_s"] = time.perf_counter() - t0
        self._outcome: TumorOutcome | None = None
        self._preview_weight: np.ndarray | None = None

    # -- progress --------------------------------------------------------------------------------
    @property
    def done(self) -> bool:
        return self._outcome is not None

    @property
    def step(self) -> int:
        return int(self._job.step)

    @property
    def total_steps(self) -> int:
        return int(self._job.total_steps)

    def preview(self) -> np.ndarray | None:
        """The current tumor mask (ROI) while the geometry grows, then the final mask."""
        if self.geometry is not None:
            return self.geometry.mask
        return self._job.preview()

    def preview_image(self) -> np.ndarray | None:
        """The ROI's HU (float32) as the tumor looks now: the final image once done; while a
        stepping appearance forms, the scene plus its current change under a soft edge
        (``contracts.soft_blend``; organ and tumor voxels only; no stage effects yet); None
        otherwise."""
        if self._outcome is not None:
            return self._outcome.image_roi
        if self.stage != "appearance" or self.geometry is None:
            return None
        look = self._job.preview()
        if look is None:
            return None
        geometry = self.geometry
        scene = geometry.scene or self.scene
        if self._preview_weight is None:
            self._preview_weight = (geometry.weight if geometry.weight is not None else
                                    soft_weight(geometry.mask, self.site.spacing, PREVIEW_EDGE_SIGMA_MM))
        allowed = scene.organ | geometry.mask
        solid = look.solid_in(Box((0, 0, 0), tuple(geometry.mask.shape)))
        change = soft_blend(self._preview_weight, look.change_hu, solid)
        return (scene.image + np.where(allowed, change, 0.0)).astype(np.float32)

    def advance(self, n: int = 1) -> None:
        """Move the current stage on by ``n`` steps (the next stage starts when one ends)."""
        if self._outcome is not None:
            return
        t0 = time.perf_counter()
        self._job.advance(n)
        self.timing[f"{self.stage}_s"] = self.timing.get(f"{self.stage}_s", 0.0) + time.perf_counter() - t0
        if self._job.done:
            self._next_stage()
        listener = _STEP_LISTENER.get()
        if listener is not None:
            listener(self)

    def stop(self) -> None:
        """End the current stepping stage where it is: a growing geometry keeps the tumor grown
        so far (the appearance then paints it), a denoising appearance keeps its current
        estimate (after at least one step)."""
        if self.stage in ("geometry", "appearance") and hasattr(self._job, "stop"):
            self._job.stop()

    def finish(self) -> TumorOutcome:
        chunk = 1 if _STEP_LISTENER.get() is not None else 1_000_000
        while self._outcome is None:
            self.advance(chunk)
        return self._outcome

    # -- stages ----------------------------------------------------------------------------------
    def _next_stage(self) -> None:
        t0 = time.perf_counter()
        if self.stage == "geometry":
            self.geometry = self._complete_geometry(self._job.finish())
            scene = self.geometry.scene or self.scene
            self._job = start_job(self.appearance_provider, self.site, scene, self.geometry, self.rng)
            self.stage = "appearance"
        elif self.stage == "appearance":
            self.appearance = self._job.finish()
            self._outcome = self._composite()
            self.stage = "done"
        self.timing["stages_s"] = self.timing.get("stages_s", 0.0) + time.perf_counter() - t0

    def _complete_geometry(self, geometry: Geometry) -> Geometry:
        site = self.site
        if tuple(geometry.mask.shape) != tuple(site.roi.shape):
            raise GeometryError(f"geometry '{self.geometry_provider.name}' returned a mask of shape "
                                f"{geometry.mask.shape}, not the ROI shape {site.roi.shape}; this is a bug")
        if self.plan.satellites and not geometry.satellites and geometry.mask.any():
            scene = geometry.scene or self.scene
            allowed = scene.organ & ~scene.vessels & ~site.occupied
            geometry.mask = add_satellites(geometry.mask, site.center_vox, 0.5 * site.diameter_mm,
                                           site.spacing, allowed, self.rng, geometry.draws)
            geometry.satellites = True
        if not geometry.mask.any():
            raise PlacementError(f"no {site.organ} voxel around the centre can hold a tumor (vessels "
                                 "or earlier tumors fill the spot); click elsewhere")
        return geometry

    def _composite(self) -> TumorOutcome:
        site, geometry, appearance = self.site, self.geometry, self.appearance
        assert geometry is not None and appearance is not None
        scene = geometry.scene or self.scene
        draws: dict[str, Any] = {}
        shading = shade(site, scene, geometry, appearance, self.plan, self.rng, draws)
        image = np.array(scene.image, dtype=np.float32, copy=True)
        image[shading.box.slices] += shading.delta
        tumor_id, necrosis_id = tumor_label_ids(site)
        labels = np.array(scene.labels, copy=True)
        dtype = np.promote_types(labels.dtype, np.min_scalar_type(max(tumor_id, necrosis_id or 0)))
        labels = labels.astype(dtype, copy=False)
        sl = shading.box.slices                  # the tumor and its necrosis lie in the shading box
        labels[sl][geometry.mask[sl]] = tumor_id
        if necrosis_id is not None and shading.necrosis is not None:
            labels[sl][shading.necrosis[sl] & geometry.mask[sl]] = necrosis_id
        image.setflags(write=False)              # shared with the case's patch (no copy): read-only
        labels.setflags(write=False)
        all_draws = {"placement": site.draws, "effects": self.plan.draws, "geometry": geometry.draws,
                     "appearance": appearance.draws, "shading": draws}
        return TumorOutcome(site, self.plan, scene, geometry, appearance, shading, image, labels,
                            tumor_id, necrosis_id, self.geometry_provider.name, self.appearance_provider.name,
                            all_draws, self.timing)


def tumor_label_ids(site: Site) -> tuple[int, int | None]:
    """(tumor id, necrosis id or None) of a site: the convention's tumor id unless the options
    give ``tumor_label``; ``necrosis_label`` gives the necrotic core its own id."""
    options = site.options
    tumor = int(options.get("tumor_label", site.tumor_id))
    necrosis = options.get("necrosis_label")
    return tumor, None if necrosis is None else int(necrosis)


__all__ = ["TumorJob", "TumorOutcome", "listen_steps", "start_job", "tumor_label_ids"]
