"""File I/O: NIfTI / NRRD / DICOM series geometry (RAS), dtypes, synthetic marks and errors."""
from __future__ import annotations

import gzip
from pathlib import Path

import nibabel as nib
import nrrd
import numpy as np
import pytest

from TumorSynthLib.core.errors import InputError
from TumorSynthLib.core.volume import Volume
from TumorSynthLib.core.volume_io import ensure_not_overwriting, load_volume, save_volume


def oblique_affine(spacing=(0.8, 1.1, 2.5), origin=(-120.0, 35.5, 410.0), angle_deg=20.0):
    """Voxel -> RAS affine rotated about the z and x axes with anisotropic spacing."""
    a = np.deg2rad(angle_deg)
    rz = np.array([[np.cos(a), -np.sin(a), 0], [np.sin(a), np.cos(a), 0], [0, 0, 1]])
    rx = np.array([[1, 0, 0], [0, np.cos(a / 2), -np.sin(a / 2)], [0, np.sin(a / 2), np.cos(a / 2)]])
    aff = np.eye(4)
    aff[:3, :3] = rz @ rx @ np.diag(spacing)
    aff[:3, 3] = origin
    return aff


@pytest.fixture
def image() -> Volume:
    rng = np.random.default_rng(0)
    return Volume(rng.normal(40, 20, (7, 6, 5)).astype(np.float32), oblique_affine())


@pytest.mark.parametrize("suffix", [".nii.gz", ".nii", ".nrrd"])
def test_round_trip_keeps_geometry_values_and_synthetic_mark(tmp_path, image, suffix):
    path = save_volume(image, tmp_path / f"img{suffix}", synthetic=True, description="image")
    back = load_volume(path)
    np.testing.assert_allclose(back.affine, image.affine, atol=1e-5)
    assert back.array.dtype == np.float32
    np.testing.assert_array_equal(back.array, image.array)
    assert back.metadata["synthetic"] is True
    assert back.metadata["source_path"] == str(path)
    plain = load_volume(save_volume(image, tmp_path / f"plain{suffix}"))
    assert plain.metadata["synthetic"] is False


def test_synthetic_marks_in_the_headers(tmp_path, image):
    nii = save_volume(image, tmp_path / "a.nii.gz", synthetic=True)
    assert nib.load(str(nii)).header["descrip"].tobytes().startswith(b"TumorSynth synthetic")
    nrd = save_volume(image, tmp_path / "a.nrrd", synthetic=True)
    assert nrrd.read_header(str(nrd))["tumorsynth_synthetic"] == "true"


@pytest.mark.parametrize("suffix", [".nii.gz", ".nrrd"])
def test_labels_are_written_as_int16_or_int32_never_scaled(tmp_path, suffix):
    small = np.zeros((4, 4, 4), dtype=np.int64)
    small[1, 2, 3] = 205
    big = small.copy()
    big[0, 0, 0] = 70000
    for array, dtype in ((small, np.int16), (big, np.int32), (small > 0, np.int16)):
        back = load_volume(save_volume(Volume(array, np.eye(4)), tmp_path / f"l{suffix}"))
        assert back.array.dtype == dtype
        np.testing.assert_array_equal(back.array, array.astype(dtype))


def test_nifti_scaling_is_applied_without_turning_integers_into_floats(tmp_path):
    raw = np.arange(64, dtype=np.uint16).reshape(4, 4, 4)
    img = nib.Nifti1Image(raw, np.eye(4))
    img.header.set_slope_inter(1.0, -1024.0)
    nib.save(img, str(tmp_path / "ct.nii.gz"))
    ct = load_volume(tmp_path / "ct.nii.gz")
    assert np.issubdtype(ct.array.dtype, np.integer)
    assert ct.array.min() == -1024 and ct.array.max() == 63 - 1024
    img.header.set_slope_inter(0.5, 0.0)
    nib.save(img, str(tmp_path / "half.nii.gz"))
    half = load_volume(tmp_path / "half.nii.gz")
    assert half.array.dtype == np.float32 and half.array.max() == 31.5


@pytest.mark.parametrize("suffix", [".nii.gz", ".nrrd"])
def test_saving_twice_gives_identical_bytes(tmp_path, image, suffix):
    a = save_volume(image, tmp_path / f"a{suffix}", synthetic=True)
    b = save_volume(image, tmp_path / f"b{suffix}", synthetic=True)
    assert a.read_bytes() == b.read_bytes()


