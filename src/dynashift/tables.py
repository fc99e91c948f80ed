"""Table descriptions and the I/O primitives every step shares.

`scan_pages` (one segment of a parallel scan, page by page, resumable from a cursor),
`batch_get` (BatchGetItem with UnprocessedKeys retried until done) and `batch_write`
(BatchWriteItem with UnprocessedItems retried until done). Sync, backfill, copy and
verification all read and write through these.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from botocore.exceptions import ClientError, EndpointConnectionError

from dynashift.aws import error_code
from dynashift.errors import EndpointUnreachableError, RuntimeFailure, TableNotFoundError
from dynashift.items import Item, key_names
from dynashift.retry import Backoff, call_with_retry

BATCH_GET_MAX = 100
BATCH_WRITE_MAX = 25


def describe_table(client: Any, name: str, what: str = "table") -> dict[str, Any]:
    """DescribeTable's `Table`; TableNotFoundError (exit 2) names the missing table."""
    try:
        table: dict[str, Any] = client.describe_table(TableName=name)["Table"]
        return table
    except ClientError as exc:
        if error_code(exc) == "ResourceNotFoundException":
            raise TableNotFoundError(f"{what} table {name!r} does not exist") from exc
        raise
    except EndpointConnectionError as exc:
        raise EndpointUnreachableError(f"cannot reach the endpoint for {what} {name!r}") from exc


def table_exists(client: Any, name: str) -> bool:
    try:
        describe_table(client, name)
        return True
    except TableNotFoundError:
        return False


def table_keys(description: Mapping[str, Any]) -> tuple[str, ...]:
    """(partition key[, sort key]) names from a DescribeTable result."""
    return key_names(description["KeySchema"])


def key_schema_text(description: Mapping[str, Any]) -> str:
    """`pk (S, HASH), sk (N, RANGE)` — for messages that name two schemas."""
    types = {a["AttributeName"]: a["AttributeType"] for a in description["AttributeDefinitions"]}
    parts = [
        f"{k['AttributeName']} ({types.get(k['AttributeName'], '?')}, {k['KeyType']})"
        for k in sorted(description["KeySchema"], key=lambda k: k["KeyType"] != "HASH")
    ]
    return ", ".join(parts)


def same_key_schema(a: Mapping[str, Any], b: Mapping[str, Any]) -> bool:
    return key_schema_text(a) == key_schema_text(b)


@dataclass
class Page:
    items: list[Item]
    #: LastEvaluatedKey: where the next page starts; None when the segment is finished.
    cursor: Item | None
    scanned_count: int = 0
    consumed_capacity: float = 0.0


def scan_pages(
    client: Any,
    table: str,
    *,
    segment: int = 0,
    total_segments: int = 1,
    start_key: Mapping[str, Any] | None = None,
    limit: int | None = None,
    consistent: bool = False,
    backoff: Backoff | None = None,
    extra: Mapping[str, Any] | None = None,
) -> Iterator[Page]:
    """Pages of one segment of a parallel scan, from `start_key` (a cursor) to the end."""
    kwargs: dict[str, Any] = {"TableName": table, "ReturnConsumedCapacity": "TOTAL"}
    if total_segments > 1:
        kwargs.update(Segment=segment, TotalSegments=total_segments)
    if limit:
        kwargs["Limit"] = limit
    if consistent:
        kwargs["ConsistentRead"] = True
    if extra:
        kwargs.update(extra)
    if start_key:
        kwargs["ExclusiveStartKey"] = dict(start_key)
    while True:
        resp = call_with_retry(lambda: client.scan(**kwargs), backoff)
        cursor = resp.get("LastEvaluatedKey")
        yield Page(
            items=resp.get("Items", []),
            cursor=cursor,
            scanned_count=resp.get("ScannedCount", 0),
            consumed_capacity=float(resp.get("ConsumedCapacity", {}).get("CapacityUnits", 0.0)),
        )
        if not cursor:
            return
        kwargs["ExclusiveStartKey"] = cursor


@dataclass
class BatchStats:
    requests: int = 0
    retries: int = 0
    unprocessed: int = 0
    consumed_capacity: float = 0.0
    extra: dict[str, int] = field(default_factory=dict)


