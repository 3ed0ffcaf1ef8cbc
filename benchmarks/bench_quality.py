"""The quality filter (FreeTumor's P) with the default model: mean P, acceptance and time per check.

P = |synthetic tumor AND predicted tumor| / |synthetic tumor|, predicted by the shipped
``default`` model on a crop around the tumor (``segmentation.quality.QualityFilter``); a tumor
is accepted when P >= 0.7. On phantom seeds the model never saw (from 3000), both contrast
phases, for each organ:

* calibration lesions (``phantom.lesions``): a 20 mm sphere 40 HU below the organ (clearly
  visible: target P >= 0.8) and the same sphere with a 0 HU drop (invisible: must be rejected),
  placed in the organ's parenchyma (not in a kidney's sinus fat, where a darker sphere is no
  visible lesion);
* one tumor of each synthesis method available here per organ and case, stages cycling through early,
  intermediate and advanced: mean P and the share accepted at 0.7, by method, organ and phase;
* a contrast-detail curve: the same sphere at the same places with drops of ``CURVE_DROPS_HU``,
  mean P by organ and phase (where the filter starts to see a lesion; e.g. the enhancing
  kidney, ~160 HU with a medulla ~30 HU below its cortex, needs a stronger drop than the liver).

Prints the tables and the seconds per check; writes the ``bench_quality`` section of
``docs/benchmarks.md``.

    python benchmarks/bench_quality.py [--model default] [--seeds 4] [--no-doc]
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks.markdown_section import command_line, record_results, table  # noqa: E402
from TumorSynthLib import TumorSpec, synthesize  # noqa: E402
from TumorSynthLib.core.errors import TumorSynthError  # noqa: E402
from TumorSynthLib.datasets.phantom_pool import render_phantom  # noqa: E402
from TumorSynthLib.phantom.lesions import add_sphere_lesion, lesion_centre  # noqa: E402
from TumorSynthLib.segmentation.tasks import task_label_array  # noqa: E402

BENCH_SEED_BASE = 3000
ORGANS = ("liver", "pancreas", "kidney")
PHASES = ("venous", "noncontrast")

def available_methods() -> tuple[str, ...]:
    """Every synthesis method whose providers can run here (handcrafted and cellular first)."""
    from TumorSynthLib.synthesis.registry import availability, methods

    ok = [name for name, pair in methods().items()
          if availability("geometry", pair.geometry)[0] and availability("appearance", pair.appearance)[0]]
    return tuple(sorted(ok, key=lambda m: (m not in ("handcrafted", "cellular"), m != "handcrafted", m)))


METHODS = available_methods()
STAGES = ("early", "intermediate", "advanced")
THRESHOLD = 0.7
LESIONS = {"sphere 20 mm, 40 HU drop": 40.0, "sphere 20 mm, 0 HU drop": 0.0}
#: Drops (HU) of the contrast-detail curve (the 20 mm sphere at the calibration places).
CURVE_DROPS_HU = (20.0, 30.0, 40.0, 50.0, 60.0, 80.0)


def synthetic_tumor(ct: Any, labels: Any, organ: str, method: str, stage: str, seed: int) -> Any:
    """A ``Synthesis`` with one tumor, or None when the organ has no room for any draw."""
    for attempt in range(5):
        spec = TumorSpec(organ=organ, stage=stage, method=method, seed=seed * 101 + attempt)
        try:
            return synthesize(ct, labels, [spec], labels="totalseg", case_id=f"q{seed}")
        except TumorSynthError:
            continue
    return None


def run(model: str, seeds: list[int], log: Any) -> dict[str, Any]:
    from TumorSynthLib.segmentation.quality import QualityFilter

    qf = QualityFilter(model, threshold=THRESHOLD, device="cpu")
    rows: list[dict[str, Any]] = []
    curve: list[dict[str, Any]] = []
    k = 0
    for seed in seeds:
        for phase in PHASES:
            ct, labels = render_phantom(seed, phase)
            arr = np.rint(np.asarray(labels.array)).astype(np.int32)
            for organ in ORGANS:
                region = task_label_array(arr, organ, "totalseg") == 1
                where = np.random.default_rng([seed, PHASES.index(phase), ORGANS.index(organ)])
                centre = lesion_centre(region, ct.spacing, 20.0, where, image=np.asarray(ct.array))
                place = {"organ": organ, "phase": phase, "seed": seed}
                p_of = {drop: qf.score_volume(*add_sphere_lesion(ct, region, centre, 20.0, drop))
                        for drop in sorted(set(LESIONS.values()) | set(CURVE_DROPS_HU))}
                rows += [{"kind": name, **place, "p": p_of[drop]} for name, drop in LESIONS.items()]
                curve += [{"drop_hu": drop, **place, "p": p_of[drop]} for drop in CURVE_DROPS_HU]
                for method in METHODS:
                    stage = STAGES[k % len(STAGES)]
                    k += 1
                    result = synthetic_tumor(ct, labels, organ, method, stage, seed * 10 + k)
                    if result is None:
                        continue
                    mask = np.asarray(result.tumor_instances.array) == 1
                    rows.append({"kind": method, "organ": organ, "phase": phase, "seed": seed, "stage": stage,
                                 "diameter_mm": result.reports[0]["diameter_measured_mm"],
                                 "drop_hu": result.reports[0].get("measured_drop_hu"),
                                 "p": qf.score_volume(result.image, mask)})
            log(f"  seed {seed} {phase}: {qf.calls} checks so far, {qf.seconds / max(1, qf.calls):.2f} s each")
    return {"model": qf.model_path, "threshold": THRESHOLD, "seeds": seeds, "rows": rows, "curve": curve,
            "checks": qf.calls, "seconds_per_check": qf.seconds / max(1, qf.calls)}


def group(rows: list[dict[str, Any]], **match: Any) -> dict[str, Any]:
    chosen = [r for r in rows if all(r.get(k) == v for k, v in match.items())]
    ps = np.asarray([r["p"] for r in chosen], dtype=float)
    return {"n": len(chosen), "mean_p": float(ps.mean()) if ps.size else None,
            "accepted": float(np.mean(ps >= THRESHOLD)) if ps.size else None,
            "min_p": float(ps.min()) if ps.size else None}


def verdict(rows: list[dict[str, Any]]) -> str:
    """Which organs meet the calibration targets (mean P of the visible sphere >= 0.8, every
    invisible one rejected)."""
    visible, invisible = list(LESIONS)
    met = [o for o in ORGANS if (group(rows, kind=visible, organ=o)["mean_p"] or 0) >= 0.8
           and (group(rows, kind=invisible, organ=o)["accepted"] or 0) == 0]
    missed = [o for o in ORGANS if o not in met]
    return (f"met for {', '.join(met) or 'no organ'}" + (f", **missed** for {', '.join(missed)}" if missed else ""))


def markdown(res: dict[str, Any], command: str) -> str:
    rows = res["rows"]
    kinds = list(LESIONS) + list(METHODS)
    main_rows = []
    for kind in kinds:
        g = group(rows, kind=kind)
        per_organ = " / ".join(f"{group(rows, kind=kind, organ=o)['mean_p']:.2f}" for o in ORGANS)
        per_phase = " / ".join(f"{group(rows, kind=kind, phase=p)['accepted']:.2f}" for p in PHASES)
        main_rows.append([kind, g["n"], g["mean_p"], g["min_p"], g["accepted"], per_organ, per_phase])
    stage_rows = [[m, s, group(rows, kind=m, stage=s)["n"], group(rows, kind=m, stage=s)["mean_p"],
                   group(rows, kind=m, stage=s)["accepted"]] for m in METHODS for s in STAGES]
    curve = res["curve"]
    curve_rows = [[o, p, *[group(curve, organ=o, phase=p, drop_hu=d)["mean_p"] for d in CURVE_DROPS_HU]]
                  for o in ORGANS for p in PHASES]
    return "\n".join([
        "## Quality filter with the default model (`bench_quality`)", "",
        f"Command: `{command}`  ",
        f"Model: `{Path(res['model']).name}`; {res['checks']} checks on unseen phantom seeds "
        f"{res['seeds'][0]}-{res['seeds'][-1]} (both phases); **{res['seconds_per_check']:.2f} s per check** "
        f"on CPU (crop around the tumor, one model patch). P >= {THRESHOLD} accepts.", "",
        table(["tumor", "n", "mean P", "min P", f"accepted (P >= {THRESHOLD})",
               "mean P liver / pancreas / kidney", "accepted venous / non-contrast"], main_rows), "",
        "By stage:", "",
        table(["method", "stage", "n", "mean P", "accepted"], stage_rows), "",
        f"Contrast-detail curve: mean P of the 20 mm sphere at the same places ({len(res['seeds'])} per "
        "organ and phase) by its drop:", "",
        table(["organ", "phase", *[f"{d:g} HU" for d in CURVE_DROPS_HU]], curve_rows), "",
        "Target: the clearly visible sphere (20 mm, 40 HU drop) scores P >= 0.8 and the invisible one "
        f"(0 HU drop) is rejected: {verdict(rows)}. The spheres sit in the organ's parenchyma (organ "
        "voxels in its HU window: a kidney label's deepest part is its sinus, fat and hilar vessels, "
        "where a darker sphere is no visible lesion). The P of synthetic tumors is what the filter "
        "uses to keep or redraw them; the last column shows how it differs between the phases.",
    ])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="default", help="model id or checkpoint (default: default)")
    parser.add_argument("--seeds", type=int, default=4, help="phantom seeds (x2 phases) (default 4)")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "output", help="JSON folder")
    parser.add_argument("--no-doc", action="store_true", help="do not write docs/benchmarks.md")
    args = parser.parse_args(argv)
    log = lambda text: print(text, file=sys.stderr, flush=True)  # noqa: E731
    command = command_line("bench_quality.py", argv)
    res = run(args.model, list(range(BENCH_SEED_BASE, BENCH_SEED_BASE + args.seeds)), log)
    record_results("bench_quality", res, markdown(res, command), args.out, not args.no_doc, log)
    return 0


if __name__ == "__main__":
    sys.exit(main())
