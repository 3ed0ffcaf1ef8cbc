"""The ``tumorsynth`` command line: one module per command in this package.

Adding a command: write ``TumorSynthLib/cli/<name>.py`` with
``add_parser(subparsers) -> argparse.ArgumentParser`` (use ``common.command_parser``, which adds
the common flags and ``set_defaults(run=...)``; ``run(args) -> int``) and append ``<name>`` to
``COMMAND_MODULES`` (a module ``a_b`` may register the command ``a-b``, as ``export_dicom`` does).
Command modules import heavy packages inside ``run`` so ``--help`` is fast.
"""
from __future__ import annotations

import argparse
import importlib
import sys
from typing import Sequence

from .. import __version__
from .common import EXIT_OK, EXIT_USER_ERROR, OneLineParser, run_command

#: Command modules, in the order ``tumorsynth --help`` lists them.
COMMAND_MODULES = ["synth", "demo", "info", "generate", "train", "train_diffusion", "train_adversarial", "segment",
                   "evaluate", "models", "readerstudy", "export_dicom", "web"]

EPILOG = """examples:
  tumorsynth demo --out demo-output/
  tumorsynth synth --image ct.nii.gz --organs organs.nii.gz \\
      --tumor "organ=liver,stage=early,diameter=15,point=-60:10:120,seed=3" --out case1/
  tumorsynth info --json

run 'tumorsynth COMMAND --help' for the options and examples of one command.
Every synthetic image written is marked as synthetic (file header and report.json)."""


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(
        prog="tumorsynth",
        description="Realistic synthetic tumors in CT scans (liver, pancreas, kidney).",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"tumorsynth {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMAND_MODULES:
        importlib.import_module(f"{__name__}.{name}").add_parser(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``tumorsynth`` with ``argv`` (default ``sys.argv[1:]``); returns the exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, --version or a usage error (argparse printed it)
        code = exc.code
        return EXIT_OK if code in (None, 0) else (code if isinstance(code, int) else EXIT_USER_ERROR)
    args.argv = argv
    return run_command(args)


__all__ = ["COMMAND_MODULES", "build_parser", "main"]
