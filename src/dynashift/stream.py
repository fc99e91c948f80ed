"""The source table's stream: check it, enable it, wait for it.

    check_stream(source, replace_stream)   read-only: what enabling would do (raises if refused)
    enable_stream(source, replace_stream)  non-blocking: one step (enable, or disable to replace)
    poll_stream(source)                    non-blocking: status; finishes a replacement
    ensure_stream(source, ...)             blocking: enable and wait until ENABLED (a deadline)

The replicator needs the new image of every write:

| current view type     | what happens                                                       |
|-----------------------|--------------------------------------------------------------------|
| none (stream off)     | enabled as NEW_AND_OLD_IMAGES                                      |
| NEW_AND_OLD_IMAGES    | used as is                                                         |
| NEW_IMAGE             | used as is (deletes carry the key, which is all a delete needs)    |
| KEYS_ONLY, OLD_IMAGE  | refused (StreamUnavailableError, exit 2) unless `replace_stream`:  |
|                       | the stream is disabled, then NEW_AND_OLD_IMAGES is enabled         |

A view type cannot be changed in place: replacing it means disabling the stream, which ends it
for every other consumer (Lambda triggers, Kinesis adapters, Glue/Pipes). A new stream gets a
new ARN; consumers of the old one must be re-pointed.
"""

from __future__ import annotations

import logging
from typing import Any, Literal

from botocore.exceptions import ClientError
from pydantic import BaseModel, ConfigDict

from dynashift.aws import ClientFactory, error_code
from dynashift.clock import SYSTEM_CLOCK, Clock
from dynashift.errors import RuntimeFailure, StreamUnavailableError
from dynashift.models import PROCESS_CLIENTS, Clients, TableLocation
from dynashift.progress import NullProgress, Progress
from dynashift.tables import describe_table

log = logging.getLogger("dynashift")

#: View types a replicator can work from (it needs the new image of each write).
USABLE_VIEW_TYPES = frozenset({"NEW_AND_OLD_IMAGES", "NEW_IMAGE"})
WANTED_VIEW_TYPE = "NEW_AND_OLD_IMAGES"
WAIT_SECONDS = 5

StreamAction = Literal["use", "enable", "replace"]


class StreamStatus(BaseModel):
    """Where the source stream stands (travels in Step Functions state)."""

    model_config = ConfigDict(extra="forbid")

    table: str
    #: The stream the replicator reads (None until one is enabled).
    arn: str | None = None
    view_type: str | None = None
    #: ENABLED / ENABLING / DISABLING / DISABLED, or OFF when the table has no stream.
    status: str = "OFF"
    ready: bool = False
    #: What check_stream decided: use the stream, enable one, or replace the current one.
    action: StreamAction = "use"
    #: What was just done or is being waited on.
    step: str = ""
    wait_seconds: int = 0
    message: str = ""


def _refusal(location: TableLocation, view_type: str) -> str:
    why = (
        "its records carry only the item's key"
        if view_type == "KEYS_ONLY"
        else "its records carry only the item as it was before each write"
    )
    return (
        f"source {location.display()} has a {view_type} stream: {why}, so a replicator cannot "
        "reproduce the new item. The view type cannot be changed in place: switching it means "
        "disabling the stream, which ends it for its other consumers (triggers, Kinesis "
        "adapters, pipes). Pass --replace-stream to disable it and enable NEW_AND_OLD_IMAGES"
    )


def _stream_state(
    location: TableLocation, table: dict[str, Any], clients: ClientFactory
) -> tuple[str | None, str, str]:
    """(view type when enabled, status, latest ARN) of a DescribeTable result."""
    spec = table.get("StreamSpecification") or {}
    arn = str(table.get("LatestStreamArn") or "")
    if not spec.get("StreamEnabled"):
        # An old, disabled stream may still be listed: it is of no use, so it is not described.
        return None, "OFF", ""
    return str(spec.get("StreamViewType")), _describe_status(clients, arn) or "ENABLED", arn


def _describe_status(clients: ClientFactory, arn: str) -> str | None:
    if not arn:
        return None
    try:
        resp = clients.streams().describe_stream(StreamArn=arn, Limit=1)
    except ClientError as exc:
        if error_code(exc) in ("ResourceNotFoundException", "UnknownOperationException"):
            return None
        raise
    return str(resp["StreamDescription"].get("StreamStatus", "ENABLED"))


def check_stream(
    source: TableLocation, replace_stream: bool = False, *, clients: Clients = PROCESS_CLIENTS
) -> StreamStatus:
    """Read-only: what `enable_stream` would do. StreamUnavailableError when it is refused.

    `clients`: where the source side's client factory comes from.
    """
    factory = clients(source)
    table = describe_table(factory.dynamodb(), source.name, "source")
    return _check(source, table, replace_stream, factory)


