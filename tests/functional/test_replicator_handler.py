"""`functions/replicator/app.handler` with real Lambda-shaped events and a fake context."""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from aws_lambda_powertools.utilities.batch.exceptions import BatchProcessingError

from dynashift.errors import BadInputError
from dynashift.state import PHASE_BACKFILL, StateStore
from functions.replicator import app
from tests.reference import scan_all

STREAM_ARN = "arn:aws:dynamodb:us-east-1:123456789012:table/src/stream/2024-01-01T00:00:00.000"

#: A batch as Lambda delivers it (JSON: binary as base64, times as epoch seconds).
EVENT: dict[str, Any] = {
    "Records": [
        {
            "eventID": "c4ca4238a0b923820dcc509a6f75849b",
            "eventName": "INSERT",
            "eventVersion": "1.1",
            "eventSource": "aws:dynamodb",
            "awsRegion": "us-east-1",
            "dynamodb": {
                "ApproximateCreationDateTime": 1_700_000_000,
                "Keys": {"pk": {"S": "a"}},
                "NewImage": {
                    "pk": {"S": "a"},
                    "bin": {"B": "3q2+7w=="},
                    "bins": {"BS": ["AQ==", "Ag=="]},
                    "nested": {"M": {"l": {"L": [{"B": "AA=="}, {"N": "1.50"}]}}},
                    "tags": {"SS": ["x", "y"]},
                },
                "SequenceNumber": "4421584500000000017450439091",
                "SizeBytes": 26,
                "StreamViewType": "NEW_AND_OLD_IMAGES",
            },
            "eventSourceARN": STREAM_ARN,
        },
        {
            "eventID": "c81e728d9d4c2f636f067f89cc14862c",
            "eventName": "MODIFY",
            "eventVersion": "1.1",
            "eventSource": "aws:dynamodb",
            "awsRegion": "us-east-1",
            "dynamodb": {
                "ApproximateCreationDateTime": 1_700_000_001,
                "Keys": {"pk": {"S": "b"}},
                "NewImage": {"pk": {"S": "b"}, "n": {"N": "2"}},
                "OldImage": {"pk": {"S": "b"}, "n": {"N": "1"}},
                "SequenceNumber": "4421584500000000017450439092",
                "SizeBytes": 59,
                "StreamViewType": "NEW_AND_OLD_IMAGES",
            },
            "eventSourceARN": STREAM_ARN,
        },
        {
            "eventID": "eccbc87e4b5ce2fe28308fd9f2a7baf3",
            "eventName": "REMOVE",
            "eventVersion": "1.1",
            "eventSource": "aws:dynamodb",
            "awsRegion": "us-east-1",
            "dynamodb": {
                "ApproximateCreationDateTime": 1_700_000_002,
                "Keys": {"pk": {"S": "gone"}},
                "OldImage": {"pk": {"S": "gone"}},
                "SequenceNumber": "4421584500000000017450439093",
                "SizeBytes": 38,
                "StreamViewType": "NEW_AND_OLD_IMAGES",
            },
            "userIdentity": {"type": "Service", "principalId": "dynamodb.amazonaws.com"},
            "eventSourceARN": STREAM_ARN,
        },
    ]
}


@dataclass
class FakeContext:
    function_name: str = "dynashift-replicator"
    function_version: str = "$LATEST"
    memory_limit_in_mb: int = 256
    invoked_function_arn: str = (
        "arn:aws:lambda:us-east-1:123456789012:function:dynashift-replicator"
    )
    aws_request_id: str = "52fdfc07-2182-154f-163f-5f0f9a621d72"

    def get_remaining_time_in_millis(self) -> int:
        return 60_000


