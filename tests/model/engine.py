"""The model-based test's adapter: the ONLY place that calls dynashift's engine entry points.

When an engine signature changes (a lease, a generation number, a fenced checkpoint), adapt this
module and nothing else. Everything here drives the real engine on the real moto server:

* `Invocation` runs the real `backfill.run_segment` in a thread (one Lambda invocation of
  "Copy segment"). Its source client is gated before each Scan and its target client before the
  first PutItem of each page, so the test decides when a page is read and when it is written;
  between the two, anything else may happen. A fake clock lets the test make the invocation's
  deadline arrive (it then hands back a cursor, as the state machine expects).
* `Migration.replicate` reads the real DynamoDB stream of the source (GetRecords on moto) and
  applies batches of Lambda-shaped records (`follower.to_lambda_record`) with the real
  `replicator.Replicator`, in order; `redeliver` applies the last batch again.
* `Migration.finish` is `tombstones.finish_backfill` ("Finish backfill").
* The checks read both tables raw (Scan, ConsistentRead) and the state table raw (Query):
  nothing of the engine is used to judge the engine.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from dynashift.aws import Side
from dynashift.backfill import SegmentResult, run_segment, start_backfill
from dynashift.errors import NotReadyYet
from dynashift.follower import to_lambda_record
from dynashift.items import TOMBSTONE_ATTR
from dynashift.models import Clients, MigrationSpec, TableLocation
from dynashift.ratelimit import RateLimiter
from dynashift.replicator import ApplyResult, Replicator
from dynashift.retry import Backoff
from dynashift.state import TOMBSTONE_PREFIX, StateStore
from dynashift.tombstones import finish_backfill
from tests.support import tables as support_tables
from tests.support.clock import ManualClock, NoSleepClock

REGION = "us-east-1"
PK = "pk"
VERSION = "v"
#: How long the test waits for an invocation thread to reach its next gate.
GATE_TIMEOUT = 30.0
#: A clock value far past any invocation's deadline.
PAST_DEADLINE = 1e12


#: Seconds after which every lease of a worker has lapsed (a worker budget and its grace).
LEASES_LAPSED = 3600.0


class Killed(BaseException):
    """Raised inside an invocation the test kills (a crashed Lambda never continues)."""


class _ClientFactory:
    """Hands the shared client to the Replicator (a boto3 client per example is slow)."""

    def __init__(self, client: Any) -> None:
        self.client = client

    def dynamodb(self) -> Any:
        return self.client


class _Gated:
    """A client whose `operation` first waits at `invocation`'s gate `kind`."""

    def __init__(self, client: Any, operation: str, kind: str, invocation: Invocation) -> None:
        self._client = client
        self._operation = operation
        self._kind = kind
        self._invocation = invocation

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._client, name)
        if name != self._operation:
            return attr

        def gated(**kwargs: Any) -> Any:
            self._invocation._gate(self._kind)
            response = attr(**kwargs)
            if self._kind == "scan":
                self._invocation.page_keys = [i[PK]["S"] for i in response.get("Items", [])]
            return response

        return gated


