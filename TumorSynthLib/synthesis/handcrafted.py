"""The ``handcrafted`` method (after Hu et al., CVPR 2023; specs/methods.md section 1).

One tumor in the ROI, in this order (every random number from ``rng``, recorded in ``draws``):

1. shape: per-axis radii (+-25 % around d/2, geometric mean d/2), random rotation, smooth
   surface displacement (up to ~15 % of the radius early, ~30 % advanced);
2. stage switches: mass effect (intermediate, advanced), capsule (liver, p 0.5), necrosis
   (advanced, p 0.5), satellites (advanced, p 0.3); ``options`` may force each on or off;
3. mass effect: the tissue around the centre is pushed radially (image linear, labels nearest);
4. size: the shape is clipped to the organ (kidney: may bulge 0.3 r past the contour when the
   site allows exophytic growth) and off vessels and earlier tumors, then rescaled (up to a few
   times) until the measured equivalent diameter matches the request; when the organ cannot
   hold it the tumor grows as far as it can and ``size_limited_by_organ`` is reported;
5. intensity: ``delta`` relative to the measured parenchyma, ``delta_map = delta * tex /
   mean(tex in tumor)``, soft edge sigma U(1, 2) mm, ``out = x - w * delta_map`` in organ and
   tumor; capsule, necrosis (0-20 HU, tumor in the label), vessels crossing the tumor damped.
"""
from __future__ import annotations

from typing import Any

import numpy as np
from scipy import ndimage

from ..core.errors import PlacementError
from . import effects
from ..anatomy.site import Site
from .base import TumorRender, register_method
from .shape import EllipsoidShape, draw_radii, draw_shape, rasterise
from .texture import STAGE_HETEROGENEITY, TRUNCATE, make_texture

#: Surface displacement (fraction of the radius) drawn per stage.
DEFORM_RANGE = {"tiny": (0.05, 0.10), "early": (0.08, 0.15), "intermediate": (0.15, 0.25),
                "advanced": (0.22, 0.30)}
#: Largest per-axis radius over d/2 after the geometric-mean rescale (1.25 / (1.25 .75 .75)^(1/3)).
MAX_AXIS_FACTOR = 1.41
EDGE_SIGMA_RANGE_MM = (1.0, 2.0)
MASS_EFFECT_STRENGTH = 0.3
#: Exophytic kidney tumors may bulge this fraction of r past the organ contour.
EXOPHYTIC_FRACTION = 0.3
#: Accept a clipped volume within this ratio of the target volume (diameter within ~2.5 %).
VOLUME_TOLERANCE = 0.08
SIZE_ITERATIONS = 4
#: The tumor is "limited by the organ" when its diameter stays below this fraction of the request.
LIMITED_DIAMETER_FRACTION = 0.8
#: ... or when clipping to the organ removed more than this fraction of the drawn shape.
CLIPPED_LIMIT = 0.2


def _switch(options: dict[str, Any], name: str, default: bool) -> bool:
    value = options.get(name)
    return default if value is None else bool(value)


