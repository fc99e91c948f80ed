"""`functions/replicator/app.handler` with real Lambda-shaped events and a fake context."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from aws_lambda_powertools.utilities.batch.exceptions import BatchProcessingError

from dynashift.errors import BadInputError
from dynashift.state import PHASE_BACKFILL, StateStore
from functions.replicator import app
from tests.support.events import load_event
from tests.support.reference import scan_all

#: A batch as Lambda delivers it (JSON: binary as base64, times as epoch seconds; INSERT,
#: MODIFY and a TTL REMOVE).
STREAM_BATCH = "dynamodb_stream_batch.json"


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


def test_handler_applies_a_lambda_event(
    ddb: Any, tables: dict[str, Any], capsys: Any, lambda_context: Any
) -> None:
    response = app.handler(load_event(STREAM_BATCH), lambda_context)
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
    ddb: Any, tables: dict[str, Any], monkeypatch: Any, lambda_context: Any
) -> None:
    monkeypatch.setenv("DYNASHIFT_SKIP_TTL_DELETES", "true")
    app.replicator.cache_clear()
    assert app.handler(load_event(STREAM_BATCH), lambda_context) == {"batchItemFailures": []}
    items = {i["pk"]["S"]: i for i in scan_all(ddb, tables["target"])}
    assert items["gone"] == {"pk": {"S": "gone"}}


def test_poisoned_record_and_every_later_one_are_reported(
    ddb: Any, tables: dict[str, Any], capsys: Any, lambda_context: Any
) -> None:
    event = load_event(STREAM_BATCH)
    # The middle record's key has the wrong type: the target refuses it (a poison pill).
    poison = event["Records"][1]["dynamodb"]
    poison["Keys"] = {"pk": {"N": "7"}}
    poison["NewImage"]["pk"] = {"N": "7"}
    response = app.handler(event, lambda_context)
    sequences = [r["dynamodb"]["SequenceNumber"] for r in event["Records"]]
    assert response == {"batchItemFailures": [{"itemIdentifier": s} for s in sequences[1:]]}
    items = {i["pk"]["S"]: i for i in scan_all(ddb, tables["target"])}
    assert set(items) == {"a", "gone"}
    assert "__dynashift_tombstone" not in items["gone"]  # the record after the poison waited
    metrics = emf_metrics(capsys.readouterr().out)
    assert metrics["RecordsApplied"] == 1 and metrics["Failures"] == 2


def test_whole_batch_failure_raises_so_lambda_retries_it(
    tables: dict[str, Any], lambda_context: Any
) -> None:
    event = load_event(STREAM_BATCH)
    event["Records"][0]["dynamodb"]["NewImage"]["pk"] = {"N": "1"}
    event["Records"][0]["dynamodb"]["Keys"]["pk"] = {"N": "1"}
    with pytest.raises(BatchProcessingError):
        app.handler(event, lambda_context)


@pytest.mark.filterwarnings("ignore:No application metrics")
def test_missing_configuration_is_named(monkeypatch: Any, lambda_context: Any) -> None:
    monkeypatch.delenv("DYNASHIFT_TARGET_TABLE", raising=False)
    monkeypatch.setenv("DYNASHIFT_MIGRATION_ID", "m")
    monkeypatch.setenv("DYNASHIFT_STATE_TABLE", "s")
    app.replicator.cache_clear()
    with pytest.raises(BadInputError, match="DYNASHIFT_TARGET_TABLE"):
        app.handler(load_event(STREAM_BATCH), lambda_context)
    app.replicator.cache_clear()
