"""One tumor's automaton run (``CellularRun``): seeds, growth steps, necrosis, read-outs.

The run works on the isotropic grid of ``grid`` around the placed centre, in the scene the
pipeline hands it (the ROI after the shared mass effect). Stage effects come from the tumor's
``EffectPlan``: satellites are seeded so they end at their size, necrosis spreads from dead
seeds in the saturated core. Growth stops when the equivalent diameter reaches the target (or
after ``options["steps"]`` steps exactly); a run that stalls or exhausts its step budget (the
calibration's expected steps x 2 + 20) is limited by the organ. Lobulation (intermediate and
advanced) scales the acceptance by a smooth random field. Every random number comes from the
tumor's generator (a torch seed drawn from it), so the same seed gives the same tumor however
the steps are chunked.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import ndimage

from ...anatomy.site import Site
from ...core.errors import PlacementError
from ...core.resample import resample
from ...core.seeding import torch_seed
from ..contour import CONTOUR_MARGIN_MM, exophytic_reach_mm
from ..contracts import EffectPlan, Scene
from ..effects.lesions import NECROSIS_FRACTION, satellite_centres
from .engine import CellularAutomaton, equivalent_diameter_cells, resolve_device
from .grid import (
    VESSEL_PUSHES,
    CAGrid,
    cell_fields,
    expected_steps,
    nearest_tissue_cell,
    steps_for_diameter,
)

#: Step budget = factor x expected steps + extra; a run without growth for STALL_STEPS stops.
BUDGET_FACTOR, BUDGET_EXTRA, STALL_STEPS = 2.0, 20, 25
STAGE_LOBULATION = {"tiny": 0.0, "early": 0.0, "intermediate": 0.3, "advanced": 0.5}
#: Correlation length of the lobulation field, as a fraction of the diameter.
LOBULATION_SCALE = 0.25
NECROSIS_SEEDS_RANGE = (5, 20)      # integers in [5, 20)
NECROSIS_CORE_FRACTION = 0.35       # seeds lie within this fraction of the radius of the centroid
NECROSIS_STEP_DIVISOR = 7           # necrosis spreads for ~growth steps / 7 steps
#: The organ contour may give way this far (fraction of r): a large tumor bulges it.
BULGE_FRACTION = {"liver": 0.15, "pancreas": 0.3, "kidney": 0.3, "spleen": 0.15}


@dataclass
class _Satellite:
    cell: tuple[int, int, int]
    diameter_mm: float
    start_step: int


class CellularRun:
    """The growth of one tumor (see the module docstring)."""

    def __init__(self, site: Site, scene: Scene, plan: EffectPlan, rng: np.random.Generator) -> None:
        self.site, self.scene, self.plan = site, scene, plan
        opts = site.options
        self.fixed_steps = None if opts.get("steps") is None else int(opts["steps"])
        self.device = resolve_device(opts.get("device", "auto"))
        self.draws: dict[str, Any] = {}
        seed = torch_seed(rng)
        self.draws["torch_seed"] = seed
        self.grid = CAGrid.for_site(site)
        scale = self._lobulation(rng)
        self.bulge_mm = self._bulge_mm()
        self.fields = cell_fields(site, scene, self.grid, bulge_mm=self.bulge_mm,
                                  vessel_push=plan.mass_effect, acceptance_scale=scale)
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
        self.satellites = self._plan_satellites(rng) if plan.satellites else []
        self.necrosis_fraction = float(rng.uniform(*NECROSIS_FRACTION))
        self.necrosis_seeds = int(rng.integers(*NECROSIS_SEEDS_RANGE))
        self.draws.update(necrosis_fraction=self.necrosis_fraction, necrosis_seeds=self.necrosis_seeds)
        self.step = self.growth_steps = self.necrosis_steps = self.necrosis_total = 0
        self.n_cells, self._best = 1, (1, 0)
        self.phase, self.stop_reason = "growth", None
        self.necrosis_applied = False
        if self.fixed_steps == 0:
            self._finish_growth("steps")

    # -- draws ----------------------------------------------------------------------------------
    def _lobulation(self, rng: np.random.Generator) -> np.ndarray | None:
        """Acceptance scale in [1 - s, 1] from a smooth random field (s by stage; None if 0)."""
        sub_seed = int(rng.integers(0, 2**63 - 1))
        strength = float(self.site.options.get("lobulation", STAGE_LOBULATION[self.site.stage]))
        self.draws.update(lobulation_seed=sub_seed, lobulation_strength=strength)
        if strength <= 0:
            return None
        coarse_step = max(LOBULATION_SCALE * self.site.diameter_mm / self.grid.h_mm, 1.0)
        nc = int(math.ceil(self.grid.n / coarse_step)) + 3
        noise = ndimage.gaussian_filter(np.random.default_rng(sub_seed).standard_normal((nc,) * 3), 1.0)
        coords = [np.arange(self.grid.n) / coarse_step + 1.0] * 3
        field = resample(noise.astype(np.float32), coords, 1)
        lo, hi = float(field.min()), float(field.max())
        unit = (field - lo) / (hi - lo) if hi > lo else np.zeros_like(field)
        return (1.0 - np.clip(strength, 0.0, 0.95) * unit).astype(np.float32)

    def _bulge_mm(self) -> float:
        """How far (mm) past the organ contour the tumor may push it (``synthesis.contour``)."""
        reach = exophytic_reach_mm(self.site)
        if reach > 0:
            return reach
        fraction = BULGE_FRACTION.get(self.site.organ, 0.0) if self.plan.mass_effect else 0.0
        return min(fraction * 0.5 * self.site.diameter_mm, CONTOUR_MARGIN_MM.get(self.site.organ, float("inf")))

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
        allowed = self.scene.organ & ~self.scene.vessels & ~site.occupied
        found = satellite_centres(site.center_vox, 0.5 * site.diameter_mm, site.spacing, allowed, rng,
                                  int(rng.integers(1, 5)))
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

    @property
    def total_steps(self) -> int:
        """Growth steps expected (the progress bar's length; the run may end earlier or later)."""
        return int(self.fixed_steps if self.fixed_steps is not None else round(self.expected))

    def advance(self, n: int = 1) -> None:
        """Run up to ``n`` more steps (fewer when the run ends)."""
        for _ in range(max(int(n), 0)):
            if self.phase == "growth":
                self._grow_once()
            elif self.phase == "necrosis":
                self._necrose_once()
            else:
                break

    def stop(self) -> None:
        """End the run where it is (a valid, smaller tumor)."""
        self.stop_reason = self.stop_reason or "stopped-early"
        self.phase = "done"

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
        self.phase = "necrosis" if self.plan.necrosis else "done"

    def _necrose_once(self) -> None:
        """First call: kill a few saturated cells near the centroid; every call: one spread
        step. Ends at the drawn necrosis fraction or after ~growth steps / 7 steps."""
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
        return equivalent_diameter_cells(self.n_cells)

    def info(self) -> dict[str, Any]:
        """The run's facts for the report."""
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
            "necrosis_grown": self.necrosis_applied,
            "size_limited_by_organ": bool(self.stop_reason in ("stalled", "budget") and short),
        }


__all__ = ["CellularRun"]
