"""Node <-> (array [i, j, k], world affine) adapters on an oblique, anisotropic, transformed CT."""
from __future__ import annotations

import numpy as np
import pytest

from slicer_test_phantom import (LOCAL_AFFINE, PARENT, SHAPE, phantom_arrays, require_slicer_core,
                                 voxel_to_world)

require_slicer_core()


def test_array_is_ijk_view_and_affine_is_world(ct_node):
    from TumorSynthSlicer.volume_logic import array_ijk, local_ijk_to_ras, world_affine

    array = array_ijk(ct_node)
    assert array.shape == SHAPE
    assert np.array_equal(array, phantom_arrays()[0])
    assert np.allclose(local_ijk_to_ras(ct_node), LOCAL_AFFINE)
    assert np.allclose(world_affine(ct_node), PARENT @ LOCAL_AFFINE)


def test_markups_click_maps_back_to_its_voxel(scene, ct_node):
    """A point placed in world RAS (what a click gives) lands on the voxel it was placed on."""
    import vtk
    from TumorSynthSlicer.volume_logic import world_ras_to_ijk

    voxel = np.array([17.0, 30.0, 6.0])
    fiducial = scene.AddNewNodeByClass("vtkMRMLMarkupsFiducialNode")
    fiducial.AddControlPointWorld(vtk.vtkVector3d(*voxel_to_world(voxel)))
    ras = [0.0, 0.0, 0.0]
    fiducial.GetNthControlPointPositionWorld(0, ras)
    assert np.allclose(world_ras_to_ijk(ct_node, ras), voxel, atol=1e-6)


def test_non_linear_parent_transform_is_refused_with_advice(scene, ct_node):
    import vtk
    from TumorSynthSlicer.errors import NodeGeometryError
    from TumorSynthSlicer.volume_logic import world_affine

    spline = vtk.vtkThinPlateSplineTransform()
    source, target = vtk.vtkPoints(), vtk.vtkPoints()
    for p in [(0, 0, 0), (50, 0, 0), (0, 50, 0), (0, 0, 50)]:
        source.InsertNextPoint(p)
        target.InsertNextPoint(p[0] + 3, p[1], p[2])
    spline.SetSourceLandmarks(source)
    spline.SetTargetLandmarks(target)
    warp = scene.AddNewNodeByClass("vtkMRMLTransformNode", "Warp")
    warp.SetAndObserveTransformToParent(spline)
    ct_node.GetParentTransformNode().SetAndObserveTransformNodeID(warp.GetID())
    with pytest.raises(NodeGeometryError, match="Harden transform"):
        world_affine(ct_node)


def test_clone_is_independent_and_write_patch_casts(ct_node):
    from TumorSynthSlicer.volume_logic import array_ijk, clone_volume_node, write_patch

    clone = clone_volume_node(ct_node, "copy")
    assert clone.GetTransformNodeID() == ct_node.GetTransformNodeID()
    write_patch(clone, ((1, 2, 3), (3, 4, 5)), np.full((2, 2, 2), 12.6))
    assert np.all(array_ijk(clone)[1:3, 2:4, 3:5] == 13)
    assert array_ijk(clone).dtype == np.int16
    assert np.array_equal(array_ijk(ct_node), phantom_arrays()[0])
