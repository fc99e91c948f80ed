"""Starting, measuring and stopping the replicator — the one thing the two runners do differently.

The replicator is a Lambda function fed by an event source mapping on the source stream
(`EventSourceMappingControl`), in AWS and in the local runner alike (there the mapping lives on
the runner's private server and `dynashift.workflow.esm` runs it). The workflow steps talk to it
through the `ReplicationControl` protocol.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from botocore.exceptions import ClientError

from dynashift.aws import Side, error_code
from dynashift.clock import SYSTEM_CLOCK, Clock
from dynashift.errors import BadInputError, RuntimeFailure, TransientError, WorkerDeadlineError
from dynashift.models import PROCESS_CLIENTS, Clients, MigrationSpec
from dynashift.readiness import dlq_depth
from dynashift.replication_progress import (
    ProgressChecker,
    ReadBudget,
    drain_mark,
    failed_records,
)
from dynashift.state import StateStore, state_store
from dynashift.workflow.types import (
    LagStatus,
    ReplicationControl,  # noqa: F401  (re-exported)
)

#: Event source mapping settings of the replicator (documented in docs/workflow.md).
ESM_BATCH_SIZE = 100
ESM_BATCHING_WINDOW_SECONDS = 1
ESM_MAX_RETRY_ATTEMPTS = 10
ESM_PARALLELIZATION_FACTOR = 1


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
    clock: Clock = SYSTEM_CLOCK,
) -> LagStatus:
    """Read-only probe against per-shard checkpoints (the local follower's `shard#` records):
    is there a record after each shard's checkpoint written before `since`? One
    GetRecords(Limit=1) per shard. The workflow no longer uses it: lag and drain are read from
    the replicator's progress records (`progress_lag`, `progress_drain`), which the Lambda
    replicator writes too (it has no shard ids, hence no checkpoints).
    """
    cutoff = since.timestamp() if since else clock.wall()
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
    age = max(0.0, clock.wall() - oldest) if oldest else None
    return LagStatus(
        caught_up=behind == 0,
        records_behind=None if behind == 0 else behind,
        age_seconds=0.0 if behind == 0 else age,
        detail=f"{behind} shard(s) with unapplied records" if behind else "caught up",
    )


# --- lag and drain from the replicator's own progress records (AWS and local alike) -------------


def progress_lag(
    checker: ProgressChecker,
    since: datetime | None = None,
    *,
    clock: Clock = SYSTEM_CLOCK,
) -> LagStatus:
    """Whether every record created at or before `since` (default: the stream's clock now) has
    been applied, from one check of the replicator's progress records."""
    report = checker.check()
    cutoff = since.timestamp() if since is not None else report.stream_now
    behind = report.behind(cutoff)
    # Under a writer that never pauses no shard is ever caught up "now"; the age of the oldest
    # unapplied record seen is the lag the checklist compares with its threshold.
    age = 0.0 if not behind else report.age_seconds(clock.wall())
    return LagStatus(
        caught_up=not behind,
        records_behind=report.records_behind if behind else 0,
        age_seconds=age,
        failed_records=failed_records(checker.state, checker.stream_arn),
        detail=report.describe_behind(cutoff),
    )


def progress_drain(
    checker: ProgressChecker,
    *,
    timeout: float,
    clock: Clock = SYSTEM_CLOCK,
) -> LagStatus:
    """One drain check. The first call of a migration's drain records when it began by the
    stream's own clock (`drain_mark`, saved in the state store so every later call — another
    Lambda invocation — measures from the same moment) and forgets the walks' tips, so a tip
    counts only if it was read after the drain began.

    Drained when every shard, rediscovered by this check, is closed and fully applied, has had
    a record created after the mark applied (or its first unapplied record was created after
    it), or was read to its tip (EMPTY_PAGES_AT_TIP empty pages) after the mark. Raises
    WorkerDeadlineError naming the shards behind once `timeout` seconds have passed.
    """
    state = checker.state
    meta = state.get_meta() or {}
    mark = meta.get("drain_mark")
    started = meta.get("drain_started")
    if mark is None or started is None:
        mark = drain_mark(checker.streams, checker.stream_arn) or clock.wall()
        started = clock.wall()
        for sid, data in state.walks().items():
            if data.get("stream") == checker.stream_arn and not data.get("done"):
                state.save_walk(sid, {**data, "empty_pages": 0, "checked_at": 0.0})
        state.put_meta(drain_mark=mark, drain_started=started)
    report = checker.check()
    behind = report.behind(float(mark))
    failed = failed_records(state, checker.stream_arn)
    if not behind:
        return LagStatus(
            caught_up=True,
            records_behind=0,
            age_seconds=0.0,
            failed_records=failed,
            detail=f"drained: {len(report.shards)} shard(s) applied past the drain's start",
        )
    detail = report.describe_behind(float(mark))
    if clock.wall() - float(started) > timeout:
        raise WorkerDeadlineError(f"drain did not finish within {timeout:g}s: {detail}")
    return LagStatus(
        caught_up=False,
        records_behind=report.records_behind,
        age_seconds=report.age_seconds(clock.wall()),
        failed_records=failed,
        detail=detail,
    )


def reset_drain(state: StateStore) -> None:
    """Forget a previous drain's start (a (re)started replicator drains from a new mark)."""
    meta = state.get_meta() or {}
    if meta.get("drain_mark") is not None or meta.get("drain_started") is not None:
        state.put_meta(drain_mark=None, drain_started=None)


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
        streams_client: Callable[[MigrationSpec], Any] | None = None,
        sqs_client: Any = None,
        dlq_url: str | None = None,
        budget: ReadBudget | None = None,
        drain_timeout: float = 900.0,
        clients: Clients = PROCESS_CLIENTS,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        self.lambda_client = lambda_client
        self.function_name = function_name
        self.dlq_arn = dlq_arn
        #: The source's DynamoDB Streams client of a migration (default: from `clients`).
        self.streams_client = streams_client or (lambda spec: clients(spec.source).streams())
        self.sqs_client = sqs_client
        self.dlq_url = dlq_url
        self.budget = budget or ReadBudget()
        self.drain_timeout = drain_timeout
        self.clients = clients
        self.clock = clock

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

    def _dlq_messages(self) -> int | None:
        """Messages on the replicator's DLQ, counted whole (None: no DLQ configured)."""
        if not (self.sqs_client and self.dlq_url):
            return None
        return dlq_depth(self.sqs_client, self.dlq_url)

    def _checker(self, spec: MigrationSpec) -> ProgressChecker:
        return ProgressChecker(
            self.streams_client(spec),
            state_store(spec, self.clients),
            self._stream_arn(spec),
            budget=self.budget,
            clock=self.clock,
        )

    def lag(self, spec: MigrationSpec, since: datetime | None = None) -> LagStatus:
        """From the replicator's progress records (see dynashift.replication_progress)."""
        status = progress_lag(self._checker(spec), since, clock=self.clock)
        return status.model_copy(update={"dlq_messages": self._dlq_messages()})

    def drain(self, spec: MigrationSpec, since: datetime | None = None) -> LagStatus:
        """One drain check (the state machine waits `poll_seconds` between calls); `since` is
        ignored: the drain's start is recorded by its first call (see `progress_drain`)."""
        status = progress_drain(self._checker(spec), timeout=self.drain_timeout, clock=self.clock)
        return status.model_copy(update={"dlq_messages": self._dlq_messages()})

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
        meta = state_store(spec, self.clients).get_meta() or {}
        arn = meta.get("stream_arn")
        if not arn:
            raise BadInputError(f"migration {spec.migration_id}: no stream recorded; start first")
        return str(arn)


# --- what the handlers use (in AWS and in the local runner alike) ----------------------------


def aws_control(clients: Clients = PROCESS_CLIENTS) -> EventSourceMappingControl:
    """The event source mapping of the stack's replicator function, from the function's
    environment (DYNASHIFT_REPLICATOR_FUNCTION, DYNASHIFT_DLQ_ARN, DYNASHIFT_DLQ_URL); the
    source's stream, the state table and the function's own region are reached through
    `clients`."""
    from dynashift.settings import lambda_settings

    settings = lambda_settings()
    function = settings.require(settings.replicator_function, "DYNASHIFT_REPLICATOR_FUNCTION")
    own = clients.for_side(Side(region=settings.region))
    return EventSourceMappingControl(
        own.client("lambda"),
        function,
        dlq_arn=settings.dlq_arn,
        sqs_client=own.client("sqs") if settings.dlq_url else None,
        dlq_url=settings.dlq_url,
        clients=clients,
    )


def notifier(clients: Clients = PROCESS_CLIENTS) -> tuple[Any, str | None]:
    """(SNS client, topic ARN) for reports; (None, None) without a topic."""
    from dynashift.settings import lambda_settings

    settings = lambda_settings()
    if not settings.sns_topic_arn:
        return None, None
    sns = clients.for_side(Side(region=settings.region)).client("sns")
    return sns, settings.sns_topic_arn
