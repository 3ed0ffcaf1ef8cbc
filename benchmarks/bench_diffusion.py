"""Speed, drop, grain and pictures of the ``diffusion`` method with the shipped weights.

Prints, for an early liver tumor (15 mm) at the deepest liver voxel of the real example CT
(3 mm, non-contrast; skipped when ``../shared/data`` is absent) and of the venous phantom:
the median time per tumor after a warm-up (target < 5 s on this CPU, methods.md section 3),
the first tumor's time (model loading included), the time per denoiser call, the measured mean
drop against common.md's range for the organ, and the grain (the scan's noise: standard
deviation of the image minus its 1-voxel low-pass) inside the tumor against the parenchyma
around it (about 1: the scan's grain is kept). Writes ``benchmarks/output/diffusion_montage.png``:
per case, the axial slice through the tumor before, after every denoising step (the live
estimate) and at the end, beside a ``handcrafted`` tumor at the same place.

Run: ``python benchmarks/bench_diffusion.py [--repeats 5] [--model ID|PATH] [--no-png]``.
"""
from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import numpy as np
from scipy import ndimage

from TumorSynthLib import TumorSpec, synthesize
from TumorSynthLib.core.volume import Volume
from TumorSynthLib.core.volume_io import load_volume
from TumorSynthLib.synthesis.live import SynthesisJob

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO.parent / "shared" / "data" / "totalsegmentator-example"
OUT = Path(__file__).resolve().parent / "output"
LIVER_ID = 5
TARGET_S = 5.0


def deep_liver_voxel(organs: Volume) -> tuple[float, float, float]:
    mask = np.pad(np.asarray(organs.array) == LIVER_ID, 1)
    edt = ndimage.distance_transform_edt(mask, sampling=organs.spacing)[1:-1, 1:-1, 1:-1]
    return tuple(float(v) for v in np.unravel_index(int(np.argmax(edt)), edt.shape))


def cases() -> list[tuple[str, Volume, Volume]]:
    from TumorSynthLib.phantom import make_abdomen

    out = []
    ct, seg = EXAMPLE / "example_ct.nii.gz", EXAMPLE / "example_seg_fast_force_split.nii.gz"
    if ct.exists() and seg.exists():
        image = load_volume(ct)
        out.append(("example CT (3 mm, non-contrast)", Volume(np.asarray(image.array, np.float32), image.affine),
                    load_volume(seg)))
    else:
        print(f"example CT skipped: {EXAMPLE} not found (it sits beside the repository)")
    phantom, organs, _ = make_abdomen(seed=0)
    out.append(("phantom seed 0 (venous)", phantom, organs))
    return out


def grain_ratio(image: np.ndarray, before: np.ndarray, tumor: np.ndarray, organ: np.ndarray) -> float:
    """std of (image - low-pass) in the tumor core / the same in the parenchyma around it."""
    core = ndimage.binary_erosion(tumor, iterations=1)
    ring = ndimage.binary_dilation(tumor, iterations=6) & ~ndimage.binary_dilation(tumor, iterations=2) & organ
    hp_after = image - ndimage.gaussian_filter(image, 1.0)
    hp_before = before - ndimage.gaussian_filter(before, 1.0)
    if core.sum() < 10 or ring.sum() < 10:
        return float("nan")
    return float(np.std(hp_after[core]) / np.std(hp_before[ring]))


