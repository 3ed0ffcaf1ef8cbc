"""``Synthesis``: what ``synthesize`` returns. It holds the changed regions as ROI patches and
builds full volumes only when asked (``.image``, ``.labels``, ``.tumor_instances``), so that
putting a tumor into a large scan costs what the tumor costs, and a caller that owns its arrays
(``RandTumorSynthd``) can write the patches into them without any whole-volume copy
(``write_into``). The input volumes are never modified.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import numpy as np

from ..core.volume import Box, Volume


@dataclass
class TumorPatch:
    """The ROI of one tumor after it was made: image (in the input's dtype), labels (tumor ids
    written) and the tumor mask. Patches apply in order: each was read on top of the earlier.
    ``image`` and ``labels`` are read-only (shared with the tumor's outcome, not copied): copy
    them to change them."""

    box: Box
    image: np.ndarray
    labels: np.ndarray
    tumor: np.ndarray
    index: int


def to_dtype(values: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """Float HU in ``dtype``: floats kept, integers rounded and clipped to the type's range."""
    if np.issubdtype(dtype, np.floating):
        return values.astype(dtype)
    info = np.iinfo(dtype)
    return np.clip(np.rint(values), info.min, info.max).astype(dtype)


@dataclass(eq=False)
class Synthesis:
    """New volumes (built on demand from ``patches``) and the provenance of every tumor."""

    input_image: Volume
    input_labels: Volume | None
    patches: list[TumorPatch]
    reports: list[dict[str, Any]]
    case_report: dict[str, Any]
    label_names: dict[int, str] = field(default_factory=dict)

    @property
    def roi(self) -> Box | None:
        """The union of the changed boxes (None when nothing changed)."""
        out = None
        for p in self.patches:
            out = p.box if out is None else out.union(p.box)
        return out

    @property
    def label_dtype(self) -> np.dtype:
        base = self.input_labels.array.dtype if self.input_labels is not None else np.dtype(np.int16)
        if not np.issubdtype(base, np.integer):
            base = np.dtype(np.int32)
        for p in self.patches:
            base = np.promote_types(base, p.labels.dtype)
        return np.dtype(base)

    @cached_property
    def image(self) -> Volume:
        """The new CT (a full copy of the input with every patch written)."""
        out = np.array(self.input_image.array, copy=True)
        self.write_into(out)
        return Volume(out, self.input_image.affine.copy(), {**self.input_image.metadata, "synthetic": True})

    @cached_property
    def labels(self) -> Volume:
        """The new labelmap: the input labels (zeros without labels) with tumors written."""
        if self.input_labels is not None:
            out = np.array(self.input_labels.array, dtype=self.label_dtype, copy=True)
            meta = dict(self.input_labels.metadata)
        else:
            out, meta = np.zeros(self.input_image.shape, dtype=self.label_dtype), {}
        self.write_into(None, out)
        return Volume(out, self.input_image.affine.copy(), {**meta, "synthetic": True})

    @cached_property
    def tumor_instances(self) -> Volume:
        """int16 map: 1..N per tumor (satellites share their tumor's id), 0 elsewhere."""
        out = np.zeros(self.input_image.shape, dtype=np.int16)
        self.write_into(None, None, out)
        return Volume(out, self.input_image.affine.copy(), {"synthetic": True})

    def write_into(self, image: np.ndarray | None = None, labels: np.ndarray | None = None,
                   instances: np.ndarray | None = None) -> None:
        """Write the patches, in order, into arrays of the input's shape that the caller owns
        (any of them may be None). Image values are cast to the array's dtype."""
        for p in self.patches:
            if image is not None:
                image[p.box.slices] = to_dtype(p.image, image.dtype) if p.image.dtype != image.dtype else p.image
            if labels is not None:
                labels[p.box.slices] = p.labels
            if instances is not None:
                instances[p.box.slices][p.tumor] = p.index + 1


__all__ = ["Synthesis", "TumorPatch", "to_dtype"]
