"""Event source mappings of the private server, run the way Lambda runs them.

Size: one module because the moto patch that stores a mapping (and signals each change), the
delivery rules of a mapping and the pollers that run it are one mechanism: a mapping's life.

The replication step creates, lists, updates and deletes the replicator's event source mapping
through the Lambda API (`EventSourceMappingControl`), locally against the runner's private moto
server as in AWS. moto's own DynamoDB-stream mapping would invoke the function synchronously
inside each write and needs the table in moto's own backend, so `store_only_stream_mappings`
makes moto only store a stream mapping, and `EventSourceMappingEmulator` does what Lambda's
poller does for every enabled one:

- reads the source stream with the stream follower's shard discovery, parent-before-child
  lineage and iterator handling (`dynashift.follower.StreamFollower`), from TRIM_HORIZON (the
  only starting position the replicator uses), `BatchSize` records at most per batch, one
  shard per batch;
- waits up to `MaximumBatchingWindowInSeconds` for a batch to fill;
- invokes the function with `{"Records": [...]}` in Lambda's record shape (no shard id);
- with `ReportBatchItemFailures`, a `batchItemFailures` answer is retried from the lowest failed
  sequence number (an unknown identifier fails the whole batch, as in Lambda);
- a function error retries the whole batch, split in halves first when
  `BisectBatchOnFunctionError` is on;
- after `MaximumRetryAttempts` retries (-1: until it succeeds) the failed records' batch info
  goes to the `DestinationConfig.OnFailure` SQS queue and the shard moves on;
- records are delivered at least once; deleting or disabling the mapping stops its poller.
"""

from __future__ import annotations

import json
import logging
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from dynashift.clock import SYSTEM_CLOCK, Clock
from dynashift.follower import Delivery, Record, StreamFollower
from dynashift.retry import Backoff

log = logging.getLogger("dynashift.workflow")

#: (function ARN or name, event) -> (payload JSON text, function error?)
Invoke = Callable[[str, dict[str, Any]], tuple[str, bool]]


def is_stream_arn(arn: str) -> bool:
    return ":dynamodb:" in arn and "/stream/" in arn


# --- moto: store stream mappings, do not run them ----------------------------------------------

#: Bumped whenever a mapping of the patched backend is created, updated or deleted: the
#: emulators wake on it (`_changes`) instead of listing the mappings on a short timer.
_changes = threading.Condition()
_generation = 0


def _mappings_changed() -> None:
    global _generation  # noqa: PLW0603 (one counter for the process's moto backend)
    with _changes:
        _generation += 1
        _changes.notify_all()


def store_only_stream_mappings() -> Callable[[], None]:
    """Patch moto's Lambda backend so that a DynamoDB-stream mapping is only stored (the
    emulator runs it), and so that every change of a mapping wakes the emulators. Returns the
    function that undoes the patch."""
    from moto.awslambda.models import EventSourceMapping, LambdaBackend
    from moto.core.exceptions import JsonRESTError

    original = LambdaBackend.create_event_source_mapping
    original_update = LambdaBackend.update_event_source_mapping
    original_delete = LambdaBackend.delete_event_source_mapping

    def update(self: Any, uuid: str, spec: dict[str, Any]) -> Any:
        try:
            return original_update(self, uuid, spec)
        finally:
            _mappings_changed()

    def delete(self: Any, uuid: str) -> Any:
        try:
            return original_delete(self, uuid)
        finally:
            _mappings_changed()

    def create(self: Any, spec: dict[str, Any]) -> Any:
        source = str(spec.get("EventSourceArn") or "")
        if not is_stream_arn(source):
            return original(self, spec)
        try:
            return _store(self, source, spec)
        finally:
            _mappings_changed()

    def _store(self: Any, source: str, spec: dict[str, Any]) -> Any:
        if not spec.get("FunctionName"):
            raise JsonRESTError("InvalidParameterValueException", "Missing FunctionName")
        func = self._lambdas.get_function_by_name_or_arn_with_qualifier(spec["FunctionName"])
        for existing in self._event_source_mappings.values():
            if existing.event_source_arn == source and existing.function_arn == func.function_arn:
                raise JsonRESTError(
                    "ResourceConflictException",
                    f"An event source mapping with {source} and function "
                    f"{spec['FunctionName']} already exists. Please update or delete the "
                    f"existing mapping with UUID {existing.uuid}",
                )
        spec = {**spec, "RegionName": self.region_name, "AccountId": self.account_id}
        spec["FunctionArn"] = func.function_arn
        esm = EventSourceMapping(spec)  # type: ignore[abstract]
        self._event_source_mappings[esm.uuid] = esm
        return esm

    LambdaBackend.create_event_source_mapping = create  # type: ignore[method-assign]
    LambdaBackend.update_event_source_mapping = update  # type: ignore[method-assign]
    LambdaBackend.delete_event_source_mapping = delete  # type: ignore[method-assign]

    def undo() -> None:
        LambdaBackend.create_event_source_mapping = original  # type: ignore[method-assign]
        LambdaBackend.update_event_source_mapping = original_update  # type: ignore[method-assign]
        LambdaBackend.delete_event_source_mapping = original_delete  # type: ignore[method-assign]

    return undo


