"""No module of the engine over 500 lines without the reason written at its top.

A longer module states in its docstring, on a line starting with `Size:`, why it is one module
(what would be split apart that must be read together). Anything else is split along its seams,
as `dynashift.sync` was.
"""

from __future__ import annotations

import ast
from pathlib import Path

import dynashift

MAX_LINES = 500
MARKER = "Size:"
SRC = Path(dynashift.__file__).resolve().parent

#: Modules split on another branch of the same issue (remove each entry once that branch is in).
SPLIT_ELSEWHERE: dict[str, str] = {}


def size_reason(path: Path) -> str | None:
    """The `Size:` line of the module's docstring (None without one)."""
    docstring = ast.get_docstring(ast.parse(path.read_text(encoding="utf-8"))) or ""
    for line in docstring.splitlines():
        if line.startswith(MARKER):
            return line
    return None


def test_every_module_over_500_lines_says_why_it_is_one_module() -> None:
    modules = sorted(SRC.rglob("*.py"))
    assert len(modules) > 20, SRC
    unexplained = []
    for path in modules:
        rel = path.relative_to(SRC).as_posix()
        lines = len(path.read_text(encoding="utf-8").splitlines())
        if lines > MAX_LINES and rel not in SPLIT_ELSEWHERE and size_reason(path) is None:
            unexplained.append(f"{rel} ({lines} lines)")
    assert unexplained == [], f"split these, or give the reason on a '{MARKER}' docstring line"


def test_a_reason_is_a_sentence_not_a_bare_marker(tmp_path: Path) -> None:
    explained = tmp_path / "explained.py"
    explained.write_text('"""Doc.\n\nSize: one module because x and y share a lock.\n"""\n')
    bare = tmp_path / "bare.py"
    bare.write_text('"""Doc.\n\nThe size is fine.\n"""\nSIZE = "Size: not in the docstring"\n')
    assert size_reason(explained) == "Size: one module because x and y share a lock."
    assert size_reason(bare) is None
    for path in SRC.rglob("*.py"):
        reason = size_reason(path)
        assert reason is None or len(reason.split()) >= 6, f"{path.name}: {reason!r}"
