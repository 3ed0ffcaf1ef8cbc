"""What every ``tumorsynth`` command shares: the common flags, sub-parser creation, error
printing and exit codes, JSON output helpers.

Exit codes: 0 success; 2 a TumorSynthError (bad input, placement, missing dependency, ...: the
message says what to do) or a command-line usage error; 1 an unexpected failure; 130 Ctrl-C.
"""
from __future__ import annotations

import argparse
import math
import sys
import traceback
from pathlib import Path
from typing import Any, Callable, NoReturn

from ..core.errors import TumorSynthError
from ..core.events import format_event, make_event
from ..core.files import write_json_atomic

EXIT_OK, EXIT_FAILURE, EXIT_USER_ERROR, EXIT_INTERRUPTED = 0, 1, 2, 130


class OneLineParser(argparse.ArgumentParser):
    """An ArgumentParser whose usage errors are one line on stderr (what is wrong and where
    the help is) and exit code 2."""

    def error(self, message: str) -> NoReturn:  # type: ignore[override]
        print(f"error: {one_line(message)} (see '{self.prog} --help')", file=sys.stderr)
        raise SystemExit(EXIT_USER_ERROR)


def finite_float(text: str) -> float:
    """argparse type: a finite number (``nan`` and ``inf`` are refused)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got '{text}'") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"expected a finite number, got '{text}'")
    return value


def add_common_flags(parser: argparse.ArgumentParser) -> None:
    """``--events none|jsonl``, ``--device auto|cpu|cuda``, ``--seed``, ``--debug``."""
    group = parser.add_argument_group("common options")
    group.add_argument("--events", choices=("none", "jsonl"), default="none",
                       help="'jsonl': stdout carries only JSON event lines (for programs such "
                            "as the Slicer module); human text always goes to stderr "
                            "(default: none)")
    group.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto",
                       help="where torch code runs (default: auto = cuda when available)")
    group.add_argument("--seed", type=int, default=0,
                       help="random seed; the same seed gives the same output bytes (default: 0)")
    group.add_argument("--debug", action="store_true",
                       help="print the full traceback when something fails")


def command_parser(
    subparsers: Any, name: str, *, help: str, description: str, epilog: str,
    run: Callable[[argparse.Namespace], int],
) -> argparse.ArgumentParser:
    """A sub-command parser with examples in its epilog, the common flags and ``run`` set."""
    parser = subparsers.add_parser(
        name, help=help, description=description, epilog=epilog,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_common_flags(parser)
    parser.set_defaults(run=run)
    return parser


def run_command(args: argparse.Namespace) -> int:
    """Call ``args.run(args)`` turning failures into one line on stderr (plus an ``error``
    event on stdout with ``--events jsonl``) and an exit code."""
    debug = bool(getattr(args, "debug", False))
    try:
        return int(args.run(args) or 0)
    except TumorSynthError as exc:
        error: BaseException = exc
        message, code = one_line(str(exc)), EXIT_USER_ERROR
    except KeyboardInterrupt as exc:
        error, message, code = exc, "interrupted", EXIT_INTERRUPTED
    except Exception as exc:  # anything unexpected: one line unless --debug
        error, message, code = exc, f"{type(exc).__name__}: {one_line(str(exc))}", EXIT_FAILURE
    if debug:
        traceback.print_exception(error, file=sys.stderr)
    hint = " (run with --debug for the traceback)" if code == EXIT_FAILURE and not debug else ""
    print(f"error: {message}{hint}", file=sys.stderr)
    if getattr(args, "events", "none") == "jsonl":
        print(format_event(make_event("error", message=message, exit_code=code)), flush=True)
    return code


def one_line(text: str) -> str:
    return " ".join(text.split())


def write_json(path: Path, data: Any) -> Path:
    """Indented JSON written atomically (``core.files``: same data, same bytes)."""
    return write_json_atomic(path, data)
