"""Model registry: the models shipped with the package plus the user's own.

* Shipped models are listed in ``TumorSynthLib/resources/Models.json`` (schema:
  ``Models.schema.json``) with a SHA256 per file; the list may be empty. They are read-only.
* User models live in ``$TUMORSYNTH_HOME/models/`` (``TUMORSYNTH_HOME`` defaults to
  ``~/.tumorsynth``): the ``.pt`` files and an index ``models.json`` of the same schema.
  ``tumorsynth models add PATH`` copies a checkpoint there; ``remove ID`` deletes it.

Nothing is ever written into the installed package. Every file is checked against its SHA256
before use (``resolve_model``), so a damaged or replaced file is refused with ModelError.
"""
from __future__ import annotations

import json
import os
import re
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from importlib import resources
from pathlib import Path
from typing import Any

from . import checkpoints
from .errors import InputError, ModelError
from .files import copy_file_atomic, sha256_file, write_json_atomic

SCHEMA_VERSION = 1
INDEX_NAME = "models.json"
_ID_PATTERN = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")


@dataclass
class ModelEntry:
    """One registered model. ``path`` is absolute; ``source`` is "shipped" or "user"."""

    id: str
    file: str
    sha256: str
    task: str
    organ: str
    source: str = "user"
    path: str = ""
    description: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out.update(out.pop("extra"))
        return out

    def index_record(self) -> dict[str, Any]:
        """The entry as stored in a registry file (schema fields only)."""
        rec = {"id": self.id, "file": self.file, "sha256": self.sha256, "task": self.task,
               "organ": self.organ, "description": self.description}
        rec.update(self.extra)
        return rec


# -- locations --------------------------------------------------------------------------------
def tumorsynth_home() -> Path:
    """``$TUMORSYNTH_HOME`` or ``~/.tumorsynth``; InputError when it (or its ``models``
    folder) exists but is not a folder."""
    env = os.environ.get("TUMORSYNTH_HOME")
    home = Path(env).expanduser() if env else Path.home() / ".tumorsynth"
    where = "TUMORSYNTH_HOME" if env else "the TumorSynth home"
    for path in (home, home / "models"):
        if path.exists() and not path.is_dir():
            raise InputError(f"{where} '{path}' is a file, not a folder; point TUMORSYNTH_HOME at a folder "
                             "(or remove the file)")
    return home


def user_models_dir() -> Path:
    return tumorsynth_home() / "models"


def _shipped_registry() -> tuple[dict[str, Any], Path]:
    res = resources.files("TumorSynthLib").joinpath("resources")
    data = json.loads(res.joinpath("Models.json").read_text(encoding="utf-8"))
    return data, Path(str(res))


def registry_schema() -> dict[str, Any]:
    text = resources.files("TumorSynthLib").joinpath("resources/Models.schema.json").read_text(encoding="utf-8")
    return json.loads(text)


# -- schema -----------------------------------------------------------------------------------
_TYPES = {"object": dict, "array": list, "string": str, "integer": int, "number": (int, float),
          "boolean": bool, "null": type(None)}


def schema_errors(value: Any, schema: dict[str, Any], where: str = "$") -> list[str]:
    """Violations of the subset of JSON Schema the registry schema uses (type, enum, pattern,
    minimum, required, properties, additionalProperties, items)."""
    errors: list[str] = []
    types = schema.get("type")
    if types is not None:
        allowed = [types] if isinstance(types, str) else list(types)
        ok = any(isinstance(value, _TYPES[t]) and not (t in ("integer", "number") and isinstance(value, bool))
                 for t in allowed)
        if not ok:
            return [f"{where}: expected {' or '.join(allowed)}, got {type(value).__name__}"]
    if "enum" in schema and value not in schema["enum"]:
        errors.append(f"{where}: {value!r} is not one of {schema['enum']}")
    if "pattern" in schema and isinstance(value, str) and not re.search(schema["pattern"], value):
        errors.append(f"{where}: {value!r} does not match {schema['pattern']}")
    if "minimum" in schema and isinstance(value, (int, float)) and value < schema["minimum"]:
        errors.append(f"{where}: {value} < {schema['minimum']}")
    if isinstance(value, dict):
        for key in schema.get("required", []):
            if key not in value:
                errors.append(f"{where}: missing '{key}'")
        props = schema.get("properties", {})
        for key, item in value.items():
            if key in props:
                errors += schema_errors(item, props[key], f"{where}.{key}")
            elif schema.get("additionalProperties") is False:
                errors.append(f"{where}: unexpected key '{key}'")
    if isinstance(value, list) and "items" in schema:
        for i, item in enumerate(value):
            errors += schema_errors(item, schema["items"], f"{where}[{i}]")
    return errors


def check_registry(data: Any, origin: str) -> None:
    errors = schema_errors(data, registry_schema())
    if errors:
        raise ModelError(f"model registry {origin} is invalid ({'; '.join(errors[:3])}); "
                         "fix or delete the file")


# -- reading ----------------------------------------------------------------------------------
def _entries(data: dict[str, Any], folder: Path, source: str) -> list[ModelEntry]:
    out = []
    core = {"id", "file", "sha256", "task", "organ", "description"}
    for rec in data["models"]:
        out.append(ModelEntry(id=rec["id"], file=rec["file"], sha256=rec["sha256"], task=rec["task"],
                              organ=rec["organ"], source=source, path=str(folder / rec["file"]),
                              description=rec.get("description", ""),
                              extra={k: v for k, v in rec.items() if k not in core}))
    return out


