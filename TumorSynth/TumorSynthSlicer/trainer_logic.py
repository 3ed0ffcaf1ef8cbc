"""The Trainer module's jobs: train, apply (segment) and evaluate, each a background
``tumorsynth`` process whose results come back into the scene.

``BackgroundJobs`` holds one ``ProcessRunner`` at a time (a second job while one runs is
refused), turns its events into a ``RunProgress`` and, when the process ends, loads the outputs:

- train:    the run folder (``last.pt``, ``best.pt``) is reported; scene volumes are first
            written into ``<run>/data`` with a datalist, so ``--resume`` finds them again;
- segment:  the predicted labelmap -> segmentation node (closed surface) + tumor table;
- evaluate: TP / FP / FN segments right away, then the metrics table and the
            sensitivity-by-size chart from ``summary.json``.

The scheduler is injected (``qt.QTimer.singleShot`` in Slicer, ``ManualScheduler`` in tests).

Example::

    jobs = BackgroundJobs(scene, schedule, python=sys.executable, libDir=repoRoot)
    jobs.train(TrainRequest(data=[(ct, labels)], outDir="runs/liver1", maxSteps=500),
               onUpdate=showProgress)
    jobs.cancel()                                   # SIGTERM: the CLI saves last.pt
    jobs.train(TrainRequest(..., resume=True), ...)
"""
from __future__ import annotations

import json
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import slicer

from . import files_logic, process_logic, results_logic, segment_logic, table_logic
from .errors import ProcessError
from .progress_logic import RunProgress


@dataclass
class TrainRequest:
    """What the Train panel asks for. ``data`` is a folder / datalist path or a list of
    (image node, labelmap node) pairs from the scene."""

    data: str | Sequence[tuple[Any, Any]]
    outDir: str
    organ: str = "liver"
    method: str = "handcrafted"
    model: str = "unet"
    maxSteps: int | None = 2000
    maxMinutes: float | None = None
    device: str = "auto"
    stageMix: str | None = None
    labels: str | None = None
    resume: bool = False
    extra: list[str] = field(default_factory=list)


@dataclass
class JobResult:
    """What a finished job produced (nodes are None when the job failed or was cancelled)."""

    kind: str
    progress: RunProgress
    outputs: dict[str, Any] = field(default_factory=dict)


