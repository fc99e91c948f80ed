"""The AWS replication control (event source mapping) and the stream lag probe, on moto."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from dynashift.workflow.control import (
    ESM_BATCH_SIZE,
    EventSourceMappingControl,
    stream_backlog,
)
from dynashift.workflow.runner import step_of, substitute
from tests.support.functions import create_function
from tests.support.tables import client, create_table, enable_stream
from tests.support.workflow import workflow_input


def _stream(ddb: Any, name: str) -> str:
    create_table(ddb, name)
    return enable_stream(ddb, name)


def _function(endpoint: str, name: str) -> Any:
    """Function `name` on the server -> a Lambda client of the server."""
    create_function(endpoint, name)
    return client(endpoint, "lambda")


def test_event_source_mapping_start_is_idempotent_and_stop_removes_it(
    ddb: Any, streams: Any, endpoint: str, table_name: Any
) -> None:
    source = table_name("esm-src")
    arn = _stream(ddb, source)
    fn = table_name("esm-fn")
    lam = _function(endpoint, fn)
    wf = workflow_input(endpoint, source, table_name("esm-tgt"))
    control = EventSourceMappingControl(
        lam,
        fn,
        dlq_arn=None,
        streams_client=lambda spec: streams,
    )
    first = control.start(wf.spec, arn)
    second = control.start(wf.spec, arn)
    assert first["created"] and not second["created"]
    assert first["mapping"] == second["mapping"]
    mappings = lam.list_event_source_mappings(FunctionName=fn)["EventSourceMappings"]
    assert len(mappings) == 1
    mapping = mappings[0]
    assert mapping["EventSourceArn"] == arn
    assert mapping["BatchSize"] == ESM_BATCH_SIZE
    # stop needs the stream recorded by the workflow's state store
    from dynashift.state import StateStore
    from dynashift.workflow.steps import state_store

    StateStore.ensure_table(ddb, wf.spec.state.name)
    state_store(wf.spec).put_meta(stream_arn=arn)
    assert control.stop(wf.spec)["stopped"] == [first["mapping"]]
    assert lam.list_event_source_mappings(FunctionName=fn)["EventSourceMappings"] == []


def test_stream_backlog_follows_the_checkpoints(ddb: Any, streams: Any, table_name: Any) -> None:
    source = table_name("lag-src")
    arn = _stream(ddb, source)
    empty = stream_backlog(streams, arn, {})
    assert empty.caught_up and empty.records_behind is None
    for i in range(3):
        ddb.put_item(TableName=source, Item={"pk": {"S": f"k{i}"}})
    behind = stream_backlog(streams, arn, {})
    assert not behind.caught_up and behind.records_behind == 1
    assert behind.age_seconds is not None and behind.age_seconds >= 0
    # Everything before `since` applied when `since` is older than the unapplied records.
    past = datetime.now(UTC) - timedelta(hours=1)
    assert stream_backlog(streams, arn, {}, past).caught_up
    shard = streams.describe_stream(StreamArn=arn)["StreamDescription"]["Shards"][0]["ShardId"]
    iterator = streams.get_shard_iterator(
        StreamArn=arn, ShardId=shard, ShardIteratorType="TRIM_HORIZON"
    )["ShardIterator"]
    records = streams.get_records(ShardIterator=iterator)["Records"]
    last = records[-1]["dynamodb"]["SequenceNumber"]
    assert stream_backlog(streams, arn, {shard: last}).caught_up
    middle = records[0]["dynamodb"]["SequenceNumber"]
    assert not stream_backlog(streams, arn, {shard: middle}).caught_up


def test_step_names_and_substitution() -> None:
    assert step_of("BackfillSegmentFunctionArn") == "backfill_segment"
    assert step_of("ValidateFunctionArn") == "validate"
    assert substitute('{"a": "${XFunctionArn}"}', {"XFunctionArn": "arn:x"}) == '{"a": "arn:x"}'
    from dynashift.errors import RuntimeFailure

    with pytest.raises(RuntimeFailure, match="YFunctionArn"):
        substitute('"${YFunctionArn}"', {})


def test_validate_refuses_an_input_for_another_stack(endpoint: str) -> None:
    from dynashift.errors import BadInputError
    from dynashift.workflow.steps import ValidateEvent, validate

    wf = workflow_input(endpoint, "orders", "orders-v2")
    event = ValidateEvent(spec=wf.spec, settings=wf.settings)
    with pytest.raises(BadInputError, match=re.escape("spec.state.name")):
        validate(event, stack={"spec.state.name": "dynashift-StateTable-XYZ"})
    with pytest.raises(BadInputError, match=re.escape("spec.target.name: 'orders-v2'")):
        validate(event, stack={"spec.target.name": "other"})
