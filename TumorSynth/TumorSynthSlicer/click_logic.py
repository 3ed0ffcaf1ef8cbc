"""The placement click: the hidden markups node that receives it, the one-job-at-a-time gate,
and the keyboard shortcut that toggles place mode.

Both front ends use this: the Slicer module (a ``qSlicerMarkupsPlaceWidget`` on the node) and
the web front end (``TumorSynthWeb``: trame-slicer views on the same MRML).

- The click node is hidden from editors and never saved with the scene
  (``SetSaveWithScene(False)``): a scene saved after placing tumors must not carry it.
- ``ClickGate``: while a tumor is being made (a live growth, or a placement running off the
  main thread) further clicks are refused with a message instead of starting a second job,
  which would leave a "(forming)" segment behind. Place mode is switched off while busy.
- ``PLACE_SHORTCUT`` must not be one of Slicer's own shortcuts (``SLICER_SHORTCUTS``, read from
  Slicer's sources: the Markups toolbar takes Ctrl+Shift+A / T / Space); a shortcut defined
  twice in one window fires neither (Qt reports it as ambiguous).

Example::

    node = click_node(scene)                      # find or create, configured
    gate = ClickGate()
    if gate.accept():                             # False (and gate.message) while busy
        gate.start("growth")
        ...
        gate.finish()
"""
from __future__ import annotations

from typing import Any

CLICK_NODE_NAME = "TumorSynth click"

#: Toggles place mode in the TumorSynth module. "G" as in grow; free in Slicer (see below).
PLACE_SHORTCUT = "Ctrl+Shift+G"

#: Application-wide shortcuts of Slicer (5.8 - 5.13) with where they are defined, so that the
#: module's own shortcut can be checked against them. Module-specific single keys (Segment
#: Editor's 1-0, q, w, z, y, ...) are active only inside their module and not listed.
SLICER_SHORTCUTS = {
    "Ctrl+Shift+A": "Modules/Loadable/Markups/Widgets/qMRMLMarkupsToolBar.cxx (create node)",
    "Ctrl+Shift+T": "Modules/Loadable/Markups/Widgets/qMRMLMarkupsToolBar.cxx (toggle persistence)",
    "Ctrl+Shift+Space": "Modules/Loadable/Markups/Widgets/qMRMLMarkupsToolBar.cxx (place point)",
    "Ctrl+O": "Base/QTApp/Resources/UI/qSlicerMainWindow.ui (add data)",
    "Ctrl+S": "Base/QTApp/Resources/UI/qSlicerMainWindow.ui (save)",
    "Ctrl+W": "Base/QTApp/Resources/UI/qSlicerMainWindow.ui (close scene)",
    "Ctrl+Z": "Base/QTApp/Resources/UI/qSlicerMainWindow.ui (undo)",
    "Ctrl+Y": "Base/QTApp/Resources/UI/qSlicerMainWindow.ui (redo)",
    "Ctrl+X": "Base/QTApp/Resources/UI/qSlicerMainWindow.ui (cut)",
    "Ctrl+C": "Base/QTApp/Resources/UI/qSlicerMainWindow.ui (copy)",
    "Ctrl+V": "Base/QTApp/Resources/UI/qSlicerMainWindow.ui (paste)",
    "Ctrl+H": "Base/QTApp/Resources/UI/qSlicerMainWindow.ui (home module)",
    "Ctrl+0": "Base/QTApp/Resources/UI/qSlicerMainWindow.ui (error log)",
    "Ctrl+1": "Docs/user_guide/user_interface.md (application help)",
    "Ctrl+2": "Base/QTApp/Resources/UI/qSlicerMainWindow.ui (application settings)",
    "Ctrl+3": "Docs/user_guide/user_interface.md (Python console)",
    "Ctrl+`": "Docs/user_guide/user_interface.md (Python console)",
    "Ctrl+4": "Base/QTApp/Resources/UI/qSlicerMainWindow.ui (extensions manager)",
    "Ctrl+5": "Base/QTApp/qSlicerMainWindow.cxx (module panel)",
    "Ctrl+6": "Base/QTApp/Resources/UI/qSlicerMainWindow.ui (maximize view)",
    "Ctrl+F": "Docs/user_guide/user_interface.md (find module)",
    "Ctrl+B": "Docs/user_guide/user_interface.md (3D view tilt lock)",
    "Ctrl+G": "Docs/user_guide/user_interface.md (Python console: run script)",
}


