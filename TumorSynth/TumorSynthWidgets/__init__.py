"""Qt sections of the TumorSynth modules (need Slicer's GUI; the headless logic is TumorSynthSlicer)."""
