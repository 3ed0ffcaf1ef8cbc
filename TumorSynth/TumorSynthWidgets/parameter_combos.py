"""Combo boxes whose current text is a field of a module's parameter node (Slicer only): shared
by the TumorSynth panel (organ, stage, method, lesion) and the Trainer (organ, architecture,
method), whose entries come from the engine at run time, not from the .ui file."""


class ParameterCombos:
    """``pairs``: (combo box, parameter name) pairs; ``parameterNode``: a callable returning the
    current parameter node (or None). ``fill`` lists the entries, ``connect`` writes the user's
    pick into the node, ``show`` selects the node's value in each box."""

    def __init__(self, pairs, parameterNode) -> None:
        self.pairs, self.parameterNode = tuple(pairs), parameterNode

    def connect(self) -> None:
        for combo, name in self.pairs:
            combo.currentIndexChanged.connect(lambda index, c=combo, n=name: self.onChanged(c, n))

    def fill(self, choices) -> None:
        """Replace each box's entries with ``choices[name]`` (no signals)."""
        for combo, name in self.pairs:
            combo.blockSignals(True)
            combo.clear()
            for value in choices[name]:
                combo.addItem(value)
            combo.blockSignals(False)

    def onChanged(self, combo, name) -> None:
        p = self.parameterNode()
        if p and combo.currentText:
            setattr(p, name, combo.currentText)

    def show(self) -> None:
        """Select each box's entry for the parameter node's value (no signals)."""
        p = self.parameterNode()
        if not p:
            return
        for combo, name in self.pairs:
            index = combo.findText(getattr(p, name))
            if index >= 0 and index != combo.currentIndex:
                combo.blockSignals(True)
                combo.setCurrentIndex(index)
                combo.blockSignals(False)
