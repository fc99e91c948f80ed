"""Enabling the source stream from each starting view type, on a moto server."""

from __future__ import annotations

import contextlib
import json
from typing import Any

import pytest
from pydantic import ValidationError

from dynashift.aws import ClientFactory
from dynashift.errors import RuntimeFailure, StreamUnavailableError
from dynashift.models import PROCESS_CLIENTS, Clients, MigrationSpec
from dynashift.stream import check_stream, enable_stream, ensure_stream, poll_stream
from dynashift.workflow.definition import build
from dynashift.workflow.migrate import state_location
from dynashift.workflow.steps import StreamEvent, source_stream
from tests.functional.test_target import FakeHttp, capture, hooked, location, simple_table
from tests.support.clock import ManualClock


def _with_stream(ddb: Any, name: str, view_type: str | None) -> None:
    extra: dict[str, Any] = {}
    if view_type:
        extra["StreamSpecification"] = {"StreamEnabled": True, "StreamViewType": view_type}
    simple_table(ddb, name, **extra)


def test_stream_off_is_enabled_new_and_old_images(
    endpoint: str, ddb: Any, streams: Any, table_name: Any
) -> None:
    name = table_name("s-off")
    _with_stream(ddb, name, None)
    source = location(endpoint, name)
    assert check_stream(source).action == "enable"
    assert not ddb.describe_table(TableName=name)["Table"].get("LatestStreamArn")  # read-only
    status = ensure_stream(source, timeout=30, clock=ManualClock())
    table = ddb.describe_table(TableName=name)["Table"]
    assert table["StreamSpecification"] == {
        "StreamEnabled": True,
        "StreamViewType": "NEW_AND_OLD_IMAGES",
    }
    assert status.ready and status.action == "enable"
    assert status.arn == table["LatestStreamArn"]
    assert status.view_type == "NEW_AND_OLD_IMAGES" and status.status == "ENABLED"
    desc = streams.describe_stream(StreamArn=status.arn)["StreamDescription"]
    assert desc["StreamStatus"] == "ENABLED"
    # idempotent: a second call uses the stream it enabled
    again = enable_stream(source)
    assert again.ready and again.action == "use" and again.arn == status.arn


@pytest.mark.parametrize("view_type", ["NEW_IMAGE", "NEW_AND_OLD_IMAGES"])
def test_usable_stream_is_used_as_is(
    endpoint: str, ddb: Any, table_name: Any, view_type: str
) -> None:
    name = table_name("s-use")
    _with_stream(ddb, name, view_type)
    arn = ddb.describe_table(TableName=name)["Table"]["LatestStreamArn"]
    source = location(endpoint, name)
    with capture(PROCESS_CLIENTS(source).dynamodb(), "UpdateTable") as updates:
        status = ensure_stream(source, timeout=30, clock=ManualClock())
    assert updates == []
    assert status.ready and status.action == "use"
    assert status.arn == arn and status.view_type == view_type


@pytest.mark.parametrize("view_type", ["KEYS_ONLY", "OLD_IMAGE"])
def test_unusable_stream_refused_without_replace(
    endpoint: str, ddb: Any, table_name: Any, view_type: str
) -> None:
    name = table_name("s-bad")
    _with_stream(ddb, name, view_type)
    before = ddb.describe_table(TableName=name)["Table"]
    source = location(endpoint, name)
    for call in (check_stream, enable_stream, ensure_stream):
        with pytest.raises(StreamUnavailableError) as err:
            call(source)
        message = str(err.value)
        assert view_type in message and "--replace-stream" in message
        assert "other consumers" in message and "\n" not in message
    after = ddb.describe_table(TableName=name)["Table"]
    assert after["StreamSpecification"] == before["StreamSpecification"]
    assert after["LatestStreamArn"] == before["LatestStreamArn"]


def test_keys_only_replaced_when_allowed(endpoint: str, ddb: Any, table_name: Any) -> None:
    """Disable, then enable NEW_AND_OLD_IMAGES.

    moto refuses to enable a stream on a table that ever had one ("Cannot enable stream"), so
    the enabling request is answered at the botocore layer and asserted as sent.
    """
    name = table_name("s-repl")
    _with_stream(ddb, name, "KEYS_ONLY")
    source = location(endpoint, name)
    check = check_stream(source, replace_stream=True)
    assert check.action == "replace" and "will be disabled" in check.message
    first = enable_stream(source, replace_stream=True)
    assert not first.ready and first.action == "replace"
    table = ddb.describe_table(TableName=name)["Table"]
    assert not (table.get("StreamSpecification") or {}).get("StreamEnabled")  # really disabled

    enables: list[dict[str, Any]] = []

    def answer_enable(params: dict[str, Any], **_: Any) -> Any:
        body = json.loads(params["body"])
        if body.get("StreamSpecification", {}).get("StreamEnabled"):
            enables.append(body["StreamSpecification"])
            return FakeHttp(), {"TableDescription": {}}
        return None

    client = PROCESS_CLIENTS(source).dynamodb()
    with hooked(client, "before-call.dynamodb.UpdateTable", answer_enable):
        second = poll_stream(source, replace_stream=True)
    assert enables == [{"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"}]
    assert "enabled a NEW_AND_OLD_IMAGES stream" in second.step


