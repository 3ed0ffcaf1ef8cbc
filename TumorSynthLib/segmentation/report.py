"""Files written by ``tumorsynth evaluate``: CSV, JSON and PNG figures.

``cases.csv`` (one row per case), ``tumors.csv`` (one row per reference tumor and per predicted
component), ``summary.json`` (overall figures and every case), ``sensitivity_by_size.png``,
``dsc_per_case.png`` and ``worst_cases.png`` (axial slices through the lowest-DSC cases:
reference tumor in green, predicted tumor in red, over the CT when it was given).
"""
from __future__ import annotations

import csv
import math
from pathlib import Path
from typing import Any

import numpy as np

from ..core.files import write_json_atomic
from .metrics import SIZE_BUCKETS

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
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "cases.csv", "w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=CASE_COLUMNS, extrasaction="ignore")
        writer.writeheader()
        for case in cases:
            writer.writerow({k: _csv_value(case[k]) for k in CASE_COLUMNS})
    with open(out / "tumors.csv", "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(("case_id", "kind", "id", "diameter_mm", "volume_ml", "bucket", "detected", "false_positive"))
        for case in cases:
            for t in case["tumors"]:
                writer.writerow((case["case_id"], "reference", t["id"], f"{t['diameter_mm']:.2f}",
                                 f"{t['volume_ml']:.4f}", t["bucket"], int(t["detected"]), ""))
            for t in case["predicted_tumors"]:
                writer.writerow((case["case_id"], "predicted", t["id"], f"{t['diameter_mm']:.2f}",
                                 f"{t['volume_ml']:.4f}", t["bucket"], "", int(t["false_positive"])))
    payload = {"summary": summary, "cases": cases}
    write_json_atomic(out / "summary.json", _public(payload))
    return [out / "cases.csv", out / "tumors.csv", out / "summary.json"]


def _csv_value(value: Any) -> Any:
    if isinstance(value, float):
        return "" if not math.isfinite(value) else f"{value:.4f}"
    return value


def write_plots(out: Path, cases: list[dict[str, Any]], summary: dict[str, Any]) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    paths = []
    names = [b[0] for b in SIZE_BUCKETS]
    sens = [summary["by_size"][n]["sensitivity"] for n in names]
    counts = [summary["by_size"][n]["n_tumors"] for n in names]
    fig, ax = plt.subplots(figsize=(5, 3.5))
    ax.bar(names, [s if s is not None else 0.0 for s in sens], color="tab:blue")
    for x, (s, n) in enumerate(zip(sens, counts)):
        ax.text(x, (s or 0.0) + 0.02, f"n={n}" if s is not None else "none", ha="center", fontsize=8)
    ax.set(ylim=(0, 1.1), xlabel="reference tumor diameter (mm)", ylabel="sensitivity",
           title="Tumor detection by size")
    fig.tight_layout()
    paths.append(out / "sensitivity_by_size.png")
    fig.savefig(paths[-1], dpi=100)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(max(4, 0.35 * len(cases) + 2), 3.5))
    ids = [c["case_id"] for c in cases]
    dsc = [c["tumor_dsc"] if np.isfinite(c["tumor_dsc"]) else 0.0 for c in cases]
    ax.bar(range(len(ids)), dsc, color="tab:orange")
    ax.set_xticks(range(len(ids)), ids, rotation=60, ha="right", fontsize=7)
    ax.set(ylim=(0, 1), ylabel="tumor DSC", title="Tumor DSC per case (0 drawn for cases without tumor)")
    fig.tight_layout()
    paths.append(out / "dsc_per_case.png")
    fig.savefig(paths[-1], dpi=100)
    plt.close(fig)
    return paths


def worst_case_slice(pred: np.ndarray, ref: np.ndarray, image: np.ndarray | None) -> dict[str, np.ndarray]:
    """The axial (last-axis) slice with the most reference tumor (else predicted tumor, else
    organ): 2D arrays for the montage."""
    for mask in (ref == 2, pred == 2, ref >= 1):
        area = mask.sum(axis=(0, 1))
        if area.any():
            k = int(np.argmax(area))
            break
    else:
        k = ref.shape[2] // 2
    return {"ref": ref[:, :, k], "pred": pred[:, :, k],
            "image": None if image is None else np.asarray(image[:, :, k], dtype=np.float32)}


def write_montage(out: Path, cases: list[dict[str, Any]], n: int = 6) -> Path | None:
    """Slices of the ``n`` cases with the lowest tumor DSC (cases carry ``_slice``)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ranked = sorted((c for c in cases if "_slice" in c),
                    key=lambda c: c["tumor_dsc"] if np.isfinite(c["tumor_dsc"]) else 2.0)[:n]
    if not ranked:
        return None
    fig, axes = plt.subplots(1, len(ranked), figsize=(3 * len(ranked), 3.2), squeeze=False)
    for ax, case in zip(axes[0], ranked):
        s = case["_slice"]
        base = s["image"] if s["image"] is not None else (s["ref"] >= 1).astype(np.float32) * 0.3
        vmin, vmax = (-175, 250) if s["image"] is not None else (0, 1)
        ax.imshow(base.T, cmap="gray", origin="lower", vmin=vmin, vmax=vmax)
        for mask, color in ((s["ref"] == 2, "lime"), (s["pred"] == 2, "red")):
            if mask.any():
                ax.contour(mask.T.astype(float), levels=[0.5], colors=color, linewidths=1)
        dsc = case["tumor_dsc"]
        ax.set_title(f"{case['case_id']}\nDSC {dsc:.2f}" if np.isfinite(dsc) else f"{case['case_id']}\nno ref. tumor",
                     fontsize=8)
        ax.axis("off")
    fig.suptitle("Worst cases: reference tumor green, prediction red", fontsize=9)
    fig.tight_layout()
    path = out / "worst_cases.png"
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


__all__ = ["write_tables", "write_plots", "write_montage", "worst_case_slice", "CASE_COLUMNS"]
