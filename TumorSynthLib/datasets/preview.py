"""PNG montage through each synthetic tumor: axial, coronal and sagittal slices, each shown plain
and with the tumor outline, so a person can judge the result without opening a viewer.

Display orientation follows the radiological convention whatever the array order
(``core.display``: axial with anterior up and the patient's right on the image left, ...).
Every panel shows the same square field of view in mm (square pixels whatever the spacing),
centred on the tumor's centroid.

Speed and determinism: the panels are composed as one RGB array (nearest-neighbour sampling)
and drawn on a single matplotlib axes with the Agg renderer; outlines are contour lines at the
0.5 level of the voxel mask. No "Software" or time metadata is written, so equal inputs give
equal PNG bytes.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ..core.display import PLANES, plane_slice
from ..core.files import save_figure
from ..core.volume import Volume
from ..synthesis.lesion_types import report_lesion

#: Smallest field of view (mm) of a panel (context around small tumors); large ones get 3.5 d.
MIN_FOV_MM = 140.0
PANEL_PX, GAP_PX, TITLE_PX, HEADER_PX, DPI = 220, 6, 30, 24, 100
OUTLINE_COLOR = "#ff3b30"


def sample_panel(image: np.ndarray, center: np.ndarray, spacing: np.ndarray, fov_mm: float,
                 size_px: int, fill: float = np.nan) -> np.ndarray:
    """``size_px`` square pixels covering ``fov_mm`` around ``center`` (nearest voxel; ``fill``
    outside the slice)."""
    offsets = (np.arange(size_px) + 0.5) * fov_mm / size_px - fov_mm / 2.0
    rows = np.floor(center[0] + offsets / spacing[0] + 0.5).astype(int)
    cols = np.floor(center[1] + offsets / spacing[1] + 0.5).astype(int)
    out = np.full((size_px, size_px), fill, dtype=np.float32)
    r_ok = (rows >= 0) & (rows < image.shape[0])
    c_ok = (cols >= 0) & (cols < image.shape[1])
    out[np.ix_(r_ok, c_ok)] = image[np.ix_(rows[r_ok], cols[c_ok])]
    return out


def tumor_source(labels: Volume, report: dict[str, Any], number: int,
                 instances: Volume | None = None) -> tuple[np.ndarray, list[int]]:
    """(array, ids) whose voxels equal to one of ``ids`` are tumor ``number`` (1-based): the
    instance map when given, else the labels with the report's tumor (and necrosis) ids."""
    if instances is not None:
        return np.asarray(instances.array), [number]
    ids = [report.get(key) for key in ("tumor_id", "necrosis_label_id")]
    return np.asarray(labels.array), [int(v) for v in ids if v is not None]


def _title(report: dict[str, Any], number: int) -> str:
    if not report:
        return "no tumor"
    diameter = report.get("diameter_measured_mm", report.get("diameter_mm"))
    size = f"{diameter:.1f} mm" if isinstance(diameter, (int, float)) else "size ?"
    return f"{report_lesion(report).label} {number}: {report.get('organ', '?')}, {report.get('stage', '?')}, {size}"


def _center_vox(image: Volume, report: dict[str, Any], source: np.ndarray, ids: list[int]) -> np.ndarray:
    for key in ("centroid_ras", "center_placed_ras"):
        if report.get(key) is not None:
            return image.ras_to_voxel(report[key])
    mask = np.isin(source, ids) if ids else np.zeros(source.shape, bool)
    if mask.any():
        return np.array([np.mean(ix) for ix in np.nonzero(mask)])
    return (np.array(image.shape) - 1) / 2.0


