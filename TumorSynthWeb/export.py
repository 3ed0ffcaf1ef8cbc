"""The download: one zip with the image, labels, segmentation, report and preview of a session.

The files are those of the Slicer module's Export (``TumorSynthSlicer.export_logic``: image and
labels marked synthetic in their headers, ``report.json`` with every tumor's provenance,
``tumors.seg.nrrd``) plus the engine's ``preview.png`` montage and a ``README.txt`` saying what
the files are. Every image in the zip is synthetic and says so.

Example::

    data = session_zip(tumor_session, source="built-in phantom (seed 0)")   # bytes
"""
from __future__ import annotations

import io
import json
import tempfile
import zipfile
from pathlib import Path
from typing import Any

from TumorSynthLib.datasets.preview import write_preview
from TumorSynthLib.volume import Volume
from TumorSynthSlicer.export_logic import export_session
from TumorSynthSlicer.volume_logic import array_ijk, world_affine

ZIP_NAME = "tumorsynth-case.zip"
README = """TumorSynth synthetic case (web front end)

SYNTHETIC IMAGE - NOT FOR DIAGNOSIS. The tumors in these files were made by TumorSynth.

image.nii.gz      the CT with the synthetic tumors (header: "TumorSynth synthetic ...")
label.nii.gz      labels: 1 organ (where organ labels were used), 2 tumor
tumors.seg.nrrd   one segment per tumor (3D Slicer segmentation)
report.json       provenance: source, every tumor's method, seed, sizes, position, warnings
preview.png       axial, coronal and sagittal slices through each tumor
"""


def session_zip(session: Any, source: str) -> bytes:
    """The zip (bytes) of a session with at least one tumor; raises SlicerLogicError when
    there is nothing to download yet."""
    with tempfile.TemporaryDirectory(prefix="tumorsynth-web-") as folder:
        out = Path(folder)
        paths = export_session(session, out, "nii.gz")
        _add_source(paths["report"], source)
        paths["preview"] = _write_preview(session, out / "preview.png")
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
            archive.writestr("README.txt", README)
            for path in sorted(paths.values()):
                archive.write(path, Path(path).name)
        return buffer.getvalue()


def _add_source(report_path: Path, source: str) -> None:
    report = json.loads(report_path.read_text())
    report["generator"] = "TumorSynth (web front end on 3D Slicer's MRML, trame-slicer)"
    report["source"] = source
    report_path.write_text(json.dumps(report, indent=2))


def _write_preview(session: Any, path: Path) -> Path:
    affine = world_affine(session.outputVolume)
    image = Volume(array_ijk(session.outputVolume).copy(), affine)
    labels = Volume(array_ijk(session.labelsVolume).copy(), affine)
    return Path(write_preview(image, labels, session.reports, path))


__all__ = ["README", "ZIP_NAME", "session_zip"]
