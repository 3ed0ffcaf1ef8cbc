"""The cellular automaton behind the ``cellular`` geometry (methods.md 2): ``engine`` (torch
growth rules, CPU and CUDA), ``grid`` (the isotropic cell grid and its link to the scan's ROI),
``growth`` (one tumor's run: seeds, steps, necrosis, read-outs)."""
