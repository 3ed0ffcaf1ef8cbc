"""Files written by ``tumorsynth evaluate``: CSV, JSON and PNG figures.

``cases.csv`` (one row per case), ``tumors.csv`` (one row per reference tumor and per predicted
component), ``summary.json`` (overall figures and every case), ``sensitivity_by_size.png``,
``dsc_per_case.png`` and ``worst_cases.png`` (axial slices through the lowest-DSC cases:
reference tumor in green, predicted tumor in red, over the CT when it was given; drawn in the
radiological orientation of the synthesis preview). Every file is written atomically.
"""
from __future__ import annotations

import csv
import io
import math
from pathlib import Path
from typing import Any

import numpy as np

from ..core.display import axial_axis, plane_slice
from ..core.files import save_figure, write_json_atomic, write_text_atomic
from .metrics import SIZE_BUCKETS

#: Longest case id drawn under a bar or over a panel (longer ones end in an ellipsis).
LABEL_CHARS = 24
CASE_COLUMNS = ("case_id", "tumor_dsc", "tumor_nsd", "organ_dsc", "n_ref_tumors", "n_detected",
                "n_pred_tumors", "false_positives", "ref_tumor_ml", "pred_tumor_ml")


def _public(value: Any) -> Any:
    """``value`` without the private (``_``-prefixed) keys the plots use."""
    if isinstance(value, dict):
        return {k: _public(v) for k, v in value.items() if not str(k).startswith("_")}
    if isinstance(value, (list, tuple)):
        return [_public(v) for v in value]
    return value


