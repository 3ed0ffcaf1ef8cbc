"""The ``cellular`` method (after Lai et al., MICCAI 2024; ``specs/methods.md`` section 2).

A stochastic 3D cellular automaton grows the tumor on an isotropic grid of ``h = clamp(d / 32,
0.5, 3)`` mm around the placed centre (``cellular_grid``), with the rules of
``cellular_engine`` (torch, CPU or CUDA); the final state is mapped to HU on the scan's ROI
(``cellular_render``). Pieces:

* ``CellularRun``: one tumor's growth from a ``Site``: draws (torch seed from one draw of the
  numpy generator, stage switches, lobulation, satellites, necrosis), then one step at a time:
  growth until the equivalent diameter reaches the target (or ``options["steps"]`` steps
  exactly), then the necrosis phase. The calibration table gives the expected steps (progress)
  and the step budget; a run that stalls or exhausts the budget is "limited by the organ".
* ``CellularMethod`` (registered as ``"cellular"``): ``render`` runs to completion.
* ``CellularGrowth``: live growth for the Slicer module (``advance(n)`` from a timer, ``grow()``,
  ``result()``); the same seed gives the same tumor however the steps are chunked, and a run
  stopped early gives a valid smaller tumor.

Stage presets: mass effect (vessels pushed, contour of pancreas / kidney bulging) for
intermediate and advanced; lobulated growth (a smooth random field scales the acceptance by up
to 30 % / 50 %) for intermediate / advanced; necrosis (p 0.5) for advanced tumors or tumors of at
least ``NECROSIS_MIN_DIAMETER_MM``; satellites (p 0.3, advanced); capsule (liver, p 0.5,
intermediate / advanced). Each may be forced with ``options`` (``mass_effect``, ``necrosis``,
``satellites``, ``capsule``, ``lobulation`` = strength in [0, 0.95]); ``steps`` = N runs exactly
N growth steps; ``device`` = auto | cpu | cuda. Reference defects fixed: acceptance really applied, neighbours
uniform over 26, necrosis labelled tumor, 3D (not per-slice) blur.
"""
from __future__ import annotations

import importlib.util
import math
import time
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from ..core.errors import InputError, PlacementError
from ..core.volume import Box, Volume
from . import effects
from ..anatomy.site import Site, TumorSpec
from .base import Synthesis, TumorRender, register_method
from .cellular_grid import (
    VESSEL_PUSHES,
    CAGrid,
    ca_half_cells,
    ca_spacing_mm,
    cell_fields,
    expected_steps,
    nearest_tissue_cell,
    resample,
    steps_for_diameter,
)

#: Room (mm) beyond the automaton grid for the soft edge (3 sigma of at most 2 mm) and a voxel.
ROI_MARGIN_MM = 8.0
#: Step budget = factor x expected steps + extra; a run without growth for STALL_STEPS stops.
BUDGET_FACTOR, BUDGET_EXTRA, STALL_STEPS = 2.0, 20, 25
MAX_STEPS_OPTION = 5000
STAGE_LOBULATION = {"tiny": 0.0, "early": 0.0, "intermediate": 0.3, "advanced": 0.5}
#: Correlation length of the lobulation field, as a fraction of the diameter.
LOBULATION_SCALE = 0.25
NECROSIS_MIN_DIAMETER_MM = {"liver": 30.0, "pancreas": 25.0, "kidney": 30.0}
NECROSIS_FRACTION_RANGE = (0.2, 0.5)
NECROSIS_SEEDS_RANGE = (5, 20)      # integers in [5, 20)
NECROSIS_CORE_FRACTION = 0.35       # seeds lie within this fraction of the radius of the centroid
NECROSIS_STEP_DIVISOR = 7           # necrosis spreads for ~growth steps / 7 steps
#: The organ contour may give way this far (fraction of r) for pancreas and kidney tumors.
BULGE_FRACTION = {"pancreas": 0.3, "kidney": 0.3}
EXOPHYTIC_BULGE_FRACTION = 0.6