@pytest.fixture
def tables(ddb: Any, table_name: Any, endpoint: str, monkeypatch: Any) -> Iterator[dict[str, Any]]:
    target = table_name("h-tgt")
    ddb.create_table(
        TableName=target,
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    state_table = table_name("h-state")
    StateStore.ensure_table(ddb, state_table)
    state = StateStore(ddb, state_table, "mig-h")
    state.put_meta(phase=PHASE_BACKFILL)
    ddb.put_item(TableName=target, Item={"pk": {"S": "gone"}})
    for name, value in {
        "DYNASHIFT_MIGRATION_ID": "mig-h",
        "DYNASHIFT_STATE_TABLE": state_table,
        "DYNASHIFT_TARGET_TABLE": target,
        "DYNASHIFT_ENDPOINT_URL": endpoint,
        "AWS_REGION": "us-east-1",
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("DYNASHIFT_SKIP_TTL_DELETES", raising=False)
    app.replicator.cache_clear()
    yield {"target": target, "state": state}
    app.replicator.cache_clear()


def emf_metrics(stdout: str) -> dict[str, Any]:
    """Merge every EMF blob Powertools printed into {metric: value}."""
    out: dict[str, Any] = {}
    for line in stdout.splitlines():
        if line.startswith("{") and '"_aws"' in line:
            blob = json.loads(line)
            for d in blob["_aws"]["CloudWatchMetrics"]:
                for m in d["Metrics"]:
                    value = blob[m["Name"]]
                    out[m["Name"]] = sum(value) if isinstance(value, list) else value
    return out


def test_handler_applies_a_lambda_event(ddb: Any, tables: dict[str, Any], capsys: Any) -> None:
    response = app.handler(copy.deepcopy(EVENT), FakeContext())
    assert response == {"batchItemFailures": []}
    items = {i["pk"]["S"]: i for i in scan_all(ddb, tables["target"])}
    assert items["a"]["bin"] == {"B": b"\xde\xad\xbe\xef"}
    assert sorted(items["a"]["bins"]["BS"]) == [b"\x01", b"\x02"]
    assert items["a"]["nested"]["M"]["l"]["L"][0] == {"B": b"\x00"}
    assert items["b"]["n"] == {"N": "2"}
    # A TTL delete is applied unless asked otherwise; during backfill it is a tombstone.
    assert "__dynashift_tombstone" in items["gone"]
    metrics = emf_metrics(capsys.readouterr().out)
    assert metrics["RecordsApplied"] == 3
    assert metrics["Puts"] == 2 and metrics["Tombstones"] == 1 and metrics["Failures"] == 0
    assert metrics["NewestRecordAgeSeconds"] > 0


def test_handler_skips_ttl_deletes_when_configured(
    ddb: Any, tables: dict[str, Any], monkeypatch: Any
) -> None:
    monkeypatch.setenv("DYNASHIFT_SKIP_TTL_DELETES", "true")
    app.replicator.cache_clear()
    assert app.handler(copy.deepcopy(EVENT), FakeContext()) == {"batchItemFailures": []}
    items = {i["pk"]["S"]: i for i in scan_all(ddb, tables["target"])}
    assert items["gone"] == {"pk": {"S": "gone"}}


def test_poisoned_record_and_every_later_one_are_reported(
    ddb: Any, tables: dict[str, Any], capsys: Any
) -> None:
    event = copy.deepcopy(EVENT)
    # The middle record's key has the wrong type: the target refuses it (a poison pill).
    poison = event["Records"][1]["dynamodb"]
    poison["Keys"] = {"pk": {"N": "7"}}
    poison["NewImage"]["pk"] = {"N": "7"}
    response = app.handler(event, FakeContext())
    sequences = [r["dynamodb"]["SequenceNumber"] for r in event["Records"]]
    assert response == {"batchItemFailures": [{"itemIdentifier": s} for s in sequences[1:]]}
    items = {i["pk"]["S"]: i for i in scan_all(ddb, tables["target"])}
    assert set(items) == {"a", "gone"}
    assert "__dynashift_tombstone" not in items["gone"]  # the record after the poison waited
    metrics = emf_metrics(capsys.readouterr().out)
    assert metrics["RecordsApplied"] == 1 and metrics["Failures"] == 2


def test_whole_batch_failure_raises_so_lambda_retries_it(tables: dict[str, Any]) -> None:
    event = copy.deepcopy(EVENT)
    event["Records"][0]["dynamodb"]["NewImage"]["pk"] = {"N": "1"}
    event["Records"][0]["dynamodb"]["Keys"]["pk"] = {"N": "1"}
    with pytest.raises(BatchProcessingError):
        app.handler(event, FakeContext())


@pytest.mark.filterwarnings("ignore:No application metrics")
def test_missing_configuration_is_named(monkeypatch: Any) -> None:
    monkeypatch.delenv("DYNASHIFT_TARGET_TABLE", raising=False)
    monkeypatch.setenv("DYNASHIFT_MIGRATION_ID", "m")
    monkeypatch.setenv("DYNASHIFT_STATE_TABLE", "s")
    app.replicator.cache_clear()
    with pytest.raises(BadInputError, match="DYNASHIFT_TARGET_TABLE"):
        app.handler(copy.deepcopy(EVENT), FakeContext())
    app.replicator.cache_clear()
