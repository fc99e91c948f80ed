"""No import cycle between the modules of `src/dynashift` (issue 15).

The graph is read from the source with `ast`, nothing is imported. Every import counts, the
ones inside functions included: a function-level import that closes a cycle is the same
tangle (two modules that each need the other) only postponed to run time, and it is how the
cycle between `workflow/control.py` and `workflow/steps.py` used to hide. Imports under
`if TYPE_CHECKING:` are left out: they never run and only name types for the checker.

`from package import name` counts as an import of `package.name` when that is a module, of
`package` otherwise; importing a module also runs its package's `__init__`, but the package
`__init__` files here are empty of imports, which the test checks too (else they would have
to be edges).
"""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[2] / "src"
PACKAGE = "dynashift"


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    return {_module_name(path): path for path in sorted((SRC / PACKAGE).rglob("*.py"))}


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports(tree: ast.AST) -> list[ast.Import | ast.ImportFrom]:
    """Every import statement of `tree`, except those under `if TYPE_CHECKING:`."""
    found: list[ast.Import | ast.ImportFrom] = []
    stack: list[ast.AST] = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            stack.extend(node.orelse)
            continue
        if isinstance(node, ast.Import | ast.ImportFrom):
            found.append(node)
        stack.extend(ast.iter_child_nodes(node))
    return found


def _resolve(module: str, is_package: bool, node: ast.ImportFrom) -> str:
    if not node.level:
        return node.module or ""
    base = module.split(".") if is_package else module.split(".")[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join([*base, node.module] if node.module else base)


def import_graph() -> dict[str, set[str]]:
    """module -> the modules of the package it imports (anywhere but under TYPE_CHECKING)."""
    modules = _modules()
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name, path in modules.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for node in _imports(tree):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            else:
                base = _resolve(name, path.name == "__init__.py", node)
                targets = [
                    f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base
                    for alias in node.names
                ]
            for target in targets:
                known = target
                while known and known not in modules:
                    known = known.rpartition(".")[0]
                if known and known != name:
                    graph[name].add(known)
    return graph


def find_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    components: list[list[str]] = []
    counter = 0

    def visit(node: str) -> None:
        nonlocal counter
        index[node] = low[node] = counter
        counter += 1
        stack.append(node)
        on_stack.add(node)
        for succ in sorted(graph.get(node, ())):
            if succ not in index:
                visit(succ)
                low[node] = min(low[node], low[succ])
            elif succ in on_stack:
                low[node] = min(low[node], index[succ])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                components.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return sorted(components)


def test_the_detector_sees_a_cycle_through_a_function_level_import() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert find_cycles(graph) == [["a", "b", "c"]]
    source = "def f():\n    from dynashift.x import y\n"
    (node,) = _imports(ast.parse(source))
    assert isinstance(node, ast.ImportFrom) and node.module == "dynashift.x"
    guarded = "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import dynashift.x\n"
    assert [type(n).__name__ for n in _imports(ast.parse(guarded))] == ["ImportFrom"]


def test_package_inits_import_only_their_own_modules() -> None:
    """A package's `__init__` is a facade: it may re-export its own modules (`dynashift.target`,
    `dynashift.sync`) and nothing else, so importing one module of a package never drags in
    another package; a module of the package importing the facade is a cycle (test below)."""
    graph = import_graph()
    inits = {name for name in graph if _modules()[name].name == "__init__.py"}
    foreign = {
        name: sorted(t for t in graph[name] if not t.startswith(name + "."))
        for name in inits
        if name != "dynashift"
    }
    assert all(not targets for targets in foreign.values()), foreign
    assert not graph.get("dynashift"), graph.get("dynashift")


def test_no_import_cycle_in_src() -> None:
    graph = import_graph()
    assert graph.get("dynashift.workflow.steps")
    cycles = find_cycles(graph)
    assert cycles == [], "import cycles (every import counted, except TYPE_CHECKING):\n" + (
        "\n".join(" <-> ".join(cycle) for cycle in cycles)
    )
