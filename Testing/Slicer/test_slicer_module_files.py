"""Static checks of the Slicer module files (they need Slicer's Qt to run, so they are read,
not imported): Extensions Index rules on file-scope imports and code at import, the template's
class names, .ui files consistent with the code, and CMake listing every file it must package.
Needs no slicer-core."""
from __future__ import annotations

import ast
import re
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
MODULE_DIR = REPO / "TumorSynth"
MODULES = ("TumorSynth", "TumorSynthTrainer")
MODULE_FILES = sorted(MODULE_DIR.glob("*.py"))
WIDGET_FILES = sorted((MODULE_DIR / "TumorSynthWidgets").glob("*.py"))
LOGIC_FILES = sorted((MODULE_DIR / "TumorSynthSlicer").glob("*.py"))
ALLOWED_IN_MODULES = {"slicer", "vtk", "qt", "ctk", "numpy", "scipy"}
ALLOWED_IN_LOGIC = {"slicer", "vtk", "numpy"}
STDLIB = set(sys.stdlib_module_names)


def _tree(path: Path) -> ast.Module:
    return ast.parse(path.read_text(), filename=str(path))


def _file_scope_imports(tree: ast.Module) -> list[tuple[str, int]]:
    """(top-level package, line) of every import executed when the file is imported."""
    found = []
    for node in tree.body:
        if isinstance(node, ast.Import):
            found += [(alias.name.split(".")[0], node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            found.append(("." if node.level else node.module.split(".")[0], node.lineno))
    return found


def _is_constant(value: ast.AST) -> bool:
    try:
        ast.literal_eval(value)
        return True
    except ValueError:
        return False


def _code_at_import(tree: ast.Module, allowed_decorators: set[str]) -> list[int]:
    """Lines of top-level statements that would run code on import (beyond defining names)."""
    bad = []
    for i, node in enumerate(tree.body):
        if isinstance(node, (ast.Import, ast.ImportFrom, ast.FunctionDef)):
            continue
        if i == 0 and isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant):
            continue                                    # module docstring
        if isinstance(node, ast.ClassDef):
            names = {d.id if isinstance(d, ast.Name) else getattr(d, "attr", "?")
                     for d in node.decorator_list}
            if names <= allowed_decorators:
                continue
        if isinstance(node, (ast.Assign, ast.AnnAssign)) and node.value is not None \
                and _is_constant(node.value):
            continue
        bad.append(node.lineno)
    return bad


@pytest.mark.parametrize("path", MODULE_FILES + WIDGET_FILES, ids=lambda p: p.name)
def test_module_files_import_only_slicer_side_packages_and_run_nothing(path):
    tree = _tree(path)
    package_own = {"."} if path in WIDGET_FILES else set()     # a section may use its sibling
    imports = [(name, line) for name, line in _file_scope_imports(tree)
               if name not in STDLIB and name not in ALLOWED_IN_MODULES and name not in package_own]
    assert imports == [], f"{path.name}: file-scope imports beyond {ALLOWED_IN_MODULES}: {imports}"
    assert _code_at_import(tree, {"parameterNodeWrapper"}) == []


@pytest.mark.parametrize("path", LOGIC_FILES, ids=lambda p: p.name)
def test_logic_files_import_only_stdlib_slicer_vtk_numpy(path):
    tree = _tree(path)
    imports = [(name, line) for name, line in _file_scope_imports(tree)
               if name not in STDLIB and name not in ALLOWED_IN_LOGIC and name != "."]
    assert imports == [], f"{path.name}: file-scope imports beyond {ALLOWED_IN_LOGIC}: {imports}"
    runs = (ast.Expr, ast.If, ast.For, ast.While, ast.With, ast.Try)
    statements = [n.lineno for n in tree.body[1:] if isinstance(n, runs)]
    assert statements == [], f"{path.name}: statements run at import on lines {statements}"


@pytest.mark.parametrize("module", MODULES)
def test_module_has_the_template_classes_and_compiles(module):
    path = MODULE_DIR / f"{module}.py"
    compile(path.read_text(), str(path), "exec")
    classes = {n.name: n for n in _tree(path).body if isinstance(n, ast.ClassDef)}
    for suffix, base in (("", "ScriptedLoadableModule"), ("Widget", "ScriptedLoadableModuleWidget"),
                         ("Logic", "ScriptedLoadableModuleLogic"),
                         ("Test", "ScriptedLoadableModuleTest"), ("ParameterNode", None)):
        assert module + suffix in classes, f"{module}{suffix} missing"
        if base:
            bases = {b.id for b in classes[module + suffix].bases if isinstance(b, ast.Name)}
            assert base in bases


def _parameter_fields(module: str) -> set[str]:
    tree = _tree(MODULE_DIR / f"{module}.py")
    cls = next(n for n in tree.body if isinstance(n, ast.ClassDef)
               and n.name == f"{module}ParameterNode")
    return {n.target.id for n in cls.body if isinstance(n, ast.AnnAssign)}


def _ui(module: str) -> tuple[set[str], set[str]]:
    root = ET.parse(REPO / "Resources" / "UI" / f"{module}.ui").getroot()
    widgets = {w.get("name") for w in root.iter("widget")}
    params = {p.findtext("string") for p in root.iter("property")
              if p.get("name") == "SlicerParameterName"}
    return widgets, params


@pytest.mark.parametrize("module", MODULES)
def test_ui_matches_the_code(module):
    widgets, params = _ui(module)
    fields = _parameter_fields(module)
    assert params <= fields, f"SlicerParameterName without a parameter: {params - fields}"
    text = (MODULE_DIR / f"{module}.py").read_text()
    sections = [path for path in WIDGET_FILES if f"TumorSynthWidgets.{path.stem} import" in text]
    sources = [MODULE_DIR / f"{module}.py"] + sections              # the panel sections it builds
    used = {name for path in sources for name in re.findall(r"\bui\.(\w+)", path.read_text())}
    assert used <= widgets, f"widgets used in {module}.py but not in the .ui: {used - widgets}"


@pytest.mark.parametrize("path", [MODULE_DIR / f"{m}.py" for m in MODULES] + WIDGET_FILES, ids=lambda p: p.name)
def test_user_visible_text_is_translatable(path):
    """No bare string literal is assigned to a widget's text or tool tip."""
    tree = _tree(path)
    bare = [node.lineno for node in ast.walk(tree) if isinstance(node, ast.Assign)
            and any(isinstance(t, ast.Attribute) and t.attr in ("text", "toolTip")
                    for t in node.targets)
            and isinstance(node.value, ast.Constant) and node.value.value]
    assert bare == []


def test_cmake_packages_every_file_and_depends_on_pytorch():
    top = (REPO / "CMakeLists.txt").read_text()
    sub = (MODULE_DIR / "CMakeLists.txt").read_text()
    assert re.search(r'EXTENSION_DEPENDS\s+"PyTorch"', top)
    assert "add_subdirectory(TumorSynth)" in top and "TumorSynthLib/*.py" in top
    for path in LOGIC_FILES + WIDGET_FILES:
        assert f"{path.parent.name}/{path.name}" in sub, f"{path.parent.name}/{path.name} is not packaged"
    for module in MODULES:
        assert f"slicer_add_python_unittest(SCRIPT {module}.py)" in sub
        assert f"NAME {module}" in sub
    for resource in re.findall(r"Resources/[\w/.]+", top):
        assert (REPO / resource).is_file(), f"{resource} listed in CMake but missing"


def test_cmake_metadata_has_a_real_screenshot_and_contributors_as_name_organization():
    """Extensions Index metadata: screenshot URLs that point at a file of this repository (the
    web tests take it), contributors in "Name (Organization)" form, in CMake and the modules."""
    top = (REPO / "CMakeLists.txt").read_text()
    urls = re.search(r'EXTENSION_SCREENSHOTURLS\s+"([^"]*)"', top).group(1).split()
    assert urls, "EXTENSION_SCREENSHOTURLS is empty"
    for url in urls:
        assert url.startswith("https://") and url.endswith(".png")
        assert (REPO / url.split("/main/", 1)[1]).is_file(), f"{url}: no such file in the repo"
    name_org = re.compile(r"^[^(),]+ \([^()]+\)$")
    contributors = re.search(r'EXTENSION_CONTRIBUTORS\s+"([^"]*)"', top).group(1)
    assert all(name_org.match(c.strip()) for c in contributors.split(",")), contributors
    for module in MODULES:
        tree = _tree(MODULE_DIR / f"{module}.py")
        for node in ast.walk(tree):
            if isinstance(node, ast.Assign) and any(getattr(t, "attr", "") == "contributors"
                                                    for t in node.targets):
                assert all(name_org.match(c) for c in ast.literal_eval(node.value)), module
