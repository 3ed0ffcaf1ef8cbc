"""DICOM export of a synthetic case: a CT series (pydicom) plus its tumors as a DICOM SEG
object (highdicom), for teaching files, PACS-style viewers and Slicer's DICOM module.

Layout written by ``export_case``::

    OUT/ct/IM0001.dcm ...   one CT Image Storage file per slice (int16 HU, slope 1, intercept 0)
    OUT/seg/tumors.dcm      one Segmentation Storage file, one segment per tumor
    OUT/export.json         provenance: synthetic, UIDs, segments, source files, version

What the series says, where viewers show it: SeriesDescription "SYNTHETIC TUMOR - not for
diagnosis", ImageComments, ImageType DERIVED\\SECONDARY\\AXIAL, PatientName "SYNTHETIC^...",
and (``burn_in=True``, the default) "SYNTHETIC" burned into the top-left corner of every slice
(``burn_in.py``; BurnedInAnnotation then reads YES). Nothing is copied from a source file's
header: every UID is new. UIDs are derived ("2.25." + 128 bits of SHA-256) from a
digest of the voxels, the segments, the texts and ``seed``, so the same case exported twice
gives the same bytes and two different cases never share a UID. Dates and times are the fixed
placeholder ``PLACEHOLDER_DATE`` / ``PLACEHOLDER_TIME`` (TumorSynth files carry no timestamp).

Geometry: the volume's RAS affine is converted to LPS (DICOM's patient frame). The array is
stored flipped along i / j / k where needed (``stored_volume``: the same image in space) so
that an axial slice displays as radiologists expect even in a viewer that ignores the geometry
(first row anterior, first column the patient's right) and slices go in increasing order along
the slice normal (row direction x column direction).
Floating voxels are rounded to whole HU (DICOM CT stores integers).

Segments carry the SNOMED CT codes the Slicer module uses (``segment_logic.py``): category
"Morphologically Altered Structure" (49755003), type "Neoplasm" (108369006), anatomic region
liver (10200004) / pancreas (15776009) / kidney (64033007); algorithm type AUTOMATIC, named
"TumorSynth" (the mask is the tumor TumorSynth drew, not a segmentation model's output).
highdicom and pydicom are imported inside the functions.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from .. import __version__
from ..core.errors import DependencyError, InputError
from ..core.files import write_json_atomic
from ..core.volume import Volume
from ..synthesis.lesion_types import SNOMED_CATEGORY, SNOMED_NEOPLASM
from .burn_in import burn_in as burn_in_slice

CT_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.2"
SYNTHETIC_SERIES_DESCRIPTION = "SYNTHETIC TUMOR - not for diagnosis"
SYNTHETIC_IMAGE_COMMENTS = ("SYNTHETIC: contains computer-generated tumors made by TumorSynth; "
                            "not a real patient finding; not for diagnosis")
PLACEHOLDER_DATE, PLACEHOLDER_TIME = "20000101", "000000"
CT_FOLDER, SEG_FILE, EXPORT_JSON = "ct", "seg/tumors.dcm", "export.json"
MAX_SEGMENTS = 255

#: SNOMED CT codes (value, scheme, meaning); the lesion types own them (``lesion_types``).
NEOPLASM_CATEGORY, NEOPLASM_TYPE = SNOMED_CATEGORY, SNOMED_NEOPLASM
ORGAN_CODES = {
    "liver": ("10200004", "SCT", "Liver"),
    "pancreas": ("15776009", "SCT", "Pancreas"),
    "kidney": ("64033007", "SCT", "Kidney"),
}
_LPS = np.diag([-1.0, -1.0, 1.0, 1.0])


@dataclass
class SeriesText:
    """The words a viewer shows. Defaults mark the series as synthetic; a reader study passes
    one neutral text shared by every case."""

    series_description: str = SYNTHETIC_SERIES_DESCRIPTION
    image_comments: str = SYNTHETIC_IMAGE_COMMENTS
    study_description: str = "TumorSynth synthetic case"
    patient_name: str = "SYNTHETIC^TUMORSYNTH"
    patient_id: str = ""          # "" -> "TS-" + 10 hex digits of the content digest
    burn_in: bool = True
    window_center: float = 40.0
    window_width: float = 400.0


@dataclass
class TumorSegment:
    """One SEG segment: a boolean mask ``[i, j, k]`` on the image grid, its label, organ and
    SNOMED property type (a neoplasm unless the lesion type says otherwise, e.g. a cyst)."""

    label: str
    mask: np.ndarray
    organ: str | None = None
    property_type: tuple[str, str, str] = SNOMED_NEOPLASM


@dataclass
class DicomExport:
    """What ``export_case`` wrote."""

    folder: Path
    ct_files: list[Path]
    seg_file: Path | None
    study_uid: str
    series_uid: str
    frame_of_reference_uid: str
    seg_series_uid: str | None = None
    segments: list[dict[str, Any]] = field(default_factory=list)


# -- geometry -------------------------------------------------------------------------------------
def _flip(image: Volume, axis: int) -> Volume:
    """The same image in space with array axis ``axis`` reversed."""
    n = image.shape[axis]
    flip = np.eye(4)
    flip[axis, axis], flip[axis, 3] = -1.0, n - 1
    return Volume(np.flip(image.array, axis=axis), image.affine @ flip, dict(image.metadata))


def stored_volume(image: Volume) -> Volume:
    """``image`` on the grid it is stored on: the same voxels in space, with i and j flipped
    where needed so that columns run toward the patient's left and rows toward posterior (an
    axial slice shows as radiologists expect even in viewers that ignore the geometry: first
    row anterior, first column the patient's right), and k flipped where needed so that slices
    go in increasing order along the slice normal."""
    out = image
    for axis, lps_axis in ((0, 0), (1, 1)):
        if (_LPS @ out.affine)[lps_axis, axis] < 0:
            out = _flip(out, axis)
    lps = _LPS @ out.affine
    if float(np.dot(np.cross(lps[:3, 0], lps[:3, 1]), lps[:3, 2])) < 0:
        out = _flip(out, 2)
    return out


def stored_mask(image: Volume, mask: np.ndarray) -> np.ndarray:
    """``mask`` (on ``image``'s grid) on the grid ``stored_volume(image)`` stores."""
    return np.asarray(stored_volume(image.with_array(np.asarray(mask, dtype=bool))).array, dtype=bool)


def _int16_hu(array: np.ndarray) -> np.ndarray:
    values = np.asarray(array)
    if not np.issubdtype(values.dtype, np.integer):
        if not np.all(np.isfinite(values)):
            raise InputError("the image holds NaN/inf voxels; replace them (e.g. with -1024 HU) first")
        values = np.rint(values)
    lo, hi = float(values.min()), float(values.max())
    if lo < -32768 or hi > 32767:
        raise InputError(f"HU values from {lo:g} to {hi:g} do not fit DICOM's 16-bit CT pixels; "
                         "clip the image to [-32768, 32767] first")
    return values.astype(np.int16)


# -- UIDs ------------------------------------------------------------------------------------------
def content_digest(image: np.ndarray, segments: Sequence[TumorSegment], text: SeriesText, seed: int) -> str:
    """SHA-256 hex digest of everything that shapes the export (UIDs are derived from it)."""
    h = hashlib.sha256()
    h.update(np.ascontiguousarray(image).tobytes())
    for segment in segments:
        h.update(segment.label.encode() + str(segment.organ).encode())
        h.update(np.packbits(np.asarray(segment.mask, dtype=bool)).tobytes())
    h.update(repr(sorted(vars(text).items())).encode() + str(int(seed)).encode())
    return h.hexdigest()


def make_uid(digest: str, role: str) -> str:
    """A new, deterministic UID for one ``role`` ("study", "ct-series", "ct-3", ...): "2.25."
    followed by a 128-bit number taken from SHA-256(digest, role), the UUID-derived form of
    DICOM PS3.5 B.2 (at most 44 characters)."""
    number = int.from_bytes(hashlib.sha256(f"{digest}/{role}".encode()).digest()[:16], "big")
    return f"2.25.{number}"


# -- CT series -----------------------------------------------------------------------------------
def ct_datasets(image: Volume, text: SeriesText, digest: str) -> list[Any]:
    """One pydicom CT dataset per slice of ``image`` (already in stored order)."""
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import PYDICOM_IMPLEMENTATION_UID, ExplicitVRLittleEndian

    pixels = _int16_hu(image.array)
    lps = _LPS @ image.affine
    spacing = image.spacing
    row_dir, col_dir = lps[:3, 0] / spacing[0], lps[:3, 1] / spacing[1]
    uids = {role: make_uid(digest, role) for role in ("study", "ct-series", "frame-of-reference")}
    common = _common_attributes(text, digest, uids)
    datasets = []
    for k in range(image.shape[2]):
        frame = pixels[:, :, k].T                       # [row = j, column = i]
        if text.burn_in:
            frame = burn_in_slice(frame)
        ds = Dataset()
        for key, value in common.items():
            setattr(ds, key, value)
        sop_uid = make_uid(digest, f"ct-{k}")
        ds.SOPInstanceUID = sop_uid
        ds.InstanceNumber = k + 1
        ds.ImagePositionPatient = [_ds(v) for v in lps[:3, :3] @ [0.0, 0.0, float(k)] + lps[:3, 3]]
        ds.ImageOrientationPatient = [_ds(v) for v in (*row_dir, *col_dir)]
        ds.PixelSpacing = [_ds(spacing[1]), _ds(spacing[0])]   # between rows, between columns
        ds.SliceThickness = _ds(spacing[2])
        ds.SliceLocation = _ds(float(np.dot(np.cross(row_dir, col_dir), ds.ImagePositionPatient)))
        ds.Rows, ds.Columns = frame.shape
        ds.PixelData = np.ascontiguousarray(frame, dtype="<i2").tobytes()
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = CT_IMAGE_STORAGE
        meta.MediaStorageSOPInstanceUID = sop_uid
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
        ds.file_meta = meta
        datasets.append(ds)
    return datasets


def _ds(value: float) -> str:
    """A decimal string of at most 16 characters (DICOM DS)."""
    text = f"{float(value):.6f}".rstrip("0").rstrip(".")
    return text if len(text) <= 16 else f"{float(value):.10g}"


def _common_attributes(text: SeriesText, digest: str, uids: dict[str, str]) -> dict[str, Any]:
    return {
        "SpecificCharacterSet": "ISO_IR 100", "SOPClassUID": CT_IMAGE_STORAGE,
        "ImageType": ["DERIVED", "SECONDARY", "AXIAL"], "Modality": "CT",
        "PatientName": text.patient_name, "PatientID": text.patient_id or f"TS-{digest[:10].upper()}",
        "PatientBirthDate": "", "PatientSex": "", "PatientIdentityRemoved": "YES",
        "DeidentificationMethod": "TumorSynth export: no attribute copied from any source file",
        "StudyInstanceUID": uids["study"], "SeriesInstanceUID": uids["ct-series"],
        "FrameOfReferenceUID": uids["frame-of-reference"], "PositionReferenceIndicator": "",
        "StudyDate": PLACEHOLDER_DATE, "StudyTime": PLACEHOLDER_TIME,
        "SeriesDate": PLACEHOLDER_DATE, "SeriesTime": PLACEHOLDER_TIME,
        "ContentDate": PLACEHOLDER_DATE, "ContentTime": PLACEHOLDER_TIME,
        "AccessionNumber": "", "ReferringPhysicianName": "", "StudyID": "1", "SeriesNumber": 1,
        "AcquisitionNumber": 1, "StudyDescription": text.study_description,
        "SeriesDescription": text.series_description, "ImageComments": text.image_comments,
        "DerivationDescription": text.image_comments[:1024],
        "BurnedInAnnotation": "YES" if text.burn_in else "NO", "RecognizableVisualFeatures": "NO",
        "Manufacturer": "TumorSynth", "ManufacturerModelName": "TumorSynth",
        "SoftwareVersions": __version__, "KVP": "", "PatientPosition": "",
        "SamplesPerPixel": 1, "PhotometricInterpretation": "MONOCHROME2", "BitsAllocated": 16,
        "BitsStored": 16, "HighBit": 15, "PixelRepresentation": 1, "RescaleIntercept": "0",
        "RescaleSlope": "1", "RescaleType": "HU", "WindowCenter": _ds(text.window_center),
        "WindowWidth": _ds(text.window_width),
    }


def write_ct_series(datasets: Sequence[Any], folder: Path) -> list[Path]:
    """Write the datasets as ``folder/IM0001.dcm`` ... (folder created; old IM*.dcm removed)."""
    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.glob("IM*.dcm"):
        old.unlink()
    paths = []
    for n, ds in enumerate(datasets, start=1):
        path = folder / f"IM{n:04d}.dcm"
        ds.save_as(str(path), enforce_file_format=True)
        paths.append(path)
    return paths


# -- SEG -------------------------------------------------------------------------------------------
def segment_description(number: int, segment: TumorSegment, digest: str) -> Any:
    """The highdicom SegmentDescription of one tumor (SNOMED codes as in the Slicer module)."""
    import highdicom as hd
    from pydicom.sr.codedict import codes

    algorithm = hd.AlgorithmIdentificationSequence(name="TumorSynth", version=__version__,
                                                   family=codes.cid7162.DeformableModels)
    region = ORGAN_CODES.get((segment.organ or "").lower())
    return hd.seg.SegmentDescription(
        segment_number=number, segment_label=segment.label[:64],
        segmented_property_category=hd.sr.CodedConcept(*NEOPLASM_CATEGORY),
        segmented_property_type=hd.sr.CodedConcept(*segment.property_type),
        algorithm_type=hd.seg.SegmentAlgorithmTypeValues.AUTOMATIC,
        algorithm_identification=algorithm, tracking_id=segment.label[:64],
        tracking_uid=make_uid(digest, f"segment-{number}"),
        anatomic_regions=[hd.sr.CodedConcept(*region)] if region else None,
    )


def seg_dataset(sources: Sequence[Any], segments: Sequence[TumorSegment], image: Volume,
                digest: str, text: SeriesText) -> Any:
    """A highdicom Segmentation of ``segments`` (masks on ``image``, in stored order) that
    references the CT ``sources``."""
    import highdicom as hd

    if not segments:
        raise InputError("no tumor to put in the DICOM SEG; the case has no tumor voxels")
    if len(segments) > MAX_SEGMENTS:
        raise InputError(f"{len(segments)} tumors exceed the {MAX_SEGMENTS} segments one SEG holds")
    labelmap = np.zeros(image.shape, dtype=np.uint8)
    for number, segment in enumerate(segments, start=1):
        mask = np.asarray(segment.mask, dtype=bool)
        if mask.shape != image.shape:
            raise InputError(f"segment '{segment.label}' has shape {mask.shape}, not the image's {image.shape}")
        if (labelmap[mask] != 0).any():
            raise InputError(f"segment '{segment.label}' overlaps an earlier segment; tumors must not overlap")
        labelmap[mask] = number
    frames = np.ascontiguousarray(labelmap.transpose(2, 1, 0))   # [slice, row, column]
    seg = hd.seg.Segmentation(
        source_images=list(sources), pixel_array=frames,
        segmentation_type=hd.seg.SegmentationTypeValues.BINARY,
        segment_descriptions=[segment_description(n, s, digest) for n, s in enumerate(segments, 1)],
        series_instance_uid=make_uid(digest, "seg-series"), series_number=2,
        sop_instance_uid=make_uid(digest, "seg"), instance_number=1,
        manufacturer="TumorSynth", manufacturer_model_name="TumorSynth",
        software_versions=__version__, device_serial_number="0",
        series_description=f"{text.series_description} (tumor segments)"[:64],
        content_label="TUMORS", content_description="Synthetic tumors (TumorSynth)",
        content_date=PLACEHOLDER_DATE, content_time=PLACEHOLDER_TIME,
        series_date=PLACEHOLDER_DATE, series_time=PLACEHOLDER_TIME,
    )
    _freeze(seg, digest)
    return seg


#: Roots of the UIDs pydicom and highdicom draw at random (replaced by ``_freeze``).
_RANDOM_UID_ROOTS = ("1.2.826.0.1.3680043.8.498.", "1.2.826.0.1.3680043.10.511.")


def _freeze(ds: Any, digest: str) -> None:
    """Replace what highdicom fills from the clock or at random (creation date and time,
    contribution date-time, dimension organization UID) by placeholders and digest-derived
    UIDs, so that the same case gives the same SEG bytes."""
    replaced: dict[str, str] = {}

    def visit(dataset: Any) -> None:
        for element in dataset:
            if element.VR == "SQ":
                for item in element.value:
                    visit(item)
            elif element.VR == "DA" and element.value:
                element.value = PLACEHOLDER_DATE
            elif element.VR == "TM" and element.value:
                element.value = PLACEHOLDER_TIME
            elif element.VR == "DT" and element.value:
                element.value = PLACEHOLDER_DATE + PLACEHOLDER_TIME
            elif element.VR == "UI" and str(element.value).startswith(_RANDOM_UID_ROOTS):
                old = str(element.value)
                element.value = replaced.setdefault(old, make_uid(digest, f"seg-uid-{len(replaced)}"))

    visit(ds)


# -- one case ---------------------------------------------------------------------------------------
def export_case(image: Volume, segments: Sequence[TumorSegment], out: str | Path, *,
                text: SeriesText | None = None, seed: int = 0, with_seg: bool = True,
                provenance: dict[str, Any] | None = None) -> DicomExport:
    """Write ``image`` as a CT series and ``segments`` as a DICOM SEG into ``out`` (see the
    module docstring for the layout). ``segments`` masks are on ``image``'s grid. Returns what
    was written. Raises InputError for values or masks that cannot be stored, DependencyError
    when pydicom / highdicom are missing."""
    _require_packages(with_seg)
    text = text or SeriesText()
    out = Path(out).expanduser()
    stored = stored_volume(image)
    masks = [TumorSegment(s.label, stored_mask(image, s.mask), s.organ, s.property_type) for s in segments]
    digest = content_digest(_int16_hu(stored.array), masks if with_seg else [], text, seed)
    sources = ct_datasets(stored, text, digest)
    ct_files = write_ct_series(sources, out / CT_FOLDER)
    result = DicomExport(out, ct_files, None, str(sources[0].StudyInstanceUID),
                         str(sources[0].SeriesInstanceUID), str(sources[0].FrameOfReferenceUID))
    if with_seg:
        seg = seg_dataset(sources, masks, stored, digest, text)
        seg_path = out / SEG_FILE
        seg_path.parent.mkdir(parents=True, exist_ok=True)
        seg.save_as(str(seg_path), enforce_file_format=True)
        result.seg_file, result.seg_series_uid = seg_path, str(seg.SeriesInstanceUID)
        result.segments = [{"number": n, "label": s.label, "organ": s.organ,
                            "voxels": int(np.count_nonzero(s.mask))} for n, s in enumerate(masks, 1)]
    if provenance is not None:
        _write_export_json(result, text, provenance)
    return result


def _write_export_json(result: DicomExport, text: SeriesText, provenance: dict[str, Any]) -> None:

    write_json_atomic(result.folder / EXPORT_JSON, {
        "synthetic": provenance.get("synthetic", True), "tumorsynth_version": __version__,
        "ct_series": {"folder": CT_FOLDER, "files": len(result.ct_files), "series_uid": result.series_uid,
                      "series_description": text.series_description, "burned_in_mark": text.burn_in},
        "seg": None if result.seg_file is None else {"file": SEG_FILE, "series_uid": result.seg_series_uid,
                                                     "segments": result.segments},
        "study_uid": result.study_uid, "frame_of_reference_uid": result.frame_of_reference_uid,
        **{k: v for k, v in provenance.items() if k != "synthetic"},
    })


def _require_packages(with_seg: bool) -> None:
    try:
        import pydicom  # noqa: F401
        if with_seg:
            import highdicom  # noqa: F401
    except ImportError as exc:
        raise DependencyError(f"DICOM export needs pydicom and highdicom ({exc}); install them: "
                              "pip install pydicom highdicom") from exc


__all__ = ["SeriesText", "TumorSegment", "DicomExport", "export_case", "stored_volume",
           "stored_mask", "ct_datasets", "seg_dataset", "write_ct_series", "content_digest", "make_uid",
           "SYNTHETIC_SERIES_DESCRIPTION", "SYNTHETIC_IMAGE_COMMENTS", "ORGAN_CODES",
           "NEOPLASM_CATEGORY", "NEOPLASM_TYPE", "CT_FOLDER", "SEG_FILE", "EXPORT_JSON"]
