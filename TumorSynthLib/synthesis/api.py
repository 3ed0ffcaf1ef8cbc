"""``synthesize``: put one or more synthetic tumors into a CT scan (the engine's entry point).

Flow (docs/ARCHITECTURE.md): validate the inputs once (``CaseBuilder``), then for each spec
(``expand_specs``: ``options["count"] = k`` gives k tumors) prepare a site
(``placement.prepare_site``), let the method render the ROI, and paste the ROI into working
copies (``CaseBuilder.add``). Inputs are never modified; outside each tumor's ROI every voxel
of the output is bit-identical to the input (inside the ROI only changed voxels are written).
``CaseBuilder`` is public so that live methods (cellular growth) can drive the same steps.

Per-tumor report (``Synthesis.reports[i]``, JSON-able):

* ``method``, ``stage``, ``organ``, ``organ_label_id``, ``tumor_id``, ``necrosis_label_id``,
  ``convention``, ``organ_source`` ("labels" | "region-grown"), ``synthetic`` (true),
  ``version`` (TumorSynthLib), ``seed``, ``case_id``, ``variant``, ``index``;
* sizes (mm): ``diameter_requested_mm`` (null when drawn), ``diameter_target_mm``,
  ``diameter_source``, ``diameter_measured_mm`` (equivalent sphere of the final mask),
  ``recist_long_mm``, ``recist_short_mm``, ``volume_ml``, ``n_voxels``,
  ``size_limited_by_organ``, ``largest_inscribed_radius_mm``, ``organ_fill_fraction`` (tumor
  volume / volume of the largest organ-inscribed sphere near the centre);
* positions: ``center_requested_ras`` (null when sampled), ``center_placed_ras``,
  ``center_voxel`` (placed centre, full-image voxels), ``centroid_ras``, ``centroid_voxel``;
* intensity (HU): ``organ_median_hu``, ``organ_mad_hu``, ``delta_hu`` (requested mean drop),
  ``mean_tumor_hu``, ``measured_drop_hu`` (mean drop on voxels whose soft weight is >= 0.9);
* ``draws`` (every random number that shaped the tumor: placement's and the method's),
  ``details`` (method extras: effects applied, ...), ``roi`` ([[lo], [hi]] voxels),
  ``warnings``, ``quality`` (only with a quality filter: score, threshold, attempts,
  kept_attempt, passed), and ``timing`` (seconds; the only part that differs between
  identical runs).

Case report (``Synthesis.case_report``): ``inputs`` (shape, spacing, affine, dtype,
convention, case_id, variant, organs_given), ``specs``, ``versions`` (tumorsynth, numpy, scipy),
``label_names`` (str id -> name), ``n_tumors``, ``roi``, ``synthetic`` (true), ``timing``.
"""
from __future__ import annotations

import time
from typing import Any, Callable, Sequence

import numpy as np

from ..core.errors import GeometryError, InputError
from ..core.volume import Box, Volume, check_finite_image, check_integer_labels, check_same_grid
from ..anatomy.site import Site, TumorSpec
from .base import Synthesis, TumorMethod, TumorRender, get_method, tumor_rng, tumor_seed_sequence

#: A quality check: (rendered image ROI in HU, tumor mask of the ROI, site) -> P in [0, 1], the
#: fraction of the synthetic tumor a segmentation model finds (methods.md "Quality filter").
QualityCheck = Callable[[np.ndarray, np.ndarray, Site], float]


def attempt_rng(seed: int, case_id: str, variant: int, index: int, attempt: int = 0) -> np.random.Generator:
    """``tumor_rng`` for attempt 0; for a retry ``attempt`` >= 1, child ``attempt - 1`` of the
    same seed sequence (deterministic, and distinct from every other tumor's stream)."""
    if attempt == 0:
        return tumor_rng(seed, case_id, variant, index)
    children = tumor_seed_sequence(seed, case_id, variant, index).spawn(int(attempt))
    return np.random.default_rng(children[-1])


