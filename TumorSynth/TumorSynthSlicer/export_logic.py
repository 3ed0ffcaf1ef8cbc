"""Export of a session: image + label (NIfTI or NRRD), report JSON and ``tumors.seg.nrrd``.

Everything is written in *world* RAS: the geometry the engine saw and the coordinates the
reports use. When the CT is under a linear transform, the files therefore carry the transform
baked in (Slicer's own "Save" would write the untransformed grid). The image is marked as
synthetic in its header (through ``TumorSynthLib.core.volume.save_volume``) and in the report.

Example::

    paths = export_session(session, "/tmp/case1", fmt="nii.gz")
    # {'image': .../image.nii.gz, 'label': .../label.nii.gz, 'report': .../report.json,
    #  'segmentation': .../tumors.seg.nrrd}
"""
from __future__ import annotations

import datetime
from pathlib import Path
from typing import Any

import numpy as np
import slicer

from . import segment_logic
from .errors import MissingDependencyError, SlicerLogicError
from .output_logic import LABEL_NAMES, TumorSession
from .volume_logic import array_ijk, labelmap_from_array, world_affine

FORMATS = {"nii.gz": ".nii.gz", "nii": ".nii", "nrrd": ".nrrd"}


def export_session(session: TumorSession, outDir: str | Path, fmt: str = "nii.gz",
                   ) -> dict[str, Path]:
    """Write the session's outputs into ``outDir`` (created if needed); returns the paths."""
    if fmt not in FORMATS:
        raise SlicerLogicError(f"unknown export format '{fmt}'; choose one of {sorted(FORMATS)}")
    if not session.hasOutputs or session.tumorCount == 0:
        raise SlicerLogicError("nothing to export yet: place at least one tumor first")
    out = Path(outDir).expanduser()
    out.mkdir(parents=True, exist_ok=True)
    ext = FORMATS[fmt]
    save_volume, Volume = _engine_io()
    paths = {
        "image": Path(save_volume(_world_volume(Volume, session.outputVolume),
                                  out / f"image{ext}", synthetic=True,
                                  description="TumorSynth synthetic tumors")),
        "label": Path(save_volume(_world_volume(Volume, session.labelsVolume),
                                  out / f"label{ext}", synthetic=True,
                                  description="TumorSynth labels (1 organ, 2 tumor)")),
        "segmentation": write_world_segmentation(session.segmentation, session.outputVolume,
                                                 out / "tumors.seg.nrrd"),
    }
    paths["report"] = out / "report.json"
    from TumorSynthLib.core.files import write_json_atomic

    write_json_atomic(paths["report"], session_report(session, paths))
    return paths


def session_report(session: TumorSession, paths: dict[str, Path]) -> dict[str, Any]:
    """Provenance of the export: inputs, geometry, label names and one report per tumor."""
    return {
        "synthetic": True,
        "generator": "TumorSynth (3D Slicer extension)",
        "exported": datetime.datetime.now().isoformat(timespec="seconds"),
        "source_volume": session.inputVolume.GetName(),
        "files": {key: path.name for key, path in paths.items()},
        "affine_world_ras": world_affine(session.outputVolume).tolist(),
        "label_names": {str(k): v for k, v in LABEL_NAMES.items()},
        "tumor_count": session.tumorCount,
        "tumors": session.reports,
    }


def write_world_segmentation(segmentation: slicer.vtkMRMLSegmentationNode,
                             reference: slicer.vtkMRMLVolumeNode, path: Path) -> Path:
    """Write ``segmentation`` as ``.seg.nrrd`` on ``reference``'s grid in world RAS: each
    segment is copied (name, colour, terminology) into a temporary, untransformed segmentation
    whose geometry is the reference's world affine. The scene's nodes are not changed."""
    scene = segmentation.GetScene()
    grid = labelmap_from_array(scene, np.zeros(array_ijk(reference).shape, np.uint8),
                               world_affine(reference), "__tumorsynth_export_grid__")
    copy = scene.AddNewNodeByClass("vtkMRMLSegmentationNode", "__tumorsynth_export__")
    storage = scene.AddNewNodeByClass("vtkMRMLSegmentationStorageNode")
    try:
        copy.SetReferenceImageGeometryParameterFromVolumeNode(grid)
        for segment_id in segment_logic.segment_ids(segmentation):
            _copy_segment(segmentation, segment_id, reference, copy, grid)
        storage.SetFileName(str(path))
        if not storage.WriteData(copy):
            raise SlicerLogicError(f"could not write '{path}'; check that the folder is writable")
    finally:
        for node in (copy, storage, grid):
            scene.RemoveNode(node)
    return Path(path)


def _copy_segment(source: slicer.vtkMRMLSegmentationNode, segment_id: str,
                  reference: slicer.vtkMRMLVolumeNode, target: slicer.vtkMRMLSegmentationNode,
                  grid: slicer.vtkMRMLVolumeNode) -> None:
    mask = segment_logic.segment_mask(source, segment_id, reference)
    idx = np.nonzero(mask)
    lo = [int(v.min()) if v.size else 0 for v in idx]
    hi = [int(v.max()) + 1 if v.size else 1 for v in idx]
    segment = source.GetSegmentation().GetSegment(segment_id)
    segment_logic.add_mask_segment(
        target, segment.GetName(), mask[tuple(slice(a, b) for a, b in zip(lo, hi))], lo, grid,
        color=segment.GetColor(), terminology=segment_logic.segment_terminology(source, segment_id))


def _world_volume(Volume: Any, node: slicer.vtkMRMLVolumeNode) -> Any:
    return Volume(array_ijk(node), world_affine(node), {"case_id": node.GetName()})


def _engine_io() -> tuple[Any, Any]:
    try:
        from TumorSynthLib.core.volume import Volume
        from TumorSynthLib.core.volume_io import save_volume
    except ImportError as exc:
        raise MissingDependencyError(
            f"exporting needs the TumorSynth engine ({exc}); install the extension's Python "
            "dependencies and restart Slicer"
        ) from exc
    return save_volume, Volume
