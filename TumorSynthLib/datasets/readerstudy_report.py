"""Files of ``readerstudy score``: ``scores.csv`` (one row per reader x positive convention x
group), ``agreement.csv`` (Fleiss' kappa), ``readers.csv`` (answers, mean confidence, median
reading time, share of synthetic cases called real with its interval), ``scores.json`` (all of
it) and ``scores.png`` (sensitivity, specificity and accuracy with 95 % Wilson intervals per
reader, for both conventions, and accuracy per organ and size group).
"""
from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

from ..core.files import write_json_atomic, write_text_atomic
from .readerstudy_score import SCORE_COLUMNS

READER_COLUMNS = ("reader", "answered", "mean_confidence", "median_reading_time_s",
                  "synthetic_called_real", "synthetic_called_real_lo", "synthetic_called_real_hi")


def _csv(columns: tuple[str, ...], rows: list[dict[str, Any]]) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(columns)
    for row in rows:
        writer.writerow(["" if row.get(c) is None else (f"{row[c]:.4f}" if isinstance(row[c], float) else row[c])
                         for c in columns])
    return buf.getvalue()


def write_score_files(out: str | Path, scores: dict[str, Any], sources: dict[str, Any]) -> dict[str, Path]:
    """Write the tables, the JSON and the figure into ``out`` (created); returns their paths."""
    out = Path(out).expanduser()
    out.mkdir(parents=True, exist_ok=True)
    readers = []
    for name, info in sorted(scores["readers"].items()):
        p, lo, hi = info["synthetic_called_real"]
        readers.append({"reader": name, "answered": info["answered"], "mean_confidence": info["mean_confidence"],
                        "median_reading_time_s": info["median_reading_time_s"], "synthetic_called_real": p,
                        "synthetic_called_real_lo": lo, "synthetic_called_real_hi": hi})
    agreement = scores["agreement"]
    paths = {
        "scores": write_text_atomic(out / "scores.csv", _csv(SCORE_COLUMNS, scores["rows"])),
        "agreement": write_text_atomic(out / "agreement.csv", _csv(
            ("fleiss_kappa", "n_readers", "n_cases", "categories"),
            [{**agreement, "categories": "/".join(agreement["categories"])}])),
        "readers": write_text_atomic(out / "readers.csv", _csv(READER_COLUMNS, readers)),
        "json": write_json_atomic(out / "scores.json", {**scores, "sources": sources}),
    }
    paths["figure"] = write_figure(out / "scores.png", scores)
    return paths


def write_figure(path: Path, scores: dict[str, Any]) -> Path:
    """Bars with 95 % Wilson intervals: one panel per positive convention (all cases), one
    panel of accuracy per organ / size group."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = scores["rows"]
    readers = list(dict.fromkeys(r["reader"] for r in rows))
    groups = [g for g in dict.fromkeys(r["group"] for r in rows) if g != "all"]
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.6), gridspec_kw={"width_ratios": [1, 1, 1.6]})
    metrics = ("sensitivity", "specificity", "accuracy")
    width = 0.8 / max(1, len(readers))
    for ax, positive in zip(axes[:2], ("real", "synthetic")):
        for n, reader in enumerate(readers):
            row = next(r for r in rows if r["reader"] == reader and r["positive"] == positive and r["group"] == "all")
            _bars(ax, [n * width + m for m in range(3)], [row.get(k) for k in metrics],
                   [row.get(f"{k}_lo") for k in metrics], [row.get(f"{k}_hi") for k in metrics], width, reader)
        ax.set_xticks([m + 0.4 - width / 2 for m in range(3)], metrics)
        ax.set_title(f"positives = {positive}")
    ax = axes[2]
    for n, reader in enumerate(readers):
        picked = [next(r for r in rows if r["reader"] == reader and r["positive"] == "real" and r["group"] == g)
                  for g in groups]
        _bars(ax, [n * width + m for m in range(len(groups))], [r["accuracy"] for r in picked],
              [r["accuracy_lo"] for r in picked], [r["accuracy_hi"] for r in picked], width, reader)
    ax.set_xticks([m + 0.4 - width / 2 for m in range(len(groups))], groups, rotation=30, ha="right")
    ax.set_title("accuracy by organ and lesion size")
    for a in axes:
        a.set_ylim(0, 1.05)
        a.axhline(0.5, color="0.6", lw=0.8, ls="--")
    axes[0].set_ylabel("proportion (95 % Wilson interval)")
    axes[2].legend(fontsize=8, loc="lower right")
    kappa = scores["agreement"]["fleiss_kappa"]
    fig.suptitle(f"Visual Turing test: {scores['n_cases']} cases ({scores['n_real']} real, "
                 f"{scores['n_synthetic']} synthetic); Fleiss' kappa "
                 + ("n/a" if kappa is None else f"{kappa:.2f}") + f"; unsure: {scores['unsure']}")
    fig.tight_layout()
    fig.savefig(path, dpi=100, metadata={"Software": None})
    plt.close(fig)
    return path


def _bars(ax: Any, xs: list[float], values: list[Any], los: list[Any], his: list[Any], width: float,
          label: str) -> None:
    vals = [0.0 if v is None else v for v in values]
    err = [[0.0 if v is None or lo is None else v - lo for v, lo in zip(values, los)],
           [0.0 if v is None or hi is None else hi - v for v, hi in zip(values, his)]]
    ax.bar(xs, vals, width=width, yerr=err, capsize=2, label=label)


__all__ = ["write_score_files", "write_figure", "READER_COLUMNS"]