def expand_specs(specs: TumorSpec | Sequence[TumorSpec]) -> list[TumorSpec]:
    """One spec per tumor: ``options["count"] = k`` repeats a spec k times (without ``count``);
    the tumors differ because each gets its own index in ``tumor_rng``."""
    items = [specs] if isinstance(specs, TumorSpec) else list(specs)
    if not items:
        raise InputError("no tumor requested: pass at least one TumorSpec")
    out: list[TumorSpec] = []
    for spec in items:
        if not isinstance(spec, TumorSpec):
            raise InputError(f"expected TumorSpec objects, got {type(spec).__name__}")
        options = dict(spec.options or {})
        count = _count(options.pop("count", 1))
        if int(count) == 1 and "count" not in (spec.options or {}):
            out.append(spec)
            continue
        out.extend(_replace_options(spec, options) for _ in range(int(count)))
    return out


def _count(value: Any) -> int:
    """``options["count"]`` as an int from 1 to 100 (integral floats and digit strings accepted,
    as they come from JSON and the command line)."""
    try:
        count = int(str(value)) if isinstance(value, str) else int(value)
        ok = not isinstance(value, bool) and count == float(value) and 1 <= count <= 100
    except (TypeError, ValueError):
        ok = False
    if not ok:
        raise InputError(f"options['count'] must be an integer from 1 to 100, got {value!r}")
    return count


def _replace_options(spec: TumorSpec, options: dict[str, Any]) -> TumorSpec:
    from dataclasses import replace

    return replace(spec, options=options)


def _versions() -> dict[str, str]:
    import scipy

    from .. import __version__

    return {"tumorsynth": __version__, "numpy": np.__version__, "scipy": scipy.__version__}


