"""Helpers for the backfill / copy / race tests: specs and state stores on the moto server,
fault injection at the botocore layer, a stream stand-in that applies source changes to the
target (the replicator's job, see I5). Tables, clients and items: `tests.support.tables`."""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable
from typing import Any

from botocore.awsrequest import AWSResponse

from dynashift.aws import Side
from dynashift.models import MigrationSpec, TableLocation
from dynashift.state import StateStore, state_table_name
from dynashift.tombstones import apply_delete
from tests.support.tables import REGION, client

__all__ = [
    "StreamApplier",
    "error_response",
    "fail_every",
    "leave_unprocessed",
    "make_spec",
    "make_state",
    "on_put_of",
]


def make_spec(
    endpoint: str, source: str, target: str, migration_id: str, **fields: Any
) -> MigrationSpec:
    side = Side(region=REGION, endpoint_url=endpoint)
    return MigrationSpec(
        migration_id=migration_id,
        source=TableLocation(name=source, side=side),
        target=TableLocation(name=target, side=side),
        state=TableLocation(name=state_table_name(migration_id), side=side),
        **fields,
    )


def make_state(ddb: Any, spec: MigrationSpec) -> StateStore:
    StateStore.ensure_table(ddb, spec.state.name)
    return StateStore(ddb, spec.state.name, spec.migration_id)


# --- fault injection at the botocore layer ---------------------------------------------------


def error_response(code: str, status: int = 400) -> tuple[AWSResponse, dict[str, Any]]:
    http = AWSResponse("http://injected", status, {}, None)
    parsed = {
        "Error": {"Code": code, "Message": "injected by the test"},
        "ResponseMetadata": {"HTTPStatusCode": status},
    }
    return http, parsed


def fail_every(ddb: Any, operation: str, every: int, code: str) -> list[int]:
    """Make every `every`-th call of `operation` fail with `code` (before it reaches moto)."""
    counter = itertools.count()
    lock = threading.Lock()
    injected: list[int] = []

    def hook(**_kwargs: Any) -> Any:
        with lock:
            n = next(counter)
            if n % every == 0:
                injected.append(n)
                return error_response(code)
        return None

    ddb.meta.events.register(f"before-call.dynamodb.{operation}", hook)
    return injected


def leave_unprocessed(ddb: Any, every: int = 2, count: int = 5) -> list[int]:
    """Every `every`-th BatchWriteItem: drop the last `count` requests before sending and report
    them back as UnprocessedItems (as DynamoDB does under throttling)."""
    counter = itertools.count()
    dropped: list[int] = []

    def before(params: dict[str, Any], context: dict[str, Any], **_kwargs: Any) -> None:
        if next(counter) % every:
            return
        (table, requests), *_ = params["RequestItems"].items()
        if len(requests) < 2:
            return
        keep = requests[:-count] or requests[:1]
        drop = requests[len(keep) :]
        params["RequestItems"][table] = keep
        context["dropped"] = (table, drop)

    def after(parsed: dict[str, Any], context: dict[str, Any], **_kwargs: Any) -> None:
        if "dropped" in context and "Error" not in parsed:
            table, drop = context.pop("dropped")
            parsed.setdefault("UnprocessedItems", {})[table] = drop
            dropped.append(len(drop))

    ddb.meta.events.register("provide-client-params.dynamodb.BatchWriteItem", before)
    ddb.meta.events.register("after-call.dynamodb.BatchWriteItem", after)
    return dropped


def on_put_of(ddb: Any, key_value: str, action: Callable[[], None]) -> list[int]:
    """Run `action` once, just before the first PutItem of the item with pk `key_value`."""
    fired: list[int] = []
    lock = threading.Lock()

    def hook(params: dict[str, Any], **_kwargs: Any) -> None:
        pk = params.get("Item", {}).get("pk", {}).get("S")
        with lock:
            if pk != key_value or fired:
                return
            fired.append(1)
        action()

    ddb.meta.events.register("provide-client-params.dynamodb.PutItem", hook)
    return fired


def delete_and_change_in_flight(
    ddb: Any, source: str, applier: StreamApplier, target: Any
) -> tuple[list[int], list[int]]:
    """I4/I5 step by step: just before the backfill's put of k00007 reaches `target`, k00007 is
    deleted in `source` (the replicator writes a tombstone); just before its put of k00009,
    k00009 is changed (the replicator writes it). Returns what fired (each `[1]` once)."""

    def delete_k7() -> None:
        ddb.delete_item(TableName=source, Key={"pk": {"S": "k00007"}})
        applier.poll()

    def update_k9() -> None:
        ddb.put_item(TableName=source, Item={"pk": {"S": "k00009"}, "s": {"S": "changed"}})
        applier.poll()

    return on_put_of(target, "k00007", delete_k7), on_put_of(target, "k00009", update_k9)


# --- a stand-in for the replicator -----------------------------------------------------------


class StreamApplier:
    """Reads the source's (single-shard, moto) stream from TRIM_HORIZON and applies each record
    to the target: INSERT/MODIFY as a plain put, REMOVE through `tombstones.apply_delete`."""

    def __init__(self, endpoint: str, source: str, target: str, state: StateStore | None) -> None:
        self.ddb = client(endpoint)
        self.streams = client(endpoint, "dynamodbstreams")
        arn = self.ddb.describe_table(TableName=source)["Table"]["LatestStreamArn"]
        shard = self.streams.describe_stream(StreamArn=arn)["StreamDescription"]["Shards"][0]
        self.iterator = self.streams.get_shard_iterator(
            StreamArn=arn, ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON"
        )["ShardIterator"]
        self.target = target
        self.state = state
        self.applied = 0
        self.last_sequence: int | None = None
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.error: BaseException | None = None

    def poll(self, timeout: float = 60.0) -> int:
        """Apply every record available now. Returns how many were applied.

        Fails (never spins) when the stream hands back a sequence number it already gave, which
        a moto without `tests.support.moto_server.serial_stream_records` does for ever after
        two concurrent writes, or when the end is not reached within `timeout` seconds.
        """
        if not self._lock.acquire(timeout=timeout):
            raise RuntimeError(f"stream applier: another poll held the lock for {timeout}s")
        try:
            deadline = time.monotonic() + timeout
            n = 0
            while time.monotonic() < deadline:
                resp = self.streams.get_records(ShardIterator=self.iterator, Limit=1000)
                self.iterator = resp["NextShardIterator"]
                records = resp.get("Records", [])
                for record in records:
                    data = record["dynamodb"]
                    sequence = int(data["SequenceNumber"])
                    if self.last_sequence is not None and sequence <= self.last_sequence:
                        raise RuntimeError(
                            f"stream applier: sequence number {sequence} after "
                            f"{self.last_sequence} (the stream repeats a record)"
                        )
                    self.last_sequence = sequence
                    if record["eventName"] == "REMOVE":
                        apply_delete(self.ddb, self.target, data["Keys"], self.state)
                    else:
                        self.ddb.put_item(TableName=self.target, Item=data["NewImage"])
                n += len(records)
                if not records:
                    self.applied += n
                    return n
            raise RuntimeError(f"stream applier: end of the stream not reached in {timeout}s")
        finally:
            self._lock.release()

    def _run(self) -> None:
        try:
            while not self._stop.wait(0.05):
                self.poll(timeout=300.0)  # behind a busy writer the end may take a while
        except BaseException as exc:
            self.error = exc

    def start(self) -> StreamApplier:
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(30)
        if self.error is not None:
            raise RuntimeError("stream applier failed") from self.error
