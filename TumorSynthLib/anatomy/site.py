"""What a tumor request is (``TumorSpec``) and where it goes (``Site``, prepared by placement).

``TumorSpec`` is the user's request (organ, click, diameter mm, stage, method, seed, options);
``Site`` is everything a synthesis method needs about one tumor's place, restricted to its ROI.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

import numpy as np

from ..core.volume import Box

STAGES = ("tiny", "early", "intermediate", "advanced")
ORGANS = ("liver", "pancreas", "kidney")


@dataclass(frozen=True)
class TumorSpec:
    """One tumor request. Sizes in mm; ``center_ras`` in RAS mm, ``center_voxel`` in array
    indices ``[i, j, k]`` (give at most one; neither means "sample a location").

    ``diameter_mm`` is the equivalent-sphere diameter ``(6V/pi)^(1/3)``; None draws one from the
    stage's range. ``options`` holds method and effect switches, e.g. ``count``, ``clip_to_organ``,
    ``enhancement`` ("hypo" | "hyper"), ``mass_effect``, ``necrosis``, ``capsule``,
    ``satellites``, ``variant``, ``tnm``, ``steps`` (cellular), ``device``.
    """

    organ: str = "liver"
    center_ras: tuple[float, float, float] | None = None
    diameter_mm: float | None = None
    stage: str = "early"
    method: str = "handcrafted"
    seed: int = 0
    options: Mapping[str, Any] = field(default_factory=dict)
    center_voxel: tuple[float, float, float] | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "organ": self.organ,
            "center_ras": None if self.center_ras is None else [float(v) for v in self.center_ras],
            "center_voxel": None if self.center_voxel is None else [float(v) for v in self.center_voxel],
            "diameter_mm": None if self.diameter_mm is None else float(self.diameter_mm),
            "stage": self.stage,
            "method": self.method,
            "seed": int(self.seed),
            "options": dict(self.options),
        }


@dataclass
class Site:
    """Everything a method needs about where one tumor goes, restricted to the ROI box.

    All ``*_roi`` / mask arrays have ``roi.shape``; ``center_vox`` is in ROI voxel coordinates
    (float); ``affine_roi`` maps ROI voxels to RAS mm; ``spacing`` is mm per array axis.
    """

    spec: TumorSpec
    organ: str                      # canonical organ name: liver | pancreas | kidney | ...
    organ_label_id: int             # label id of the organ holding the tumor (input convention)
    tumor_id: int                   # label id the tumor voxels receive
    convention: str                 # totalseg | msd | lits | kits | binary
    stage: str
    diameter_mm: float              # target equivalent diameter (mm)
    diameter_source: str            # "requested" | "stage-default" | "tnm"
    roi: Box                        # box in full-image voxels
    image_roi: np.ndarray           # float32 HU copy
    labels_roi: np.ndarray          # integer copy of the organ labels (zeros when none given)
    organ_mask: np.ndarray          # bool: voxels of the chosen organ
    vessel_mask: np.ndarray         # bool: walls the tumor must bend around
    occupied: np.ndarray            # bool: tumors placed earlier in this call
    center_vox: np.ndarray          # (3,) float, ROI voxel coordinates of the placed centre
    center_requested_ras: list[float] | None
    center_placed_ras: list[float]
    spacing: np.ndarray             # (3,) mm
    affine_roi: np.ndarray          # 4x4 ROI voxel -> RAS
    organ_median_hu: float
    organ_mad_hu: float
    vessel_threshold_hu: float
    organ_source: str               # "labels" | "region-grown"
    max_inscribed_radius_mm: float  # largest organ-inscribed ball radius near the centre (mm)
    allow_exophytic: bool           # kidney tumors may bulge past the organ contour
    warnings: list[str] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)


