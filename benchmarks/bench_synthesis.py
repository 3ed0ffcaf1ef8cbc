"""Speed of one tumor per call: size classes at 1 mm, ROI-only cost, start-up, stage split.

1. Size classes: the liver of a 256 x 256 x 128 phantom at 1 mm, sampled places, one tumor of
   8 / 16 / 32 / 64 mm per call (stage tiny / early / intermediate / advanced, so the stage's
   effects are drawn as for a user), warm, median of ``--repeats`` calls per method. Targets on
   a quiet machine (synthesis-core issue): handcrafted <= 0.03 / 0.05 / 0.08 / 0.15 s; a 64 mm
   cellular tumor <= 0.7 s. The median CPU seconds per call are printed beside the wall time:
   the engine runs one thread (OpenBLAS included), so on a quiet machine they are equal, and on
   a shared one the CPU figure says what a quiet machine would give.
2. ROI-only cost: one early tumor at a click on the demo phantom vs the same phantom padded with
   air to 8x the voxels (same ``Volume`` objects reused, so the scan analysis is cached), as
   paired ratios (each pair back to back); target median ratio <= 1.25 for both methods.
3. Where the time goes: the median seconds of each stage (from the reports' ``timing``).
4. Start-up: ``import TumorSynthLib`` and import + first tumor in a fresh interpreter.

    python benchmarks/bench_synthesis.py [--repeats 9] [--methods handcrafted,cellular]
"""
from __future__ import annotations

import argparse
import os
import shlex
import statistics
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks.markdown_section import write_section  # noqa: E402
from TumorSynthLib import TumorSpec, synthesize  # noqa: E402
from TumorSynthLib.phantom import make_abdomen  # noqa: E402
from TumorSynthLib.volume import Volume  # noqa: E402

SIZES = ((8.0, "tiny"), (16.0, "early"), (32.0, "intermediate"), (64.0, "advanced"))
TARGETS_S = {"handcrafted": (0.03, 0.05, 0.08, 0.15), "cellular": (None, None, None, 0.7)}
RATIO_TARGET = 1.25

IMPORT_CODE = "import time; t=time.perf_counter(); import TumorSynthLib; print(time.perf_counter()-t)"
FIRST_TUMOR_CODE = """
import time; t=time.perf_counter()
import numpy as np
from TumorSynthLib import TumorSpec, synthesize
from TumorSynthLib.volume import Volume
lab = np.zeros((64, 64, 32), np.uint8); lab[12:52, 12:52, 6:26] = 5
img = np.where(lab == 5, 60.0, -100.0).astype(np.float32)
synthesize(Volume(img, np.eye(4)), Volume(lab, np.eye(4)), TumorSpec(organ="liver", center_voxel=(32, 32, 16), diameter_mm=10))
print(time.perf_counter()-t)
"""


def startup_seconds(code: str, repeats: int = 3) -> float:
    times = []
    for _ in range(repeats):
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
        times.append(float(out.stdout.strip().splitlines()[-1]))
    return statistics.median(times)


def size_classes(method: str, repeats: int) -> list[dict]:
    ct, organs, _ = make_abdomen(0, shape=(256, 256, 128), spacing=(1.0, 1.0, 1.0))
    synthesize(ct, organs, TumorSpec(organ="liver", stage="early", method=method, seed=99))  # warm-up
    rows = []
    for d, stage in SIZES:
        times, cpu, stages = [], [], []
        for seed in range(repeats):
            spec = TumorSpec(organ="liver", stage=stage, diameter_mm=d, method=method, seed=seed)
            t0, c0 = time.perf_counter(), time.process_time()
            res = synthesize(ct, organs, spec)
            times.append(time.perf_counter() - t0)
            cpu.append(time.process_time() - c0)
            stages.append(res.reports[0]["timing"])
        rows.append({"d": d, "stage": stage, "median_s": statistics.median(times), "cpu_s": statistics.median(cpu),
                     "stages": {k: statistics.median(t.get(k, 0.0) for t in stages)
                                for k in ("placement_s", "mass_effect_s", "geometry_s", "appearance_s", "stages_s")}})
    return rows


