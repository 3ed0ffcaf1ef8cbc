"""The package layout by layer: imports point down only, no cycles, no imports hidden in
functions except of heavy optional packages (docs/ARCHITECTURE.md, "Layers")."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "TumorSynthLib"

#: Layers from the bottom; a module may import its own layer and the layers below.
LAYERS = [
    ("core",),
    ("anatomy",),
    ("synthesis",),
    ("phantom",),
    ("transforms", "segmentation", "generative"),
    ("datasets",),
    ("cli",),
]
#: Top-level facade modules (the public names DESIGN.md promises) sit above everything.
FACADES = {"TumorSynthLib", "TumorSynthLib.volume"}
#: Packages that may be imported inside functions (heavy or optional, costly at start-up).
LAZY_OK = ("torch", "monai", "matplotlib", "nibabel", "nrrd", "pydicom", "highdicom", "tqdm",
           "scipy.spatial", "scipy.interpolate", "einops", "PIL", "multiprocessing",
           "concurrent.futures", "skimage", "TumorSynthWeb", "trame_slicer")


def _modules() -> dict[str, Path]:
    out = {}
    for path in PACKAGE.rglob("*.py"):
        rel = path.relative_to(PACKAGE.parent).with_suffix("")
        parts = list(rel.parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


MODULES = _modules()


def _resolve(module: str, node: ast.ImportFrom) -> str:
    if node.level == 0:
        return node.module or ""
    is_pkg = MODULES[module].name == "__init__.py"
    base = module.split(".") if is_pkg else module.split(".")[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def _imports(module: str) -> list[tuple[str, bool, int]]:
    """(imported module, at file scope?, line) of every import in ``module``."""
    tree = ast.parse(MODULES[module].read_text())
    scoped: dict[int, bool] = {}
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            for inner in ast.walk(node):
                scoped[id(inner)] = True
    out = []
    for node in ast.walk(tree):
        top = not scoped.get(id(node), False)
        if isinstance(node, ast.Import):
            out += [(a.name, top, node.lineno) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = _resolve(module, node)
            for a in node.names:
                sub = f"{base}.{a.name}"
                out.append((sub if sub in MODULES else base, top, node.lineno))
    return out


def _layer(module: str) -> int | None:
    parts = module.split(".")
    if module in FACADES or len(parts) < 2:
        return None
    for index, names in enumerate(LAYERS):
        if parts[1] in names:
            return index
    raise AssertionError(f"{module} belongs to no layer: add it to LAYERS and docs/ARCHITECTURE.md")


def _internal(name: str) -> str | None:
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name or None


def test_imports_point_down_only():
    wrong = []
    for module in MODULES:
        mine = _layer(module)
        for name, _top, line in _imports(module):
            target = _internal(name) if name.startswith("TumorSynthLib") else None
            if mine is None or target is None or target in FACADES:
                continue
            theirs = _layer(target)
            if theirs is not None and theirs > mine:
                wrong.append(f"{module}:{line} imports {target} (layer {theirs} above {mine})")
    assert wrong == [], "\n".join(wrong)


def test_no_import_cycles():
    graph = {m: {t for n, _top, _l in _imports(m) if n.startswith("TumorSynthLib")
                 for t in [_internal(n)] if t and t != m} for m in MODULES}
    for package in [m for m in MODULES if MODULES[m].name == "__init__.py"]:  # a package's init runs first
        for m in graph:
            graph[m].discard(package) if m.startswith(package + ".") else None
    seen, stack, cycles = set(), [], []

    def visit(node: str) -> None:
        if node in stack:
            cycles.append(" -> ".join(stack[stack.index(node):] + [node]))
            return
        if node in seen:
            return
        seen.add(node)
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            visit(nxt)
        stack.pop()

    for module in sorted(graph):
        visit(module)
    assert cycles == [], "\n".join(cycles)


def test_no_hidden_imports_except_heavy_packages():
    hidden = []
    for module in MODULES:
        for name, top, line in _imports(module):
            if top or name.startswith(LAZY_OK):
                continue
            target = _internal(name) if name.startswith("TumorSynthLib") else None
            if target is not None and _imports_heavy(target):
                continue
            hidden.append(f"{module}:{line} imports {name} inside a function")
    assert hidden == [], "\n".join(hidden)


def _imports_heavy(module: str, seen: set | None = None) -> bool:
    """True when importing ``module`` pulls in a heavy package at file scope (so a function
    may import it lazily to keep ``import TumorSynthLib`` light)."""
    seen = seen if seen is not None else set()
    if module in seen:
        return False
    seen.add(module)
    for name, top, _line in _imports(module):
        if not top:
            continue
        if name.startswith(("torch", "monai", "matplotlib", "nibabel", "highdicom", "pydicom")):
            return True
        target = _internal(name) if name.startswith("TumorSynthLib") else None
        if target and target != module and _imports_heavy(target, seen):
            return True
    return False


@pytest.mark.parametrize("module", ["TumorSynthLib", "TumorSynthLib.volume", "TumorSynthLib.synthesis.catalogue"])
def test_light_modules_do_not_import_heavy_packages(module):
    import subprocess
    import sys

    code = (f"import sys, {module}; heavy = [m for m in ('torch', 'monai', 'matplotlib', 'nibabel') "
            "if m in sys.modules]; print(heavy)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_providers_are_listed_without_torch():
    """Slicer before its PyTorch extension: every provider module imports, the learned ones say
    they are unavailable and why (torch is imported only when such a tumor is made)."""
    import subprocess
    import sys

    code = ("import sys; sys.modules['torch'] = None; sys.modules['monai'] = None\n"
            "from TumorSynthLib.synthesis import registry\n"
            "print(sorted(registry.methods()), registry.availability('appearance', 'diffusion')[0],\n"
            "      registry.availability('appearance', 'procedural')[0])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "['adversarial', 'cellular', 'diffusion', 'handcrafted'] False True"
