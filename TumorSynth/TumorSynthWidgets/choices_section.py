"""The TumorSynth module's tumor choices: organ, stage, method and lesion combo boxes filled from
the engine catalogue, the organ segment list, the method availability and the diameter range
(Slicer only).

Kept apart from ``TumorSynth.py`` so that each file has one job; what the choices are comes from
``TumorSynthSlicer.catalogue_logic`` (tested headless), this file only shows them.
"""
from slicer.i18n import tr as _

from .parameter_combos import ParameterCombos


class TumorChoices:
    """Keeps the panel's choice widgets and the parameter node in step. ``ui`` is the panel's
    widgets, ``logic`` the module logic, ``parameterNode`` a callable returning the current
    parameter node (or None)."""

    def __init__(self, ui, logic, parameterNode) -> None:
        self.ui, self.logic, self.parameterNode = ui, logic, parameterNode
        self.combos = ParameterCombos(((ui.organComboBox, "organ"), (ui.stageComboBox, "stage"),
                                       (ui.methodComboBox, "method"), (ui.lesionComboBox, "lesion")),
                                      parameterNode)

    def connect(self) -> None:
        """Fill the combo boxes and write the user's picks into the parameter node."""
        self.fillFromEngine()
        self.combos.connect()
        self.ui.organSegmentComboBox.currentIndexChanged.connect(lambda index: self.onOrganSegmentChanged())

    def fillFromEngine(self) -> None:
        """Organs, stages and methods as the engine catalogue lists them (nothing hard-coded)."""
        try:
            catalogue = self.logic.catalogue()
        except Exception as exc:   # no engine yet: the panel says how to install it
            self.ui.dependencyStatusLabel.text = str(exc)
            return
        lib = self.logic.lib().catalogue
        self.combos.fill({"organ": lib.panel_organs(catalogue), "stage": lib.panel_stages(catalogue),
                          "method": list(lib.panel_methods(catalogue)), "lesion": lib.panel_lesions(catalogue)})

    def show(self) -> None:
        """Select each combo box's entry for the parameter node's value (no signals)."""
        self.combos.show()

    def updateMethodAvailability(self) -> None:
        """Grey out the methods whose dependencies are missing, with the reason as tool tip."""
        try:
            availability = self.logic.methodAvailability()
        except Exception as exc:
            self.ui.dependencyStatusLabel.text = str(exc)
            return
        model = self.ui.methodComboBox.model()
        for row, name in enumerate(availability):
            usable, reason = availability.get(name, (False, _("unknown method")))
            item = model.item(row) if hasattr(model, "item") and row < self.ui.methodComboBox.count else None
            if item is not None:
                item.setEnabled(usable)
                item.setToolTip(reason)
        missing = [r for ok, r in availability.values() if not ok and "dependencies" in r]
        self.ui.dependencyStatusLabel.text = missing[0] if missing else _("All dependencies are installed.")

    def updateDiameterRange(self) -> None:
        """The diameter slider spans the stage's range for the organ (mm)."""
        p = self.parameterNode()
        if not p:
            return
        lo, hi = self.logic.diameterRange(p.stage, p.organ)
        self.ui.diameterSliderWidget.minimum, self.ui.diameterSliderWidget.maximum = lo, hi
        if not lo <= p.diameterMm <= hi:
            p.diameterMm = round((lo * hi) ** 0.5, 1)

    def onOrganSourceChanged(self) -> None:
        """List the segments of the chosen organ segmentation (keeping the chosen one)."""
        combo = self.ui.organSegmentComboBox
        combo.blockSignals(True)
        combo.clear()
        p = self.parameterNode()
        for segmentId, name in self.logic.organSegments(p.organSegmentation if p else None):
            combo.addItem(name, segmentId)
        combo.enabled = combo.count > 0
        index = combo.findData(p.organSegmentId) if p else -1
        combo.setCurrentIndex(max(index, 0) if combo.count else -1)
        combo.blockSignals(False)
        self.onOrganSegmentChanged()

    def onOrganSegmentChanged(self) -> None:
        """Record the chosen segment and, when its name or terminology says, the organ."""
        p = self.parameterNode()
        if not p:
            return
        combo = self.ui.organSegmentComboBox
        segmentId = combo.itemData(combo.currentIndex) if combo.currentIndex >= 0 else ""
        p.organSegmentId = segmentId or ""
        organ = self.logic.guessOrgan(p.organSegmentation, p.organSegmentId)
        if organ:
            p.organ = organ
