"""Volume nodes <-> (array ``[i, j, k]``, 4x4 voxel-to-world-RAS affine).

Slicer's ``arrayFromVolume`` returns a ``[k, j, i]`` view; the engine works on ``[i, j, k]``
with an affine that maps voxel indices to RAS mm. The affine given here is the *world* one:
the node's IJKToRAS composed with its (linear) parent transforms, so a click position read
with ``GetNthControlPointPositionWorld`` lands on the voxel the user sees. A non-linear parent
transform cannot be expressed as an affine: it raises, telling the user to harden it.

Example::

    array, affine = volume_arrays(ctNode)      # array is a view: never write into it
    ijk = world_ras_to_ijk(ctNode, [10.0, -20.0, 35.0])
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import slicer
import vtk
import vtk.util.numpy_support as vtk_np

from .errors import NodeGeometryError


def matrix_to_array(matrix: vtk.vtkMatrix4x4) -> np.ndarray:
    """A vtkMatrix4x4 as a (4, 4) float numpy array (copy)."""
    return np.array([[matrix.GetElement(r, c) for c in range(4)] for r in range(4)], dtype=float)


def array_to_matrix(array: np.ndarray) -> vtk.vtkMatrix4x4:
    """A (4, 4) numpy array as a new vtkMatrix4x4."""
    matrix = vtk.vtkMatrix4x4()
    for r in range(4):
        for c in range(4):
            matrix.SetElement(r, c, float(array[r, c]))
    return matrix


def local_ijk_to_ras(node: slicer.vtkMRMLVolumeNode) -> np.ndarray:
    """The node's own IJKToRAS (ignoring parent transforms) as a 4x4 array."""
    matrix = vtk.vtkMatrix4x4()
    node.GetIJKToRASMatrix(matrix)
    return matrix_to_array(matrix)


def parent_to_world(node: slicer.vtkMRMLTransformableNode) -> np.ndarray:
    """4x4 matrix from the node's local RAS to world RAS (identity when not transformed).

    Raises NodeGeometryError for a non-linear parent transform: its effect on the voxel grid
    is not an affine, and resampling the CT behind the user's back would change it.
    """
    parent = node.GetParentTransformNode()
    if parent is None:
        return np.eye(4)
    if not parent.IsTransformToWorldLinear():
        raise NodeGeometryError(
            f"'{node.GetName()}' is under the non-linear transform '{parent.GetName()}'; "
            "harden it first (Data module: right-click the volume > Harden transform) "
            "or remove the transform, then place the tumor again"
        )
    matrix = vtk.vtkMatrix4x4()
    parent.GetMatrixTransformToWorld(matrix)
    return matrix_to_array(matrix)


def world_affine(node: slicer.vtkMRMLVolumeNode) -> np.ndarray:
    """4x4 voxel index ``[i, j, k]`` -> world RAS mm, parent transforms included."""
    return parent_to_world(node) @ local_ijk_to_ras(node)


def array_ijk(node: slicer.vtkMRMLVolumeNode) -> np.ndarray:
    """The node's voxels as an ``[i, j, k]`` view (no copy; writes go into the node)."""
    if node is None or node.GetImageData() is None:
        name = "(none)" if node is None else node.GetName()
        raise NodeGeometryError(f"volume '{name}' has no image data; load or select a volume")
    return slicer.util.arrayFromVolume(node).transpose(2, 1, 0)


def volume_arrays(node: slicer.vtkMRMLVolumeNode) -> tuple[np.ndarray, np.ndarray]:
    """``(array [i, j, k] view, world affine)`` of a scalar or labelmap volume node."""
    return array_ijk(node), world_affine(node)


def world_ras_to_ijk(node: slicer.vtkMRMLVolumeNode, ras: Sequence[float]) -> np.ndarray:
    """World RAS mm (3,) -> continuous voxel index ``[i, j, k]`` of the node."""
    inverse = np.linalg.inv(world_affine(node))
    return inverse[:3, :3] @ np.asarray(ras, dtype=float) + inverse[:3, 3]