def shipped_models() -> list[ModelEntry]:
    data, folder = _shipped_registry()
    check_registry(data, "Models.json (shipped)")
    return _entries(data, folder, "shipped")


def _read_user_index() -> dict[str, Any]:
    index = user_models_dir() / INDEX_NAME
    if not index.exists():
        return {"schema_version": SCHEMA_VERSION, "models": []}
    try:
        data = json.loads(index.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise ModelError(f"cannot read the user model index '{index}' ({exc}); fix or delete it") from exc
    check_registry(data, f"'{index}'")
    return data


def user_models() -> list[ModelEntry]:
    return _entries(_read_user_index(), user_models_dir(), "user")


def list_models() -> list[ModelEntry]:
    """Shipped models first, then the user's."""
    return shipped_models() + user_models()


def find_model(model_id: str) -> ModelEntry:
    for entry in list_models():
        if entry.id == model_id:
            return entry
    known = ", ".join(e.id for e in list_models()) or "none"
    raise InputError(f"no model with id '{model_id}' (known: {known}); see `tumorsynth models list`")


def resolve_model(ref: str | Path) -> Path:
    """The checkpoint file for ``ref``: an existing path, or a registered id (file checked
    against its SHA256; ModelError when missing or changed)."""
    path = Path(ref).expanduser()
    if path.is_file():
        return path
    if not _ID_PATTERN.match(str(ref)):
        raise ModelError(f"model '{ref}' is neither an existing file nor a model id; "
                         "see `tumorsynth models list`")
    entry = find_model(str(ref))
    file = Path(entry.path)
    if not file.is_file():
        raise ModelError(f"model '{entry.id}' is registered but its file '{file}' is missing; "
                         f"remove it (`tumorsynth models remove {entry.id}`) and add it again")
    if sha256_file(file) != entry.sha256:
        raise ModelError(f"model file '{file}' does not match its SHA256 (damaged or replaced); "
                         f"remove and re-add model '{entry.id}'")
    return file


# -- writing (user registry only) ---------------------------------------------------------------
def _describe_checkpoint(path: Path) -> dict[str, Any]:
    """task, organ and facts of a checkpoint; ModelError when it is not a TumorSynth model."""
    try:
        return checkpoints.describe(checkpoints.read_payload(path))
    except ModelError as exc:
        raise ModelError(f"'{path}': {exc}") from None


def _write_user_index(data: dict[str, Any]) -> None:
    check_registry(data, "(about to be written)")
    write_json_atomic(user_models_dir() / INDEX_NAME, data)


def add_model(path: str | Path, model_id: str | None = None, description: str = "") -> ModelEntry:
    """Copy a checkpoint into the user registry and index it; returns its entry.

    InputError when the id is taken or malformed, or the same file is already registered;
    ModelError when the file is not a TumorSynth model."""
    src = Path(path).expanduser()
    if not src.is_file():
        raise InputError(f"'{src}' does not exist; give the path of a checkpoint (.pt)")
    facts = _describe_checkpoint(src)
    digest = sha256_file(src)
    model_id = model_id or f"{facts['organ']}-{facts.get('architecture') or facts['task']}-{digest[:8]}"
    if not _ID_PATTERN.match(model_id):
        raise InputError(f"model id '{model_id}' must be lower-case letters, digits, '.', '_' or '-'")
    for entry in list_models():
        if entry.id == model_id:
            raise InputError(f"a model with id '{model_id}' exists already; choose another --id")
        if entry.sha256 == digest:
            raise InputError(f"this file is already registered as '{entry.id}'")
    dest = user_models_dir() / f"{model_id}.pt"
    copy_file_atomic(src, dest)
    extra = {k: v for k, v in facts.items() if k not in ("task", "organ")}
    extra.update(size_bytes=dest.stat().st_size, source_path=str(src.resolve()),
                 added=datetime.now(timezone.utc).isoformat(timespec="seconds"))
    entry = ModelEntry(id=model_id, file=dest.name, sha256=digest, task=facts["task"],
                       organ=facts["organ"], source="user", path=str(dest),
                       description=description, extra=extra)
    data = _read_user_index()
    data["models"].append(entry.index_record())
    try:
        _write_user_index(data)
    except Exception:
        dest.unlink(missing_ok=True)
        raise
    return entry


def remove_model(model_id: str) -> ModelEntry:
    """Delete a user model (file and index entry). Shipped models cannot be removed."""
    entry = find_model(model_id)
    if entry.source != "user":
        raise InputError(f"'{model_id}' is shipped with TumorSynth and cannot be removed")
    data = _read_user_index()
    data["models"] = [m for m in data["models"] if m["id"] != model_id]
    _write_user_index(data)
    Path(entry.path).unlink(missing_ok=True)
    return entry


__all__ = [
    "ModelEntry", "tumorsynth_home", "user_models_dir", "list_models", "shipped_models",
    "user_models", "find_model", "resolve_model", "add_model", "remove_model", "sha256_file",
    "schema_errors", "check_registry", "registry_schema",
]
