"""What a tumor request is (``TumorSpec``) and where it goes (``Site``, made by placement).

``TumorSpec`` is the user's request: organ, click (RAS mm or voxel) or none, diameter (mm) or a
stage to draw one, method (or a geometry / appearance pair), seed and options. ``Site`` is
everything the synthesis stages need to know about one tumor's place, restricted to its region
of interest (ROI): arrays of the ROI, the parenchyma statistics measured around the centre, the
target size. Every later stage works on these arrays only, so a tumor's cost does not depend on
the size of the scan.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Mapping

import numpy as np

from ..core.volume import Box
from .parenchyma import ParenchymaStats


@dataclass(frozen=True)
class TumorSpec:
    """One tumor request. Sizes in mm; ``center_ras`` in RAS mm, ``center_voxel`` in array
    indices ``[i, j, k]`` (give at most one; neither means "sample a place in the organ").

    ``diameter_mm`` is the equivalent-sphere diameter ``(6V/pi)^(1/3)``; None draws one from the
    stage's range (or from ``options["tnm"]``). ``method`` names a (geometry, appearance) pair
    of the engine catalogue; ``geometry`` / ``appearance`` override one half of it. ``options``
    are validated against the catalogue's option table (``synthesis.options``).
    """

    organ: str = "liver"
    center_ras: tuple[float, float, float] | None = None
    diameter_mm: float | None = None
    stage: str = "early"
    method: str = "handcrafted"
    seed: int = 0
    options: Mapping[str, Any] = field(default_factory=dict)
    center_voxel: tuple[float, float, float] | None = None
    geometry: str | None = None
    appearance: str | None = None

    def with_options(self, **changes: Any) -> "TumorSpec":
        """A copy with ``options`` updated (None removes a key)."""
        options = {**dict(self.options or {}), **changes}
        return replace(self, options={k: v for k, v in options.items() if v is not None})

    def to_dict(self) -> dict[str, Any]:
        def floats(v: Any) -> list[float] | None:
            return None if v is None else [float(x) for x in v]

        return {
            "organ": self.organ, "center_ras": floats(self.center_ras),
            "center_voxel": floats(self.center_voxel),
            "diameter_mm": None if self.diameter_mm is None else float(self.diameter_mm),
            "stage": self.stage, "method": self.method, "geometry": self.geometry,
            "appearance": self.appearance, "seed": int(self.seed), "options": dict(self.options or {}),
        }


@dataclass
class Site:
    """Everything the synthesis stages need about where one tumor goes (made by
    ``placement.prepare_site``).

    All ROI arrays have ``roi.shape`` and are private copies (a stage may not write into them;
    it makes its own). ``center_vox`` is in ROI voxel coordinates; ``affine_roi`` maps ROI
    voxels to RAS mm; ``spacing`` is mm per array axis.
    """

    spec: TumorSpec
    organ: str                      # canonical organ: liver | pancreas | kidney | spleen
    organ_label_id: int             # label id of the organ holding the tumor (input convention)
    tumor_id: int                   # label id the tumor voxels receive
    convention: str                 # totalseg | msd | lits | kits | binary
    stage: str
    diameter_mm: float              # target equivalent diameter (mm)
    diameter_source: str            # "requested" | "stage-default" | "tnm"
    roi: Box                        # box in full-image voxels
    scan_shape: tuple[int, int, int]  # shape of the whole scan
    affine_roi: np.ndarray          # 4x4 ROI voxel -> RAS mm
    spacing: np.ndarray             # (3,) mm
    image_roi: np.ndarray           # float32 HU
    labels_roi: np.ndarray          # integer labels (zeros when no labels were given)
    organ_mask: np.ndarray          # bool: the organ (tissue and lesions already in it)
    vessel_mask: np.ndarray         # bool: walls the tumor must bend around
    occupied: np.ndarray            # bool: lesions and earlier tumors (a new tumor may not overlap)
    center_vox: np.ndarray          # (3,) float, ROI voxel coordinates of the placed centre
    center_requested_ras: list[float] | None
    center_placed_ras: list[float]
    parenchyma: ParenchymaStats     # measured around the centre (common.md "Intensity")
    organ_source: str               # "labels" | "region-grown"
    organ_volume_ml: float
    placement: str                  # "click" | "sampled"
    snap_distance_mm: float
    allow_exophytic: bool           # the tumor may bulge past the organ contour
    draws: dict[str, Any] = field(default_factory=dict)    # placement's random draws
    warnings: list[str] = field(default_factory=list)

    @property
    def organ_median_hu(self) -> float:
        return self.parenchyma.median_hu

    @property
    def organ_mad_hu(self) -> float:
        return self.parenchyma.mad_hu

    @property
    def center_voxel(self) -> list[float]:
        """The placed centre in full-image voxel coordinates."""
        return [float(v) for v in np.asarray(self.center_vox) + np.asarray(self.roi.lo)]

    @property
    def options(self) -> Mapping[str, Any]:
        return self.spec.options or {}


__all__ = ["Site", "TumorSpec"]