@dataclass
class Env:
    """Tables shared by every example (created once per session; cleared per example)."""

    endpoint: str
    client: Any
    streams: Any
    source: str
    target: str
    state_table: str
    stream_arn: str
    shard_id: str

    @classmethod
    def create(cls, endpoint: str) -> Env:
        client = support_tables.client(endpoint)
        streams = support_tables.client(endpoint, "dynamodbstreams")
        suffix = uuid.uuid4().hex[:8]
        source = support_tables.create_table(client, f"model-src-{suffix}", stream=True)
        target = support_tables.create_table(client, f"model-dst-{suffix}")
        state_table = f"model-state-{suffix}"
        StateStore.ensure_table(client, state_table)
        arn = client.describe_table(TableName=source)["Table"]["LatestStreamArn"]
        shards = streams.describe_stream(StreamArn=arn)["StreamDescription"]["Shards"]
        return cls(
            endpoint=endpoint,
            client=client,
            streams=streams,
            source=source,
            target=target,
            state_table=state_table,
            stream_arn=arn,
            shard_id=shards[0]["ShardId"],
        )

    # --- raw reads and writes (independent of the engine) ------------------------------------

    def scan(self, table: str) -> dict[str, dict[str, Any]]:
        items: dict[str, dict[str, Any]] = {}
        kwargs: dict[str, Any] = {"TableName": table, "ConsistentRead": True}
        while True:
            page = self.client.scan(**kwargs)
            for item in page.get("Items", []):
                items[item[PK]["S"]] = item
            if "LastEvaluatedKey" not in page:
                return items
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    def clear(self, table: str) -> None:
        keys = list(self.scan(table))
        for start in range(0, len(keys), 25):
            chunk = keys[start : start + 25]
            requests = [{"DeleteRequest": {"Key": {PK: {"S": k}}}} for k in chunk]
            self.client.batch_write_item(RequestItems={table: requests})

    def source_put(self, item: Mapping[str, Any]) -> None:
        self.client.put_item(TableName=self.source, Item=dict(item))

    def source_update(self, key: str, values: Mapping[str, Any]) -> None:
        names = {f"#a{i}": name for i, name in enumerate(values)}
        exprs = {f":a{i}": value for i, value in enumerate(values.values())}
        sets = ", ".join(f"#a{i} = :a{i}" for i in range(len(values)))
        self.client.update_item(
            TableName=self.source,
            Key={PK: {"S": key}},
            UpdateExpression=f"SET {sets}",
            ExpressionAttributeNames=names,
            ExpressionAttributeValues=exprs,
        )

    def source_delete(self, key: str) -> None:
        self.client.delete_item(TableName=self.source, Key={PK: {"S": key}})

    def registered_tombstones(self, migration_id: str) -> list[str]:
        resp = self.client.query(
            TableName=self.state_table,
            KeyConditionExpression="migration_id = :m AND begins_with(sk, :p)",
            ExpressionAttributeValues={
                ":m": {"S": migration_id},
                ":p": {"S": TOMBSTONE_PREFIX},
            },
            ConsistentRead=True,
        )
        return [item["sk"]["S"] for item in resp.get("Items", [])]

    def latest_iterator(self) -> str:
        it = self.streams.get_shard_iterator(
            StreamArn=self.stream_arn, ShardId=self.shard_id, ShardIteratorType="LATEST"
        )
        return str(it["ShardIterator"])


