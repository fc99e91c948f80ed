"""`dynashift copy --via-import`: refresh a table by export to S3 and ImportTable.

Size: one module because its parts are the steps of one command, read in their order (the
refusals, the ImportTable request, the two waits, the settings set after the import).

For environment refreshes where the target may be created fresh: the source is exported with
ExportTableToPointInTime (no source read capacity), and ImportTable creates the target from
the export's data files (no target write capacity). What ImportTable cannot set is set once
the import is done, by the same convergence steps `migrate` uses for a target it creates.

    check_import_refresh(...)   read-only: every refusal, before anything is started
    import_request(...)         the ImportTable request for a spec and an export (pure)
    import_refresh(...)         export -> wait -> ImportTable -> wait -> settings -> parity

Rules, each written once here:

- Refused before anything is started (BadInputError, exit 2, naming the value): the target
  exists (ImportTable only creates tables), the source has point-in-time recovery off
  (ExportTableToPointInTime needs it; dynashift never turns it on), the source has LSIs
  (ImportTable cannot create them), the bucket is not reachable with the target's
  credentials (HeadBucket, with the expected owner when given), the two sides are in
  different accounts and no bucket owner is given. Flags `copy` honours but an import cannot
  (key subsets, truncation, a write rate) are refused by the CLI (`VIA_IMPORT_CONFLICTS`).
- The target's settings come from `target.build_target_spec` (the one mapping from a source
  description to a target): ImportTable gets the creation parameters it accepts
  (`IMPORT_CREATION_KEYS`); TTL, PITR, tags and replicas are applied afterwards by
  `target.poll_target` (created=True, as for a target `migrate` creates), and table class, a
  stream and deletion protection — which CreateTable would have set — by `table_updates`.
- Idempotent ClientTokens: one per run for the export (a retried call does not start a
  second export), and one derived from the export and the target for the import (a retried
  or repeated import of one export into one table is one import).
- Counts: an import with errors, or fewer items imported than exported, is a RuntimeFailure
  (exit 3) naming the CloudWatch log group where DynamoDB logs the failed lines.
- Ctrl-C while waiting leaves the export / import running (they are AWS-side jobs) and logs
  how to look them up.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import uuid
from collections.abc import Iterator
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from dynashift.clock import SYSTEM_CLOCK, Clock
from dynashift.errors import BadInputError, RuntimeFailure, UnsafeTargetError, pitr_off_refusal
from dynashift.export import (
    ExportManifest,
    ExportStatus,
    bucket_access_problem,
    data_prefix,
    read_manifest,
    start_export,
    wait_export,
)
from dynashift.models import PROCESS_CLIENTS, Clients, ExportLocation, TableLocation
from dynashift.progress import NullProgress, Progress
from dynashift.tables import table_exists
from dynashift.target import (
    TableDescription,
    TargetOptions,
    TargetSpec,
    account_of_location,
    check_target,
    compare_target,
    describe_location,
    poll_target,
)
from dynashift.target.describe import location_region

log = logging.getLogger("dynashift")

#: The CreateTable parameters ImportTable's TableCreationParameters accept; everything else
#: of the spec is applied after the import (`poll_target`, `table_updates`).
IMPORT_CREATION_KEYS = (
    "TableName",
    "AttributeDefinitions",
    "KeySchema",
    "BillingMode",
    "ProvisionedThroughput",
    "OnDemandThroughput",
    "SSESpecification",
    "GlobalSecondaryIndexes",
)

#: `copy` flags an import cannot honour (the CLI refuses them with --via-import).
VIA_IMPORT_CONFLICTS = {
    "segments": "--segments",
    "pk": "--pk",
    "sk_begins_with": "--sk-begins-with",
    "index": "--index",
    "truncate_target": "--truncate-target",
    "no_backup": "--no-backup",
    "max_write_rate": "--max-write-rate",
    "page_size": "--page-size",
    "allow_nonempty_target": "--allow-nonempty-target",
    "replace_stream": "--replace-stream",
}

#: Where DynamoDB logs an import's failed lines when the description names no log group.
DEFAULT_IMPORT_LOG_GROUP = "/aws-dynamodb/imports"


class ImportRefreshOptions(BaseModel):
    """What `copy --via-import` was asked to do (flags, validated)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    export: ExportLocation
    target: TargetOptions = Field(default_factory=TargetOptions)
    #: The longest pause between two DescribeExport / DescribeImport calls (the first ones come
    #: sooner); the status line is printed every ~10 s whatever the pause.
    poll_seconds: float = Field(default=10.0, gt=0)
    #: How long the export, and then the import, may take (big tables take hours).
    timeout_seconds: float = Field(default=48 * 3600.0, gt=0)


