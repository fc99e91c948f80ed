"""The local stream follower: what the Lambda event source mapping does, in a thread.

Size: one module because discovery, lineage order, checkpoints, retries and drain all act on
one shard map under one lock.

`StreamFollower` reads every shard of a DynamoDB stream and feeds the records — converted to the
exact JSON shape a Lambda handler receives — to a `Replicator`, to a Lambda handler, or to a
`BatchInvoker` that decides itself how a batch is invoked and retried (the local runner's event
source mapping emulator, `dynashift.workflow.esm`), batch by batch, in sequence order:

- Shards are discovered with DescribeStream (all pages) when it starts, whenever a shard is
  exhausted (its children may now be read) and every `discover_interval` seconds.
- A child shard is read only after its parent is exhausted (or no longer listed: trimmed).
- A shard is read from its checkpoint (AFTER_SEQUENCE_NUMBER) or from TRIM_HORIZON (invariant I2).
- An expired iterator (ExpiredIteratorException) is replaced from the checkpoint.
- After each batch the sequence number of the last applied record is checkpointed in the state
  store, so a restart continues without loss (I8) — at most the unfinished batch is re-applied,
  which is harmless (I3).
- When a batch stops at a failed record, the follower re-reads the shard from the checkpoint,
  i.e. retries from the first failed record, with backoff; after `max_record_attempts` failures
  of the same record it raises `RuntimeFailure` (the local equivalent of the DLQ).
- Empty reads and throttled reads back off (exponential with jitter, capped).

`drain(timeout)` applies everything written before it was called, then stops. It polls until
every readable shard — rediscovered before deciding, so the child of a shard that closed during
the drain is found — has, since the call, been read to its tip (EMPTY_PAGES_AT_TIP consecutive
empty reads: DynamoDB may return an empty page before later records) or had a record applied
that was created after the call (ApproximateCreationDateTime later than the drain's start by
the stream's own clock, the Date of its DescribeStream response): sequence order then
guarantees everything older in that shard is applied, also under a writer that never pauses.
Writes after the call may or may not be applied. Children of a shard finished the second way
hold only later records; children of an exhausted shard are drained like any other shard.

`lag()` reads ahead from the checkpoints without applying (records behind, age of the oldest).

One applier at a time (issue 13 item 2): while `run` follows the stream it holds the migration's
replicator lease in the state store (`lease_seconds`, renewed before each batch once a third of
it has passed). A second follower of the same migration waits for the lease to expire (a
crashed process's lease lapses after `lease_seconds`) and otherwise fails with LeaseHeldError; a
follower that lost its lease stops before applying another batch. In AWS the one event source
mapping of the replicator function is the single applier.
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from botocore.exceptions import ClientError

from dynashift.aws import error_code
from dynashift.clock import SYSTEM_CLOCK, Clock
from dynashift.errors import RuntimeFailure, WorkerDeadlineError
from dynashift.items import to_event_json
from dynashift.replication_progress import EMPTY_PAGES_AT_TIP, drain_mark
from dynashift.replicator import ApplyResult, approximate_creation
from dynashift.retry import Backoff, is_throttle, is_transient
from dynashift.state import LeaseHeldError, StateStore

log = logging.getLogger(__name__)

Record = dict[str, Any]
Handler = Callable[[dict[str, Any], Any], Any]


class _Appliable(Protocol):
    def apply(self, records: Sequence[Mapping[str, Any]]) -> ApplyResult: ...


@dataclass(frozen=True)
class Delivery:
    """What a `BatchInvoker` did with a batch read from one shard."""

    #: Leading records handled (delivered, or given up on and sent elsewhere): checkpointed.
    done: int
    #: The rest failed: it is read again from the checkpoint after a backoff.
    failed: bool = False


class BatchInvoker(Protocol):
    """A consumer that decides itself how a batch is invoked, retried or given up on (the
    event source mapping emulator, `dynashift.workflow.esm`). A `done` below the batch size
    without `failed` means "read the rest again from the checkpoint" (a smaller batch, or a
    batching window that has not elapsed)."""

    def deliver(self, shard_id: str, events: list[Record]) -> Delivery: ...


@dataclass(frozen=True)
class Lag:
    #: Stream records present but not applied yet (all unfinished shards).
    records_behind: int
    #: How long the oldest unapplied record has waited (0 when nothing is behind).
    age_seconds: float
    #: Age of the newest applied record when it was applied (Lambda's IteratorAge).
    last_applied_age_seconds: float | None = None


@dataclass
class PollResult:
    read: int = 0
    applied: int = 0
    #: Batches that stopped at a failed record (they are retried from that record).
    failed_batches: int = 0


@dataclass
class DrainResult:
    applied: int
    polls: int
    lag: Lag


@dataclass
class _Shard:
    shard_id: str
    parent_id: str | None
    checkpoint: str | None = None
    iterator: str | None = None
    exhausted: bool = False
    #: (sequence number, attempts) of a record that keeps failing.
    failing: tuple[str | None, int] = (None, 0)
    #: During a drain: read to its tip, or past a record created after the drain began.
    drained: bool = False
    #: Consecutive empty reads (EMPTY_PAGES_AT_TIP of them: the shard's tip).
    empty_reads: int = 0


@dataclass
class LocalLambdaContext:
    """The parts of a Lambda context a handler (Powertools) reads, for local invocations."""

    function_name: str = "dynashift-replicator-local"
    function_version: str = "$LATEST"
    memory_limit_in_mb: int = 512
    invoked_function_arn: str = (
        "arn:aws:lambda:local:000000000000:function:dynashift-replicator-local"
    )
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    log_group_name: str = "local"
    log_stream_name: str = "local"

    def get_remaining_time_in_millis(self) -> int:
        return 900_000


def to_lambda_record(record: Mapping[str, Any], stream_arn: str) -> Record:
    """A botocore GetRecords record -> the JSON record a Lambda handler receives.

    Images and keys: binary as base64 text (`to_event_json`); ApproximateCreationDateTime as
    epoch seconds; `userIdentity` with Lambda's lower-case field names; `eventSourceARN` added.
    """
    body: dict[str, Any] = {}
    for name, value in (record.get("dynamodb") or {}).items():
        if name in ("Keys", "NewImage", "OldImage"):
            body[name] = to_event_json(value)
        elif name == "ApproximateCreationDateTime":
            body[name] = approximate_creation(value)
        else:
            body[name] = value
    region = record.get("awsRegion") or (
        stream_arn.split(":")[3] if stream_arn.count(":") >= 3 else ""
    )
    out: Record = {
        "eventID": record.get("eventID"),
        "eventName": record.get("eventName"),
        # Lambda's stream events carry version 1.1 whatever GetRecords says (moto: "1.0").
        "eventVersion": "1.1",
        "eventSource": record.get("eventSource", "aws:dynamodb"),
        "awsRegion": region,
        "dynamodb": body,
        "eventSourceARN": stream_arn,
    }
    identity = record.get("userIdentity")
    if identity:
        out["userIdentity"] = {
            "type": identity.get("Type", identity.get("type")),
            "principalId": identity.get("PrincipalId", identity.get("principalId")),
        }
    return out


def _sequence(record: Mapping[str, Any]) -> str:
    return str(record["dynamodb"]["SequenceNumber"])


class StreamFollower:
    """Follows one stream and applies it (see module docstring). Thread-safe: `poll_once` calls
    are serialized, so `run` in a thread and `drain`/`lag` from another thread cooperate."""

    def __init__(
        self,
        stream_arn: str,
        streams_client: Any,
        replicator_or_handler: _Appliable | Handler | BatchInvoker,
        state: StateStore | None,
        *,
        clock: Clock = SYSTEM_CLOCK,
        batch_size: int = 1000,
        backoff: Backoff | None = None,
        discover_interval: float = 10.0,
        max_record_attempts: int | None = 10,
        clock_skew: float = 2.0,
        context: Any = None,
        lease_seconds: float | None = 15.0,
        on_checkpoint: Callable[[str, str], None] | None = None,
    ) -> None:
        if not 1 <= batch_size <= 1000:
            raise ValueError(f"batch_size must be 1..1000, got {batch_size}")
        self.stream_arn = stream_arn
        self.streams = streams_client
        self.target = replicator_or_handler
        self.state = state
        #: Wall time (leases, record ages, discovery) and the waits between polls.
        self.clock = clock
        self.batch_size = batch_size
        self.backoff = backoff or Backoff(base=0.05, cap=1.0)
        self.discover_interval = discover_interval
        self.max_record_attempts = max_record_attempts
        #: How far the stream's clock (ApproximateCreationDateTime) may be behind ours.
        self.clock_skew = clock_skew
        self.context = context or LocalLambdaContext()
        #: Called with (shard id, sequence number) after each checkpoint.
        self.on_checkpoint = on_checkpoint
        self._shards: dict[str, _Shard] = {}
        self._stored: dict[str, str] | None = None
        self._next_discovery = 0.0
        self._lock = threading.RLock()
        self._finished = threading.Event()
        self.applied = 0
        #: Counters summed over every batch (Replicator targets only).
        self.totals = ApplyResult()
        self._last_applied_age: float | None = None
        #: While draining: records created at or after this time (epoch) are "after the drain".
        self._drain_until: float | None = None
        self.error: BaseException | None = None
        self.lease_seconds = lease_seconds
        self._owner = f"follower-{uuid.uuid4().hex}"
        #: Wall-clock time of the last lease renewal (None: no lease held).
        self._leased_at: float | None = None

    # --- the one-applier lease ----------------------------------------------------------------

    def _acquire_lease(self, stop: threading.Event) -> bool:
        """Take the replicator lease, waiting up to one lease period for another holder's to
        lapse. False when `stop` was set meanwhile; LeaseHeldError when it never lapsed."""
        if self.state is None or self.lease_seconds is None:
            return True
        give_up = self.clock.wall() + self.lease_seconds + 1.0
        while True:
            now = self.clock.wall()
            try:
                self.state.acquire_replicator_lease(self._owner, now + self.lease_seconds, now)
                self._leased_at = now
                return True
            except LeaseHeldError:
                if now >= give_up:
                    raise
                log.info("waiting for another replicator's lease on this migration to lapse")
            if stop.wait(0.5):
                return False

    def _renew_lease(self) -> None:
        if self._leased_at is None or self.state is None or self.lease_seconds is None:
            return
        now = self.clock.wall()
        if now - self._leased_at >= self.lease_seconds / 3:
            self.state.acquire_replicator_lease(self._owner, now + self.lease_seconds, now)
            self._leased_at = now

    def _release_lease(self) -> None:
        if self._leased_at is not None and self.state is not None:
            self._leased_at = None
            self.state.release_replicator_lease(self._owner)

    # --- applying a batch --------------------------------------------------------------------

    def _deliver(self, shard: _Shard, events: list[Record]) -> tuple[int, bool, ApplyResult | None]:
        """(records done, failed?, the engine's result when the target is a Replicator)."""
        deliver = getattr(self.target, "deliver", None)
        if deliver is not None:
            delivery: Delivery = deliver(shard.shard_id, events)
            return delivery.done, delivery.failed, None
        failed, result = self._apply(events)
        return (len(events), False, result) if failed is None else (failed, True, result)

    def _apply(self, events: list[Record]) -> tuple[int | None, ApplyResult | None]:
        """(first failed index or None, the engine's result when the target is a Replicator)."""
        self._renew_lease()  # LeaseHeldError: another follower took over, apply nothing more
        apply = getattr(self.target, "apply", None)
        if apply is not None:
            result: ApplyResult = apply(events)
            return result.failed_index, result
        handler: Handler = self.target  # type: ignore[assignment]
        try:
            response = handler({"Records": events}, self.context) or {}
        except Exception as exc:  # the handler failed the whole batch (Lambda retries it all)
            log.warning("handler failed the whole batch of %d: %s", len(events), exc)
            return 0, None
        failures = response.get("batchItemFailures") or []
        if not failures:
            return None, None
        index = {_sequence(e): i for i, e in enumerate(events)}
        return min(index.get(str(f.get("itemIdentifier")), 0) for f in failures), None

    # --- shards ------------------------------------------------------------------------------

    def _list_shards(self) -> list[dict[str, Any]]:
        kwargs: dict[str, Any] = {"StreamArn": self.stream_arn}
        shards: list[dict[str, Any]] = []
        while True:
            desc = self.streams.describe_stream(**kwargs)["StreamDescription"]
            shards.extend(desc.get("Shards", []))
            last = desc.get("LastEvaluatedShardId")
            if not last:
                return shards
            kwargs["ExclusiveStartShardId"] = last

    def _discover(self) -> None:
        if self._stored is None:
            self._stored = self.state.shard_checkpoints() if self.state is not None else {}
        for s in self._list_shards():
            sid = s["ShardId"]
            if sid not in self._shards:
                self._shards[sid] = _Shard(
                    shard_id=sid,
                    parent_id=s.get("ParentShardId"),
                    checkpoint=self._stored.get(sid),
                )
        self._next_discovery = self.clock.wall() + self.discover_interval

    def _parent_done(self, shard: _Shard) -> bool:
        parent = self._shards.get(shard.parent_id) if shard.parent_id else None
        return parent is None or parent.exhausted

    def _readable(self) -> list[_Shard]:
        return [s for s in self._shards.values() if not s.exhausted and self._parent_done(s)]

    def _iterator(self, shard_id: str, checkpoint: str | None) -> str:
        kwargs: dict[str, Any] = {"StreamArn": self.stream_arn, "ShardId": shard_id}
        if checkpoint:
            kwargs.update(ShardIteratorType="AFTER_SEQUENCE_NUMBER", SequenceNumber=checkpoint)
        else:
            kwargs["ShardIteratorType"] = "TRIM_HORIZON"
        try:
            return str(self.streams.get_shard_iterator(**kwargs)["ShardIterator"])
        except ClientError as exc:
            if checkpoint and error_code(exc) == "TrimmedDataAccessException":
                raise RuntimeFailure(
                    f"stream shard {shard_id}: records after checkpoint {checkpoint} were trimmed "
                    "(older than the stream's retention) and are lost; start a new migration"
                ) from exc
            raise

    def _get_records(self, shard: _Shard) -> dict[str, Any] | None:
        """One GetRecords call; None when throttled. Expired iterators are replaced once."""
        for attempt in range(2):
            if shard.iterator is None:
                shard.iterator = self._iterator(shard.shard_id, shard.checkpoint)
            try:
                resp: dict[str, Any] = self.streams.get_records(
                    ShardIterator=shard.iterator, Limit=self.batch_size
                )
                return resp
            except ClientError as exc:
                code = error_code(exc)
                if code == "ExpiredIteratorException" and attempt == 0:
                    log.info("shard %s: iterator expired, renewing", shard.shard_id)
                    shard.iterator = None
                    continue
                if is_throttle(exc):
                    return None
                raise
        return None

    def _checkpoint(self, shard: _Shard, sequence: str) -> None:
        shard.checkpoint = sequence
        if self.state is not None:
            self.state.save_shard_checkpoint(shard.shard_id, sequence)
        if self.on_checkpoint is not None:
            self.on_checkpoint(shard.shard_id, sequence)

    def _read_shard(self, shard: _Shard, out: PollResult) -> None:
        resp = self._get_records(shard)
        if resp is None:
            return
        records = resp.get("Records", [])
        if records:
            out.read += len(records)
            events = [to_lambda_record(r, self.stream_arn) for r in records]
            done, failed, result = self._deliver(shard, events)
            if result is not None:
                self.totals.add(result)
            if done:
                self._checkpoint(shard, _sequence(events[done - 1]))
                self.applied += done
                out.applied += done
                approx = events[done - 1]["dynamodb"].get("ApproximateCreationDateTime")
                if approx is not None:
                    self._last_applied_age = max(0.0, self.clock.wall() - float(approx))
                    if self._drain_until is not None and float(approx) > self._drain_until:
                        shard.drained = True
            if failed:
                self._record_failure(shard, events[done], result)
                out.failed_batches += 1
                shard.iterator = None  # re-read from the checkpoint: retry from the failure
                return
            shard.failing = (None, 0)
            if done < len(events):
                shard.iterator = None  # the invoker took a part: read the rest again
                return
            shard.empty_reads = 0
        else:
            # DynamoDB may return empty pages before later records of the same shard: only
            # EMPTY_PAGES_AT_TIP consecutive empty reads (each from the previous page's
            # NextShardIterator) count as the tip.
            shard.empty_reads += 1
            if self._drain_until is not None and shard.empty_reads >= EMPTY_PAGES_AT_TIP:
                shard.drained = True
        shard.iterator = resp.get("NextShardIterator")
        if shard.iterator is None:
            shard.exhausted = True
            self._next_discovery = 0.0  # its children may be readable now
            log.info("shard %s exhausted", shard.shard_id)

    def _record_failure(self, shard: _Shard, event: Record, result: ApplyResult | None) -> None:
        seq = _sequence(event)
        attempts = shard.failing[1] + 1 if shard.failing[0] == seq else 1
        shard.failing = (seq, attempts)
        why = result.error if result is not None else "the handler reported it failed"
        log.warning(
            "shard %s: record %s failed (attempt %d): %s", shard.shard_id, seq, attempts, why
        )
        if self.max_record_attempts is not None and attempts >= self.max_record_attempts:
            raise RuntimeFailure(
                f"stream record {seq} of shard {shard.shard_id} failed {attempts} times: {why}"
            )

    # --- public API --------------------------------------------------------------------------

    def poll_once(self) -> PollResult:
        """Read one batch from every readable shard and apply it."""
        with self._lock:
            if self.clock.wall() >= self._next_discovery:
                self._discover()
            out = PollResult()
            for shard in self._readable():
                self._read_shard(shard, out)
            return out

    def _wait(self, attempt: int, stop: threading.Event | None = None) -> None:
        delay = self.backoff.delay(attempt)
        if stop is not None:
            self.clock.wait(stop, delay)
        else:
            self.clock.sleep(delay)

    def run(self, stop: threading.Event) -> None:
        """Poll until `stop` is set or a `drain` finished. Failures after retries are kept in
        `self.error` and re-raised."""
        idle = 0
        try:
            if not self._acquire_lease(stop):
                return
            while not stop.is_set() and not self._finished.is_set():
                self._renew_lease()
                try:
                    res = self.poll_once()
                except ClientError as exc:
                    if not is_transient(exc):
                        raise
                    log.warning("stream read failed, retrying: %s", error_code(exc))
                    res = PollResult(failed_batches=1)
                if res.applied == 0 or res.failed_batches:
                    self._wait(min(idle, 8), stop)
                    idle += 1
                else:
                    idle = 0
        except BaseException as exc:
            self.error = exc
            raise
        finally:
            self._release_lease()

    def _peek(
        self, shard_id: str, checkpoint: str | None, max_pages: int, until: float
    ) -> tuple[int, str | None, float | None]:
        """Read a shard ahead without applying: (records, newest sequence, oldest record time).

        Stops at the tip (an empty page, or the end of a closed shard), after `max_pages`, or at
        the first page ending with a record created at or after `until` (epoch seconds): with
        a writer that never pauses, the tip is never seen empty.
        """
        iterator: str | None = self._iterator(shard_id, checkpoint)
        count, newest, oldest = 0, None, None
        pages = 0
        while iterator and pages < max_pages:
            try:
                resp = self.streams.get_records(ShardIterator=iterator, Limit=1000)
            except ClientError as exc:
                if error_code(exc) == "ExpiredIteratorException":
                    iterator = self._iterator(shard_id, newest or checkpoint)
                    continue
                if is_throttle(exc):
                    self._wait(min(pages, 8))
                    continue
                raise
            pages += 1
            records = resp.get("Records", [])
            if not records:
                break
            count += len(records)
            newest = str(records[-1]["dynamodb"]["SequenceNumber"])
            if oldest is None:
                oldest = approximate_creation(
                    records[0]["dynamodb"].get("ApproximateCreationDateTime")
                )
            last = approximate_creation(records[-1]["dynamodb"].get("ApproximateCreationDateTime"))
            if last is not None and last >= until:
                break
            iterator = resp.get("NextShardIterator")
        return count, newest, oldest

    def _unfinished(self) -> list[tuple[str, str | None]]:
        """(shard, checkpoint) of every unfinished shard. Does not wait for a poll in progress
        (which may be applying a large batch) once the shards are known."""
        if not self._shards:
            with self._lock:
                if not self._shards:
                    self._discover()
        shards = list(self._shards.values())  # a snapshot: polls only add shards
        return [(s.shard_id, s.checkpoint) for s in shards if not s.exhausted]

    def lag(self, max_pages: int = 100) -> Lag:
        """Records present in the stream but not applied, and how long the oldest has waited.

        Reads ahead from each unfinished shard's checkpoint (at most `max_pages` pages per shard,
        so `records_behind` is a lower bound beyond 1,000 x max_pages)."""
        behind, oldest = 0, None
        for shard_id, checkpoint in self._unfinished():
            count, _, first = self._peek(shard_id, checkpoint, max_pages, self.clock.wall())
            behind += count
            if first is not None:
                oldest = first if oldest is None else min(oldest, first)
        age = max(0.0, self.clock.wall() - oldest) if behind and oldest is not None else 0.0
        return Lag(behind, age, self._last_applied_age)

    def drain(self, timeout: float) -> DrainResult:
        """Apply every record present in the stream now, then stop (`run` returns too).

        Raises WorkerDeadlineError when that takes longer than `timeout` seconds.
        """
        start = self.clock.wall()
        deadline = start + timeout
        self._unfinished()  # discover the shards
        # When the drain began, by the stream's own clock (the Date of its response); the local
        # clock plus `clock_skew` only for an endpoint that sends no Date.
        mark = drain_mark(self.streams, self.stream_arn)
        with self._lock:
            self._drain_until = mark if mark is not None else start + self.clock_skew
            for shard in self._shards.values():
                shard.drained = False
                shard.empty_reads = 0
        start_applied, polls, idle = self.applied, 0, 0
        while not self._all_drained():
            if self.error is not None:
                raise RuntimeFailure(f"the follower thread failed: {self.error}") from self.error
            if self.clock.wall() > deadline:
                lag = self.lag()
                raise WorkerDeadlineError(
                    f"drain did not finish within {timeout:g}s: "
                    f"{lag.records_behind} stream records not applied yet"
                )
            res = self.poll_once()
            polls += 1
            if res.applied == 0 or res.failed_batches:
                self._wait(min(idle, 8))
                idle += 1
            else:
                idle = 0
        self._finished.set()
        return DrainResult(applied=self.applied - start_applied, polls=polls, lag=self.lag())

    def _all_drained(self) -> bool:
        """Every readable shard has, since the drain began, been read to its tip or past a record
        created after the drain began (children of such a shard hold only later records).

        The shards are rediscovered first: a shard that closed during the drain may have a
        child that holds records written before the drain began."""
        with self._lock:
            if not all(s.drained for s in self._readable()):
                return False
            self._discover()
            return all(s.drained for s in self._readable())

    @property
    def finished(self) -> bool:
        return self._finished.is_set()
