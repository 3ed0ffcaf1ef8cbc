"""The ``diffusion`` appearance: the inside of the tumor inpainted by a mask-conditioned
diffusion model from the surrounding scan (after Chen et al., CVPR 2024; methods.md section 3).

1. the conditioning mask is the geometry's tumor grown by the model's ``mask_margin_mm`` (it
   covers the soft edge too); a ``patch``^3 isotropic patch of ``h`` mm (``h`` from the mask's
   extent, at least 1 mm) is read around it from the scene, through the fixed HU window;
2. the model samples the masked voxels (``learned.sampler``: one denoiser call per step, the
   noise from one torch seed drawn from the tumor's generator), ``diffusion_chains`` chains in
   one batch whose mean is the sample (the model's expected tumor for these surroundings; the
   scan supplies the grain in step 3);
3. the sample goes back to HU and to the scan's voxels inside the mask; its low frequencies
   relative to the parenchyma median are the model's pattern (darkening, texture). Inside the
   tumor the change is the shared ``intensity.solid_change`` (the tumor starts as solid
   parenchyma: fat, sinus and contour are replaced, the scan's grain kept where it is noise and
   re-synthesised where it is structure) plus that pattern; in the conditioning margin around
   it ``change_towards`` moves the scene's low frequencies to the sample's. The shared pipeline
   then blends it with the soft edge and adds the stage effects and the grain top-up.

It runs in steps (``start`` -> ``DiffusionJob``): live front ends show the estimate of the tumor
after every denoising step. The report names the model (id, SHA256) and gives the achieved mean
drop with the range common.md expects for the organ. Tumors larger than the model was trained
for (patch spacing beyond its range) are extrapolated, with a warning.
"""
from __future__ import annotations

import importlib.util
from typing import Any

import numpy as np

from ...anatomy.organs import intensity_profile
from ...anatomy.site import Site
from ...core.errors import InputError
from ...core.seeding import torch_seed
from ...core.volume import Box, bounding_box
from ..contracts import LOW_PASS_TRUNCATE, Appearance, Geometry, Scene
from ..intensity import DELTA_MIN_BASE_HU, DELTA_OFFSET_HU, change_towards, solid_change
from ..learned.checkpoint import default_model_ref, load_diffusion_model
from ..learned.config import DEFAULT_CHAINS, SAMPLERS, to_hu, to_unit
from ..learned.patch import dilate_mm, extent_mm, patch_for_mask
from ..registry import register_appearance


@register_appearance("diffusion", method="diffusion", pair="ellipsoid",
                     description="deformed ellipsoid painted by a mask-conditioned diffusion model")
class DiffusionAppearance:
    """Learned inpainting (torch + MONAI; a model from the registry)."""

    name = "diffusion"
    description = "the tumor's inside inpainted by a diffusion model conditioned on the surrounding scan"
    options = ("diffusion_model", "diffusion_steps", "diffusion_sampler", "diffusion_chains")

    def available(self) -> tuple[bool, str]:
        for package in ("torch", "monai"):
            if importlib.util.find_spec(package) is None:
                return False, (f"the diffusion appearance needs {package}: "
                               "pip install torch==2.13.0 'monai>=1.6,<1.7'")
        if default_model_ref() is None:
            return False, ("no diffusion model is installed: train one with `tumorsynth train-diffusion` "
                           "and register it with `tumorsynth models add`")
        return True, ""

    def start(self, site: Site, scene: Scene, geometry: Geometry, rng: np.random.Generator) -> DiffusionJob:
        return DiffusionJob(site, scene, geometry, rng)

    def render(self, site: Site, scene: Scene, geometry: Geometry, rng: np.random.Generator) -> Appearance:
        return self.start(site, scene, geometry, rng).finish()


