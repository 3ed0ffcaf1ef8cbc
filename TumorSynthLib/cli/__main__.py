"""``python -m TumorSynthLib.cli ...`` (what the Slicer modules start as a subprocess)."""
from . import main

raise SystemExit(main())