class Invocation:
    """One invocation of the real segment worker, paused at its gates (see module doc).

    States: parked at "scan" (about to read a page), parked at "write" (a page read, about to
    write it), or finished (`result` or `error`).
    """

    def __init__(
        self,
        migration: Migration,
        segment: int,
        cursor: dict[str, Any] | None,
        number: int,
    ) -> None:
        self.migration = migration
        self.segment = segment
        self.cursor = cursor
        self.number = number
        self.result: SegmentResult | None = None
        self.error: BaseException | None = None
        self.finished = False
        self.parked: str | None = None
        #: Keys of the page this invocation read last.
        self.page_keys: list[str] = []
        self._cond = threading.Condition()
        self._grant = False
        self._killed = False
        self._page_open = False
        self._clock = ManualClock()
        self._thread = threading.Thread(
            target=self._run, name=f"segment-{segment}-inv-{number}", daemon=True
        )

    def __repr__(self) -> str:
        state = "finished" if self.finished else f"parked at {self.parked}"
        return f"<invocation {self.number} of segment {self.segment}, {state}>"

    # --- worker side -------------------------------------------------------------------------

    def _run(self) -> None:
        env, mig = self.migration.env, self.migration
        try:
            self.result = run_segment(
                mig.spec,
                self.segment,
                state=mig.state,
                budget_seconds=600.0,
                cursor=self.cursor,
                limiter=RateLimiter(None),
                clock=self._clock,
                source_client=_Gated(env.client, "scan", "scan", self),
                target_client=_Gated(env.client, "put_item", "write", self),
                backoff=Backoff(clock=NoSleepClock()),
                max_in_flight=1,
                page_size=mig.page_size,
            )
        except BaseException as exc:
            self.error = exc
        finally:
            with self._cond:
                self.finished = True
                self.parked = None
                self._cond.notify_all()

    def _gate(self, kind: str) -> None:
        with self._cond:
            if kind == "write" and self._page_open:
                return  # the rest of a page whose writing was allowed
            self._page_open = False
            self.parked = kind
            self._cond.notify_all()
            if not self._cond.wait_for(lambda: self._grant or self._killed, GATE_TIMEOUT):
                raise Killed(f"{self!r}: never released")
            self._grant = False
            self.parked = None
            if self._killed:
                raise Killed(repr(self))
            self._page_open = kind == "write"

    # --- test side ---------------------------------------------------------------------------

    def _settle(self) -> None:
        """Wait until the worker is parked at a gate again, or finished."""
        with self._cond:
            ok = self._cond.wait_for(
                lambda: self.finished or (self.parked is not None and not self._grant),
                GATE_TIMEOUT,
            )
        if not ok:
            raise AssertionError(f"{self!r} did not reach a gate in {GATE_TIMEOUT:.0f}s")

    def start(self) -> Invocation:
        self._thread.start()
        self._settle()
        return self

    def step(self) -> None:
        """Let the worker through its current gate (read a page, or write the page read)."""
        with self._cond:
            if self.finished:
                return
            self._grant = True
            self._cond.notify_all()
        self._settle()

    def expire(self) -> None:
        """The invocation's deadline arrives: it stops after the page in hand, returns a cursor."""
        self._clock.now = PAST_DEADLINE
        self.run_out()

    def run_out(self, max_steps: int = 1000) -> None:
        for _ in range(max_steps):
            if self.finished:
                return
            self.step()
        raise AssertionError(f"{self!r} still running after {max_steps} steps")

    def kill(self) -> None:
        """The Lambda dies where it is parked: nothing after this point happens."""
        with self._cond:
            self._killed = True
            self._cond.notify_all()
        self._thread.join(GATE_TIMEOUT)
        if not self.finished:
            raise AssertionError(f"{self!r} did not stop after being killed")


