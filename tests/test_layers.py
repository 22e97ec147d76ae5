"""The package map of fpnas/ holds: packages by role in layers that import one way (tools -> search, train ->
report -> cost -> space -> data -> runtime -> errors), no import circles, and fpnas imports at module top.

Read from the source's own import statements (ast), so the package map of the docs' architecture page
(docs/architecture.md) cannot drift from the code.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "fpnas"
# lowest first; a module may import its own package and the layers below it, never a layer above or a peer
LAYERS = (("errors",), ("runtime",), ("data",), ("space",), ("cost",), ("report",), ("search", "train"), ("tools",))
# `python -m fpnas.<tool>` command aliases: entry points of tools, imported by nothing
ALIASES = {"fpnas.show", "fpnas.export", "fpnas.latency", "fpnas.docs", "fpnas.space.__main__"}


def _module(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module(p): p for p in PACKAGE.rglob("*.py")}


def _imports(name: str) -> list[tuple[str, bool]]:
    """(imported fpnas module, at module top) of each import of module ``name``, without ``TYPE_CHECKING`` ones."""
    path = MODULES[name]
    tree = ast.parse(path.read_text())
    type_only = {
        id(n)
        for node in ast.walk(tree)
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)
        for n in ast.walk(node)
    }
    top = {id(n) for n in tree.body}
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = []
    for node in ast.walk(tree):
        if id(node) in type_only or not isinstance(node, (ast.Import, ast.ImportFrom)):
            continue
        if isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1] + [base]).strip(".")
            targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in MODULES else base for a in node.names]
        else:
            targets = [a.name for a in node.names]
        found += [(t, id(node) in top) for t in targets if t.split(".")[0] == "fpnas" and t != "fpnas"]
    return found


def _layer(name: str) -> tuple[int, str]:
    """(layer index, package) of module ``name``."""
    if name in ALIASES:
        return len(LAYERS), "alias"
    part = name.split(".")[1] if "." in name else ""
    for i, packages in enumerate(LAYERS):
        if part in packages:
            return i, part
    raise AssertionError(f"{name} belongs to no package of the map: put it in one of {LAYERS}")


def test_every_module_belongs_to_one_layer():
    for name in MODULES:
        if name != "fpnas":
            _layer(name)


def test_imports_run_down_the_layers_only():
    wrong = []
    for name in MODULES:
        if name == "fpnas":
            continue
        mine, package = _layer(name)
        for target, _ in _imports(name):
            theirs, their_package = _layer(target)
            if theirs > mine or (theirs == mine and their_package != package):
                wrong.append(f"{name} -> {target}")
    assert not wrong, "imports that run up a layer or across to a peer: " + ", ".join(sorted(set(wrong)))


def test_no_import_circles():
    graph = {name: {t for t, _ in _imports(name) if t in MODULES} for name in MODULES}
    state: dict[str, int] = {}
    circles = []

    def visit(node: str, stack: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                circles.append(" -> ".join([*stack[stack.index(nxt) :], nxt]))
            elif nxt not in state:
                visit(nxt, [*stack, nxt])
        state[node] = 2

    for name in sorted(graph):
        if name not in state:
            visit(name, [name])
    assert not circles, "import circles: " + "; ".join(circles)


# deferred on purpose: what search.py and train.py reach before a config error must not import torch or Lightning
# (a typo fails within two seconds), and the tools' heavy parts load only when their command runs
DEFERRED_OK = {"fpnas.runtime.cli", "fpnas.runtime.launch", "fpnas.runtime.resume"}


@pytest.mark.parametrize("name", sorted(n for n in MODULES if n not in DEFERRED_OK))
def test_fpnas_imports_sit_at_module_top(name):
    inner = sorted({t for t, top in _imports(name) if not top})
    assert not inner, f"{name} imports {inner} inside a function: import at module top (or defer with a reason)"


def test_docs_architecture_page_maps_every_package():
    page = (PACKAGE.parent / "docs" / "architecture.md").read_text().split("\n## Package map\n", 1)[1]
    mapped = {line.split("`")[1] for line in page.split("\n## ", 1)[0].splitlines() if line.startswith("| `fpnas/")}
    packages = {f"fpnas/{p}/" for layer in LAYERS for p in layer if p != "errors"} | {"fpnas/errors.py"}
    assert mapped == packages
