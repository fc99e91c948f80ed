"""The demo's `--final-check` comparison (a fresh pass of the verification's diff engine after
the cutover) on small tables of the moto server: identical tables pass, one extra item fails."""

from __future__ import annotations

import io
import uuid
from typing import Any

from dynashift.demo import _final_comparison
from tests.support.tables import create_table, fill, varied_items
from tests.support.workflow import workflow_input


def test_final_check_finds_identical_tables_and_an_extra_item(ddb: Any, endpoint: str) -> None:
    suffix = uuid.uuid4().hex[:8]
    source, target = f"fc-src-{suffix}", f"fc-tgt-{suffix}"
    items = varied_items(6, seed=5)
    for name in (source, target):
        create_table(ddb, name)
        fill(ddb, name, items)
    spec = workflow_input(endpoint, source, target, segments=2).spec
    out = io.StringIO()
    assert _final_comparison(spec, out) is True
    assert "6 source items compared" in out.getvalue() and "identical" in out.getvalue()
    ddb.put_item(TableName=target, Item={"pk": {"S": f"extra-{suffix}"}})
    out = io.StringIO()
    assert _final_comparison(spec, out) is False
    assert "1 extra" in out.getvalue()
