"""The JSON-lines progress protocol shared by every long command and the Slicer modules.

With ``--events jsonl`` a command writes one JSON object per line on stdout and nothing else
(human text goes to stderr)::

    {"v": 1, "event": "progress", "time": "2025-01-01T12:00:00.123Z", "step": 40, "total": 200,
     "elapsed_s": 12.5, "eta_s": 50.0, "loss": 0.81, "lr": 0.0009}

``event`` is one of ``EVENT_KINDS``. Every event carries ``v``, ``event``, ``time`` (UTC, ISO
8601), ``step``, ``total`` (None when unknown), ``elapsed_s`` and ``eta_s`` (seconds, None
when unknown); kinds add their own fields (``loss``, ``lr``, ``metrics``, ``path``,
``message``, ...). ``warning`` events (``message``) are also printed on stderr. Non-finite numbers are written as ``null`` so every line is strict JSON.

Without ``--events jsonl`` (mode ``none``) people get a tqdm bar and log lines on stderr.
Processes other than rank 0 of a distributed run use a disabled stream.
"""
from __future__ import annotations

import json
import sys
import time
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import IO, Any, Iterator

from .errors import InputError
from .files import to_jsonable

PROTOCOL_VERSION = 1
EVENT_KINDS = ("start", "progress", "validation", "checkpoint", "warning", "done", "error")
EVENT_MODES = ("none", "jsonl")


def utc_now() -> str:
    """Current UTC time as ISO 8601 with milliseconds and a ``Z`` suffix."""
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def make_event(kind: str, /, *, step: int = 0, total: int | None = None, elapsed_s: float = 0.0,
               eta_s: float | None = None, **fields: Any) -> dict[str, Any]:
    """One protocol event as a dict (see the module docstring for the fields)."""
    if kind not in EVENT_KINDS:
        raise InputError(f"unknown event kind '{kind}'; one of: {', '.join(EVENT_KINDS)}")
    event: dict[str, Any] = {
        "v": PROTOCOL_VERSION, "event": kind, "time": utc_now(), "step": int(step),
        "total": None if total is None else int(total),
        "elapsed_s": round(float(elapsed_s), 3),
        "eta_s": None if eta_s is None else round(float(eta_s), 3),
    }
    event.update(fields)
    return to_jsonable(event)


def format_event(event: dict[str, Any]) -> str:
    """The single line (no newline) that carries ``event``."""
    return json.dumps(to_jsonable(event), separators=(",", ":"), allow_nan=False)


def parse_event(line: str) -> dict[str, Any]:
    """Decode one stdout line of a ``--events jsonl`` process; InputError if it is not an event
    of a protocol version this code understands."""
    try:
        event = json.loads(line)
    except json.JSONDecodeError as exc:
        raise InputError(f"not a JSON event line: {line[:80]!r} ({exc})") from exc
    if not isinstance(event, dict) or event.get("event") not in EVENT_KINDS:
        raise InputError(f"not a TumorSynth event: {line[:80]!r}")
    if event.get("v") != PROTOCOL_VERSION:
        raise InputError(f"event protocol version {event.get('v')} is not supported "
                         f"(this TumorSynth reads version {PROTOCOL_VERSION}); update TumorSynth")
    return event


#: Seconds before the progress bar appears: a command that fails or ends at once prints only
#: its message (one line), never a half-drawn bar.
BAR_DELAY_S = 1.0

