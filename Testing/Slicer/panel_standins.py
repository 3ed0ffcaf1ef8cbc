"""Stand-ins for the Qt widgets the panel sections (``TumorSynthWidgets``) use, so that their
logic runs headless: only the calls the sections make, with Qt's behaviour for them."""
from __future__ import annotations

from types import SimpleNamespace
from typing import Any


class Combo:
    """A combo box: entries with optional data, a current index, a signal, blocked signals,
    and a model whose items can be disabled with a tool tip."""

    def __init__(self) -> None:
        self.items: list[tuple[str, Any]] = []
        self.currentIndex, self.blocked, self.enabled, self.slots = -1, False, True, []
        self.currentIndexChanged = SimpleNamespace(connect=self.slots.append)
        self.rows: list[SimpleNamespace] = []

    @property
    def count(self) -> int:
        return len(self.items)

    @property
    def currentText(self) -> str:
        return self.items[self.currentIndex][0] if self.currentIndex >= 0 else ""

    def blockSignals(self, on: bool) -> None:
        self.blocked = on

    def clear(self) -> None:
        self.items, self.rows, self.currentIndex = [], [], -1

    def addItem(self, text: str, data: Any = None) -> None:
        self.items.append((text, data))
        self.rows.append(SimpleNamespace(enabled=True, toolTip="", setEnabled=None, setToolTip=None))
        row = self.rows[-1]
        row.setEnabled = lambda on, r=row: setattr(r, "enabled", on)
        row.setToolTip = lambda text, r=row: setattr(r, "toolTip", text)
        self.currentIndex = max(self.currentIndex, 0)

    def itemData(self, index: int) -> Any:
        return self.items[index][1]

    def findText(self, text: str) -> int:
        return next((i for i, (t, _d) in enumerate(self.items) if t == text), -1)

    def findData(self, data: Any) -> int:
        return next((i for i, (_t, d) in enumerate(self.items) if d == data), -1)

    def setCurrentIndex(self, index: int) -> None:
        self.currentIndex = index
        if not self.blocked:
            for slot in self.slots:
                slot(index)

    def model(self) -> SimpleNamespace:
        return SimpleNamespace(item=lambda row: self.rows[row])
