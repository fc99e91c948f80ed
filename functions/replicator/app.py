"""Replicator Lambda: a DynamoDB stream batch in, the same changes in the target table out.

A thin adapter over `dynashift.replicator.Replicator`: the engine applies the whole batch in
order and stops at the first record it cannot apply; Powertools' batch processor then reports
that record and every later one as failed (`batchItemFailures`), so the event source mapping
(ReportBatchItemFailures) retries from the first failure and order is kept. When every record
failed, Powertools raises and the whole batch is retried (bisected when BisectBatchOnFunctionError
is on).

Progress: the engine records the applied prefix of every batch (and the first failed record) in
the state store (`dynashift.replication_progress.record_batch`, called by `Replicator.apply`).
A stream event carries no shard id, so these records — not per-shard checkpoints — are what
the workflow's lag, catch-up and drain checks read (docs/replicator.md).

Configuration comes from `dynashift.settings.lambda_settings()` (environment set by the
template / the workflow): DYNASHIFT_MIGRATION_ID, DYNASHIFT_STATE_TABLE, DYNASHIFT_TARGET_TABLE
and optionally DYNASHIFT_TARGET_REGION, DYNASHIFT_TARGET_ROLE_ARN, DYNASHIFT_TARGET_EXTERNAL_ID,
DYNASHIFT_TARGET_ENDPOINT_URL, DYNASHIFT_ENDPOINT_URL (state store), DYNASHIFT_VERSION_ATTRIBUTE,
DYNASHIFT_SKIP_TTL_DELETES.
"""

from __future__ import annotations

import functools
from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.batch import (
    BatchProcessor,
    EventType,
    process_partial_response,
)
from aws_lambda_powertools.utilities.data_classes.dynamo_db_stream_event import DynamoDBRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

from dynashift.aws import Side
from dynashift.errors import BadInputError
from dynashift.models import PROCESS_CLIENTS, Clients, TableLocation
from dynashift.replicator import ApplyResult, RecordNotAppliedError, Replicator
from dynashift.settings import LambdaSettings, lambda_settings
from dynashift.state import StateStore
from dynashift.tables import describe_table, table_keys

logger = Logger(service="dynashift-replicator")
metrics = Metrics(namespace="dynashift", service="replicator")
processor = BatchProcessor(event_type=EventType.DynamoDBStreams)


def _required(value: str | None, env_name: str) -> str:
    if not value:
        raise BadInputError(f"{env_name} is not set: the replicator cannot run without it")
    return value


def build_replicator(settings: LambdaSettings, clients: Clients = PROCESS_CLIENTS) -> Replicator:
    """The engine for this function's configuration (one per cold start)."""
    migration_id = _required(settings.migration_id, "DYNASHIFT_MIGRATION_ID")
    state_table = _required(settings.state_table, "DYNASHIFT_STATE_TABLE")
    target = TableLocation(
        name=_required(settings.target_table, "DYNASHIFT_TARGET_TABLE"),
        side=Side(
            region=settings.target_region or settings.region,
            role_arn=settings.target_role_arn,
            external_id=settings.target_external_id,
            endpoint_url=settings.target_endpoint_url or settings.endpoint_url,
        ),
    )
    state_side = Side(region=settings.region, endpoint_url=settings.endpoint_url)
    state = StateStore(clients.for_side(state_side).dynamodb(), state_table, migration_id)
    keys = table_keys(describe_table(clients(target).dynamodb(), target.name, "target"))
    logger.append_keys(migration_id=migration_id, target_table=target.display())
    return Replicator(
        target,
        keys,
        state=state,
        version_attribute=settings.version_attribute,
        skip_ttl_deletes=settings.skip_ttl_deletes,
        clients=clients,
    )


@functools.cache
def replicator() -> Replicator:
    return build_replicator(lambda_settings())


def _record_metrics(engine: Replicator, result: ApplyResult, failed: int) -> None:
    counts = {
        "RecordsApplied": result.applied,
        "Puts": result.puts,
        "Deletes": result.deletes,
        "Tombstones": result.tombstones,
        "SkippedTtlDeletes": result.skipped_ttl,
        "SkippedStale": result.skipped_stale,
        "Coalesced": result.coalesced,
        "Failures": failed,
    }
    for name, value in counts.items():
        metrics.add_metric(name=name, unit=MetricUnit.Count, value=value)
    age = engine.age_seconds(result)
    if age is not None:
        metrics.add_metric(name="NewestRecordAgeSeconds", unit=MetricUnit.Seconds, value=age)


@metrics.log_metrics
@logger.inject_lambda_context
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    engine = replicator()
    records = event.get("Records") or []
    result = engine.apply(records)
    first_failed = len(records) if result.failed_index is None else result.failed_index
    not_applied = {
        (r.get("dynamodb") or {}).get("SequenceNumber"): r for r in records[first_failed:]
    }
    _record_metrics(engine, result, len(not_applied))
    if result.failed_index is not None:
        logger.warning(
            "batch stopped at the first failed record; it and every later record are reported",
            extra={
                "failed_index": result.failed_index,
                "failed_sequence": (records[first_failed].get("dynamodb") or {}).get(
                    "SequenceNumber"
                ),
                "reported_failed": len(not_applied),
                "error": result.error,
            },
        )

    def record_handler(record: DynamoDBRecord) -> None:
        if record.dynamodb is not None and record.dynamodb.sequence_number in not_applied:
            raise RecordNotAppliedError(
                f"sequence {record.dynamodb.sequence_number} not applied: "
                f"batch stopped at record {result.failed_index} ({result.error})"
            )

    response = process_partial_response(
        event=event, record_handler=record_handler, processor=processor, context=context
    )
    return dict(response)