def write_patch(node: slicer.vtkMRMLVolumeNode, box: tuple[Sequence[int], Sequence[int]],
                values: np.ndarray) -> None:
    """Write ``values`` (``[i, j, k]``, box shape) into the node's voxels inside the half-open
    box ``(lo, hi)``, casting to the node's type (rounded and clipped for integer volumes),
    and tell Slicer that the image changed."""
    lo, hi = box
    target = array_ijk(node)[tuple(slice(a, b) for a, b in zip(lo, hi))]
    target[...] = cast_like(values, target.dtype)
    slicer.util.arrayFromVolumeModified(node)


def cast_like(values: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """``values`` as ``dtype``; floats going into integer voxels are rounded and clipped."""
    values = np.asarray(values)
    if np.issubdtype(dtype, np.integer) and not np.issubdtype(values.dtype, np.integer):
        info = np.iinfo(dtype)
        values = np.clip(np.rint(values), info.min, info.max)
    return values.astype(dtype, copy=False)


def clone_volume_node(node: slicer.vtkMRMLVolumeNode, name: str) -> slicer.vtkMRMLVolumeNode:
    """A new node of the same class with a deep copy of the voxels, the same IJKToRAS, the
    same parent transform and (when present) the same window/level. The input is untouched."""
    scene = node.GetScene()
    clone = scene.AddNewNodeByClass(node.GetClassName(), name)
    clone.SetIJKToRASMatrix(array_to_matrix(local_ijk_to_ras(node)))
    image = vtk.vtkImageData()
    image.DeepCopy(node.GetImageData())
    clone.SetAndObserveImageData(image)
    clone.SetAndObserveTransformNodeID(node.GetTransformNodeID())
    clone.CreateDefaultDisplayNodes()
    _copy_window_level(node, clone)
    return clone


def _copy_window_level(source: slicer.vtkMRMLVolumeNode, target: slicer.vtkMRMLVolumeNode) -> None:
    src, dst = source.GetDisplayNode(), target.GetDisplayNode()
    if src is None or dst is None or not hasattr(src, "GetWindow"):
        return
    dst.SetAutoWindowLevel(False)
    dst.SetWindowLevel(src.GetWindow(), src.GetLevel())


def labelmap_on_grid(node: slicer.vtkMRMLVolumeNode, values: np.ndarray, name: str,
                     ) -> slicer.vtkMRMLLabelMapVolumeNode:
    """A new labelmap node on ``node``'s grid (same IJKToRAS and parent transform) holding
    ``values`` (``[i, j, k]``, copied)."""
    labelmap = node.GetScene().AddNewNodeByClass("vtkMRMLLabelMapVolumeNode", name)
    labelmap.SetIJKToRASMatrix(array_to_matrix(local_ijk_to_ras(node)))
    set_array_ijk(labelmap, values)
    labelmap.SetAndObserveTransformNodeID(node.GetTransformNodeID())
    return labelmap


def labelmap_from_array(scene: slicer.vtkMRMLScene, values: np.ndarray, affine: np.ndarray,
                        name: str) -> slicer.vtkMRMLLabelMapVolumeNode:
    """A new, untransformed labelmap node holding ``values`` (``[i, j, k]``, copied) with the
    voxel-to-RAS ``affine``."""
    labelmap = scene.AddNewNodeByClass("vtkMRMLLabelMapVolumeNode", name)
    labelmap.SetIJKToRASMatrix(array_to_matrix(np.asarray(affine, dtype=float)))
    set_array_ijk(labelmap, values)
    return labelmap


def set_array_ijk(node: slicer.vtkMRMLVolumeNode, values: np.ndarray) -> None:
    """Replace the node's voxels with ``values`` (``[i, j, k]``, deep copy, any size)."""
    values = np.asarray(values)
    if values.dtype == np.int64:
        values = values.astype(np.int32)   # VTK "long long" volumes do not render
    if values.dtype == bool:
        values = values.astype(np.uint8)
    image = node.GetImageData()
    if image is None:
        image = vtk.vtkImageData()
        node.SetAndObserveImageData(image)
    image.SetDimensions(*values.shape)
    image.AllocateScalars(vtk_np.get_vtk_array_type(values.dtype), 1)
    slicer.util.arrayFromVolume(node)[...] = values.transpose(2, 1, 0)
    slicer.util.arrayFromVolumeModified(node)
