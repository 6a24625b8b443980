"""crudstack's modules import one another without a cycle.

Every `import` and `from ... import` counts, at module level or inside a function (an import
deferred into a function to dodge a cycle still ties the two modules together), except those under
`if TYPE_CHECKING:`, which never run."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "crudstack"


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported(path: Path, modules: set[str]) -> set[str]:
    """The crudstack modules the file at path imports."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in _nodes(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[: len(parts) - node.level + 1] + ([node.module] if node.module else []))
            # `from crudstack.steps import table` imports a module; `from crudstack.plan import Change` a name
            found |= {f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base for alias in node.names}
    return found & modules


def _nodes(tree: ast.AST):
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            yield from (n for child in node.orelse for n in [child, *_nodes(child)])
            continue
        yield node
        yield from _nodes(node)


def import_graph() -> dict[str, set[str]]:
    files = {module_name(path): path for path in PACKAGE.rglob("*.py")}
    return {name: imported(path, set(files)) for name, path in files.items()}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    done: set[str] = set()

    def visit(name: str, path: list[str]) -> list[str] | None:
        for target in sorted(graph[name]):
            if target in path:
                return path[path.index(target):] + [target]
            if target not in done:
                cycle = visit(target, path + [target])
                if cycle:
                    return cycle
        done.add(name)
        return None

    for name in sorted(graph):
        if name not in done:
            cycle = visit(name, [name])
            if cycle:
                return cycle
    return None


def test_crudstacks_modules_import_one_another_without_a_cycle():
    cycle = find_cycle(import_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_the_cycle_finder_counts_imports_in_functions_and_skips_type_checking_ones():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None
    source = ("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from crudstack import plan\n"
              "def f():\n    from crudstack.steps import table\n")
    assert [node.module for node in _nodes(ast.parse(source)) if isinstance(node, ast.ImportFrom)] == [
        "typing", "crudstack.steps"]
