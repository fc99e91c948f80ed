"""`dynashift copy` end to end through the CLI entry point, against a moto server."""

from __future__ import annotations

import base64
import contextlib
import random
import uuid
from typing import Any

import pytest

from dynashift.aws import Side
from dynashift.cli.main import main
from dynashift.copy import CopyOptions, copy_table
from dynashift.models import TableLocation, factory_for
from tests.functional.test_target import capture, hooked
from tests.support.clock import ManualClock
from tests.support.reference import assert_identical, scan_all, table_contents
from tests.support.tables import HASH_RANGE, REGION, client, create_table, fill, simple_items
from tests.support.writer import default_item


def run_cli(endpoint: str, *args: str) -> int:
    return main(["copy", "--endpoint-url", endpoint, *args])


def one_line_error(capsys: Any, *needles: str) -> str:
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    assert "Traceback" not in err
    for needle in needles:
        assert needle in err, err
    return err


def varied_items(n: int, big_every: int = 25) -> list[dict[str, Any]]:
    rng = random.Random(4)
    items = []
    for i in range(n):
        item = default_item(rng, payload_bytes=60_000 if i % big_every == 0 else 0)
        item["pk"] = {"S": f"p{i % 7}"}
        item["sk"] = {"S": f"{'ab'[i % 2]}-{i:05d}"}
        item["gpk"] = {"N": str(i % 3)}
        items.append(item)
    return items


def _create_with_gsi(ddb: Any, name: str) -> None:
    ddb.create_table(
        TableName=name,
        KeySchema=HASH_RANGE,
        AttributeDefinitions=[
            {"AttributeName": "pk", "AttributeType": "S"},
            {"AttributeName": "sk", "AttributeType": "S"},
            {"AttributeName": "gpk", "AttributeType": "N"},
        ],
        BillingMode="PAY_PER_REQUEST",
        GlobalSecondaryIndexes=[
            {
                "IndexName": "by-gpk",
                "KeySchema": [{"AttributeName": "gpk", "KeyType": "HASH"}],
                "Projection": {"ProjectionType": "KEYS_ONLY"},
            }
        ],
    )


@pytest.fixture(scope="module")
def varied(endpoint: str) -> tuple[str, Any]:
    """A read-only source shared by the module: 300 items of every type, some ~60 KB."""
    ddb = client(endpoint)
    src = f"csrc-{uuid.uuid4().hex[:10]}"
    _create_with_gsi(ddb, src)
    fill(ddb, src, varied_items(300))
    return src, ddb


def test_copy_of_varied_items_into_a_new_table_is_identical(
    endpoint: str, varied: Any, table_name: Any, capsys: Any
) -> None:
    src, ddb = varied
    dst = table_name("cdst")
    assert run_cli(endpoint, "--source", src, "--target", dst, "--segments", "3") == 0
    out = capsys.readouterr().out
    assert "target created" in out and "written 300" in out
    assert_identical(ddb, src, ddb, dst, ("pk", "sk"))
    desc = ddb.describe_table(TableName=dst)["Table"]
    assert [g["IndexName"] for g in desc["GlobalSecondaryIndexes"]] == ["by-gpk"]


def test_pk_and_sk_prefix_copy_exactly_the_matching_items(
    endpoint: str, varied: Any, table_name: Any
) -> None:
    src, ddb = varied
    dst = table_name("cdst")
    args = ["--source", src, "--target", dst, "--pk", "p3", "--sk-begins-with", "b-"]
    assert run_cli(endpoint, *args, "--page-size", "7") == 0
    everything = table_contents(ddb, src, ("pk", "sk"))
    want = {k: v for k, v in everything.items() if k[0] == "p3" and k[1].startswith("b-")}
    assert want and table_contents(ddb, dst, ("pk", "sk")) == want
    dst2 = table_name("cdst")
    assert run_cli(endpoint, "--source", src, "--target", dst2, "--pk", "p5") == 0
    got = table_contents(ddb, dst2, ("pk", "sk"))
    assert got == {k: v for k, v in everything.items() if k[0] == "p5"}


def test_index_query_fetches_full_items(endpoint: str, varied: Any, table_name: Any) -> None:
    src, ddb = varied
    dst = table_name("cdst")
    assert (
        run_cli(endpoint, "--source", src, "--target", dst, "--index", "by-gpk", "--pk", "2") == 0
    )
    want = {k: v for k, v in table_contents(ddb, src, ("pk", "sk")).items() if v["gpk"] == 2}
    assert want and table_contents(ddb, dst, ("pk", "sk")) == want  # KEYS_ONLY index: refetched


