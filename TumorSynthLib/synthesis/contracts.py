"""The typed hand-overs between the synthesis stages, and the two kinds of provider.

One tumor passes through (``pipeline.TumorJob``)::

    Site (placement)                      where, how large, parenchyma statistics, ROI arrays
      -> EffectPlan  (effects.plan)       which stage effects, drawn once in one order
      -> Scene       (effects.mass_effect) the ROI with the tissue pushed aside (or as it was)
      -> Geometry    (a GeometryProvider)  the tumor's occupancy in the ROI
      -> Appearance  (an AppearanceProvider) the smooth HU change inside it
      -> shading     (effects.shading)    vessels, capsule, necrosis -> the ROI's HU change
      -> composite                        new ROI image and labels, the scan's grain kept
      -> report                           declared fields (report.py)

A provider is a class registered with one decorator (``registry.register_geometry`` /
``register_appearance``) in one file under ``geometry/`` or ``appearance/``. A provider that
works in steps (cellular growth, diffusion denoising) also offers ``start(...) -> StepJob`` so
that live front ends can advance it from a timer; ``pipeline`` wraps one-shot providers.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Protocol, Union, runtime_checkable

import numpy as np

from ..anatomy.site import Site
from ..core.gaussian import gaussian_blur
from ..core.volume import Box, bounding_box

#: The low-pass of ``Scene.low_frequencies`` is cut at this many sigmas.
LOW_PASS_TRUNCATE = 3.0


def low_pass(image: np.ndarray) -> np.ndarray:
    """``image`` blurred by a 1-voxel Gaussian: the level a tumor's targets are measured
    against, and the image minus it the grain (every grain and level measure uses this one)."""
    return gaussian_blur(image, 1.0, LOW_PASS_TRUNCATE, "nearest")


def low_pass_rows(image: np.ndarray, step: int) -> np.ndarray:
    """``low_pass(image)[::step]`` (the same filter; float32, to ~1e-5 HU) for about
    1/``step`` of its cost: the first axis is summed at the kept rows only. For statistics that
    a sample of a large box measures as well as the whole box (a grain)."""
    image = np.asarray(image, dtype=np.float32)
    if step <= 1:
        return low_pass(image)
    radius = int(LOW_PASS_TRUNCATE + 0.5)
    weights = np.exp(-0.5 * np.arange(-radius, radius + 1, dtype=np.float64) ** 2)
    weights /= weights.sum()
    rows = np.arange(0, image.shape[0], step)
    out = np.zeros((len(rows), *image.shape[1:]), dtype=np.float32)
    for offset, weight in zip(range(-radius, radius + 1), weights):
        out += np.float32(weight) * image[np.clip(rows + offset, 0, image.shape[0] - 1)]
    return gaussian_blur(out, [0.0] + [1.0] * (image.ndim - 1), LOW_PASS_TRUNCATE, "nearest")


#: Soft-edge blur of the tumor weight, sigma in mm (common.md "Edge").
EDGE_SIGMA_RANGE_MM = (1.0, 2.0)


def tumor_box(mask: np.ndarray, spacing: np.ndarray) -> Box | None:
    """Where a tumor's change lives: the mask's bounding box plus the soft edge's reach (3
    sigmas of the largest edge blur, and a voxel), clipped to the ROI; None for an empty mask."""
    reach = np.ceil(3.0 * EDGE_SIGMA_RANGE_MM[1] / np.asarray(spacing, dtype=float)).astype(int) + 1
    return bounding_box(mask, reach)


@dataclass
class EffectPlan:
    """Which stage effects one tumor gets (common.md "Edge, blending, effects"); drawn once per
    tumor, in one order, before any provider runs (``effects.plan.draw_effect_plan``)."""

    necrosis: bool
    capsule: bool
    satellites: bool
    mass_effect: bool
    draws: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, bool]:
        return {"necrosis": self.necrosis, "capsule": self.capsule, "satellites": self.satellites,
                "mass_effect": self.mass_effect}


@dataclass
class Scene:
    """The ROI a tumor is built in and painted on: the site's arrays after the mass effect (or
    the site's own arrays when there is none). Same shapes as the site's ROI arrays."""

    image: np.ndarray               # float32 HU
    labels: np.ndarray              # integer labels (tumor not yet written)
    organ: np.ndarray               # bool: organ (tissue and lesions)
    vessels: np.ndarray             # bool: walls
    moved_voxels: int = 0           # voxels the mass effect changed
    displacement_mm: float = 0.0    # largest displacement applied (mm)
    _cache: dict = field(default_factory=dict, repr=False)

    def low_frequencies(self, box: Box, inside_known: bool = False) -> np.ndarray:
        """The image in ``box`` blurred by a 1-voxel Gaussian (float32): the level that targets
        are measured against, so that the grain (image minus this) stays on top (cached per
        box). ``inside_known``: a box inside one already computed may be read from it (the
        values then differ near the box's faces, where the larger box saw more of the image: for
        callers that only need the level, e.g. the necrosis' inside the tumor's; a caller that
        compares with its own ``low_pass`` of the box must not ask for this)."""
        if inside_known:
            for key, low in self._cache.items():
                if key[0] == "low" and all(a <= b and d <= c for a, b, c, d in zip(key[1], box.lo, key[2], box.hi)):
                    return low[tuple(slice(b - a, d - a) for a, b, d in zip(key[1], box.lo, box.hi))]
        return self.memo(("low", box.lo, box.hi), lambda: low_pass(self.image[box.slices]))

    def memo(self, key: tuple, compute: Callable[[], Any]) -> Any:
        """``compute()`` once per ``key`` for this scene (measurements several stages need)."""
        if key not in self._cache:
            self._cache[key] = compute()
        return self._cache[key]


@dataclass
class Geometry:
    """What a geometry provider returns: the tumor's occupancy in the ROI.

    ``weight`` is the soft occupancy in [0, 1] that blends the appearance in (None: the
    pipeline blurs ``mask`` by the soft-edge sigma). A provider that grows necrosis or
    satellites itself sets ``necrosis`` / ``satellites``; otherwise the shared effects add them.
    A provider that changes the tissue (the automaton pushes vessels) returns that ``scene``.
    ``info`` holds the provider's facts for the report (JSON-able)."""

    mask: np.ndarray
    weight: np.ndarray | None = None
    necrosis: np.ndarray | None = None
    satellites: bool = False
    size_limited: bool = False
    scene: Scene | None = None
    draws: dict[str, Any] = field(default_factory=dict)
    info: dict[str, Any] = field(default_factory=dict)


