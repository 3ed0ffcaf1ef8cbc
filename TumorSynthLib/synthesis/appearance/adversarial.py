"""The ``adversarial`` appearance (after Wu et al., FreeTumor; methods.md section 4): a learned
intensity-change map on a procedural shape.

A generator trained against a voxel-wise discriminator and a frozen segmentation model
(``tumorsynth train-adversarial``) maps the scan around the tumor (1.5 mm, windowed to
[-175, 250] HU) to ``D`` in [-1, 1] per organ; the organ's channel is used. The change is::

    solid_change (the tumor starts as parenchyma, intensity.solid_change)
    - D * max(organ_median - 10, 25) * Tex          inside O

``Tex`` a procedural texture with mean 1 in the tumor, ``O`` the organ and the tumor's own
voxels; the shared shading multiplies it by the soft tumor weight ``W`` and keeps the scan's
grain, as for every appearance. The mean drop never takes the tumor below 10 HU. The report's
``appearance_info`` names the model (id, SHA256) and the segmenter it was trained against.
"""
from __future__ import annotations

import importlib.util
from typing import Any

import numpy as np
from scipy import ndimage

from ...anatomy.organs import intensity_profile
from ...anatomy.site import Site
from ...core.errors import ModelError
from ..contracts import Appearance, Geometry, Scene, tumor_box
from ..intensity import TUMOR_FLOOR_HU, solid_change
from ..learned.gan import difference_map, drop_base_hu, organ_index
from ..learned.gan_checkpoint import GeneratorModel, default_generator_ref, load_generator
from ..registry import register_appearance
from ..texture import STAGE_HETEROGENEITY, gaussian_mm, make_texture

#: The generator's map is smoothed by this Gaussian (mm) before use: its voxel-scale detail
#: (1.5 mm grid, resampled) read as extra grain; the tumor's grain is the scan's own.
DROP_SMOOTH_MM = 2.0
SIGMA_A_MM = (3.0, 6.0)
SIGMA_B_MM = (3.0, 5.0)
#: Scan context (mm) the generator sees around the tumor's box, per side.
CONTEXT_MM = 24.0


@register_appearance("adversarial", method="adversarial", pair="ellipsoid",
                     description="deformed ellipsoid with a learned intensity change (GAN after FreeTumor)")
class AdversarialAppearance:
    """Learned change map (torch + MONAI, a trained generator)."""

    name = "adversarial"
    description = "learned intensity-change map (generator trained adversarially, after FreeTumor)"
    options = ("adversarial_model",)

    def available(self) -> tuple[bool, str]:
        missing = [m for m in ("torch", "monai") if importlib.util.find_spec(m) is None]
        if missing:
            return False, f"needs {' and '.join(missing)}: pip install torch==2.13.0 'monai>=1.6,<1.7'"
        if default_generator_ref() is None:
            return False, ("no adversarial model is installed; train one with `tumorsynth train-adversarial` "
                           "and register it with `tumorsynth models add RUN/generator.pt`")
        return True, ""

    def render(self, site: Site, scene: Scene, geometry: Geometry, rng: np.random.Generator) -> Appearance:
        model = load_generator(site.options.get("adversarial_model"), site.options.get("device", "auto"))
        channel = organ_index(model.config, site.organ)
        change = np.zeros(site.image_roi.shape, dtype=np.float32)
        box = tumor_box(geometry.mask, site.spacing)
        info: dict[str, Any] = {**model.describe(), "organ_channel": channel}
        if box is None:
            return Appearance(change, target_drop_hu=0.0, info=info)
        draws: dict[str, Any] = {}
        mask = geometry.mask[box.slices]
        d = difference_in_box(model, scene.image, site.spacing, box, channel)
        tex = make_texture(box.shape, site.spacing, rng, sigma_a_mm=float(rng.uniform(*SIGMA_A_MM)),
                           sigma_b_mm=float(rng.uniform(*SIGMA_B_MM)),
                           heterogeneity=STAGE_HETEROGENEITY[site.stage], draws=draws)
        tex = tex / np.float32(max(float(tex[mask].mean()), 1e-6))
        base = drop_base_hu(site.organ_median_hu)
        textured = (tex * (scene.organ[box.slices] | mask)).astype(np.float32)
        drop, mean_drop = _drop_in_range(site, gaussian_mm(d, DROP_SMOOTH_MM, site.spacing), textured, mask, base)
        solid = solid_change(site, scene, box, mask, rng, draws)
        change[box.slices] = solid - drop
        info.update(mean_d=float(d[mask].mean()), drop_base_hu=base, mean_drop_hu=mean_drop)
        return Appearance(change, target_drop_hu=mean_drop, draws=draws, info=info, solid_hu=solid, solid_box=box)


