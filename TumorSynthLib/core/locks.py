"""One run per output folder: a lock file that says who holds the folder.

``folder_lock(folder, command)`` creates ``<folder>/.tumorsynth.lock`` atomically (the content is
written to a temporary file first and hard-linked into place, so a lock is never seen half
written). It holds the pid, host, start time and command of the run. A second run on the same
folder is refused with an ``InputError`` (exit 2) that names the holder; a lock left by a
process that no longer exists (``kill -9``, a power cut) is stale and taken over. The lock is
removed when the run ends.

Several locks may share a folder when they say they are compatible (``key`` gives each its own
file, ``compatible`` decides): ``generate --shard I/N`` runs with the same N and settings write
disjoint outputs into one folder.

``pid_alive`` is also used to clean up the staging folders of dead runs (``core.files``).
"""
from __future__ import annotations

import ctypes
import json
import os
import socket
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from .errors import InputError

LOCK_PREFIX, LOCK_SUFFIX = ".tumorsynth", ".lock"


def _proc_stat(pid: int) -> list[str] | None:
    """Fields after the command name of /proc/<pid>/stat (Linux), None when unavailable."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return text.rpartition(")")[2].split()


def process_start_ticks(pid: int) -> int | None:
    """The start time of ``pid`` in clock ticks since boot (Linux), None elsewhere: with the
    pid it names one process even after the pid is reused."""
    fields = _proc_stat(pid)
    try:
        return int(fields[19]) if fields else None
    except (IndexError, ValueError):
        return None


def pid_alive(pid: int, start_ticks: int | None = None) -> bool:
    """True when process ``pid`` (started at ``start_ticks``, when known) still runs on this
    machine. Zombies count as dead."""
    if not isinstance(pid, int) or pid <= 0:
        return False
    if sys.platform == "win32":
        return _windows_pid_alive(pid)
    fields = _proc_stat(pid)
    if fields is not None:
        if fields[0] in ("Z", "X"):
            return False
        return start_ticks is None or process_start_ticks(pid) in (None, start_ticks)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    except OSError:
        return False
    return True


def _windows_pid_alive(pid: int) -> bool:  # pragma: no cover - Windows only
    kernel = ctypes.windll.kernel32
    handle = kernel.OpenProcess(0x00100000 | 0x1000, False, pid)  # SYNCHRONIZE | QUERY_LIMITED
    if not handle:
        return False
    try:
        return kernel.WaitForSingleObject(handle, 0) == 0x102  # WAIT_TIMEOUT: still running
    finally:
        kernel.CloseHandle(handle)


@dataclass
class LockInfo:
    """What a lock file holds."""

    pid: int
    host: str
    command: str
    started: str
    start_ticks: int | None = None
    token: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def mine(cls, command: str, extra: dict[str, Any] | None = None) -> "LockInfo":
        return cls(pid=os.getpid(), host=socket.gethostname(), command=command,
                   started=time.strftime("%Y-%m-%d %H:%M:%S"), start_ticks=process_start_ticks(os.getpid()),
                   token=uuid.uuid4().hex, extra=dict(extra or {}))

    @classmethod
    def read(cls, path: Path) -> "LockInfo | None":
        """The lock at ``path``, None when it is gone; an unreadable lock names no process."""
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            return cls(pid=int(data["pid"]), host=str(data["host"]), command=str(data.get("command", "?")),
                       started=str(data.get("started", "?")), start_ticks=data.get("start_ticks"),
                       token=str(data.get("token", "")), extra=dict(data.get("extra") or {}))
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError, TypeError):
            return cls(pid=-1, host=socket.gethostname(), command="?", started="?")

    def alive(self) -> bool:
        """Held by a running process (a lock of another host is assumed to be)."""
        if self.host != socket.gethostname():
            return True
        return pid_alive(self.pid, self.start_ticks)

    def describe(self) -> str:
        return f"pid {self.pid} on {self.host}, started {self.started}: {self.command}"


class FolderLock:
    """A held lock (see ``folder_lock``); ``release()`` or leaving the ``with`` block frees it."""

    def __init__(self, path: Path, info: LockInfo) -> None:
        self.path, self.info = path, info

    def release(self) -> None:
        held = LockInfo.read(self.path)
        if held is not None and held.token == self.info.token:
            self.path.unlink(missing_ok=True)

    def __enter__(self) -> "FolderLock":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.release()


def lock_path(folder: str | Path, key: str = "") -> Path:
    return Path(folder) / f"{LOCK_PREFIX}{'-' + key if key else ''}{LOCK_SUFFIX}"


def folder_lock(folder: str | Path, command: str, *, key: str = "", extra: dict[str, Any] | None = None,
                compatible: Callable[[LockInfo, LockInfo], bool] | None = None,
                what: str = "--out") -> FolderLock:
    """Take the lock of ``folder`` (created if needed) for ``command``; InputError naming the
    holder when a live run holds it (or holds an incompatible lock of the same folder)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    path = lock_path(folder, key)
    info = LockInfo.mine(command, extra)
    for _ in range(20):
        if _create(path, info):
            break
        held = LockInfo.read(path)
        if held is None:
            continue
        if held.alive():
            raise _busy(folder, path, held, what)
        _take_over(path, held)
    else:
        raise InputError(f"cannot take the lock '{path}' (it keeps changing); retry, or delete it if no "
                         "tumorsynth run uses the folder")
    lock = FolderLock(path, info)
    for other in sorted(folder.glob(f"{LOCK_PREFIX}*{LOCK_SUFFIX}")):
        held = LockInfo.read(other) if other != path else None
        if held is None or not held.alive():
            continue
        if compatible is None or not compatible(info, held):
            lock.release()
            raise _busy(folder, other, held, what)
    return lock


def _busy(folder: Path, path: Path, held: LockInfo, what: str) -> InputError:
    return InputError(f"{what} '{folder}' is in use by another tumorsynth run ({held.describe()}); wait for "
                      f"it to end or choose another {what} (if that run is gone, delete '{path}')")


def _create(path: Path, info: LockInfo) -> bool:
    """Create the lock with its full content in one step; False when one exists."""
    tmp = path.with_name(f"{path.name}.{info.token}.tmp")
    try:
        tmp.write_text(json.dumps(info.__dict__) + "\n", encoding="utf-8")
        os.link(tmp, path)
        return True
    except FileExistsError:
        return False
    except OSError as exc:
        raise InputError(f"cannot create the lock file '{path}' ({exc.strerror or exc}); choose a folder "
                         "you can write to") from None
    finally:
        tmp.unlink(missing_ok=True)


def _take_over(path: Path, stale: LockInfo) -> None:
    """Remove a stale lock, unless another run replaced it meanwhile (then it is put back)."""
    aside = path.with_name(f"{path.name}.stale-{os.getpid()}-{uuid.uuid4().hex[:8]}")
    try:
        os.rename(path, aside)
    except FileNotFoundError:
        return
    moved = LockInfo.read(aside)
    if moved is not None and moved.token != stale.token:
        try:
            os.link(aside, path)            # a fresh lock: give it back
        except FileExistsError:
            pass
    aside.unlink(missing_ok=True)


__all__ = ["FolderLock", "LockInfo", "folder_lock", "lock_path", "pid_alive", "process_start_ticks"]