@dataclass
class Appearance:
    """What an appearance provider returns: ``change_hu`` (float32, ROI shape), the HU to add
    inside the tumor (negative: darker). It should be smooth (no voxel-scale noise): the scene's
    own grain stays in the tumor, so a provider never makes noise; a provider that generates
    absolute HU with noise of its own turns them into a smooth change with
    ``intensity.change_towards`` (and the shading blurs a pattern that still makes the tumor
    grainier than its organ). ``target_drop_hu``
    is the mean drop the provider aimed at (None when it has no target); ``info`` names a
    learned model (id, SHA256) and other facts for the report.

    ``solid_hu`` (float32, ``solid_box`` shape, zero outside the tumor) is the part of
    ``change_hu`` that makes the tumor solid parenchyma (``intensity.solid_change``: fat, sinus
    and contour replaced). The shading applies it in full inside the tumor's mask, where the soft
    edge fades only the rest: faded, the replaced anatomy would show through the tumor's outer
    layers as a ghost (and as extra grain)."""

    change_hu: np.ndarray
    target_drop_hu: float | None = None
    draws: dict[str, Any] = field(default_factory=dict)
    info: dict[str, Any] = field(default_factory=dict)
    solid_hu: np.ndarray | None = None
    solid_box: Box | None = None

    def solid_in(self, box: Box) -> np.ndarray:
        """``solid_hu`` on ``box`` (zeros where it has none; float32)."""
        out = np.zeros(box.shape, dtype=np.float32)
        if self.solid_hu is None or self.solid_box is None:
            return out
        lo = tuple(max(a, b) for a, b in zip(box.lo, self.solid_box.lo))
        hi = tuple(min(a, b) for a, b in zip(box.hi, self.solid_box.hi))
        if any(b <= a for a, b in zip(lo, hi)):
            return out
        dst = tuple(slice(a - o, b - o) for a, b, o in zip(lo, hi, box.lo))
        src = tuple(slice(a - o, b - o) for a, b, o in zip(lo, hi, self.solid_box.lo))
        out[dst] = self.solid_hu[src]
        return out


def soft_blend(weight: np.ndarray, change: np.ndarray, solid: np.ndarray) -> np.ndarray:
    """A change as the soft edge ``weight`` applies it: ``weight * change + (1 - weight) *
    solid``, i.e. the solid part (``Appearance.solid_hu``, zero outside the tumor) in full, the
    rest faded (float32)."""
    return (weight * change + (np.float32(1.0) - weight) * solid).astype(np.float32)


@runtime_checkable
class StepJob(Protocol):
    """A stage that runs in steps (``advance``) so that front ends can show it growing."""

    @property
    def step(self) -> int: ...

    @property
    def total_steps(self) -> int: ...

    @property
    def done(self) -> bool: ...

    def advance(self, n: int = 1) -> None: ...

    def preview(self) -> Any:
        """The current tumor mask of the ROI (geometry) or the ``Appearance`` as it stands
        (appearance), or None."""

    def finish(self) -> Union[Geometry, Appearance]:
        """Run the remaining steps (or stop where it is, if ``stop()`` was called) and return."""


class GeometryProvider(Protocol):
    """Makes the tumor's occupancy. ``options`` lists the ``TumorSpec.options`` keys it reads
    (``synthesis.options`` declares their types)."""

    name: str
    description: str
    options: tuple[str, ...]

    def available(self) -> tuple[bool, str]:
        """(True, "") when usable here, else (False, what the user can do about it)."""

    def roi_radius_mm(self, diameter_mm: float, stage: str) -> float:
        """How far (mm) from the centre the tumor and its effects may reach."""

    def build(self, site: Site, scene: Scene, plan: EffectPlan, rng: np.random.Generator) -> Geometry:
        """The tumor of ``site`` in ``scene``; all randomness from ``rng``."""


class AppearanceProvider(Protocol):
    """Paints the inside of a geometry (see ``Appearance``)."""

    name: str
    description: str
    options: tuple[str, ...]

    def available(self) -> tuple[bool, str]: ...

    def render(self, site: Site, scene: Scene, geometry: Geometry, rng: np.random.Generator) -> Appearance:
        """The HU change inside ``geometry.mask``; all randomness from ``rng``."""


__all__ = ["Appearance", "AppearanceProvider", "EDGE_SIGMA_RANGE_MM", "EffectPlan", "Geometry",
           "GeometryProvider", "LOW_PASS_TRUNCATE", "Scene", "low_pass", "soft_blend", "StepJob", "tumor_box"]
