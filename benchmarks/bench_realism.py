"""Realism of synthetic tumors: grain, drop, edges, anatomy, shape (the realism issue's figures).

Over methods x organs x stages x seeds, on the example CT (3 mm, non-contrast; skipped when
``../shared/data`` is absent) and on phantoms in both phases (venous, non-contrast), one tumor
per call at a sampled place (a group of small tumors with too few measurable grain ratios draws
more seeds: ``run``); per (case, method, organ, stage) it prints the medians of the figures of
``TumorSynthLib.datasets.realism.tumor_metrics`` and then the checks:

* grain ratio (tumor core / organ shell) within 0.85-1.15 for every method, organ and stage;
* no bone, air or outside-body voxel changed, nothing changed farther than 10 mm outside the organ;
* advanced kidney tumors leave >= 50 % of the kidney (organ share <= 0.5);
* pancreas tumors darker than the non-fat parenchyma (drop > 0) and <= 10 % outside the pancreas;
* advanced cellular liver tumors: median sphericity >= 0.70;
* kidney tumor shapes (intermediate and advanced, the sizes KiTS19 holds): medians within 0.05
  of KiTS19 manual masks (sphericity 0.80, 0.87 at 3 mm; elongation 0.85; flatness 0.70).

``--gallery PATH`` writes one PNG grid (before / after axial crops through each tumor, one row
per method and organ) that the README shows.

    python benchmarks/bench_realism.py [--seeds 3] [--min-grain 5] [--methods handcrafted,cellular] [--gallery docs/gallery.png]
"""
from __future__ import annotations

import argparse
import itertools
import time
from pathlib import Path

import numpy as np

from TumorSynthLib import TumorSpec, TumorSynthError, synthesize
from TumorSynthLib.datasets.realism import summarise, tumor_metrics
from TumorSynthLib.phantom import make_abdomen
from TumorSynthLib.synthesis.catalogue import method_entries
from TumorSynthLib.volume import load_volume

EXAMPLE = Path(__file__).resolve().parents[2] / "shared" / "data" / "totalsegmentator-example"
ORGANS = ("liver", "pancreas", "kidney")
STAGES = ("tiny", "early", "intermediate", "advanced")
COLUMNS = ("size_ratio", "components", "drop_hu", "grain_ratio", "edge_width_mm", "organ_share",
           "fat_share", "outside_share", "sphericity", "elongation", "flatness")
KITS = {"sphericity": 0.80, "elongation": 0.85, "flatness": 0.70}
KITS_3MM_SPHERICITY = 0.87
#: KiTS19 tumors are mostly 20-100 mm (median about 40 mm): compared with ours of these stages.
KITS_STAGES = ("intermediate", "advanced")


def cases() -> list[tuple[str, object, object]]:
    out = []
    for phase in ("venous", "noncontrast"):
        ct, organs, _ = make_abdomen(0, phase=phase)
        out.append((f"phantom-{phase}", ct, organs))
    ct_path, seg_path = EXAMPLE / "example_ct.nii.gz", EXAMPLE / "example_seg_fast_force_split.nii.gz"
    if ct_path.exists() and seg_path.exists():
        out.append(("example-ct-3mm", load_volume(ct_path), load_volume(seg_path)))
    else:
        print(f"(example CT not found at {EXAMPLE}: phantoms only)")
    return out


def run(methods: list[str], seeds: int, min_grain: int = 0, max_seeds: int | None = None) -> tuple[dict, list]:
    """Tumors of ``seeds`` seeds per (case, method, organ, stage). A group whose tumors give
    1 to ``min_grain - 1`` grain ratios (small tumors: most have no core of
    ``MIN_GRAIN_VOXELS``) draws further seeds, up to ``max_seeds``, until it has ``min_grain``:
    the ratio of one 15 mm tumor is a robust SD of a few hundred correlated voxels, and early
    tumors of one group range from 0.80 to 1.18, so a group median of one tumor is noise."""
    groups: dict = {}
    gallery = []
    max_seeds = max(seeds, max_seeds if max_seeds is not None else 4 * seeds)
    for (name, ct, organs), method, organ, stage in itertools.product(cases(), methods, ORGANS, STAGES):
        rows = []
        for seed in range(max_seeds):
            measured = sum(r.get("grain_ratio") is not None for r in rows)
            if seed >= seeds and (measured == 0 or measured >= min_grain):
                break
            try:
                res = synthesize(ct, organs, TumorSpec(organ=organ, stage=stage, method=method, seed=seed))
            except TumorSynthError as exc:
                rows.append({"error": str(exc)})
                continue
            rows.append(tumor_metrics(ct, organs, res))
            if seed == 0 and stage == "intermediate" and name.startswith("phantom-venous"):
                gallery.append((method, organ, ct, res))
        groups[(name, method, organ, stage)] = rows
    return groups, gallery


def print_table(groups: dict) -> None:
    head = f"{'case':15s} {'method':11s} {'organ':8s} {'stage':12s} " + " ".join(f"{c[:9]:>9s}" for c in COLUMNS)
    print(head + "  n  grains  changed bone/air/soft/far  fov  errors")
    for (name, method, organ, stage), rows in groups.items():
        good = [r for r in rows if "error" not in r]
        vals = " ".join(f"{_fmt(summarise(good, c)):>9s}" for c in COLUMNS)
        changed = "/".join(str(sum(r[k] for r in good)) for k in ("changed_bone", "changed_air", "changed_soft", "changed_far"))
        fov = sum(bool(r["fov_contact"]) for r in good)
        grains = sum(r["grain_ratio"] is not None for r in good)
        print(f"{name:15s} {method:11s} {organ:8s} {stage:12s} {vals} {len(rows):2d} {grains:7d}  {changed:>24s} "
              f"{fov:4d} {len(rows) - len(good):6d}")


