"""Reading one DICOM CT series from a folder into a Volume (pydicom).

The slices are sorted along the slice normal (the projection of ImagePositionPatient on
row x column direction), RescaleSlope / RescaleIntercept are applied, and the affine is built from
ImageOrientationPatient, PixelSpacing and the slice positions, then converted from LPS to RAS.
The array is indexed ``[i, j, k]`` = (column, row, slice), the same order NIfTI tools use.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from .errors import InputError
from .volume import Volume

#: Largest disagreement (mm) between a slice position and the evenly spaced grid.
POSITION_TOLERANCE_MM = 0.05


def read_dicom_series(path: Path, series_uid: str | None = None) -> Volume:
    """The series in folder ``path`` (or the series of the single file ``path``).

    A folder holding several series needs ``series_uid``; the error lists the UIDs found.
    """
    folder = path if path.is_dir() else path.parent
    headers = _read_headers(folder)
    if not path.is_dir() and series_uid is None:
        series_uid = next((uid for uid, files in headers.items()
                           if any(f == path for f, _ in files)), None)
    uid, slices = _choose_series(folder, headers, series_uid)
    slices = _sorted_slices(slices, folder)
    affine, positions_ok = _affine_lps(slices, folder)
    if not positions_ok:
        raise InputError(f"the slices of series {uid} in '{folder}' are not evenly spaced "
                         "(missing or duplicated slices?); export the complete series again")
    array = np.stack([_slice_pixels(f) for f, _ in slices], axis=-1)
    first = slices[0][1]
    meta: dict[str, Any] = {
        "series_uid": uid,
        "description": str(first.get("SeriesDescription", "")),
        "synthetic": "SYNTHETIC" in str(first.get("SeriesDescription", "")).upper(),
    }
    return Volume(array, np.diag([-1.0, -1.0, 1.0, 1.0]) @ affine, meta)


def _read_headers(folder: Path) -> dict[str, list[tuple[Path, Any]]]:
    """{SeriesInstanceUID: [(file, header)]} of every image file in ``folder`` (non-DICOM files
    and DICOMDIR-like files without pixel rows are skipped)."""
    import pydicom
    from pydicom.errors import InvalidDicomError

    series: dict[str, list[tuple[Path, Any]]] = {}
    for file in sorted(p for p in folder.iterdir() if p.is_file()):
        try:
            ds = pydicom.dcmread(str(file), stop_before_pixels=True)
        except (InvalidDicomError, EOFError, OSError):
            continue
        if "Rows" not in ds or "SeriesInstanceUID" not in ds:
            continue
        series.setdefault(str(ds.SeriesInstanceUID), []).append((file, ds))
    if not series:
        raise InputError(f"no DICOM image files found in '{folder}'; point to the folder that "
                         "holds the slices of one series")
    return series


def _choose_series(folder: Path, headers: dict, series_uid: str | None) -> tuple[str, list]:
    if series_uid is not None:
        if series_uid not in headers:
            raise InputError(f"series {series_uid} is not in '{folder}'; found: {', '.join(headers)}")
        return series_uid, headers[series_uid]
    if len(headers) > 1:
        listing = "; ".join(
            f"{uid} ({len(files)} files, '{files[0][1].get('SeriesDescription', '')}')"
            for uid, files in headers.items()
        )
        raise InputError(f"'{folder}' holds {len(headers)} DICOM series: {listing}; "
                         "give one .dcm file of the series you want instead of the folder (its series "
                         "is read), or put each series in its own folder")
    uid = next(iter(headers))
    return uid, headers[uid]


def _orientation(ds: Any, file: Path) -> tuple[np.ndarray, np.ndarray]:
    """(row direction, column direction) unit vectors in LPS from ImageOrientationPatient."""
    if "ImageOrientationPatient" not in ds or "ImagePositionPatient" not in ds:
        raise InputError(f"'{file.name}' has no ImagePositionPatient/ImageOrientationPatient; "
                         "only CT/MR series with patient geometry can be read")
    iop = np.asarray([float(v) for v in ds.ImageOrientationPatient])
    return iop[:3], iop[3:]


def _sorted_slices(slices: list, folder: Path) -> list:
    file0, ds0 = slices[0]
    row_dir, col_dir = _orientation(ds0, file0)
    normal = np.cross(row_dir, col_dir)
    for file, ds in slices:
        r, c = _orientation(ds, file)
        if not (np.allclose(r, row_dir, atol=1e-4) and np.allclose(c, col_dir, atol=1e-4)):
            raise InputError(f"slices in '{folder}' have different orientations ({file.name}); "
                             "the series must be one parallel stack")
        if int(ds.get("NumberOfFrames", 1) or 1) > 1:
            raise InputError(f"'{file.name}' is a multi-frame (enhanced) DICOM; convert it to "
                             "single-frame slices or NIfTI first")
    return sorted(slices, key=lambda s: float(np.dot(_position(s[1]), normal)))


def _position(ds: Any) -> np.ndarray:
    return np.asarray([float(v) for v in ds.ImagePositionPatient])


def _affine_lps(slices: list, folder: Path) -> tuple[np.ndarray, bool]:
    """Voxel (column, row, slice) -> LPS affine, and whether positions are evenly spaced."""
    file0, ds0 = slices[0]
    row_dir, col_dir = _orientation(ds0, file0)
    if "PixelSpacing" not in ds0:
        raise InputError(f"'{file0.name}' has no PixelSpacing; cannot size the voxels")
    row_spacing, col_spacing = (float(v) for v in ds0.PixelSpacing)
    positions = np.stack([_position(ds) for _, ds in slices])
    if len(slices) > 1:
        step = (positions[-1] - positions[0]) / (len(slices) - 1)
    else:
        thickness = float(ds0.get("SliceThickness", 1.0) or 1.0)
        step = np.cross(row_dir, col_dir) * thickness
    if np.linalg.norm(step) < 1e-6:
        raise InputError(f"the slices in '{folder}' share one position (duplicates?); "
                         "keep one copy of each slice")
    expected = positions[0] + np.arange(len(slices))[:, None] * step
    even = bool(np.abs(positions - expected).max() <= POSITION_TOLERANCE_MM)
    affine = np.eye(4)
    affine[:3, 0] = row_dir * col_spacing   # i: along a row, one column at a time
    affine[:3, 1] = col_dir * row_spacing   # j: down a column, one row at a time
    affine[:3, 2] = step
    affine[:3, 3] = positions[0]
    return affine, even


def _slice_pixels(file: Path) -> np.ndarray:
    """One slice as [column, row] with the rescale applied (integer HU stay integer)."""
    import pydicom

    ds = pydicom.dcmread(str(file))
    try:
        pixels = ds.pixel_array
    except Exception as exc:
        raise InputError(f"cannot decode the pixels of '{file.name}' ({exc}); compressed "
                         "transfer syntaxes need e.g. pip install pylibjpeg pylibjpeg-libjpeg") from exc
    slope = float(ds.get("RescaleSlope", 1.0) or 1.0)
    intercept = float(ds.get("RescaleIntercept", 0.0) or 0.0)
    if slope.is_integer() and intercept.is_integer():
        values = pixels.astype(np.int32) * int(slope) + int(intercept)
        lo, hi = int(values.min()), int(values.max())
        if -32768 <= lo and hi <= 32767:
            values = values.astype(np.int16)
    else:
        values = (pixels.astype(np.float64) * slope + intercept).astype(np.float32)
    return values.T
