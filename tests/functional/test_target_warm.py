"""Warm throughput on a moto server: carried to a created target, overridden by the flags,
reported when an existing target is colder than the source, and read by the concurrency plan.

moto 5.2.5 stores CreateTable's and UpdateTable's WarmThroughput (table and GSIs), reports a
new table's default (12,000 read / 4,000 write units/s on demand, the capacity when
provisioned), and refuses a value under that floor as DynamoDB does.
"""

from __future__ import annotations

from typing import Any

import pytest

from dynashift.errors import BadInputError
from dynashift.models import PROCESS_CLIENTS
from dynashift.plan import make_plan, target_capacity
from dynashift.target import (
    TargetOptions,
    build_target_spec,
    check_target,
    compare_target,
    describe_location,
    prepare_target,
)
from tests.functional.test_target import capture, location, simple_table
from tests.support.clock import ManualClock
from tests.support.tables import create_table

HOT = {"ReadUnitsPerSecond": 20000, "WriteUnitsPerSecond": 9000}
HOT_GSI = {"ReadUnitsPerSecond": 15000, "WriteUnitsPerSecond": 6000}


def email_table(ddb: Any, name: str, *, warm: bool) -> None:
    """An on-demand table with a GSI `by-email`; `warm`: both warmer than a new table's."""
    gsi: dict[str, Any] = {
        "IndexName": "by-email",
        "KeySchema": [{"AttributeName": "email", "KeyType": "HASH"}],
        "Projection": {"ProjectionType": "KEYS_ONLY"},
    }
    extra: dict[str, Any] = {}
    if warm:
        gsi["WarmThroughput"] = HOT_GSI
        extra["WarmThroughput"] = HOT
    create_table(ddb, name, attributes={"email": "S"}, GlobalSecondaryIndexes=[gsi], **extra)


def warm_source(ddb: Any, name: str) -> None:
    """An on-demand source warmer than a new table, with a warmer GSI."""
    email_table(ddb, name, warm=True)


def copy_cli(endpoint: str, src: str, dst: str, capsys: Any, *flags: str) -> tuple[int, str]:
    """`dynashift copy` from `src` to `dst` on the emulator: (exit code, stdout + stderr)."""
    from dynashift.cli.main import main

    code = main(["copy", "--endpoint-url", endpoint, "--source", src, "--target", dst, *flags])
    captured = capsys.readouterr()
    return code, captured.out + captured.err


def warm_of(ddb: Any, name: str) -> tuple[tuple[int, int], dict[str, tuple[int, int]]]:
    t = ddb.describe_table(TableName=name)["Table"]

    def units(w: dict[str, Any]) -> tuple[int, int]:
        return int(w["ReadUnitsPerSecond"]), int(w["WriteUnitsPerSecond"])

    gsis = {g["IndexName"]: units(g["WarmThroughput"]) for g in t.get("GlobalSecondaryIndexes", [])}
    return units(t["WarmThroughput"]), gsis


def test_created_target_carries_the_source_warm_throughput_to_the_plan(
    endpoint: str, ddb: Any, table_name: Any
) -> None:
    src, dst = table_name("warm"), table_name("warm-copy")
    warm_source(ddb, src)
    source, target = location(endpoint, src), location(endpoint, dst)

    check = check_target(source, target, TargetOptions())
    assert check.action == "create"
    # the concurrency plan reads the warm write units the target is created with ...
    assert target_capacity(check) == (None, 9000)
    assert not any(w.startswith("a new on-demand target") for w in check.warnings)
    assert "warm throughput: 20,000 read / 9,000 write units/s" in "\n".join(check.spec.describe())
    plan = make_plan(source, target, TargetOptions())
    assert plan.target_warm_wcu == 9000
    assert plan.concurrency_deployed.write_rate_from == "its warm throughput, 9,000 WCU"

    with capture(PROCESS_CLIENTS(target).dynamodb(), "CreateTable") as creates:
        result = prepare_target(source, target, TargetOptions(), clock=ManualClock())
    assert result.ready and result.created
    (request,) = creates
    assert request["WarmThroughput"] == HOT
    assert warm_of(ddb, dst) == ((20000, 9000), {"by-email": (15000, 6000)})
    # ... and, once it exists, the warm units it reports
    again = check_target(source, target, TargetOptions())
    assert again.action == "exists" and target_capacity(again) == (None, 9000)
    assert not [w for w in again.warnings if "warm" in w]


