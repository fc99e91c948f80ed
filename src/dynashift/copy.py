"""`dynashift copy`: a one-shot copy of a table (or a subset by key) without streams.

For environment refreshes: nothing replicates changes made during the copy. The target is
created like `migrate` creates it when missing (`target.prepare_target`); `truncate_target`
empties an existing target first, after an on-demand backup unless `backup=False`.
Items are read with a parallel Scan — or, for `partition_key_value` (with an optional
`sort_key_prefix`), with a Query on the table or on `index` — and written with unconditional
BatchWriteItem through the same write path as the replay backfill (`backfill.write_batches`),
capped by a shared `RateLimiter`.

Everything is validated before the first write: the source exists, the subset flags match its
key schema (types, sort key, index), the target is compatible, truncation is confirmed.
"""

from __future__ import annotations

import base64
import binascii
import time
from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal, InvalidOperation
from typing import Any, Literal

from botocore.exceptions import ClientError
from pydantic import BaseModel, ConfigDict, Field

from dynashift.aws import error_code
from dynashift.backfill import Counters, write_batches
from dynashift.clock import SYSTEM_CLOCK, Clock
from dynashift.errors import BadInputError, RuntimeFailure
from dynashift.items import Item, key_id, key_names, key_of
from dynashift.models import PROCESS_CLIENTS, Clients, TableLocation
from dynashift.progress import NullProgress, Progress
from dynashift.ratelimit import RateLimiter
from dynashift.retry import Backoff, call_with_retry
from dynashift.tables import batch_get, batch_write, describe_table, scan_pages
from dynashift.target import TargetOptions, prepare_target, target_has_items


