"""Procedural abdominal CT phantom with TotalSegmentator organ labels: the built-in default data.

``make_abdomen(seed)`` draws an adult upper abdomen (lower thorax to L4/L5) in millimetres --
body wall, spine and ribs, lung bases, liver with portal and hepatic veins, gallbladder, spleen,
kidneys (cortex, medulla, sinus, pelvis), pancreas, stomach, duodenum, colon and small bowel with
gas and fluid, aorta, IVC and their branches -- then renders it on any voxel grid in HU for a
non-contrast or portal-venous phase, with slight partial-volume blur and correlated noise.

Conventions: the affine is diagonal (i -> patient right (+x), j -> anterior, k -> superior, RAS)
and centres the field of view on (0, 0, 0). Labels are TotalSegmentator v2 "total" ids. Voxels of
the large vessels are labelled as vessels, not as the organ around them: inside the liver the
portal and hepatic veins carry 64 (portal_vein_and_splenic_vein) and the intrahepatic IVC 63, so
``labels == 5`` is liver parenchyma only. The kidney labels cover cortex, medulla and the renal
sinus (fat, pelvis, vessels) inside the kidney outline.

Layout: ``phantom_shapes`` (grid, implicit shapes, tubes, blur), ``phantom_tissue`` (tissue
classes, HU per phase, label ids, the canvas), ``phantom_body`` (wall, spine, ribs, back muscles,
lung bases), ``phantom_organs`` (solid organs and vessels), ``phantom_gut`` (stomach and bowel).
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from ..core.errors import InputError
from ..core.volume import Volume
from .body import (
    Body,
    Spine,
    paint_back_muscles,
    paint_body,
    paint_ribs,
    paint_spine,
    paint_thorax_base,
)
from .organs import paint_organs
from .shapes import Grid, blur3
from .tissue import LABEL_IDS, PHASES, Canvas, hu_table, noise_gain_table

#: Standard deviation (HU) of the image noise and its in-plane correlation (3-tap weights).
NOISE_SIGMA_HU = 12.0
_BLUR_WEIGHTS = (0.22, 0.22, 0.0)


def make_abdomen(seed: int = 0, shape: Sequence[int] = (256, 256, 96),
                 spacing: Sequence[float] = (1.4, 1.4, 2.5),
                 phase: str = "venous") -> tuple[Volume, Volume, dict[int, str]]:
    """Build the phantom: (CT in HU (float32), organ labels (int16), {label id: name}).

    ``shape`` voxels of ``spacing`` mm centred on the patient; the anatomy is defined in mm, so a
    coarser grid shows the same patient. The same ``seed`` gives identical bytes; other seeds give
    other (plausible) patients. ``phase`` is "venous" (portal-venous contrast) or "noncontrast";
    both phases of a seed share the anatomy and the noise. ``label_names`` lists the ids present.
    """
    grid = _check_grid(shape, spacing)
    if phase not in PHASES:
        raise InputError(f"phase must be one of {PHASES}, got {phase!r}")
    if int(seed) < 0:
        raise InputError(f"seed must be a non-negative integer, got {seed}")
    anatomy_seed, hu_seed, noise_seed = np.random.SeedSequence(int(seed)).spawn(3)
    canvas = build_anatomy(grid, np.random.default_rng(anatomy_seed))
    lut = hu_table(phase, np.random.default_rng(hu_seed))
    ct = render_ct(canvas.tissue, lut, np.random.default_rng(noise_seed))
    meta = {"case_id": f"phantom-{seed}", "source": "TumorSynth phantom", "phase": phase}
    present = set(np.flatnonzero(np.bincount(canvas.labels.ravel())).tolist())
    names = {i: n for n, i in sorted(LABEL_IDS.items(), key=lambda kv: kv[1]) if i in present}
    return (Volume(ct, grid.affine, dict(meta)), Volume(canvas.labels, grid.affine, dict(meta)),
            names)


def _check_grid(shape: Sequence[int], spacing: Sequence[float]) -> Grid:
    try:
        shp = tuple(int(s) for s in shape)
        spc = tuple(float(s) for s in spacing)
    except (TypeError, ValueError):
        raise InputError(f"shape and spacing must be 3 numbers each, got {shape!r}, {spacing!r}")
    if len(shp) != 3 or len(spc) != 3 or min(shp) < 1 or not all(np.isfinite(spc)) or min(spc) <= 0:
        raise InputError(f"shape must be 3 positive integers and spacing 3 positive mm values, "
                         f"got {shape!r}, {spacing!r}")
    return Grid(shp, spc)  # type: ignore[arg-type]


def build_anatomy(grid: Grid, rng: np.random.Generator) -> Canvas:
    """Paint every structure (tissue classes and labels) in a fixed order on a new canvas."""

    canvas = Canvas(grid)
    body = Body.random(rng)
    spine = Spine.random(rng, body)
    paint_body(canvas, body)
    paint_back_muscles(canvas, body, spine)
    paint_spine(canvas, spine)
    paint_ribs(canvas, body, spine, rng)
    paint_thorax_base(canvas, body, spine, rng)
    paint_organs(canvas, body, spine, rng)
    return canvas


def render_ct(tissue: np.ndarray, lut: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """HU image from the tissue map: lookup, white noise (stronger in textured tissues such as
    trabecular bone), then one small separable blur that gives both the partial-volume softening
    of edges and the noise its in-plane correlation."""
    w = _BLUR_WEIGHTS
    gain = np.sqrt(np.prod([(1 - 2 * a) ** 2 + 2 * a * a for a in w]))
    white = rng.random(tissue.shape, dtype=np.float32)
    white -= np.float32(0.5)
    white *= np.float32(NOISE_SIGMA_HU * np.sqrt(12.0) / gain)
    white *= noise_gain_table()[tissue]
    image = lut[tissue]
    image += white
    image = blur3(image, w)
    np.clip(image, -1024.0, 3071.0, out=image)
    return image
