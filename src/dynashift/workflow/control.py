"""Starting, measuring and stopping the replicator — the one thing the two runners do differently.

The replicator is a Lambda function fed by an event source mapping on the source stream
(`EventSourceMappingControl`), in AWS and in the local runner alike (there the mapping lives on
the runner's private server and `dynashift.workflow.esm` runs it). The workflow steps talk to it
through the `ReplicationControl` protocol.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any, Protocol

from botocore.exceptions import ClientError
from pydantic import BaseModel

from dynashift.aws import error_code
from dynashift.errors import BadInputError, RuntimeFailure, TransientError
from dynashift.models import MigrationSpec

#: Event source mapping settings of the replicator (documented in docs/workflow.md).
ESM_BATCH_SIZE = 100
ESM_BATCHING_WINDOW_SECONDS = 1
ESM_MAX_RETRY_ATTEMPTS = 10
ESM_PARALLELIZATION_FACTOR = 1


class LagStatus(BaseModel):
    """How far the replicator is behind the source stream."""

    #: Every record written to the stream before `since` (or before now) has been applied.
    caught_up: bool
    #: The caller waited long enough; go on and let the readiness checklist report the lag.
    give_up: bool = False
    records_behind: int | None = None
    age_seconds: float | None = None
    #: Records the replicator could not apply.
    failed_records: int = 0
    #: Messages on the replicator's dead-letter queue (None: no DLQ, a local run).
    dlq_messages: int | None = None
    detail: str = ""


class ReplicationControl(Protocol):
    """What the workflow needs from a replicator, wherever it runs."""

    def start(self, spec: MigrationSpec, stream_arn: str) -> dict[str, Any]:
        """Start applying the stream from TRIM_HORIZON (or the checkpoints). Idempotent."""
        ...

    def lag(self, spec: MigrationSpec, since: datetime | None = None) -> LagStatus:
        """Whether everything written before `since` (default: now) has been applied."""
        ...

    def drain(self, spec: MigrationSpec, since: datetime | None = None) -> LagStatus:
        """Like `lag`, but may block a while to apply the remaining records."""
        ...

    def stop(self, spec: MigrationSpec) -> dict[str, Any]:
        """Stop applying the stream. Idempotent."""
        ...


def _timestamp(value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        return value.timestamp()
    return float(value)


def stream_backlog(
    streams_client: Any,
    stream_arn: str,
    checkpoints: Mapping[str, str],
    since: datetime | None = None,
    *,
    now: Callable[[], float] = time.time,
) -> LagStatus:
    """Read-only lag probe: is there a record after each shard's checkpoint written before
    `since`? One GetRecords(Limit=1) per shard; shards without a checkpoint are read from
    TRIM_HORIZON. Used where the replicator runs elsewhere (Lambda) and only its checkpoints
    in the state store are visible.
    """
    cutoff = since.timestamp() if since else now()
    shards: list[dict[str, Any]] = []
    kwargs: dict[str, Any] = {"StreamArn": stream_arn}
    for _ in range(1000):
        desc = streams_client.describe_stream(**kwargs)["StreamDescription"]
        shards.extend(desc.get("Shards", []))
        last = desc.get("LastEvaluatedShardId")
        if not last:
            break
        kwargs["ExclusiveStartShardId"] = last
    oldest: float | None = None
    behind = 0
    for shard in shards:
        shard_id = shard["ShardId"]
        seq = checkpoints.get(shard_id)
        it_kwargs: dict[str, Any] = {"StreamArn": stream_arn, "ShardId": shard_id}
        if seq:
            it_kwargs.update(ShardIteratorType="AFTER_SEQUENCE_NUMBER", SequenceNumber=seq)
        else:
            it_kwargs["ShardIteratorType"] = "TRIM_HORIZON"
        try:
            iterator = streams_client.get_shard_iterator(**it_kwargs).get("ShardIterator")
            records = (
                streams_client.get_records(ShardIterator=iterator, Limit=1).get("Records", [])
                if iterator
                else []
            )
        except ClientError as exc:
            if error_code(exc) in ("TrimmedDataAccessException", "ResourceNotFoundException"):
                continue
            raise
        if not records:
            continue
        created = _timestamp(records[0].get("dynamodb", {}).get("ApproximateCreationDateTime"))
        if created is None or created <= cutoff:
            behind += 1
            oldest = created if oldest is None or (created and created < oldest) else oldest
    age = max(0.0, now() - oldest) if oldest else None
    return LagStatus(
        caught_up=behind == 0,
        records_behind=None if behind == 0 else behind,
        age_seconds=0.0 if behind == 0 else age,
        detail=f"{behind} shard(s) with unapplied records" if behind else "caught up",
    )


class EventSourceMappingControl:
    """The replicator in AWS: an event source mapping from the source stream to the replicator
    Lambda (TRIM_HORIZON, partial batch responses, bisect on error, SQS on-failure destination).
    """

    def __init__(
        self,
        lambda_client: Any,
        function_name: str,
        *,
        dlq_arn: str | None,
        streams_client: Callable[[MigrationSpec], Any],
        checkpoints: Callable[[MigrationSpec], Mapping[str, str]],
        sqs_client: Any = None,
        dlq_url: str | None = None,
    ) -> None:
        self.lambda_client = lambda_client
        self.function_name = function_name
        self.dlq_arn = dlq_arn
        self.streams_client = streams_client
        self.checkpoints = checkpoints
        self.sqs_client = sqs_client
        self.dlq_url = dlq_url

    def _mappings(self, stream_arn: str | None) -> list[dict[str, Any]]:
        kwargs: dict[str, Any] = {"FunctionName": self.function_name}
        if stream_arn:
            kwargs["EventSourceArn"] = stream_arn
        return list(
            self.lambda_client.list_event_source_mappings(**kwargs).get("EventSourceMappings", [])
        )

    def start(self, spec: MigrationSpec, stream_arn: str) -> dict[str, Any]:
        existing = self._mappings(stream_arn)
        if len(existing) > 1:  # two appliers of one stream could interleave a key's writes
            raise RuntimeFailure(
                f"{len(existing)} event source mappings feed {self.function_name} from "
                f"{stream_arn}; at most one replicator may apply a migration's stream: delete "
                f"all but one ({', '.join(sorted(m['UUID'] for m in existing))})"
            )
        if existing:
            mapping = existing[0]
            if mapping.get("State") in ("Disabled", "Disabling"):
                self.lambda_client.update_event_source_mapping(UUID=mapping["UUID"], Enabled=True)
            return {"mapping": mapping["UUID"], "created": False}
        kwargs: dict[str, Any] = {
            "EventSourceArn": stream_arn,
            "FunctionName": self.function_name,
            "StartingPosition": "TRIM_HORIZON",
            "BatchSize": ESM_BATCH_SIZE,
            "MaximumBatchingWindowInSeconds": ESM_BATCHING_WINDOW_SECONDS,
            "ParallelizationFactor": ESM_PARALLELIZATION_FACTOR,
            "BisectBatchOnFunctionError": True,
            "MaximumRetryAttempts": ESM_MAX_RETRY_ATTEMPTS,
            "MaximumRecordAgeInSeconds": -1,
            "FunctionResponseTypes": ["ReportBatchItemFailures"],
            "Enabled": True,
        }
        if self.dlq_arn:
            kwargs["DestinationConfig"] = {"OnFailure": {"Destination": self.dlq_arn}}
        try:
            mapping = self.lambda_client.create_event_source_mapping(**kwargs)
        except ClientError as exc:
            if error_code(exc) == "ResourceConflictException":
                raise TransientError(f"event source mapping is being changed: {exc}") from exc
            if error_code(exc) == "InvalidParameterValueException":
                raise BadInputError(f"cannot map {stream_arn} to the replicator: {exc}") from exc
            raise
        return {"mapping": mapping["UUID"], "created": True}

    def _failed_records(self) -> int | None:
        if not (self.sqs_client and self.dlq_url):
            return None
        attrs = self.sqs_client.get_queue_attributes(
            QueueUrl=self.dlq_url, AttributeNames=["ApproximateNumberOfMessages"]
        )["Attributes"]
        return int(attrs.get("ApproximateNumberOfMessages", 0))

    def lag(self, spec: MigrationSpec, since: datetime | None = None) -> LagStatus:
        meta_arn = self._stream_arn(spec)
        status = stream_backlog(self.streams_client(spec), meta_arn, self.checkpoints(spec), since)
        return status.model_copy(update={"dlq_messages": self._failed_records()})

    def drain(self, spec: MigrationSpec, since: datetime | None = None) -> LagStatus:
        return self.lag(spec, since)

    def stop(self, spec: MigrationSpec) -> dict[str, Any]:
        stopped = []
        for mapping in self._mappings(self._stream_arn(spec)):
            try:
                self.lambda_client.delete_event_source_mapping(UUID=mapping["UUID"])
            except ClientError as exc:
                if error_code(exc) != "ResourceNotFoundException":
                    raise
            stopped.append(mapping["UUID"])
        return {"stopped": stopped}

    def _stream_arn(self, spec: MigrationSpec) -> str:
        from dynashift.workflow.steps import state_store

        meta = state_store(spec).get_meta() or {}
        arn = meta.get("stream_arn")
        if not arn:
            raise BadInputError(f"migration {spec.migration_id}: no stream recorded; start first")
        return str(arn)


# --- what the handlers use (in AWS and in the local runner alike) ----------------------------


def aws_control() -> EventSourceMappingControl:
    """The event source mapping of the stack's replicator function, from the function's
    environment (DYNASHIFT_REPLICATOR_FUNCTION, DYNASHIFT_DLQ_ARN, DYNASHIFT_DLQ_URL)."""
    import boto3

    from dynashift.settings import lambda_settings
    from dynashift.workflow.steps import state_store

    settings = lambda_settings()
    function = settings.require(settings.replicator_function, "DYNASHIFT_REPLICATOR_FUNCTION")
    return EventSourceMappingControl(
        boto3.client("lambda", region_name=settings.region),
        function,
        dlq_arn=settings.dlq_arn,
        streams_client=lambda spec: spec.source.clients().streams(),
        checkpoints=lambda spec: state_store(spec).shard_checkpoints(),
        sqs_client=boto3.client("sqs", region_name=settings.region) if settings.dlq_url else None,
        dlq_url=settings.dlq_url,
    )


def notifier() -> tuple[Any, str | None]:
    """(SNS client, topic ARN) for reports; (None, None) without a topic."""
    import boto3

    from dynashift.settings import lambda_settings

    settings = lambda_settings()
    if not settings.sns_topic_arn:
        return None, None
    return boto3.client("sns", region_name=settings.region), settings.sns_topic_arn
