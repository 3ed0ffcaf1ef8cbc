"""Volumes into one session's MRML scene: the CT (and optional organ labels) from the built-in
phantom, from files on the server, or from an upload; organ masks for the engine.

The CT node is the *input*: it is never written to (tumors go into the "<CT> + tumors" volume
that ``TumorSynthSlicer.output_logic.TumorSession`` makes). Organ labels stay arrays (the
engine's ``[i, j, k]`` convention); ``organ_mask`` turns them into the boolean mask of the
chosen organ that ``place_tumor`` expects.

Example::

    case = load_phantom(scene)                     # Case(ct node, labels array, convention)
    mask = case.organ_mask("liver")                # bool [i, j, k] or None without labels
"""
from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from TumorSynthLib.anatomy.organs import canonical_organ, organ_label_ids
from TumorSynthLib.core.errors import InputError
from TumorSynthLib.volume import Volume, load_volume
from TumorSynthSlicer.volume_logic import array_to_matrix, set_array_ijk

#: The built-in phantom of the web page: a coarse grid keeps start-up at about two seconds.
PHANTOM_SHAPE = (128, 128, 64)
PHANTOM_SPACING = (2.5, 2.5, 4.0)
#: Soft-tissue window of the slice views (width, level) in HU.
WINDOW_LEVEL = (400.0, 40.0)
UPLOAD_SUFFIXES = (".nii", ".nii.gz", ".nrrd", ".nhdr", ".seg.nrrd")


@dataclass
class Case:
    """The loaded input: CT node, organ labels (``[i, j, k]`` int array on the CT grid, or
    None) and their convention, and where it came from (shown in the page and the report)."""

    ct: Any
    labels: np.ndarray | None
    convention: str
    source: str

    def organ_mask(self, organ: str) -> np.ndarray | None:
        """Boolean mask of ``organ`` (either kidney for "kidney"), None without labels."""
        if self.labels is None:
            return None
        ids = organ_label_ids(canonical_organ(organ), self.convention)
        mask = np.isin(self.labels, ids)
        if not mask.any():
            raise InputError(f"the organ labels hold no {organ} (ids {list(ids)} in the "
                             f"'{self.convention}' convention); choose another organ or "
                             "open the CT without labels to grow the organ from the click")
        return mask

    def organ_at(self, ijk: Sequence[int]) -> str | None:
        """The offered organ whose label is at voxel ``ijk`` (None outside every organ)."""
        if self.labels is None:
            return None
        value = int(self.labels[tuple(int(v) for v in ijk)])
        for organ in ("liver", "pancreas", "kidney"):
            if value and value in organ_label_ids(organ, self.convention):
                return organ
        return None


def add_ct_node(scene: Any, volume: Volume, name: str) -> Any:
    """A scalar volume node holding ``volume`` (``[i, j, k]``, RAS affine), shown with the
    soft-tissue window. The array is copied: the node owns its voxels."""
    node = scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", name)
    node.SetIJKToRASMatrix(array_to_matrix(np.asarray(volume.affine, dtype=float)))
    values = np.asarray(volume.array)
    if np.issubdtype(values.dtype, np.floating) and np.allclose(values, np.rint(values)):
        values = np.clip(values, -32768, 32767).astype(np.int16)
    set_array_ijk(node, values)
    node.CreateDefaultDisplayNodes()
    display = node.GetDisplayNode()
    display.SetAutoWindowLevel(False)
    display.SetWindowLevel(*WINDOW_LEVEL)
    return node


def load_phantom(scene: Any, seed: int = 0) -> Case:
    """The built-in procedural abdomen (TotalSegmentator labels)."""
    ct, labels = _phantom(int(seed))
    node = add_ct_node(scene, ct, f"Phantom {int(seed)}")
    return Case(node, labels.copy(), "totalseg", f"built-in phantom (seed {int(seed)})")