def normalize_shortcut(sequence: str) -> str:
    """A key sequence in one spelling: modifiers in Ctrl, Alt, Shift, Meta order, the key
    upper-case ("shift+ctrl+g" -> "Ctrl+Shift+G")."""
    parts = [p.strip() for p in sequence.replace(" ", "").split("+") if p.strip()]
    order = {"ctrl": 0, "alt": 1, "shift": 2, "meta": 3}
    modifiers = sorted((p for p in parts[:-1]), key=lambda p: order.get(p.lower(), 9))
    key = parts[-1]
    key = key.upper() if len(key) == 1 else key[:1].upper() + key[1:].lower()
    return "+".join([m[:1].upper() + m[1:].lower() for m in modifiers] + [key])


def shortcut_conflict(sequence: str) -> str | None:
    """Where Slicer already uses ``sequence`` (None when it is free)."""
    wanted = normalize_shortcut(sequence)
    for taken, where in SLICER_SHORTCUTS.items():
        if normalize_shortcut(taken) == wanted:
            return where
    return None


def configure_click_node(node: Any) -> Any:
    """Make ``node`` the placement click node: one point at most, hidden from node selectors,
    not saved with the scene, shown (the point appears briefly where the user clicked)."""
    node.SetMaximumNumberOfControlPoints(1)
    node.SetHideFromEditors(True)
    node.SetSaveWithScene(False)
    if node.GetDisplayNode() is None:
        node.CreateDefaultDisplayNodes()
    display = node.GetDisplayNode()
    if display is not None:
        display.SetSaveWithScene(False)
    return node


def click_node(scene: Any, name: str = CLICK_NODE_NAME) -> Any:
    """The scene's click node (created and configured on first use)."""
    node = scene.GetFirstNodeByName(name)
    if node is None or not node.IsA("vtkMRMLMarkupsFiducialNode"):
        node = scene.AddNewNodeByClass("vtkMRMLMarkupsFiducialNode", name)
    return configure_click_node(node)


def take_click(node: Any) -> list[float] | None:
    """World RAS (mm) of the last point of ``node``, removing every point; None when empty."""
    count = node.GetNumberOfControlPoints()
    if count == 0:
        return None
    ras = [0.0, 0.0, 0.0]
    node.GetNthControlPointPositionWorld(count - 1, ras)
    node.RemoveAllControlPoints()
    return [float(v) for v in ras]


class ClickGate:
    """One tumor job at a time: ``accept()`` is False while a job runs (``message`` says why)."""

    BUSY_MESSAGE = "A tumor is still forming: stop it or wait before the next click."

    def __init__(self) -> None:
        self.job: str | None = None
        self.refused = 0

    @property
    def busy(self) -> bool:
        return self.job is not None

    @property
    def message(self) -> str:
        return self.BUSY_MESSAGE if self.busy else ""

    def accept(self) -> bool:
        """True when a click may start a job; counts refused clicks."""
        if self.busy:
            self.refused += 1
            return False
        return True

    def start(self, job: str) -> None:
        """Mark ``job`` ("placement", "growth", ...) as running; raises if one already is."""
        if self.busy:
            raise RuntimeError(self.BUSY_MESSAGE)
        self.job = job

    def finish(self) -> None:
        self.job = None


__all__ = ["CLICK_NODE_NAME", "ClickGate", "PLACE_SHORTCUT", "SLICER_SHORTCUTS", "click_node",
           "configure_click_node", "normalize_shortcut", "shortcut_conflict", "take_click"]