def bench(name: str, image: Volume, organs: Volume, repeats: int, model: str | None) -> dict:
    click = deep_liver_voxel(organs)
    options = {} if model is None else {"diffusion_model": model}
    def spec(seed: int) -> TumorSpec:
        return TumorSpec(organ="liver", stage="early", diameter_mm=15.0, center_voxel=click,
                         method="diffusion", seed=seed, options=options)

    t0 = time.perf_counter()
    first = synthesize(image, organs, spec(0))
    first_s = time.perf_counter() - t0
    times, calls, drops, grains = [], [], [], []
    for seed in range(1, repeats + 1):
        t0 = time.perf_counter()
        res = synthesize(image, organs, spec(seed))
        times.append(time.perf_counter() - t0)
        report = res.reports[0]
        info = report["appearance_info"]
        calls.append(report["timing"]["appearance_s"] / max(info["steps_run"], 1))
        drops.append(report["measured_drop_hu"])
        roi, patch = res.roi, res.patches[0]
        grains.append(grain_ratio(res.image.array[roi.slices].astype(np.float32),
                                  np.asarray(image.array[roi.slices], np.float32), patch.tumor,
                                  np.asarray(organs.array[roi.slices]) == LIVER_ID))
    info = first.reports[0]["appearance_info"]
    median = statistics.median(times)
    print(f"\n== {name}: early liver tumor (15 mm) at voxel {tuple(round(c) for c in click)}")
    print(f"model {info['model_id']} sha256 {info['model_sha256'][:16]}... ({info['config']}, "
          f"{info['sampler']} {info['steps_total']} steps, patch {info['patch_cells']}^3 at "
          f"{info['patch_spacing_mm']:.2f} mm, {info['device']})")
    print(f"time per tumor: median {median:.2f} s over {repeats} (target < {TARGET_S:g} s: "
          f"{'ok' if median < TARGET_S else 'MISSED'}); first tumor incl. model load {first_s:.2f} s; "
          f"per denoising step {statistics.median(calls):.3f} s")
    lo, hi = info["expected_drop_range_hu"]
    inside = sum(lo <= d <= hi for d in drops if d is not None)
    print(f"measured drop (core, HU): {', '.join(f'{d:.1f}' for d in drops if d is not None)}; "
          f"common.md range {lo:.1f}-{hi:.1f} HU: {inside}/{len(drops)} inside")
    print(f"grain in tumor / parenchyma: median {np.nanmedian(grains):.2f} (1 = the scan's own noise kept)")
    return {"click": click, "spec": spec}


def montage(rows: list[tuple[str, Volume, Volume, tuple, object]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cols = 7
    fig, axes = plt.subplots(len(rows), cols, figsize=(2.2 * cols, 2.4 * len(rows)), squeeze=False)
    for r, (name, image, organs, click, spec) in enumerate(rows):
        job = SynthesisJob(image, organs, spec(0))
        panels = []
        lo = np.asarray(job.site.roi.lo)
        k = int(round(click[2])) - lo[2]
        base = np.asarray(image.array[job.site.roi.slices], np.float32)
        panels.append(("input", base))
        while not job.done:
            state = job.advance(1)
            if state.stage == "appearance" and state.image is not None:
                panels.append((f"step {state.step}/{state.total_steps}", state.image))
        final = job.result()
        panels.append(("diffusion", np.asarray(final.image.array[job.site.roi.slices], np.float32)))
        hand = synthesize(image, organs, TumorSpec(**{**spec(0).to_dict(), "method": "handcrafted",
                                                      "options": {}, "center_ras": None, "appearance": None,
                                                      "geometry": None}))
        panels.append(("handcrafted", np.asarray(hand.image.array[job.site.roi.slices], np.float32)))
        mask = final.patches[0].tumor
        for c in range(cols):
            ax = axes[r][c]
            ax.axis("off")
            if c >= len(panels):
                continue
            title, arr = panels[c]
            ax.imshow(np.rot90(arr[:, :, k]), cmap="gray", vmin=-60, vmax=190)
            if c == len(panels) - 2:
                ax.contour(np.rot90(mask[:, :, k]), levels=[0.5], colors="y", linewidths=0.6)
            ax.set_title(title if c else f"{name}\n{title}", fontsize=7)
    fig.suptitle("TumorSynth synthetic image - not for diagnosis (diffusion appearance, W 250 / L 65)", fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110, metadata={"Software": None})
    plt.close(fig)
    print(f"\nmontage: {path}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--model", default=None, help="model id or checkpoint (default: the shipped one)")
    parser.add_argument("--no-png", action="store_true")
    args = parser.parse_args()
    rows = []
    for name, image, organs in cases():
        made = bench(name, image, organs, args.repeats, args.model)
        rows.append((name, image, organs, made["click"], made["spec"]))
    if not args.no_png:
        montage(rows, OUT / "diffusion_montage.png")


if __name__ == "__main__":
    main()