def _to_dtype(values: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """Float results in the input's dtype: floats kept, integers rounded and clipped."""
    if np.issubdtype(dtype, np.floating):
        return values.astype(dtype)
    info = np.iinfo(dtype)
    return np.clip(np.rint(values), info.min, info.max).astype(dtype)


def _label_dtype(dtype: np.dtype, *ids: int) -> np.dtype:
    """A labelmap dtype that holds the input's ids and every id we write."""
    out = np.dtype(dtype) if np.issubdtype(dtype, np.integer) else np.dtype(np.int32)
    for i in ids:
        out = np.promote_types(out, np.min_scalar_type(int(i)))
    return out


class CaseBuilder:
    """Working copies of one case and the per-tumor steps of ``synthesize``.

    ``prepare(spec, index)`` -> (method, site, rng); the method renders (all at once, or step by
    step); ``add(site, render)`` pastes it and returns the tumor's report; ``result()`` gives the
    ``Synthesis``.
    """

    def __init__(self, image: Volume, organs: Volume | None, convention: str = "totalseg",
                 case_id: str | None = None, variant: int = 0) -> None:
        from ..anatomy.organs import CONVENTIONS

        self.convention = str(convention).strip().lower()
        if self.convention not in CONVENTIONS:
            raise InputError(f"unknown label convention '{convention}'; "
                             f"choose one of: {', '.join(CONVENTIONS)}")
        if not isinstance(image, Volume):
            raise InputError(f"image must be a Volume, got {type(image).__name__}")
        dtype = image.array.dtype
        if not np.issubdtype(dtype, np.number) or np.issubdtype(dtype, np.complexfloating):
            raise InputError(f"the image must hold real numbers (HU), got dtype {image.array.dtype}")
        check_finite_image(image)
        self.image_in = image
        self.organs_in = organs
        self.case_id = str(image.metadata.get("case_id", "") if case_id is None else case_id)
        self.variant = int(variant)
        self._image = np.array(image.array, copy=True)
        if organs is not None:
            if not isinstance(organs, Volume):
                raise InputError(f"organs must be a Volume or None, got {type(organs).__name__}")
            check_same_grid(image, organs, "organ labels")
            self._labels = np.array(check_integer_labels(organs), copy=True)
        else:
            self._labels = np.zeros(image.shape, dtype=np.int16)
        self._instances = np.zeros(image.shape, dtype=np.int16)
        self.specs: list[TumorSpec] = []
        self.reports: list[dict[str, Any]] = []
        self.extra_names: dict[int, str] = {}
        self.roi: Box | None = None
        self._handed_over = False   # result() shares the working arrays: copy before writing
        self._t0 = time.perf_counter()

    # -- views of the current state -------------------------------------------------------------
    def current_image(self) -> Volume:
        return Volume(self._image, self.image_in.affine, dict(self.image_in.metadata))

    def current_labels(self) -> Volume | None:
        if self.organs_in is None:
            return None
        return Volume(self._labels, self.image_in.affine, dict(self.organs_in.metadata))

    # -- steps ----------------------------------------------------------------------------------
    def prepare(self, spec: TumorSpec, index: int,
                attempt: int = 0) -> tuple[TumorMethod, Site, np.random.Generator]:
        """The method, its prepared site and the tumor's generator (``tumor_rng``; retry
        ``attempt`` > 0 of the quality filter draws from child ``attempt - 1`` of its seed)."""
        from ..anatomy.placement import prepare_site

        if not isinstance(spec, TumorSpec):
            raise InputError(f"expected a TumorSpec, got {type(spec).__name__}")
        rng = attempt_rng(spec.seed, self.case_id, self.variant, index, attempt)
        method = get_method(spec.method)
        _label_option(spec, "tumor_label")
        _label_option(spec, "necrosis_label")
        occupied = self._instances if self.reports else None
        site = prepare_site(self.current_image(), self.current_labels(), spec, self.convention, rng,
                            roi_radius_mm=method.roi_radius_mm, occupied=occupied)
        return method, site, rng

    def add(self, site: Site, render: TumorRender, *, timing: dict | None = None,
            quality: dict | None = None) -> dict:
        """Paste the ROI result into the working copies and return the tumor's report
        (``quality``: the quality filter's verdict, stored as ``report["quality"]``)."""
        index = len(self.reports)
        box = site.roi
        _check_render(site, render)
        tumor_id, necrosis_id = self._tumor_ids(site)
        if self._handed_over:
            self._image, self._labels, self._instances = (
                self._image.copy(), self._labels.copy(), self._instances.copy())
            self._handed_over = False
        self._paste_image(box, site.image_roi, render.image_roi)
        labels = np.array(render.labels_roi, copy=True)
        dtype = _label_dtype(self._labels.dtype, tumor_id, necrosis_id or 0)
        self._labels = self._labels.astype(dtype, copy=False)
        labels = labels.astype(self._labels.dtype, copy=False)
        labels[render.tumor_mask] = tumor_id
        if necrosis_id is not None and render.necrosis_mask is not None:
            labels[render.necrosis_mask & render.tumor_mask] = necrosis_id
        self._labels[box.slices] = labels
        self._instances[box.slices][render.tumor_mask] = index + 1
        self.roi = box if self.roi is None else self.roi.union(box)
        self.specs.append(site.spec)
        report = build_report(site, render, index, self.case_id, self.variant, tumor_id,
                              necrosis_id, timing or {})
        if quality is not None:
            report["quality"] = dict(quality)
            if not quality.get("passed", True):
                report["warnings"].append(
                    f"quality filter: best score {quality['score']:.2f} < threshold "
                    f"{quality['threshold']:g} after {quality['attempts']} tries; kept the best")
        self.reports.append(report)
        return report

    def result(self) -> Synthesis:
        """The ``Synthesis`` of every tumor added so far. Its arrays are the builder's working
        arrays (no copy); a later ``add`` copies them first, so results never change."""
        from ..anatomy.organs import label_names

        affine = self.image_in.affine
        names = label_names(self.convention, self._names_organ())
        names.update(self.extra_names)
        meta = {**self.image_in.metadata, "synthetic": True}
        labels_meta = {**(self.organs_in.metadata if self.organs_in is not None else {}), "synthetic": True}
        case = self._case_report(names)
        self._handed_over = True
        return Synthesis(
            image=Volume(self._image, affine.copy(), meta),
            labels=Volume(self._labels, affine.copy(), labels_meta),
            tumor_instances=Volume(self._instances, affine.copy(), {"synthetic": True}),
            roi=self.roi, reports=[dict(r) for r in self.reports], case_report=case,
            label_names=names,
        )

    # -- helpers --------------------------------------------------------------------------------
    def _paste_image(self, box: Box, before: np.ndarray, after: np.ndarray) -> None:
        changed = np.asarray(after, dtype=np.float32) != np.asarray(before, dtype=np.float32)
        view = self._image[box.slices]
        view[changed] = _to_dtype(np.asarray(after)[changed], self._image.dtype)

    def _tumor_ids(self, site: Site) -> tuple[int, int | None]:
        opts = site.spec.options or {}
        override = _label_option(site.spec, "tumor_label")
        tumor_id = site.tumor_id if override is None else override
        necrosis_id = _label_option(site.spec, "necrosis_label")
        if "tumor_label" in opts:
            self.extra_names.setdefault(tumor_id, f"{site.organ}_tumor")
        if necrosis_id is not None:
            self.extra_names.setdefault(necrosis_id, f"{site.organ}_tumor_necrosis")
        return tumor_id, necrosis_id

    def _names_organ(self) -> str | None:
        if self.convention in ("msd", "binary") and self.specs:
            from ..anatomy.organs import canonical_organ

            return canonical_organ(self.specs[0].organ)
        return None

    def _case_report(self, names: dict[int, str]) -> dict[str, Any]:
        img = self.image_in
        return {
            "inputs": {
                "shape": [int(v) for v in img.shape], "spacing": [float(v) for v in img.spacing],
                "affine": [[float(v) for v in row] for row in img.affine],
                "dtype": str(img.array.dtype), "convention": self.convention,
                "case_id": self.case_id, "variant": self.variant,
                "organs_given": self.organs_in is not None,
            },
            "specs": [s.to_dict() for s in self.specs],
            "versions": _versions(),
            "label_names": {str(k): v for k, v in sorted(names.items())},
            "n_tumors": len(self.reports),
            "roi": None if self.roi is None else self.roi.to_list(),
            "synthetic": True,
            "timing": {"total_s": time.perf_counter() - self._t0,
                       "tumors": [r.get("timing", {}) for r in self.reports]},
        }


def _label_option(spec: TumorSpec, name: str) -> int | None:
    """``options[name]`` as a label id in 1..32767 (None when absent); InputError otherwise."""
    value = (spec.options or {}).get(name)
    if value is None:
        return None
    try:
        ok = not isinstance(value, bool) and float(value) == int(value) and 1 <= int(value) <= 32767
    except (TypeError, ValueError):
        ok = False
    if not ok:
        raise InputError(f"options['{name}'] must be a label id from 1 to 32767, got {value!r}")
    return int(value)


def _check_render(site: Site, render: TumorRender) -> None:
    """A method's output must cover exactly its ROI (a method bug otherwise)."""
    shape = tuple(site.roi.shape)
    for name in ("image_roi", "labels_roi", "tumor_mask"):
        got = tuple(np.shape(getattr(render, name)))
        if got != shape:
            raise GeometryError(f"method '{site.spec.method}' returned {name} of shape {got}, "
                                f"not the ROI shape {shape}; this is a bug in the method")
    if render.necrosis_mask is not None and tuple(np.shape(render.necrosis_mask)) != shape:
        raise GeometryError(f"method '{site.spec.method}' returned a necrosis mask of the wrong shape")


def build_report(site: Site, render: TumorRender, index: int, case_id: str, variant: int,
                 tumor_id: int, necrosis_id: int | None, timing: dict) -> dict[str, Any]:
    """The JSON-able report of one tumor (keys: the module docstring)."""
    from .. import __version__
    from ..anatomy.measure import measure_mask

    m = measure_mask(render.tumor_mask, site.affine_roi)
    lo = np.asarray(site.roi.lo, dtype=float)
    details = dict(render.details)
    r_in = float(site.max_inscribed_radius_mm)
    sphere_ml = 4.0 / 3.0 * np.pi * r_in**3 / 1000.0
    limited = details.pop("size_limited_by_organ", None)
    if limited is None:
        limited = m["equivalent_diameter_mm"] < 0.8 * site.diameter_mm
    report = {
        "method": site.spec.method, "stage": site.stage, "organ": site.organ,
        "organ_label_id": int(site.organ_label_id), "tumor_id": int(tumor_id),
        "necrosis_label_id": necrosis_id, "convention": site.convention,
        "organ_source": site.organ_source, "synthetic": True, "version": __version__,
        "seed": int(site.spec.seed), "case_id": case_id, "variant": int(variant), "index": int(index),
        "diameter_requested_mm": _num(site.spec.diameter_mm),
        "diameter_target_mm": float(site.diameter_mm), "diameter_source": site.diameter_source,
        "diameter_measured_mm": m["equivalent_diameter_mm"],
        "recist_long_mm": m["recist_long_mm"], "recist_short_mm": m["recist_short_mm"],
        "volume_ml": m["volume_ml"], "n_voxels": m["n_voxels"],
        "size_limited_by_organ": bool(limited), "largest_inscribed_radius_mm": r_in,
        "organ_fill_fraction": (m["volume_ml"] / sphere_ml) if sphere_ml > 0 else None,
        "center_requested_ras": site.center_requested_ras, "center_placed_ras": site.center_placed_ras,
        "center_voxel": [float(v) for v in np.asarray(site.center_vox) + lo],
        "centroid_ras": m["centroid_ras"],
        "centroid_voxel": (None if m["centroid_voxel"] is None
                           else [float(v) for v in np.asarray(m["centroid_voxel"]) + lo]),
        "organ_median_hu": float(site.organ_median_hu), "organ_mad_hu": float(site.organ_mad_hu),
        "delta_hu": _num(details.pop("delta_hu", None)),
        "mean_tumor_hu": _num(details.pop("mean_tumor_hu", None)),
        "measured_drop_hu": _num(details.pop("measured_drop_hu", None)),
        "draws": {"placement": _jsonable(site.details.get("draws", {})), "method": _jsonable(render.draws)},
        "details": _jsonable({**{k: v for k, v in site.details.items() if k != "draws"}, **details}),
        "roi": site.roi.to_list(), "warnings": list(site.warnings),
        "timing": dict(timing),
    }
    return report


def _num(value: Any) -> float | None:
    return None if value is None else float(value)


def _jsonable(value: Any) -> Any:
    """Numpy scalars / arrays / tuples -> plain Python (the report goes to JSON)."""
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return _jsonable(value.tolist())
    if isinstance(value, np.generic):
        return value.item()
    return value


def synthesize(image: Volume, organs: Volume | None, specs: TumorSpec | Sequence[TumorSpec],
               labels: str = "totalseg", *, case_id: str | None = None, variant: int = 0,
               quality: QualityCheck | None = None, quality_threshold: float = 0.7,
               quality_tries: int = 3) -> Synthesis:
    """Put the tumors of ``specs`` (applied in order, each on the previous output) into
    ``image`` (CT in HU) with organ ``organs`` labels in convention ``labels`` (or None: the
    organ is grown from each click). Returns new volumes and reports; inputs are untouched.

    ``quality`` (optional): each tumor is kept when ``quality(...) >= quality_threshold``,
    else drawn again (up to ``quality_tries`` tries; the best is kept and the report says so).
    Raises InputError / GeometryError (bad inputs), PlacementError (no valid place),
    DependencyError (method unavailable)."""
    if quality is not None and not (0.0 <= float(quality_threshold) <= 1.0 and int(quality_tries) >= 1):
        raise InputError("quality_threshold must be in [0, 1] and quality_tries >= 1")
    builder = CaseBuilder(image, organs, labels, case_id=case_id, variant=variant)
    for index, spec in enumerate(expand_specs(specs)):
        t0 = time.perf_counter()
        best, timing = None, {"prepare_s": 0.0, "render_s": 0.0}
        for attempt in range(int(quality_tries) if quality is not None else 1):
            ta = time.perf_counter()
            method, site, rng = builder.prepare(spec, index, attempt)
            tb = time.perf_counter()
            render = method.render(site, rng)
            timing["prepare_s"] += tb - ta
            timing["render_s"] += time.perf_counter() - tb
            score = None if quality is None else float(quality(render.image_roi, render.tumor_mask, site))
            if best is None or (score is not None and score > best[2]):
                best = (site, render, score, attempt + 1)
            if score is None or score >= quality_threshold:
                break
        site, render, score, _ = best
        verdict = None if quality is None else {
            "score": score, "threshold": float(quality_threshold), "attempts": attempt + 1,
            "kept_attempt": best[3], "passed": score >= quality_threshold}
        builder.add(site, render, timing=timing, quality=verdict)
        builder.reports[-1]["timing"]["total_s"] = time.perf_counter() - t0
    return builder.result()


__all__ = ["CaseBuilder", "QualityCheck", "attempt_rng", "build_report", "expand_specs", "synthesize"]
