"""The local AWS: moto's server, made closer to AWS where dynashift depends on AWS's behaviour.

One starter (`Emulator`) runs `python -m dynashift.emulator` in its own process on a free
loopback port, waits until `/moto-api/` answers and stops it; `dynashift demo` and the test
suite's `moto_server` fixture both use it. `main()` applies the patches below and then runs
moto's own server.

The patches never add behaviour AWS does not have: each one closes a gap between moto 5.2.5
and the AWS documentation it names, where a dynashift rule relies on AWS's side of the gap.

* `serial_stream_records` — DynamoDB Streams developer guide ("each stream record is assigned
  a sequence number, reflecting the order in which the record was published to the stream"):
  moto numbers a record `len(shard.items) + start` and appends it afterwards without a lock,
  so two writes served at once by two server threads can get one sequence number; its shard
  iterator then never passes the second of them and every GetRecords returns that record
  again (the old intermittent 300 s hang of test_backfill's concurrent-hook test).
* `aws_export_layout` — DynamoDB developer guide, "DynamoDB table export output format" and
  the ExportTableToPointInTime / DescribeExport API reference: moto writes one gzip file with
  no manifests, reads the table unlocked (a concurrent write fails the export with "dictionary
  changed size during iteration"), ignores ExportTime, ClientToken and the SSE settings, puts
  the export under `table/<table ARN>/import/...` and returns no ExportTime, StartTime, EndTime
  or ExportManifest. Patched, an export snapshots the items (retrying a copy that a concurrent
  write disturbed), writes `_started`, several `data/<random>.json.gz` files (DYNAMODB_JSON: one
  `{"Item": {...}}` per line), `manifest-files.json` (JSON lines: itemCount, md5Checksum, etag,
  dataFileS3Key), `manifest-summary.json` and their checksum files, under
  `<prefix>/AWSDynamoDB/<ExportId>/`, and DescribeExport answers like AWS. A repeated request
  with the same ClientToken returns the first export instead of starting a second one.
  ExportTime is the request's, or the time of the request (as in AWS), and must lie inside the
  PITR window (InvalidExportTimeException). What moto cannot do stays undone: the items are the
  table's items when the export thread reads them, just after the request (no point-in-time
  restore: a change made after ExportTime may be in the export — it is in the stream too), and
  S3 encryption is only recorded on the objects (moto's S3 does not encrypt).
"""

from __future__ import annotations

import base64
import contextlib
import datetime as dt
import gzip
import hashlib
import json
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from dynashift.errors import RuntimeFailure

#: At most this many items per export data file (AWS writes at least one file per partition;
#: a test with a few hundred items gets several files, so the loader's per-file work shows).
EXPORT_ITEMS_PER_FILE = 100

#: The manifest version AWS writes (manifest-summary.json "version").
MANIFEST_VERSION = "2020-06-30"

#: How often a snapshot disturbed by a concurrent write is retried before the export fails.
SNAPSHOT_ATTEMPTS = 50


# --- patch 1: one sequence number per stream record -----------------------------------------


def serial_stream_records() -> Callable[[], None]:
    """Number and append moto's stream records under one lock (see the module docstring).

    Returns the undo. A shard with Lambda event source mappings keeps moto's own `add`
    unlocked: moto invokes the function inside it, and that call may write the table again.
    """
    from moto.dynamodb.models.table import StreamShard

    original = StreamShard.add
    lock = threading.Lock()

    def add(self: Any, old: Any, new: Any) -> None:
        if self.table.lambda_event_source_mappings:
            original(self, old, new)
            return
        with lock:
            original(self, old, new)

    StreamShard.add = add  # type: ignore[method-assign]

    def undo() -> None:
        StreamShard.add = original  # type: ignore[method-assign]

    return undo


# --- patch 2: exports in AWS's layout -------------------------------------------------------


