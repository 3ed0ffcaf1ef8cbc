"""Table nodes: the list of placed tumors, and any list of rows from the engine's JSON.

Columns are declared once (name, type, unit) and rows are plain dicts, so the interactive
module, the trainer's "Apply" and "Evaluate" panels all fill tables the same way.

Example::

    table = new_table(scene, "Tumors", TUMOR_COLUMNS)
    append_rows(table, TUMOR_COLUMNS, [tumor_row(1, report)])
"""
from __future__ import annotations

from typing import Any, Iterable, Mapping, Sequence

import slicer
import vtk

#: (column name, "string" | "double" | "int", unit) of the placed-tumors table.
TUMOR_COLUMNS: tuple[tuple[str, str, str], ...] = (
    ("Tumor", "string", ""),
    ("Organ", "string", ""),
    ("Method", "string", ""),
    ("Stage", "string", ""),
    ("Diameter", "double", "mm"),
    ("Requested", "double", "mm"),
    ("R", "double", "mm"),
    ("A", "double", "mm"),
    ("S", "double", "mm"),
    ("Seed", "int", ""),
    ("Quality P", "double", ""),
)

_ARRAYS = {"string": vtk.vtkStringArray, "double": vtk.vtkDoubleArray, "int": vtk.vtkIntArray}


def new_table(scene: slicer.vtkMRMLScene, name: str,
              columns: Sequence[tuple[str, str, str]]) -> slicer.vtkMRMLTableNode:
    """A new table node with typed, unit-labelled, empty columns."""
    table = scene.AddNewNodeByClass("vtkMRMLTableNode", name)
    for column_name, kind, unit in columns:
        array = _ARRAYS[kind]()
        array.SetName(column_name)
        table.GetTable().AddColumn(array)
        if unit:
            table.SetColumnUnitLabel(column_name, unit)
    return table


def append_rows(table: slicer.vtkMRMLTableNode, columns: Sequence[tuple[str, str, str]],
                rows: Iterable[Mapping[str, Any]]) -> int:
    """Append rows (dicts keyed by column name; missing or None cells stay empty / NaN).
    Returns the number of rows added."""
    added = 0
    for row in rows:
        index = table.AddEmptyRow()
        for col, (column_name, kind, _unit) in enumerate(columns):
            value = row.get(column_name)
            if value is None:
                if kind == "double":
                    table.GetTable().SetValue(index, col, vtk.vtkVariant(float("nan")))
                continue
            table.SetCellText(index, col, _format_cell(value, kind))
        added += 1
    table.GetTable().Modified()
    table.Modified()
    return added


def remove_last_rows(table: slicer.vtkMRMLTableNode, count: int) -> None:
    """Drop the last ``count`` rows (undo of the last placement)."""
    data = table.GetTable()
    for _ in range(min(count, data.GetNumberOfRows())):
        data.RemoveRow(data.GetNumberOfRows() - 1)
    data.Modified()
    table.Modified()


def clear_rows(table: slicer.vtkMRMLTableNode) -> None:
    remove_last_rows(table, table.GetTable().GetNumberOfRows())


def column_values(table: slicer.vtkMRMLTableNode, column_name: str) -> list[str]:
    """The cells of one column as text (for tests and for display)."""
    data = table.GetTable()
    col = data.GetColumnByName(column_name)
    if col is None:
        raise KeyError(f"table '{table.GetName()}' has no column '{column_name}'")
    return [col.GetVariantValue(r).ToString() for r in range(data.GetNumberOfRows())]


def _format_cell(value: Any, kind: str) -> str:
    if kind == "double":
        return f"{float(value):.4g}"
    if kind == "int":
        return str(int(value))
    return str(value)


def first_value(report: Mapping[str, Any], *keys: str) -> Any:
    """The first of ``keys`` present (not None) in ``report``; dotted keys look into dicts."""
    for key in keys:
        value: Any = report
        for part in key.split("."):
            value = value.get(part) if isinstance(value, Mapping) else None
        if value is not None:
            return value
    return None


def tumor_row(label: str, report: Mapping[str, Any]) -> dict[str, Any]:
    """One row of the placed-tumors table from an engine report (one tumor)."""
    centre = first_value(report, "centroid_ras", "center_placed_ras") or [None] * 3
    return {
        "Tumor": label,
        "Organ": first_value(report, "organ", "spec.organ"),
        "Method": first_value(report, "method", "spec.method"),
        "Stage": first_value(report, "stage", "spec.stage"),
        "Diameter": first_value(report, "equivalent_diameter_mm", "diameter_measured_mm",
                                "measured.equivalent_diameter_mm", "measured_diameter_mm"),
        "Requested": first_value(report, "diameter_requested_mm", "requested_diameter_mm",
                                 "diameter_mm", "spec.diameter_mm"),
        "R": centre[0], "A": centre[1], "S": centre[2],
        "Seed": first_value(report, "seed", "spec.seed"),
        "Quality P": first_value(report, "quality_p", "quality.score"),
    }
