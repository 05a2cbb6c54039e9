"""The architecture of ``model/`` (ARCHITECTURE.md), checked on the source with ``ast``.

Every ``import`` and ``from … import`` in ``model/`` counts, at module level or inside a
function or an ``if TYPE_CHECKING:`` block, with relative imports resolved. The rules:

- no import cycle between modules of ``model/`` (imports that run: at module level or in a
  function; an ``if TYPE_CHECKING:`` import never runs, so it is how a type-only dependency
  back is written, e.g. ``drift.render`` naming ``drift.results.DriftReport``);
- no prefect, and no ``flows``/``tasks``/``deployments``, anywhere in ``model/`` except inside
  functions of ``model/cli/`` (an entry layer, like ``flows/``);
- imports point down the layers: errors/settings/clock 0, data 1, training 2,
  gate/registry/drift 3 (peers: none imports another), serving 4, live 5, cycle 6, backtest 7,
  cli 8; a module imports only from a lower layer or from its own package, so nothing else in
  ``model/`` imports ``model.cli``;
- no source file in ``model/``, ``tasks/``, ``flows/`` over 500 lines, no class over 300.

It also checks that the documented public entry points import, each in a fresh interpreter.
"""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from itertools import pairwise
from pathlib import Path

import pytest
from fakes import REPO_ROOT

MODEL = REPO_ROOT / "model"

LAYERS = {
    "core": 0,  # model.errors, model.settings
    "data": 1,
    "training": 2,
    "gate": 3,
    "registry": 3,
    "drift": 3,
    "serving": 4,
    "live": 5,
    "cycle": 6,
    "backtest": 7,
    "cli": 8,
}
"""Layer of each part of ``model/``: a module imports only from a lower layer or its own part."""

ROOT_MODULES = {
    "model": "core",
    "model.errors": "core",
    "model.settings": "core",
    "model.files": "core",
    "model.clock": "core",
    "model.threads": "core",
    "model.external": "core",  # the external merge sort (drift and the gate)
    "model.cluster": "core",  # the Dask executor the data passes run on
    "model.comparator": "gate",  # shim for model.gate.comparator
    "model.stats": "gate",  # shim for model.gate.stats
    "model.artifact": "training",  # shim for model.training.artifact
}
"""The modules at the root of ``model/`` and the part each belongs to."""

ENTRY_PACKAGES = ("flows", "tasks", "deployments")
"""Entry layers outside ``model/``: only ``model/cli`` reaches them, inside functions."""

MAX_FILE_LINES = 500
MAX_CLASS_LINES = 300
SIZE_CHECKED = ("model", "tasks", "flows")


@dataclass(frozen=True)
class Import:
    """One imported name, resolved to an absolute dotted name."""

    source: str  # the importing module, e.g. "model.cycle.config"
    target: str  # the imported module (for model/: the module file that defines the name)
    path: Path
    line: int
    in_function: bool
    type_checking: bool

    @property
    def where(self) -> str:
        return f"{self.path.relative_to(REPO_ROOT)}:{self.line}"

    @property
    def top(self) -> str:
        return self.target.split(".")[0]


def module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO_ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


@cache
def model_modules() -> dict[str, Path]:
    """Every module of ``model/`` by dotted name (packages by their ``__init__.py``)."""
    return {module_name(p): p for p in sorted(MODEL.rglob("*.py"))}


def resolve_internal(name: str) -> str:
    """The longest prefix of ``name`` that is a module of ``model/`` (a name in it → the module)."""
    modules = model_modules()
    parts = name.split(".")
    for end in range(len(parts), 0, -1):
        candidate = ".".join(parts[:end])
        if candidate in modules:
            return candidate
    return name