def write_tables(out: Path, cases: list[dict[str, Any]], summary: dict[str, Any]) -> list[Path]:
    rows = io.StringIO()
    writer = csv.DictWriter(rows, fieldnames=CASE_COLUMNS, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for case in cases:
        writer.writerow({k: _csv_value(case[k]) for k in CASE_COLUMNS})
    tumors = io.StringIO()
    table = csv.writer(tumors, lineterminator="\n")
    table.writerow(("case_id", "kind", "id", "diameter_mm", "volume_ml", "bucket", "detected", "false_positive"))
    for case in cases:
        for t in case["tumors"]:
            table.writerow((case["case_id"], "reference", t["id"], f"{t['diameter_mm']:.2f}",
                            f"{t['volume_ml']:.4f}", t["bucket"], int(t["detected"]), ""))
        for t in case["predicted_tumors"]:
            table.writerow((case["case_id"], "predicted", t["id"], f"{t['diameter_mm']:.2f}",
                            f"{t['volume_ml']:.4f}", t["bucket"], "", int(t["false_positive"])))
    return [write_text_atomic(out / "cases.csv", rows.getvalue()),
            write_text_atomic(out / "tumors.csv", tumors.getvalue()),
            write_json_atomic(out / "summary.json", _public({"summary": summary, "cases": cases}))]


def _csv_value(value: Any) -> Any:
    if isinstance(value, float):
        return "" if not math.isfinite(value) else f"{value:.4f}"
    return value


def short_label(text: str, width: int = LABEL_CHARS) -> str:
    """``text`` cut to ``width`` characters with an ellipsis (case ids under bars and panels)."""
    return text if len(text) <= width else text[: width - 1] + "\u2026"


def _figure(width: float, height: float) -> Any:
    """A matplotlib Figure drawn by the Agg renderer (no pyplot state, no display needed)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height))
    FigureCanvasAgg(fig)
    return fig


def sensitivity_figure(summary: dict[str, Any]) -> Any:
    """Bar chart of tumor-wise sensitivity per reference size bucket."""
    names = [b[0] for b in SIZE_BUCKETS]
    sens = [summary["by_size"][n]["sensitivity"] for n in names]
    counts = [summary["by_size"][n]["n_tumors"] for n in names]
    fig = _figure(5.5, 3.8)
    ax = fig.subplots()
    ax.bar(names, [s if s is not None else 0.0 for s in sens], color="tab:blue")
    for x, (s, n) in enumerate(zip(sens, counts)):
        ax.text(x, (s or 0.0) + 0.02, f"n={n}" if s is not None else "none", ha="center", fontsize=8)
    ax.set(ylim=(0, 1.15), xlabel="reference tumor diameter (mm)", ylabel="sensitivity")
    ax.set_title("Tumor detection by size", fontsize=10)
    fig.tight_layout()
    return fig


def dsc_figure(cases: list[dict[str, Any]]) -> Any:
    """Bar chart of the tumor DSC of every case (0 drawn for cases without a tumor)."""
    fig = _figure(max(5.5, 0.35 * len(cases) + 2), 4.0)
    ax = fig.subplots()
    ids = [short_label(str(c["case_id"])) for c in cases]
    dsc = [c["tumor_dsc"] if np.isfinite(c["tumor_dsc"]) else 0.0 for c in cases]
    ax.bar(range(len(ids)), dsc, color="tab:orange")
    ax.set_xticks(range(len(ids)), ids, rotation=60, ha="right", fontsize=7)
    ax.set(ylim=(0, 1), ylabel="tumor DSC")
    ax.set_title("Tumor DSC per case\n(0 drawn for cases without a tumor)", fontsize=10)
    fig.tight_layout()
    return fig


def write_plots(out: Path, cases: list[dict[str, Any]], summary: dict[str, Any]) -> list[Path]:
    return [save_figure(sensitivity_figure(summary), out / "sensitivity_by_size.png", dpi=100),
            save_figure(dsc_figure(cases), out / "dsc_per_case.png", dpi=100)]


def worst_case_slice(pred: np.ndarray, ref: np.ndarray, image: np.ndarray | None,
                     affine: np.ndarray) -> dict[str, np.ndarray]:
    """The axial slice with the most reference tumor (else predicted tumor, else organ), as 2D
    arrays in the radiological orientation of the synthesis preview (``core.display``:
    anterior up, the patient's right on the image left)."""
    axis = axial_axis(affine)
    others = tuple(a for a in range(3) if a != axis)
    for mask in (ref == 2, pred == 2, ref >= 1):
        area = mask.sum(axis=others)
        if area.any():
            k = int(np.argmax(area))
            break
    else:
        k = ref.shape[axis] // 2
    center = (np.asarray(ref.shape, dtype=float) - 1) / 2.0
    center[axis] = k
    def cut(arr: np.ndarray) -> np.ndarray:
        return plane_slice(arr, affine, center, "axial")[0]

    return {"ref": cut(ref), "pred": cut(pred),
            "image": None if image is None else np.asarray(cut(image), dtype=np.float32)}


def montage_figure(cases: list[dict[str, Any]], n: int = 6) -> Any:
    """Slices of the ``n`` cases with the lowest tumor DSC (cases carry ``_slice``), or None."""
    ranked = sorted((c for c in cases if "_slice" in c),
                    key=lambda c: c["tumor_dsc"] if np.isfinite(c["tumor_dsc"]) else 2.0)[:n]
    if not ranked:
        return None
    fig = _figure(max(3.2 * len(ranked), 5.0), 3.8)
    axes = fig.subplots(1, len(ranked), squeeze=False)
    for ax, case in zip(axes[0], ranked):
        s = case["_slice"]
        base = s["image"] if s["image"] is not None else (s["ref"] >= 1).astype(np.float32) * 0.3
        vmin, vmax = (-175, 250) if s["image"] is not None else (0, 1)
        ax.imshow(base, cmap="gray", origin="upper", vmin=vmin, vmax=vmax)
        for mask, color in ((s["ref"] == 2, "lime"), (s["pred"] == 2, "red")):
            if mask.any():
                ax.contour(mask.astype(float), levels=[0.5], colors=color, linewidths=1)
        dsc = case["tumor_dsc"]
        name = short_label(str(case["case_id"]))
        ax.set_title(f"{name}\nDSC {dsc:.2f}" if np.isfinite(dsc) else f"{name}\nno ref. tumor", fontsize=8)
        ax.axis("off")
    fig.suptitle("Worst cases (axial, patient's right on the left):\nreference tumor green, prediction red",
                 fontsize=9)
    fig.tight_layout()
    return fig


def write_montage(out: Path, cases: list[dict[str, Any]], n: int = 6) -> Path | None:
    """``worst_cases.png`` (``montage_figure``), or None when no case has a slice."""
    fig = montage_figure(cases, n)
    return None if fig is None else save_figure(fig, out / "worst_cases.png", dpi=100)


__all__ = ["write_tables", "write_plots", "write_montage", "worst_case_slice", "CASE_COLUMNS",
           "dsc_figure", "montage_figure", "sensitivity_figure", "short_label"]
