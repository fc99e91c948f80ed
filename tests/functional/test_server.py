"""The moto server fixture itself: tables, streams and the CLI entry point."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.support.reference import scan_all


def test_moto_server_serves_tables_and_streams(ddb, streams, table_name):
    name = table_name("smoke")
    resp = ddb.create_table(
        TableName=name,
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
        StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"},
    )
    arn = resp["TableDescription"]["LatestStreamArn"]
    ddb.put_item(TableName=name, Item={"pk": {"S": "a"}, "n": {"N": "1"}})
    assert [i["pk"]["S"] for i in scan_all(ddb, name)] == ["a"]
    shard = streams.describe_stream(StreamArn=arn)["StreamDescription"]["Shards"][0]
    it = streams.get_shard_iterator(
        StreamArn=arn, ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON"
    )["ShardIterator"]
    records = streams.get_records(ShardIterator=it)["Records"]
    assert [r["eventName"] for r in records] == ["INSERT"]


def test_cli_bad_usage_is_one_line_exit_2():
    proc = subprocess.run(
        [sys.executable, "-m", "dynashift.cli.main", "no-such-command"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 2
    assert len(proc.stderr.strip().splitlines()) == 1
    assert "no-such-command" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_the_stream_applier_fails_instead_of_spinning_on_a_repeated_record(
    ddb, endpoint, table_name
):
    """What moto's stream did after two concurrent writes got one sequence number (see
    tests/support/moto_server.py): hand back the same record for ever. The test stand-in for
    the replicator must then fail at once, not re-apply it until the suite's timeout."""
    from tests.support.backfill import StreamApplier
    from tests.support.tables import create_table, enable_stream

    src, dst = table_name("rep-src"), table_name("rep-dst")
    create_table(ddb, src)
    create_table(ddb, dst)
    enable_stream(ddb, src)
    ddb.put_item(TableName=src, Item={"pk": {"S": "a"}})
    applier = StreamApplier(endpoint, src, dst, None)
    real = applier.streams
    first = real.get_records(ShardIterator=applier.iterator)
    stuck = {"Records": first["Records"], "NextShardIterator": applier.iterator}

    class Repeating:
        def get_records(self, **_kwargs):
            return stuck

    applier.streams = Repeating()
    with pytest.raises(RuntimeError, match="repeats a record"):
        applier.poll(timeout=30)
    assert [i["pk"]["S"] for i in scan_all(ddb, dst)] == ["a"]  # applied once


def test_nothing_written_sees_an_item_a_table_and_a_stream_change(ddb, table_name):
    from tests.support.reference import nothing_written
    from tests.support.tables import create_table, enable_stream

    name = create_table(ddb, table_name("nw"))
    with nothing_written(ddb, [name]):
        ddb.get_item(TableName=name, Key={"pk": {"S": "a"}})
    changes = [
        lambda: ddb.put_item(TableName=name, Item={"pk": {"S": "a"}}),
        lambda: create_table(ddb, table_name("nw-new")),
        lambda: enable_stream(ddb, name),
    ]
    for change, message in zip(changes, ["items", "created or deleted", "stream"], strict=True):
        with pytest.raises(AssertionError, match=message), nothing_written(ddb, [name]):
            change()
