"""Speed, memory and pictures of the ``cellular`` method on this machine.

Prints: time of one automaton step per million cells (a typical mid-growth grid and a worst
case where a third of the grid is tumor), its ratio to a copy of the same state array and of a
float32 array of the same size; the total time of one early and one advanced liver tumor on the
default phantom (median of repeats, after a warm-up); peak memory (RSS). Writes a montage PNG per
organ and stage into ``benchmarks/output/`` (git-ignored).

Targets (``specs/methods.md`` section 2): <= 10 ms per step per 10^6 cells, early < 0.2 s,
advanced < 1.5 s. Run: ``python benchmarks/bench_cellular.py [--repeats 3] [--no-png]``.
"""
from __future__ import annotations

import argparse
import resource
import statistics
import time
from pathlib import Path

import numpy as np
import torch

from TumorSynthLib import TumorSpec, synthesize
from TumorSynthLib.phantom import make_abdomen
from TumorSynthLib.synthesis.cellular_engine import CellularAutomaton

OUT = Path(__file__).resolve().parent / "output"
#: Diameters that fit the default phantom's organs at every stage (mm; None = stage default).
STAGE_DIAMETER = {
    ("pancreas", "advanced"): 42.0,
    ("kidney", "advanced"): 50.0,
}


def _timed(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def step_benchmark(side: int = 100, repeats: int = 20) -> None:
    """ms per step per 10^6 cells on a ``side``^3 grid, typical and worst case."""
    torch.set_num_threads(1)
    n = side**3
    acceptance = np.ones((side,) * 3, np.float32)
    typical = CellularAutomaton(np.zeros((side,) * 3, np.int8), acceptance, seed=0, device="cpu")
    typical.seed(np.array([[side // 2] * 3]))
    while typical.count_tumor() < np.pi / 6 * 40**3:     # grown to ~40 cells across
        typical.grow()
    g = np.ogrid[tuple(slice(0, side) for _ in range(3))]
    r2 = sum((gi - side // 2) ** 2 for gi in g)
    worst_state = np.where(r2 < (0.4 * side) ** 2, 10, 0).astype(np.int8)
    worst_state[(r2 >= (0.38 * side) ** 2) & (r2 < (0.4 * side) ** 2)] = 6
    worst = CellularAutomaton(worst_state, acceptance, seed=0, device="cpu")
    worst.grow()
    state = torch.zeros(n, dtype=torch.int8)
    floats = torch.zeros(n, dtype=torch.float32)
    copy_i8 = _timed(lambda: state.clone(), 200) * 1e3
    copy_f32 = _timed(lambda: floats.clone(), 200) * 1e3
    scale = 1e6 / n
    for name, ca in (("typical (tumor ~40 cells across)", typical), ("worst (tumor = 1/3 of grid)", worst)):
        ms = _timed(ca.grow, repeats) * 1e3
        print(f"step, {name}: {ms * scale:.2f} ms per 10^6 cells "
              f"(x{ms / copy_i8:.0f} an int8 copy of the state, x{ms / copy_f32:.1f} a float32 copy)")
    print(f"copy of {side}^3 cells: int8 {copy_i8:.3f} ms, float32 {copy_f32:.3f} ms")


def tumor_benchmark(ct, organs, repeats: int) -> None:
    for stage, d in (("early", 15.0), ("advanced", 80.0)):
        spec = TumorSpec(organ="liver", stage=stage, diameter_mm=d, method="cellular", seed=11)
        synthesize(ct, organs, spec)                          # warm-up (imports, caches)
        results = []
        t = _timed(lambda: results.append(synthesize(ct, organs, spec)), repeats)
        rep = results[-1].reports[0]
        det = rep["details"]
        tm = rep["timing"]
        print(f"liver {stage} {d:g} mm: {t:.3f} s total (placement {tm['prepare_s']:.3f} s, cellular "
              f"render {tm['render_s']:.3f} s, the rest is whole-volume copies and the report); "
              f"{det['steps']} steps + {det['necrosis_steps']} necrosis, grid {det['grid_cells']}^3 "
              f"cells of {det['h_mm']:.2f} mm, measured {rep['diameter_measured_mm']:.1f} mm")


def montages(ct, organs, seed: int) -> None:
    from TumorSynthLib.datasets.preview import write_preview

    OUT.mkdir(parents=True, exist_ok=True)
    for organ in ("liver", "pancreas", "kidney"):
        for stage in ("tiny", "early", "intermediate", "advanced"):
            spec = TumorSpec(organ=organ, stage=stage, diameter_mm=STAGE_DIAMETER.get((organ, stage)),
                             method="cellular", seed=seed)
            res = synthesize(ct, organs, spec)
            rep = res.reports[0]
            path = write_preview(res.image, res.labels, res.reports, OUT / f"cellular_{organ}_{stage}.png",
                                 instances=res.tumor_instances)
            print(f"{path.name}: {rep['diameter_measured_mm']:.1f} mm (target "
                  f"{rep['diameter_target_mm']:.1f}), drop {rep['measured_drop_hu'] or 0:.1f} HU, "
                  f"{rep['details']['steps']} steps, effects {rep['details']['effects']}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--seed", type=int, default=5)
    ap.add_argument("--no-png", action="store_true")
    args = ap.parse_args()
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    step_benchmark()
    ct, organs, _ = make_abdomen(0)
    print(f"phantom {ct.shape} at {np.round(ct.spacing, 2).tolist()} mm")
    rss1 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    tumor_benchmark(ct, organs, args.repeats)
    rss2 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak RSS: {rss0:.0f} MB at start, {rss1:.0f} MB with the phantom, {rss2:.0f} MB after "
          f"the tumors (+{rss2 - rss1:.0f} MB for synthesis)")
    if not args.no_png:
        montages(ct, organs, args.seed)


if __name__ == "__main__":
    main()
