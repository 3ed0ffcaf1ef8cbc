"""One case being synthesised: the scan as it is now (input + the tumors placed so far) and the
per-tumor steps that ``synthesize`` and the live jobs share.

``SynthesisCase(image, organs, convention)`` analyses the scan once (cached), then
``start(spec, index)`` -> ``TumorJob`` (placement done, stages ready to run),
``add(outcome)`` -> the tumor's report (its ROI becomes a patch that later tumors read through),
``result()`` -> ``Synthesis``. Reading a box costs the box, whatever the size of the scan.
"""
from __future__ import annotations

import time
from dataclasses import replace
from typing import Any

import numpy as np
import scipy

from .. import __version__
from ..anatomy.analysis import ScanView, analyse_scan
from ..anatomy.organs import canonical_organ, label_names
from ..anatomy.placement import prepare_site
from ..anatomy.site import TumorSpec
from ..core.errors import InputError
from ..core.seeding import tumor_rng
from ..core.volume import Box, Volume
from . import registry
from .lesion_types import resolve_spec
from .options import validate_options
from .pipeline import TumorJob, TumorOutcome
from .report import build_report
from .result import Synthesis, TumorPatch, to_dtype


class SynthesisCase(ScanView):
    """The scan of one ``synthesize`` call, with the tumors placed so far laid over it."""

    def __init__(self, image: Volume, organs: Volume | None, convention: str = "totalseg", *,
                 case_id: str | None = None, variant: int = 0) -> None:
        super().__init__(analyse_scan(image, organs, convention))
        self.organs = organs
        self.case_id = str(image.metadata.get("case_id", "") if case_id is None else case_id)
        self.variant = int(variant)
        self.patches: list[TumorPatch] = []
        self.reports: list[dict[str, Any]] = []
        self.specs: list[TumorSpec] = []
        self.extra_names: dict[int, str] = {}
        self._t0 = time.perf_counter()

    # -- the scan as it is now (ScanView) ---------------------------------------------------------
    def image_box(self, box: Box) -> np.ndarray:
        out = super().image_box(box)
        self._overlay(box, out, "image")
        return out

    def labels_box(self, box: Box) -> np.ndarray:
        out = super().labels_box(box)
        if self.patches:
            out = out.astype(np.promote_types(out.dtype, self.patches[-1].labels.dtype), copy=False)
        self._overlay(box, out, "labels")
        return out

    def occupied_box(self, box: Box) -> np.ndarray:
        out = super().occupied_box(box)
        self._overlay(box, out, "tumor")
        return out

    def _overlay(self, box: Box, out: np.ndarray, name: str) -> None:
        for p in self.patches:
            lo = np.maximum(box.lo, p.box.lo)
            hi = np.minimum(box.hi, p.box.hi)
            if np.any(hi <= lo):
                continue
            dst = tuple(slice(a - o, b - o) for a, b, o in zip(lo, hi, box.lo))
            src = tuple(slice(a - o, b - o) for a, b, o in zip(lo, hi, p.box.lo))
            values = getattr(p, name)[src]
            if name == "tumor":
                out[dst] |= values
            else:
                out[dst] = values

    # -- steps ------------------------------------------------------------------------------------
    def start(self, spec: TumorSpec, index: int, attempt: int = 0) -> TumorJob:
        """Place tumor ``index`` of ``spec`` and return its job (the stages not yet run).
        ``attempt`` >= 1 draws a retry from child ``attempt - 1`` of the tumor's seed."""
        if not isinstance(spec, TumorSpec):
            raise InputError(f"expected a TumorSpec, got {type(spec).__name__}")
        spec, geometry, appearance = resolve_spec(spec)
        options = validate_options(spec.options, (geometry, appearance))
        self.analysis.check_label_options(options.get("tumor_label"), options.get("necrosis_label"))
        spec = replace(spec, options=options)
        provider = registry.provider("geometry", geometry)
        rng = tumor_rng(spec.seed, self.case_id, self.variant, index, attempt)
        t0 = time.perf_counter()
        site = prepare_site(self, spec, rng, roi_radius_mm=provider.roi_radius_mm)
        placement_s = time.perf_counter() - t0
        job = TumorJob(site, geometry, appearance, rng)
        job.timing["placement_s"] = placement_s
        return job

    def add(self, outcome: TumorOutcome, *, quality: dict | None = None) -> dict[str, Any]:
        """Lay the tumor's ROI over the scan and return its report (``quality``: the filter's
        verdict, stored as ``report["quality"]``)."""
        site = outcome.site
        index = len(self.patches)
        self.patches.append(TumorPatch(site.roi, self._native_patch(site.roi, site.image_roi, outcome.image_roi),
                                       outcome.labels_roi, outcome.tumor_mask, index))
        self.specs.append(site.spec)
        if "tumor_label" in site.options:
            self.extra_names.setdefault(outcome.tumor_id, f"{site.organ}_tumor")
        if outcome.necrosis_id is not None:
            self.extra_names.setdefault(outcome.necrosis_id, f"{site.organ}_tumor_necrosis")
        report = build_report(outcome, method=site.spec.method, index=index, case_id=self.case_id,
                              variant=self.variant)
        if quality is not None:
            report["quality"] = dict(quality)
            if not quality.get("passed", True):
                report["warnings"].append(
                    f"quality filter: best score {quality['score']:.2f} < threshold {quality['threshold']:g} "
                    f"after {quality['attempts']} tries; kept the best")
        self.reports.append(report)
        return report

    def result(self) -> Synthesis:
        names = label_names(self.analysis.convention, self._names_organ())
        names.update(self.extra_names)
        return Synthesis(self.analysis.image, self.organs, list(self.patches),
                         [dict(r) for r in self.reports], self._case_report(names), names)

    # -- helpers ----------------------------------------------------------------------------------
    def _native_patch(self, box: Box, before: np.ndarray, after: np.ndarray) -> np.ndarray:
        """The box in the input's dtype with only the changed voxels rewritten (float32 work
        never perturbs an unchanged float64 voxel). A float32 input is ``after`` itself (the
        outcome's read-only array, shared): the work is float32, so its unchanged voxels are the
        input's bits."""
        if self.analysis.image.array.dtype == np.float32 and after.dtype == np.float32:
            return after
        out = np.array(self.analysis.image.array[box.slices], copy=True)
        self._overlay(box, out, "image")
        changed = np.asarray(after, dtype=np.float32) != np.asarray(before, dtype=np.float32)
        out[changed] = to_dtype(np.asarray(after)[changed], out.dtype)
        out.setflags(write=False)                # as the float32 path's shared array
        return out

    def _names_organ(self) -> str | None:
        if self.analysis.convention in ("msd", "binary") and self.specs:
            return canonical_organ(self.specs[0].organ)
        return None

    def _case_report(self, names: dict[int, str]) -> dict[str, Any]:
        img = self.analysis.image
        roi = None
        for p in self.patches:
            roi = p.box if roi is None else roi.union(p.box)
        return {
            "inputs": {
                "shape": [int(v) for v in img.shape], "spacing": [float(v) for v in img.spacing],
                "affine": [[float(v) for v in row] for row in img.affine],
                "dtype": str(img.array.dtype), "convention": self.analysis.convention,
                "case_id": self.case_id, "variant": self.variant, "organs_given": self.organs is not None,
            },
            "specs": [s.to_dict() for s in self.specs],
            "versions": {"tumorsynth": __version__, "numpy": np.__version__, "scipy": scipy.__version__},
            "label_names": {str(k): v for k, v in sorted(names.items())},
            "n_tumors": len(self.reports), "roi": None if roi is None else roi.to_list(),
            "synthetic": True,
            "timing": {"total_s": time.perf_counter() - self._t0,
                       "tumors": [r.get("timing", {}) for r in self.reports]},
        }


__all__ = ["SynthesisCase"]
