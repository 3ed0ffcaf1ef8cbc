"""Speed and memory of the `handcrafted` method: one tumor per call, per stage.

Prints, per stage, the median latency of ``synthesize`` (one tumor, clicked in the liver) with
its split (placement / render / paste+report), and the peak extra memory (tracemalloc, a separate
run); on the phantom (``TumorSynthLib.phantom.abdomen.make_abdomen``, 256 x 256 x 96) and on the real
example CT (skipped with a message when ``../shared/data`` is absent); plus the start-up cost
(``import TumorSynthLib`` in a fresh interpreter, and import + first tumor).

Targets on the 2-core reference CPU: early < 0.05 s, advanced < 0.5 s, start-up < 1 s.

    python benchmarks/bench_synthesis.py [--repeats 7]
"""
from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
import tracemalloc
from pathlib import Path

import numpy as np
from scipy import ndimage

from TumorSynthLib import TumorSpec, synthesize
from TumorSynthLib.core.volume import Volume
from TumorSynthLib.core.volume_io import load_volume

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO.parent / "shared" / "data" / "totalsegmentator-example"
STAGES = ("tiny", "early", "intermediate", "advanced")
TARGETS_S = {"early": 0.05, "advanced": 0.5}
LIVER_ID = 5


def startup_seconds(code: str, repeats: int = 3) -> float:
    """Median wall time of ``code`` in a fresh interpreter (it prints its own timing)."""
    times = []
    for _ in range(repeats):
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
        times.append(float(out.stdout.strip().splitlines()[-1]))
    return statistics.median(times)


IMPORT_CODE = "import time; t=time.perf_counter(); import TumorSynthLib; print(time.perf_counter()-t)"
FIRST_TUMOR_CODE = """
import time; t=time.perf_counter()
import numpy as np
from TumorSynthLib import TumorSpec, synthesize
from TumorSynthLib.core.volume import Volume
lab = np.zeros((64, 64, 32), np.uint8); lab[12:52, 12:52, 6:26] = 5
img = np.where(lab == 5, 60.0, -100.0).astype(np.float32)
synthesize(Volume(img, np.eye(4)), Volume(lab, np.eye(4)), TumorSpec(organ="liver", center_voxel=(32, 32, 16), diameter_mm=10))
print(time.perf_counter()-t)
"""


def deep_point(labels: np.ndarray, spacing: np.ndarray, organ_id: int) -> tuple[float, float, float]:
    """Voxel of the organ farthest from its surface and the image border."""
    mask = np.pad(labels == organ_id, 1)
    edt = ndimage.distance_transform_edt(mask, sampling=spacing)[1:-1, 1:-1, 1:-1]
    return tuple(float(v) for v in np.unravel_index(int(np.argmax(edt)), labels.shape))


def load_phantom() -> tuple[Volume, Volume, str]:
    try:
        from TumorSynthLib.phantom import make_abdomen

        ct, organs, _ = make_abdomen(0)
    except ImportError as exc:
        return (*fallback_phantom(), f"ellipsoid stand-in (phantom unavailable: {exc})")
    return ct, organs, "phantom make_abdomen(0)"


def fallback_phantom() -> tuple[Volume, Volume]:
    shape, spacing = (256, 256, 96), np.array([1.4, 1.4, 2.5])
    g = np.ogrid[tuple(slice(0, n) for n in shape)]
    d = sum(((gi * s - c) / r) ** 2 for gi, s, c, r in zip(g, spacing, (150, 160, 120), (90, 70, 80)))
    lab = np.where(d <= 1, LIVER_ID, 0).astype(np.uint8)
    img = np.where(lab > 0, 110.0, -100.0) + np.random.default_rng(0).normal(0, 12, shape)
    aff = np.diag([*spacing, 1.0])
    return Volume(img.astype(np.float32), aff), Volume(lab, aff)


def time_stage(image: Volume, organs: Volume, click: tuple, stage: str, repeats: int) -> dict:
    totals, parts = [], []
    for seed in range(repeats):
        spec = TumorSpec(organ="liver", center_voxel=click, stage=stage, seed=seed)
        t0 = time.perf_counter()
        res = synthesize(image, organs, spec)
        totals.append(time.perf_counter() - t0)
        parts.append(res.reports[0]["timing"])
    tracemalloc.start()
    synthesize(image, organs, TumorSpec(organ="liver", center_voxel=click, stage=stage, seed=0))
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    med = statistics.median
    return {
        "median_s": med(totals),
        "prepare_s": med(p["prepare_s"] for p in parts),
        "render_s": med(p["render_s"] for p in parts),
        "paste_s": med(t - p["prepare_s"] - p["render_s"] for t, p in zip(totals, parts)),
        "peak_mb": peak / 1e6,
    }


def bench_case(name: str, image: Volume, organs: Volume, repeats: int) -> None:
    click = deep_point(np.asarray(organs.array), image.spacing, LIVER_ID)
    image_mb = image.array.nbytes / 1e6
    print(f"\n== {name}: shape {image.shape}, spacing {np.round(image.spacing, 2).tolist()} mm, "
          f"image {image_mb:.0f} MB, liver click voxel {click}")
    synthesize(image, organs, TumorSpec(organ="liver", center_voxel=click, stage="early"))  # warm-up
    print(f"{'stage':13s} {'median s':>9s} {'place s':>8s} {'render s':>9s} {'paste s':>8s} "
          f"{'peak MB':>8s}  target")
    for stage in STAGES:
        r = time_stage(image, organs, click, stage, repeats)
        target = TARGETS_S.get(stage)
        verdict = "" if target is None else (f"< {target} s " + ("ok" if r["median_s"] < target else "MISSED"))
        print(f"{stage:13s} {r['median_s']:9.4f} {r['prepare_s']:8.4f} {r['render_s']:9.4f} "
              f"{r['paste_s']:8.4f} {r['peak_mb']:8.1f}  {verdict}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    imp = startup_seconds(IMPORT_CODE)
    first = startup_seconds(FIRST_TUMOR_CODE)
    print(f"start-up: import TumorSynthLib {imp:.3f} s; import + first tumor {first:.3f} s "
          f"(target < 1 s: {'ok' if first < 1.0 else 'MISSED'})")
    image, organs, label = load_phantom()
    bench_case(label, image, organs, args.repeats)
    ct, seg = EXAMPLE / "example_ct.nii.gz", EXAMPLE / "example_seg_fast_force_split.nii.gz"
    if ct.exists() and seg.exists():
        bench_case("real CT example_ct (3 mm, non-contrast)", load_volume(ct), load_volume(seg), args.repeats)
    else:
        print(f"\nreal CT skipped: {EXAMPLE} not found (it sits beside the repository)")


if __name__ == "__main__":
    main()
