"""Writing files so that nothing is ever half-written or lost, and JSON that is stable.

Every file the project writes goes through ``atomic_path`` (or the helpers built on it): the
content is written to a temporary file in the destination's folder, flushed to disk (fsync),
then renamed over the destination with ``os.replace``. A reader, a crash or ``kill -9`` sees the
old file or the new one, never a mix. ``os.replace`` replaces a symlink at the destination
instead of writing through it, so a planted link cannot redirect an output.

``staged_folder`` does the same for a folder of files (a synthetic case: image, labels, report,
preview): it is built as ``.tmp-<name>`` and renamed into place only when complete.

``to_jsonable`` is the one JSON cleaner: numpy / torch scalars and arrays become Python values,
paths become strings, NaN / inf become null, dict keys become strings.
"""
from __future__ import annotations

import json
import math
import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

from .errors import InputError


def to_jsonable(value: Any) -> Any:
    """A JSON-ready copy of ``value`` (see the module docstring)."""
    if isinstance(value, dict):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [to_jsonable(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    if hasattr(value, "tolist") and callable(value.tolist):  # numpy scalar / array, torch tensor
        return to_jsonable(value.tolist())
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def json_text(data: Any) -> str:
    """Indented UTF-8 JSON with a final newline: the same data give the same bytes."""
    return json.dumps(to_jsonable(data), indent=2, allow_nan=False) + "\n"


def _check_destination(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        raise InputError(f"cannot write the file '{path}': a folder of that name is in the way; "
                         "remove it or choose another output folder")


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it is fsynced and renamed onto
    ``path`` (atomic), on failure removed. For writers that need a file name (nibabel, ...)."""
    dest = Path(path)
    dest.parent.mkdir(parents=True, exist_ok=True)
    _check_destination(dest)
    fd, tmp_name = tempfile.mkstemp(prefix=".tmp-", suffix=f"-{dest.name}", dir=dest.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        _fsync_file(tmp)
        os.replace(tmp, dest)
        _fsync_dir(dest.parent)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_bytes_atomic(path: str | Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically (see the module docstring)."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def write_text_atomic(path: str | Path, text: str) -> Path:
    return write_bytes_atomic(path, text.encode("utf-8"))


def write_json_atomic(path: str | Path, data: Any) -> Path:
    """``json_text(data)`` written atomically."""
    return write_text_atomic(path, json_text(data))


@contextmanager
def staged_folder(final: str | Path) -> Iterator[Path]:
    """Build a folder as ``.tmp-<name>`` beside ``final`` and rename it into place when the
    block succeeds (an existing ``final`` is replaced; a failed block leaves ``final`` as it
    was and removes the staging folder)."""
    dest = Path(final)
    dest.parent.mkdir(parents=True, exist_ok=True)
    stage = dest.with_name(f".tmp-{dest.name}")
    if stage.exists():
        shutil.rmtree(stage)
    stage.mkdir()
    try:
        yield stage
        for item in stage.iterdir():
            if item.is_file():
                _fsync_file(item)
        old = dest.with_name(f".old-{dest.name}")
        if dest.exists() or dest.is_symlink():
            if old.exists():
                shutil.rmtree(old)
            os.replace(dest, old)
        os.replace(stage, dest)
        _fsync_dir(dest.parent)
        if old.exists():
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        raise


def split_timing(report: Any, where: str = "") -> tuple[Any, dict[str, Any]]:
    """``report`` without its ``timing`` entries, and those entries keyed by where they were,
    so that a written report has exactly one ``timing`` object (the only part that may differ
    between two runs with the same seed)."""
    timings: dict[str, Any] = {}
    if isinstance(report, dict):
        clean = {}
        for key, value in report.items():
            if key == "timing":
                timings[where or "case"] = value
                continue
            clean[key], inner = split_timing(value, f"{where}.{key}" if where else str(key))
            timings.update(inner)
        return clean, timings
    if isinstance(report, list):
        out = []
        for i, value in enumerate(report):
            item, inner = split_timing(value, f"{where}[{i}]")
            out.append(item)
            timings.update(inner)
        return out, timings
    return report, timings


def _fsync_file(path: Path) -> None:
    with open(path, "rb") as fh:
        os.fsync(fh.fileno())


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


__all__ = ["atomic_path", "json_text", "split_timing", "staged_folder", "to_jsonable", "write_bytes_atomic",
           "write_json_atomic", "write_text_atomic"]
