"""Reading and writing volumes: NIfTI (nibabel), NRRD (pynrrd) and DICOM series folders (pydicom).

Why it is separate from ``volume.py``: the geometry there is pure numpy and imported by every
module; the file formats pull in nibabel / pynrrd / pydicom, which are imported here, lazily,
only when a file is read or written. Use the public names ``volume.load_volume`` and
``volume.save_volume``.

Geometry rule: every reader returns a 4x4 voxel -> RAS affine. NRRD and DICOM describe positions
in LPS (x grows to the patient's left, y to posterior), so their first two rows are negated on the
way in and again on the way out.
"""
from __future__ import annotations

import io
import os
import re
from pathlib import Path
from typing import Any

import numpy as np

from .dicom_series import read_dicom_series
from .errors import DependencyError, InputError, TumorSynthError
from .files import atomic_path
from .volume import Volume

#: Written into NIfTI ``descrip`` (and read back as ``metadata["synthetic"]``).
SYNTHETIC_DESCRIP = "TumorSynth synthetic"
#: NRRD key written by ``save_volume(..., synthetic=True)``.
SYNTHETIC_NRRD_KEY = "tumorsynth_synthetic"

READ_FORMATS = ".nii, .nii.gz, .nrrd, .seg.nrrd, .nhdr, a DICOM series folder (or one .dcm file of it)"
WRITE_FORMATS = ".nii, .nii.gz, .nrrd"

_LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])
# NRRD anatomical spaces -> sign of each axis relative to RAS.
_NRRD_SPACE_SIGNS = {
    "right-anterior-superior": (1, 1, 1), "ras": (1, 1, 1),
    "left-posterior-superior": (-1, -1, 1), "lps": (-1, -1, 1),
    "left-anterior-superior": (-1, 1, 1), "las": (-1, 1, 1),
    "right-posterior-superior": (1, -1, 1), "rps": (1, -1, 1),
    "scanner-xyz": (-1, -1, 1),  # DICOM scanner frame is LPS
}


def file_format(path: Path) -> str:
    """'nifti' | 'nrrd' | 'dicom' from the path (a directory is a DICOM series)."""
    name = path.name.lower()
    if path.is_dir():
        return "dicom"
    if name.endswith((".nii", ".nii.gz")):
        return "nifti"
    if name.endswith((".nrrd", ".nhdr")):
        return "nrrd"
    if name.endswith((".dcm", ".ima")):
        return "dicom"
    raise InputError(f"unknown file type '{path.name}'; supported formats: {READ_FORMATS}")


def read_volume(path: Path, series_uid: str | None = None) -> Volume:
    """Read ``path`` (already known to exist) into a Volume with an RAS affine."""
    kind = file_format(path)
    try:
        if kind == "nifti":
            vol = _read_nifti(path)
        elif kind == "nrrd":
            vol = _read_nrrd(path)
        else:
            vol = read_dicom_series(path, series_uid=series_uid)
    except TumorSynthError:
        raise
    except ImportError as exc:
        raise DependencyError(f"reading {path} needs a missing package ({exc}); "
                              "install it: pip install tumorsynth") from exc
    except Exception as exc:  # corrupt, truncated or non-image files
        raise InputError(f"cannot read '{path}': {type(exc).__name__}: {exc}; "
                         "the file may be truncated or not a valid image") from exc
    vol.metadata.setdefault("source_path", str(path))
    vol.metadata.setdefault("format", kind)
    return vol


def write_volume(volume: Volume, path: Path, synthetic: bool, description: str | None) -> Path:
    """Write ``volume`` to ``path`` (NIfTI or NRRD by extension) atomically (``files.atomic_path``:
    a crash never leaves half a file); returns the path."""
    name = path.name.lower()
    if name.endswith((".nii", ".nii.gz")):
        writer = _write_nifti
    elif name.endswith(".nrrd"):
        writer = _write_nrrd
    else:
        raise InputError(f"cannot write '{path.name}': supported output formats are {WRITE_FORMATS}")
    with atomic_path(path) as tmp:
        writer(volume, tmp, synthetic, description)
    return path


def write_volume_file(volume: Volume, path: Path, synthetic: bool, description: str | None) -> Path:
    """Write ``volume`` straight to ``path`` (a temporary file of ``files.atomic_path`` whose
    name ends with the destination's: the format follows it). Prefer ``save_volume``."""
    name = path.name.lower()
    if name.endswith((".nii", ".nii.gz")):
        _write_nifti(volume, path, synthetic, description)
    elif name.endswith(".nrrd"):
        _write_nrrd(volume, path, synthetic, description)
    else:
        raise InputError(f"cannot write '{path.name}': supported output formats are {WRITE_FORMATS}")
    return path