def padded(volume: Volume, factor: int = 2, fill: float = -1000.0) -> Volume:
    """``volume`` centred in an array twice as large along each axis (8x the voxels)."""
    shape = tuple(n * factor for n in volume.shape)
    out = np.full(shape, fill, dtype=volume.array.dtype)
    lo = [(n * factor - n) // 2 for n in volume.shape]
    out[tuple(slice(a, a + n) for a, n in zip(lo, volume.shape))] = volume.array
    shift = np.eye(4)
    shift[:3, 3] = [-a for a in lo]
    return Volume(out, volume.affine @ shift)


def scan_size_ratio(method: str, repeats: int) -> tuple[float, float, float]:
    """(median paired ratio padded / plain, median plain s, median padded s)."""
    ct, organs, _ = make_abdomen(0)
    big_ct, big_organs = padded(ct), padded(organs, fill=0)
    liver = np.argwhere(organs.array == 5)
    click = tuple(float(v) for v in ct.voxel_to_ras(liver[len(liver) // 2]))
    spec = lambda seed: TumorSpec(organ="liver", stage="early", center_ras=click, method=method, seed=seed)  # noqa: E731
    for image, labels in ((ct, organs), (big_ct, big_organs)):
        synthesize(image, labels, spec(0))  # warm-up: analyses the scan once
    ratios, plain, big = [], [], []
    for seed in range(repeats):
        t0 = time.perf_counter()
        synthesize(ct, organs, spec(seed))
        t1 = time.perf_counter()
        synthesize(big_ct, big_organs, spec(seed))
        t2 = time.perf_counter()
        plain.append(t1 - t0)
        big.append(t2 - t1)
        ratios.append((t2 - t1) / (t1 - t0))
    return statistics.median(ratios), statistics.median(plain), statistics.median(big)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=9)
    parser.add_argument("--methods", default="handcrafted,cellular")
    parser.add_argument("--no-doc", action="store_true", help="do not write docs/benchmarks.md")
    args = parser.parse_args(argv)
    command = "python " + shlex.join(["benchmarks/bench_synthesis.py", *(argv if argv is not None else sys.argv[1:])])
    load = os.getloadavg()[0]
    lines: list[str] = []

    def say(text: str) -> None:
        print(text, flush=True)
        lines.append(text)

    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    say(f"start-up: import TumorSynthLib {startup_seconds(IMPORT_CODE):.3f} s; import + first tumor "
        f"{startup_seconds(FIRST_TUMOR_CODE):.3f} s")
    for method in methods:
        say(f"\n== {method}: liver of a 256x256x128 phantom at 1 mm, sampled places, median of "
            f"{args.repeats} calls")
        say(f"{'size':>6s} {'stage':13s} {'median s':>9s} {'target':>7s} {'cpu s':>7s}  stage medians (s)")
        for row, target in zip(size_classes(method, args.repeats), TARGETS_S.get(method, (None,) * 4)):
            verdict = "" if target is None else f"{target:.2f} {'ok' if row['median_s'] <= target else 'MISSED'}"
            split = " ".join(f"{k[:-2]} {v:.3f}" for k, v in row["stages"].items())
            say(f"{row['d']:5.0f}mm {row['stage']:13s} {row['median_s']:9.4f} {verdict:>7s} {row['cpu_s']:7.4f}  {split}")
        ratio, plain, big = scan_size_ratio(method, args.repeats)
        say(f"ROI-only cost, early tumor at a click: demo phantom {plain:.4f} s, padded to 8x voxels "
            f"{big:.4f} s, median paired ratio {ratio:.2f} (target <= {RATIO_TARGET}: "
            f"{'ok' if ratio <= RATIO_TARGET else 'MISSED'})")
    if not args.no_doc:
        body = (f"## Synthesis speed (`bench_synthesis`)\n\n`{command}` on {date.today().isoformat()}, "
                f"load average {load:.2f} at the start (per-call medians; a busy machine is slower):\n\n"
                "```\n" + "\n".join(lines).strip() + "\n```\n")
        print(f"wrote the bench_synthesis section of {write_section('bench_synthesis', body)}", file=sys.stderr)


if __name__ == "__main__":
    main()
