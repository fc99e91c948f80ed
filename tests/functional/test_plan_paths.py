"""`dynashift plan` compares the four paths on a moto server: PITR read from the source, facts
from the plan, nothing changed."""

from __future__ import annotations

import json
from typing import Any

import pytest

from dynashift.errors import pitr_off
from tests.functional.test_plan import READ_ONLY, _run, calls  # noqa: F401 (fixture)
from tests.functional.test_target import simple_table, snapshot
from tests.support.export import enable_pitr

ITEMS = 20
ITEM_BYTES = 1000  # "pk" (2) + "item-00" (7) + "data" (4) + 987 characters
GB = 1024**3


def _source(ddb: Any, name: str, *, pitr: bool) -> None:
    simple_table(ddb, name)
    for i in range(ITEMS):
        ddb.put_item(TableName=name, Item={"pk": {"S": f"item-{i:02d}"}, "data": {"S": "x" * 987}})
    if pitr:
        enable_pitr(ddb, name)


@pytest.mark.usefixtures("calls")
def test_pitr_off_rules_out_export_and_import_and_nothing_changes(
    endpoint: str, ddb: Any, capsys: Any, table_name: Any, request: Any
) -> None:
    made: list[str] = request.getfixturevalue("calls")
    src, dst = table_name("paths-src"), table_name("paths-dst")
    _source(ddb, src, pitr=False)
    before = snapshot(ddb, src)
    code, out, err = _run(
        capsys,
        "plan",
        "--source",
        src,
        "--target",
        dst,
        "--endpoint-url",
        endpoint,
        "--max-write-rate",
        "10",
        "--time-limit",
        "1",
        "--refresh",
        "--json",
    )
    assert code == 0, err
    doc = json.loads(out)
    paths = {p["path"]: p for p in doc["paths"]["paths"]}
    assert doc["source_pitr"] is False and doc["paths"]["source_pitr"] is False
    said = pitr_off(doc["source"])
    assert paths["export"]["out"] == [said]
    assert paths["import"]["out"] == [said]
    # 20 items x 1,000 B = 20,000 B: 1 write unit each = 20 WU; ceil(20,000 / 4,096) = 5 units,
    # eventually consistent 2.5 RU; at 10 items/s the load takes 2 s
    scan = paths["scan"]
    assert (scan["source_read_units"], scan["target_write_units"]) == (2.5, 20)
    assert scan["seconds"] == 2 and scan["out"] == []
    assert scan["cost_usd"] == pytest.approx(20 * 0.625e-6 + 2.5 * 0.125e-6)
    # export: 20,000 B / 2^30 x $0.10; no source reads
    assert paths["export"]["export_usd"] == pytest.approx(20_000 / GB * 0.10)
    assert paths["export"]["source_read_units"] == 0
    # scan and replay cost the same; the target is new and the window safe: replay
    assert doc["paths"]["cheapest"] == "replay"
    assert "DescribeContinuousBackups" in made
    assert set(made) <= READ_ONLY, set(made) - READ_ONLY
    assert snapshot(ddb, src) == before
    with pytest.raises(ddb.exceptions.ResourceNotFoundException):
        ddb.describe_table(TableName=dst)


def test_pitr_on_new_target_refresh_picks_import_existing_target_does_not(
    endpoint: str, ddb: Any, capsys: Any, table_name: Any
) -> None:
    src, dst = table_name("paths-src"), table_name("paths-dst")
    _source(ddb, src, pitr=True)
    args = ("plan", "--source", src, "--endpoint-url", endpoint, "--refresh")
    code, out, err = _run(capsys, *args, "--target", dst, "--time-limit", "1")
    assert code == 0, err
    # import: $0.25/GB of 20,000 B (export + import) beats 20 WU x $0.625/M; it takes
    # 10 min + 10 min (the assumed set-up times) + a few ms of size: within 1 h
    assert "Cheapest within 60 min: import (copy --via-import)" in out
    assert "  PITR:          on\n" in out
    assert "Assumptions (estimates, not facts)" in out
    assert "10 min + 100 GB/h (AWS documents no rate" in out
    # a 15-minute limit rules import out (~20 min): replay (scan costs the same)
    code, out, err = _run(capsys, *args, "--target", dst, "--time-limit", "0.25")
    assert code == 0, err
    assert "Cheapest within 15 min: replay" in out
    assert "over the time limit: ~20 min > 15 min" in out
    # an existing (empty) target: import needs a fresh one
    simple_table(ddb, dst)
    code, out, err = _run(capsys, *args, "--target", dst, "--json")
    assert code == 0, err
    paths = {p["path"]: p for p in json.loads(out)["paths"]["paths"]}
    assert paths["import"]["out"][0].startswith(f"needs a fresh target: {dst} exists")
    assert paths["replay"]["out"] == [] and paths["export"]["out"] == []


def test_without_target_the_paths_for_a_new_table(
    endpoint: str, ddb: Any, capsys: Any, table_name: Any
) -> None:
    src = table_name("paths-src")
    _source(ddb, src, pitr=False)
    before = snapshot(ddb, src)
    args = ("plan", "--source", src, "--endpoint-url", endpoint, "--max-write-rate", "10")
    code, out, err = _run(capsys, *args)
    assert code == 0, err
    assert "(no --target: a new table; nothing changed)" in out
    assert pitr_off(f"us-east-1:{src}") in out
    assert "dynashift never turns it on" in out and "Cheapest (no --time-limit): replay" in out
    code, out, err = _run(capsys, *args, "--json")
    assert code == 0, err
    doc = json.loads(out)
    assert doc["target"] is None
    scan = next(p for p in doc["paths"]["paths"] if p["path"] == "scan")
    # the same sample-scan figures as with a target: 20 WU, 2.5 RU, 2 s at 10 items/s
    assert (scan["target_write_units"], scan["source_read_units"], scan["seconds"]) == (20, 2.5, 2)
    assert snapshot(ddb, src) == before
