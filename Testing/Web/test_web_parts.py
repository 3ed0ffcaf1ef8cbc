"""The web front end's parts that need no browser: inputs into MRML (slicer-core), upload
names, the server's address check and the command's errors."""
from __future__ import annotations

import numpy as np
import pytest



def _slicer_core():
    slicer = pytest.importorskip("slicer", reason="slicer-core is not installed: skipped")
    if not hasattr(slicer, "vtkMRMLScene"):
        pytest.skip("'slicer' is not Slicer's MRML (slicer-core): skipped")
    return slicer


def test_only_loopback_addresses_count_as_local():
    from TumorSynthWeb.server import is_loopback

    assert is_loopback("127.0.0.1") and is_loopback("localhost") and is_loopback("::1")
    assert is_loopback("127.0.0.5")
    assert not is_loopback("0.0.0.0") and not is_loopback("192.0.2.1") and not is_loopback("host")


def test_upload_names_lose_their_folders_and_must_be_volumes():
    _slicer_core()
    from TumorSynthLib.core.errors import InputError
    from TumorSynthWeb.scene import upload_name

    assert upload_name("../../etc/ct.nii.gz") == "ct.nii.gz"
    assert upload_name("C:\\data\\ct.nrrd") == "ct.nrrd"
    with pytest.raises(InputError, match="not a NIfTI or NRRD"):
        upload_name("notes.txt")


def test_bad_port_is_a_user_error(capsys):
    from TumorSynthLib.cli import main

    assert main(["web", "--port", "70000"]) == 2
    assert "--port must be 0-65535" in capsys.readouterr().err


def test_files_open_into_a_scene_with_labels_checked(tmp_path):
    slicer = _slicer_core()
    from TumorSynthLib.core.errors import InputError
    from TumorSynthLib.phantom import make_abdomen
    from TumorSynthLib.volume import Volume, save_volume
    from TumorSynthSlicer.volume_logic import array_ijk, world_affine
    from TumorSynthWeb import scene

    ct, labels, _names = make_abdomen(1, shape=(64, 64, 32), spacing=(5.0, 5.0, 8.0))
    save_volume(ct, tmp_path / "ct.nii.gz")
    save_volume(labels, tmp_path / "organs.nii.gz")
    save_volume(Volume(labels.array[:, :, :-1], labels.affine), tmp_path / "short.nii.gz")
    mrml = slicer.vtkMRMLScene()
    case = scene.load_files(mrml, tmp_path / "ct.nii.gz", tmp_path / "organs.nii.gz")
    assert np.allclose(world_affine(case.ct), ct.affine, atol=1e-4)
    assert np.allclose(array_ijk(case.ct), ct.array, atol=0.5)
    assert np.array_equal(case.organ_mask("liver"), labels.array == 5)
    assert case.organ_mask("kidney").sum() == np.isin(labels.array, (2, 3)).sum()
    with pytest.raises(InputError, match="not on the CT's grid"):
        scene.load_files(mrml, tmp_path / "ct.nii.gz", tmp_path / "short.nii.gz")
    with pytest.raises(InputError, match="no CT at"):
        scene.load_files(mrml, tmp_path / "missing.nii.gz")
    bare = scene.load_files(mrml, tmp_path / "ct.nii.gz")
    assert bare.organ_mask("liver") is None and bare.organ_at((0, 0, 0)) is None
    empty = scene.Case(case.ct, np.zeros(labels.array.shape, np.int16), "totalseg", "x")
    with pytest.raises(InputError, match="hold no liver"):
        empty.organ_mask("liver")