def _switch(options: dict[str, Any], name: str, default: bool) -> bool:
    value = options.get(name)
    return default if value is None else bool(value)


def steps_option(options: dict[str, Any]) -> int | None:
    """``options["steps"]`` as an int (None when absent); InputError unless 0..5000."""
    value = options.get("steps")
    if value is None:
        return None
    try:
        ok = not isinstance(value, bool) and float(value) == int(float(value))
    except (TypeError, ValueError, OverflowError):
        ok = False
    if not ok or not 0 <= int(float(value)) <= MAX_STEPS_OPTION:
        raise InputError(f"options['steps'] must be a whole number of automaton steps from 0 to "
                         f"{MAX_STEPS_OPTION}, got {value!r}; or leave it out to grow to the diameter")
    return int(float(value))


@dataclass
class GrowthState:
    """A snapshot of a live growth: the tumor ``mask`` on the ROI grid (``roi`` box of the
    scan), steps run so far (growth + necrosis), size in mm, and whether the run is over."""

    mask: np.ndarray
    roi: Box
    step: int
    equivalent_diameter_mm: float
    done: bool
    phase: str                      # "growth" | "necrosis" | "done"
    target_diameter_mm: float
    expected_steps: int             # growth steps the calibration expects (for progress bars)


@dataclass
class _Satellite:
    cell: tuple[int, int, int]
    diameter_mm: float
    start_step: int


