"""Writing files so that nothing is ever half-written or lost, and JSON that is stable.

Every file the project writes goes through ``atomic_path`` (or the helpers built on it): the
content is written to a temporary file in the destination's folder, flushed to disk (fsync),
then renamed over the destination with ``os.replace``. A reader, a crash or ``kill -9`` sees the
old file or the new one, never a mix. ``os.replace`` replaces a symlink at the destination
instead of writing through it, so a planted link cannot redirect an output. A full disk is a
``ResourceError``, an unwritable place an ``InputError`` (both: exit 2, nothing half-written).

``staged_folder`` does the same for a folder of files (a synthetic case: image, labels, report,
preview): it is built as ``.tmp-<name>.<pid>`` beside the destination and swapped into place
only when complete (one atomic exchange where the system has it, else two renames whose
interruption ``recover_staged`` repairs: the previous folder comes back).

Names that come from input data (case ids, file names) become file names only through
``safe_name`` and ``path_inside``, which prove the result stays inside the output folder.

``to_jsonable`` is the one JSON cleaner: numpy / torch scalars and arrays become Python values,
paths become strings, NaN / inf become null, dict keys become strings.
"""
from __future__ import annotations

import ctypes
import errno
import glob
import hashlib
import json
import math
import os
import re
import shutil
import sys
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Collection, Iterator

from .errors import InputError, ResourceError
from .locks import pid_alive

#: errno values that mean "no space left": a ResourceError (free space, rerun).
_FULL = {errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC), errno.EFBIG}
#: errno values that mean "this place cannot be written": an InputError (choose another).
_UNWRITABLE = {errno.EACCES, errno.EPERM, errno.EROFS, errno.ENOTDIR, errno.EISDIR, errno.EEXIST,
               errno.ENAMETOOLONG, errno.ENOENT, errno.ELOOP, errno.EINVAL}
_STAGE, _OLD = ".tmp-", ".old-"
_NAME_OK = re.compile(r"[^A-Za-z0-9._+-]+")


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


def shown(value: Any) -> str:
    """``value`` as users should read it in a message: numpy / torch scalars as plain numbers
    (never ``np.float64(...)``), strings quoted."""
    return repr(to_jsonable(value))


def json_text(data: Any) -> str:
    """Indented UTF-8 JSON with a final newline: the same data give the same bytes."""
    return json.dumps(to_jsonable(data), indent=2, allow_nan=False) + "\n"


def write_error(exc: OSError, path: str | Path) -> Exception:
    """The project error for an OSError met while writing ``path``: ResourceError for a full
    disk, InputError for a place that cannot be written; other errors are returned as they are."""
    reason = exc.strerror or str(exc)
    if exc.errno in (errno.EEXIST, errno.ENOTDIR):
        reason = f"{reason}: a file is in the way of a folder on that path"
    if exc.errno in _FULL:
        return ResourceError(f"no space left while writing '{path}' ({reason}); free some disk space "
                             "and rerun (nothing was half-written)")
    if exc.errno in _UNWRITABLE:
        return InputError(f"cannot write '{path}' ({reason}); choose an output location you can write to")
    return exc


