"""Batch generation: synthetic tumors for every healthy case of a dataset, several variants each.

Work list: every (case, variant) of the input (a folder of image/label pairs or a decathlon
datalist, ``segmentation.datasets.find_cases``), sorted by (case id, variant); ``shard=(I, N)``
takes items I, I+N, I+2N, ..., so N processes (or machines) split the work without talking to
each other and together write exactly what one unsharded run writes. Each output depends only
on (seed, case id, variant, tumor index): the stage of tumor ``index`` comes from its own seed
stream, the tumor from ``tumor_rng(seed, case_id, variant, index)``.

Cases whose label already holds the convention's tumor id (a real tumor) or lacks the organ are
skipped with the reason. With a quality model (``quality.QualityFilter``) each tumor is redrawn
until the model finds at least ``threshold`` of it (up to ``quality_tries`` draws; the best is
kept and its report says so).

Outputs (``layout="folders"``): ``OUT/<case>_v<variant>/image.nii.gz, label.nii.gz,
report.json``; (``layout="flat"``): ``OUT/imagesTr/<name>.nii.gz``, ``OUT/labelsTr/<name>.nii.gz``,
``OUT/reports/<name>.json``. Both: ``OUT/dataset.json`` (a decathlon datalist of every finished
output, accepted by ``tumorsynth train``), ``OUT/manifest.csv`` (one row per finished output),
``OUT/summary[-shard-I-of-N].json`` (this run: generated, resumed, skipped, failed, quality).
``report.json`` is written last and atomically: an output is finished when its report exists,
and a rerun skips it (resumable). Labels keep the input's convention, tumors added.
"""
from __future__ import annotations

import os
import time
import sys
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Mapping

import numpy as np

from ..anatomy.organs import (
    CONVENTIONS,
    DEFAULT_STAGE_MIX,
    canonical_organ,
    organ_label_ids,
)
from ..anatomy.organs import parse_stage_mix as organs_parse_stage_mix
from ..anatomy.site import TumorSpec
from ..anatomy.analysis import labelmap_array
from ..anatomy.task_labels import tumor_ids
from ..core.errors import (
    ConventionError,
    DependencyError,
    InputError,
    ModelError,
    ResourceError,
    TumorSynthError,
)
from ..core.events import EventStream
from ..core.files import recover_staged, safe_name, shown, write_json_atomic
from ..core.volume_io import load_volume
from ..segmentation.datasets import find_cases
from ..segmentation.quality import QualityFilter
from ..synthesis.api import synthesize
from ..synthesis.registry import method_names
from ..synthesis.report import report_warnings
from .outputs import (
    check_out,
    check_same_settings,
    lock_out,
    output_paths,
    read_report,
    write_case,
    write_case_folder,
    write_dataset_files,
)

LAYOUTS = ("folders", "flat")
_STAGE_STREAM = 0x57A6E  # extra seed word: the stage draw never shares bits with the tumor's


# -- option parsing -------------------------------------------------------------------------------
def parse_stage_mix(mix: str | Mapping[str, float] | None) -> dict[str, float]:
    """``--stage-mix`` of batch generation: weights must sum to 1 (``organs.parse_stage_mix``)."""
    return organs_parse_stage_mix(mix, require_sum_one=True)


def parse_shard(text: str | None) -> tuple[int, int]:
    """``"I/N"`` -> (I, N) with 0 <= I < N; None -> (0, 1)."""
    if text is None:
        return 0, 1
    index, sep, count = str(text).partition("/")
    try:
        i, n = int(index), int(count)
    except ValueError:
        i, n = -1, 0
    if not sep or n < 1 or not 0 <= i < n:
        raise InputError(f"--shard must be I/N with 0 <= I < N (e.g. 0/4 ... 3/4), got '{text}'")
    return i, n


