"""The engine takes its clients and its clock; only the entry points choose them (issue 15).

Read from the source with `ast`, nothing is imported. In `src/dynashift` outside the entry
modules (the CLI commands, the local runner and the demo), no code builds a client factory:
no `factory_for(...)` call, no `<location>.clients(...)`, no `boto3.client(...)` /
`boto3.Session(...)`, and `PROCESS_CLIENTS` appears only as a parameter's default (like
`SYSTEM_CLOCK`), never called in a body, so every function that reaches AWS reaches it through
the `Clients` it was handed. `models.py` is the one home of the factory cache and of `Clients`,
`aws.py` of sessions and clients; `workflow/sandbox_preload.py` warms botocore up in the local
runner's forkserver (no call is made with those clients).
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "src" / "dynashift"

#: Where the choice of clients is made (or, for models.py, defined).
ENTRY_MODULES = (
    "cli/",
    "workflow/runner.py",
    "demo.py",
    "models.py",
    "aws.py",
    "workflow/sandbox_preload.py",
)


def _default_nodes(tree: ast.AST) -> set[int]:
    """ids of every node inside a function's parameter defaults."""
    ids: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
            for default in [*node.args.defaults, *node.args.kw_defaults]:
                if default is not None:
                    ids.update(id(n) for n in ast.walk(default))
    return ids


def violations(source: str) -> list[str]:
    """What in `source` builds or picks clients itself (line: text)."""
    tree = ast.parse(source)
    defaults = _default_nodes(tree)
    found = []
    for node in ast.walk(tree):
        what = None
        if isinstance(node, ast.Call):
            func = node.func
            name = func.id if isinstance(func, ast.Name) else getattr(func, "attr", None)
            if name == "factory_for":
                what = "factory_for(...)"
            elif (
                name in ("client", "Session")
                and isinstance(func, ast.Attribute)
                and isinstance(func.value, ast.Name)
                and func.value.id == "boto3"
            ):
                what = f"boto3.{name}(...)"
            elif (
                isinstance(func, ast.Attribute)
                and func.attr == "clients"
                and not (isinstance(func.value, ast.Name) and func.value.id == "self")
            ):
                what = ".clients(...)"
        elif (
            isinstance(node, ast.Name) and node.id == "PROCESS_CLIENTS" and id(node) not in defaults
        ):
            what = "PROCESS_CLIENTS outside a parameter default"
        if what:
            found.append(f"{node.lineno}: {what}")
    return found


def test_no_engine_module_builds_its_own_clients() -> None:
    bad = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE).as_posix()
        if rel.startswith(ENTRY_MODULES):
            continue
        found = violations(path.read_text())
        if found:
            bad[rel] = found
    assert bad == {}, f"engine modules choosing their own clients: {bad}"


def test_the_scan_sees_each_way_of_choosing_clients() -> None:
    assert violations("def f(loc):\n    return loc.clients().dynamodb()\n") == ["2: .clients(...)"]
    assert violations("def f(s):\n    return factory_for(s, 4)\n") == ["2: factory_for(...)"]
    assert violations("def f():\n    return boto3.client('sns')\n") == ["2: boto3.client(...)"]
    assert violations("def f(loc):\n    return PROCESS_CLIENTS(loc)\n") == [
        "2: PROCESS_CLIENTS outside a parameter default"
    ]
    allowed = (
        "def f(loc, *, clients=PROCESS_CLIENTS):\n    return clients(loc), self.clients(loc)\n"
    )
    assert violations(allowed) == []


#: Modules that may read time themselves: the Clock itself, and the emulator (its patches run
#: inside the moto server process and stand for AWS's own clock: export times, the start-up
#: wait on that subprocess).
TIME_MODULES = ("clock.py", "emulator.py")


def time_reads(source: str) -> list[str]:
    """Bare reads of time or sleeps in `source`, called or passed as a callable (line: name):
    they belong to the `Clock`."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.Attribute):
            continue
        owner = node.value
        name = f"{getattr(owner, 'id', getattr(owner, 'attr', ''))}.{node.attr}"
        if name in ("time.time", "time.sleep", "time.monotonic", "datetime.now"):
            found.append(f"{node.lineno}: {name}")
    return found


def test_no_engine_module_reads_time_itself() -> None:
    bad = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE).as_posix()
        if rel in TIME_MODULES:
            continue
        found = time_reads(path.read_text())
        if found:
            bad[rel] = found
    assert bad == {}, f"time read outside the injected Clock: {bad}"
    assert time_reads("def f(now=time.time):\n    time.sleep(1)\n    return now()\n") == [
        "1: time.time",
        "2: time.sleep",
    ]
