"""The providers and methods the engine knows: one decorator per provider, found automatically.

* ``@register_geometry("ellipsoid")`` / ``@register_appearance("procedural")`` on a provider
  class in a file under ``synthesis/geometry/`` or ``synthesis/appearance/`` registers it; every
  module there is imported once when a list is first needed (``discover``), so adding a
  provider is writing one file. Provider modules must import cheaply (torch and other heavy
  packages inside functions): ``import TumorSynthLib`` never pulls in torch.
* A *method* is a named (geometry, appearance) pair. A provider names the method it completes:
  ``register_appearance("procedural", method="handcrafted", pair="ellipsoid")`` makes
  ``handcrafted`` = ellipsoid + procedural; ``register_geometry("cellular", method="cellular",
  pair="procedural")`` makes ``cellular`` = cellular + procedural.
"""
from __future__ import annotations

import importlib
import pkgutil
from dataclasses import dataclass
from typing import Any, Callable, TypeVar

from ..core.errors import DependencyError, InputError

T = TypeVar("T")

_GEOMETRY: dict[str, type] = {}
_APPEARANCE: dict[str, type] = {}
_METHODS: dict[str, "Method"] = {}
_DISCOVERED = False
PROVIDER_PACKAGES = ("TumorSynthLib.synthesis.geometry", "TumorSynthLib.synthesis.appearance")


@dataclass(frozen=True)
class Method:
    """A named (geometry, appearance) pair."""

    name: str
    geometry: str
    appearance: str
    description: str = ""


def register_geometry(name: str, *, method: str | None = None, pair: str = "procedural",
                      description: str = "") -> Callable[[T], T]:
    """Class decorator for a geometry provider (optionally naming the method it completes)."""
    return _register(_GEOMETRY, name, method, lambda: Method(method or name, name, pair, description))


def register_appearance(name: str, *, method: str | None = None, pair: str = "ellipsoid",
                        description: str = "") -> Callable[[T], T]:
    """Class decorator for an appearance provider (optionally naming the method it completes)."""
    return _register(_APPEARANCE, name, method, lambda: Method(method or name, pair, name, description))


def _register(table: dict[str, type], name: str, method: str | None,
              make: Callable[[], Method]) -> Callable[[T], T]:
    def deco(cls: T) -> T:
        table[name] = cls  # type: ignore[assignment]
        if method is not None:
            _METHODS[method] = make()
        return cls

    return deco


def discover() -> None:
    """Import every provider module once (they register themselves)."""
    global _DISCOVERED
    if _DISCOVERED:
        return
    for package_name in PROVIDER_PACKAGES:
        package = importlib.import_module(package_name)
        for info in pkgutil.iter_modules(package.__path__):
            importlib.import_module(f"{package_name}.{info.name}")
    _DISCOVERED = True


def method_names() -> list[str]:
    discover()
    return list(_METHODS)


def methods() -> dict[str, Method]:
    discover()
    return dict(_METHODS)


def geometry_names() -> list[str]:
    discover()
    return list(_GEOMETRY)


def appearance_names() -> list[str]:
    discover()
    return list(_APPEARANCE)


def get_method(name: str) -> Method:
    discover()
    if name not in _METHODS:
        raise InputError(f"unknown method '{name}'; choose one of: {', '.join(_METHODS)}")
    return _METHODS[name]


def provider_class(kind: str, name: str) -> type | None:
    """The registered class of a provider (None when unknown), without instantiating it."""
    discover()
    return (_GEOMETRY if kind == "geometry" else _APPEARANCE).get(name)


def provider(kind: str, name: str) -> Any:
    """A new instance of the ``kind`` ("geometry" | "appearance") provider ``name``;
    InputError when unknown, DependencyError when it cannot run here (with the reason)."""
    discover()
    table = _GEOMETRY if kind == "geometry" else _APPEARANCE
    if name not in table:
        raise InputError(f"unknown {kind} '{name}'; choose one of: {', '.join(table)}")
    instance = table[name]()
    ok, why = instance.available()
    if not ok:
        raise DependencyError(f"the {kind} '{name}' is not available here: {why}")
    return instance


def availability(kind: str, name: str) -> tuple[bool, str]:
    """(usable here, reason if not) of a provider, without raising."""
    discover()
    table = _GEOMETRY if kind == "geometry" else _APPEARANCE
    if name not in table:
        return False, f"no {kind} provider '{name}' in this version"
    return table[name]().available()


def resolve(method: str, geometry: str | None = None, appearance: str | None = None) -> tuple[str, str]:
    """The (geometry, appearance) names of a request: the method's pair with either half
    overridden. InputError for unknown names."""
    pair = get_method(method)
    g = geometry or pair.geometry
    a = appearance or pair.appearance
    discover()
    if g not in _GEOMETRY:
        raise InputError(f"unknown geometry '{g}'; choose one of: {', '.join(_GEOMETRY)}")
    if a not in _APPEARANCE:
        raise InputError(f"unknown appearance '{a}'; choose one of: {', '.join(_APPEARANCE)}")
    return g, a


__all__ = ["Method", "appearance_names", "availability", "discover", "geometry_names", "get_method",
           "method_names", "methods", "provider", "provider_class", "register_appearance", "register_geometry", "resolve"]