def _iso(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def _as_datetime(value: Any) -> dt.datetime | None:
    if value is None or value == "":
        return None
    if isinstance(value, dt.datetime):
        return value if value.tzinfo else value.replace(tzinfo=dt.UTC)
    return dt.datetime.fromtimestamp(float(value), dt.UTC)


def _item_line(item: Any) -> str:
    """One DYNAMODB_JSON line; retried when a concurrent UpdateItem changes the item (moto
    updates items in place)."""
    from moto.dynamodb.models.utilities import dynamo_json_dump

    for _ in range(SNAPSHOT_ATTEMPTS):
        try:
            return str(dynamo_json_dump(item.to_json(root_attr_name="Item")))
        except RuntimeError:  # dictionary changed size during iteration
            time.sleep(0.001)
    raise RuntimeError("an item kept changing while the export read it")


def snapshot_lines(table: Any) -> list[str]:
    """The table's items as DYNAMODB_JSON lines, safe against concurrent writes.

    `list(dict.values())` copies in C without releasing the GIL, so each copy is atomic; a
    RuntimeError from a copy that a write disturbed anyway is retried.
    """
    for _ in range(SNAPSHOT_ATTEMPTS):
        try:
            groups = list(table.items.values())
            items = []
            for group in groups:
                items.extend(list(group.values()) if table.range_key_attr else [group])
            return [_item_line(item) for item in items]
        except RuntimeError:
            time.sleep(0.001)
    raise RuntimeError("the table kept changing while the export copied it")


def _chunks(lines: Sequence[str], size: int) -> Iterator[Sequence[str]]:
    if not lines:
        yield []  # AWS writes an empty file for an empty partition
    for start in range(0, len(lines), size):
        yield lines[start : start + size]


def _write_export(export: Any, s3_backend: Any, items_per_file: int) -> None:
    """Write `export`'s objects in AWS's layout (runs in moto's export thread)."""
    base = f"{export.s3_prefix.rstrip('/')}/" if export.s3_prefix else ""
    root = f"{base}AWSDynamoDB/{export.export_id}"
    # The API's S3SseAlgorithm KMS is S3's `aws:kms`; AES256 is S3's default anyway.
    encryption = "aws:kms" if export.sse_algorithm == "KMS" else export.sse_algorithm
    sse = {"encryption": encryption, "kms_key_id": export.kms_key_id}

    def put(key: str, body: bytes) -> Any:
        return s3_backend.put_object(bucket_name=export.s3_bucket, key_name=key, value=body, **sse)

    put(f"{root}/_started", b"")
    export.start_time = dt.datetime.now(dt.UTC)
    lines = snapshot_lines(export.table)
    manifest_lines = []
    for chunk in _chunks(lines, items_per_file):
        key = f"{root}/data/{uuid.uuid4().hex[:26]}.json.gz"
        body = gzip.compress("".join(line + "\n" for line in chunk).encode("utf-8"))
        put(key, body)
        digest = hashlib.md5(body, usedforsecurity=False)
        entry = {
            "itemCount": len(chunk),
            "md5Checksum": base64.b64encode(digest.digest()).decode("ascii"),
            "etag": digest.hexdigest(),
            "dataFileS3Key": key,
        }
        manifest_lines.append(json.dumps(entry))
        export.processed_bytes += sum(len(line) for line in chunk)
    export.item_count = len(lines)
    files_key = f"{root}/manifest-files.json"
    files_body = "".join(line + "\n" for line in manifest_lines).encode("utf-8")
    put(files_key, files_body)
    export.end_time = dt.datetime.now(dt.UTC)
    summary = {
        "version": MANIFEST_VERSION,
        "exportArn": export.arn,
        "startTime": _iso(export.start_time),
        "endTime": _iso(export.end_time),
        "tableArn": export.table.table_arn,
        "tableId": str(uuid.uuid5(uuid.NAMESPACE_URL, export.table.table_arn)),
        "exportTime": _iso(export.export_time),
        "s3Bucket": export.s3_bucket,
        "s3Prefix": export.s3_prefix or None,
        "s3SseAlgorithm": export.sse_algorithm or "AES256",
        "s3SseKmsKeyId": export.kms_key_id,
        "manifestFilesS3Key": files_key,
        "billedSizeBytes": export.processed_bytes,
        "itemCount": export.item_count,
        "outputFormat": "DYNAMODB_JSON",
        "exportType": export.export_type,
    }
    summary_body = json.dumps(summary).encode("utf-8")
    put(f"{root}/manifest-summary.json", summary_body)
    for name, body in (("manifest-files", files_body), ("manifest-summary", summary_body)):
        md5 = hashlib.md5(body, usedforsecurity=False).hexdigest().encode("ascii")
        put(f"{root}/{name}.md5", md5)  # the older layout's name
        put(f"{root}/{name}.checksum", md5)  # the current guide's name
    export.manifest_key = f"{root}/manifest-summary.json"
    export.status = "COMPLETED"


class _ExportPatch:
    """What `aws_export_layout` installs: moto's originals, the ClientTokens seen, the file size."""

    def __init__(self, items_per_file: int) -> None:
        from moto.dynamodb.models.table_export import TableExport
        from moto.dynamodb.responses import DynamoHandler

        self.items_per_file = items_per_file
        self.tokens: dict[tuple[str, str, str], tuple[str, str]] = {}
        self.lock = threading.Lock()
        self.originals: dict[tuple[type, str], Callable[[Any], Any]] = {
            (TableExport, "run"): TableExport.run,
            (TableExport, "response"): TableExport.response,
            (DynamoHandler, "export_table_to_point_in_time"): (
                DynamoHandler.export_table_to_point_in_time
            ),
            (DynamoHandler, "describe_export"): DynamoHandler.describe_export,
        }

    def install(self) -> None:
        patch = self  # functions, not bound methods: moto calls them as methods of its objects
        replacements: dict[str, Callable[[Any], Any]] = {
            "run": lambda export: patch.run(export),  # noqa: PLW0108
            "response": lambda export: patch.response(export),  # noqa: PLW0108
            "export_table_to_point_in_time": lambda handler: patch.start(handler),  # noqa: PLW0108
            "describe_export": lambda handler: patch.describe(handler),  # noqa: PLW0108
        }
        for owner, name in self.originals:
            setattr(owner, name, replacements[name])

    def undo(self) -> None:
        for (owner, name), original in self.originals.items():
            setattr(owner, name, original)

    def _original(self, name: str) -> Callable[[Any], Any]:
        return next(fn for (_, n), fn in self.originals.items() if n == name)

    def run(self, export: Any) -> None:
        """The export thread: AWS's layout, or FAILED with AWS's code for a missing bucket."""
        from moto.s3.models import s3_backends

        try:
            s3_backend = s3_backends[export.account_id][export.partition]
            s3_backend.buckets[export.s3_bucket]
        except KeyError:
            export.status = "FAILED"
            export.failure_code = "S3NoSuchBucket"
            export.failure_message = "The specified bucket does not exist"
            export.end_time = dt.datetime.now(dt.UTC)
            return
        try:
            _write_export(export, s3_backend, self.items_per_file)
        except Exception as exc:  # reported through DescribeExport, like AWS's failures
            export.status = "FAILED"
            export.failure_code = "UNKNOWN"
            export.failure_message = str(exc)
            export.end_time = dt.datetime.now(dt.UTC)

    def response(self, export: Any) -> dict[str, Any]:
        """DescribeExport's ExportDescription with AWS's fields."""
        out = self._original("response")(export)
        out.update(
            {
                "ExportArn": export.arn,
                "S3BucketOwner": export.bucket_owner,
                "ClientToken": export.client_token,
                "S3SseAlgorithm": export.sse_algorithm or "AES256",
                "S3SseKmsKeyId": export.kms_key_id,
                "ExportTime": export.export_time,
                "StartTime": export.start_time or export.requested_at,
                "EndTime": export.end_time,
                "ExportManifest": export.manifest_key,
            }
        )
        return {k: v for k, v in out.items() if v is not None}

    def start(self, handler: Any) -> Any:
        """ExportTableToPointInTime: ClientToken, ExportTime, SSE and the bucket owner kept."""
        from moto.core.exceptions import JsonRESTError
        from moto.core.responses import ActionResult
        from moto.dynamodb.exceptions import (
            ERROR_TYPE_PREFIX,
            PointInTimeRecoveryUnavailable,
            TableNotFoundException,
        )
        from moto.dynamodb.models.table_export import TableExport

        body, backend = handler.body, handler.dynamodb_backend
        table_arn = body["TableArn"]
        token = body.get("ClientToken") or None
        token_key = (backend.account_id, backend.region_name, token or "")
        params = json.dumps(
            {k: v for k, v in body.items() if k != "ClientToken"}, sort_keys=True, default=str
        )
        with self.lock:
            known, known_params = self.tokens.get(token_key, ("", "")) if token else ("", "")
        if known in backend.table_exports:
            if known_params != params:
                raise JsonRESTError(
                    ERROR_TYPE_PREFIX + "ExportConflictException",
                    f"ClientToken {token} was used with other parameters",
                )
            return ActionResult({"ExportDescription": backend.table_exports[known].response()})
        table = next((t for t in backend.tables.values() if t.table_arn == table_arn), None)
        if table is None:
            raise TableNotFoundException(name=table_arn)
        pitr = table.continuous_backups["PointInTimeRecoveryDescription"]
        if pitr["PointInTimeRecoveryStatus"] != "ENABLED":
            raise PointInTimeRecoveryUnavailable(name=table_arn.split("/")[-1])
        owner = body.get("S3BucketOwner") or None
        export: Any = TableExport(
            s3_bucket=body["S3Bucket"],
            s3_prefix=body.get("S3Prefix") or "",
            region_name=backend.region_name,
            account_id=owner or backend.account_id,  # whose S3 holds the bucket
            table=table,
            export_format=body.get("ExportFormat", "DYNAMODB_JSON"),
            export_type=body.get("ExportType", "FULL_EXPORT"),
        )
        now = dt.datetime.now(dt.UTC)
        export.export_id = f"{int(now.timestamp() * 1000):014d}-{uuid.uuid4().hex[:8]}"
        export.arn = f"{table_arn}/export/{export.export_id}"
        export.bucket_owner = owner or backend.account_id
        export.client_token = token
        export.sse_algorithm = body.get("S3SseAlgorithm") or None
        export.kms_key_id = body.get("S3SseKmsKeyId") or None
        export.requested_at = now
        export.export_time = _as_datetime(body.get("ExportTime")) or now  # AWS: the request's
        if body.get("ExportTime"):
            earliest = _as_datetime(pitr.get("EarliestRestorableDateTime"))
            if export.export_time > now or (earliest and export.export_time < earliest):
                raise JsonRESTError(
                    ERROR_TYPE_PREFIX + "InvalidExportTimeException",
                    "ExportTime must fall between the earliest restorable time and now",
                )
        export.start_time = export.end_time = export.manifest_key = None
        backend.table_exports[export.arn] = export
        if token:
            with self.lock:
                self.tokens[token_key] = (export.arn, params)
        export.start()
        return ActionResult({"ExportDescription": export.response()})

    def describe(self, handler: Any) -> Any:
        """DescribeExport: ExportNotFoundException for an unknown ARN (moto: a KeyError)."""
        from moto.core.exceptions import JsonRESTError
        from moto.dynamodb.exceptions import ERROR_TYPE_PREFIX

        arn = handler.body["ExportArn"]
        if arn not in handler.dynamodb_backend.table_exports:
            raise JsonRESTError(
                ERROR_TYPE_PREFIX + "ExportNotFoundException", f"Export not found: {arn}"
            )
        return self._original("describe_export")(handler)


def aws_export_layout(items_per_file: int = EXPORT_ITEMS_PER_FILE) -> Callable[[], None]:
    """Make moto's ExportTableToPointInTime / DescribeExport behave like AWS's (module
    docstring), at most `items_per_file` items in a data file. Returns the undo."""
    patch = _ExportPatch(items_per_file)
    patch.install()
    return patch.undo


def apply_patches() -> Callable[[], None]:
    """Every patch of this module; returns the undo of all of them."""
    undos = [serial_stream_records(), aws_export_layout()]

    def undo() -> None:
        for one in reversed(undos):
            one()

    return undo


# --- the one starter --------------------------------------------------------------------------


def free_port() -> int:
    """A free TCP port on the loopback interface."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Emulator:
    """The patched moto server in its own process, on a free loopback port.

    `start()` waits until `/moto-api/` answers (RuntimeFailure when it exits or does not answer
    within `timeout`); `stop()` terminates it. Also a context manager. `MOTO_PORT` is set to the
    port in the child (moto's Step Functions interpreter reaches Lambda through it).
    """

    def __init__(
        self, port: int | None = None, *, env: dict[str, str] | None = None, quiet: bool = True
    ) -> None:
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = env
        self.quiet = quiet
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 60.0) -> Emulator:
        env = dict(os.environ if self.env is None else self.env, MOTO_PORT=str(self.port))
        out = subprocess.DEVNULL if self.quiet else None
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "dynashift.emulator", "-H", "127.0.0.1", "-p", str(self.port)],
            stdout=out,
            stderr=out,
            env=env,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                urllib.request.urlopen(f"{self.url}/moto-api/", timeout=1).read()
                return self
            except OSError:
                if self.proc.poll() is not None:
                    raise RuntimeFailure("the moto server exited during start-up") from None
                time.sleep(0.05)
        self.stop()
        raise RuntimeFailure(f"the moto server did not answer on {self.url} within {timeout} s")

    def reset(self) -> None:
        """Forget every resource (moto's reset API)."""
        req = urllib.request.Request(f"{self.url}/moto-api/reset", method="POST")
        urllib.request.urlopen(req, timeout=10).read()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                with contextlib.suppress(subprocess.TimeoutExpired):
                    self.proc.wait(timeout=5)
        self.proc = None

    def __enter__(self) -> Emulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def main(argv: list[str] | None = None) -> None:
    """`python -m dynashift.emulator -H HOST -p PORT`: moto's server with the patches."""
    from moto.server import main as moto_main

    apply_patches()
    moto_main(argv)


if __name__ == "__main__":
    main()