# -- configuration and work list -------------------------------------------------------------------
@dataclass
class GenerateConfig:
    """One batch run. ``quality``: checkpoint path or model id (None: no filter)."""

    input: str
    out: str
    organ: str = "liver"
    method: str = "handcrafted"
    stage_mix: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_STAGE_MIX))
    per_case: int = 1
    tumors_per_image: int = 1
    workers: int = 1
    shard: tuple[int, int] = (0, 1)
    quality: str | None = None
    threshold: float = 0.7
    quality_tries: int = 3
    labels: str = "auto"
    layout: str = "folders"
    seed: int = 0
    device: str = "auto"
    options: dict[str, Any] = field(default_factory=dict)

    def check(self) -> "GenerateConfig":

        self.organ = canonical_organ(self.organ)
        self.stage_mix = parse_stage_mix(self.stage_mix)
        if self.method not in method_names():
            raise InputError(f"unknown --method '{self.method}'; choose one of: {', '.join(method_names())}")
        for name, value, lo, hi in (("--per-case", self.per_case, 1, 10_000),
                                    ("--tumors-per-image", self.tumors_per_image, 1, 100),
                                    ("--workers", self.workers, 1, 256),
                                    ("--quality-tries", self.quality_tries, 1, 100)):
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or not lo <= value <= hi:
                raise InputError(f"{name} must be an integer from {lo} to {hi}, got {shown(value)}")
        if (isinstance(self.threshold, bool) or not isinstance(self.threshold, (int, float))
                or not 0.0 <= float(self.threshold) <= 1.0):
            raise InputError(f"--threshold must be a number in [0, 1], got {shown(self.threshold)}")
        if self.labels != "auto" and self.labels not in CONVENTIONS:
            raise InputError(f"unknown --labels '{self.labels}'; choose auto or one of {', '.join(CONVENTIONS)}")
        if self.layout not in LAYOUTS:
            raise InputError(f"unknown --layout '{self.layout}'; choose one of {', '.join(LAYOUTS)}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, (int, np.integer)) or self.seed < 0:
            raise InputError(f"--seed must be >= 0, got {self.seed}")
        self.shard = parse_shard(f"{self.shard[0]}/{self.shard[1]}")
        if self.quality is not None and Path(self.quality).expanduser().is_file():
            self.quality = str(Path(self.quality).expanduser().resolve())  # same text in every shard
        return self

    def settings(self) -> dict[str, Any]:
        """What shapes each output (a resumed run must match it); not workers / shards."""
        return {"organ": self.organ, "method": self.method, "stage_mix": dict(self.stage_mix),
                "tumors_per_image": int(self.tumors_per_image), "labels": self.labels,
                "seed": int(self.seed), "options": dict(self.options),
                "quality": None if self.quality is None else {
                    "model": str(self.quality), "threshold": float(self.threshold),
                    "tries": int(self.quality_tries)}}


@dataclass(frozen=True)
class WorkItem:
    case_id: str
    image: str
    label: str
    variant: int

    @property
    def name(self) -> str:
        """The output name: the case id made a safe file name (``files.safe_name``), + variant."""
        return f"{safe_name(self.case_id, 'case id')}_v{self.variant}"


def work_list(input_path: str | Path, per_case: int) -> list[WorkItem]:
    """Every (case, variant) of the input, sorted by (case id, variant); InputError when two
    cases share an id (their outputs would collide)."""

    training, validation = find_cases(input_path)
    cases = sorted(training + validation, key=lambda c: c.case_id)
    names = [safe_name(c.case_id, "case id") for c in cases]
    twice = sorted({c.case_id for c, n in zip(cases, names) if names.count(n) > 1})
    if twice:
        raise InputError(f"several input cases share the id(s) {', '.join(map(shown, twice[:5]))} (as file names); "
                         "give each case a unique file or folder name (or a 'case_id' in the datalist)")
    return [WorkItem(c.case_id, c.image, c.label, v) for c in cases for v in range(int(per_case))]


def shard_items(items: list[WorkItem], shard: tuple[int, int]) -> list[WorkItem]:
    """Items I, I+N, I+2N, ... of the sorted work list (round robin balances the shards)."""
    i, n = shard
    return items[i::n]


def stage_for(seed: int, case_id: str, variant: int, index: int, mix: Mapping[str, float]) -> str:
    """The stage of tumor ``index``, from a stream of its own (seed, case id, variant, index)."""
    entropy = [int(seed), zlib.crc32(str(case_id).encode()), int(variant), int(index), _STAGE_STREAM]
    rng = np.random.default_rng(np.random.SeedSequence(entropy))
    stages = list(mix)
    weights = np.asarray([mix[s] for s in stages], dtype=float)
    return stages[int(rng.choice(len(stages), p=weights / weights.sum()))]


# -- one item (runs in the main process or a spawned worker) -----------------------------------------
_STATE: dict[str, Any] = {"quality": None, "case": None}


def init_worker(config: GenerateConfig, torch_threads: int | None = None, spawned: bool = False) -> None:
    """Per-process setup: torch threads and the quality filter (loaded once per process). A
    spawned worker prints nothing on stdout (it may carry the parent's JSON event lines)."""
    if spawned:
        sys.stdout = sys.stderr
    if torch_threads is not None:
        import torch

        torch.set_num_threads(max(1, int(torch_threads)))
    _STATE["case"] = None
    _STATE["quality"] = None
    if config.quality is not None:
        _STATE["quality"] = QualityFilter(config.quality, threshold=config.threshold,
                                          device=config.device, organ=config.organ)


def _load_case(item: WorkItem, config: GenerateConfig) -> tuple[Any, Any, str, str | None]:
    """(image, labels, convention, reason to skip or None), cached for the variants of a case."""

    key = (item.image, item.label)
    cached = _STATE.get("case")
    if cached is not None and cached[0] == key:
        return cached[1]
    image, labels = load_volume(item.image), load_volume(item.label)
    arr, conv = labelmap_array(labels, config.labels, image=image, organ=config.organ, what="the labels")
    reason = None
    if np.isin(arr, tumor_ids(config.organ, conv)).any():
        reason = f"has a real {config.organ} tumor ('{conv}' tumor id present): only healthy cases get synthetic tumors"
    elif not np.isin(arr, organ_label_ids(config.organ, conv)).any():
        reason = f"no {config.organ} in the label ('{conv}' convention); check --organ and --labels"
    value = (image, labels, conv, reason)
    _STATE["case"] = (key, value)
    return value


def run_item(item: WorkItem, config: GenerateConfig) -> dict[str, Any]:
    """Make and write one output; never raises for a bad case: returns {name, case_id,
    variant, status: generated | skipped | failed, reason, seconds, tumors, quality, warnings}."""
    t0 = time.perf_counter()
    base = {"name": item.name, "case_id": item.case_id, "variant": item.variant}
    try:
        image, labels, conv, reason = _load_case(item, config)
        if reason is not None:
            return {**base, "status": "skipped", "reason": reason, "seconds": time.perf_counter() - t0}
        result, quality_s = _synthesize(item, config, image, labels, conv)
        header = {"name": item.name, "case_id": item.case_id, "variant": item.variant, "convention": conv,
                  "settings": config.settings(), "source": {"image": item.image, "label": item.label}}
        paths = output_paths(config.out, item.name, config.layout)
        if config.layout == "flat":
            write_case(paths, result, header, (item.image, item.label))
        else:
            write_case_folder(paths["report"].parent, result, header, (item.image, item.label), preview=False)
    except (ModelError, DependencyError, ConventionError, ResourceError):
        raise  # the same for every case: stop the batch with the message
    except TumorSynthError as exc:
        return {**base, "status": "failed", "reason": str(exc), "seconds": time.perf_counter() - t0}
    except Exception as exc:  # a bug or a broken file: keep the batch going, report it
        return {**base, "status": "failed", "reason": f"{type(exc).__name__}: {exc}",
                "seconds": time.perf_counter() - t0}
    verdicts = [r.get("quality") for r in result.reports if r.get("quality")]
    return {**base, "status": "generated", "reason": "", "seconds": time.perf_counter() - t0,
            "tumors": len(result.reports), "quality": verdicts, "quality_s": quality_s,
            "warnings": report_warnings(result.reports)}


def _synthesize(item: WorkItem, config: GenerateConfig, image: Any, labels: Any, conv: str) -> tuple[Any, float]:

    options = dict(config.options)
    if config.device != "auto":
        options.setdefault("device", config.device)
    specs = [TumorSpec(organ=config.organ, method=config.method, seed=int(config.seed), options=options,
                       stage=stage_for(config.seed, item.case_id, item.variant, i, config.stage_mix))
             for i in range(int(config.tumors_per_image))]
    qf = _STATE.get("quality")
    before = qf.seconds if qf is not None else 0.0
    result = synthesize(image, labels, specs, conv, case_id=item.case_id, variant=item.variant,
                        quality=qf, quality_threshold=config.threshold, tries=config.quality_tries)
    return result, (qf.seconds - before) if qf is not None else 0.0




# -- the run ----------------------------------------------------------------------------------------
def _execute(todo: list[WorkItem], config: GenerateConfig) -> Iterator[dict[str, Any]]:
    """Results of ``run_item`` for each item: in this process (one worker), else in spawned
    processes (safe with torch and on every OS); order of completion."""
    workers = min(int(config.workers), len(todo))
    if workers <= 1:
        init_worker(config)
        try:
            for item in todo:
                yield run_item(item, config)
        finally:
            _STATE.update(quality=None, case=None)
        return
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor, as_completed

    threads = max(1, (os.cpu_count() or 1) // workers)
    pool = ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn"),
                               initializer=init_worker, initargs=(config, threads, True))
    try:
        futures = [pool.submit(run_item, item, config) for item in todo]
        for future in as_completed(futures):
            yield future.result()
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def _split_done(items: list[WorkItem], config: GenerateConfig) -> tuple[list[WorkItem], list[WorkItem]]:
    """(finished, to do): an item is finished when its report, image and label exist; a
    finished item made with other settings is an InputError."""
    settings = config.settings()
    done, todo = [], []
    for item in items:
        paths = output_paths(config.out, item.name, config.layout)
        report = read_report(paths["report"]) if paths["report"].is_file() else None
        if report is not None and paths["image"].is_file() and paths["label"].is_file():
            check_same_settings(report, settings, paths["report"])
            done.append(item)
        else:
            todo.append(item)
    return done, todo


def generate(config: GenerateConfig, events: Any = None) -> dict[str, Any]:
    """Run (this shard of) a batch; returns the summary (also written to
    ``OUT/summary[-shard-I-of-N].json``). ``events``: an ``events.EventStream`` (start /
    progress per output / done) or None."""

    config.check()
    items = shard_items(work_list(config.input, config.per_case), config.shard)
    out = check_out(config.out, config.input)
    with lock_out(out, config.shard, config.settings(), f"--input {config.input} --seed {config.seed}"):
        recover_staged(out)
        return _run(config, out, items, events)


def _run(config: GenerateConfig, out: Path, items: list[WorkItem], events: Any) -> dict[str, Any]:
    done, todo = _split_done(items, config)
    if config.quality is not None and min(config.workers, len(todo)) > 1:
        init_worker(config)  # fail early (missing / wrong model) before spawning workers
        _STATE.update(quality=None, case=None)
    events = events if events is not None else EventStream("none", enabled=False)
    t0 = time.perf_counter()
    events.start(len(done), total=len(items), command="generate", shard=list(config.shard),
                 resumed=len(done), to_do=len(todo))
    if done:
        events.log(f"{len(done)} output(s) already finished in {out}: skipped (resume)")
    results = []
    for step, res in enumerate(_execute(todo, config), start=len(done) + 1):
        results.append(res)
        if res["status"] != "generated":
            events.log(f"{res['status']}: {res['name']}: {res['reason']}")
        for warning in res.get("warnings", ()):
            events.warning(f"{res['name']}: {warning}", step, case=res["name"])
        events.progress(step, case=res["name"], status=res["status"], seconds=res["seconds"])
    datalist, manifest, n_outputs = write_dataset_files(out, config.layout)
    summary = summarize(config, results, len(items), len(done), time.perf_counter() - t0)
    summary.update(datalist=str(datalist), manifest=str(manifest), outputs_in_folder=n_outputs)
    i, n = config.shard
    name = "summary.json" if n == 1 else f"summary-shard-{i}-of-{n}.json"
    summary["summary"] = str(write_json_atomic(out / name, summary))
    events.done(len(items), summary={k: v for k, v in summary.items() if k not in ("skipped", "failed")})
    return summary


def summarize(config: GenerateConfig, results: list[dict[str, Any]], n_items: int, n_resumed: int,
              seconds: float) -> dict[str, Any]:
    """Counts, reasons and the quality pass rate of one run (JSON-able)."""
    made = [r for r in results if r["status"] == "generated"]
    verdicts = [q for r in made for q in r.get("quality") or []]
    attempts = sum(int(q.get("attempts", 1)) for q in verdicts)
    quality = None
    if config.quality is not None:
        passed = sum(1 for q in verdicts if q.get("passed"))
        quality = {"model": config.quality, "threshold": float(config.threshold),
                   "tries": int(config.quality_tries), "tumors": len(verdicts), "passed": passed,
                   "pass_rate": passed / len(verdicts) if verdicts else None,
                   "checks": attempts,
                   "seconds_per_check": (sum(r.get("quality_s", 0.0) for r in made) / attempts
                                         if attempts else None)}
    return {
        "command": "generate", "input": str(config.input), "out": str(config.out),
        "shard": list(config.shard), "settings": config.settings(), "items": n_items,
        "generated": len(made), "resumed": n_resumed,
        "skipped": [{k: r[k] for k in ("name", "case_id", "reason")} for r in results if r["status"] == "skipped"],
        "failed": [{k: r[k] for k in ("name", "case_id", "reason")} for r in results if r["status"] == "failed"],
        "tumors": sum(int(r.get("tumors", 0)) for r in made), "quality": quality,
        "seconds": seconds,
        "seconds_per_generated_case": (sum(r["seconds"] for r in made) / len(made)) if made else None,
    }


__all__ = ["GenerateConfig", "WorkItem", "generate", "parse_shard", "parse_stage_mix", "run_item",
           "shard_items", "stage_for", "summarize", "work_list", "DEFAULT_STAGE_MIX"]
