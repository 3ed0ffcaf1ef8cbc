"""The TumorSynth module's "Reader" section (Qt widgets made in code; Slicer only).

Kept apart from ``TumorSynth.py`` so that each file has one job; the node-level work is in
``TumorSynthSlicer.reader_logic`` (tested headless), this file only wires the widgets.
"""
import ctk
import qt
import slicer
from slicer.i18n import tr as _


class ReaderSection:
    """The "Reader" section: a reader works through a blinded study (``readerstudy make``)
    case by case; answers, confidence and reading time go into the reader's answer sheet
    (``TumorSynthSlicer.reader_logic``). The key is never opened. Widgets are made in code."""

    def __init__(self, layout, readerLogic) -> None:
        self.readerLogic = readerLogic
        self.session = None
        box = ctk.ctkCollapsibleButton()
        box.text = _("Reader (visual Turing test)")
        box.collapsed = True
        layout.addWidget(box)
        form = qt.QFormLayout(box)
        self.folderButton = ctk.ctkDirectoryButton()
        self.folderButton.toolTip = _("The study folder written by 'tumorsynth readerstudy make' (never the key).")
        self.folderButton.directoryChanged.connect(lambda path: self.onFolderChanged())
        form.addRow(_("Study folder:"), self.folderButton)
        self.readerCombo = qt.QComboBox()
        form.addRow(_("Reader:"), self.readerCombo)
        self.startButton = qt.QPushButton(_("Start / resume"))
        self.startButton.toolTip = _("Show the first case without an answer on this reader's sheet.")
        self.startButton.clicked.connect(lambda: self.onStart())
        form.addRow(self.startButton)
        self.caseLabel = qt.QLabel()
        form.addRow(_("Case:"), self.caseLabel)
        answers = qt.QHBoxLayout()
        self.answerGroup = qt.QButtonGroup()
        self.answerButtons = {}
        for name, text in (("real", _("Real")), ("synthetic", _("Synthetic")), ("unsure", _("Unsure"))):
            button = qt.QRadioButton(text)
            self.answerGroup.addButton(button)
            self.answerButtons[name] = button
            answers.addWidget(button)
        form.addRow(_("Answer:"), answers)
        self.confidenceSpinBox = qt.QSpinBox()
        self.confidenceSpinBox.setRange(1, 5)
        self.confidenceSpinBox.value = 3
        self.confidenceSpinBox.toolTip = _("1 = a guess ... 5 = certain")
        form.addRow(_("Confidence:"), self.confidenceSpinBox)
        self.saveButton = qt.QPushButton(_("Save answer and show next"))
        self.saveButton.clicked.connect(lambda: self.onSave())
        form.addRow(self.saveButton)
        self.statusLabel = qt.QLabel()
        self.statusLabel.wordWrap = True
        form.addRow(self.statusLabel)
        self.updateState()

    def onFolderChanged(self) -> None:
        self.stop()
        self.readerCombo.clear()
        try:
            for name in self.readerLogic.study_readers(self.folderButton.directory):
                self.readerCombo.addItem(name)
            self.statusLabel.text = ""
        except Exception as exc:
            self.statusLabel.text = str(exc)
        self.updateState()

    def onStart(self) -> None:
        self.stop()
        try:
            self.session = self.readerLogic.ReaderSession(self.folderButton.directory, self.readerCombo.currentText)
            self.statusLabel.text = ""
            self.showNext()
        except Exception as exc:
            self.session = None
            self.statusLabel.text = str(exc)
        self.updateState()

    def onSave(self) -> None:
        answer = next((name for name, button in self.answerButtons.items() if button.checked), None)
        if self.session is None or answer is None:
            self.statusLabel.text = _("Choose real, synthetic or unsure first.")
            return
        try:
            self.session.record(answer, int(self.confidenceSpinBox.value))
            self.showNext()
        except Exception as exc:
            self.statusLabel.text = str(exc)
        self.updateState()

    def showNext(self) -> None:
        self.answerGroup.setExclusive(False)
        for button in self.answerButtons.values():
            button.checked = False
        self.answerGroup.setExclusive(True)
        node = self.session.showNext(slicer.mrmlScene)
        total = len(self.session.order)
        if node is None:
            self.caseLabel.text = _("All {total} cases answered. Thank you.").format(total=total)
            return
        caseId = self.session.currentCaseId
        self.caseLabel.text = _("{case} ({n} of {total})").format(case=caseId, n=self.session.position(caseId), total=total)
        slicer.util.setSliceViewerLayers(background=node, foreground=None, label=None, fit=True)

    def stop(self, removeNodes: bool = True) -> None:
        if self.session is not None and removeNodes:
            self.session.close(slicer.mrmlScene)
        self.session = None
        self.caseLabel.text = ""

    def updateState(self) -> None:
        self.startButton.enabled = self.readerCombo.count > 0
        self.saveButton.enabled = bool(self.session and self.session.currentCaseId)
