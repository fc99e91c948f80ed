"""Load an export's data files into the target: streaming, resumable by line, conditional puts.

`iter_items` streams one `data/*.json.gz` file (gzip, line by line; a file is never held in
memory whole) and yields `(line_number, item)` in botocore wire format (binary as bytes; the
export writes it as base64 text). Line numbers count from 0 and include blank lines, so a line
number is a stable cursor into the file.

`load_file` writes a file's items from `start_line` with the backfill's own write path,
`backfill.ConditionalWriter`: the same conditional PutItem (`conditions.backfill_put`, I4) that
never overwrites a replicated write nor a tombstone (I5), the same `RateLimiter`, counters and
throttling rules. It stops before `stop_at` (the writer's clock) and returns the line to resume
from (I8): every line before it has been written or had its condition fail; a line after it may
have been written by a put in flight, and writing it again on resume is harmless (its condition
fails and it is counted as `skipped_newer`). An export is read at its point in time, so its
items are what a scan would have read then; the replicator, started before the export time
(`check_export_after_stream`), brings every later change.
"""

from __future__ import annotations

import contextlib
import gzip
import io
import json
import math
from collections.abc import Callable, Generator
from typing import Any

from botocore.exceptions import ClientError
from pydantic import BaseModel, ConfigDict, Field

from dynashift.aws import error_code
from dynashift.backfill import ConditionalWriter, refuse_reserved
from dynashift.errors import BadInputError, RuntimeFailure
from dynashift.export.manifest import DataFile
from dynashift.items import Item, from_event_json
from dynashift.retry import call_with_retry

#: Items handed to the writer at a time (bounded memory; the writer pipelines each batch).
LOAD_BATCH = 100


class FileProgress(BaseModel):
    """Where `load_file` stopped: `line` to resume from, `done` when the file is finished, and
    the writer's counters after the call."""

    model_config = ConfigDict(frozen=True)

    key: str
    line: int
    done: bool
    counters: dict[str, int] = Field(default_factory=dict)


def _key(data_file: DataFile | str) -> str:
    return data_file.key if isinstance(data_file, DataFile) else data_file


def iter_items(
    s3: Any, bucket: str, data_file: DataFile | str, start_line: int = 0
) -> Generator[tuple[int, Item], None, None]:
    """Stream `(line_number, item)` of one DYNAMODB_JSON data file from `start_line` on."""
    key = _key(data_file)
    if start_line < 0:
        raise BadInputError(f"start_line must be >= 0, got {start_line}")
    try:
        body = call_with_retry(lambda: s3.get_object(Bucket=bucket, Key=key))["Body"]
    except ClientError as exc:
        code = error_code(exc) or type(exc).__name__
        raise RuntimeFailure(f"cannot read s3://{bucket}/{key}: {code}") from exc
    try:
        with gzip.GzipFile(fileobj=body, mode="rb") as raw:
            text = io.TextIOWrapper(raw, encoding="utf-8")
            for number, line in enumerate(text):
                if number < start_line or not line.strip():
                    continue
                try:
                    item = json.loads(line)["Item"]
                except (ValueError, KeyError, TypeError) as exc:
                    raise RuntimeFailure(
                        f"s3://{bucket}/{key} line {number}: not a DYNAMODB_JSON item"
                    ) from exc
                yield number, from_event_json(item)
    except (OSError, EOFError) as exc:  # a truncated or corrupt gzip stream
        raise RuntimeFailure(f"s3://{bucket}/{key}: {exc}") from exc
    finally:
        close = getattr(body, "close", None)
        if close is not None:
            close()


def load_file(
    s3: Any,
    writer: ConditionalWriter,
    bucket: str,
    data_file: DataFile | str,
    start_line: int = 0,
    *,
    stop_at: float = math.inf,
    keep_going: Callable[[], bool] | None = None,
    batch_size: int = LOAD_BATCH,
) -> FileProgress:
    """Write one data file's items from `start_line` with `writer`'s conditional puts.

    Stops before `stop_at` (measured by `writer.clock`) or when `keep_going()` — asked before
    each batch; a straggler check such as "is the phase still BACKFILL" — says no. Counts each
    item whose put finished (written or its condition failed) as `scanned` in
    `writer.counters`. Returns the line to resume from; the S3 stream is closed on return.
    """
    key = _key(data_file)
    line = start_line
    batch: list[tuple[int, Item]] = []

    def flush() -> bool:
        """Write `batch`; True when all of it is written (advances `line`)."""
        nonlocal line
        if not batch:
            return True
        refuse_reserved([item for _, item in batch], writer.keys)
        written = writer.put_all([item for _, item in batch], stop_at)
        writer.counters.add("scanned", written)
        if written < len(batch):
            line = batch[written][0]
            return False
        line = batch[-1][0] + 1
        batch.clear()
        return True

    def stopped() -> FileProgress:
        return FileProgress(key=key, line=line, done=False, counters=writer.counters.snapshot())

    if writer.clock.monotonic() >= stop_at or (keep_going is not None and not keep_going()):
        return stopped()
    with contextlib.closing(iter_items(s3, bucket, key, start_line)) as items:
        for number, item in items:
            batch.append((number, item))
            if len(batch) >= batch_size:
                if not flush():
                    return stopped()
                if writer.clock.monotonic() >= stop_at or (
                    keep_going is not None and not keep_going()
                ):
                    return stopped()
    if not flush():
        return stopped()
    return FileProgress(key=key, line=line, done=True, counters=writer.counters.snapshot())