class CellularRun:
    """The growth of one tumor in ``site`` (see the module docstring)."""

    def __init__(self, site: Site, rng: np.random.Generator, device: Any = "auto") -> None:
        from .cellular_engine import CellularAutomaton, resolve_device

        self.site = site
        opts = dict(site.spec.options or {})
        self.fixed_steps = steps_option(opts)
        self.device = resolve_device(opts.get("device", "auto") if device == "auto" else device)
        self.draws: dict[str, Any] = {}
        self.switches = self._draw_switches(site, opts, rng)
        seed = int(rng.integers(0, 2**63 - 1))
        self.draws["torch_seed"] = seed
        self.grid = CAGrid.for_site(site)
        scale = self._lobulation(rng)
        self.bulge_mm = self._bulge_mm(site, opts)
        self.fields = cell_fields(site, self.grid, bulge_mm=self.bulge_mm,
                                  vessel_push=self.switches["mass_effect"], acceptance_scale=scale)
        self.ca = CellularAutomaton(self.fields.state, self.fields.acceptance, seed=seed,
                                    yield_at=self.fields.yield_at, vessel_yield=VESSEL_PUSHES,
                                    device=self.device)
        centre = nearest_tissue_cell(self.fields.state, (self.grid.half,) * 3)
        if centre is None:
            raise PlacementError("no organ tissue around the centre on the automaton grid; click "
                                 "deeper inside the organ")
        self.ca.seed(centre[None])
        self.seed_cell = [int(v) for v in centre]
        self.target_cells = site.diameter_mm / self.grid.h_mm
        self.level_fractions = self._level_fractions()
        self.expected = expected_steps(self.target_cells, self.level_fractions)
        self.budget = (self.fixed_steps if self.fixed_steps is not None
                       else int(math.ceil(BUDGET_FACTOR * self.expected + BUDGET_EXTRA)))
        self.satellites = self._plan_satellites(rng) if self.switches["satellites"] else []
        self.necrosis_fraction = float(rng.uniform(*NECROSIS_FRACTION_RANGE))
        self.necrosis_seeds = int(rng.integers(*NECROSIS_SEEDS_RANGE))
        self.draws.update(necrosis_fraction=self.necrosis_fraction, necrosis_seeds=self.necrosis_seeds)
        self.step = self.growth_steps = self.necrosis_steps = self.necrosis_total = 0
        self.n_cells, self._best = 1, (1, 0)
        self.phase, self.stop_reason = "growth", None
        self.necrosis_applied = False
        if self.fixed_steps == 0:
            self._finish_growth("steps")

    # -- draws ----------------------------------------------------------------------------------
    def _draw_switches(self, site: Site, opts: dict[str, Any], rng: np.random.Generator) -> dict[str, bool]:
        """Stage effects; the uniforms are always drawn so the stream does not depend on options."""
        u = rng.random(3)
        self.draws.update(necrosis_u=float(u[0]), satellites_u=float(u[1]), capsule_u=float(u[2]))
        grown = site.stage in ("intermediate", "advanced")
        big = site.diameter_mm >= NECROSIS_MIN_DIAMETER_MM.get(site.organ, 30.0)
        return {
            "mass_effect": _switch(opts, "mass_effect", grown),
            "necrosis": _switch(opts, "necrosis", (site.stage == "advanced" or big) and u[0] < 0.5),
            "satellites": _switch(opts, "satellites", site.stage == "advanced" and u[1] < 0.3),
            "capsule": _switch(opts, "capsule", grown and site.organ == "liver" and u[2] < 0.5),
        }

    def _lobulation(self, rng: np.random.Generator) -> np.ndarray | None:
        """Acceptance scale in [1 - s, 1] from a smooth random field (s by stage; None if 0)."""
        sub_seed = int(rng.integers(0, 2**63 - 1))
        strength = float(self.site.spec.options.get("lobulation", STAGE_LOBULATION[self.site.stage]))
        self.draws.update(lobulation_seed=sub_seed, lobulation_strength=strength)
        if strength <= 0:
            return None
        from scipy import ndimage

        coarse_step = max(LOBULATION_SCALE * self.site.diameter_mm / self.grid.h_mm, 1.0)
        nc = int(math.ceil(self.grid.n / coarse_step)) + 3
        noise = ndimage.gaussian_filter(np.random.default_rng(sub_seed).standard_normal((nc,) * 3), 1.0)
        coords = [np.arange(self.grid.n) / coarse_step + 1.0] * 3
        field = resample(noise.astype(np.float32), coords, 1)
        lo, hi = float(field.min()), float(field.max())
        unit = (field - lo) / (hi - lo) if hi > lo else np.zeros_like(field)
        return (1.0 - np.clip(strength, 0.0, 0.95) * unit).astype(np.float32)

    @staticmethod
    def _bulge_mm(site: Site, opts: dict[str, Any]) -> float:
        """How far (mm) past the organ contour the tumor may push it."""
        if opts.get("clip_to_organ") is False:
            return float("inf")
        fraction = BULGE_FRACTION.get(site.organ, 0.0)
        if site.allow_exophytic:
            fraction = max(fraction, EXOPHYTIC_BULGE_FRACTION)
        return fraction * 0.5 * site.diameter_mm

    def _level_fractions(self) -> list[float]:
        """Share of each density level among the tissue cells within the target radius."""
        half, r = self.grid.half, 0.5 * self.target_cells
        g = np.ogrid[tuple(slice(0, self.grid.n) for _ in range(3))]
        near = sum((gi - half) ** 2 for gi in g) <= max(r, 1.0) ** 2
        counts = np.bincount(self.fields.levels[near & (self.fields.levels > 0)], minlength=4)[1:4]
        return [float(c) / max(int(counts.sum()), 1) for c in counts]

    def _plan_satellites(self, rng: np.random.Generator) -> list[_Satellite]:
        """1-4 nodules of 3-8 mm at 1.1-1.5 radii, seeded so that they end at their size."""
        site = self.site
        allowed = site.organ_mask & ~site.vessel_mask & (site.occupied == 0)
        found = effects.satellite_centres(site.center_vox, 0.5 * site.diameter_mm, site.spacing,
                                          allowed, rng, int(rng.integers(1, 5)))
        out, listed = [], []
        for centre, d in found:
            cell = np.rint((centre - site.center_vox) * site.spacing / self.grid.h_mm + self.grid.half)
            if np.any(cell < 0) or np.any(cell >= self.grid.n):
                continue
            grow = steps_for_diameter(d / self.grid.h_mm, 1)
            start = max(1, int(round(self.expected - grow)))
            out.append(_Satellite(tuple(int(v) for v in cell), d, start))
            listed.append({"center_voxel_roi": [float(v) for v in centre], "diameter_mm": d,
                           "start_step": start})
        self.draws["satellites"] = listed
        return out

    # -- stepping -------------------------------------------------------------------------------
    @property
    def done(self) -> bool:
        return self.phase == "done"

    def advance(self, n: int = 1) -> None:
        """Run up to ``n`` more steps (fewer when the run ends)."""
        if int(n) < 0:
            raise InputError(f"advance(n) needs n >= 0, got {n}")
        for _ in range(int(n)):
            if self.phase == "growth":
                self._grow_once()
            elif self.phase == "necrosis":
                self._necrose_once()
            else:
                break

    def run_to_end(self) -> None:
        while not self.done:
            self.advance(64)

    def _grow_once(self) -> None:
        for sat in self.satellites:
            if sat.start_step == self.growth_steps:
                self.ca.seed(np.array([sat.cell]))
        self.n_cells = self.ca.grow()
        self.growth_steps += 1
        self.step += 1
        if self.fixed_steps is not None:
            if self.growth_steps >= self.fixed_steps:
                self._finish_growth("steps")
            return
        if self.diameter_cells() >= self.target_cells:
            self._finish_growth("diameter")
        elif self.n_cells > self._best[0]:
            self._best = (self.n_cells, self.growth_steps)
        elif self.growth_steps - self._best[1] >= STALL_STEPS:
            self._finish_growth("stalled")
        if self.phase == "growth" and self.growth_steps >= self.budget:
            self._finish_growth("budget")

    def _finish_growth(self, reason: str) -> None:
        self.stop_reason = reason
        self.phase = "necrosis" if self.switches["necrosis"] else "done"

    def _necrose_once(self) -> None:
        """First call: kill a few saturated cells near the centroid; every call: one spread
        step. Ends at the drawn necrosis fraction or after ~growth steps / 7 steps."""
        from .cellular_engine import equivalent_diameter_cells

        if self.necrosis_steps == 0:
            sat = self.ca.saturated_cells()
            if len(sat) == 0:
                self.phase = "done"
                return
            centre = sat.mean(axis=0)
            r = 0.5 * equivalent_diameter_cells(self.n_cells)
            core = sat[np.sum((sat - centre) ** 2, axis=1) <= (NECROSIS_CORE_FRACTION * r) ** 2]
            core = core if len(core) else sat[np.argsort(np.sum((sat - centre) ** 2, axis=1))[:1]]
            self.ca.kill(core[self.ca.random_integers(len(core), self.necrosis_seeds)])
            self.necrosis_total = max(1, int(math.ceil(self.growth_steps / NECROSIS_STEP_DIVISOR)))
            self.necrosis_applied = True
        dead = self.ca.necrose()
        self.necrosis_steps += 1
        self.step += 1
        if dead >= self.necrosis_fraction * self.n_cells or self.necrosis_steps >= self.necrosis_total:
            self.phase = "done"

    # -- read-outs ------------------------------------------------------------------------------
    def diameter_cells(self) -> float:
        from .cellular_engine import equivalent_diameter_cells

        return equivalent_diameter_cells(self.n_cells)

    def state(self) -> GrowthState:
        from .cellular_render import allowed_region, roi_masks

        site = self.site
        allowed = allowed_region(self, site.vessel_mask, site.labels_roi)
        mask, _ = roi_masks(self, self.ca.state_numpy(), allowed)
        return GrowthState(mask=mask, roi=self.site.roi, step=self.step,
                           equivalent_diameter_mm=self.diameter_cells() * self.grid.h_mm,
                           done=self.done, phase=self.phase,
                           target_diameter_mm=float(self.site.diameter_mm),
                           expected_steps=int(self.fixed_steps if self.fixed_steps is not None
                                              else round(self.expected)))

    def details(self) -> dict[str, Any]:
        stopped_early = self.stop_reason is None
        short = self.diameter_cells() < 0.8 * self.target_cells
        return {
            "steps": self.growth_steps, "necrosis_steps": self.necrosis_steps,
            "expected_steps": round(self.expected, 1), "step_budget": self.budget,
            "fixed_steps": self.fixed_steps, "stop_reason": self.stop_reason or "stopped-early",
            "cells": int(self.n_cells), "dead_cells": int(self.ca.n_dead),
            "h_mm": self.grid.h_mm, "grid_cells": self.grid.n, "device": str(self.device),
            "seed_cell": self.seed_cell, "level_fractions": [round(v, 4) for v in self.level_fractions],
            "ca_diameter_mm": self.diameter_cells() * self.grid.h_mm,
            "bulge_mm": None if math.isinf(self.bulge_mm) else self.bulge_mm,
            "effects": {**self.switches, "necrosis": self.necrosis_applied},
            "stopped_early": stopped_early,
            "size_limited_by_organ": bool(self.stop_reason in ("stalled", "budget") and short),
        }

    def render(self, rng: np.random.Generator) -> TumorRender:
        """The ROI image, labels and masks of the tumor as it is now (draws from ``rng``)."""
        from .cellular_render import render_cells

        return render_cells(self, rng)


