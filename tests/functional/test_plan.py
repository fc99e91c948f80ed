"""`dynashift plan` on a moto server: a 10,000-item source, hand-calculated units, no change."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from dynashift.cli.main import main
from dynashift.models import PROCESS_CLIENTS
from tests.functional.test_target import hooked, location, rich_source, simple_table, snapshot

ITEMS = 10_000
ITEM_BYTES = 1500  # "pk" (2) + "item-00000" (10) + "data" (4) + 1,484 characters

#: Operations plan may call: reads only.
READ_ONLY = {
    "DescribeTable",
    "DescribeTimeToLive",
    "DescribeContinuousBackups",
    "ListTagsOfResource",
    "GetResourcePolicy",
    "Scan",
    "DescribeStream",
    "GetCallerIdentity",
}


@pytest.fixture(scope="module")
def big_source(ddb: Any) -> str:
    name = f"plan-src-{uuid.uuid4().hex[:8]}"
    simple_table(ddb, name)
    filler = "x" * (ITEM_BYTES - 16)
    batch: list[dict[str, Any]] = []
    for i in range(ITEMS):
        batch.append(
            {"PutRequest": {"Item": {"pk": {"S": f"item-{i:05d}"}, "data": {"S": filler}}}}
        )
        if len(batch) == 25:
            ddb.batch_write_item(RequestItems={name: batch})
            batch = []
    return name


@pytest.fixture
def calls(endpoint: str) -> Iterator[list[str]]:
    """Every DynamoDB / Streams / STS operation the CLI's clients make during the test."""
    made: list[str] = []
    side_loc = location(endpoint, "placeholder", region=None)
    factory = PROCESS_CLIENTS(side_loc)

    def record(model: Any, **_: Any) -> None:
        made.append(model.name)

    with (
        hooked(factory.dynamodb(), "before-call", record),
        hooked(factory.streams(), "before-call", record),
    ):
        yield made