def test_truncate_target_needs_yes_off_a_terminal_then_backs_up(
    endpoint: str, table_name: Any, capsys: Any, monkeypatch: Any
) -> None:
    ddb = client(endpoint)
    src, dst = table_name("csrc"), table_name("cdst")
    create_table(ddb, src)
    create_table(ddb, dst)
    fill(ddb, src, simple_items(120))
    fill(ddb, dst, simple_items(30, start=5000))  # items the source does not have
    monkeypatch.setattr("sys.stdin.isatty", lambda: False)
    assert run_cli(endpoint, "--source", src, "--target", dst, "--truncate-target") == 2
    one_line_error(capsys, "--yes", dst)
    assert len(scan_all(ddb, dst)) == 30  # untouched
    assert run_cli(endpoint, "--source", src, "--target", dst) == 2  # non-empty target
    one_line_error(capsys, "not empty")
    assert run_cli(endpoint, "--source", src, "--target", dst, "--truncate-target", "--yes") == 0
    out = capsys.readouterr().out
    assert "truncated: 30" in out and "backup:" in out
    assert_identical(ddb, src, ddb, dst, ("pk",))
    backups = ddb.list_backups(TableName=dst)["BackupSummaries"]
    assert len(backups) == 1


@pytest.mark.parametrize(
    "case",
    [
        (["--sk-begins-with", "a"], ["--sk-begins-with", "--pk"]),
        (["--index", "by-gpk"], ["--index", "--pk"]),
        (["--pk", "p1", "--index", "nope"], ["--index nope", "by-gpk"]),
        (["--pk", "x", "--index", "by-gpk"], ["--pk 'x'", "number"]),
        (["--pk", "2", "--index", "by-gpk", "--sk-begins-with", "a"], ["no sort key"]),
        (["--no-backup"], ["--no-backup", "--truncate-target"]),
        (["--segments", "0"], ["--segments"]),
        (["--max-write-rate", "-3"], ["--max-write-rate"]),
    ],
)
def test_bad_input_is_one_line_exit_2_and_writes_nothing(
    endpoint: str, varied: Any, table_name: Any, capsys: Any, case: tuple[list[str], list[str]]
) -> None:
    args, needles = case
    src, ddb = varied
    dst = table_name("cdst")
    with pytest.raises(SystemExit) if args[0] in ("--segments", "--max-write-rate") else _noop():
        code = run_cli(endpoint, "--source", src, "--target", dst, *args)
        assert code == 2
    one_line_error(capsys, *needles)
    assert dst not in ddb.list_tables()["TableNames"]


def test_incompatible_target_and_missing_source(
    endpoint: str, table_name: Any, capsys: Any
) -> None:
    ddb = client(endpoint)
    src, dst = table_name("csrc"), table_name("cdst")
    create_table(ddb, src)
    create_table(ddb, dst, types={"pk": "N"})
    fill(ddb, src, simple_items(5))
    assert run_cli(endpoint, "--source", src, "--target", dst) == 2
    one_line_error(capsys, "key schema")
    assert scan_all(ddb, dst) == []
    assert run_cli(endpoint, "--source", table_name("nope"), "--target", table_name("x")) == 2
    one_line_error(capsys, "does not exist")


def test_binary_partition_key_value_is_base64(endpoint: str, table_name: Any) -> None:
    ddb = client(endpoint)
    src, dst = table_name("csrc"), table_name("cdst")
    create_table(ddb, src, HASH_RANGE, types={"pk": "B", "sk": "S"})
    fill(ddb, src, [{"pk": {"B": bytes([i % 3])}, "sk": {"S": f"s{i}"}} for i in range(30)])
    value = base64.b64encode(bytes([1])).decode()
    assert run_cli(endpoint, "--source", src, "--target", dst, "--pk", value) == 0
    assert len(scan_all(ddb, dst)) == 10


class _noop:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None


def test_copy_table_uses_only_the_clients_and_the_clock_it_is_given(
    endpoint: str, table_name: Any
) -> None:
    """Issue 15 item 4: `copy_table` hands its clients and clock to `prepare_target`.

    The target is described and created through the given target client, the process's shared
    clients of that side make no call for either table, and the durations come from the given
    clock (a manual clock that never moves: both are 0).
    """
    ddb = client(endpoint)
    src, dst = table_name("csrc"), table_name("cdst")
    create_table(ddb, src)
    fill(ddb, src, simple_items(20))
    side = Side(region=REGION, endpoint_url=endpoint)
    source, target = TableLocation(name=src, side=side), TableLocation(name=dst, side=side)
    given_source, given_target = client(endpoint), client(endpoint)
    shared_calls: list[str] = []

    def on_shared(params: dict[str, Any], event_name: str, **_: Any) -> None:
        if params.get("TableName") in (src, dst):
            shared_calls.append(event_name)

    event = "before-parameter-build.dynamodb"
    shared = {id(c): c for c in (factory_for(side, 4).dynamodb(), factory_for(side).dynamodb())}
    clock = ManualClock()
    with contextlib.ExitStack() as stack:
        for shared_client in shared.values():
            stack.enter_context(hooked(shared_client, event, on_shared))
        creates = stack.enter_context(capture(given_target, "CreateTable"))
        described = stack.enter_context(capture(given_source, "DescribeTable"))
        summary = copy_table(
            source,
            target,
            CopyOptions(segments=2),
            clock=clock,
            source_client=given_source,
            target_client=given_target,
        )
    assert summary.target_created and summary.written == 20
    assert [c["TableName"] for c in creates] == [dst]
    assert src in {c["TableName"] for c in described}
    assert shared_calls == []
    assert summary.seconds == 0.0 and summary.copy_seconds == 0.0
    assert len(table_contents(ddb, dst, ("pk",))) == 20