@register_method("cellular")
class CellularMethod:
    """Cellular-automaton growth (torch), mapped to HU relative to the measured organ."""

    name = "cellular"

    def available(self) -> tuple[bool, str]:
        if importlib.util.find_spec("torch") is None:
            return False, "the cellular method needs torch: pip install torch"
        return True, ""

    def roi_radius_mm(self, diameter_mm: float, stage: str) -> float:
        """The automaton grid's half width (about d, so the tumor has room to grow irregularly
        or along a thin organ) plus the soft-edge margin."""
        return ca_half_cells(diameter_mm) * ca_spacing_mm(diameter_mm) + ROI_MARGIN_MM

    def render(self, site: Site, rng: np.random.Generator) -> TumorRender:
        run = CellularRun(site, rng)
        run.run_to_end()
        return run.render(rng)


class CellularGrowth:
    """Live growth of one ``cellular`` tumor (the Slicer module advances it from a timer).

    ``advance(n)`` runs n more steps and returns a ``GrowthState``; ``grow()`` runs to the end;
    ``result()`` renders the tumor as it is (complete, or smaller when stopped early) and
    returns the ``Synthesis`` (once; later calls return the same object).
    """

    def __init__(self, image: Volume, organs: Volume | None, spec: TumorSpec, labels: str = "totalseg",
                 *, case_id: str | None = None, variant: int = 0, device: Any = "auto") -> None:
        from .api import CaseBuilder

        if not isinstance(spec, TumorSpec):
            raise InputError(f"expected a TumorSpec, got {type(spec).__name__}")
        if spec.method != "cellular":
            spec = replace(spec, method="cellular")
        t0 = time.perf_counter()
        self._builder = CaseBuilder(image, organs, labels, case_id=case_id, variant=variant)
        _, self.site, self._rng = self._builder.prepare(spec, 0)
        self._run = CellularRun(self.site, self._rng, device=device)
        self._timing = {"prepare_s": time.perf_counter() - t0, "grow_s": 0.0}
        self._result: Synthesis | None = None

    @property
    def done(self) -> bool:
        return self._run.done

    @property
    def state(self) -> GrowthState:
        return self._run.state()

    def advance(self, n: int = 1) -> GrowthState:
        if self._result is not None:
            raise InputError("this growth is finished (result() was called); start a new one")
        t0 = time.perf_counter()
        self._run.advance(n)
        self._timing["grow_s"] += time.perf_counter() - t0
        return self._run.state()

    def grow(self) -> GrowthState:
        while not self._run.done:
            self.advance(64)
        return self._run.state()

    def result(self) -> Synthesis:
        if self._result is None:
            t0 = time.perf_counter()
            render = self._run.render(self._rng)
            self._timing["render_s"] = time.perf_counter() - t0
            self._builder.add(self.site, render, timing=dict(self._timing))
            self._result = self._builder.result()
        return self._result


__all__ = ["CellularGrowth", "CellularMethod", "CellularRun", "GrowthState", "steps_option"]