def _run(capsys: Any, *argv: str) -> tuple[int, str, str]:
    try:
        code = main(list(argv))
    except SystemExit as exc:  # argparse usage errors
        code = int(exc.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.usefixtures("calls")
def test_plan_of_10000_items_estimates_and_changes_nothing(
    endpoint: str, ddb: Any, big_source: str, capsys: Any, request: Any
) -> None:
    calls: list[str] = request.getfixturevalue("calls")
    target = f"plan-dst-{uuid.uuid4().hex[:8]}"
    before = snapshot(ddb, big_source)
    code, out, err = _run(
        capsys,
        "plan",
        "--source",
        big_source,
        "--target",
        target,
        "--endpoint-url",
        endpoint,
        "--write-rate",
        "50",
        "--json",
    )
    assert code == 0, err
    plan = json.loads(out)
    assert plan["item_count"] == ITEMS
    assert plan["avg_item_bytes"] == ITEM_BYTES
    assert plan["avg_item_from"] == "sample scan"  # moto's TableSizeBytes is 0
    assert plan["target_action"] == "create"
    assert "create the table" in plan["target_changes"]
    assert plan["source_changes"] == ["enable a NEW_AND_OLD_IMAGES stream"]
    # hand calculation: 1,500 B -> 2 write units per item -> 20,000 write units
    assert plan["write_units_per_item"] == 2
    assert plan["backfill"]["write_units"] == 20_000
    # scan: 15,000,000 B -> ceil(15e6 / 4096) = 3,663 units, eventually consistent = 1,831.5
    assert plan["backfill"]["read_units"] == 1831.5
    # verification scans both tables: 2 x 1,831.5
    assert plan["verification"]["read_units"] == 3663
    # 20,000 x $0.625/M + 1,831.5 x $0.125/M
    assert plan["backfill"]["cost_usd"] == pytest.approx(0.0125 + 1831.5 * 0.125e-6)
    assert plan["verification"]["cost_usd"] == pytest.approx(3663 * 0.125e-6)
    assert plan["prices"]["write_per_million"] == 0.625
    # 10,000 items at 50 items/s
    assert plan["backfill_seconds"] == 200 and plan["fits_stream_retention"] is True
    # 200 s is well inside the 24 h stream window and the target is new: replay
    assert plan["strategy"] == "replay" and "target starts empty" in plan["strategy_reason"]
    # 50 items/s: one worker, at least 4 segments; deployed ceil(50 x 0.010 x 2) = 1 in flight,
    # here (the moto server is a local emulator) the one worker keeps all 16 in flight
    deployed, local = plan["concurrency_deployed"], plan["concurrency"]
    assert (deployed["workers"], deployed["segments"], deployed["in_flight"]) == (1, 4, 1)
    assert (local["workers"], local["segments"], local["in_flight"]) == (1, 4, 16)
    assert deployed["write_rate"] == local["write_rate"] == 50
    # nothing changed: no writes were sent, the source is as it was, no target exists
    assert "DescribeTable" in calls and "Scan" in calls  # the hook sees the CLI's calls
    assert set(calls) <= READ_ONLY, set(calls) - READ_ONLY
    assert snapshot(ddb, big_source) == before
    assert not ddb.describe_table(TableName=big_source)["Table"].get("LatestStreamArn")
    with pytest.raises(ddb.exceptions.ResourceNotFoundException):
        ddb.describe_table(TableName=target)


def test_plan_text_and_overridden_prices(
    endpoint: str, big_source: str, capsys: Any, table_name: Any
) -> None:
    code, out, err = _run(
        capsys,
        "plan",
        "--source",
        big_source,
        "--target",
        table_name("plan-txt"),
        "--endpoint-url",
        endpoint,
        "--write-price",
        "1.25",
        "--read-price",
        "0.25",
        "--replica-region",
        "eu-west-1",
    )
    assert code == 0, err
    assert "10,000 (from DescribeTable)" in out
    assert "20,000 write units, 20,000 replicated write units" in out
    assert "$1.25/M write units, $0.25/M read units" in out
    # default rate: on-demand initial 4,000 WCU / 2 units = 2,000 items/s -> 5 s
    assert "5 s at 2,000 items/s" in out and "fits" in out
    assert "add replicas in eu-west-1" in out
    assert "nothing has been changed" in out
    assert "Strategy: replay recommended" in out
    # 2,000 items/s: 4 workers of 500, 8 segments, ceil(500 x 0.010 x 2) = 10 in flight
    assert "deployed:      workers 4, segments 8, in-flight 10 per worker: because" in out
    assert "migrate here:  workers " in out


def test_plan_of_rich_existing_and_slow_backfill_warns(
    endpoint: str, ddb: Any, capsys: Any, table_name: Any
) -> None:
    src, dst = table_name("plan-rich"), table_name("plan-rich-dst")
    rich_source(ddb, src)
    ddb.put_item(TableName=src, Item={"pk": {"S": "a"}, "sk": {"N": "1"}, "v": {"S": "x"}})
    code, out, err = _run(
        capsys,
        "plan",
        "--source",
        src,
        "--target",
        dst,
        "--endpoint-url",
        endpoint,
        "--write-rate",
        "0.00001",
    )
    assert code == 0, err
    assert "GSI by-email" in out and "LSI by-created" in out
    assert "LSIs can only be created with the table" in out
    assert "TTL: expires" in out and "point-in-time recovery: on" in out
    assert "billing: PROVISIONED, 7 RCU / 3 WCU" in out
    assert "DOES NOT FIT" in out and "not comfortably inside the 24 h" in out
    assert "Strategy: concurrent recommended" in out and "replay would be refused" in out


def test_plan_warns_for_nonempty_target_and_replaced_stream(
    endpoint: str, ddb: Any, capsys: Any, table_name: Any
) -> None:
    src, dst = table_name("plan-ko"), table_name("plan-ko-dst")
    simple_table(
        ddb, src, StreamSpecification={"StreamEnabled": True, "StreamViewType": "KEYS_ONLY"}
    )
    simple_table(ddb, dst)
    ddb.put_item(TableName=dst, Item={"pk": {"S": "x"}})
    before = (snapshot(ddb, src), snapshot(ddb, dst))
    code, out, err = _run(
        capsys,
        "plan",
        "--source",
        src,
        "--target",
        dst,
        "--endpoint-url",
        endpoint,
        "--allow-nonempty-target",
        "--replace-stream",
    )
    assert code == 0, err
    assert "not empty (allowed)" in out
    assert "disable the KEYS_ONLY stream and enable NEW_AND_OLD_IMAGES" in out
    assert "other consumers" in out
    assert "Strategy: concurrent recommended" in out and "target already holds items" in out
    assert (snapshot(ddb, src), snapshot(ddb, dst)) == before


def _refused(capsys: Any, argv: list[str], *needles: str) -> None:
    code, out, err = _run(capsys, *argv)
    assert code == 2
    assert out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    assert "Traceback" not in err


def test_refusals_exit_2_one_line_tables_unchanged(
    endpoint: str, ddb: Any, capsys: Any, table_name: Any
) -> None:
    keyed, plain, keys_only, missing = (
        table_name("r-keyed"),
        table_name("r-plain"),
        table_name("r-ko"),
        table_name("r-missing"),
    )
    simple_table(ddb, keyed, sort_key=True)
    simple_table(ddb, plain)
    simple_table(
        ddb, keys_only, StreamSpecification={"StreamEnabled": True, "StreamViewType": "KEYS_ONLY"}
    )
    ddb.put_item(TableName=plain, Item={"pk": {"S": "p"}})
    before = [snapshot(ddb, t) for t in (keyed, plain, keys_only)]
    common = ["--endpoint-url", endpoint]
    # incompatible key schema: both schemas named
    _refused(
        capsys,
        ["plan", "--source", keyed, "--target", plain, "--allow-nonempty-target", *common],
        "pk (S, HASH), sk (N, RANGE)",
        "[pk (S, HASH)]",
    )
    # same source and target
    _refused(capsys, ["plan", "--source", plain, "--target", f"us-east-1:{plain}", *common], "same")
    # KEYS_ONLY without --replace-stream
    _refused(
        capsys,
        ["plan", "--source", keys_only, "--target", table_name("r-new"), *common],
        "KEYS_ONLY",
        "--replace-stream",
    )
    # a missing table
    _refused(capsys, ["plan", "--source", missing, "--target", table_name("r-x"), *common], missing)
    # a non-empty target without --allow-nonempty-target
    _refused(
        capsys,
        ["plan", "--source", keys_only, "--target", plain, "--replace-stream", *common],
        plain,
        "--allow-nonempty-target",
    )
    # bad flag values
    _refused(capsys, ["plan", "--source", plain, "--target", "xy", *common], "'xy'")
    _refused(
        capsys,
        ["plan", "--source", plain, "--target", keyed, "--tag", "novalue", *common],
        "novalue",
    )
    _refused(
        capsys,
        ["plan", "--source", plain, "--target", keyed, "--write-rate", "-1", *common],
        "-1",
    )
    assert [snapshot(ddb, t) for t in (keyed, plain, keys_only)] == before