def _check_destination(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        raise InputError(f"cannot write the file '{path}': a folder of that name is in the way; "
                         "remove it or choose another output folder")


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it is fsynced and renamed onto
    ``path`` (atomic), on failure removed. For writers that need a file name (nibabel, ...).
    The temporary name holds the writer's pid, so the next write of ``path`` removes what a
    killed writer left."""
    dest = Path(path)
    suffix = f"-{dest.name}"[-64:]
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        _check_destination(dest)
        _remove_dead_temp_files(dest.parent, suffix)
        fd, tmp_name = tempfile.mkstemp(prefix=f"{_STAGE}{os.getpid()}-", suffix=suffix, dir=dest.parent)
        os.close(fd)
    except OSError as exc:
        raise write_error(exc, dest) from None
    tmp = Path(tmp_name)
    try:
        yield tmp
        _fsync_file(tmp)
        os.replace(tmp, dest)
        _fsync_dir(dest.parent)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        mapped = write_error(exc, dest)
        if mapped is exc:
            raise
        raise mapped from exc
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _remove_dead_temp_files(parent: Path, suffix: str) -> None:
    """Remove the temporary files (``.tmp-<pid>-...<suffix>``) that a killed writer of the same
    destination left beside it (its process is gone; a live one's file is left alone)."""
    for tmp in parent.glob(f"{_STAGE}*{glob.escape(suffix)}"):
        pid = tmp.name[len(_STAGE):].partition("-")[0]
        if pid.isdigit() and tmp.is_file() and not tmp.is_symlink() and not pid_alive(int(pid)):
            tmp.unlink(missing_ok=True)


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


def copy_file_atomic(src: str | Path, dest: str | Path) -> Path:
    """Copy ``src`` to ``dest`` atomically."""
    with atomic_path(dest) as tmp:
        shutil.copyfile(src, tmp)
    return Path(dest)


def save_figure(fig: Any, path: str | Path, **kwargs: Any) -> Path:
    """``fig.savefig`` (matplotlib) written atomically; the format follows ``path``'s suffix."""
    dest = Path(path)
    with atomic_path(dest) as tmp:
        fig.savefig(tmp, format=dest.suffix.lstrip(".") or "png", **kwargs)
    return dest


def sha256_file(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


# -- names from input data ------------------------------------------------------------------------
def safe_name(text: Any, what: str = "name", max_len: int = 120) -> str:
    """A file name made from ``text`` (a case id, a file stem): only letters, digits and
    ``. _ + -``; other runs become ``_``; no leading dot (never hidden, never ``..``). InputError
    when nothing usable remains."""
    name = _NAME_OK.sub("_", str(text)).lstrip("._").rstrip("_")
    name = name[:max_len].rstrip(".")
    if not name or set(name) <= {"_", "."}:
        raise InputError(f"the {what} {shown(str(text))} gives no usable file name; use letters, digits, "
                         "'.', '_' or '-'")
    return name


def path_inside(folder: str | Path, *parts: str) -> Path:
    """``folder / parts...`` (as given), proven to resolve inside ``folder`` (symlinks followed);
    InputError otherwise."""
    root = Path(folder).expanduser().resolve()
    path = Path(folder).joinpath(*parts)
    resolved = root.joinpath(*parts).resolve()
    if resolved != root and root not in resolved.parents:
        raise InputError(f"the output name {shown('/'.join(parts))} would leave the output folder '{root}'; "
                         "rename the input case")
    return path


# -- output folders ---------------------------------------------------------------------------------
def prepare_output_folder(path: str | Path, what: str = "--out") -> Path:
    """Create the output folder ``path`` if needed and prove a file can be written in it;
    InputError (one line saying what to do) otherwise. Run before any long work."""
    folder = Path(path).expanduser()
    if folder.exists() and not folder.is_dir():
        raise InputError(f"{what} '{folder}' is a file, not a folder; choose a folder")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".probe-", dir=folder)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        mapped = write_error(exc, folder)
        if isinstance(mapped, ResourceError):
            raise mapped from None
        reason = str(mapped).partition("(")[2].rpartition(")")[0] if mapped is not exc else str(exc)
        raise InputError(f"cannot write into {what} '{folder}' ({reason}); choose a folder you can write to") from None
    return folder


def foreign_entries(folder: Path, allowed: Collection[str]) -> list[str]:
    """Names in ``folder`` that are neither in ``allowed`` nor our own hidden files."""
    if not folder.is_dir():
        return []
    return sorted(p.name for p in folder.iterdir()
                  if p.name not in allowed and not p.name.startswith((_STAGE, _OLD, ".tumorsynth", ".probe-")))


def _stage_pid(stage: Path) -> int | None:
    tail = stage.name.rpartition(".")[2]
    return int(tail) if tail.isdigit() else None


def recover_staged(parent: str | Path, name: str | None = None) -> None:
    """Repair what an interrupted ``staged_folder`` left in ``parent`` (for ``name``, or for
    every name): a ``.old-<name>`` whose swap did not finish is put back (the previous complete
    folder returns) or removed (the swap finished); staging folders of dead runs are removed."""
    parent = Path(parent)
    if not parent.is_dir():
        return
    for old in parent.glob(f"{_OLD}{name if name is not None else '*'}"):
        dest = parent / old.name[len(_OLD):]
        if dest.exists() or dest.is_symlink():
            _remove(old)
        else:
            os.replace(old, dest)
    for stage in parent.glob(f"{_STAGE}{name if name is not None else '*'}.*"):
        pid = _stage_pid(stage)
        if stage.is_dir() and pid is not None and not pid_alive(pid):
            _remove(stage)


@contextmanager
def staged_folder(final: str | Path, allowed: Collection[str] | None = None) -> Iterator[Path]:
    """Build a folder as ``.tmp-<name>.<pid>`` beside ``final`` and swap it into place when the
    block succeeds: an existing ``final`` is replaced as a whole, a failed block leaves it as it
    was. With ``allowed``, an existing ``final`` holding other names is refused (InputError):
    it is not ours to replace. A symlink at ``final`` is replaced, never followed."""
    dest = Path(final)
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        recover_staged(dest.parent, dest.name)
    except OSError as exc:
        raise write_error(exc, dest) from None
    if dest.exists() and not dest.is_symlink() and not dest.is_dir():
        raise InputError(f"'{dest}' is a file, not a folder; choose another output folder")
    if allowed is not None and dest.is_dir() and not dest.is_symlink():
        others = foreign_entries(dest, allowed)
        if others:
            raise InputError(f"'{dest}' holds files TumorSynth did not write ({', '.join(others[:4])}); its "
                             "outputs replace the folder as a whole: choose a new or empty folder")
    stage = dest.with_name(f"{_STAGE}{dest.name}.{os.getpid()}")
    _remove(stage)
    try:
        stage.mkdir()
    except OSError as exc:
        raise write_error(exc, dest) from None
    try:
        yield stage
        for item in stage.iterdir():
            if item.is_file():
                _fsync_file(item)
        _fsync_dir(stage)
        _swap_into_place(stage, dest)
    except OSError as exc:
        _remove(stage)
        mapped = write_error(exc, dest)
        if mapped is exc:
            raise
        raise mapped from exc
    except BaseException:
        _remove(stage)
        raise


def _swap_into_place(stage: Path, dest: Path) -> None:
    """Put ``stage`` at ``dest``: one atomic exchange when possible (the old folder ends in
    ``stage`` and is removed), else two renames via ``.old-<name>`` (see ``recover_staged``)."""
    if dest.is_dir() and not dest.is_symlink() and _exchange(stage, dest):
        _fsync_dir(dest.parent)
        _remove(stage)
        return
    old = dest.with_name(f"{_OLD}{dest.name}")
    moved = False
    if dest.exists() or dest.is_symlink():
        _remove(old)
        os.replace(dest, old)
        moved = True
    os.replace(stage, dest)
    _fsync_dir(dest.parent)
    if moved:
        _remove(old)


def _exchange(a: Path, b: Path) -> bool:
    """Atomically exchange two paths (Linux renameat2 RENAME_EXCHANGE); False when unsupported."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError):
        return False
    at_fdcwd, rename_exchange = -100, 2
    result = renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange)
    return result == 0


def _remove(path: Path) -> None:
    if path.is_symlink() or path.is_file():
        path.unlink(missing_ok=True)
    elif path.is_dir():
        shutil.rmtree(path, ignore_errors=True)


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


__all__ = ["atomic_path", "copy_file_atomic", "foreign_entries", "json_text", "path_inside",
           "prepare_output_folder", "recover_staged", "safe_name", "save_figure", "sha256_file", "shown",
           "split_timing", "staged_folder", "to_jsonable", "write_bytes_atomic", "write_error",
           "write_json_atomic", "write_text_atomic"]