def test_a_source_at_a_new_tables_floor_sends_no_warm_throughput(
    endpoint: str, ddb: Any, table_name: Any
) -> None:
    """A provisioned source (warm = its capacity) made on-demand: nothing above the on-demand
    floor, so no WarmThroughput (which CreateTable would refuse under 12,000 / 4,000)."""
    src, dst = table_name("cold"), table_name("cold-copy")
    simple_table(
        ddb,
        src,
    )
    ddb.update_table(
        TableName=src,
        BillingMode="PROVISIONED",
        ProvisionedThroughput={"ReadCapacityUnits": 5, "WriteCapacityUnits": 5},
    )
    target = location(endpoint, dst)
    options = TargetOptions(billing_mode="PAY_PER_REQUEST")
    with capture(PROCESS_CLIENTS(target).dynamodb(), "CreateTable") as creates:
        check = check_target(location(endpoint, src), target, options)
        prepare_target(location(endpoint, src), target, options, clock=ManualClock())
    assert "WarmThroughput" not in creates[0]
    assert target_capacity(check) == (None, None)
    assert any(w.startswith("a new on-demand target starts") for w in check.warnings)


def test_warm_flags_override_the_source_and_a_low_one_creates_nothing(
    endpoint: str, ddb: Any, table_name: Any
) -> None:
    src, dst, low = table_name("flag"), table_name("flag-copy"), table_name("flag-low")
    warm_source(ddb, src)
    prepare_target(
        location(endpoint, src),
        location(endpoint, dst),
        TargetOptions(warm_write_units=30000),
        clock=ManualClock(),
    )
    assert warm_of(ddb, dst)[0] == (20000, 30000)

    with pytest.raises(BadInputError, match=r"^--warm-write-units 3999: below the 4,000"):
        prepare_target(
            location(endpoint, src),
            location(endpoint, low),
            TargetOptions(warm_write_units=3999),
            clock=ManualClock(),
        )
    assert low not in ddb.list_tables()["TableNames"]
    with pytest.raises(BadInputError, match=r"^--warm-read-units 9: below the 10 units/s"):
        check_target(
            location(endpoint, src),
            location(endpoint, low),
            TargetOptions(
                billing_mode="PROVISIONED", read_capacity=10, write_capacity=10, warm_read_units=9
            ),
        )


def test_colder_existing_target_is_reported_and_raised_only_when_asked(
    endpoint: str, ddb: Any, table_name: Any
) -> None:
    src, dst = table_name("exist"), table_name("exist-cold")
    warm_source(ddb, src)
    email_table(ddb, dst, warm=False)
    source, target = location(endpoint, src), location(endpoint, dst)
    client = PROCESS_CLIENTS(target).dynamodb()

    with capture(client, "UpdateTable") as updates:
        result = prepare_target(source, target, TargetOptions(), clock=ManualClock())
    assert updates == []  # reported, not changed
    assert warm_of(ddb, dst) == ((12000, 4000), {"by-email": (12000, 4000)})
    warm = [w for w in result.warnings if "warm" in w]
    assert warm == [
        f"target us-east-1:{dst} warm throughput 12,000 read / 4,000 write units/s is lower "
        "than the 20,000 / 9,000 of the source",
        f"target us-east-1:{dst}: GSI by-email warm throughput 12,000 read / 4,000 write "
        "units/s is lower than the 15,000 / 6,000 of the source",
    ]
    # Readiness leaves warm throughput out: a pre-warming hint that an on-demand source raises
    # on its own while it serves traffic, so a matching target could fall behind mid-migration.
    src_desc = describe_location(source, "source")
    spec = build_target_spec(src_desc, TargetOptions())
    have = describe_location(target, "target")
    assert [d for d in compare_target(spec, have, TargetOptions()) if "warm" in d]
    assert compare_target(spec, have, TargetOptions(), warm=False) == []

    # plan says what prepare will do: nothing without a flag, the raise with one
    assert not [c for c in make_plan(source, target, TargetOptions()).target_changes if "warm" in c]
    assert [
        c
        for c in make_plan(source, target, TargetOptions(warm_write_units=5000)).target_changes
        if "warm" in c
    ] == ["raise warm throughput to 20,000 read / 5,000 write units/s (a one-time charge)"]

    with capture(client, "UpdateTable") as updates:
        prepare_target(source, target, TargetOptions(warm_write_units=5000), clock=ManualClock())
    assert [u["WarmThroughput"] for u in updates] == [
        {"ReadUnitsPerSecond": 20000, "WriteUnitsPerSecond": 5000}
    ]
    assert warm_of(ddb, dst)[0] == (20000, 5000)


