"""Slicer-side logic of the TumorSynth extension, testable against ``slicer-core``.

Every ``*_logic.py`` here imports only the standard library, ``slicer`` (MRML), ``vtk`` and
``numpy`` at file scope, so the same code runs inside 3D Slicer and in plain pytest with the
``slicer-core`` wheel. Qt, ctk and ``slicer.app`` belong to the module files
(``TumorSynth.py``, ``TumorSynthTrainer.py``), which are thin wrappers around this package.
The engine (``TumorSynthLib``) is imported lazily inside the functions that call it.
"""
