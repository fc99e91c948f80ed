"""The export strategy's backfill in the workflow (issue 16 item 1): what its Task states do.

The export engine (`dynashift.export`: start and describe an export, read its manifest, load a
data file with the scan backfill's conditional puts) knows nothing of a migration. This module
ties it to one: the export's location comes from `MigrationSpec.export`, its ARN and data file
count are recorded in the migration's state store, and each data file's cursor `{file, line,
done}` is checkpointed there after every chunk of lines (I8), so a loader that timed out or
crashed resumes from the last committed line (rewriting a few lines is harmless: the puts are
conditional, I4).

The rules the export strategy shares with the scan backfill are the scan backfill's:
`backfill.start_backfill` (phase BACKFILL, deletes become tombstones: I5),
`backfill.ConditionalWriter` (I4), the invocation leases `tombstones.finish_backfill` waits out,
and the phase re-read before each chunk (a straggler stops without writing once the phase is
past BACKFILL).

Read-only checks (`check_export_source`, used by Validate and by `migrate` before anything is
created): point-in-time recovery must be on for the source — dynashift never turns it on — and
the bucket must exist and be reachable (HeadBucket, with ExpectedBucketOwner when the input
names the bucket's account).
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from dynashift.backfill import (
    DEFAULT_IN_FLIGHT,
    Counters,
    backfill_writer,
    ensure_backfilling,
    start_backfill,
    worker_stop_at,
)
from dynashift.clock import SYSTEM_CLOCK, Clock
from dynashift.errors import BadInputError, RuntimeFailure, pitr_off_refusal
from dynashift.items import key_names
from dynashift.tables import describe_table

if TYPE_CHECKING:
    from dynashift.models import ExportLocation, MigrationSpec
    from dynashift.ratelimit import RateLimiter
    from dynashift.state import StateStore

#: State store record of one data file's cursor (`expfile#000012`).
FILE_KIND = "expfile#"
#: A loader commits its cursor at least this often (seconds of loading between checkpoints).
CHECKPOINT_SECONDS = 5.0
#: A lease outlives its invocation's budget by this much (as the segment workers').
LEASE_GRACE_SECONDS = 30.0
#: History events of one loader turn and of one Map iteration besides its turns (as the segment
#: loops': `workflow.steps.EVENTS_PER_LOOP_TURN` / `EVENTS_PER_ITERATION`).
EVENTS_PER_LOOP_TURN = 7
EVENTS_PER_ITERATION = 4
#: Export status values (DescribeExport's ExportStatus).
COMPLETED, FAILED = "COMPLETED", "FAILED"


# --- read-only checks ------------------------------------------------------------------------


def check_export_source(spec: MigrationSpec, dynamodb: Any, s3: Any) -> None:
    """BadInputError (one line, naming the field) unless the export strategy can run: PITR on
    for the source, the bucket reachable. Read-only: nothing is turned on or created."""
    from dynashift.export import bucket_access_problem, pitr_enabled

    if spec.export is None:
        raise BadInputError("spec.export: required by strategy 'export'")
    if not pitr_enabled(dynamodb, spec.source.name):
        raise BadInputError(
            "spec.source: " + pitr_off_refusal(spec.source.name, "choose another strategy")
        )
    problem = bucket_access_problem(s3, spec.export)
    if problem:
        raise BadInputError(f"spec.export.bucket: {problem}; see docs/export.md")


# --- the export ------------------------------------------------------------------------------


def client_token(spec: MigrationSpec) -> str:
    """ExportTableToPointInTime's ClientToken: the same for every attempt of one migration's
    export to one location, so a retried start returns the export already started."""
    assert spec.export is not None
    text = json.dumps([spec.migration_id, spec.source.name, spec.export.bucket, spec.export.prefix])
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:36]


def _location(spec: MigrationSpec) -> ExportLocation:
    if spec.export is None:
        raise BadInputError("spec.export: required by strategy 'export'")
    return spec.export


def start(spec: MigrationSpec, state: StateStore, dynamodb: Any) -> dict[str, Any]:
    """Start the export (once: a recorded ARN is kept, the ClientToken covers a retry)."""
    from dynashift.export import start_export

    meta = state.get_meta() or {}
    arn = meta.get("export_arn")
    if not arn:
        table_arn = describe_table(dynamodb, spec.source.name, "source table")["TableArn"]
        arn = start_export(dynamodb, table_arn, _location(spec), client_token=client_token(spec))
        state.put_meta(export_arn=arn)
    return poll(spec, state, dynamodb)


def _export_arn(state: StateStore) -> str:
    arn = (state.get_meta() or {}).get("export_arn")
    if not arn:
        raise RuntimeFailure("no export was started for this migration (state store)")
    return str(arn)


def poll(spec: MigrationSpec, state: StateStore, dynamodb: Any) -> dict[str, Any]:
    """`{arn, status, done}`; a FAILED export raises RuntimeFailure with its code and message."""
    from dynashift.export import describe_export

    status = describe_export(dynamodb, _export_arn(state))
    return {
        "arn": status.arn,
        "status": status.status,
        "done": status.status == COMPLETED,
        "item_count": status.item_count,
    }


def check_time(spec: MigrationSpec, state: StateStore, dynamodb: Any) -> dict[str, Any]:
    """The export's point in time must follow the enabling of the stream the replicator reads
    (I2): every change after the export's snapshot is then in the stream."""
    from dynashift.export import check_export_after_stream, describe_export, stream_label_time

    meta = state.get_meta() or {}
    stream_arn = meta.get("stream_arn")
    if not stream_arn:
        raise RuntimeFailure("no stream is recorded for this migration (state store)")
    status = describe_export(dynamodb, _export_arn(state))
    if status.export_time is None:
        raise RuntimeFailure(f"export {status.arn} has no ExportTime")
    # The stream's label (its ARN's last part) is the time it was enabled.
    enabled = stream_label_time(str(stream_arn).rsplit("/", 1)[-1])
    check_export_after_stream(status.export_time, enabled)
    return {"export_time": _iso(status.export_time), "stream_enabled": _iso(enabled)}