def test_via_import_the_table_warm_throughput_is_set_after_the_import(
    endpoint: str, ddb: Any, table_name: Any, capsys: Any
) -> None:
    """ImportTable takes a GSI's WarmThroughput but not the table's: `poll_target` sets it."""
    from tests.support.export import enable_pitr
    from tests.support.tables import client

    src, dst = table_name("iwarm"), table_name("iwarm-copy")
    warm_source(ddb, src)
    enable_pitr(ddb, src)
    ddb.put_item(TableName=src, Item={"pk": {"S": "a"}, "email": {"S": "a@example.com"}})
    bucket = f"exports-{src}"
    client(endpoint, "s3").create_bucket(Bucket=bucket)
    code, out = copy_cli(endpoint, src, dst, capsys, "--via-import", "--export-bucket", bucket)
    assert code == 0, out
    assert "set after the import: raised warm throughput to 20,000 read / 9,000 write" in out
    assert warm_of(ddb, dst) == ((20000, 9000), {"by-email": (15000, 6000)})


def test_migrate_flags_reach_validate_the_concurrency_plan_and_prepare_target(
    endpoint: str, ddb: Any, table_name: Any
) -> None:
    """`migrate --warm-write-units`: execution input -> the deployed Validate (which keeps it)
    -> the planned concurrency -> PrepareTarget creating the target with it."""
    from dynashift.cli.main import build_parser
    from dynashift.cli.migrate_cmd import build_workflow_input
    from dynashift.workflow.migrate import execution_input
    from dynashift.workflow.steps import prepare_target as prepare_step
    from dynashift.workflow.steps import validate_execution_input
    from dynashift.workflow.types import PrepareTargetEvent
    from tests.functional.test_migrate_strategy import _env

    src, dst = table_name("mwarm"), table_name("mwarm-copy")
    simple_table(ddb, src)
    argv = ["migrate", "--source", src, "--target", dst, "--endpoint-url", endpoint]
    args = build_parser().parse_args([*argv, "--warm-write-units", "20000"])
    workflow, planned = build_workflow_input(args)
    assert planned.write_rate_from == "its warm throughput, 20,000 WCU"
    validated = validate_execution_input({"input": execution_input(workflow)}, _env(endpoint))
    options = validated["input"]["target_options"]
    assert options["warm_write_units"] == 20000
    event = PrepareTargetEvent.model_validate(
        {"spec": validated["input"]["spec"], "target_options": options, "action": "start"}
    )
    assert prepare_step(event)["created"]
    assert warm_of(ddb, dst)[0] == (12000, 20000)


def test_copy_flag_pre_warms_the_target_it_creates(
    endpoint: str, ddb: Any, table_name: Any, capsys: Any
) -> None:
    src, dst = table_name("cwarm"), table_name("cwarm-copy")
    simple_table(ddb, src)
    ddb.put_item(TableName=src, Item={"pk": {"S": "a"}})
    code, out = copy_cli(endpoint, src, dst, capsys, "--yes", "--warm-read-units", "30000")
    options = TargetOptions(warm_read_units=30000)
    assert code == 0, out
    assert warm_of(ddb, dst)[0] == (30000, 4000)
    # warmed for reads only: writes still start at the initial throughput, and it says so
    none = location(endpoint, table_name("cwarm-none"))
    check = check_target(location(endpoint, src), none, options)
    assert any(w.startswith("a new on-demand target starts") for w in check.warnings)
    assert ddb.get_item(TableName=dst, Key={"pk": {"S": "a"}}).get("Item")