class ImportRefreshSummary(BaseModel):
    """The outcome of an import refresh (printed by the CLI, JSON-serializable)."""

    source: str
    target: str
    export_arn: str
    export_time: str | None = None
    exported_items: int = 0
    import_arn: str
    imported_items: int = 0
    processed_items: int = 0
    error_count: int = 0
    #: What was set after the import (TTL, PITR, tags, ...), in order.
    settings_applied: list[str] = Field(default_factory=list)
    #: Settings of the target that differ from the source's (the `compare_target` parity).
    parity: list[str] = Field(default_factory=list)
    warnings: list[str] = Field(default_factory=list)
    seconds: float = 0.0


# --- read-only checks ---------------------------------------------------------------------------


def cross_account_refusal(
    source_account: str | None, target_account: str | None, request: ExportLocation
) -> str | None:
    """Why a cross-account refresh cannot start as asked (None: it can).

    The export is written by the source account and read by the target's: when they differ,
    the bucket's owner must be named so the export (S3BucketOwner) and the import check it.
    """
    if not source_account or not target_account or source_account == target_account:
        return None
    if request.bucket_owner:
        return None
    return (
        f"--export-bucket-owner: the source is in account {source_account} and the target in "
        f"{target_account}; give the account that owns bucket {request.bucket} (see "
        "docs/import-refresh.md for its bucket policy)"
    )


class ImportPlan(BaseModel):
    """The read-only verdict: the source, the target spec, and warnings."""

    model_config = ConfigDict(extra="forbid")

    source: TableDescription
    spec: TargetSpec
    warnings: list[str] = Field(default_factory=list)


def check_import_refresh(
    source: TableLocation,
    target: TableLocation,
    options: ImportRefreshOptions,
    *,
    source_client: Any,
    target_client: Any,
    target_s3: Any,
) -> ImportPlan:
    """Every refusal of an import refresh, read-only (BadInputError naming the value)."""
    if table_exists(target_client, target.name):
        raise UnsafeTargetError(
            f"target {target.display()} exists: --via-import creates the target (ImportTable "
            "cannot write into an existing table); delete it first or copy without --via-import"
        )
    check = check_target(
        source, target, options.target, source_client=source_client, target_client=target_client
    )
    src = check.source
    if src.pitr is False:
        raise BadInputError(
            "--source: " + pitr_off_refusal(src.display(), "copy without --via-import")
        )
    if src.lsis:
        names = ", ".join(sorted(i["IndexName"] for i in src.lsis))
        raise BadInputError(
            f"source {src.display()} has local secondary indexes ({names}): ImportTable cannot "
            "create them; copy without --via-import"
        )
    problem = bucket_access_problem(target_s3, options.export)
    if problem:
        raise BadInputError(f"--export-bucket: {problem}; see docs/import-refresh.md")
    refusal = cross_account_refusal(
        account_of_location(source, location_region(source, source_client)),
        account_of_location(target, location_region(target, target_client)),
        options.export,
    )
    if refusal:
        raise BadInputError(refusal)
    warnings = [w for w in check.warnings if not w.startswith("a new on-demand target")]
    if src.pitr is None:
        warnings.append(
            f"source {src.display()}: point-in-time recovery could not be read; the export "
            "fails if it is off"
        )
    return ImportPlan(source=src, spec=check.spec, warnings=warnings)


# --- the ImportTable request --------------------------------------------------------------------


def import_client_token(export_arn: str, target: str) -> str:
    """The import's ClientToken: one import per (export, target table)."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"dynashift-import:{export_arn}:{target}"))


def import_request(
    spec: TargetSpec,
    target_name: str,
    manifest: ExportManifest,
    request: ExportLocation,
    *,
    client_token: str,
) -> dict[str, Any]:
    """ImportTable keyword arguments: the export's data files into a table built from `spec`."""
    create = spec.create_request(target_name)
    source: dict[str, Any] = {"S3Bucket": manifest.bucket, "S3KeyPrefix": data_prefix(manifest)}
    if request.bucket_owner:
        source["S3BucketOwner"] = request.bucket_owner
    return {
        "ClientToken": client_token,
        "S3BucketSource": source,
        "InputFormat": "DYNAMODB_JSON",
        "InputCompressionType": "GZIP",
        "TableCreationParameters": {k: create[k] for k in IMPORT_CREATION_KEYS if k in create},
    }


# --- waiting ------------------------------------------------------------------------------------