def _drop_in_range(site: Site, d: np.ndarray, textured: np.ndarray, mask: np.ndarray,
                   base: float) -> tuple[np.ndarray, float]:
    """(drop map in HU, its mean over the tumor): ``d * textured * base``, rescaled (with a report
    warning) when its mean lies outside the organ's relative range ``f_range * base``
    (common.md) or would take the tumor below ``TUMOR_FLOOR_HU``; a pattern that does not darken
    the tumor on average is replaced by the texture alone at the range's lower end."""
    lo_f, hi_f = intensity_profile(site.organ).f_range
    room = max(float(site.organ_median_hu) - TUMOR_FLOOR_HU, 0.0)
    lo, hi = min(lo_f * base, room), min(hi_f * base, room)
    drop = d * textured * np.float32(base)
    mean_drop = float(drop[mask].mean()) if mask.any() else 0.0
    if mean_drop <= 1e-6:
        site.warnings.append(f"the learned change does not darken this tumor (mean {mean_drop:.1f} HU); "
                             f"used a {lo:.1f} HU drop with the procedural texture instead")
        return textured * np.float32(lo), lo
    target = min(max(mean_drop, lo), hi)
    if abs(target - mean_drop) > 1e-6:
        site.warnings.append(f"the learned drop ({mean_drop:.1f} HU) lies outside {lo:.1f}-{hi:.1f} HU (common.md's "
                             f"range for the {site.organ} here, floor {TUMOR_FLOOR_HU:g} HU); scaled to {target:.1f} HU")
        drop *= np.float32(target / mean_drop)
    return drop, target


def difference_in_box(model: GeneratorModel, image_roi: np.ndarray, spacing: np.ndarray, box: Any,
                      channel: int) -> np.ndarray:
    """``D`` (float32, ``box`` shape) of organ channel ``channel``: the scan around ``box``
    (``CONTEXT_MM`` per side) resampled to the model's isotropic grid, windowed, run through
    the generator and read back on the ROI's voxels."""
    import torch

    cfg = model.config
    spacing = np.asarray(spacing, dtype=float)
    reach = np.ceil(CONTEXT_MM / spacing).astype(int)
    lo = np.maximum(np.asarray(box.lo) - reach, 0)
    hi = np.minimum(np.asarray(box.hi) + reach, image_roi.shape)
    region = np.asarray(image_roi[tuple(slice(a, b) for a, b in zip(lo, hi))], dtype=np.float32)
    iso_shape = np.maximum(np.round(np.asarray(region.shape) * spacing / cfg.spacing_mm).astype(int), 1)
    iso = ndimage.zoom(region, iso_shape / np.asarray(region.shape), order=1, mode="nearest", grid_mode=True)
    w0, w1 = cfg.window_hu
    x = np.clip((iso - w0) / (w1 - w0), 0.0, 1.0).astype(np.float32)
    padded, keep = _pad_to_multiple(x, cfg.multiple)
    with torch.no_grad():
        t = torch.from_numpy(padded)[None, None].to(model.device)
        d = difference_map(model.generator, t, torch.tensor([channel], device=model.device))
    d_iso = d[0, 0].float().cpu().numpy()[keep]
    d_region = ndimage.zoom(d_iso, np.asarray(region.shape) / np.asarray(d_iso.shape), order=1,
                            mode="nearest", grid_mode=True)
    inner = tuple(slice(b - a, b - a + (h - b)) for a, b, h in zip(lo, box.lo, box.hi))
    if d_region.shape != region.shape:
        raise ModelError("the generator's output does not fit the scan region; this is a bug")
    return np.clip(d_region[inner], -1.0, 1.0).astype(np.float32)


def _pad_to_multiple(x: np.ndarray, multiple: int) -> tuple[np.ndarray, tuple[slice, ...]]:
    """``x`` mirror-padded to sides that are multiples of ``multiple`` (at least 2 x it), and
    the slices that recover ``x``."""
    pads, keep = [], []
    for n in x.shape:
        target = max(-(-n // multiple) * multiple, 2 * multiple)
        before = (target - n) // 2
        pads.append((before, target - n - before))
        keep.append(slice(before, before + n))
    return np.pad(x, pads, mode="symmetric"), tuple(keep)


__all__ = ["AdversarialAppearance", "difference_in_box"]
