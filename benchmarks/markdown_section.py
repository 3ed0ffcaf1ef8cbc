"""Shared helpers of the benchmarks that record their results in ``docs/benchmarks.md``.

Each benchmark owns one section of that file, between ``<!-- NAME:start -->`` and
``<!-- NAME:end -->``; rerunning it replaces its own section and leaves the others alone.
"""
from __future__ import annotations

import datetime
import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any, Callable, Sequence

REPO = Path(__file__).resolve().parents[1]
BENCHMARKS_MD = REPO / "docs" / "benchmarks.md"
HEADER = """# Benchmarks (recorded results)

Each section is written by the script it names; rerun the command shown in it to reproduce the
figures. The machine: 2 shared CPU cores unless a section says otherwise.
"""


#: What the benchmarks write themselves: not a change of the code they measure.
RECORD_FILES = "docs/benchmarks.md"


def code_version() -> str:
    """The code a figure came from: the git commit (and "with uncommitted changes" when tracked
    files other than the records themselves differ from it) and the package version."""
    from TumorSynthLib import __version__

    def git(*args: str) -> str:
        try:
            return subprocess.run(["git", "-C", str(REPO), *args], capture_output=True, text=True,
                                  timeout=10, check=True).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return ""

    commit = git("rev-parse", "--short=10", "HEAD")
    if not commit:
        return f"tumorsynth {__version__} (not a git checkout)"
    changed = git("status", "--porcelain", "--untracked-files=no", "--", ".", f":(exclude){RECORD_FILES}")
    dirty = " with uncommitted changes" if changed else ""
    return f"commit {commit}{dirty}, tumorsynth {__version__}"


def write_section(name: str, body: str, path: Path = BENCHMARKS_MD) -> Path:
    """Replace (or append) the section ``name`` of ``path`` with ``body`` and a line saying
    when and from which code (``code_version``) it was recorded (atomic write)."""
    start, end = f"<!-- {name}:start -->", f"<!-- {name}:end -->"
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    block = f"{start}\n{body.rstrip()}\n\nRecorded {stamp} from {code_version()}.\n{end}\n"
    text = path.read_text(encoding="utf-8") if path.exists() else HEADER
    pattern = re.compile(re.escape(start) + r".*?" + re.escape(end) + r"\n?", re.DOTALL)
    text = pattern.sub(lambda _m: block, text) if pattern.search(text) else text.rstrip() + "\n\n" + block
    tmp = path.with_name(f".{path.name}.tmp")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)
    return path


def table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A GitHub markdown table; floats get 3 decimals, None prints as "n/a"."""
    def cell(v: Any) -> str:
        if v is None:
            return "n/a"
        if isinstance(v, float):
            return f"{v:.3f}"
        return str(v)

    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(" --- " for _ in header) + "|"]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def command_line(script: str, argv: Sequence[str] | None) -> str:
    """The command that reproduces a run (``python benchmarks/<script> ARGS``)."""
    return "python " + shlex.join([f"benchmarks/{script}", *(argv if argv is not None else sys.argv[1:])])


def record_results(name: str, res: dict[str, Any], text: str, out: Path, write_doc: bool,
                   log: Callable[[str], None]) -> None:
    """A benchmark's ending: ``out/<name>.json`` (with ``code_version``), the markdown printed
    and, unless ``write_doc`` is False, written as its section of ``docs/benchmarks.md``."""
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{name}.json").write_text(json.dumps({**res, "code": code_version()}, indent=1, default=float) + "\n")
    print(text)
    if write_doc:
        log(f"wrote the {name} section of {write_section(name, text)}")


__all__ = ["BENCHMARKS_MD", "code_version", "command_line", "record_results", "table", "write_section"]