def write_preview(
    image: Volume, labels: Volume, reports: list[dict[str, Any]], path: str | Path, *,
    window: tuple[float, float] = (-160.0, 240.0), instances: Volume | None = None,
) -> Path:
    """Write the montage PNG to ``path`` and return it.

    One row per tumor (``reports`` in order; tumor n is instance n of ``instances`` when given,
    else the voxels with the report's ``tumor_id``): axial, coronal and sagittal slices through
    its centroid, each plain and with the outline, field of view max(140 mm, 3.5 x diameter).
    ``window`` = (low, high) HU of the grey scale. With no tumor, one row through the centre.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    rows = max(1, len(reports))
    width = 2 * len(PLANES) * (PANEL_PX + GAP_PX) + GAP_PX
    height = HEADER_PX + rows * (TITLE_PX + PANEL_PX + GAP_PX)
    canvas = np.zeros((height, width, 3), dtype=np.float32)
    fig = Figure(figsize=(width / DPI, height / DPI), dpi=DPI, facecolor="black")
    FigureCanvasAgg(fig)
    ax = fig.add_axes((0.0, 0.0, 1.0, 1.0))  # text and outlines, in canvas pixel coordinates
    ax.set_axis_off()
    ax.set_zorder(1)  # above the figimage canvas
    text = dict(color="white", fontsize=7.5, va="top", ha="left")
    ax.text(width / 2, 4, "TumorSynth synthetic image - not for diagnosis",
            **{**text, "ha": "center", "fontsize": 9})
    outlines = []
    for n in range(rows):
        report = reports[n] if reports else {}
        source, ids = tumor_source(labels, report, n + 1, instances)
        top = HEADER_PX + n * (TITLE_PX + PANEL_PX + GAP_PX)
        ax.text(GAP_PX, top, _title(report, n + 1), **text)
        outlines += _draw_row(ax, canvas, image, (source, ids), report, top + TITLE_PX, window, text)
    fig.figimage(canvas, origin="upper")  # one canvas pixel per figure pixel: no resampling
    for grid_x, grid_y, values in outlines:
        ax.contour(grid_x, grid_y, values, levels=[0.5], colors=OUTLINE_COLOR, linewidths=0.9)
    ax.set_xlim(-0.5, width - 0.5)
    ax.set_ylim(height - 0.5, -0.5)
    return save_figure(fig, path, dpi=DPI, facecolor="black", metadata={"Software": None})


def _draw_row(ax: Any, canvas: np.ndarray, image: Volume, tumor: tuple[np.ndarray, list[int]],
              report: dict[str, Any], top: int, window: tuple[float, float],
              text: dict[str, Any]) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Paint one row of panels into ``canvas``; return the outline contours to draw."""
    source, ids = tumor
    center = _center_vox(image, report, source, ids)
    diameter = float(report.get("diameter_measured_mm") or report.get("diameter_mm") or 0.0)
    fov = max(MIN_FOV_MM, 3.5 * diameter)
    lo, hi = window
    contours = []
    for p, (plane, *_rest) in enumerate(PLANES):
        pixels, c2d, spacing2d = plane_slice(image.array, image.affine, center, plane)
        panel = sample_panel(pixels.astype(np.float32), c2d, spacing2d, fov, PANEL_PX)
        grey = np.clip((panel - lo) / (hi - lo), 0.0, 1.0)
        grey[np.isnan(panel)] = 0.0
        mask2d = np.isin(plane_slice(source, image.affine, center, plane)[0], ids)
        for k in (0, 1):
            left = GAP_PX + (2 * p + k) * (PANEL_PX + GAP_PX)
            canvas[top:top + PANEL_PX, left:left + PANEL_PX] = grey[..., None]
            ax.text(left, top - 13, f"{plane}{' + outline' if k else ''}", **text)
            if k and mask2d.any():
                contours.append(_outline_grid(mask2d, c2d, spacing2d, fov, top, left))
    return contours


def _outline_grid(mask2d: np.ndarray, center: np.ndarray, spacing: np.ndarray, fov: float,
                  top: int, left: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(x, y, values) placing the voxel mask's cells at canvas pixel coordinates, limited to the
    voxels inside the panel (so no line leaves its panel)."""
    scale = PANEL_PX / fov  # pixels per mm
    ys = top + ((np.arange(mask2d.shape[0]) - center[0]) * spacing[0] + fov / 2) * scale - 0.5
    xs = left + ((np.arange(mask2d.shape[1]) - center[1]) * spacing[1] + fov / 2) * scale - 0.5
    keep_r = (ys >= top) & (ys <= top + PANEL_PX - 1)
    keep_c = (xs >= left) & (xs <= left + PANEL_PX - 1)
    values = mask2d[np.ix_(keep_r, keep_c)].astype(np.float32)
    return xs[keep_c], ys[keep_r], values