@dataclass
class Migration:
    """One migration of `env.source` into `env.target` (a fresh migration id per example)."""

    env: Env
    spec: MigrationSpec
    state: StateStore
    replicator: Replicator
    page_size: int
    iterator: str
    #: Lambda-shaped records read from the stream and not yet applied, in order.
    pending: list[dict[str, Any]] = field(default_factory=list)
    #: The last batch applied (a redelivery applies it again).
    last_batch: list[dict[str, Any]] = field(default_factory=list)
    invocations: int = 0

    @classmethod
    def start(
        cls,
        env: Env,
        initial: Sequence[Mapping[str, Any]],
        *,
        versioned: bool,
        segments: int,
        page_size: int,
    ) -> Migration:
        """Clear both tables, fill the source with `initial`, then open the stream at its end
        (the stream of a live table: what was written before is only in the table)."""
        env.clear(env.source)
        env.clear(env.target)
        if initial:
            requests = [{"PutRequest": {"Item": dict(item)}} for item in initial]
            env.client.batch_write_item(RequestItems={env.source: requests})
        iterator = env.latest_iterator()
        migration_id = f"model-{uuid.uuid4().hex[:12]}"
        side = Side(region=REGION, endpoint_url=env.endpoint)
        spec = MigrationSpec(
            migration_id=migration_id,
            source=TableLocation(name=env.source, side=side),
            target=TableLocation(name=env.target, side=side),
            state=TableLocation(name=env.state_table, side=side),
            segments=segments,
            version_attribute=VERSION if versioned else None,
        )
        state = StateStore(env.client, env.state_table, migration_id)
        # What the workflow's "Start replicator" does before the replicator's first write and
        # the first scan page: phase BACKFILL (deletes become tombstones), write mode recorded.
        start_backfill(state, env.client, env.target)
        replicator = Replicator.for_spec(
            spec, [PK], state, clients=Clients.fixed(_ClientFactory(env.client))
        )
        return cls(
            env=env,
            spec=spec,
            state=state,
            replicator=replicator,
            page_size=page_size,
            iterator=iterator,
        )

    # --- backfill ----------------------------------------------------------------------------

    def invoke(self, segment: int, cursor: dict[str, Any] | None) -> Invocation:
        """Start one invocation of "Copy segment" (the state machine's input cursor, or None:
        resume from the state store's checkpoint). Returns it parked at its first gate."""
        self.invocations += 1
        return Invocation(self, segment, cursor, self.invocations).start()

    def finish(self, live: Sequence[Invocation] = ()) -> None:
        """ "Finish backfill" as the state machine runs it: phase FINISHING, the running
        invocations' leases waited out, then plain deletes and the registered tombstones
        removed. Its wait gives up at once here (NotReadyYet, which the state machine retries);
        meanwhile the invocations still running (`live`) go on — each stops at its next page,
        having seen the phase — and a crashed invocation's lease lapses with time: the retry
        runs at a clock past every lease."""
        try:
            finish_backfill(self.env.client, self.env.target, self.state, lease_wait_seconds=0)
            return
        except NotReadyYet:
            pass
        for inv in live:
            inv.run_out()
        later = time.time() + LEASES_LAPSED
        finish_backfill(
            self.env.client,
            self.env.target,
            self.state,
            lease_wait_seconds=0,
            clock=ManualClock(wall_start=later),
        )

    # --- replication -------------------------------------------------------------------------

    def fetch(self) -> int:
        """Read every new stream record (GetRecords) into `pending`; how many are pending.

        One call: moto's shard returns every record after the iterator up to `Limit` (and a
        schedule writes far fewer than 1,000)."""
        resp = self.env.streams.get_records(ShardIterator=self.iterator, Limit=1000)
        self.iterator = resp.get("NextShardIterator") or self.iterator
        records = resp.get("Records", [])
        assert len(records) < 1000, "more stream records than one GetRecords returns"
        self.pending.extend(to_lambda_record(r, self.env.stream_arn) for r in records)
        return len(self.pending)

    def replicate(self, batch_size: int) -> ApplyResult | None:
        """Apply the next `batch_size` stream records as one batch (None: nothing pending)."""
        if len(self.pending) < batch_size:
            self.fetch()
        if not self.pending:
            return None
        batch, self.pending = self.pending[:batch_size], self.pending[batch_size:]
        result = self.replicator.apply(batch)
        if not result.ok:
            raise AssertionError(f"replicator failed at {result.failed_index}: {result.error}")
        self.last_batch = batch
        return result

    def redeliver(self) -> ApplyResult | None:
        """Apply the last batch again (at-least-once delivery: the batch was not acknowledged)."""
        if not self.last_batch:
            return None
        result = self.replicator.apply(self.last_batch)
        if not result.ok:
            raise AssertionError(f"redelivery failed at {result.failed_index}: {result.error}")
        return result

    def drain(self, batch_size: int = 10) -> None:
        while self.replicate(batch_size) is not None:
            pass

    # --- checks ------------------------------------------------------------------------------

    def differences(self) -> dict[str, Any]:
        """Keys where the target differs from the source, and tombstones left (raw reads)."""
        source = self.env.scan(self.env.source)
        target = self.env.scan(self.env.target)
        diff: dict[str, Any] = {}
        for key in sorted(source.keys() | target.keys()):
            if source.get(key) != target.get(key):
                diff[key] = {"source": source.get(key), "target": target.get(key)}
        marked = sorted(k for k, item in target.items() if TOMBSTONE_ATTR in item)
        registered = self.env.registered_tombstones(self.spec.migration_id)
        out: dict[str, Any] = {}
        if diff:
            out["differing"] = diff
        if marked:
            out["tombstones_in_target"] = marked
        if registered:
            out["tombstones_registered"] = registered
        return out
