"""Background ``tumorsynth`` processes: start, stream JSON-lines events, cancel the whole tree.

The process runs outside Slicer's GUI thread. Two daemon threads only *read* its stdout and
stderr into a queue; everything else (parsing, callbacks, MRML updates) happens on the caller's
thread through an injected scheduler ``schedule(delay_ms, callback)``: ``qt.QTimer.singleShot``
inside Slicer, ``ManualScheduler`` (call ``pump()``) in tests. So MRML is only ever touched on
the main thread.

With ``--events jsonl`` the CLI prints one JSON object per stdout line
(``{"v": 1, "event": "start"|"progress"|"validation"|"checkpoint"|"done"|"error", "time",
"step", "total", "elapsed_s", "eta_s", "loss", ...}``) and human text on stderr.

Cancel sends SIGTERM to the process group (the CLI then saves ``last.pt``), and SIGKILL after
a grace period if anything is still alive: killing only the launcher (``PythonSlicer``) would
leave the real interpreter running.

Example::

    runner = ProcessRunner(schedule, onEvent=progress.update, onFinished=done)
    runner.start(tumorsynth_command(python, "train", train_args(...)), env=engine_env(libDir))
    ...
    runner.cancel()
"""
from __future__ import annotations

import heapq
import itertools
import json
import os
import queue
import shutil
import signal
import subprocess
import sys
import threading
import time
from typing import Any, Callable, Sequence

from .errors import ProcessError

Scheduler = Callable[[int, Callable[[], None]], None]
EVENT_VERSION = 1


class ManualScheduler:
    """A scheduler for tests and scripts: callbacks run inside ``pump()``."""

    def __init__(self) -> None:
        self._queue: list[tuple[float, int, Callable[[], None]]] = []
        self._counter = itertools.count()

    def __call__(self, delayMs: int, callback: Callable[[], None]) -> None:
        heapq.heappush(self._queue, (time.monotonic() + delayMs / 1000.0, next(self._counter),
                                     callback))

    @property
    def pending(self) -> int:
        return len(self._queue)

    def pump(self, timeoutS: float = 0.0, until: Callable[[], bool] | None = None) -> bool:
        """Run due callbacks until ``until()`` is true or ``timeoutS`` passed; returns
        ``until()`` (True when nothing is pending if no condition is given)."""
        deadline = time.monotonic() + timeoutS
        done = until or (lambda: not self._queue)
        while True:
            now = time.monotonic()
            while self._queue and self._queue[0][0] <= now:
                heapq.heappop(self._queue)[2]()
            if done() or now >= deadline:
                return done()
            time.sleep(0.01)


def parse_event_line(line: str) -> dict[str, Any] | None:
    """The event dict of one stdout line, or None if the line is not an event."""
    text = line.strip()
    if not text.startswith("{"):
        return None
    try:
        event = json.loads(text)
    except json.JSONDecodeError:
        return None
    if not isinstance(event, dict) or "event" not in event:
        return None
    return event


class ProcessRunner:
    """One background process with line-based events, cancel and a completion callback.

    Callbacks (all on the scheduler's thread): ``onEvent(dict)`` for each JSON event line,
    ``onLog(str)`` for any other line (stderr or non-JSON stdout), ``onFinished(returncode,
    cancelled)`` once, after the last line was delivered.
    """

    def __init__(self, schedule: Scheduler, onEvent: Callable[[dict], None] | None = None,
                 onLog: Callable[[str], None] | None = None,
                 onFinished: Callable[[int, bool], None] | None = None,
                 pollMs: int = 100) -> None:
        self.schedule = schedule
        self.onEvent = onEvent or (lambda event: None)
        self.onLog = onLog or (lambda line: None)
        self.onFinished = onFinished or (lambda code, cancelled: None)
        self.pollMs = pollMs
        self.process: subprocess.Popen | None = None
        self.returncode: int | None = None
        self.cancelled = False
        self._lines: queue.Queue[tuple[str, str]] = queue.Queue()
        self._readers: list[threading.Thread] = []

    @property
    def running(self) -> bool:
        """True from ``start`` until ``onFinished`` was called."""
        return self.process is not None and self.returncode is None

    def start(self, args: Sequence[str], env: dict[str, str] | None = None,
              cwd: str | None = None) -> None:
        """Start ``args`` (a list, no shell) and begin polling its output."""
        if self.running:
            raise ProcessError("a process is already running; cancel it or wait for it to end")
        self.returncode, self.cancelled = None, False
        try:
            self.process = subprocess.Popen(
                list(args), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                stdin=subprocess.DEVNULL, text=True, bufsize=1, env=env, cwd=cwd,
                **_new_group_kwargs())
        except OSError as exc:
            raise ProcessError(f"could not start '{args[0]}': {exc}") from exc
        self._readers = [self._reader(self.process.stdout, "out"),
                         self._reader(self.process.stderr, "err")]
        self.schedule(self.pollMs, self._poll)

    def cancel(self, graceS: float = 10.0) -> None:
        """Ask the whole process tree to stop (SIGTERM); kill it after ``graceS`` seconds."""
        if not self.running or self.process.poll() is not None:
            return
        self.cancelled = True
        _signal_tree(self.process, force=False)
        self.schedule(int(graceS * 1000), self._forceKill)

    def _forceKill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            _signal_tree(self.process, force=True)

    def _reader(self, stream: Any, kind: str) -> threading.Thread:
        def read() -> None:
            for line in iter(stream.readline, ""):
                self._lines.put((kind, line.rstrip("\r\n")))
            stream.close()

        thread = threading.Thread(target=read, name=f"tumorsynth-{kind}", daemon=True)
        thread.start()
        return thread

    def _drain(self) -> None:
        while True:
            try:
                kind, line = self._lines.get_nowait()
            except queue.Empty:
                return
            event = parse_event_line(line) if kind == "out" else None
            if event is not None:
                self.onEvent(event)
            elif line:
                self.onLog(line)

    def _poll(self) -> None:
        self._drain()
        finished = self.process.poll() is not None and not any(t.is_alive() for t in self._readers)
        if not finished:
            self.schedule(self.pollMs, self._poll)
            return
        self._drain()
        self.returncode = self.process.returncode
        self.onFinished(self.returncode, self.cancelled)


