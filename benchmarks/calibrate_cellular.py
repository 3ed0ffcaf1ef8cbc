"""Measure the size calibration of the ``cellular`` automaton and write it to
``TumorSynthLib/resources/cellular_calibration.json``.

Experiment: one seed (population 5) in the middle of a homogeneous grid of each tissue density
level (invasion acceptance 1.0 / 0.3 / 0.1), grown step by step with the library's own engine;
the equivalent diameter ``(6 n / pi)^(1/3)`` in cells is recorded after every step and averaged
over ``--repeats`` seeds, until the mean reaches ``--max-diameter`` cells (or ``--max-steps``).
The method reads the table to predict how many steps a tumor of a given diameter in cells needs
(progress and step budget); the run itself stops on the measured diameter.

Run: ``python benchmarks/calibrate_cellular.py`` (about a minute on a 2-core CPU).
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from TumorSynthLib.synthesis.cellular_engine import (
    ACCEPTANCE,
    CellularAutomaton,
    equivalent_diameter_cells,
)

OUT = Path(__file__).resolve().parents[1] / "TumorSynthLib" / "resources" / "cellular_calibration.json"


def grow_curve(grid: int, acceptance: float, seed: int, max_diameter: float, max_steps: int) -> list[float]:
    """Equivalent diameter (cells) after each step of one seed, until ``max_diameter``."""
    state = np.zeros((grid,) * 3, dtype=np.int8)
    ca = CellularAutomaton(state, np.full(state.shape, acceptance, np.float32), seed=seed, device="cpu")
    ca.seed(np.array([[grid // 2] * 3]))
    curve = []
    for _ in range(max_steps):
        curve.append(equivalent_diameter_cells(ca.grow()))
        if curve[-1] >= max_diameter:
            break
    return curve


def level_table(acceptance: float, args: argparse.Namespace) -> dict[str, list[float]]:
    """Mean and standard deviation of the diameter per step over the repeats (curves that
    stopped early are held at their last value, which is >= the cap)."""
    curves = [grow_curve(args.grid, acceptance, 1000 * args.seed + r, args.max_diameter, args.max_steps)
              for r in range(args.repeats)]
    n = max(len(c) for c in curves)
    table = np.array([c + [c[-1]] * (n - len(c)) for c in curves])
    mean, std = table.mean(axis=0), table.std(axis=0)
    last = int(np.searchsorted(mean, args.max_diameter)) + 1
    return {"diameter_cells": [round(float(v), 3) for v in mean[:last]],
            "diameter_std_cells": [round(float(v), 3) for v in std[:last]]}


def _format(table: dict) -> str:
    """JSON with one line per key and per curve (readable, small diffs)."""
    levels = table["levels"]
    head = {k: v for k, v in table.items() if k != "levels"}
    lines = ["{"] + [f" {json.dumps(k)}: {json.dumps(v)}," for k, v in head.items()] + [' "levels": {']
    for i, (name, curves) in enumerate(levels.items()):
        inner = ",\n".join(f"   {json.dumps(k)}: {json.dumps(v)}" for k, v in curves.items())
        lines.append(f"  {json.dumps(name)}: {{\n{inner}\n  }}" + ("," if i < len(levels) - 1 else ""))
    return "\n".join(lines + [" }", "}"]) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--grid", type=int, default=81, help="cells per axis of the test grid")
    ap.add_argument("--repeats", type=int, default=8)
    ap.add_argument("--max-diameter", type=float, default=60.0, help="cells")
    ap.add_argument("--max-steps", type=int, default=1500)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args()
    torch.set_num_threads(1)
    t0 = time.perf_counter()
    levels = {}
    for i, acc in enumerate(ACCEPTANCE, start=1):
        levels[str(i)] = level_table(acc, args)
        d = levels[str(i)]["diameter_cells"]
        marks = {s: round(d[s - 1], 1) for s in (25, 50, 100, 200, 400) if s <= len(d)}
        print(f"level {i} (acceptance {acc}): {len(d)} steps to {d[-1]:.1f} cells; diameter at steps {marks}")
    out = {
        "_about": "Equivalent diameter (cells) of one CA seed in homogeneous tissue after step "
                  "1, 2, ... (index 0 = after the first step), mean over repeats; written by "
                  "benchmarks/calibrate_cellular.py with the library's engine.",
        "version": 1, "acceptance": list(ACCEPTANCE), "grid_cells": args.grid,
        "repeats": args.repeats, "seed": args.seed, "levels": levels,
    }
    args.out.write_text(_format(out))
    print(f"wrote {args.out} in {time.perf_counter() - t0:.1f} s")


if __name__ == "__main__":
    main()