@functools.lru_cache(maxsize=2)
def _phantom(seed: int) -> tuple[Volume, np.ndarray]:
    """The phantom of a seed, built once per server (every tab that opens it gets a copy)."""
    from TumorSynthLib.phantom import make_abdomen

    if seed < 0:
        raise InputError(f"the phantom seed must be 0 or more, got {seed}")
    ct, labels, _names = make_abdomen(seed, shape=PHANTOM_SHAPE, spacing=PHANTOM_SPACING)
    return ct, np.asarray(labels.array)


def load_files(scene: Any, ct_path: str | Path, labels_path: str | Path | None = None,
               convention: str = "totalseg") -> Case:
    """A CT (NIfTI, NRRD or a DICOM series folder) and optional organ labels on its grid."""
    ct_path = Path(ct_path).expanduser()
    if not ct_path.exists():
        raise InputError(f"no CT at '{ct_path}': give the path of a NIfTI or NRRD file or of a "
                         "DICOM series folder on the server")
    ct = load_volume(ct_path)
    labels = None
    if labels_path:
        labels_volume = load_volume(Path(labels_path).expanduser())
        check_same_grid(ct, labels_volume)
        labels = np.rint(np.asarray(labels_volume.array)).astype(np.int32)
    from TumorSynthLib.anatomy.organs import check_convention

    convention = check_convention(convention)
    name = ct_path.name.split(".")[0] or "CT"
    return Case(add_ct_node(scene, ct, name), labels, convention, str(ct_path))


def check_same_grid(ct: Volume, labels: Volume) -> None:
    """InputError unless ``labels`` lies on the CT's voxel grid (shape and affine)."""
    if tuple(ct.array.shape) != tuple(labels.array.shape):
        raise InputError(f"the organ labels ({labels.array.shape}) are not on the CT's grid "
                         f"({ct.array.shape}); resample them onto the CT first")
    if not np.allclose(ct.affine, labels.affine, atol=1e-3):
        raise InputError("the organ labels have another voxel-to-RAS affine than the CT; "
                         "resample them onto the CT first")


def upload_name(name: str) -> str:
    """The file name of an uploaded file, without any folder part (never a path the client
    chose), checked against the formats ``load_volume`` reads."""
    base = Path(str(name).replace("\\", "/")).name
    if not base or not base.lower().endswith(UPLOAD_SUFFIXES):
        raise InputError(f"'{base or name}' is not a NIfTI or NRRD file; upload .nii, .nii.gz "
                         "or .nrrd (a DICOM series: open its folder by path)")
    return base


def show_case(views: Sequence[Any], node: Any) -> None:
    """Show ``node`` as the background of every slice view (foreground cleared)."""
    for view in views:
        view.set_background_volume_id(node.GetID() if node is not None else None)
        view.set_foreground_volume_id(None)


def outline_segments(segmentation: Any) -> None:
    """Tumor segments drawn as outlines in 2D (the CT stays visible inside) and as surfaces
    in 3D."""
    display = segmentation.GetDisplayNode()
    if display is None:
        segmentation.CreateDefaultDisplayNodes()
        display = segmentation.GetDisplayNode()
    display.SetVisibility2DFill(False)
    display.SetVisibility2DOutline(True)
    display.SetSliceIntersectionThickness(2)
    display.SetVisibility3D(True)


def deepest_voxel(mask: np.ndarray, spacing: Sequence[float]) -> tuple[int, int, int]:
    """The voxel of ``mask`` farthest from its border (mm): where a click is surely inside."""
    from scipy.ndimage import distance_transform_edt

    depth = distance_transform_edt(mask, sampling=tuple(float(s) for s in spacing))
    return tuple(int(v) for v in np.unravel_index(int(np.argmax(depth)), mask.shape))


def spacing_of(affine: np.ndarray) -> np.ndarray:
    return np.linalg.norm(np.asarray(affine, dtype=float)[:3, :3], axis=0)


__all__ = ["Case", "add_ct_node", "check_same_grid", "deepest_voxel", "load_files", "load_phantom",
           "outline_segments", "show_case", "spacing_of", "upload_name"]
