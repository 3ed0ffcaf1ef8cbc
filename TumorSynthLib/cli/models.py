"""``tumorsynth models list|add|remove``: the model registry (shipped + $TUMORSYNTH_HOME)."""
from __future__ import annotations

import argparse
import json
from typing import Any

from ..core import model_registry as weights
from ..core.errors import InputError
from ..core.files import to_jsonable
from .common import EXIT_OK, command_parser

EPILOG = """user models live in $TUMORSYNTH_HOME/models (default ~/.tumorsynth/models); shipped models
are read-only. A registered id can be given to `segment --model` (and to --quality of synth,
generate and train) instead of a path; `default` is the shipped liver / pancreas / kidney tumor
model.

examples:
  tumorsynth models list
  tumorsynth models list --json
  tumorsynth models add runs/liver1/best.pt --id liver-demo --description "phantom-trained"
  tumorsynth models remove liver-demo"""


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    parser = command_parser(
        subparsers, "models", help="list, add or remove models (segmentation, diffusion)",
        description="Manage the model registry: models shipped with TumorSynth and your own "
                    "models in $TUMORSYNTH_HOME/models.",
        epilog=EPILOG, run=run,
    )
    parser.add_argument("action", choices=("list", "add", "remove"))
    parser.add_argument("target", nargs="?", help="PATH of a checkpoint (add) or model ID (remove)")
    parser.add_argument("--id", default=None, help="id for `add` (default organ-architecture-sha)")
    parser.add_argument("--description", default="", help="free text stored with `add`")
    parser.add_argument("--json", action="store_true", help="machine-readable output on stdout")
    return parser


def run(args: argparse.Namespace) -> int:

    if args.action != "list" and not args.target:
        raise InputError(f"`tumorsynth models {args.action}` needs a "
                         f"{'checkpoint PATH' if args.action == 'add' else 'model ID'}")
    if args.action == "list":
        entries = weights.list_models()
        if args.json:
            print(json.dumps(to_jsonable([e.to_dict() for e in entries]), indent=2))
        elif not entries:
            print(f"no models (add one with `tumorsynth models add PATH`; user models: {weights.user_models_dir()})")
        else:
            for e in entries:
                print(f"{e.id:<32} {e.source:<8} {e.task:<13} {e.organ:<22} {e.description}")
        return EXIT_OK
    if args.action == "add":
        entry = weights.add_model(args.target, args.id, args.description)
        verb = "added"
    else:
        entry = weights.remove_model(args.target)
        verb = "removed"
    if args.json:
        print(json.dumps(to_jsonable(entry.to_dict()), indent=2))
    else:
        print(f"{verb} {entry.id} ({entry.path})")
    return EXIT_OK