@register_method("handcrafted")
class HandcraftedMethod:
    """Deformed ellipsoid + blurred salt-noise texture + stage effects (numpy / scipy only)."""

    name = "handcrafted"

    def available(self) -> tuple[bool, str]:
        return True, ""

    def roi_radius_mm(self, diameter_mm: float, stage: str) -> float:
        """Tumor (longest axis x deformation, with room to grow against clipping), mass effect
        up to 2 radii, and the soft-edge blur (3 sigma of at most 2 mm) plus a voxel."""
        r = 0.5 * float(diameter_mm)
        deform = DEFORM_RANGE.get(stage, DEFORM_RANGE["advanced"])[1]
        return max(2.0 * r, MAX_AXIS_FACTOR * (1.0 + deform) * r) * 1.15 + 8.0

    # -- render ---------------------------------------------------------------------------------
    def render(self, site: Site, rng: np.random.Generator) -> TumorRender:
        opts = dict(site.spec.options or {})
        draws: dict[str, Any] = {}
        shape = self._draw_shape(site, rng, draws)
        switches = self._draw_switches(site, opts, rng, draws)
        image, labels, organ, vessels = self._mass_effect(site, switches["mass_effect"], draws)
        allowed, exo_zone = self._allowed_region(site, organ, vessels, labels, opts)
        fit = self._fit_size(site, shape, allowed,
                             _room_mm(site, self.roi_radius_mm(site.diameter_mm, site.stage)))
        tumor = fit["mask"]
        if switches["satellites"]:
            tumor |= self._satellites(site, allowed, rng, draws)
        if not tumor.any():
            raise PlacementError(
                f"no {site.organ} voxel around the centre can hold a tumor (vessels or earlier "
                "tumors fill the spot); click elsewhere"
            )
        base = effects.fill_with_parenchyma(image, tumor & ~organ, site, rng)
        out, necrosis, stats = self._paint(site, base, tumor, organ, vessels, switches, rng, draws)
        details = {
            **stats,
            "size_limited_by_organ": fit["limited"],
            "size_scale": fit["scale"],
            "clip_kept_fraction": fit["kept_fraction"],
            "effects": {k: bool(v) for k, v in switches.items()},
            "exophytic_voxels": int(np.count_nonzero(tumor & ~organ)) if exo_zone else 0,
        }
        return TumorRender(image_roi=out, labels_roi=labels, tumor_mask=tumor,
                           necrosis_mask=necrosis, draws=draws, details=details)

    def _paint(self, site: Site, base: np.ndarray, tumor: np.ndarray, organ: np.ndarray,
               vessels: np.ndarray, switches: dict[str, bool], rng: np.random.Generator,
               draws: dict[str, Any]) -> tuple[np.ndarray, np.ndarray | None, dict[str, Any]]:
        """Intensity work on the tumor's box (tumor + blur reach); returns the ROI image, the
        necrosis mask (or None) and the intensity figures of the report."""
        blur_reach = np.ceil(TRUNCATE * EDGE_SIGMA_RANGE_MM[1] / site.spacing).astype(int) + 1
        box = effects.mask_box(tumor, blur_reach)
        sl = box.slices
        before, t = np.asarray(base[sl], dtype=np.float32), tumor[sl]
        sub, weight, delta, nec = self._intensity(
            site, before, t, organ[sl], vessels[sl], site.center_vox - np.asarray(box.lo),
            switches, rng, draws)
        out = np.array(base, dtype=np.float32)
        out[sl] = sub
        necrosis = None
        if nec is not None:
            necrosis = np.zeros(tumor.shape, dtype=bool)
            necrosis[sl] = nec
        stats = {
            "delta_hu": delta,
            "mean_tumor_hu": float(sub[t].mean()),
            "measured_drop_hu": effects.measured_drop_hu(before, sub, weight, exclude=nec),
            "measured_drop_in_mask_hu": effects.measured_drop_hu(before, sub, t.astype(np.float32), exclude=nec),
        }
        return out, necrosis, stats

    # -- steps ----------------------------------------------------------------------------------
    @staticmethod
    def _draw_shape(site: Site, rng: np.random.Generator, draws: dict[str, Any]) -> EllipsoidShape:
        radii = draw_radii(site.diameter_mm, rng)
        deform = float(rng.uniform(*DEFORM_RANGE[site.stage]))
        shape = draw_shape(radii, rng, deform, float(radii.max() / site.spacing.min()))
        draws.update(shape.to_draws())
        return shape

    @staticmethod
    def _draw_switches(site: Site, opts: dict[str, Any], rng: np.random.Generator,
                       draws: dict[str, Any]) -> dict[str, bool]:
        """Stage effects; the uniform draws are always made so the stream does not depend on
        the options."""
        u = rng.random(3)
        draws.update(capsule_u=float(u[0]), necrosis_u=float(u[1]), satellites_u=float(u[2]))
        grown = site.stage in ("intermediate", "advanced")
        advanced = site.stage == "advanced"
        return {
            "mass_effect": _switch(opts, "mass_effect", grown),
            "capsule": _switch(opts, "capsule", grown and site.organ == "liver" and u[0] < 0.5),
            "necrosis": _switch(opts, "necrosis", advanced and u[1] < 0.5),
            "satellites": _switch(opts, "satellites", advanced and u[2] < 0.3),
        }

    @staticmethod
    def _mass_effect(site: Site, on: bool, draws: dict[str, Any]):
        """(image, labels, organ mask, vessel mask) of the ROI, pushed apart when ``on``.
        Skipped when an earlier tumor lies in the push zone (its labels would move)."""
        image, labels = site.image_roi, site.labels_roi
        organ, vessels = site.organ_mask, site.vessel_mask
        if not on:
            return image, labels, organ, vessels
        strength = float(site.spec.options.get("mass_effect_strength", MASS_EFFECT_STRENGTH))
        warp = effects.MassEffectWarp(image.shape, site.center_vox, 0.5 * site.diameter_mm,
                                      site.spacing, strength)
        if site.occupied[warp.box.slices].any():
            site.warnings.append("mass effect skipped: an earlier tumor lies within 2 radii")
            return image, labels, organ, vessels
        draws["mass_effect_strength"] = strength
        return (warp.apply(image, 1), warp.apply(labels, 0), warp.apply(organ, 0),
                warp.apply(vessels, 0))

    @staticmethod
    def _allowed_region(site: Site, organ: np.ndarray, vessels: np.ndarray, labels: np.ndarray,
                        opts: dict[str, Any]) -> tuple[np.ndarray, bool]:
        """Where tumor voxels may be: organ (or, exophytic, a 0.3 r band of unlabelled tissue
        around it; or anywhere with ``clip_to_organ=False``), never vessels or earlier tumors."""
        free = ~vessels & ~site.occupied
        if opts.get("clip_to_organ") is False:
            return free, True
        if not site.allow_exophytic:
            return organ & free, False
        reach = EXOPHYTIC_FRACTION * 0.5 * site.diameter_mm
        dist = ndimage.distance_transform_edt(~organ, sampling=site.spacing)
        return (organ | ((dist <= reach) & (labels == 0))) & free, True

    @staticmethod
    def _fit_size(site: Site, shape: EllipsoidShape, allowed: np.ndarray, room_mm: float) -> dict[str, Any]:
        """Rasterise, clip, keep the part connected to the centre, and rescale until the
        volume matches the request (or the organ / ROI stops the growth). The organ "limits"
        the tumor when clipping removed over 20 % of the drawn shape, or when even the grown
        tumor stays below 0.8 x the requested diameter."""
        voxel_mm3 = float(np.prod(site.spacing))
        target = np.pi / 6.0 * site.diameter_mm**3 / voxel_mm3
        scale_max = max(room_mm / shape.extent_mm(1.0), 1.0)
        scale, best, kept = 1.0, None, 1.0
        for it in range(SIZE_ITERATIONS):
            raw = rasterise(shape, allowed.shape, site.center_vox, site.spacing, scale)
            mask = _connected_to_centre(raw & allowed, site.center_vox)
            n = int(np.count_nonzero(mask))
            if it == 0:
                kept = n / max(int(np.count_nonzero(raw)), 1)
            if best is None or abs(np.log(max(n, 1) / target)) < abs(np.log(max(best[1], 1) / target)):
                best = (mask, n, scale)
            if n == 0 or abs(n / target - 1.0) <= VOLUME_TOLERANCE:
                break
            new = float(np.clip(scale * np.clip((target / n) ** (1 / 3), 0.7, 1.6), 0.3, scale_max))
            if abs(new - scale) < 1e-3:
                break
            scale = new
        mask, n, scale = best
        short = (n / target) ** (1 / 3) < LIMITED_DIAMETER_FRACTION
        return {"mask": mask, "scale": float(scale), "kept_fraction": float(kept),
                "limited": bool(short or kept < 1.0 - CLIPPED_LIMIT)}

    @staticmethod
    def _satellites(site: Site, allowed: np.ndarray, rng: np.random.Generator,
                    draws: dict[str, Any]) -> np.ndarray:
        count = int(rng.integers(1, 5))
        found = effects.satellite_centres(site.center_vox, 0.5 * site.diameter_mm, site.spacing,
                                          allowed, rng, count)
        nodules = np.zeros(allowed.shape, dtype=bool)
        listed = []
        for centre, d in found:
            small = draw_shape(draw_radii(d, rng), rng, 0.1, 0.5 * d / float(site.spacing.min()))
            nodules |= rasterise(small, allowed.shape, centre, site.spacing) & allowed
            listed.append({"center_voxel_roi": [float(v) for v in centre], "diameter_mm": d})
        draws["satellites"] = listed
        return nodules

    @staticmethod
    def _intensity(site: Site, base: np.ndarray, tumor: np.ndarray, organ: np.ndarray,
                   vessels: np.ndarray, center: np.ndarray, switches: dict[str, bool],
                   rng: np.random.Generator, draws: dict[str, Any]):
        """Darkening with texture and soft edge, then vessel damping, capsule and necrosis, on
        the tumor's box (arrays cropped to it; ``center`` in its voxels).
        Returns (image, soft weight, delta HU, necrosis mask or None)."""
        sigma = float(rng.uniform(*EDGE_SIGMA_RANGE_MM))
        delta, f = effects.darkening_delta(site, rng)
        draws.update(edge_sigma_mm=sigma, delta_f=f)
        weight = effects.soft_weight(tumor, site.spacing, sigma)
        tex = make_texture(tumor.shape, site.spacing, rng, sigma_a_mm=float(rng.uniform(3.0, 6.0)),
                           sigma_b_mm=float(rng.uniform(3.0, 5.0)),
                           heterogeneity=STAGE_HETEROGENEITY[site.stage], draws=draws)
        delta_map = np.float32(delta / max(float(tex[tumor].mean()), 1e-6)) * tex
        out = effects.blend_darkening(base, weight, delta_map, (organ | tumor) & ~vessels)
        tumor_hu = float(out[tumor].mean())
        inside_vessels = vessels & (weight > 0.5)
        if inside_vessels.any():
            out = effects.damp_vessels(out, inside_vessels, tumor_hu)
        if switches["capsule"]:
            thickness, lift = float(rng.uniform(1.0, 2.0)), float(rng.uniform(0.3, 0.6)) * abs(delta)
            draws.update(capsule_thickness_mm=thickness, capsule_lift_hu=lift)
            out = effects.add_capsule(out, tumor, site.spacing, thickness, lift)
        necrosis = None
        if switches["necrosis"]:
            necrosis = effects.necrosis_mask(tumor, center, site.spacing, rng, draws=draws)
            level = min(float(rng.uniform(0.0, 20.0)), tumor_hu - 5.0)
            draws["necrosis_level_hu"] = level
            noise = np.float32(3.0) * rng.standard_normal(tumor.shape, dtype=np.float32)
            out = effects.apply_necrosis(out, necrosis, tumor, site.spacing, level, noise)
        return out, weight, delta, necrosis


def _room_mm(site: Site, roi_radius_mm: float) -> float:
    """How far (mm) the tumor may reach from the centre: the ROI radius less the blur reach.
    (Where the ROI is cut by the image border the tumor is simply cut there too.)"""
    return max(roi_radius_mm - TRUNCATE * EDGE_SIGMA_RANGE_MM[1], 1.0)


def _connected_to_centre(mask: np.ndarray, center_vox: np.ndarray) -> np.ndarray:
    """The connected part of ``mask`` holding the centre voxel (else its largest part)."""
    box = effects.mask_box(mask)
    if box is None:
        return mask
    sub = mask[box.slices]
    lab, n = ndimage.label(sub)
    if n <= 1:
        return mask
    v = np.rint(np.asarray(center_vox) - np.asarray(box.lo)).astype(int)
    inside = np.all(v >= 0) and np.all(v < sub.shape) and lab[tuple(v)] > 0
    keep = lab[tuple(v)] if inside else int(np.argmax(np.bincount(lab.ravel())[1:]) + 1)
    out = np.zeros_like(mask)
    out[box.slices] = lab == keep
    return out


__all__ = ["HandcraftedMethod"]
