"""One home for the PITR-off refusal: `errors.pitr_off` / `errors.pitr_off_refusal`.

`plan` (its PITR line and paths comparison), Validate of the export strategy, `copy
--via-import` and the wrapper of ExportTableToPointInTime's error all say it through those two
functions; no other module words it (its string constants are scanned, docstrings left out).
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

from dynashift.errors import pitr_off, pitr_off_refusal

ROOT = Path(__file__).resolve().parents[2]
HOME = "src/dynashift/errors.py"
#: What only the one wording says: the refusal's own phrases, old and new.
WORDING = re.compile(
    r"never turns it on|recovery is (off|not enabled)|PITR,? which is off", re.IGNORECASE
)


def _docstrings(tree: ast.AST) -> set[int]:
    ids = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                ids.add(id(body[0].value))
    return ids


def wordings(source: str) -> list[str]:
    """The string constants of `source` (f-string parts included, docstrings not) that word
    the PITR-off refusal (line: text)."""
    tree = ast.parse(source)
    skip = _docstrings(tree)
    return [
        f"{node.lineno}: {node.value}"
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant)
        and isinstance(node.value, str)
        and id(node) not in skip
        and WORDING.search(node.value)
    ]


def test_only_the_one_home_words_the_pitr_off_refusal() -> None:
    bad = {}
    for path in sorted([*ROOT.glob("src/dynashift/**/*.py"), *ROOT.glob("functions/**/*.py")]):
        rel = path.relative_to(ROOT).as_posix()
        if rel == HOME:
            continue
        found = wordings(path.read_text())
        if found:
            bad[rel] = found
    assert bad == {}, f"the PITR-off refusal worded outside {HOME}: {bad}"


def test_the_scan_sees_each_old_wording() -> None:
    """The four wordings the one home replaced, and a docstring that is left alone."""
    old = [
        'f"export needs PITR, which is off on {src}; dynashift never turns it on"',
        'f"spec.source: point-in-time recovery is off for table {t}; the export strategy"',
        'f"source {s} has point-in-time recovery off: --via-import exports with "'
        ' "ExportTableToPointInTime, which needs it (dynashift never turns it on; enable it "',
        '"point-in-time recovery is not enabled, and an export needs it"',
    ]
    for text in old:
        assert wordings(f"def f(src, t, s):\n    raise ValueError({text})\n"), text
    assert wordings('def f():\n    """PITR off: dynashift never turns it on."""\n') == []
    assert wordings('x = "target has point-in-time recovery off (the source has it on)"') == []


def test_the_wording_names_the_table_the_rule_and_the_way_on() -> None:
    assert pitr_off("orders") == (
        "point-in-time recovery is off for table orders: an export needs it and dynashift "
        "never turns it on"
    )
    refusal = pitr_off_refusal("orders", "choose another strategy")
    assert refusal.startswith(pitr_off("orders") + "; enable it (aws dynamodb ")
    assert refusal.endswith(") or choose another strategy") and "\n" not in refusal