def _check(
    location: TableLocation, table: dict[str, Any], replace_stream: bool, clients: ClientFactory
) -> StreamStatus:
    view_type, status, arn = _stream_state(location, table, clients)
    base = StreamStatus(table=location.display(), view_type=view_type, status=status)
    if view_type in USABLE_VIEW_TYPES:
        return base.model_copy(
            update={
                "arn": arn,
                "action": "use",
                "ready": status == "ENABLED",
                "step": "ready" if status == "ENABLED" else f"waiting for stream {status}",
                "wait_seconds": 0 if status == "ENABLED" else WAIT_SECONDS,
            }
        )
    if view_type is not None:
        if not replace_stream:
            raise StreamUnavailableError(_refusal(location, view_type))
        return base.model_copy(
            update={
                "arn": arn,
                "action": "replace",
                "step": f"replace the {view_type} stream with {WANTED_VIEW_TYPE}",
                "message": f"the {view_type} stream {arn} will be disabled: its other consumers "
                "stop receiving records",
            }
        )
    return base.model_copy(
        update={"action": "enable", "step": f"enable a {WANTED_VIEW_TYPE} stream"}
    )


def _update(location: TableLocation, spec: dict[str, Any], clients: ClientFactory) -> bool:
    """UpdateTable with a StreamSpecification; False when the table is busy (try again)."""
    try:
        clients.dynamodb().update_table(TableName=location.name, StreamSpecification=spec)
        return True
    except ClientError as exc:
        if error_code(exc) in ("ResourceInUseException", "LimitExceededException") or (
            error_code(exc) == "ValidationException" and not spec.get("StreamEnabled")
        ):
            log.info("stream of %s: table busy (%s)", location.display(), error_code(exc))
            return False
        raise


def _step(location: TableLocation, replace_stream: bool, clients: ClientFactory) -> StreamStatus:
    table = describe_table(clients.dynamodb(), location.name, "source")
    status = _check(location, table, replace_stream, clients)
    if status.action == "use":
        return status
    if table.get("TableStatus") != "ACTIVE":
        return status.model_copy(
            update={"step": "waiting for the table to be ACTIVE", "wait_seconds": WAIT_SECONDS}
        )
    if status.action == "replace":
        done = _update(location, {"StreamEnabled": False}, clients)
        log.warning(
            "source %s: disabling its %s stream to replace it", location.display(), status.view_type
        )
        return status.model_copy(
            update={
                "step": "disabled the old stream" if done else "waiting to disable the old stream",
                "wait_seconds": WAIT_SECONDS,
            }
        )
    done = _update(location, {"StreamEnabled": True, "StreamViewType": WANTED_VIEW_TYPE}, clients)
    if done:
        log.info("source %s: enabled a %s stream", location.display(), WANTED_VIEW_TYPE)
    return status.model_copy(
        update={
            "step": f"enabled a {WANTED_VIEW_TYPE} stream" if done else "waiting to enable",
            "wait_seconds": WAIT_SECONDS if not done else 1,
        }
    )


def enable_stream(
    source: TableLocation, replace_stream: bool = False, *, clients: Clients = PROCESS_CLIENTS
) -> StreamStatus:
    """Non-blocking: take one step towards a usable stream (see the module table)."""
    return _step(source, replace_stream, clients(source))


def poll_stream(
    source: TableLocation, replace_stream: bool = False, *, clients: Clients = PROCESS_CLIENTS
) -> StreamStatus:
    """Non-blocking: the stream's status; enables the new stream once a replaced one is off.

    `ready` (and `arn`) once a NEW_AND_OLD_IMAGES / NEW_IMAGE stream is ENABLED. Pass the same
    `replace_stream` as to `enable_stream` (the old view type may still show while it goes).
    """
    return _step(source, replace_stream, clients(source))


def ensure_stream(
    source: TableLocation,
    replace_stream: bool = False,
    *,
    timeout: float = 300.0,
    progress: Progress | None = None,
    clock: Clock = SYSTEM_CLOCK,
    poll_interval: float = 1.0,
    clients: Clients = PROCESS_CLIENTS,
) -> StreamStatus:
    """Blocking: enable (or replace) the stream and wait until it is ENABLED; its ARN.

    Waits at most `timeout` seconds by `clock`, sleeping `poll_interval` between polls.
    """
    progress = progress or NullProgress()
    deadline = clock.monotonic() + timeout
    status = enable_stream(source, replace_stream, clients=clients)
    action = status.action
    message = status.message
    while not status.ready:
        progress.advance(0, note=status.step)
        if clock.monotonic() > deadline:
            raise RuntimeFailure(
                f"stream of {source.display()} not ready after {timeout:.0f}s: {status.step}"
            )
        clock.sleep(min(poll_interval, max(0.0, deadline - clock.monotonic())))
        status = poll_stream(source, replace_stream, clients=clients)
    progress.advance(1, note="stream enabled")
    return status.model_copy(update={"action": action, "message": message})