class _ImportCollector(ast.NodeVisitor):
    def __init__(self, source: str, path: Path) -> None:
        self.source = source
        self.path = path
        self.is_package = path.name == "__init__.py"
        self.function_depth = 0
        self.type_checking_depth = 0
        self.found: list[Import] = []

    def _add(self, target: str, node: ast.stmt) -> None:
        if target == "model" or target.startswith("model."):
            target = resolve_internal(target)
        self.found.append(
            Import(
                self.source,
                target,
                self.path,
                node.lineno,
                self.function_depth > 0,
                self.type_checking_depth > 0,
            )
        )

    def _function(self, node: ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda) -> None:
        self.function_depth += 1
        self.generic_visit(node)
        self.function_depth -= 1

    visit_FunctionDef = _function
    visit_AsyncFunctionDef = _function
    visit_Lambda = _function

    def visit_If(self, node: ast.If) -> None:
        test = node.test
        guarded = (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
            isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
        )
        self.type_checking_depth += guarded
        for child in node.body:
            self.visit(child)
        self.type_checking_depth -= guarded
        self.visit(node.test)
        for child in node.orelse:
            self.visit(child)

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            self._add(alias.name, node)

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        if node.level:
            package = self.source.split(".")
            if not self.is_package:
                package.pop()
            base = package[: len(package) - (node.level - 1)]
            module = ".".join(base + ([node.module] if node.module else []))
        else:
            module = node.module or ""
        for alias in node.names:
            # `from package import submodule` imports the submodule; a name → its module.
            self._add(f"{module}.{alias.name}" if alias.name != "*" else module, node)


@cache
def model_imports() -> tuple[Import, ...]:
    found: list[Import] = []
    for name, path in model_modules().items():
        collector = _ImportCollector(name, path)
        collector.visit(ast.parse(path.read_text(encoding="utf-8"), filename=str(path)))
        found.extend(collector.found)
    return tuple(found)


def internal_imports() -> Iterator[Import]:
    modules = model_modules()
    return (i for i in model_imports() if i.target in modules)


def part_of(module: str) -> str | None:
    """The layer part (a key of LAYERS) a module of ``model/`` belongs to, or None."""
    if module in ROOT_MODULES:
        return ROOT_MODULES[module]
    part = module.split(".")[1]
    return part if part in LAYERS else None


def fail_on(title: str, problems: list[str]) -> None:
    """Fail with one readable line per problem (no assertion rewriting noise)."""
    if problems:
        pytest.fail(f"{title} ({len(problems)}):\n  " + "\n  ".join(problems), pytrace=False)


# --- (a) import cycles ---


