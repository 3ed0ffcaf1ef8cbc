"""What a background run has reported so far, for a progress bar, an ETA and a loss curve.

``RunProgress.update(event)`` folds the CLI's JSON-lines events into plain fields the panel
shows; ``CurveTables`` mirrors the loss and validation DSC into table nodes plotted as a
Slicer chart (headless-safe: plain MRML nodes).

Example::

    progress = RunProgress()
    runner = ProcessRunner(schedule, onEvent=progress.update)
    ...
    bar.value = progress.percent;  label.text = progress.etaText()
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import slicer
import vtk


@dataclass
class RunProgress:
    """State of one run, built from its events."""

    status: str = "idle"            # idle | running | done | error | cancelled
    step: int = 0
    total: int | None = None
    elapsedS: float | None = None
    etaS: float | None = None
    losses: list[tuple[int, float]] = field(default_factory=list)
    validations: list[tuple[int, dict[str, Any]]] = field(default_factory=list)
    checkpoint: str | None = None
    error: str | None = None
    warnings: list[str] = field(default_factory=list)
    last: dict[str, Any] = field(default_factory=dict)
    events: int = 0

    def update(self, event: dict[str, Any]) -> None:
        """Fold one event (a dict with at least ``"event"``) into the state."""
        kind = event.get("event")
        self.events += 1
        self.last = event
        self.status = {"start": "running", "done": "done", "error": "error"}.get(kind, self.status)
        if self.status == "idle":
            self.status = "running"
        self.step = int(event.get("step") or self.step)
        self.total = _int_or(event.get("total"), self.total)
        self.elapsedS = _float_or(event.get("elapsed_s"), self.elapsedS)
        self.etaS = _float_or(event.get("eta_s"), self.etaS)
        loss = _float_or(event.get("loss"), None)
        if kind == "progress" and loss is not None:
            self.losses.append((self.step, loss))
        if kind == "validation":
            self.validations.append((self.step, dict(event.get("metrics") or {})))
        if kind == "checkpoint":
            self.checkpoint = event.get("path") or event.get("checkpoint") or self.checkpoint
        if kind == "warning":
            self.warnings.append(str(event.get("message") or ""))
        if kind == "error":
            self.error = str(event.get("message") or event.get("error") or "the run failed")
        if kind == "done":
            self.etaS = 0.0

    def finished(self, returncode: int, cancelled: bool) -> None:
        """Record how the process ended (called from the runner's ``onFinished``)."""
        if cancelled:
            self.status = "cancelled"
        elif returncode != 0 and self.status != "error":
            self.status = "error"
            self.error = self.error or f"the process ended with exit code {returncode}"
        elif returncode == 0 and self.status == "running":
            self.status = "done"

    @property
    def fraction(self) -> float | None:
        """Completed fraction in [0, 1], or None while the total is unknown."""
        if self.status == "done":
            return 1.0
        if not self.total:
            return None
        return max(0.0, min(1.0, self.step / self.total))

    @property
    def percent(self) -> int:
        return int(round(100 * (self.fraction or 0.0)))

    def etaText(self) -> str:
        """"ETA 3 min 05 s" while running, the outcome otherwise."""
        if self.status in ("done", "error", "cancelled"):
            return self.status
        if self.etaS is None:
            return "estimating..."
        return "ETA " + format_duration(self.etaS)

    def lastDice(self) -> float | None:
        """The latest validation tumor DSC, if any was reported."""
        for _step, metrics in reversed(self.validations):
            value = dice_of(metrics)
            if value is not None:
                return value
        return None


def dice_of(metrics: dict[str, Any]) -> float | None:
    """The tumor DSC in a validation ``metrics`` dict (the first known key present)."""
    for key in ("tumor_dsc", "dsc_tumor", "dice_tumor", "dsc", "dice"):
        if metrics.get(key) is not None:
            return float(metrics[key])
    return None


def format_duration(seconds: float) -> str:
    """Seconds -> "45 s", "3 min 05 s", "2 h 07 min"."""
    s = max(0, int(math.ceil(seconds)))
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min {s % 60:02d} s"
    return f"{s // 3600} h {(s % 3600) // 60:02d} min"


class CurveTables:
    """Loss and validation DSC as table nodes, plotted in one chart node."""

    def __init__(self, scene: slicer.vtkMRMLScene, name: str = "TumorSynth training") -> None:
        self.loss = _xy_table(scene, f"{name} loss", "step", "loss")
        self.dice = _xy_table(scene, f"{name} validation", "step", "tumor DSC")
        self.chart = scene.AddNewNodeByClass("vtkMRMLPlotChartNode", f"{name} chart")
        self.chart.SetTitle(name)
        self.chart.SetXAxisTitle("step")
        self.chart.SetYAxisTitle("loss / DSC")
        for table, column in ((self.loss, "loss"), (self.dice, "tumor DSC")):
            series = scene.AddNewNodeByClass("vtkMRMLPlotSeriesNode", f"{name} {column}")
            series.SetAndObserveTableNodeID(table.GetID())
            series.SetXColumnName("step")
            series.SetYColumnName(column)
            series.SetPlotType(slicer.vtkMRMLPlotSeriesNode.PlotTypeScatter)
            self.chart.AddAndObservePlotSeriesNodeID(series.GetID())

    def sync(self, progress: RunProgress) -> None:
        """Append the points of ``progress`` not yet in the tables (by step)."""
        _append_xy(self.loss, progress.losses)
        dice = [(step, dice_of(metrics)) for step, metrics in progress.validations]
        _append_xy(self.dice, [(step, value) for step, value in dice if value is not None])


def _xy_table(scene: slicer.vtkMRMLScene, name: str, x: str, y: str) -> slicer.vtkMRMLTableNode:
    table = scene.AddNewNodeByClass("vtkMRMLTableNode", name)
    for column in (x, y):
        array = vtk.vtkDoubleArray()
        array.SetName(column)
        table.GetTable().AddColumn(array)
    return table


def _append_xy(table: slicer.vtkMRMLTableNode, points: list[tuple[int, float]]) -> None:
    """Append the points whose step is beyond the table's last one (a resumed run starts a
    new progress object, so list positions cannot be used)."""
    data = table.GetTable()
    rows = data.GetNumberOfRows()
    last = data.GetValue(rows - 1, 0).ToDouble() if rows else float("-inf")
    for step, value in (p for p in points if p[0] > last):
        row = data.InsertNextBlankRow()
        data.SetValue(row, 0, vtk.vtkVariant(float(step)))
        data.SetValue(row, 1, vtk.vtkVariant(float(value)))
    data.Modified()
    table.Modified()


def _int_or(value: Any, default: int | None) -> int | None:
    try:
        return int(value) if value is not None else default
    except (TypeError, ValueError):
        return default


def _float_or(value: Any, default: float | None) -> float | None:
    try:
        return float(value) if value is not None else default
    except (TypeError, ValueError):
        return default
