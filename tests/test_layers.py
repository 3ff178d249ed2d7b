"""The presentation layers stay apart: figures (collector.present) query and return records, renderers
(collector.render) only draw them, models know nothing of the collector, and no import goes round in a circle.

The rules are read from the source with ast, so a violation fails here before it shows as a slow or
tangled import anywhere else.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("collector", "connectors", "models")
RENDERERS = "collector.render"
FIGURES = "collector.present"
# what a renderer may import from the project: the records it draws, other renderers, config (SMTP)
RENDERER_MAY_IMPORT = (FIGURES, RENDERERS, "collector.config")
KNOWN_CYCLES = [["collector.demo.github_graphql", "collector.demo.github_server"]]
SQL_CALLS = {"execute", "executemany", "query", "sql", "fetchall", "fetchone", "fetchdf", "query_rows"}


def _modules() -> dict[str, Path]:
    """Every project module by dotted name (a package by its own name, for its __init__.py)."""
    found = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            found[".".join(parts)] = path
    return found


MODULES = _modules()


def _trees() -> dict[str, ast.Module]:
    """The parsed source of every module."""
    return {name: ast.parse(path.read_text(encoding="utf-8"), str(path)) for name, path in MODULES.items()}


TREES = _trees()


def _is_type_checking(node: ast.stmt) -> bool:
    """True for an `if TYPE_CHECKING:` block, whose imports never run."""
    return isinstance(node, ast.If) and (
        (isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING")
        or (isinstance(node.test, ast.Attribute) and node.test.attr == "TYPE_CHECKING"))


def _import_nodes(tree: ast.AST, typing_too: bool) -> Iterator[ast.Import | ast.ImportFrom]:
    """Every import statement at any depth (inside functions too); typing_too keeps TYPE_CHECKING ones."""
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node
        elif typing_too or not (isinstance(node, ast.stmt) and _is_type_checking(node)):
            yield from _import_nodes(node, typing_too)


def _imports(name: str, tree: ast.Module, typing_too: bool = True) -> Iterator[str]:
    """Every module this module imports, resolved: `from a.b import c` counts as a.b.c when that is a
    module, else as a.b."""
    is_package = MODULES[name].name == "__init__.py"
    for node in _import_nodes(tree, typing_too):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
            continue
        base = node.module or ""
        if node.level:
            parent = name.split(".") if is_package else name.split(".")[:-1]
            parent = parent[:len(parent) - (node.level - 1)]
            base = ".".join([*parent, base] if base else parent)
        for alias in node.names:
            yield f"{base}.{alias.name}" if f"{base}.{alias.name}" in MODULES else base


def _inside(module: str, package: str) -> bool:
    """True when module is the package or one of its submodules."""
    return module == package or module.startswith(package + ".")


def _project(module: str) -> bool:
    """True when an imported name is one of this project's packages."""
    return any(_inside(module, package) for package in PACKAGES)


# the imports that run (TYPE_CHECKING ones do not), for the cycle check
GRAPH = {name: {m for m in _imports(name, tree, typing_too=False) if m in MODULES and m != name}
         for name, tree in TREES.items()}
# every import, TYPE_CHECKING ones too, for the layer rules

IMPORTED = {name: set(_imports(name, tree)) for name, tree in TREES.items()}


def test_the_layers_exist() -> None:
    """The walk sees the figures, the renderers and the models (a moved package would make the rest vacuous)."""
    assert {"collector.present.weekly", "collector.present.value_stream", "collector.render.terminal",
            "collector.render.email.html", "models.mapper"} <= set(MODULES)


@pytest.mark.parametrize("name", sorted(n for n in MODULES if _inside(n, RENDERERS)))
def test_renderers_only_draw_records(name: str) -> None:
    """A renderer imports no duckdb and nothing of the project beyond figures, renderers and config."""
    wrong = sorted(m for m in IMPORTED[name] if _inside(m, "duckdb")
                   or (_project(m) and not any(_inside(m, allowed) for allowed in RENDERER_MAY_IMPORT)))
    assert not wrong, f"{name} imports {', '.join(wrong)}"


@pytest.mark.parametrize("name", sorted(n for n in MODULES if _inside(n, RENDERERS)))
def test_renderers_run_no_sql(name: str) -> None:
    """No renderer calls execute()/query() or fetches rows: every figure it draws comes in a record."""
    calls = [node.func.attr if isinstance(node.func, ast.Attribute) else node.func.id
             for node in ast.walk(TREES[name]) if isinstance(node, ast.Call)
             and isinstance(node.func, (ast.Attribute, ast.Name))]
    assert not sorted(set(calls) & SQL_CALLS), f"{name} calls {sorted(set(calls) & SQL_CALLS)}"


@pytest.mark.parametrize("name", sorted(n for n in MODULES if _inside(n, FIGURES)))
def test_figures_import_no_renderer(name: str) -> None:
    """The figures never import a renderer (nor the CLI or the report job that wire them together)."""
    wrong = sorted(m for m in IMPORTED[name]
                   if any(_inside(m, p) for p in (RENDERERS, "collector.cli", "collector.weekly_report")))
    assert not wrong, f"{name} imports {', '.join(wrong)}"


@pytest.mark.parametrize("name", sorted(n for n in MODULES if _inside(n, "models")))
def test_models_know_nothing_of_the_collector(name: str) -> None:
    """The mapper and its records import nothing from collector or connectors."""
    wrong = sorted(m for m in IMPORTED[name] if _inside(m, "collector") or _inside(m, "connectors"))
    assert not wrong, f"{name} imports {', '.join(wrong)}"


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(graph[node]):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_no_import_cycle() -> None:
    """No module reaches itself through the imports that run, lazy ones inside functions included.

    One known circle is left in the demo's simulated GitHub (not a layer of vsm): the GraphQL endpoint
    borrows the REST server's list order lazily. Breaking it fails here too, so the list stays true.
    """
    assert _cycles(GRAPH) == KNOWN_CYCLES


def test_the_cycle_check_sees_a_cycle() -> None:
    """The check itself finds a planted circle, so an empty answer above means something."""
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