def checks(groups: dict) -> list[tuple[str, bool, str]]:
    out = []
    grain = [(k, summarise([r for r in rows if "error" not in r], "grain_ratio"),
              sum(r.get("grain_ratio") is not None for r in rows)) for k, rows in groups.items()]
    bad = [f"{'/'.join(k)} {v:.2f} (n={n})" for k, v, n in grain if v is not None and not 0.85 <= v <= 1.15]
    measured = [n for _, v, n in grain if v is not None]
    out.append(("grain ratio 0.85-1.15 everywhere", not bad,
                ("; ".join(bad[:6]) or "all within") + f" ({len(measured)} groups, {min(measured, default=0)}-"
                f"{max(measured, default=0)} tumors each)"))
    every = [r for rows in groups.values() for r in rows if "error" not in r]
    counts = {k: sum(r[k] for r in every) for k in ("changed_bone", "changed_air", "changed_far")}
    out.append(("no bone / air changed, nothing > 10 mm outside the organ", not any(counts.values()), str(counts)))
    kidney = [r for k, rows in groups.items() if k[2] == "kidney" and k[3] == "advanced" for r in rows if "error" not in r]
    share = max((r["organ_share"] for r in kidney), default=None)
    out.append(("advanced kidney tumors leave >= 50 % of the kidney", share is not None and share <= 0.5, f"largest share {_fmt(share)}"))
    pancreas = [r for k, rows in groups.items() if k[2] == "pancreas" for r in rows if "error" not in r]
    drops = [r["drop_hu"] for r in pancreas if r["drop_hu"] is not None]   # None: a tiny tumor has no core
    outside = max((r["outside_share"] for r in pancreas), default=None)
    out.append(("pancreas tumors darker than the parenchyma (tumors with a core)", bool(drops) and min(drops) > 0,
                f"smallest drop {_fmt(min(drops) if drops else None)} HU over {len(drops)} tumors"))
    out.append(("pancreas tumors <= 10 % outside the pancreas (+2 mm)", outside is not None and outside <= 0.10,
                f"largest {_fmt(outside)}"))
    liver = [r for k, rows in groups.items() if k[1] == "cellular" and k[2] == "liver" and k[3] == "advanced"
             for r in rows if "error" not in r]
    sph = summarise(liver, "sphericity")
    out.append(("advanced cellular liver sphericity >= 0.70", sph is not None and sph >= 0.70, f"median {_fmt(sph)}"))
    for case_kind in ("phantom", "example-ct-3mm"):
        rows = [r for k, rs in groups.items() if k[0].startswith(case_kind) and k[2] == "kidney"
                and k[3] in KITS_STAGES for r in rs if "error" not in r]
        if not rows:
            continue
        ref = dict(KITS, sphericity=KITS_3MM_SPHERICITY if case_kind.endswith("3mm") else KITS["sphericity"])
        med = {k: summarise(rows, k) for k in ref}
        ok = all(med[k] is not None and abs(med[k] - ref[k]) <= 0.05 for k in ref)
        out.append((f"kidney shape within 0.05 of KiTS19 ({case_kind})", ok,
                    ", ".join(f"{k} {_fmt(med[k])} (ref {ref[k]:.2f})" for k in ref)))
    return out


def write_gallery(gallery: list, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(gallery), 2, figsize=(5, 2.5 * len(gallery)), squeeze=False)
    for row, (method, organ, ct, res) in enumerate(gallery):
        rep = res.reports[0]
        c = np.rint(rep["centroid_voxel"]).astype(int)
        half = int(np.ceil(1.3 * rep["diameter_target_mm"] / ct.spacing[0])) + 8
        sl = (slice(max(c[0] - half, 0), c[0] + half), slice(max(c[1] - half, 0), c[1] + half), c[2])
        for col, (vol, title) in enumerate(((ct, "before"), (res.image, "after"))):
            ax = axes[row, col]
            ax.imshow(np.asarray(vol.array[sl], dtype=float).T[::-1, ::-1], cmap="gray", vmin=-160, vmax=240)
            ax.set_title(f"{method} {organ}: {title}", fontsize=8)
            ax.axis("off")
    fig.suptitle("TumorSynth synthetic tumors (phantom, venous phase; radiological view)", fontsize=9)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _fmt(v) -> str:
    return "n/a" if v is None else f"{v:.2f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--min-grain", type=int, default=5,
                        help="a group with 1 to N-1 measurable grain ratios draws more seeds (default 5)")
    parser.add_argument("--max-seeds", type=int, default=None, help="seeds a group may draw (default 4x --seeds)")
    parser.add_argument("--methods", default=None, help="default: every method available here")
    parser.add_argument("--gallery", type=Path, default=None)
    args = parser.parse_args()
    available = [m for m, e in method_entries().items() if e["available"]]
    methods = [m.strip() for m in args.methods.split(",")] if args.methods else available
    t0 = time.time()
    groups, gallery = run(methods, args.seeds, args.min_grain, args.max_seeds)
    print_table(groups)
    print(f"\n{sum(len(v) for v in groups.values())} tumors in {time.time() - t0:.0f} s\nchecks:")
    for name, ok, detail in checks(groups):
        print(f"  [{'ok' if ok else 'MISSED'}] {name}: {detail}")
    if args.gallery:
        write_gallery(gallery, args.gallery)
        print(f"gallery: {args.gallery}")


if __name__ == "__main__":
    main()
