"""Tissues of the phantom, their attenuation per contrast phase, and the canvas they are painted on.

The anatomy is drawn once as a map of tissue classes (uint8) plus TotalSegmentator organ ids
(int16); the contrast phase only changes the lookup table from tissue class to HU, so the same
seed gives the same anatomy in both phases.
"""
from __future__ import annotations

from enum import IntEnum

import numpy as np

from .shapes import Grid, Region

PHASES = ("venous", "noncontrast")


class T(IntEnum):
    """Tissue classes (values of the tissue map)."""

    AIR = 0
    SKIN = 1
    SUBFAT = 2
    MUSCLE = 3
    FAT = 4          # intra-abdominal / retroperitoneal fat: the "free" space organs are put in
    TABLE = 5
    CORTEX = 6       # cortical bone
    MARROW = 7       # cancellous bone
    DISC = 8
    CSF = 9
    CORD = 10
    LUNG = 11
    HEART = 12
    LIVER = 13
    SPLEEN = 14
    KCORTEX = 15
    KMEDULLA = 16
    URINE = 17
    PANCREAS = 18
    BILE = 19
    GBWALL = 20
    GIWALL = 21
    GIFLUID = 22
    STOOL = 23
    AORTA = 24
    ARTERY = 25
    PORTAL = 26
    HEPVEIN = 27
    IVC = 28
    RENALV = 29
    CARTILAGE = 30
    SINUSFAT = 31
    ADRENAL = 32


#: (non-contrast HU, portal-venous HU) per tissue; adult averages from the literature (the
#: pancreas is set a little higher because its fat clefts pull the organ's median down).
HU = {
    T.AIR: (-1000, -1000), T.SKIN: (30, 45), T.SUBFAT: (-105, -100), T.MUSCLE: (48, 56),
    T.FAT: (-95, -92), T.TABLE: (180, 180), T.CORTEX: (820, 820), T.MARROW: (225, 230),
    T.DISC: (85, 90), T.CSF: (8, 10), T.CORD: (35, 38), T.LUNG: (-860, -860),
    T.HEART: (40, 150), T.LIVER: (55, 110), T.SPLEEN: (45, 120), T.KCORTEX: (32, 170),
    T.KMEDULLA: (28, 140), T.URINE: (8, 10), T.PANCREAS: (42, 102), T.BILE: (8, 10),
    T.GBWALL: (35, 80), T.GIWALL: (40, 105), T.GIFLUID: (14, 16), T.STOOL: (-30, -30),
    T.AORTA: (42, 175), T.ARTERY: (42, 170), T.PORTAL: (42, 185), T.HEPVEIN: (42, 170),
    T.IVC: (42, 150), T.RENALV: (42, 180), T.CARTILAGE: (110, 115), T.SINUSFAT: (-85, -80),
    T.ADRENAL: (30, 75),
}

#: Tissues whose HU varies between seeds (patients): relative spread (uniform +-).
PATIENT_SPREAD = {
    T.LIVER: 0.08, T.SPLEEN: 0.08, T.KCORTEX: 0.06, T.KMEDULLA: 0.06, T.PANCREAS: 0.08,
    T.MUSCLE: 0.08, T.AORTA: 0.08, T.PORTAL: 0.06, T.HEPVEIN: 0.06, T.IVC: 0.08,
    T.RENALV: 0.06, T.ARTERY: 0.08, T.MARROW: 0.15, T.HEART: 0.08,
}

#: Noise multiplier per tissue: trabecular bone, stool and lung look mottled, not smooth.
TEXTURE = {T.MARROW: 4.0, T.STOOL: 3.0, T.LUNG: 2.0, T.CORTEX: 2.0}

