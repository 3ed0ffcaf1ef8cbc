"""``tumorsynth web``: the browser front end (3D Slicer's views through trame-slicer).

The front end lives in the ``TumorSynthWeb`` package (installed with the ``[web]`` extra); it
is imported only when this command runs, so the other commands never load trame or VTK.
"""
from __future__ import annotations

import argparse
import sys
from typing import Any

from ..core.errors import DependencyError, InputError
from .common import command_parser

EPILOG = """examples:
  tumorsynth web                           # http://localhost:8080/, the built-in phantom
  tumorsynth web --port 9000
  tumorsynth web --host 0.0.0.0 --port 8080   # reachable from other machines (warning)

Each browser tab gets its own scene: open a CT (and its organ labels) by path or upload, or
start on the built-in phantom; choose organ, stage, diameter, method and effects; click inside
the organ in a slice view. Download gives a zip with the image, labels, segmentation, report
and preview. Every image made is synthetic and marked as such.
Needs: pip install 'tumorsynth[web]' (trame-slicer 2.0.0, slicer-core 5.11.0.6)."""


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    parser = command_parser(
        subparsers, "web", help="serve the browser front end (Slicer's views, click to place)",
        description="Serve TumorSynth in a web browser: 3D Slicer's axial, coronal, sagittal "
                    "and 3D views with the click-to-tumor flow of the Slicer module.",
        epilog=EPILOG, run=run,
    )
    parser.add_argument("--host", default="127.0.0.1",
                        help="address to listen on (default 127.0.0.1: this machine only); any "
                             "other address lets others use the server and hides path opening")
    parser.add_argument("--port", type=int, default=8080, help="port (default 8080; 0: any free)")
    parser.add_argument("--allow-paths", action="store_true",
                        help="let the page open files by path on the server also when --host is "
                             "not a loopback address (always allowed on 127.0.0.1)")
    parser.add_argument("--test-hooks", action="store_true", help=argparse.SUPPRESS)
    return parser


def run(args: argparse.Namespace) -> int:
    if not 0 <= args.port <= 65535:
        raise InputError(f"--port must be 0-65535, got {args.port}")
    try:
        from TumorSynthWeb.server import is_loopback, serve  # heavy: trame, VTK, slicer-core
        import trame_slicer  # noqa: F401
    except ImportError as exc:
        raise DependencyError(
            f"the web front end needs its extra packages ({exc}); install them with "
            "pip install 'tumorsynth[web]'") from exc
    local = is_loopback(args.host)
    if not local:
        print(f"warning: listening on {args.host}: anyone who can reach this machine can use "
              "the server and upload data; there is no login. "
              + ("Opening files by path is allowed (--allow-paths)." if args.allow_paths
                 else "Opening files by path is off (uploads only)."), file=sys.stderr)

    def ready(url: str) -> None:
        print(f"TumorSynth web front end: {url}  (Ctrl-C stops it)", file=sys.stderr, flush=True)

    serve(args.host, args.port, allow_paths=local or args.allow_paths,
          test_hooks=args.test_hooks, ready=ready)
    return 0