def test_waits_for_enabling_stream_with_deadline(endpoint: str, ddb: Any, table_name: Any) -> None:
    name = table_name("s-wait")
    _with_stream(ddb, name, "NEW_AND_OLD_IMAGES")
    source = location(endpoint, name)
    remaining = [2]
    clock = ManualClock(min_step=1.0)

    def enabling(parsed: dict[str, Any], **_: Any) -> None:
        if remaining[0] > 0:
            remaining[0] -= 1
            parsed["StreamDescription"]["StreamStatus"] = "ENABLING"

    client = PROCESS_CLIENTS(source).streams()
    with hooked(client, "after-call.dynamodb-streams.DescribeStream", enabling):
        status = ensure_stream(source, timeout=30, clock=clock)
    assert status.ready and remaining[0] == 0 and clock.now == 2.0

    def forever(parsed: dict[str, Any], **_: Any) -> None:
        parsed["StreamDescription"]["StreamStatus"] = "ENABLING"

    clock = ManualClock(min_step=1.0)
    with (
        hooked(client, "after-call.dynamodb-streams.DescribeStream", forever),
        pytest.raises(RuntimeFailure, match="not ready after 10s"),
    ):
        ensure_stream(source, timeout=10, clock=clock)


def test_the_stream_step_reads_replace_stream_from_the_target_options(
    endpoint: str, ddb: Any, table_name: Any
) -> None:
    """Issue 15: `TargetOptions` is the one home of `replace_stream`.

    The SourceStream handler (and Validate) read it from the event's `target_options`, which
    the definition passes them; the spec no longer carries a copy of its own.
    """
    name = table_name("s-opts")
    _with_stream(ddb, name, "KEYS_ONLY")
    source, target = location(endpoint, name), location(endpoint, f"{name}-t")
    spec = MigrationSpec(
        migration_id="replace-opts",
        source=source,
        target=target,
        state=state_location("replace-opts", target),
    )
    event = {"spec": spec.model_dump(mode="json"), "action": "enable"}
    with pytest.raises(StreamUnavailableError):
        source_stream(StreamEvent.model_validate(event))
    replaced = source_stream(
        StreamEvent.model_validate({**event, "target_options": {"replace_stream": True}})
    )
    assert replaced["action"] == "replace" and not replaced["ready"]
    table = ddb.describe_table(TableName=name)["Table"]
    assert not (table.get("StreamSpecification") or {}).get("StreamEnabled")
    with pytest.raises(ValidationError, match="replace_stream"):
        MigrationSpec.model_validate({**event["spec"], "replace_stream": True})
    definition = build()
    for state in ("Enable source stream", "Check stream"):
        parameters = definition["States"][state]["Parameters"]["Payload"]
        assert parameters["target_options.$"] == "$.target_options"


def test_every_stream_call_goes_through_the_factory_it_is_given(
    endpoint: str, ddb: Any, table_name: Any
) -> None:
    """Issue 15 item 4: `ensure_stream` (enable, then poll) uses the client factory handed in;
    the process's shared factory of that side makes no call."""
    name = table_name("s-given")
    _with_stream(ddb, name, None)
    source = location(endpoint, name)
    given = ClientFactory(source.side)
    seen: dict[str, list[str]] = {"given": [], "shared": []}

    def recorder(bucket: str) -> Any:
        def record(event_name: str, **_: Any) -> None:
            seen[bucket].append(event_name.rsplit(".", 1)[-1])

        return record

    shared = PROCESS_CLIENTS(source)
    with contextlib.ExitStack() as stack:
        for bucket, factory in (("given", given), ("shared", shared)):
            for service in (factory.dynamodb(), factory.streams()):
                stack.enter_context(hooked(service, "before-call", recorder(bucket)))
        status = ensure_stream(
            source, timeout=30, clock=ManualClock(), clients=Clients.fixed(given)
        )
    assert status.ready and status.action == "enable"
    assert {"DescribeTable", "UpdateTable", "DescribeStream"} <= set(seen["given"])
    assert seen["shared"] == []
