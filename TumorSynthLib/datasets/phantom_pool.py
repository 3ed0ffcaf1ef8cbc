"""Folders of healthy phantom CTs for segmentation training and benchmarks.

``write_phantom_pool`` renders ``make_abdomen`` phantoms for several seeds, contrast phases and
voxel grids and writes each as ``<folder>/<case_id>/image.nii.gz`` (HU rounded to int16, as
scanners store them) + ``label.nii.gz`` (TotalSegmentator ids), the layout ``tumorsynth train
--data`` reads. Cases already on disk are reused, so a rerun costs nothing; building one costs
~1.5 s (default grid) and ~15 MB of disk.

Grids (``GRIDS``): ``default`` is the phantom's own 1.4 x 1.4 x 2.5 mm grid; ``coarse`` is 3 mm
isotropic over the same field of view (like the TotalSegmentator example CT), so a model trained
at 2 mm sees both down- and up-sampled noise.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import numpy as np

from ..core.errors import InputError
from ..core.volume import Volume
from ..core.volume_io import save_volume
from ..phantom import make_abdomen

#: name -> (shape in voxels, spacing in mm).
GRIDS: dict[str, tuple[tuple[int, int, int], tuple[float, float, float]]] = {
    "default": ((256, 256, 96), (1.4, 1.4, 2.5)),
    "coarse": ((120, 120, 80), (3.0, 3.0, 3.0)),
}
PHASES = ("venous", "noncontrast")


def case_id(seed: int, phase: str, grid: str) -> str:
    """``phantom<seed>-<phase>[-<grid>]`` (the grid is named when it is not the default)."""
    suffix = "" if grid == "default" else f"-{grid}"
    return f"phantom{int(seed)}-{phase}{suffix}"


def render_phantom(seed: int, phase: str = "venous", grid: str = "default") -> tuple[Volume, Volume]:
    """(CT in HU as int16, TotalSegmentator labels) of one phantom."""
    if grid not in GRIDS:
        raise InputError(f"unknown phantom grid '{grid}'; choose one of {', '.join(GRIDS)}")
    shape, spacing = GRIDS[grid]
    ct, organs, _ = make_abdomen(seed=int(seed), shape=shape, spacing=spacing, phase=phase)
    hu = np.clip(np.rint(ct.array), -1024, 3071).astype(np.int16)
    return ct.with_array(hu), organs


def write_phantom_case(folder: str | Path, seed: int, phase: str = "venous",
                       grid: str = "default") -> dict[str, str]:
    """Write (or reuse) one phantom case; returns its datalist entry."""
    cid = case_id(seed, phase, grid)
    case_dir = Path(folder) / cid
    image, label = case_dir / "image.nii.gz", case_dir / "label.nii.gz"
    if not (image.is_file() and label.is_file()):
        ct, organs = render_phantom(seed, phase, grid)
        save_volume(organs, label)
        save_volume(ct, image)     # written last: its presence marks the case complete
    return {"image": str(image), "label": str(label), "case_id": cid,
            "seed": int(seed), "phase": phase, "grid": grid}


def write_phantom_pool(folder: str | Path, seeds: Iterable[int], phases: Sequence[str] = PHASES,
                       grids: Sequence[str] = ("default",),
                       progress: Callable[[int, int, str], Any] | None = None) -> list[dict[str, str]]:
    """Every (seed, phase, grid) phantom case under ``folder``; ``progress(i, n, case_id)`` is
    called after each one."""
    for phase in phases:
        if phase not in PHASES:
            raise InputError(f"unknown phase '{phase}'; choose from {', '.join(PHASES)}")
    todo = [(int(s), p, g) for s in seeds for g in grids for p in phases]
    entries = []
    for i, (seed, phase, grid) in enumerate(todo, start=1):
        entries.append(write_phantom_case(folder, seed, phase, grid))
        if progress is not None:
            progress(i, len(todo), entries[-1]["case_id"])
    return entries


__all__ = ["GRIDS", "PHASES", "case_id", "render_phantom", "write_phantom_case", "write_phantom_pool"]