def _batch_call(call: Callable[[], Any], backoff: Backoff, stats: BatchStats) -> Any:
    """One BatchGetItem / BatchWriteItem request (errors retried by `call_with_retry`), counted
    with its consumed capacity."""
    resp = call_with_retry(call, backoff)
    stats.requests += 1
    for cc in resp.get("ConsumedCapacity", []):
        stats.consumed_capacity += float(cc.get("CapacityUnits", 0.0))
    return resp


def _wait_unprocessed(
    what: str, noun: str, attempt: int, backoff: Backoff, stats: BatchStats, count: int
) -> None:
    """The rule for what a batch call left unprocessed: counted, retried after a backoff, and a
    RuntimeFailure after `backoff.max_attempts * 4` attempts."""
    stats.unprocessed += count
    if attempt + 1 >= backoff.max_attempts * 4:
        raise RuntimeFailure(
            f"{what}: {count} {noun} still unprocessed after {attempt + 1} attempts"
        )
    stats.retries += 1
    backoff.wait(min(attempt, 8))


def batch_get(
    client: Any,
    table: str,
    keys: Sequence[Mapping[str, Any]],
    *,
    consistent: bool = False,
    chunk: int = BATCH_GET_MAX,
    backoff: Backoff | None = None,
    stats: BatchStats | None = None,
    projection: Sequence[str] | None = None,
) -> list[Item]:
    """Fetch `keys` with BatchGetItem in chunks; UnprocessedKeys retried with backoff until done.

    Returns the items found (missing keys are simply absent). Order is not preserved.
    """
    if not 1 <= chunk <= BATCH_GET_MAX:
        raise ValueError(f"batch get chunk must be 1..{BATCH_GET_MAX}, got {chunk}")
    backoff = backoff or Backoff()
    stats = stats if stats is not None else BatchStats()
    found: list[Item] = []
    for start in range(0, len(keys), chunk):
        request: dict[str, Any] = {"Keys": [dict(k) for k in keys[start : start + chunk]]}
        if consistent:
            request["ConsistentRead"] = True
        if projection:
            names = {f"#p{i}": n for i, n in enumerate(projection)}
            request["ProjectionExpression"] = ", ".join(names)
            request["ExpressionAttributeNames"] = names
        attempt = 0
        while request["Keys"]:
            resp = _batch_call(
                lambda req=request: client.batch_get_item(  # type: ignore[misc]
                    RequestItems={table: req}, ReturnConsumedCapacity="TOTAL"
                ),
                backoff,
                stats,
            )
            found.extend(resp.get("Responses", {}).get(table, []))
            left = resp.get("UnprocessedKeys", {}).get(table)
            if not left or not left.get("Keys"):
                break
            n = len(left["Keys"])
            _wait_unprocessed(f"BatchGetItem on {table}", "keys", attempt, backoff, stats, n)
            attempt += 1
            request = left
    return found


def batch_write(
    client: Any,
    table: str,
    requests: Sequence[Mapping[str, Any]],
    *,
    backoff: Backoff | None = None,
    stats: BatchStats | None = None,
) -> int:
    """BatchWriteItem (`{"PutRequest": ...}` / `{"DeleteRequest": ...}`) in chunks of 25.

    UnprocessedItems are retried with backoff until done. Returns the number of requests applied.
    """
    backoff = backoff or Backoff()
    stats = stats if stats is not None else BatchStats()
    for start in range(0, len(requests), BATCH_WRITE_MAX):
        pending = [dict(r) for r in requests[start : start + BATCH_WRITE_MAX]]
        attempt = 0
        while pending:
            resp = _batch_call(
                lambda p=pending: client.batch_write_item(  # type: ignore[misc]
                    RequestItems={table: p}, ReturnConsumedCapacity="TOTAL"
                ),
                backoff,
                stats,
            )
            pending = resp.get("UnprocessedItems", {}).get(table, [])
            if pending:
                n = len(pending)
                _wait_unprocessed(f"BatchWriteItem on {table}", "items", attempt, backoff, stats, n)
                attempt += 1
    return len(requests)