def storage_array(array: np.ndarray) -> np.ndarray:
    """The array as it is written: integer (and bool) data as int16 when every value fits, else
    int32 (or kept 64-bit if needed); floating data as float32. Labels are never scaled."""
    arr = np.asarray(array)
    if arr.dtype == bool:
        return arr.astype(np.int16)
    if np.issubdtype(arr.dtype, np.integer):
        if arr.size == 0:
            return arr.astype(np.int16)
        lo, hi = int(arr.min()), int(arr.max())
        for dtype in (np.int16, np.int32):
            info = np.iinfo(dtype)
            if info.min <= lo and hi <= info.max:
                return arr.astype(dtype, copy=False)
        return arr
    if np.issubdtype(arr.dtype, np.floating):
        return arr.astype(np.float32, copy=False)
    raise InputError(f"cannot save an array of dtype {arr.dtype}; use integers or floats")


def _description(synthetic: bool, description: str | None) -> str:
    parts = [SYNTHETIC_DESCRIP] if synthetic else []
    if description:
        parts.append(description)
    return ": ".join(parts)


# -- NIfTI --------------------------------------------------------------------------------------
def _read_nifti(path: Path) -> Volume:
    import nibabel as nib

    img = nib.load(str(path))
    proxy = img.dataobj
    raw = np.asarray(proxy.get_unscaled())
    while raw.ndim > 3 and raw.shape[-1] == 1:
        raw = raw[..., 0]
    array = _apply_scaling(raw, float(proxy.slope), float(proxy.inter))
    descrip = img.header["descrip"].tobytes().rstrip(b"\x00").decode("latin-1").strip()
    meta: dict[str, Any] = {"description": descrip, "synthetic": descrip.startswith(SYNTHETIC_DESCRIP)}
    return Volume(array, np.asarray(img.affine, dtype=float), meta)


def _apply_scaling(raw: np.ndarray, slope: float, inter: float) -> np.ndarray:
    """``raw * slope + inter``; integer results stay integer (labels and HU never become
    floats by accident), fractional ones become float32; no scaling keeps the stored dtype."""
    if not np.isfinite(slope) or slope == 0:
        slope = 1.0
    if not np.isfinite(inter):
        inter = 0.0
    if slope == 1.0 and inter == 0.0:
        return raw
    if np.issubdtype(raw.dtype, np.integer) and slope.is_integer() and inter.is_integer():
        return storage_array(raw.astype(np.int64) * int(slope) + int(inter))
    return (raw.astype(np.float64) * slope + inter).astype(np.float32)


def _write_nifti(volume: Volume, path: Path, synthetic: bool, description: str | None) -> None:
    import nibabel as nib

    array = storage_array(volume.array)
    img = nib.Nifti1Image(array, volume.affine)
    img.set_sform(volume.affine, code=1)
    img.set_qform(volume.affine, code=1)
    header = img.header
    header.set_data_dtype(array.dtype)
    header.set_xyzt_units("mm", "sec")
    header.set_slope_inter(1.0, 0.0)
    header["descrip"] = _description(synthetic, description).encode("latin-1", "replace")[:79]
    nib.save(img, str(path))  # nibabel's gzip writer stores mtime 0: same data, same bytes


# -- NRRD ---------------------------------------------------------------------------------------
def check_nrrd_data_file(path: Path, header: dict) -> None:
    """InputError unless a detached NRRD data file (``data file:``) sits beside its header:
    a header must not make TumorSynth read any other file of the machine."""
    for key in ("data file", "datafile"):
        value = header.get(key)
        if value is None:
            continue
        names = [str(v) for v in value] if isinstance(value, (list, tuple)) else str(value).split()[:1]
        for name in names:
            if name.upper() == "LIST":
                continue
            target = (path.parent / name).resolve()
            if Path(name).name != name or target.parent != path.parent.resolve():
                raise InputError(f"'{path.name}' names the data file '{name}', which is not beside the header; "
                                 "put the data file in the header's folder and name it without a path")


def _read_nrrd(path: Path) -> Volume:
    import nrrd

    with open(path, "rb") as fh:
        check_nrrd_data_file(path, nrrd.read_header(fh))
    data, header = nrrd.read(str(path), index_order="F")
    data, axes = _spatial_axes(data, header, path)
    space = str(header.get("space", "left-posterior-superior")).strip().lower()
    if space not in _NRRD_SPACE_SIGNS:
        raise InputError(f"'{path.name}' uses NRRD space '{space}'; supported spaces: "
                         "right-anterior-superior, left-posterior-superior (and LAS/RPS)")
    affine = np.eye(4)
    directions = header.get("space directions")
    if directions is not None:
        dirs = np.asarray(directions, dtype=float)[axes]
        affine[:3, :3] = dirs.T  # row a of "space directions" is the step of array axis a
    elif "spacings" in header:
        affine[:3, :3] = np.diag(np.asarray(header["spacings"], dtype=float)[axes])
    if "space origin" in header:
        affine[:3, 3] = np.asarray(header["space origin"], dtype=float)
    affine = np.diag([*_NRRD_SPACE_SIGNS[space], 1.0]) @ affine
    synthetic = str(header.get(SYNTHETIC_NRRD_KEY, "")).strip().lower() == "true"
    meta = {"description": str(header.get("content", "")), "synthetic": synthetic}
    return Volume(data, affine, meta)