class BackgroundJobs:
    """One background ``tumorsynth`` job at a time, with results loaded into ``scene``."""

    def __init__(self, scene: slicer.vtkMRMLScene, schedule: process_logic.Scheduler,
                 python: str, libDir: str | None = None) -> None:
        self.scene = scene
        self.schedule = schedule
        self.python = python
        self.libDir = libDir
        self.runner: process_logic.ProcessRunner | None = None
        self.progress = RunProgress()

    @property
    def running(self) -> bool:
        return self.runner is not None and self.runner.running

    def cancel(self, graceS: float = 15.0) -> None:
        """End the running job's whole process tree (training saves ``last.pt`` first)."""
        if self.runner is not None:
            self.runner.cancel(graceS)

    # -- jobs -----------------------------------------------------------------------------------
    def train(self, request: TrainRequest, onUpdate: Callable[[RunProgress], None] | None = None,
              onLog: Callable[[str], None] | None = None,
              onDone: Callable[[JobResult], None] | None = None) -> RunProgress:
        out = Path(request.outDir).expanduser()
        data = request.data
        if not isinstance(data, str):
            data = str(files_logic.write_datalist(list(data), out / "data"))
        args = process_logic.train_args(
            data, request.organ, request.method, str(out), maxSteps=request.maxSteps,
            maxMinutes=request.maxMinutes, model=request.model, device=request.device,
            resume=request.resume, stageMix=request.stageMix, labels=request.labels,
            extra=request.extra)

        def finish(progress: RunProgress) -> JobResult:
            found = {name: out / name for name in ("best.pt", "last.pt") if (out / name).exists()}
            return JobResult("train", progress, {"runDir": out, **found})

        return self._start("train", args, finish, onUpdate, onLog, onDone)

    def segment(self, model: str, volume: Any, organs: Any = None, device: str = "auto", organ: str = "liver",
                onUpdate: Callable[[RunProgress], None] | None = None,
                onLog: Callable[[str], None] | None = None,
                onDone: Callable[[JobResult], None] | None = None) -> RunProgress:
        work = Path(tempfile.mkdtemp(prefix="tumorsynth-segment-"))
        image = files_logic.write_volume(volume, work / "image.nii.gz")
        organs_path = None
        if organs is not None:
            organs_path = str(files_logic.write_volume(
                volume, work / "organs.nii.gz", results_logic.task_labels(organs, volume, organ)))
        pred = work / "pred.nii.gz"
        args = process_logic.segment_args(model, str(image), str(pred), organs=organs_path,
                                          device=device)

        def finish(progress: RunProgress) -> JobResult:
            try:
                summary = _read_json(work / "pred.json")
                name = f"{volume.GetName()} prediction"
                seg, table = results_logic.load_prediction(self.scene, pred, name, summary)
                return JobResult("segment", progress, {"segmentation": seg, "table": table,
                                                       "summary": summary})
            finally:
                shutil.rmtree(work, ignore_errors=True)

        return self._start("segment", args, finish, onUpdate, onLog, onDone,
                           cleanup=lambda: shutil.rmtree(work, ignore_errors=True))

    def evaluate(self, prediction: Any, reference: Any, grid: Any, organ: str = "liver",
                 onUpdate: Callable[[RunProgress], None] | None = None,
                 onLog: Callable[[str], None] | None = None,
                 onDone: Callable[[JobResult], None] | None = None) -> dict[str, Any]:
        """Show TP / FP / FN at once, then score in the background. Returns the outcome nodes."""
        pred = results_logic.task_labels(prediction, grid, organ)
        ref = results_logic.task_labels(reference, grid, organ)
        outcomes = segment_logic.new_segmentation_for(grid, f"{prediction.GetName()} vs "
                                                               f"{reference.GetName()}")
        ids = results_logic.add_outcome_segments(outcomes, results_logic.outcome_masks(pred, ref),
                                                 grid)
        work = Path(tempfile.mkdtemp(prefix="tumorsynth-evaluate-"))
        files_logic.write_volume(grid, work / "pred.nii.gz", pred)
        files_logic.write_volume(grid, work / "gt.nii.gz", ref)
        args = process_logic.evaluate_args(str(work / "pred.nii.gz"), str(work / "gt.nii.gz"),
                                           str(work / "eval"), organ=organ)

        def finish(progress: RunProgress) -> JobResult:
            try:
                payload = _read_json(work / "eval" / "summary.json")
                summary = payload.get("summary", payload)
                nodes = self._metric_nodes(summary, payload.get("cases") or [])
                return JobResult("evaluate", progress, {**nodes, "summary": summary})
            finally:
                shutil.rmtree(work, ignore_errors=True)

        self._start("evaluate", args, finish, onUpdate, onLog, onDone,
                    cleanup=lambda: shutil.rmtree(work, ignore_errors=True))
        return {"segmentation": outcomes, "segmentIds": ids}

    def _metric_nodes(self, summary: dict[str, Any], cases: list[dict[str, Any]],
                      ) -> dict[str, Any]:
        tables = {}
        for key, name, columns, rows in (
                ("metricsTable", "TumorSynth evaluation", results_logic.METRIC_COLUMNS,
                 results_logic.metrics_rows(summary)),
                ("detectionTable", "TumorSynth detection", results_logic.DETECTION_COLUMNS,
                 results_logic.detection_rows(cases))):
            tables[key] = table_logic.new_table(self.scene, name, columns)
            table_logic.append_rows(tables[key], columns, rows)
        sizes, chart = results_logic.sensitivity_chart(self.scene, summary, "TumorSynth")
        return {**tables, "sizeTable": sizes, "chart": chart}

    # -- plumbing -------------------------------------------------------------------------------
    def _start(self, command: str, args: list[str], finish: Callable[[RunProgress], JobResult],
               onUpdate: Callable[[RunProgress], None] | None,
               onLog: Callable[[str], None] | None,
               onDone: Callable[[JobResult], None] | None,
               cleanup: Callable[[], None] | None = None) -> RunProgress:
        if self.running:
            raise ProcessError("another TumorSynth job is running; wait for it or cancel it")
        progress = RunProgress()
        self.progress = progress

        def on_event(event: dict[str, Any]) -> None:
            progress.update(event)
            if onUpdate:
                onUpdate(progress)

        def on_finished(code: int, cancelled: bool) -> None:
            progress.finished(code, cancelled)
            result = JobResult(command, progress)
            if progress.status == "done":
                try:
                    result = finish(progress)
                except Exception as exc:  # a broken output file must not break the GUI loop
                    progress.status = "error"
                    progress.error = f"the {command} run ended but its results could not be " \
                                     f"loaded: {exc}"
            elif cleanup:
                cleanup()
            if onUpdate:
                onUpdate(progress)
            if onDone:
                onDone(result)

        self.runner = process_logic.ProcessRunner(self.schedule, onEvent=on_event, onLog=onLog,
                                                  onFinished=on_finished)
        try:
            self.runner.start(process_logic.tumorsynth_command(self.python, command, args),
                              env=process_logic.engine_env(self.libDir))
        except ProcessError:
            if cleanup:
                cleanup()
            raise
        return progress


