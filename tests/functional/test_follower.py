"""The stream follower on a real moto stream: concurrent writers, checkpoint + restart, drain,
lag, and the Lambda handler as the target. Target == source is checked with
tests/support/reference."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from dynashift.aws import ClientFactory, Side
from dynashift.follower import StreamFollower
from dynashift.models import Clients, TableLocation
from dynashift.replicator import Replicator
from dynashift.state import PHASE_BACKFILL, PHASE_PLAIN, StateStore
from dynashift.tombstones import finish_backfill
from functions.replicator import app
from tests.support.reference import assert_identical, scan_all
from tests.support.writer import ConcurrentWriter

KEYS_B_N = (
    [{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
    [{"AttributeName": "pk", "AttributeType": "B"}, {"AttributeName": "sk", "AttributeType": "N"}],
)
KEYS_S = (
    [{"AttributeName": "pk", "KeyType": "HASH"}],
    [{"AttributeName": "pk", "AttributeType": "S"}],
)


@dataclass
class Setup:
    source: str
    target: str
    stream_arn: str
    state: StateStore
    keys: tuple[str, ...]
    endpoint: str

    def replicator(self) -> Replicator:
        side = Side(endpoint_url=self.endpoint)
        return Replicator(
            TableLocation(name=self.target, side=side),
            self.keys,
            state=self.state,
            clients=Clients.fixed(ClientFactory(side)),
        )

    def follower(self, streams: Any, target: Any = None, **kwargs: Any) -> StreamFollower:
        return StreamFollower(
            self.stream_arn, streams, target or self.replicator(), self.state, **kwargs
        )


def make_setup(
    ddb: Any, table_name: Any, endpoint: str, schema: Any, phase: str = PHASE_PLAIN
) -> Setup:
    key_schema, attributes = schema
    source, target, state_table = table_name("f-src"), table_name("f-tgt"), table_name("f-st")
    desc = ddb.create_table(
        TableName=source,
        KeySchema=key_schema,
        AttributeDefinitions=attributes,
        BillingMode="PAY_PER_REQUEST",
        StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"},
    )["TableDescription"]
    ddb.create_table(
        TableName=target,
        KeySchema=key_schema,
        AttributeDefinitions=attributes,
        BillingMode="PAY_PER_REQUEST",
    )
    StateStore.ensure_table(ddb, state_table)
    state = StateStore(ddb, state_table, "mig-f")
    state.put_meta(phase=phase)
    keys = tuple(k["AttributeName"] for k in key_schema)
    return Setup(source, target, desc["LatestStreamArn"], state, keys, endpoint)


def put_items(ddb: Any, table: str, start: int, count: int, tag: str = "v1") -> None:
    for i in range(start, start + count):
        ddb.put_item(TableName=table, Item={"pk": {"S": f"k{i:04d}"}, "tag": {"S": tag}})


def test_writer_hammering_the_source_converges_after_drain(
    ddb: Any, streams: Any, table_name: Any, endpoint: str
) -> None:
    s = make_setup(ddb, table_name, endpoint, KEYS_B_N, phase=PHASE_BACKFILL)
    follower = s.follower(streams, batch_size=100)
    stop = threading.Event()
    thread = threading.Thread(target=follower.run, args=(stop,), daemon=True)
    thread.start()
    with ConcurrentWriter(
        ddb,
        s.source,
        dict(KeySchema=KEYS_B_N[0], AttributeDefinitions=KEYS_B_N[1]),
        seed=11,
        rate_per_s=200,
        key_space=60,
        max_ops=300,
        max_seconds=60,
    ) as writer:
        writer.join(timeout=90)
    result = follower.drain(timeout=60)
    thread.join(timeout=10)
    assert not thread.is_alive() and follower.error is None  # drain stopped run() too
    assert writer.succeeded == 300
    assert follower.applied >= 300 and result.lag.records_behind == 0
    assert follower.totals.tombstones > 0  # deletes during "backfill" were tombstones
    cleanup = finish_backfill(ddb, s.target, s.state)
    assert cleanup.removed > 0
    assert_identical(ddb, s.source, ddb, s.target, s.keys)


def test_checkpoint_and_restart_without_loss(
    ddb: Any, streams: Any, table_name: Any, endpoint: str
) -> None:
    s = make_setup(ddb, table_name, endpoint, KEYS_S)
    put_items(ddb, s.source, 0, 60)
    first = s.follower(streams, batch_size=20)
    first.poll_once()
    first.poll_once()
    assert first.applied == 40
    (checkpoint,) = s.state.shard_checkpoints().values()
    # The process dies here; more writes land, including updates of applied items.
    put_items(ddb, s.source, 30, 60, tag="v2")
    ddb.delete_item(TableName=s.source, Key={"pk": {"S": "k0001"}})
    second = s.follower(streams, batch_size=20)
    second.drain(timeout=60)
    assert second.applied == 60 + 60 + 1 - 40  # started after the checkpoint
    assert int(next(iter(s.state.shard_checkpoints().values()))) > int(checkpoint)
    assert_identical(ddb, s.source, ddb, s.target, s.keys)


def test_drain_applies_what_was_written_before_it_while_writes_go_on(
    ddb: Any, streams: Any, table_name: Any, endpoint: str
) -> None:
    s = make_setup(ddb, table_name, endpoint, KEYS_S)
    with ConcurrentWriter(
        ddb,
        s.source,
        ("pk",),
        seed=5,
        rate_per_s=50,
        key_space=40,
        max_ops=3000,
        max_seconds=60,
        operations=("put", "update"),
    ) as writer:
        assert writer.wait_for(20, timeout=30)
        ddb.put_item(TableName=s.source, Item={"pk": {"S": "marker"}, "at": {"N": "1"}})
        follower = s.follower(streams, batch_size=200)
        follower.drain(timeout=60)
        assert writer.running  # the writer never paused, yet the drain finished
    target = {i["pk"]["S"] for i in scan_all(ddb, s.target)}
    assert "marker" in target
    # Then everything else, after the writer stopped.
    StreamFollower(s.stream_arn, streams, s.replicator(), s.state).drain(timeout=60)
    assert_identical(ddb, s.source, ddb, s.target, s.keys)


def test_lag_counts_unapplied_records_and_their_age(
    ddb: Any, streams: Any, table_name: Any, endpoint: str
) -> None:
    s = make_setup(ddb, table_name, endpoint, KEYS_S)
    put_items(ddb, s.source, 0, 30)
    follower = s.follower(streams, batch_size=10)
    lag = follower.lag()
    assert lag.records_behind == 30 and lag.age_seconds >= 0
    follower.poll_once()
    assert follower.lag().records_behind == 20
    follower.drain(timeout=30)
    lag = follower.lag()
    assert lag.records_behind == 0 and lag.age_seconds == 0
    assert lag.last_applied_age_seconds is not None


@pytest.fixture
def handler_env(monkeypatch: Any) -> Iterator[Any]:
    def configure(s: Setup) -> None:
        for name, value in {
            "DYNASHIFT_MIGRATION_ID": s.state.migration_id,
            "DYNASHIFT_STATE_TABLE": s.state.table,
            "DYNASHIFT_TARGET_TABLE": s.target,
            "DYNASHIFT_ENDPOINT_URL": s.endpoint,
            "AWS_REGION": "us-east-1",
        }.items():
            monkeypatch.setenv(name, value)
        app.replicator.cache_clear()

    yield configure
    app.replicator.cache_clear()


def test_follower_feeds_the_lambda_handler(
    ddb: Any, streams: Any, table_name: Any, endpoint: str, handler_env: Any
) -> None:
    s = make_setup(ddb, table_name, endpoint, KEYS_B_N)
    handler_env(s)
    with ConcurrentWriter(
        ddb,
        s.source,
        dict(KeySchema=KEYS_B_N[0], AttributeDefinitions=KEYS_B_N[1]),
        seed=3,
        rate_per_s=200,
        key_space=20,
        max_ops=80,
        max_seconds=60,
    ) as writer:
        writer.join(timeout=90)
    follower = s.follower(streams, target=app.handler, batch_size=25)
    records = follower.lag().records_behind  # a re-create is two records
    assert records >= 80
    follower.drain(timeout=60)
    assert follower.applied == records
    assert_identical(ddb, s.source, ddb, s.target, s.keys)