def test_nrrd_lps_directions_load_as_ras(tmp_path):
    data = np.arange(24, dtype=np.int16).reshape(2, 3, 4)
    header = {
        "space": "left-posterior-superior",
        "space directions": np.array([[0.0, 0.7, 0.0], [-0.9, 0.0, 0.0], [0.0, 0.0, 3.0]]),
        "space origin": np.array([10.0, -20.0, 30.0]),
    }
    nrrd.write(str(tmp_path / "lps.nrrd"), data, header, index_order="F")
    vol = load_volume(tmp_path / "lps.nrrd")
    expected = np.array([[0.0, 0.9, 0.0, -10.0],     # LPS x (left) -> -R
                         [-0.7, 0.0, 0.0, 20.0],     # LPS y (posterior) -> -A
                         [0.0, 0.0, 3.0, 30.0],
                         [0.0, 0.0, 0.0, 1.0]])
    np.testing.assert_allclose(vol.affine, expected)
    np.testing.assert_array_equal(vol.array, data)
    header["space"] = "right-anterior-superior"
    nrrd.write(str(tmp_path / "ras.nhdr"), data, header, index_order="F", detached_header=True)
    ras = load_volume(tmp_path / "ras.nhdr")
    np.testing.assert_allclose(ras.affine[:3, :3], header["space directions"].T)
    np.testing.assert_allclose(ras.affine[:3, 3], header["space origin"])


def test_one_layer_seg_nrrd_is_read_as_a_labelmap(tmp_path):
    data = np.zeros((1, 3, 4, 5), dtype=np.uint8)
    data[0, 1, 2, 3] = 1
    dirs = np.array([[np.nan] * 3, [1.0, 0, 0], [0, 1.0, 0], [0, 0, 2.0]])
    header = {"space": "left-posterior-superior", "space directions": dirs,
              "space origin": np.zeros(3), "kinds": ["list", "domain", "domain", "domain"]}
    nrrd.write(str(tmp_path / "x.seg.nrrd"), data, header, index_order="F")
    vol = load_volume(tmp_path / "x.seg.nrrd")
    assert vol.shape == (3, 4, 5) and vol.array[1, 2, 3] == 1
    np.testing.assert_allclose(np.diag(vol.affine)[:3], [-1.0, -1.0, 2.0])


# -- DICOM ------------------------------------------------------------------------------------
def write_dicom_series(folder: Path, array_ijk: np.ndarray, affine_ras: np.ndarray,
                       series_uid: str, *, slope=1.0, intercept=-1024.0, shuffle=True) -> None:
    """Write ``array_ijk`` (stored values, before rescale) as single-frame CT slices."""
    import pydicom
    from pydicom.dataset import FileMetaDataset
    from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid

    folder.mkdir(parents=True, exist_ok=True)
    lps = np.diag([-1.0, -1.0, 1.0, 1.0]) @ affine_ras
    spacing = np.linalg.norm(lps[:3, :3], axis=0)
    row_dir, col_dir = lps[:3, 0] / spacing[0], lps[:3, 1] / spacing[1]
    order = np.random.default_rng(1).permutation(array_ijk.shape[2]) if shuffle else range(array_ijk.shape[2])
    for n, k in enumerate(order):
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = CTImageStorage
        meta.MediaStorageSOPInstanceUID = generate_uid()
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds = pydicom.Dataset()
        ds.file_meta = meta
        ds.SOPClassUID, ds.SOPInstanceUID = CTImageStorage, meta.MediaStorageSOPInstanceUID
        ds.Modality, ds.SeriesInstanceUID, ds.StudyInstanceUID = "CT", series_uid, "1.2.3"
        ds.SeriesDescription = "test series"
        ds.ImageOrientationPatient = [float(v) for v in (*row_dir, *col_dir)]
        ds.ImagePositionPatient = [float(v) for v in (lps @ [0, 0, k, 1])[:3]]
        ds.PixelSpacing = [float(spacing[1]), float(spacing[0])]  # [row spacing, column spacing]
        ds.Rows, ds.Columns = array_ijk.shape[1], array_ijk.shape[0]
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
        ds.RescaleSlope, ds.RescaleIntercept = slope, intercept
        ds.PixelData = np.ascontiguousarray(array_ijk[:, :, k].T.astype(np.uint16)).tobytes()
        ds.save_as(str(folder / f"slice{n:03d}.dcm"), enforce_file_format=True)


@pytest.fixture
def dicom_case(tmp_path):
    rng = np.random.default_rng(3)
    stored = rng.integers(0, 2000, size=(6, 5, 4)).astype(np.uint16)
    affine = oblique_affine(spacing=(0.7, 0.9, 3.0), angle_deg=25.0)
    folder = tmp_path / "series"
    write_dicom_series(folder, stored, affine, "1.2.826.0.1.1")
    return folder, stored, affine