def _spatial_axes(data: np.ndarray, header: dict, path: Path) -> tuple[np.ndarray, list[int]]:
    """Drop non-spatial axes of size 1 (a one-layer .seg.nrrd); return data and the indices of
    the three spatial axes in the header's per-axis lists."""
    if data.ndim == 3:
        return data, [0, 1, 2]
    directions = header.get("space directions")
    spatial = [a for a in range(data.ndim)
               if directions is None or np.all(np.isfinite(np.asarray(directions[a], dtype=float)))]
    others = [a for a in range(data.ndim) if a not in spatial]
    if len(spatial) != 3 or any(data.shape[a] != 1 for a in others):
        raise InputError(f"'{path.name}' has {data.ndim} axes of sizes {data.shape}; expected a "
                         "3D volume (export a multi-layer segmentation as a labelmap first)")
    return np.squeeze(data, axis=tuple(others)), spatial


def _write_nrrd(volume: Volume, path: Path, synthetic: bool, description: str | None) -> None:
    import nrrd

    lps = _LPS_TO_RAS @ volume.affine  # the same matrix converts both ways
    header: dict[str, Any] = {
        "space": "left-posterior-superior",
        "space directions": lps[:3, :3].T,
        "space origin": lps[:3, 3],
        "kinds": ["domain"] * 3,
        "encoding": "gzip",
    }
    text = _description(synthetic, description)
    if text:
        header["content"] = text
    if synthetic:
        header[SYNTHETIC_NRRD_KEY] = "true"
    buffer = io.BytesIO()
    nrrd.write(buffer, storage_array(volume.array), header, index_order="F", compression_level=6)
    # pynrrd writes the current time into a comment line: drop it so equal data give equal bytes.
    data = re.sub(rb"# on [^\n]*\(GMT\)\.\n", b"", buffer.getvalue(), count=1)
    path.write_bytes(data)
# -- files ----------------------------------------------------------------------------------------
def load_volume(path: str | Path, *, series_uid: str | None = None) -> Volume:
    """Read a NIfTI (.nii, .nii.gz), NRRD (.nrrd, .seg.nrrd, .nhdr) file or a DICOM series folder.

    The affine is voxel -> RAS mm whatever the file stores (NRRD and DICOM LPS are converted);
    the array keeps its stored dtype (labels are never scaled or cast to float). A folder with
    several DICOM series needs ``series_uid``. ``metadata`` holds ``source_path``, ``format``,
    ``description`` and ``synthetic`` (True for files written by TumorSynth as synthetic).
    Raises InputError for missing, unreadable or unsupported files.
    """
    if not isinstance(path, (str, os.PathLike)):
        raise InputError(f"the path of a volume must be a str or Path, got {type(path).__name__}")
    p = Path(path).expanduser()
    if not p.exists():
        raise InputError(f"'{p}' does not exist; check the path")
    return read_volume(p, series_uid)


def save_volume(volume: Volume, path: str | Path, *, synthetic: bool = False,
                description: str | None = None) -> Path:
    """Write ``volume`` as NIfTI (.nii, .nii.gz) or NRRD (.nrrd) and return the path.

    Integer data are written as int16 when the values fit (int32 otherwise), floats as float32,
    never scaled. ``synthetic=True`` marks the file: NIfTI ``descrip`` starts with
    "TumorSynth synthetic", NRRD gets ``tumorsynth_synthetic:=true``. Writing the same volume
    twice gives identical bytes (no timestamps). Parent folders are created.
    """
    if not isinstance(volume, Volume):
        raise InputError(f"save_volume needs a Volume, got {type(volume).__name__}; wrap arrays as "
                         "Volume(array, affine)")
    if not isinstance(path, (str, os.PathLike)):
        raise InputError(f"the output path must be a str or Path, got {type(path).__name__}")
    return write_volume(volume, Path(path).expanduser(), synthetic, description)


def ensure_not_overwriting(out_path: str | Path, *input_paths: str | Path | None) -> None:
    """Raise InputError if ``out_path`` is one of ``input_paths`` (inputs are never overwritten)."""
    out = Path(out_path).expanduser().resolve()
    for given in input_paths:
        if given is None:
            continue
        inp = Path(given).expanduser().resolve()
        if out == inp or (out.exists() and inp.exists() and out.samefile(inp)):
            raise InputError(f"the output '{out_path}' is the input file '{given}'; "
                             "choose another output location (inputs are never overwritten)")