# --- one mapping ---------------------------------------------------------------------------------


@dataclass
class MappingConfig:
    uuid: str
    function: str
    stream_arn: str
    batch_size: int = 100
    window_seconds: float = 0.0
    max_retry_attempts: int = -1
    bisect: bool = False
    report_item_failures: bool = False
    on_failure: str | None = None

    @classmethod
    def from_api(cls, mapping: dict[str, Any]) -> MappingConfig:
        destination = ((mapping.get("DestinationConfig") or {}).get("OnFailure") or {}).get(
            "Destination"
        )
        retries = mapping.get("MaximumRetryAttempts")
        return cls(
            uuid=str(mapping["UUID"]),
            function=str(mapping["FunctionArn"]),
            stream_arn=str(mapping["EventSourceArn"]),
            batch_size=int(mapping.get("BatchSize") or 100),
            window_seconds=float(mapping.get("MaximumBatchingWindowInSeconds") or 0),
            max_retry_attempts=-1 if retries is None else int(retries),
            bisect=bool(mapping.get("BisectBatchOnFunctionError")),
            report_item_failures="ReportBatchItemFailures"
            in (mapping.get("FunctionResponseTypes") or []),
            on_failure=str(destination) if destination else None,
        )


@dataclass
class _ShardState:
    #: (first sequence of the failing range, failed invocations of it)
    attempts: tuple[str | None, int] = (None, 0)
    #: A smaller batch after a bisected function error.
    limit: int | None = None
    #: (first sequence, first seen) of a batch waiting for its batching window.
    waiting: tuple[str | None, float] = (None, 0.0)


@dataclass
class MappingStats:
    invocations: int = 0
    records_delivered: int = 0
    function_errors: int = 0
    partial_failures: int = 0
    sent_to_destination: int = 0
    batches: list[list[Record]] = field(default_factory=list)