def find_cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """One cycle per strongly connected component of more than one module (or a self-import)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []

    def connect(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(edges.get(node, ())):
            if nxt not in index:
                connect(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            components.append(sorted(component))

    for node in sorted(edges):
        if node not in index:
            connect(node)

    cycles = []
    for component in components:
        start = component[0]
        if len(component) == 1 and start not in edges.get(start, ()):
            continue
        # Shortest way back to `start` inside the component (breadth first).
        members = set(component)
        previous: dict[str, str] = {}
        frontier = [start]
        while frontier and start not in previous:
            following = []
            for node in frontier:
                for nxt in sorted(edges.get(node, ()) & members):
                    if nxt not in previous:
                        previous[nxt] = node
                        following.append(nxt)
            frontier = following
        path = [start]
        node = previous[start]
        while node != start:
            path.append(node)
            node = previous[node]
        cycles.append([start, *reversed(path[1:]), start])
    return cycles


def test_find_cycles_reports_a_cycle() -> None:
    edges = {"a": {"b"}, "b": {"c"}, "c": {"a", "d"}, "d": set(), "e": {"e"}}
    assert find_cycles(edges) == [["a", "b", "c", "a"], ["e", "e"]]
    assert find_cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_cycle_in_model() -> None:
    edges: dict[str, set[str]] = {name: set() for name in model_modules()}
    where: dict[tuple[str, str], str] = {}
    for imp in internal_imports():
        if imp.type_checking:
            continue
        edges[imp.source].add(imp.target)
        where.setdefault((imp.source, imp.target), imp.where)
    cycles = [
        " -> ".join(cycle) + "  [" + ", ".join(where[(a, b)] for a, b in pairwise(cycle)) + "]"
        for cycle in find_cycles(edges)
    ]
    fail_on("import cycles in model/", cycles)


# --- (b) prefect and the entry layers ---


def test_model_imports_no_prefect_and_no_entry_layer() -> None:
    problems = []
    for imp in model_imports():
        if imp.top == "prefect" or imp.top.startswith("prefect_"):
            what = "prefect"
        elif imp.top in ENTRY_PACKAGES:
            what = f"the entry layer {imp.top}/"
        else:
            continue
        if part_of(imp.source) == "cli" and imp.in_function:
            continue  # the CLI reaches flows/ (and so prefect) inside command functions
        scope = "inside a function" if imp.in_function else "at module level"
        problems.append(f"{imp.where}: {imp.source} imports {imp.target} ({what}) {scope}")
    fail_on(
        "model/ imports prefect or flows/tasks/deployments (only model/cli may, inside "
        "command functions)",
        problems,
    )


# --- (c) layers ---


def test_every_model_module_has_a_layer() -> None:
    unassigned = [name for name in model_modules() if part_of(name) is None]
    fail_on(
        "modules of model/ outside the known parts (add them to LAYERS or ROOT_MODULES in "
        "tests/test_architecture.py and to ARCHITECTURE.md)",
        unassigned,
    )


def test_imports_point_down_the_layers() -> None:
    problems = []
    for imp in internal_imports():
        source, target = part_of(imp.source), part_of(imp.target)
        if source is None or target is None or source == target:
            continue
        if target == "cli":
            why = "only model/cli imports model.cli"
        elif LAYERS[target] == LAYERS[source]:
            why = f"{source} and {target} are peers (layer {LAYERS[source]})"
        elif LAYERS[target] > LAYERS[source]:
            why = f"{source} (layer {LAYERS[source]}) is below {target} (layer {LAYERS[target]})"
        else:
            continue
        problems.append(f"{imp.where}: {imp.source} imports {imp.target}: {why}")
    fail_on(
        "imports against the layering errors/settings < data < training < "
        "gate|registry|drift < serving < live < cycle < backtest < cli",
        problems,
    )


# --- (d) sizes ---


def size_violations() -> dict[str, str]:
    found = {}
    for folder in SIZE_CHECKED:
        for path in sorted((REPO_ROOT / folder).rglob("*.py")):
            rel = path.relative_to(REPO_ROOT).as_posix()
            text = path.read_text(encoding="utf-8")
            lines = len(text.splitlines())
            if lines > MAX_FILE_LINES:
                found[rel] = f"{lines} lines"
            for node in ast.walk(ast.parse(text, filename=str(path))):
                if isinstance(node, ast.ClassDef) and node.end_lineno is not None:
                    length = node.end_lineno - node.lineno + 1
                    if length > MAX_CLASS_LINES:
                        found[f"{rel}::{node.name}"] = f"class of {length} lines"
    return found


def test_no_long_file_or_class() -> None:
    found = size_violations()
    fail_on(
        f"files over {MAX_FILE_LINES} lines or classes over {MAX_CLASS_LINES} lines in "
        f"{', '.join(SIZE_CHECKED)}/",
        [f"{key}: {what}" for key, what in found.items()],
    )


# --- public entry points ---

ENTRY_POINTS = [
    "from model.comparator import ModelComparator",
    "from model.stats import delong_test, paired_bootstrap",
    "from model.registry import ModelRegistry",
    "from model.artifact import load_model",
    "from model.drift import detect_drift",
    "from model.data import prepare, infer_spec",
    "from model.cli import main",
]


def run_python(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "DO_NOT_TRACK": "1"}
    return subprocess.run(
        [sys.executable, *args],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.parametrize("statement", ENTRY_POINTS)
def test_public_entry_point_imports(statement: str) -> None:
    done = run_python("-c", statement)
    assert done.returncode == 0, f"`{statement}` failed:\n{done.stderr}"


def test_lab_comparator_cli_help() -> None:
    done = run_python("-m", "model.comparator", "--help")
    assert done.returncode == 0, done.stderr
    assert "--baseline" in done.stdout