#: TotalSegmentator v2 ("total" task) ids and names used by the phantom.
LABEL_IDS = {
    "spleen": 1, "kidney_right": 2, "kidney_left": 3, "gallbladder": 4, "liver": 5,
    "stomach": 6, "pancreas": 7, "adrenal_gland_right": 8, "adrenal_gland_left": 9,
    "lung_lower_lobe_left": 11, "lung_lower_lobe_right": 14, "esophagus": 15,
    "small_bowel": 18, "duodenum": 19, "colon": 20,
    "vertebrae_L5": 27, "vertebrae_L4": 28, "vertebrae_L3": 29, "vertebrae_L2": 30,
    "vertebrae_L1": 31, "vertebrae_T12": 32, "vertebrae_T11": 33, "vertebrae_T10": 34,
    "heart": 51, "aorta": 52, "inferior_vena_cava": 63, "portal_vein_and_splenic_vein": 64,
    "iliac_artery_left": 65, "iliac_artery_right": 66, "iliac_vena_left": 67,
    "iliac_vena_right": 68, "spinal_cord": 79, "autochthon_left": 86, "autochthon_right": 87,
    "iliopsoas_left": 88, "iliopsoas_right": 89, "costal_cartilages": 117,
    **{f"rib_left_{n}": 91 + n for n in range(1, 13)},
    **{f"rib_right_{n}": 103 + n for n in range(1, 13)},
}
L = LABEL_IDS


def hu_table(phase: str, rng: np.random.Generator) -> np.ndarray:
    """Lookup table tissue class -> HU (float32) for ``phase``, with per-patient variation."""
    col = 1 if phase == "venous" else 0
    lut = np.zeros(len(T), np.float32)
    spread = {t: rng.uniform(-s, s) for t, s in PATIENT_SPREAD.items()}  # same draws per phase
    for t, pair in HU.items():
        value = pair[col]
        lut[t] = value * (1.0 + spread.get(t, 0.0))
    return lut


def noise_gain_table() -> np.ndarray:
    """Lookup table tissue class -> multiplier of the image noise (texture)."""
    gain = np.ones(len(T), np.float32)
    for t, g in TEXTURE.items():
        gain[t] = g
    return gain


def _tissue_set(classes) -> np.ndarray:
    """Boolean lookup table over tissue values: True for the given classes."""
    table = np.zeros(256, bool)
    table[list(classes)] = True
    return table


class Canvas:
    """Tissue map and organ labels being painted. Later strokes override earlier ones only
    where they are allowed to (``into``), which is how organs nestle against each other."""

    def __init__(self, grid: Grid):
        self.grid = grid
        self.tissue = np.zeros(grid.shape, np.uint8)
        self.labels = np.zeros(grid.shape, np.int16)

    def free(self, reg: Region) -> np.ndarray:
        """Unclaimed intra-abdominal fat in the region (where a new organ may go)."""
        return (self.tissue[reg.slices] == T.FAT) & (self.labels[reg.slices] == 0)

    def paint_voxels(self, flat: np.ndarray, tissue, label: int | None = None,
                     into: tuple[T, ...] | None = None) -> None:
        """Like :meth:`paint` for voxels given by flat indices; ``into`` lists the tissue
        classes that may be overwritten (labels too), None = anything."""
        tis, lab = self.tissue.reshape(-1), self.labels.reshape(-1)
        if into is not None:
            keep = _tissue_set(into)[tis[flat]]
            flat = flat[keep]
            if isinstance(tissue, np.ndarray):
                tissue = tissue[keep]
        tis[flat] = tissue
        if label is not None:
            lab[flat] = label

    def paint(self, reg: Region, mask: np.ndarray, tissue, label: int | None = None,
              into: tuple[T, ...] | str | None = "free", over_labels: bool = False) -> np.ndarray:
        """Set ``tissue`` (a class or an array of classes) and ``label`` (None: keep) on ``mask``
        voxels of the region. ``into``: "free" (unclaimed fat only), a tuple of tissue classes
        that may be overwritten (only unlabelled voxels unless ``over_labels``), or None
        (anything). Returns the painted mask."""
        tis = self.tissue[reg.slices]
        lab = self.labels[reg.slices]
        m = np.broadcast_to(mask, reg.shape)
        if into == "free":
            m = m & (tis == T.FAT) & (lab == 0)
        elif into is not None:
            m = m & _tissue_set(into)[tis]
            if not over_labels:
                m = m & (lab == 0)
        if isinstance(tissue, np.ndarray):
            tis[m] = np.broadcast_to(tissue, reg.shape)[m]
        else:
            tis[m] = int(tissue)
        if label is not None:
            lab[m] = label
        return m