def test_dicom_series_folder_geometry_and_rescale(dicom_case):
    folder, stored, affine = dicom_case
    vol = load_volume(folder)
    np.testing.assert_allclose(vol.affine, affine, atol=1e-4)
    np.testing.assert_array_equal(vol.array, stored.astype(np.int32) - 1024)
    assert np.issubdtype(vol.array.dtype, np.integer)
    assert vol.metadata["series_uid"] == "1.2.826.0.1.1"
    one_file = load_volume(folder / "slice000.dcm")
    assert one_file.shape == stored.shape


def test_dicom_fractional_rescale_gives_float(tmp_path):
    stored = np.full((3, 3, 2), 10, dtype=np.uint16)
    write_dicom_series(tmp_path / "s", stored, np.eye(4), "1.2.3.4", slope=0.5, intercept=0.25)
    vol = load_volume(tmp_path / "s")
    assert vol.array.dtype == np.float32 and np.all(vol.array == 5.25)


def test_dicom_folder_with_two_series_needs_a_uid(dicom_case):
    folder, stored, affine = dicom_case
    write_dicom_series(folder, stored[:, :, :2], affine, "1.2.826.0.1.2")
    with pytest.raises(InputError, match=r"2 DICOM series.*1\.2\.826\.0\.1\.1.*one \.dcm file"):
        load_volume(folder)
    assert load_volume(folder, series_uid="1.2.826.0.1.2").shape == (6, 5, 2)


def test_dicom_missing_slice_or_position_is_an_input_error(dicom_case):
    import pydicom

    folder, _, _ = dicom_case
    files = sorted(folder.glob("*.dcm"))
    middle = [f for f in files if 0 < _slice_index(f) < 3][0]
    middle.unlink()
    with pytest.raises(InputError, match="evenly spaced"):
        load_volume(folder)
    ds = pydicom.dcmread(str(files[0]))
    del ds.ImagePositionPatient
    ds.save_as(str(files[0]))
    with pytest.raises(InputError, match="ImagePositionPatient"):
        load_volume(folder)


def _slice_index(file: Path) -> int:
    import pydicom

    ds = pydicom.dcmread(str(file), stop_before_pixels=True)
    ipp = np.asarray([float(v) for v in ds.ImagePositionPatient])
    lps = np.diag([-1.0, -1.0, 1.0, 1.0]) @ oblique_affine(spacing=(0.7, 0.9, 3.0), angle_deg=25.0)
    return int(round(np.linalg.solve(lps[:3, :3], ipp - lps[:3, 3])[2]))


# -- errors -----------------------------------------------------------------------------------
def test_missing_unknown_and_truncated_files_are_input_errors(tmp_path, image):
    with pytest.raises(InputError, match="does not exist"):
        load_volume(tmp_path / "nope.nii.gz")
    (tmp_path / "scan.mha").write_bytes(b"x")
    with pytest.raises(InputError, match=r"supported formats:.*\.nrrd"):
        load_volume(tmp_path / "scan.mha")
    good = save_volume(image, tmp_path / "good.nii.gz").read_bytes()
    (tmp_path / "cut.nii.gz").write_bytes(good[: len(good) // 2])
    with pytest.raises(InputError, match="cut.nii.gz"):
        load_volume(tmp_path / "cut.nii.gz")
    (tmp_path / "junk.nrrd").write_bytes(gzip.compress(b"not a nrrd"))
    with pytest.raises(InputError, match="junk.nrrd"):
        load_volume(tmp_path / "junk.nrrd")
    with pytest.raises(InputError, match="no DICOM"):
        load_volume(tmp_path)
    with pytest.raises(InputError, match="output formats"):
        save_volume(image, tmp_path / "out.mha")


def test_output_equal_to_an_input_is_refused(tmp_path, image):
    src = save_volume(image, tmp_path / "ct.nii.gz")
    with pytest.raises(InputError, match="never overwritten"):
        ensure_not_overwriting(tmp_path / "." / "ct.nii.gz", tmp_path / "labels.nii.gz", src)
    ensure_not_overwriting(tmp_path / "out.nii.gz", src, None)


def test_real_example_ct_keeps_its_int32_dtype(example_ct_paths):
    ct = load_volume(example_ct_paths[0])
    assert ct.shape == (122, 101, 112) and ct.array.dtype == np.int32
    np.testing.assert_allclose(ct.spacing, [3.0, 3.0, 3.0], atol=1e-4)