def _read_json(path: Path) -> dict[str, Any]:
    if not path.exists():
        return {}
    return json.loads(path.read_text())


# -- the model registry (shipped models + $TUMORSYNTH_HOME/models) -------------------------------
#: Id of the shipped tumor segmentation model (liver, pancreas, kidney): Apply's default.
DEFAULT_MODEL_ID = "default"


def model_choices(entries: Sequence[dict[str, Any]], checkpoints: Sequence[str] = ()) -> list[tuple[str, str]]:
    """(label, model id or checkpoint path) of Apply's model list: the shipped default model
    first, then the other registered models, then this session's checkpoints."""
    ordered = sorted(entries, key=lambda e: (e.get("id") != DEFAULT_MODEL_ID, e.get("source") != "shipped"))
    choices = []
    for entry in ordered:
        organ = str(entry.get("organ", "")).replace(",", ", ")
        if entry.get("id") == DEFAULT_MODEL_ID:
            label = f"default: shipped model ({organ} tumors)"
        else:
            label = f"{entry['id']}  ({entry.get('source', '')}, {organ})"
        choices.append((label, str(entry["id"])))
    choices += [(f"this session: {path}", str(path)) for path in checkpoints]
    return choices


def choice_index(choices: Sequence[tuple[str, str]], current: str | None = None) -> int:
    """Which choice to select: ``current`` while it is still listed, else the shipped default
    model (so a new user can segment without training), else the first; -1 when empty."""
    values = [value for _label, value in choices]
    for wanted in (current, DEFAULT_MODEL_ID):
        if wanted in values:
            return values.index(wanted)
    return 0 if values else -1


def list_models(task: str | None = "segmentation") -> list[dict[str, Any]]:
    """The registered models of ``task`` (None: all) as dicts (id, source, task, organ, path,
    description, ...); Apply offers segmentation models only (the registry also lists the
    diffusion model of the synthesis engine)."""
    from TumorSynthLib.core import model_registry as weights

    return [entry.to_dict() for entry in weights.list_models() if task is None or entry.task == task]


def register_model(path: str | Path, modelId: str | None = None, description: str = "",
                   ) -> dict[str, Any]:
    """Copy a trained checkpoint into the user registry so Apply can pick it by id."""
    from TumorSynthLib.core import model_registry as weights

    return weights.add_model(path, modelId, description).to_dict()


def remove_model(modelId: str) -> dict[str, Any]:
    """Delete a user model (file and index entry); shipped models cannot be removed."""
    from TumorSynthLib.core import model_registry as weights

    return weights.remove_model(modelId).to_dict()


def models_folder() -> Path:
    """Where user models are stored (shown in the panel so users can free the space)."""
    from TumorSynthLib.core import model_registry as weights

    return weights.user_models_dir()