class EventStream:
    """Progress reporting for one long command.

    ``mode="jsonl"``: events go to ``stdout`` as JSON lines, ``log`` text to ``stderr``.
    ``mode="none"``: a tqdm bar (unless ``show_bar=False``) and log lines on ``stderr``.
    ``enabled=False``: silent, nothing written anywhere (ranks other than 0). ``log_path``:
    every event is also appended to that file (any mode).
    ETA is extrapolated from the steps done in *this* process (a resumed run starts its clock
    at the resumed step) and capped by ``deadline_s`` (a time budget) when given.
    """

    def __init__(self, mode: str = "none", *, total: int | None = None, desc: str = "",
                 enabled: bool = True, stdout: IO[str] | None = None,
                 stderr: IO[str] | None = None, log_path: str | Path | None = None,
                 show_bar: bool = True) -> None:
        if mode not in EVENT_MODES:
            raise InputError(f"unknown --events mode '{mode}'; choose one of: {', '.join(EVENT_MODES)}")
        self.mode, self.total, self.desc, self.enabled = mode, total, desc, enabled
        self.show_bar = show_bar
        self._out = stdout if stdout is not None else sys.stdout
        self._err = stderr if stderr is not None else sys.stderr
        self._log_path = Path(log_path) if log_path else None
        self._t0 = time.monotonic()
        self._first_step: int | None = None
        self.deadline_s: float | None = None
        self._bar: Any = None
        self.last_step = 0

    # -- timing -------------------------------------------------------------------------------
    @property
    def elapsed_s(self) -> float:
        return time.monotonic() - self._t0

    def eta_s(self, step: int) -> float | None:
        """Seconds left: remaining steps at the observed rate, capped by the time budget."""
        eta = None
        if self.total is not None and self._first_step is not None and step > self._first_step:
            rate = self.elapsed_s / (step - self._first_step)
            eta = max(0.0, (self.total - step) * rate)
        if self.deadline_s is not None:
            left = max(0.0, self.deadline_s - self.elapsed_s)
            eta = left if eta is None else min(eta, left)
        return eta

    # -- events -------------------------------------------------------------------------------
    def emit(self, kind: str, step: int | None = None, /, **fields: Any) -> dict[str, Any]:
        """Build, write and return one event (``step`` defaults to the last step seen)."""
        step = self.last_step if step is None else int(step)
        self.last_step = step
        event = make_event(kind, step=step, total=self.total, elapsed_s=self.elapsed_s,
                           eta_s=self.eta_s(step), **fields)
        if not self.enabled:
            return event
        line = format_event(event)
        if self._log_path is not None:
            self._log_path.parent.mkdir(parents=True, exist_ok=True)
            with open(self._log_path, "a", encoding="utf-8") as fh:
                fh.write(line + "\n")
        if self.mode == "jsonl":
            self._out.write(line + "\n")
            self._out.flush()
        return event

    def start(self, step: int = 0, total: int | None = None, **fields: Any) -> dict[str, Any]:
        if total is not None:
            self.total = int(total)
        self._t0 = time.monotonic()
        self._first_step = int(step)
        if self.enabled and self.mode == "none" and self.show_bar:
            self._open_bar(step)
        return self.emit("start", step, **fields)

    def progress(self, step: int, **fields: Any) -> dict[str, Any]:
        if self._bar is not None:
            if self.total is not None and self._bar.total != self.total:   # a budget re-aimed the run
                self._bar.total = int(self.total)
            self._bar.n = int(step)
            shown = {k: f"{v:.4g}" for k, v in fields.items() if isinstance(v, float)}
            self._bar.set_postfix(shown, refresh=False)
            self._bar.refresh()
        return self.emit("progress", step, **fields)

    def validation(self, step: int, metrics: dict[str, Any], **fields: Any) -> dict[str, Any]:
        shown = ", ".join(f"{k} {v:.3f}" for k, v in metrics.items() if isinstance(v, float))
        self.log(f"validation at step {step}: {shown}")
        return self.emit("validation", step, metrics=metrics, **fields)

    def checkpoint(self, step: int, path: str | Path, **fields: Any) -> dict[str, Any]:
        self.log(f"checkpoint at step {step}: {path}")
        return self.emit("checkpoint", step, path=str(path), **fields)

    def warning(self, message: str, step: int | None = None, **fields: Any) -> dict[str, Any]:
        """A ``warning`` event (the work went on, but the user should know: a tumor cut by the
        scan's edge, an organ too thin for the stage), also printed on stderr in every mode."""
        self.log(f"warning: {message}")
        return self.emit("warning", step, message=message, **fields)

    def done(self, step: int | None = None, **fields: Any) -> dict[str, Any]:
        self.close()
        return self.emit("done", step, **fields)

    def error(self, message: str, step: int | None = None, *, log_only: bool = False,
              **fields: Any) -> dict[str, Any]:
        """An ``error`` event; ``log_only`` writes it to ``log_path`` alone (when the caller,
        e.g. the CLI's error handler, puts the error event on stdout itself)."""
        self.close()
        if log_only:
            mode, self.mode = self.mode, "none"
            try:
                return self.emit("error", step, message=message, **fields)
            finally:
                self.mode = mode
        return self.emit("error", step, message=message, **fields)

    # -- people -------------------------------------------------------------------------------
    def log(self, message: str) -> None:
        """One line of human text on stderr (above the bar when one is shown)."""
        if not self.enabled:
            return
        if self._bar is not None:
            self._bar.write(message, file=self._err)
        else:
            print(message, file=self._err, flush=True)

    def _open_bar(self, step: int) -> None:
        from tqdm import tqdm

        self._bar = tqdm(total=self.total, initial=step, desc=self.desc or None, file=self._err,
                         dynamic_ncols=True, leave=True, delay=BAR_DELAY_S)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None


@contextmanager
def event_session(mode: str, **kwargs: Any) -> Iterator[EventStream]:
    """An EventStream for a command. In ``jsonl`` mode ``sys.stdout`` is pointed at stderr for
    the duration, so stray prints from any library cannot corrupt the event stream."""
    real_stdout = sys.stdout
    stream = EventStream(mode, stdout=real_stdout, **kwargs)
    if mode == "jsonl":
        sys.stdout = sys.stderr
    try:
        yield stream
    finally:
        stream.close()
        sys.stdout = real_stdout


def run_sessions(events_path: str | Path) -> list[dict[str, Any]]:
    """The sessions of a training run (a resumed run has several) from its ``events.jsonl``:
    first and last step, loop seconds and why each ended; a session without a ``done`` event
    (killed, or still running) ends at its last progress event; a line that is not an event (the
    half-written last line of a killed run) is skipped, and so are sessions without a step. What
    a record of the run's total training time is built from."""
    sessions: list[dict[str, Any]] = []
    current: dict[str, Any] | None = None
    for line in Path(events_path).read_text(encoding="utf-8").splitlines():
        try:
            event = parse_event(line)
        except InputError:
            continue
        kind = event.get("event")
        if kind == "start":
            if current is not None:
                sessions.append(current)
            current = {"from_step": int(event["step"]), "to_step": int(event["step"]), "loop_s": 0.0,
                       "reason": "no done event (killed or still running)", "ended_utc": event.get("time")}
        elif current is not None and kind in ("progress", "done"):
            current.update(to_step=int(event["step"]), loop_s=round(float(event.get("elapsed_s") or 0.0), 1),
                           ended_utc=event.get("time"))
            if kind == "done":
                current["reason"] = event.get("reason")
                sessions.append(current)
                current = None
    if current is not None:
        sessions.append(current)
    return [seg for seg in sessions if seg["to_step"] > seg["from_step"]]


__all__ = [
    "EVENT_KINDS",
    "EVENT_MODES",
    "PROTOCOL_VERSION",
    "EventStream",
    "event_session",
    "format_event",
    "make_event",
    "parse_event",
    "run_sessions",
]
