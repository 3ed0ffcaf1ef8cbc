"""Scene nodes -> files a background ``tumorsynth`` process reads (world RAS, NIfTI).

The Trainer module hands data to its subprocess through a temporary folder: images and
labelmaps written by ``TumorSynthLib.core.volume.save_volume`` (imported lazily) and, for
training, a MONAI-style datalist ``{"training": [{"image", "label"}], "validation": [...]}``
with paths relative to the JSON file.

Example::

    datalist = write_datalist([(ct1, labels1), (ct2, labels2)], tmpDir)
    image = write_volume(ctNode, tmpDir / "image.nii.gz")
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
import slicer

from .errors import SlicerLogicError
from .volume_logic import array_ijk, world_affine


def write_volume(node: slicer.vtkMRMLVolumeNode, path: str | Path,
                 array: np.ndarray | None = None) -> Path:
    """Write a volume node (or ``array`` on its grid) as a file in world RAS."""
    from TumorSynthLib.core.volume import Volume
    from TumorSynthLib.core.volume_io import save_volume

    values = array_ijk(node) if array is None else array
    volume = Volume(values, world_affine(node), {"case_id": node.GetName()})
    return Path(save_volume(volume, Path(path)))


def write_datalist(cases: Sequence[tuple[slicer.vtkMRMLVolumeNode, slicer.vtkMRMLVolumeNode]],
                   folder: str | Path, validationCount: int = 0) -> Path:
    """Write each (image, labelmap) pair as ``caseNNN_image/label.nii.gz`` and a datalist;
    the last ``validationCount`` pairs go to "validation". Returns the JSON's path."""
    if not cases:
        raise SlicerLogicError("no training case selected: pick at least one volume with labels")
    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    items = []
    for index, (image, label) in enumerate(cases):
        if label is None:
            raise SlicerLogicError(f"'{image.GetName()}' has no labelmap; pick one for each volume")
        stem = f"case{index:03d}"
        write_volume(image, out / f"{stem}_image.nii.gz")
        write_volume(label, out / f"{stem}_label.nii.gz")
        items.append({"image": f"{stem}_image.nii.gz", "label": f"{stem}_label.nii.gz",
                      "case_id": image.GetName()})
    split = len(items) - max(0, min(int(validationCount), len(items) - 1))
    datalist = {"training": items[:split], "validation": items[split:]}
    path = out / "datalist.json"
    from TumorSynthLib.core.files import write_json_atomic

    write_json_atomic(path, datalist)
    return path