def _iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).isoformat()


def _manifest(spec: MigrationSpec, state: StateStore, dynamodb: Any, s3: Any) -> Any:
    """The export's manifest: its key from the state store ("List export files" records it),
    else from DescribeExport (`dynamodb`; a loader has none: the files were listed first)."""
    from dynashift.export import describe_export, read_manifest

    assert spec.export is not None
    meta = state.get_meta() or {}
    key = meta.get("export_manifest")
    if not key and dynamodb is None:
        raise RuntimeFailure("the export's data files were not listed yet (state store)")
    if not key:
        status = describe_export(dynamodb, _export_arn(state))
        if status.status != COMPLETED or not status.manifest_key:
            raise RuntimeFailure(f"export {status.arn} is {status.status}, not {COMPLETED}")
        key = status.manifest_key
    return read_manifest(s3, spec.export.bucket, str(key))


def list_files(
    spec: MigrationSpec,
    state: StateStore,
    dynamodb: Any,
    s3: Any,
    *,
    max_concurrency: int,
    threshold: int,
) -> dict[str, Any]:
    """The manifest's data files for the load Map (indices), recorded in the state store: the
    file count (readiness: every file loaded) and the manifest's key (the loaders read it).
    Distributed when the loaders' turns would crowd the execution's history, or more loaders
    run at once than an inline Map allows."""
    from dynashift.export import describe_export
    from dynashift.plan import INLINE_MAP_CONCURRENCY, WORKER_ITEMS_PER_SECOND

    status = describe_export(dynamodb, _export_arn(state))
    manifest = _manifest(spec, state, dynamodb, s3)
    count = len(manifest.data_files)
    state.put_meta(
        export_manifest=status.manifest_key,
        export_files=count,
        export_items=int(manifest.item_count or 0),
    )
    budget = spec.worker_budget_seconds
    turns = sum(
        max(1, math.ceil(f.item_count / WORKER_ITEMS_PER_SECOND / budget))
        for f in manifest.data_files
    )
    wide = min(max_concurrency, count) > INLINE_MAP_CONCURRENCY
    events = turns * EVENTS_PER_LOOP_TURN + count * EVENTS_PER_ITERATION
    return {
        "files": list(range(count)),
        "count": count,
        "distributed": wide or events > threshold,
        "items": int(manifest.item_count or 0),
    }


# --- the loaders -----------------------------------------------------------------------------