@contextlib.contextmanager
def _left_running(what: str, lookup: str) -> Iterator[None]:
    """On Ctrl-C, say that `what` keeps running (an AWS-side job) and how to look it up."""
    try:
        yield
    except KeyboardInterrupt:
        log.warning("interrupted: the %s keeps running; look it up with: %s", what, lookup)
        raise


def _pauses(longest: float, first: float = 0.1) -> Iterator[float]:
    """Seconds between two polls: from `first`, doubling up to `longest` (a small job is seen
    done at once, a long one is polled every `longest` seconds)."""
    pause = min(first, longest)
    while True:
        yield pause
        pause = min(pause * 2, longest)


def watch_export(
    client: Any,
    arn: str,
    options: ImportRefreshOptions,
    clock: Clock,
    progress: Progress,
) -> ExportStatus:
    """`export.wait_export` with growing pauses and a status line through `progress`; on
    Ctrl-C, log how to look the export up."""
    with _left_running("export", f"aws dynamodb describe-export --export-arn {arn}"):
        return wait_export(
            client,
            arn,
            timeout=options.timeout_seconds,
            clock=clock,
            pauses=_pauses(options.poll_seconds),
            on_poll=lambda status: progress.advance(0, note=f"export {status.status}"),
        )


def watch_import(
    client: Any,
    arn: str,
    options: ImportRefreshOptions,
    clock: Clock,
    progress: Progress,
) -> dict[str, Any]:
    """Poll DescribeImport until it is no longer IN_PROGRESS: its ImportTableDescription
    (RuntimeFailure after the timeout); on Ctrl-C, log how to look the import up."""
    deadline = clock.monotonic() + options.timeout_seconds
    lookup = f"aws dynamodb describe-import --import-arn {arn}"
    pause = _pauses(options.poll_seconds)
    with _left_running("import", lookup):
        while True:
            desc: dict[str, Any] = client.describe_import(ImportArn=arn)["ImportTableDescription"]
            status = desc.get("ImportStatus")
            if status not in ("IN_PROGRESS", "CANCELLING"):
                return desc
            progress.advance(
                0, note=f"import {status}, {int(desc.get('ProcessedItemCount') or 0)} items read"
            )
            if clock.monotonic() > deadline:
                raise RuntimeFailure(
                    f"import {arn} not done after {options.timeout_seconds:.0f}s ({lookup})"
                )
            clock.sleep(next(pause))


def _iso(epoch: float) -> str:
    return dt.datetime.fromtimestamp(epoch, dt.UTC).isoformat(timespec="seconds")


def _log_group(desc: dict[str, Any]) -> str:
    arn = str(desc.get("CloudWatchLogGroupArn") or "")
    if ":log-group:" in arn:
        return arn.split(":log-group:", 1)[1].removesuffix(":*")
    return DEFAULT_IMPORT_LOG_GROUP


def check_import_counts(desc: dict[str, Any], exported: int, target: str) -> None:
    """RuntimeFailure unless the import COMPLETED with no error and every exported item; the
    message names the CloudWatch log group where DynamoDB logged the lines it rejected."""
    status = desc.get("ImportStatus")
    errors = int(desc.get("ErrorCount") or 0)
    imported = int(desc.get("ImportedItemCount") or 0)
    where = f"CloudWatch log group {_log_group(desc)}"
    if status != "COMPLETED":
        raise RuntimeFailure(
            f"import {desc.get('ImportArn')} into {target} is {status}: "
            f"{desc.get('FailureCode') or ''} {desc.get('FailureMessage') or ''}".rstrip()
            + f" ({errors} item errors, logged in {where}); "
            f"delete {target}, if created, before retrying"
        )
    if errors:
        raise RuntimeFailure(
            f"import into {target}: {errors} items could not be imported (logged in {where}); "
            f"{imported} imported — delete {target} before trying again"
        )
    if imported != exported:
        raise RuntimeFailure(
            f"import into {target}: {imported} items imported, the export holds {exported} — "
            f"delete {target} before trying again"
        )


# --- the refresh --------------------------------------------------------------------------------