class CopyOptions(BaseModel):
    """What `dynashift copy` was asked to do (flags, validated)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    segments: int = Field(default=4, ge=1, le=1000)
    max_write_rate: float | None = Field(default=None, gt=0)
    truncate_target: bool = False
    #: On-demand backup of the target before truncating it.
    backup: bool = True
    #: `--pk VALUE`: copy only this partition (Query instead of Scan).
    partition_key_value: str | None = None
    #: `--sk-begins-with PREFIX` (needs the partition key value).
    sort_key_prefix: str | None = None
    #: `--index NAME`: query this index (its partition key is the one `--pk` gives).
    index: str | None = None
    #: Scan / Query page size (None: DynamoDB's 1 MB pages).
    page_size: int | None = Field(default=None, ge=1)
    target: TargetOptions = Field(default_factory=TargetOptions)


class CopySummary(BaseModel):
    """The outcome of a copy (printed by the CLI, JSON-serializable)."""

    source: str
    target: str
    mode: Literal["scan", "query"]
    target_created: bool = False
    backup_arn: str | None = None
    truncated: int = 0
    read: int = 0
    written: int = 0
    throttles: int = 0
    retries: int = 0
    unprocessed: int = 0
    #: Wall time in total, and of the copy phase alone (after target preparation/truncation).
    seconds: float = 0.0
    copy_seconds: float = 0.0
    warnings: list[str] = Field(default_factory=list)

    @property
    def items_per_second(self) -> float:
        return self.written / self.seconds if self.seconds > 0 else 0.0


# --- the key subset ----------------------------------------------------------------------------


class KeyQuery(BaseModel):
    """A validated Query for the `--pk` / `--sk-begins-with` / `--index` subset."""

    index: str | None
    #: The index's projection is not ALL: full items are fetched from the table by key.
    fetch_items: bool
    request: dict[str, Any]


def _typed_value(flag: str, text: str, attribute: str, kind: str) -> dict[str, Any]:
    if kind == "N":
        try:
            Decimal(text)
        except InvalidOperation:
            raise BadInputError(
                f"{flag} {text!r}: {attribute!r} is a number attribute, not a number"
            ) from None
        return {"N": text}
    if kind == "B":
        try:
            return {"B": base64.b64decode(text, validate=True)}
        except (binascii.Error, ValueError):
            raise BadInputError(
                f"{flag} {text!r}: {attribute!r} is a binary attribute; give it as base64"
            ) from None
    return {"S": text}


def key_query(description: Mapping[str, Any], options: CopyOptions) -> KeyQuery | None:
    """The Query for the subset flags (None: copy the whole table with a Scan).

    BadInputError names the flag that does not fit the table's (or index's) key schema.
    """
    if options.partition_key_value is None:
        if options.sort_key_prefix is not None:
            raise BadInputError(
                f"--sk-begins-with {options.sort_key_prefix!r}: needs --pk (the partition key "
                "value to query)"
            )
        if options.index is not None:
            raise BadInputError(f"--index {options.index}: needs --pk (the partition key value)")
        return None
    types = {a["AttributeName"]: a["AttributeType"] for a in description["AttributeDefinitions"]}
    schema = description["KeySchema"]
    fetch = False
    if options.index:
        indexes = list(description.get("GlobalSecondaryIndexes", [])) + list(
            description.get("LocalSecondaryIndexes", [])
        )
        found = [i for i in indexes if i["IndexName"] == options.index]
        if not found:
            names = ", ".join(sorted(i["IndexName"] for i in indexes)) or "none"
            raise BadInputError(
                f"--index {options.index}: table {description['TableName']} has no such index "
                f"(indexes: {names})"
            )
        schema = found[0]["KeySchema"]
        fetch = found[0].get("Projection", {}).get("ProjectionType", "ALL") != "ALL"
    key_attrs = key_names(schema)
    pk = key_attrs[0]
    values = {":pk": _typed_value("--pk", options.partition_key_value, pk, types[pk])}
    expression = "#pk = :pk"
    attr_names = {"#pk": pk}
    if options.sort_key_prefix is not None:
        where = f"index {options.index}" if options.index else f"table {description['TableName']}"
        if len(key_attrs) < 2:
            raise BadInputError(
                f"--sk-begins-with {options.sort_key_prefix!r}: {where} has no sort key"
            )
        sk = key_attrs[1]
        if types[sk] == "N":
            raise BadInputError(
                f"--sk-begins-with {options.sort_key_prefix!r}: sort key {sk!r} of {where} is a "
                "number; begins_with needs a string or binary sort key"
            )
        values[":prefix"] = _typed_value("--sk-begins-with", options.sort_key_prefix, sk, types[sk])
        expression += " AND begins_with(#sk, :prefix)"
        attr_names["#sk"] = sk
    request: dict[str, Any] = {
        "KeyConditionExpression": expression,
        "ExpressionAttributeNames": attr_names,
        "ExpressionAttributeValues": values,
    }
    if options.index:
        request["IndexName"] = options.index
    return KeyQuery(index=options.index, fetch_items=fetch, request=request)


def query_pages(
    client: Any,
    table: str,
    request: Mapping[str, Any],
    *,
    limit: int | None = None,
    backoff: Backoff | None = None,
) -> Iterator[list[Item]]:
    """Pages of a Query (items in wire format)."""
    kwargs: dict[str, Any] = {"TableName": table, **request}
    if limit:
        kwargs["Limit"] = limit
    while True:
        resp = call_with_retry(lambda: client.query(**kwargs), backoff)
        yield resp.get("Items", [])
        cursor = resp.get("LastEvaluatedKey")
        if not cursor:
            return
        kwargs["ExclusiveStartKey"] = cursor


# --- truncation --------------------------------------------------------------------------------


def backup_table(client: Any, table: str, clock: Clock = SYSTEM_CLOCK) -> str:
    """An on-demand backup of `table`; returns its ARN (RuntimeFailure if it cannot be made)."""
    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime(clock.wall()))
    name = f"{table}-dynashift-{stamp}"[:255]
    try:
        resp = client.create_backup(TableName=table, BackupName=name)
    except ClientError as exc:
        raise RuntimeFailure(
            f"on-demand backup of {table} failed ({error_code(exc)}); nothing was deleted — "
            "pass --no-backup to truncate without one"
        ) from exc
    return str(resp["BackupDetails"]["BackupArn"])


def truncate(
    client: Any,
    table: str,
    keys: tuple[str, ...],
    *,
    segments: int = 4,
    backoff: Backoff | None = None,
    limiter: RateLimiter | None = None,
) -> int:
    """Delete every item of `table` (BatchWriteItem deletes, segments in parallel)."""
    names = {f"#k{i}": k for i, k in enumerate(keys)}
    projection = {"ProjectionExpression": ", ".join(names), "ExpressionAttributeNames": names}

    def one(segment: int) -> int:
        deleted = 0
        for page in scan_pages(
            client,
            table,
            segment=segment,
            total_segments=segments,
            consistent=True,
            backoff=backoff,
            extra=projection,
        ):
            if limiter is not None:
                limiter.acquire(len(page.items))
            requests = [{"DeleteRequest": {"Key": key_of(i, keys)}} for i in page.items]
            deleted += batch_write(client, table, requests, backoff=backoff)
        return deleted

    with ThreadPoolExecutor(max_workers=min(segments, 16)) as pool:
        return sum(pool.map(one, range(segments)))


# --- the copy ----------------------------------------------------------------------------------


def copy_table(
    source: TableLocation,
    target: TableLocation,
    options: CopyOptions,
    *,
    truncate_confirmed: bool = False,
    progress: Progress | None = None,
    clock: Clock = SYSTEM_CLOCK,
    backoff: Backoff | None = None,
    source_client: Any = None,
    target_client: Any = None,
    prepare_timeout: float = 600.0,
    clients: Clients = PROCESS_CLIENTS,
) -> CopySummary:
    """Copy `source` (or the subset the options select) into `target`; see the module doc."""
    started = clock.monotonic()
    progress = progress or NullProgress()
    parallelism = max(options.segments, 4)
    source_client, target_client = clients.dynamodb_pair(
        source, target, source_client, target_client, parallelism
    )

    # --- validate everything before the first write -------------------------------------------
    source_desc = describe_table(source_client, source.name, "source")
    query = key_query(source_desc, options)
    if options.truncate_target and not truncate_confirmed:
        raise BadInputError(
            f"--truncate-target deletes every item of {target.display()}: confirm with --yes"
        )
    target_options = options.target
    if options.truncate_target:
        target_options = target_options.model_copy(update={"allow_nonempty_target": True})

    # --- target: checked (key schema, emptiness, ...) before it is created or written ---------
    prepared = prepare_target(
        source,
        target,
        target_options,
        timeout=prepare_timeout,
        clock=clock,
        source_client=source_client,
        target_client=target_client,
    )
    summary = CopySummary(
        source=source.display(),
        target=target.display(),
        mode="query" if query else "scan",
        target_created=prepared.action == "create",
        warnings=list(prepared.warnings),
    )
    keys = key_names(source_desc["KeySchema"])
    target_desc = describe_table(target_client, target.name, "target")
    limiter = RateLimiter.for_target(options.max_write_rate, target_desc)
    if (
        options.truncate_target
        and prepared.action == "exists"
        and target_has_items(target_client, target.name)
    ):
        if options.backup:
            summary.backup_arn = backup_table(target_client, target.name, clock=clock)
        summary.truncated = truncate(
            target_client,
            target.name,
            keys,
            segments=options.segments,
            backoff=backoff,
            limiter=limiter,
        )

    # --- copy -----------------------------------------------------------------------------------
    copy_started = clock.monotonic()
    counters = Counters()
    if query is None:
        progress.total = int(source_desc.get("ItemCount", 0) or 0) or None

        def one(segment: int) -> None:
            for page in scan_pages(
                source_client,
                source.name,
                segment=segment,
                total_segments=options.segments,
                limit=options.page_size,
                backoff=backoff,
            ):
                counters.add("scanned", len(page.items))
                write_batches(
                    target_client,
                    target.name,
                    page.items,
                    counters,
                    limiter=limiter,
                    backoff=backoff,
                )
                progress.advance(len(page.items))

        with ThreadPoolExecutor(max_workers=min(options.segments, 32)) as pool:
            list(pool.map(one, range(options.segments)))
    else:
        seen: set[str] = set()
        for page in query_pages(
            source_client, source.name, query.request, limit=options.page_size, backoff=backoff
        ):
            items = page
            if query.fetch_items:
                wanted = []
                for item in page:
                    key = key_of(item, keys)
                    kid = key_id(key)
                    if kid not in seen:
                        seen.add(kid)
                        wanted.append(key)
                items = batch_get(source_client, source.name, wanted, backoff=backoff)
            counters.add("scanned", len(page))
            write_batches(
                target_client, target.name, items, counters, limiter=limiter, backoff=backoff
            )
            progress.advance(len(items))
    progress.close()
    totals = counters.snapshot()
    summary.read = totals["scanned"]
    summary.written = totals["written"]
    summary.throttles = totals["throttles"]
    summary.retries = totals["retries"]
    summary.unprocessed = totals["unprocessed"]
    summary.copy_seconds = round(clock.monotonic() - copy_started, 3)
    summary.seconds = round(clock.monotonic() - started, 3)
    return summary