def file_progress(state: StateStore, file: int) -> dict[str, Any]:
    """`{line, done, counters}` of a data file (line 0, not done when never loaded)."""
    record = state.get_record(FILE_KIND, f"{file:06d}") or {}
    counters = json.loads(record["counters"]["S"]) if "counters" in record else {}
    return {
        "line": int(record["line"]["N"]) if "line" in record else 0,
        "done": bool(record.get("done", {}).get("BOOL", False)),
        "counters": counters,
    }


def _save_progress(
    state: StateStore, file: int, line: int, done: bool, counters: Mapping[str, int]
) -> None:
    state.put_record(
        FILE_KIND,
        f"{file:06d}",
        line={"N": str(line)},
        done={"BOOL": done},
        counters={"S": json.dumps(dict(counters), sort_keys=True)},
    )


def export_files_loaded(state: StateStore) -> tuple[int, int, str]:
    """(data files loaded, data files listed, what they are) of the migration's export: the
    readiness checklist's "backfill complete" for the export strategy."""
    total = int((state.get_meta() or {}).get("export_files") or 0)
    done = sum(
        1 for record in state.records(FILE_KIND) if record.get("done", {}).get("BOOL", False)
    )
    return min(done, total), total, "data files of the export"


def loaded_items(state: StateStore) -> int:
    """Lines (items) read from the export's data files so far."""
    return sum(
        int(json.loads(r["counters"]["S"]).get("scanned", 0))
        for r in state.records(FILE_KIND)
        if "counters" in r
    )


def load_file(
    spec: MigrationSpec,
    file: int,
    *,
    state: StateStore,
    s3: Any,
    target_client: Any,
    limiter: RateLimiter | None = None,
    max_in_flight: int = DEFAULT_IN_FLIGHT,
    clock: Clock = SYSTEM_CLOCK,
) -> dict[str, Any]:
    """One loader invocation: write data file `file` of the export from its cursor in the state
    store until done or the worker budget; returns `{cursor: {file, line, done}, done}` (the
    state machine's copy; the state store's is the one a resumed loader reads). Checkpoints the
    cursor after every chunk of CHECKPOINT_SECONDS of loading."""
    from dynashift.export import load_file as load_lines
    from dynashift.ratelimit import RateLimiter as Limiter
    from dynashift.state import PHASE_BACKFILL

    assert spec.export is not None
    budget_seconds = spec.worker_budget_seconds
    started = clock.monotonic()
    stop_at = worker_stop_at(started, budget_seconds)
    saved = file_progress(state, file)
    if saved["done"]:
        return _cursor(file, saved["line"], True)
    line = saved["line"]
    manifest = _manifest(spec, state, None, s3)
    if not 0 <= file < len(manifest.data_files):
        raise BadInputError(f"file: {file} is outside 0..{len(manifest.data_files) - 1}")
    data_file = manifest.data_files[file]
    target_desc = describe_table(target_client, spec.target.name, "target")
    keys = key_names(target_desc["KeySchema"])
    overwrite_older = start_backfill(state, target_client, spec.target.name).overwrite_older
    limiter = limiter or Limiter.for_target(spec.max_write_rate, target_desc)
    counters = Counters(saved["counters"])
    counters.add("invocations")

    def backfilling() -> bool:
        return state.phase() in (None, PHASE_BACKFILL)

    lease = state.take_lease(file, clock.wall() + budget_seconds + LEASE_GRACE_SECONDS)
    done = False
    try:
        with backfill_writer(
            spec,
            target_client,
            keys,
            counters,
            limiter=limiter,
            max_in_flight=max_in_flight,
            clock=clock,
            overwrite_older=overwrite_older,
        ) as writer:
            while not done and clock.monotonic() < stop_at:
                ensure_backfilling(spec, state)
                chunk_end = min(stop_at, clock.monotonic() + CHECKPOINT_SECONDS)
                progress = load_lines(
                    s3,
                    writer,
                    spec.export.bucket,
                    data_file,
                    line,
                    stop_at=chunk_end,
                    keep_going=backfilling,  # a straggler stops before writing (fencing)
                )
                line, done = progress.line, progress.done
                _save_progress(state, file, line, done, counters.snapshot())
    finally:
        state.release_lease(file, lease)
    return _cursor(file, line, done)


def _cursor(file: int, line: int, done: bool) -> dict[str, Any]:
    return {"cursor": {"file": file, "line": line, "done": done}, "done": done}