class DiffusionJob:
    """Denoising in steps (``StepJob``): ``advance(n)``, ``preview()``, ``stop()``, ``finish()``.
    A stopped job keeps the model's current estimate of the tumor (after at least one step)."""

    def __init__(self, site: Site, scene: Scene, geometry: Geometry, rng: np.random.Generator) -> None:
        from ..learned.sampler import InpaintSampler   # torch: only when a tumor is made

        options = site.options
        if str(options.get("enhancement", "hypo")) == "hyper":
            raise InputError("the diffusion appearance paints what its model learned (hypo-attenuating "
                             "tumors); use appearance=procedural for enhancement=hyper")
        self.seed = torch_seed(rng)
        # The grain re-synthesised by solid_change comes from its own seed, so previews (any
        # number of them) leave the tumor's stream and the final result unchanged.
        self.grain_seed = torch_seed(rng)
        self.site, self.scene, self.geometry = site, scene, geometry
        self.model = load_diffusion_model(options.get("diffusion_model"), options.get("device", "auto"))
        cfg = self.model.config
        sampler, steps = sampling_choice(cfg, options, self.model.model_id)
        self.region = dilate_mm(geometry.mask, site.spacing, cfg.mask_margin_mm)
        self.grid = patch_for_mask(self.region, site.spacing, cfg.patch, cfg.infer_fill, cfg.spacing_mm[0])
        image = to_unit(self.grid.sample(scene.image), cfg.window_hu)
        chains = int(options.get("diffusion_chains") or DEFAULT_CHAINS)
        self.sampler = InpaintSampler(self.model, image, self.grid.sample_mask(self.region), self.seed,
                                      sampler, steps, chains)
        reach = int(np.ceil(LOW_PASS_TRUNCATE)) + 1
        self.box: Box = bounding_box(self.region, reach)  # type: ignore[assignment]
        self._stopped = False

    # -- StepJob ----------------------------------------------------------------------------------
    @property
    def step(self) -> int:
        return self.sampler.index

    @property
    def total_steps(self) -> int:
        return self.sampler.total_steps

    @property
    def done(self) -> bool:
        return self.sampler.done or (self._stopped and self.sampler.index > 0)

    def advance(self, n: int = 1) -> None:
        for _ in range(max(int(n), 0)):
            if self.done:
                return
            self.sampler.step()

    def stop(self) -> None:
        self._stopped = True

    def preview(self) -> Appearance | None:
        """The appearance of the model's current estimate (no report facts); None before the
        first step."""
        estimate = self.sampler.estimate()
        if estimate is None:
            return None
        change, solid = self.paint(estimate)
        return Appearance(change, solid_hu=solid, solid_box=self.box)

    def finish(self) -> Appearance:
        while not self.done:
            self.advance(1)
        draws: dict[str, Any] = {"torch_seed": self.seed, "grain_seed": self.grain_seed}
        change, solid = self.paint(self.sampler.estimate(), draws)  # type: ignore[arg-type]
        return Appearance(change, target_drop_hu=None, draws=draws, info=self.info(change),
                          solid_hu=solid, solid_box=self.box)

    # -- helpers ----------------------------------------------------------------------------------
    def paint(self, patch_unit: np.ndarray, draws: dict[str, Any] | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(ROI change in HU, its solid part on ``self.box``) that paint ``patch_unit`` (window
        units) into the tumor: solid parenchyma plus the sample's low frequencies relative to the
        median inside the tumor, the sample's low frequencies in the margin around it (module
        docstring, step 3)."""
        box, cfg = self.box, self.model.config
        target = np.array(self.scene.image[box.slices], dtype=np.float32, copy=True)
        inside = self.region[box.slices]
        target[inside] = to_hu(self.grid.to_region(patch_unit, box), cfg.window_hu)[inside]
        towards = change_towards(target, self.scene, box)
        tumor = self.geometry.mask[box.slices]
        pattern = towards + self.scene.low_frequencies(box) - np.float32(self.site.organ_median_hu)
        solid = solid_change(self.site, self.scene, box, tumor, np.random.default_rng(self.grain_seed),
                             {} if draws is None else draws)
        change = np.zeros(self.site.image_roi.shape, dtype=np.float32)
        change[box.slices] = np.where(tumor, solid + pattern, towards)
        return change, solid

    def info(self, change: np.ndarray) -> dict[str, Any]:
        """The report's facts: model, sampling, patch, achieved drop against common.md's range."""
        site, cfg = self.site, self.model.config
        box = self.box
        mask = self.geometry.mask[box.slices]
        level = self.scene.low_frequencies(box)[mask] + change[box.slices][mask]
        drop = float(site.organ_median_hu - np.mean(level)) if mask.any() else None
        lo_f, hi_f = intensity_profile(site.organ).f_range
        base = max(float(site.organ_median_hu) - DELTA_OFFSET_HU, DELTA_MIN_BASE_HU)
        expected = [lo_f * base, hi_f * base]
        in_range = drop is not None and expected[0] <= drop <= expected[1]
        if drop is not None and not in_range:
            site.warnings.append(f"the diffusion model's mean drop {drop:.1f} HU lies outside the range "
                                 f"{expected[0]:.1f}-{expected[1]:.1f} HU expected for the {site.organ}")
        extent = extent_mm(self.region, site.spacing)
        if self.grid.spacing_mm > cfg.spacing_mm[1] + 1e-6:
            site.warnings.append(f"the tumor ({extent:.0f} mm with its edge) is larger than the diffusion model "
                                 f"was trained for (patch spacing {self.grid.spacing_mm:.2f} mm > "
                                 f"{cfg.spacing_mm[1]:g} mm); its appearance is extrapolated")
        return {**self.model.describe(), "sampler": self.sampler.sampler, "chains": self.sampler.chains,
                "steps_run": self.sampler.index,
                "steps_total": self.sampler.total_steps, "stopped_early": not self.sampler.done,
                "patch_spacing_mm": self.grid.spacing_mm, "patch_cells": cfg.patch,
                "mask_margin_mm": cfg.mask_margin_mm, "extent_mm": extent, "device": str(self.model.device),
                "achieved_drop_hu": drop, "expected_drop_range_hu": expected, "drop_in_range": bool(in_range)}


def sampling_choice(cfg: Any, options: Any, model_id: str) -> tuple[str, int]:
    """(sampler, denoiser calls) from the tumor's options and the model's defaults; InputError
    for a combination the model cannot run."""
    sampler = str(options.get("diffusion_sampler") or cfg.sampler)
    if sampler not in SAMPLERS:
        raise InputError(f"diffusion_sampler must be one of {', '.join(SAMPLERS)}, got '{sampler}'")
    default = cfg.timesteps if sampler == "ddpm" else (cfg.sample_steps if cfg.sampler == "ddim" else cfg.timesteps)
    steps = int(options.get("diffusion_steps") or default)
    if steps > cfg.timesteps:
        raise InputError(f"diffusion_steps={steps} exceeds the {cfg.timesteps} timesteps model '{model_id}' "
                         f"was trained with; give at most {cfg.timesteps}")
    if sampler == "ddpm" and steps != cfg.timesteps:
        raise InputError(f"the ddpm sampler visits all {cfg.timesteps} timesteps of model '{model_id}'; "
                         "for fewer steps give diffusion_sampler=ddim")
    return sampler, steps


__all__ = ["DiffusionAppearance", "DiffusionJob", "sampling_choice"]