def _new_group_kwargs() -> dict[str, Any]:
    """Popen arguments that put the child in its own process group (to end the whole tree)."""
    if sys.platform == "win32":
        return {"creationflags": subprocess.CREATE_NEW_PROCESS_GROUP | subprocess.CREATE_NO_WINDOW}
    return {"start_new_session": True}


def _signal_tree(process: subprocess.Popen, force: bool) -> None:
    """Terminate (or kill) the process and every process in its group / tree."""
    if sys.platform == "win32":
        flags = ["/T", "/F"] if force else ["/T"]
        subprocess.run(["taskkill", "/PID", str(process.pid), *flags], capture_output=True,
                       check=False)
        return
    try:
        os.killpg(process.pid, signal.SIGKILL if force else signal.SIGTERM)
    except ProcessLookupError:
        pass


# -- the tumorsynth command line --------------------------------------------------------------
def tumorsynth_command(python: str, command: str, args: Sequence[str]) -> list[str]:
    """``python -c <run the TumorSynthLib CLI> command args... --events jsonl``."""
    launcher = "import sys; from TumorSynthLib.cli import main; sys.exit(main(sys.argv[1:]))"
    return [python, "-c", launcher, command, *args, "--events", "jsonl"]


def python_executable() -> str:
    """The interpreter for background runs: Slicer's ``PythonSlicer`` launcher when present
    (it sets up Slicer's Python environment), else the current interpreter."""
    return shutil.which("PythonSlicer") or sys.executable


def engine_env(libDir: str | None, base: dict[str, str] | None = None) -> dict[str, str]:
    """The environment for the child: ``libDir`` (the folder holding ``TumorSynthLib``)
    first on PYTHONPATH, unbuffered output so events arrive as they happen."""
    env = dict(os.environ if base is None else base)
    if libDir:
        parts = [libDir] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]
        env["PYTHONPATH"] = os.pathsep.join(parts)
    env["PYTHONUNBUFFERED"] = "1"
    return env


def train_args(data: str, organ: str, method: str, out: str, *, maxSteps: int | None = None,
               maxMinutes: float | None = None, model: str | None = None,
               device: str | None = None, resume: bool = False, seed: int | None = None,
               stageMix: str | None = None, labels: str | None = None,
               extra: Sequence[str] = ()) -> list[str]:
    """Arguments of ``tumorsynth train`` (without the leading command name); ``extra`` holds
    further flags as given (e.g. ``["--patch", "32"]``)."""
    args = ["--data", data, "--organ", organ, "--method", method, "--out", out]
    args += _optional(("--max-steps", maxSteps), ("--max-minutes", maxMinutes),
                      ("--model", model), ("--device", device), ("--seed", seed),
                      ("--stage-mix", stageMix), ("--labels", labels))
    return args + (["--resume"] if resume else []) + list(extra)


def segment_args(model: str, image: str, out: str, *, organs: str | None = None,
                 device: str | None = None) -> list[str]:
    """Arguments of ``tumorsynth segment``; ``out`` ending in .nii.gz gets ``NAME.json``
    (the tumor summary) beside it."""
    args = ["--model", model, "--image", image, "--out", out]
    return args + _optional(("--organs", organs), ("--device", device))


def evaluate_args(pred: str, gt: str, out: str, *, organ: str | None = None,
                  images: str | None = None) -> list[str]:
    """Arguments of ``tumorsynth evaluate`` (writes summary.json, cases.csv, tumors.csv and
    PNG plots into ``out``)."""
    return ["--pred", pred, "--gt", gt, "--out", out] + _optional(("--organ", organ),
                                                                  ("--images", images))


def _optional(*pairs: tuple[str, Any]) -> list[str]:
    args: list[str] = []
    for flag, value in pairs:
        if value is not None and value != "":
            args += [flag, str(value)]
    return args
