"""Start, describe and wait for an ExportTableToPointInTime; the PITR and stream-time rules.

* `start_export` is idempotent through ClientToken (a retried Lambda or a re-run step gets the
  export the first call started, never a second one); PITR off is bad input — dynashift never
  turns it on itself (worded by `errors.pitr_off_refusal`).
* `describe_export` reads DescribeExport into an `ExportStatus`; a FAILED export raises
  RuntimeFailure with AWS's failure code and message (so does a COMPLETED one without the
  manifest or export time AWS always gives: an endpoint that does not export like AWS).
* `check_export_after_stream` holds invariant I2 for the export strategy: every change after the
  export's point in time must be in the stream, so the export time may not come before the
  stream was enabled.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from botocore.exceptions import ClientError
from pydantic import BaseModel, ConfigDict

from dynashift.aws import error_code
from dynashift.clock import SYSTEM_CLOCK, Clock
from dynashift.errors import (
    BadInputError,
    RuntimeFailure,
    TableNotFoundError,
    TransientError,
    pitr_off_refusal,
)
from dynashift.models import ExportLocation
from dynashift.retry import Backoff, call_with_retry, is_transient

IN_PROGRESS, COMPLETED, FAILED = "IN_PROGRESS", "COMPLETED", "FAILED"


class ExportStatus(BaseModel):
    """DescribeExport, the parts dynashift uses (times in epoch seconds: they travel in JSON)."""

    model_config = ConfigDict(frozen=True)

    arn: str
    status: str
    export_time: float | None = None
    manifest_key: str | None = None
    item_count: int | None = None
    billed_bytes: int | None = None
    failure: str | None = None
    bucket: str | None = None

    @property
    def done(self) -> bool:
        return self.status == COMPLETED


def epoch(value: Any) -> float | None:
    """Epoch seconds of a botocore timestamp (datetime), an ISO 8601 text or a number."""
    if value is None or value == "":
        return None
    if isinstance(value, dt.datetime):
        moment = value
    elif isinstance(value, int | float):
        return float(value)
    else:
        moment = dt.datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    return moment.timestamp()


def _table_name(table_arn: str) -> str:
    return table_arn.rsplit("/", 1)[-1] if "/" in table_arn else table_arn


def _wrap(exc: Exception, what: str, table_arn: str = "") -> Exception:
    code = error_code(exc) or type(exc).__name__
    message = str(getattr(exc, "response", {}).get("Error", {}).get("Message", "")) or code
    table = _table_name(table_arn)
    if code == "PointInTimeRecoveryUnavailableException":
        return BadInputError(f"source: {pitr_off_refusal(table)}")
    if code in ("TableNotFoundException", "ResourceNotFoundException"):
        return TableNotFoundError(f"source table {table!r} does not exist")
    if code == "InvalidExportTimeException":
        return BadInputError(f"export_time: {message}")
    if code == "ExportConflictException":
        return BadInputError(f"client_token: {message}")
    if is_transient(exc):
        return TransientError(f"{what}: {code} after retries")
    return RuntimeFailure(f"{what}: {code}: {message}")


def start_export(
    dynamodb: Any,
    table_arn: str,
    request: ExportLocation,
    *,
    client_token: str,
    export_time: float | None = None,
    backoff: Backoff | None = None,
) -> str:
    """Start a full DYNAMODB_JSON export of `table_arn` to `request`'s bucket; its ARN.

    `client_token` (non-empty, no `$`) makes the call idempotent: the same token with the
    same parameters returns the same export (within AWS's 8-hour window); with other parameters
    it is BadInputError. `export_time` (epoch seconds) defaults to now.
    """
    if not client_token or "$" in client_token:
        raise BadInputError("client_token: must be non-empty text without '$'")
    kwargs: dict[str, Any] = {
        "TableArn": table_arn,
        "ClientToken": client_token,
        "ExportFormat": "DYNAMODB_JSON",
        "ExportType": "FULL_EXPORT",
        **request.api_kwargs(),
    }
    if export_time is not None:
        kwargs["ExportTime"] = dt.datetime.fromtimestamp(export_time, dt.UTC)
    try:
        resp = call_with_retry(lambda: dynamodb.export_table_to_point_in_time(**kwargs), backoff)
    except ClientError as exc:
        raise _wrap(exc, f"ExportTableToPointInTime of {table_arn}", table_arn) from exc
    return str(resp["ExportDescription"]["ExportArn"])


def status_of(description: Mapping[str, Any]) -> ExportStatus:
    """An ExportDescription (DescribeExport / ExportTableToPointInTime) as an ExportStatus."""
    failure = None
    if description.get("FailureCode") or description.get("FailureMessage"):
        failure = f"{description.get('FailureCode', '')}: {description.get('FailureMessage', '')}"
    return ExportStatus(
        arn=str(description["ExportArn"]),
        status=str(description.get("ExportStatus", IN_PROGRESS)),
        export_time=epoch(description.get("ExportTime")),
        manifest_key=description.get("ExportManifest"),
        item_count=description.get("ItemCount"),
        billed_bytes=description.get("BilledSizeBytes"),
        failure=failure,
        bucket=description.get("S3Bucket"),
    )


def describe_export(dynamodb: Any, arn: str, *, backoff: Backoff | None = None) -> ExportStatus:
    """The export's status; RuntimeFailure (with AWS's code and message) when it FAILED."""
    try:
        resp = call_with_retry(lambda: dynamodb.describe_export(ExportArn=arn), backoff)
    except ClientError as exc:
        raise _wrap(exc, f"DescribeExport of {arn}") from exc
    status = status_of(resp["ExportDescription"])
    if status.status == FAILED:
        raise RuntimeFailure(f"export {arn} failed: {status.failure or 'no reason given'}")
    if status.done and (status.manifest_key is None or status.export_time is None):
        raise RuntimeFailure(
            f"export {arn} completed without ExportManifest or ExportTime: the endpoint does "
            "not export like AWS (a plain moto server? `python -m dynashift.emulator` does)"
        )
    return status


def wait_export(
    dynamodb: Any,
    arn: str,
    *,
    timeout: float = math.inf,
    poll_seconds: float = 10.0,
    clock: Clock = SYSTEM_CLOCK,
    pauses: Iterator[float] | None = None,
    on_poll: Callable[[ExportStatus], None] | None = None,
) -> ExportStatus:
    """Poll DescribeExport until COMPLETED (RuntimeFailure when FAILED or after `timeout` s).

    Between two polls it sleeps `poll_seconds`, or the next of `pauses` (e.g. growing ones),
    never past the deadline; `on_poll` sees each status not yet done (a progress line). In
    AWS the state machine polls instead (a Wait state and `describe_export`)."""
    deadline = clock.monotonic() + timeout
    while True:
        status = describe_export(dynamodb, arn)
        if status.done:
            return status
        if on_poll is not None:
            on_poll(status)
        if clock.monotonic() >= deadline:
            raise RuntimeFailure(
                f"export {arn} did not finish within {timeout:.0f} s "
                f"(aws dynamodb describe-export --export-arn {arn})"
            )
        pause = poll_seconds if pauses is None else next(pauses)
        clock.sleep(min(pause, max(0.0, deadline - clock.monotonic())))


def pitr_enabled(dynamodb: Any, table: str) -> bool:
    """Whether point-in-time recovery is on for `table` (an export needs it)."""
    try:
        resp = call_with_retry(lambda: dynamodb.describe_continuous_backups(TableName=table))
    except ClientError as exc:
        raise _wrap(exc, f"DescribeContinuousBackups of {table}", table) from exc
    description = resp.get("ContinuousBackupsDescription", {})
    pitr = description.get("PointInTimeRecoveryDescription", {})
    return bool(pitr.get("PointInTimeRecoveryStatus") == "ENABLED")


def bucket_access_problem(s3: Any, location: ExportLocation) -> str | None:
    """Why `s3`'s principal cannot use the export's bucket, or None: HeadBucket (s3:ListBucket),
    with ExpectedBucketOwner when `location` names the bucket's account. The caller names the
    field (`spec.export.bucket`, `--export-bucket`) and raises BadInputError; an error other
    than a missing or forbidden bucket is raised as it is (not bad input)."""
    kwargs: dict[str, Any] = {"Bucket": location.bucket}
    if location.bucket_owner:
        kwargs["ExpectedBucketOwner"] = location.bucket_owner
    try:
        s3.head_bucket(**kwargs)
    except ClientError as exc:
        code = error_code(exc)
        if code in ("404", "NoSuchBucket", "NotFound"):
            return f"bucket {location.bucket!r} does not exist"
        if code in ("403", "AccessDenied", "Forbidden"):
            owner = (
                f" or it is not owned by account {location.bucket_owner}"
                if location.bucket_owner
                else ""
            )
            return (
                f"bucket {location.bucket!r} is not reachable: these credentials may not read it "
                f"(s3:ListBucket: the bucket policy must allow this principal){owner}"
            )
        raise
    return None


def stream_label_time(label: str) -> float:
    """When a stream was enabled, from its label (DescribeTable's LatestStreamLabel is the
    stream's creation time, ISO 8601 in UTC)."""
    value = epoch(label)
    if value is None:
        raise BadInputError(f"stream label {label!r} is not a timestamp")
    return value


def check_export_after_stream(export_time: float, stream_enabled_at: float) -> None:
    """I2 for the export strategy: RuntimeFailure when the export's point in time comes before
    the stream was enabled (changes in between would be in neither the export nor the stream)."""
    if export_time < stream_enabled_at:
        at = dt.datetime.fromtimestamp(export_time, dt.UTC).isoformat()
        enabled = dt.datetime.fromtimestamp(stream_enabled_at, dt.UTC).isoformat()
        raise RuntimeFailure(
            f"the export's time {at} is before the stream was enabled ({enabled}): changes in "
            "between would be lost; export again at a later time"
        )