class MappingDelivery:
    """Lambda's delivery of one mapping's batches (see module docstring): a `BatchInvoker`."""

    def __init__(
        self,
        config: MappingConfig,
        invoke: Invoke,
        *,
        send_to_destination: Callable[[str, dict[str, Any]], None] | None = None,
        clock: Clock = SYSTEM_CLOCK,
        keep_batches: int = 0,
    ) -> None:
        self.config = config
        self.invoke = invoke
        self.send_to_destination = send_to_destination
        self.clock = clock
        self.keep_batches = keep_batches
        self.stats = MappingStats()
        self._shards: dict[str, _ShardState] = {}

    def deliver(self, shard_id: str, events: list[Record]) -> Delivery:
        state = self._shards.setdefault(shard_id, _ShardState())
        first = _seq(events[0])
        if self._waiting(state, first, len(events)):
            return Delivery(0)
        batch = events[: state.limit] if state.limit else events
        payload, function_error = self.invoke(self.config.function, {"Records": batch})
        self.stats.invocations += 1
        if self.keep_batches and len(self.stats.batches) < self.keep_batches:
            self.stats.batches.append(batch)
        if function_error:
            self.stats.function_errors += 1
            log.warning("mapping %s: function error on %d records", self.config.uuid, len(batch))
            return self._failed(state, shard_id, batch, 0, bisect=True)
        failed_at = self._first_failure(payload, batch)
        if failed_at is not None:
            self.stats.partial_failures += 1
            return self._failed(state, shard_id, batch, failed_at, bisect=False)
        state.attempts, state.limit = (None, 0), None
        self.stats.records_delivered += len(batch)
        return Delivery(len(batch))

    def _waiting(self, state: _ShardState, first: str, size: int) -> bool:
        window = self.config.window_seconds
        if window <= 0 or size >= self.config.batch_size or state.limit:
            state.waiting = (None, 0.0)
            return False
        now = self.clock.monotonic()
        if state.waiting[0] != first:
            state.waiting = (first, now)
        if now - state.waiting[1] < window:
            return True
        state.waiting = (None, 0.0)
        return False

    def _first_failure(self, payload: str, batch: list[Record]) -> int | None:
        """Index of the lowest failed record (`batchItemFailures`), 0 for an answer Lambda
        treats as a whole-batch failure, None when the batch succeeded."""
        if not self.config.report_item_failures:
            return None
        try:
            response = json.loads(payload or "null")
        except ValueError:
            return None
        if not isinstance(response, dict):
            return None
        failures = response.get("batchItemFailures")
        if not failures:
            return None
        index = {_seq(r): i for i, r in enumerate(batch)}
        found = []
        for failure in failures:
            ident = failure.get("itemIdentifier") if isinstance(failure, dict) else None
            if not ident or str(ident) not in index:
                return 0  # Lambda: an invalid identifier fails the whole batch
            found.append(index[str(ident)])
        return min(found)

    def _failed(
        self, state: _ShardState, shard_id: str, batch: list[Record], at: int, *, bisect: bool
    ) -> Delivery:
        first = _seq(batch[at])
        count = state.attempts[1] + 1 if state.attempts[0] == first else 1
        state.attempts = (first, count)
        limit = self.config.max_retry_attempts
        if limit >= 0 and count > limit:
            self._give_up(shard_id, batch[at:], count)
            state.attempts, state.limit = (None, 0), None
            return Delivery(len(batch))
        if bisect and self.config.bisect and len(batch) - at > 1:
            state.limit = max(1, (len(batch) - at) // 2)
        return Delivery(at, failed=True)

    def _give_up(self, shard_id: str, records: list[Record], invocations: int) -> None:
        self.stats.sent_to_destination += len(records)
        log.error(
            "mapping %s: %d records of shard %s failed %d times; sent to the on-failure "
            "destination",
            self.config.uuid,
            len(records),
            shard_id,
            invocations,
        )
        if not (self.config.on_failure and self.send_to_destination):
            return
        body = records[0]["dynamodb"], records[-1]["dynamodb"]
        message = {
            "requestContext": {
                "requestId": str(uuid.uuid4()),
                "functionArn": self.config.function,
                "condition": "RetryAttemptsExhausted",
                "approximateInvokeCount": invocations,
            },
            "responseContext": {
                "statusCode": 200,
                "executedVersion": "$LATEST",
                "functionError": "Unhandled",
            },
            "version": "1.0",
            "timestamp": datetime.fromtimestamp(self.clock.wall(), UTC).isoformat(
                timespec="milliseconds"
            ),
            "DDBStreamBatchInfo": {
                "shardId": shard_id,
                "startSequenceNumber": body[0].get("SequenceNumber"),
                "endSequenceNumber": body[1].get("SequenceNumber"),
                "approximateArrivalOfFirstRecord": _iso(body[0]),
                "approximateArrivalOfLastRecord": _iso(body[1]),
                "batchSize": len(records),
                "streamArn": self.config.stream_arn,
            },
        }
        self.send_to_destination(self.config.on_failure, message)


def _seq(record: Record) -> str:
    return str(record["dynamodb"]["SequenceNumber"])


def _iso(body: dict[str, Any]) -> str | None:
    created = body.get("ApproximateCreationDateTime")
    if created is None:
        return None
    return datetime.fromtimestamp(float(created), UTC).isoformat(timespec="milliseconds")


class MappingPoller:
    """The poller of one enabled mapping: a stream follower feeding `MappingDelivery`."""

    def __init__(
        self,
        config: MappingConfig,
        streams_client: Any,
        delivery: MappingDelivery,
        *,
        on_checkpoint: Callable[[str, str, str], None] | None = None,
    ) -> None:
        self.config = config
        self.delivery = delivery
        checkpoint = (
            (lambda shard, seq: on_checkpoint(config.stream_arn, shard, seq))
            if on_checkpoint
            else None
        )
        self.follower = StreamFollower(
            config.stream_arn,
            streams_client,
            delivery,
            None,
            batch_size=max(1, min(config.batch_size, 1000)),
            backoff=Backoff(base=0.05, cap=0.5),
            discover_interval=5.0,
            max_record_attempts=None,
            on_checkpoint=checkpoint,
        )
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._run, name=f"esm-{config.uuid[:8]}", daemon=True
        )
        self.error: BaseException | None = None

    def start(self) -> None:
        self._thread.start()

    def _run(self) -> None:
        try:
            self.follower.run(self._stop)
        except BaseException as exc:
            self.error = exc
            log.error("event source mapping %s stopped: %s", self.config.uuid, exc)

    @property
    def running(self) -> bool:
        return self._thread.is_alive()

    def stop(self, timeout: float = 60.0) -> None:
        """Stop after the batch in flight (its invocation finishes, as in Lambda)."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout)


# --- every mapping of the private server ------------------------------------------------------


class EventSourceMappingEmulator:
    """Runs every enabled DynamoDB-stream mapping of a Lambda endpoint (see module docstring)."""

    def __init__(
        self,
        lambda_client: Any,
        invoke: Invoke,
        streams_for: Callable[[str], Any],
        *,
        sqs_client: Any = None,
        on_checkpoint: Callable[[str, str, str], None] | None = None,
        interval: float = 2.0,
        keep_batches: int = 0,
        functions: Callable[[str], bool] | None = None,
    ) -> None:
        self.lambda_client = lambda_client
        #: Which function ARNs are this stack's (other mappings on the server are left alone).
        self.functions = functions
        self.invoke = invoke
        self.streams_for = streams_for
        self.sqs_client = sqs_client
        self.on_checkpoint = on_checkpoint
        self.interval = interval
        self.keep_batches = keep_batches
        self.pollers: dict[str, MappingPoller] = {}
        #: Every mapping seen enabled, and every one seen deleted (UUIDs, in order).
        self.seen: list[str] = []
        self.deleted: list[str] = []
        self.stats: dict[str, MappingStats] = {}
        self._lock = threading.Lock()
        #: One scan at a time: a scan listed before a deletion must not restart the mapping.
        self._sync_lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # --- lifecycle --------------------------------------------------------------------------

    def start(self) -> EventSourceMappingEmulator:
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name="esm-emulator", daemon=True)
        self._thread.start()
        return self

    def __enter__(self) -> EventSourceMappingEmulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _loop(self) -> None:
        seen = -1
        while True:
            with _changes:
                # A mapping created, updated or deleted through the patched backend wakes the
                # scan at once; `interval` is the longest it waits otherwise.
                if _generation == seen and not self._stop.is_set():
                    _changes.wait(self.interval)
                seen = _generation
            if self._stop.is_set():
                return
            try:
                self.sync()
            except Exception as exc:  # the server going away ends the run anyway
                log.debug("event source mapping scan failed: %s", exc)

    def stop(self) -> None:
        self._stop.set()
        with _changes:
            _changes.notify_all()
        if self._thread is not None:
            self._thread.join(timeout=10)
        with self._lock:
            pollers = list(self.pollers.values())
            self.pollers.clear()
        for poller in pollers:
            poller.stop()

    @property
    def running(self) -> bool:
        """Some mapping is being polled."""
        with self._lock:
            return any(p.running for p in self.pollers.values())

    # --- mappings ---------------------------------------------------------------------------

    def mappings(self) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        kwargs: dict[str, Any] = {}
        for _ in range(1000):
            page = self.lambda_client.list_event_source_mappings(**kwargs)
            out.extend(page.get("EventSourceMappings", []))
            marker = page.get("NextMarker")
            if not marker:
                break
            kwargs["Marker"] = marker
        return out

    def sync(self) -> None:
        """Start a poller for every new enabled stream mapping; stop the ones deleted or
        disabled since the last call."""
        with self._sync_lock:
            self._sync()

    def _sync(self) -> None:
        live = {
            str(m["UUID"]): m
            for m in self.mappings()
            if is_stream_arn(str(m.get("EventSourceArn", "")))
            and (self.functions is None or self.functions(str(m.get("FunctionArn", ""))))
        }
        enabled = {u for u, m in live.items() if m.get("State") in ("Enabled", "Enabling")}
        with self._lock:
            gone = [u for u in self.pollers if u not in enabled]
            stopped = [self.pollers.pop(u) for u in gone]
            for u in gone:
                if u not in live:
                    self.deleted.append(u)
            for u in sorted(enabled - set(self.pollers)):
                if self._stop.is_set():
                    break
                config = MappingConfig.from_api(live[u])
                delivery = MappingDelivery(
                    config,
                    self.invoke,
                    send_to_destination=self._send,
                    keep_batches=self.keep_batches,
                )
                self.stats[u] = delivery.stats
                poller = MappingPoller(
                    config,
                    self.streams_for(config.stream_arn),
                    delivery,
                    on_checkpoint=self.on_checkpoint,
                )
                self.pollers[u] = poller
                self.seen.append(u)
                poller.start()
                log.info("event source mapping %s: polling %s", u, config.stream_arn)
        for poller in stopped:
            poller.stop()

    def _send(self, destination: str, message: dict[str, Any]) -> None:
        if self.sqs_client is None:
            log.error("no SQS client for the on-failure destination %s", destination)
            return
        name = destination.rsplit(":", 1)[-1]
        url = self.sqs_client.get_queue_url(QueueName=name)["QueueUrl"]
        self.sqs_client.send_message(QueueUrl=url, MessageBody=json.dumps(message))