def import_refresh(
    source: TableLocation,
    target: TableLocation,
    options: ImportRefreshOptions,
    *,
    progress: Progress | None = None,
    clock: Clock = SYSTEM_CLOCK,
    clients: Clients = PROCESS_CLIENTS,
) -> ImportRefreshSummary:
    """Export `source`, import it as `target`, apply the settings, check parity; see module doc.

    `clients` gives each side's DynamoDB client and the target side's S3 client, which checks
    the bucket and reads the export's manifest (the import reads the same files with the same
    account).
    """
    progress = progress or NullProgress()
    started = clock.monotonic()
    source_client = clients(source).dynamodb()
    target_client = clients(target).dynamodb()
    target_s3 = clients(target).client("s3")

    plan = check_import_refresh(
        source,
        target,
        options,
        source_client=source_client,
        target_client=target_client,
        target_s3=target_s3,
    )

    export_arn = start_export(
        source_client, plan.source.arn, options.export, client_token=str(uuid.uuid4())
    )
    log.info("export of %s started: %s", source.display(), export_arn)
    export = watch_export(source_client, export_arn, options, clock, progress)
    if not export.manifest_key:
        raise RuntimeFailure(f"export {export_arn} is COMPLETED but names no manifest")
    manifest = read_manifest(target_s3, options.export.bucket, export.manifest_key)
    log.info(
        "export done: %s items under s3://%s/%s",
        export.item_count,
        manifest.bucket,
        data_prefix(manifest),
    )

    request = import_request(
        plan.spec,
        target.name,
        manifest,
        options.export,
        client_token=import_client_token(export_arn, target.name),
    )
    desc = target_client.import_table(**request)["ImportTableDescription"]
    import_arn = str(desc["ImportArn"])
    log.info("import into %s started: %s", target.display(), import_arn)
    desc = watch_import(target_client, import_arn, options, clock, progress)
    exported = manifest.item_count
    check_import_counts(desc, exported, target.display())

    applied = _converge(source, target, options, plan.spec, clock, progress, target_client)
    existing = describe_location(target, "target", target_client)
    progress.close()
    return ImportRefreshSummary(
        source=source.display(),
        target=target.display(),
        export_arn=export_arn,
        export_time=_iso(manifest.export_time),
        exported_items=exported,
        import_arn=import_arn,
        imported_items=int(desc.get("ImportedItemCount") or 0),
        processed_items=int(desc.get("ProcessedItemCount") or 0),
        error_count=int(desc.get("ErrorCount") or 0),
        settings_applied=applied,
        parity=compare_target(plan.spec, existing, options.target),
        warnings=plan.warnings,
        seconds=round(clock.monotonic() - started, 3),
    )


def table_updates(spec: TargetSpec, table: TableDescription) -> list[tuple[str, dict[str, Any]]]:
    """What CreateTable would have set from `spec` but ImportTable cannot, as UpdateTable calls
    (what each does, its arguments beside TableName); one setting a call, as AWS requires."""
    updates: list[tuple[str, dict[str, Any]]] = []
    if spec.table_class and table.table_class != spec.table_class:
        updates.append((f"set table class {spec.table_class}", {"TableClass": spec.table_class}))
    if spec.stream_view_type and table.stream_view_type != spec.stream_view_type:
        stream = {"StreamEnabled": True, "StreamViewType": spec.stream_view_type}
        updates.append(
            (f"enabled a {spec.stream_view_type} stream", {"StreamSpecification": stream})
        )
    if spec.deletion_protection and not table.deletion_protection:
        updates.append(("turned deletion protection on", {"DeletionProtectionEnabled": True}))
    return updates


def _converge(
    source: TableLocation,
    target: TableLocation,
    options: ImportRefreshOptions,
    spec: TargetSpec,
    clock: Clock,
    progress: Progress,
    target_client: Any,
) -> list[str]:
    """Apply what ImportTable cannot set, until the target is ready; what was done, in order.

    `poll_target` (created=True: TTL, PITR, tags, replicas — the steps `migrate` takes for a
    target it creates) waits for ACTIVE between steps; the `table_updates` computed once from
    the imported table's description are made whenever it is ready, one at a time.
    """
    deadline = clock.monotonic() + options.timeout_seconds
    pause = _pauses(options.poll_seconds)
    updates = table_updates(spec, describe_location(target, "target", target_client))
    applied: list[str] = []
    while True:
        result = poll_target(
            source, target, options.target, created=True, spec=spec, target_client=target_client
        )
        step = result.step
        if result.ready and not updates:
            return applied
        if result.ready:
            step, kwargs = updates.pop(0)
            target_client.update_table(TableName=target.name, **kwargs)
            log.info("target %s: %s", target.display(), step)
        if not step.startswith("waiting"):
            applied.append(step)
        progress.advance(0, note=step)
        if clock.monotonic() > deadline:
            raise RuntimeFailure(f"target {target.display()} not ready: {step}")
        if result.wait_seconds or result.ready:
            clock.sleep(next(pause))
