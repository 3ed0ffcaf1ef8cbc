"""``tumorsynth info``: versions, the torch device, which methods work here (and why not), models."""
from __future__ import annotations

import argparse
import json
import platform
from typing import Any

import numpy

from .. import __version__
from ..core import model_registry
from ..core.errors import TumorSynthError
from ..core.events import EventStream
from ..synthesis.catalogue import catalogue, method_entries
from ..core.files import to_jsonable
from .common import command_parser

EPILOG = """examples:
  tumorsynth info
  tumorsynth info --json > environment.json"""


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    parser = command_parser(
        subparsers, "info", help="show versions, device, available methods and models",
        description="Show the TumorSynth, Python, numpy and torch versions, the torch device, "
                    "which synthesis methods can run here (and why not), and the models.",
        epilog=EPILOG, run=run,
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    return parser


def torch_facts(requested: str = "auto") -> dict[str, Any]:
    """torch version and the device ``--device`` would pick (with the GPU name)."""
    try:
        import torch
    except ImportError as exc:
        return {"torch": None, "device": None, "device_name": None,
                "problem": f"torch is not installed ({exc}); pip install torch"}
    cuda = bool(torch.cuda.is_available())
    device = "cuda" if (requested == "cuda" or (requested == "auto" and cuda)) else "cpu"
    name = torch.cuda.get_device_name(0) if device == "cuda" and cuda else (platform.processor() or platform.machine())
    facts = {"torch": torch.__version__, "cuda_available": cuda,
             "cuda_version": torch.version.cuda, "device": device, "device_name": name}
    if requested == "cuda" and not cuda:
        facts["problem"] = ("--device cuda asked but this torch has no usable GPU; install a CUDA "
                            "build of torch (see README, 'GPU')")
    return facts


def method_facts() -> dict[str, dict[str, Any]]:
    """{method: {"geometry", "appearance", "available", "reason", ...}} from the catalogue."""
    return method_entries()


def model_facts() -> list[dict[str, Any]]:
    """The models the registry knows (an error entry when the registry cannot be read)."""
    try:
        models = model_registry.list_models()
    except TumorSynthError as exc:
        return [{"error": str(exc)}]
    return [m if isinstance(m, dict) else getattr(m, "to_dict", lambda m=m: {"id": str(m)})()
            for m in models]


def collect(device: str = "auto") -> dict[str, Any]:

    return {
        "tumorsynth": __version__,
        "python": platform.python_version(),
        "numpy": numpy.__version__,
        **torch_facts(device),
        "methods": method_facts(),
        "models": model_facts(),
        "catalogue": catalogue(),
    }


def run(args: argparse.Namespace) -> int:
    facts = to_jsonable(collect(args.device))
    if args.events == "jsonl":  # stdout carries only event lines: the facts ride on "done"
        EventStream("jsonl").done(0, info=facts)
    elif args.json:
        print(json.dumps(facts, indent=2))
    else:
        print(render(facts))
    return 0


def render(facts: dict[str, Any]) -> str:
    lines = [
        f"TumorSynth {facts['tumorsynth']}",
        f"  python {facts['python']}, numpy {facts['numpy']}, torch {facts.get('torch') or 'not installed'}",
        f"  device: {facts.get('device')} ({facts.get('device_name')})",
    ]
    if facts.get("problem"):
        lines.append(f"  note: {facts['problem']}")
    lines.append("methods:")
    for name, m in facts["methods"].items():
        pair = f"{m['geometry']} + {m['appearance']}"
        lines.append(f"  {name:<12} {pair:<26} {'available' if m['available'] else 'not available: ' + m['reason']}")
    models = facts.get("models")
    if models is None:
        lines.append("models: (model registry not installed)")
    else:
        lines.append(f"models: {len(models)}")
        for m in models:
            kind = ", ".join(str(m[k]) for k in ("source", "task", "organ") if m.get(k))
            lines.append(f"  {m.get('id', '?')}{f' ({kind})' if kind else ''}: "
                         f"{m.get('description') or m.get('error', '')}")
    return "\n".join(lines)
