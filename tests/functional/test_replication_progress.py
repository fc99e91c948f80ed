"""Replication progress (issue 12): what the replicator records in the state store, and lag,
caught-up, drain, recheck and the replay retention proof read from it.

The state store is the real one on the moto server. Streams are either moto's (one shard that
never closes) or the fake of tests/support/fake_streams.py (shards that close, children,
overlapping sibling ranges, empty pages, trimmed parents) — a fake of AWS, never of our engine.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest

from dynashift.aws import ClientFactory, Side
from dynashift.errors import WorkerDeadlineError
from dynashift.follower import StreamFollower, to_lambda_record
from dynashift.models import PROCESS_CLIENTS, Clients, TableLocation
from dynashift.replication_progress import (
    EMPTY_PAGES_AT_TIP,
    ProgressChecker,
    ReadBudget,
    failed_records,
    record_batch,
    retention_gap,
)
from dynashift.replicator import Replicator
from dynashift.retry import Backoff
from dynashift.state import PHASE_PLAIN, StateStore
from dynashift.verify import Suspect, recheck
from dynashift.workflow.control import progress_drain, progress_lag
from tests.support.fake_streams import ARN, ChangingStreams
from tests.support.functions import create_function
from tests.support.reference import scan_all
from tests.support.tables import client, create_table
from tests.support.workflow import workflow_input

BASE = 1_700_000_000  # botocore_record(seq) was created at BASE + seq


class _StreamsFactory(ClientFactory):
    """A side's clients, but its DynamoDB Streams client is the fake handed in."""

    def __init__(self, side: Side, streams: Any) -> None:
        super().__init__(side)
        self._streams = streams

    def streams(self) -> Any:
        return self._streams


class Counting:
    """A streams client that counts DescribeStream pages and GetRecords calls per shard."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.describe = 0
        self.get_records_by_shard: Counter[str] = Counter()
        self._shard_of: dict[str, str] = {}

    def describe_stream(self, **kw: Any) -> Any:
        self.describe += 1
        return self.inner.describe_stream(**kw)

    def get_shard_iterator(self, **kw: Any) -> Any:
        resp = self.inner.get_shard_iterator(**kw)
        self._shard_of[resp["ShardIterator"]] = kw["ShardId"]
        return resp

    def get_records(self, **kw: Any) -> Any:
        shard = self._shard_of.get(kw["ShardIterator"], "?")
        self.get_records_by_shard[shard] += 1
        resp = self.inner.get_records(**kw)
        if resp.get("NextShardIterator"):
            self._shard_of[resp["NextShardIterator"]] = shard
        return resp


@pytest.fixture(scope="module")
def state_table(endpoint: str) -> str:
    name = f"prog-state-{uuid.uuid4().hex[:8]}"
    StateStore.ensure_table(client(endpoint), name)
    return name


@pytest.fixture
def state(endpoint: str, state_table: str) -> StateStore:
    return StateStore(client(endpoint), state_table, f"m-{uuid.uuid4().hex[:8]}")


def applied(state: StateStore, stream: ChangingStreams, shard: str, *runs: tuple[int, int]) -> None:
    """Record runs of a fake shard's records as applied batches (what Replicator.apply does)."""
    records = [to_lambda_record(r, ARN) for r in stream.shards[shard][1]]
    seqs = [int(r["dynamodb"]["SequenceNumber"]) for r in records]
    for first, last in runs:
        batch = records[seqs.index(first) : seqs.index(last) + 1]
        record_batch(state, batch, len(batch), None, None)


def checker(stream: Any, state: StateStore, **budget: Any) -> ProgressChecker:
    return ProgressChecker(stream, state, ARN, budget=ReadBudget(**({"min_interval": 0} | budget)))


# --- the walk -----------------------------------------------------------------------------------


def test_chaining_exact_starts_is_not_fooled_by_overlapping_sibling_ranges(
    state: StateStore,
) -> None:
    # A closed, then split into B and C, open siblings whose sequence ranges interleave.
    stream = ChangingStreams(
        {
            "A": (None, [100, 101, 102, 103, 104], True),
            "B": ("A", [200, 202, 204], False),
            "C": ("A", [201, 203, 205], False),
        },
        page=1000,
    )
    report = checker(stream, state).check()
    (a,) = report.behind(BASE + 50_000)
    assert a.shard_id == "A" and a.behind_seq == "100"  # children wait for their parent
    assert report.caught_up(BASE + 99)  # the first unapplied record is newer than that

    applied(state, stream, "A", (100, 102), (103, 104))  # two batches
    applied(state, stream, "B", (200, 204))  # one batch spanning C's 201 and 203
    applied(state, stream, "C", (201, 201))
    report = checker(stream, state).check()
    walks = {w.shard_id: w for w in report.shards}
    assert walks["A"].done and walks["A"].position == "104"
    assert walks["B"].behind_seq is None and walks["B"].position == "204"
    # 203 lies inside B's applied range 200..204 but no range starts at it in C: not applied.
    assert walks["C"].behind_seq == "203"
    assert walks["C"].behind_created == BASE + 203
    assert [w.shard_id for w in report.behind(BASE + 10_000)] == ["C"]
    assert "shard C: record 203" in report.describe_behind(BASE + 10_000)
    assert report.caught_up(BASE + 202)  # everything created up to then is applied


def test_a_check_stays_within_its_read_budget(state: StateStore) -> None:
    # 40 records of one open shard, applied in 20 batches; pages of 4 records.
    seqs = list(range(1, 41))
    stream = ChangingStreams({"A": (None, seqs, False)}, page=4)
    applied(state, stream, "A", *[(s, s + 1) for s in range(1, 41, 2)])
    counted = Counting(stream)
    walker = checker(counted, state, get_records_per_shard=2)
    checks = 0
    while not walker.check().caught_up(time.time()):
        checks += 1
        assert counted.get_records_by_shard["A"] <= 2 * checks
        assert checks < 20
    checks += 1
    # Each check read at most 2 pages; the walk jumps over applied ranges with
    # AFTER_SEQUENCE_NUMBER, then needs EMPTY_PAGES_AT_TIP empty pages at the tip.
    assert counted.get_records_by_shard["A"] <= 2 * checks
    assert counted.describe == checks
    # Inside min_interval a check reads nothing from the stream (answers from the saved walk),
    # and that walk's tip covers only what was written before it began.
    before = counted.get_records_by_shard["A"]
    again = ProgressChecker(counted, state, ARN, budget=ReadBudget(min_interval=60)).check()
    assert counted.get_records_by_shard["A"] == before
    assert again.caught_up(again.shards[0].checked_at)
    assert not again.caught_up(time.time())


def test_caught_up_within_two_checks_once_the_replicator_has_applied_everything(
    state: StateStore,
) -> None:
    stream = ChangingStreams({"A": (None, [1, 2, 3], False)}, page=1000)
    walker = checker(stream, state)
    assert not walker.check().caught_up(time.time())
    applied(state, stream, "A", (1, 3))
    first = walker.check()
    second = walker.check()
    assert second.caught_up(time.time()), second.describe_behind(time.time())
    assert first.shards[0].empty_pages + second.shards[0].empty_pages >= EMPTY_PAGES_AT_TIP


def test_one_check_settles_a_quiet_shard_whose_records_are_all_applied(
    state: StateStore,
) -> None:
    # Issue 14: the default budget reads a page of records AND the empty pages that prove the
    # tip, so the lag check after verification (and a drain) settles in one check instead of
    # waiting `min_interval` for a second one.
    stream = ChangingStreams({"A": (None, [1, 2, 3], False)}, page=1000)
    applied(state, stream, "A", (1, 3))
    counted = Counting(stream)
    report = ProgressChecker(counted, state, ARN).check()  # the default ReadBudget
    assert report.caught_up(time.time()), report.describe_behind(time.time())
    assert counted.get_records_by_shard["A"] <= EMPTY_PAGES_AT_TIP + 1
    # The drain forgets the tips read before it began, and still settles with one check.
    status = progress_drain(ProgressChecker(counted, state, ARN), timeout=300)
    assert status.caught_up, status.detail


def test_failed_records_count_those_never_applied_afterwards(state: StateStore) -> None:
    stream = ChangingStreams({"A": (None, [1, 2, 3, 4], False)})
    batch = [to_lambda_record(r, ARN) for r in stream.shards["A"][1]]
    record_batch(state, batch, 2, 2, "ConditionalCheckFailed: boom")  # 3 failed, 4 not tried
    assert failed_records(state, ARN) == 1
    record_batch(state, batch[2:], 2, None, None)  # the retry starts at the failed record
    assert failed_records(state, ARN) == 0
    walk = checker(stream, state).check()
    assert walk.shards[0].position == "4"


# --- drain ----------------------------------------------------------------------------------------


def test_drain_waits_for_the_child_of_a_shard_that_closed_and_fails_naming_it(
    state: StateStore,
) -> None:
    stream = ChangingStreams({"A": (None, [1, 2, 3], False)}, page=1000)
    applied(state, stream, "A", (1, 3))
    walker = checker(stream, state)
    walker.check()  # A is at its tip
    stream.split_on_read = [10, 11]  # A closes; child B holds records written before the drain
    status = progress_drain(walker, timeout=300)
    assert not status.caught_up and "shard B: record 10" in status.detail
    with pytest.raises(WorkerDeadlineError, match="shard B: record 10"):
        progress_drain(walker, timeout=0)
    applied(state, stream, "B", (10, 11))
    for _ in range(3):
        status = progress_drain(walker, timeout=300)
        if status.caught_up:
            break
    assert status.caught_up, status.detail


def test_drain_pages_past_empty_pages_to_later_records(state: StateStore) -> None:
    stream = ChangingStreams({"A": (None, [1, 2, 3, 4, 5], False)}, page=3, gaps={3: 2})
    applied(state, stream, "A", (1, 3))
    walker = checker(stream, state, get_records_per_shard=4)
    status = progress_drain(walker, timeout=300)
    assert not status.caught_up and "record 4" in status.detail


# --- replay retention -----------------------------------------------------------------------------


def test_retention_gap_when_the_oldest_lineage_lost_its_parent() -> None:
    stream = ChangingStreams({"E": ("gone", [500, 501], False)})
    reason = retention_gap(stream, ARN, BASE + 400)
    assert reason is not None and "parent shard gone is gone" in reason
    assert "start a new migration" in reason
    assert retention_gap(stream, ARN, BASE + 600) is None  # its oldest record predates the scan


def test_replay_whose_stream_lost_records_is_not_ready_and_writes_nothing(
    ddb: Any, endpoint: str, table_name: Any
) -> None:
    from dynashift.workflow import steps
    from dynashift.workflow.control import EventSourceMappingControl
    from dynashift.workflow.steps import ReadinessEvent, ReplicationEvent, state_store

    source, target = table_name("ret-src"), table_name("ret-tgt")
    create_table(ddb, source, stream=True)
    create_table(ddb, target)
    arn = ddb.describe_table(TableName=source)["Table"]["LatestStreamArn"]
    for i in range(3):
        ddb.put_item(TableName=source, Item={"pk": {"S": f"k{i}"}})
    wf = workflow_input(endpoint, source, target, segments=1)
    spec = wf.spec.model_copy(update={"strategy": "replay"})
    StateStore.ensure_table(ddb, spec.state.name)
    state = state_store(spec)
    state.put_meta(backfill_started=time.time() - 60)
    # The stream as AWS would show it 24 h later: the first shard trimmed away.
    fake = ChangingStreams({"E": ("gone", [1], False)})
    fake.shards["E"][1][0]["dynamodb"]["ApproximateCreationDateTime"] = datetime.now(UTC)
    # Every table of this test is on one endpoint: one factory, whose stream is the fake.
    clients = Clients.fixed(_StreamsFactory(spec.source.side, fake))
    # The AWS control path on the moto server: a replicator function its mappings can name.
    lam, function = _replicator_function(endpoint)
    control = EventSourceMappingControl(
        lam,
        function,
        dlq_arn=None,
        streams_client=lambda _spec: fake,
    )

    def mappings() -> list[Any]:
        return list(lam.list_event_source_mappings(FunctionName=function)["EventSourceMappings"])

    event = ReplicationEvent(spec=spec, settings=wf.settings, action="start_after_backfill")
    out = steps.replication(event.model_copy(update={"stream_arn": arn}), control, clients=clients)
    assert out["started"] is False and "no longer holds" in out["replication_problem"]
    assert not mappings(), "the replicator was started on a stream that lost records"
    lag = steps.replication(
        ReplicationEvent(spec=spec, settings=wf.settings, action="lag"), control, clients=clients
    )
    assert lag["give_up"] and not lag["caught_up"]
    verdict = steps.readiness(
        ReadinessEvent(spec=spec, settings=wf.settings), control, clients=clients
    )
    assert not verdict.ready
    report = state.report() or {}
    (lag_check,) = [c for c in report["checks"] if c["name"] == "replication lag"]
    assert not lag_check["ok"] and "no longer holds" in lag_check["detail"]
    assert scan_all(ddb, target) == []

    # A resumed run whose replicator had already started is not refused later (its stream was
    # read from the start then; old records expiring since lose nothing).
    resumed = spec.model_copy(update={"migration_id": spec.migration_id + "-r"})
    state_store(resumed).put_meta(backfill_started=time.time() - 60, replicator="started")
    again = ReplicationEvent(
        spec=resumed, settings=wf.settings, action="start_after_backfill", stream_arn=arn
    )
    try:
        assert steps.replication(again, control, clients=clients)["started"] is True
        assert len(mappings()) == 1, "the resumed replay's replicator was not started"
    finally:
        for mapping in mappings():
            lam.delete_event_source_mapping(UUID=mapping["UUID"])


def _replicator_function(endpoint: str) -> tuple[Any, str]:
    """A function on the moto server for event source mappings to name (never invoked here)."""
    name = f"replicator-{uuid.uuid4().hex[:8]}"
    create_function(endpoint, name)
    return client(endpoint, "lambda"), name


# --- on moto: the replicator records, the control reads ----------------------------------


class Delayed:
    """A streams client whose GetRecords hands out only records older than `delay` seconds (the
    page stops at the first younger one and its iterator resumes there): stream delivery that
    takes as long as an event source mapping's."""

    def __init__(self, inner: Any, delay: float) -> None:
        self.inner, self.delay = inner, delay
        self._where: dict[str, tuple[str, str]] = {}

    def describe_stream(self, **kw: Any) -> Any:
        return self.inner.describe_stream(**kw)

    def get_shard_iterator(self, **kw: Any) -> Any:
        resp = self.inner.get_shard_iterator(**kw)
        self._where[resp["ShardIterator"]] = (kw["StreamArn"], kw["ShardId"])
        return resp

    def get_records(self, **kw: Any) -> Any:
        arn, shard = self._where[kw["ShardIterator"]]
        resp = dict(self.inner.get_records(**kw))
        records = resp.get("Records", [])
        young = [
            i
            for i, r in enumerate(records)
            if r["dynamodb"]["ApproximateCreationDateTime"].timestamp() > time.time() - self.delay
        ]
        if young:
            cut = young[0]
            resp["Records"] = records[:cut]
            resp["NextShardIterator"] = self.inner.get_shard_iterator(
                StreamArn=arn,
                ShardId=shard,
                ShardIteratorType="AT_SEQUENCE_NUMBER",
                SequenceNumber=records[cut]["dynamodb"]["SequenceNumber"],
            )["ShardIterator"]
        if resp.get("NextShardIterator"):
            self._where[resp["NextShardIterator"]] = (arn, shard)
        return resp


class Live:
    """A source with a stream, a target, a state store and a follower thread (the replicator
    engine, which records its progress) — the local half of the AWS path."""

    def __init__(self, ddb: Any, endpoint: str, table_name: Any) -> None:
        self.ddb = ddb
        self.source, self.target = table_name("pg-src"), table_name("pg-tgt")
        create_table(ddb, self.source, stream=True)
        create_table(ddb, self.target)
        self.arn = ddb.describe_table(TableName=self.source)["Table"]["LatestStreamArn"]
        wf = workflow_input(endpoint, self.source, self.target, segments=1)
        self.spec, self.settings = wf.spec, wf.settings
        StateStore.ensure_table(ddb, self.spec.state.name)
        from dynashift.workflow.steps import state_store

        self.state = state_store(self.spec)
        self.state.put_meta(stream_arn=self.arn, phase=PHASE_PLAIN)
        side = Side(endpoint_url=endpoint)
        engine = Replicator(
            TableLocation(name=self.target, side=side),
            ("pk",),
            state=self.state,
            clients=Clients.fixed(ClientFactory(side)),
        )
        self.streams = PROCESS_CLIENTS(self.spec.source).streams()
        # The replicator sees each record 1.2 s after it was written, like an event source
        # mapping (one-second batching window plus delivery).
        self.follower = StreamFollower(
            self.arn,
            Delayed(self.streams, 1.2),
            engine,
            None,
            backoff=Backoff(base=0.05, cap=0.1),
        )
        self.stop = threading.Event()
        self.thread: threading.Thread | None = None

    def start(self) -> None:
        self.thread = threading.Thread(target=self.follower.run, args=(self.stop,), daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.stop.set()
        if self.thread:
            self.thread.join(10)


@pytest.fixture
def live(ddb: Any, endpoint: str, table_name: Any) -> Iterator[Live]:
    setup = Live(ddb, endpoint, table_name)
    yield setup
    setup.close()


def test_lag_reads_behind_then_caught_up_from_what_the_replicator_recorded(live: Live) -> None:
    for i in range(30):
        live.ddb.put_item(TableName=live.source, Item={"pk": {"S": f"k{i}"}})
    counted = Counting(live.streams)
    walker = ProgressChecker(counted, live.state, live.arn, budget=ReadBudget(min_interval=0))
    behind = progress_lag(walker)
    assert not behind.caught_up and behind.records_behind == 30
    assert behind.age_seconds is not None and "not applied" in behind.detail
    live.start()
    deadline = time.time() + 30
    while not (status := progress_lag(walker)).caught_up:
        assert time.time() < deadline, status.detail
        time.sleep(0.2)
    assert status.age_seconds == 0.0 and status.failed_records == 0
    (shard,) = counted.get_records_by_shard
    checks = counted.describe  # one DescribeStream page per check (one shard)
    assert counted.get_records_by_shard[shard] <= 2 * checks
    assert live.state.progress_ranges(live.arn)


def test_recheck_settles_a_key_written_twice_a_second(live: Live) -> None:
    key = {"pk": {"S": "hot"}}
    live.ddb.put_item(TableName=live.source, Item=key | {"n": {"N": "0"}})
    live.start()
    stop = threading.Event()

    def write() -> None:
        n = 1
        while not stop.is_set():
            live.ddb.put_item(TableName=live.source, Item=key | {"n": {"N": str(n)}})
            n += 1
            stop.wait(0.5)

    writer = threading.Thread(target=write, daemon=True)
    writer.start()
    walker = ProgressChecker(live.streams, live.state, live.arn, budget=ReadBudget(min_interval=0))
    from dynashift.replication_progress import saved_walks, window_images

    def caught_up(since: float) -> bool:
        return progress_lag(walker, datetime.fromtimestamp(since, UTC)).caught_up

    def images() -> Any:
        positions = saved_walks(live.state, live.arn)

        def read(start: float, end: float, keys: Any, names: Any) -> Any:
            return window_images(
                live.streams,
                live.state,
                live.arn,
                start=start,
                end=end,
                keys=keys,
                key_names=names,
                positions=positions,
            )

        return read

    try:
        result = recheck(
            live.spec,
            [Suspect(kind="differing", key=key)],
            caught_up=caught_up,
            images=images,
            # Checks every 2 s: the first one after the round's first read finds the replicator
            # behind (records reach it 1.2 s late); by the second it applied records written
            # after that read, and more have been written since: without the images the
            # stream carried, S1 != T != S2 in every round.
            poll=2.0,
        )
    finally:
        stop.set()
        writer.join(5)
    assert result.divergent == 0 and result.unsettled == 0 and result.settled == 1, result
    # The writer stopped: once drained, an independent comparison finds the tables identical.
    deadline = time.time() + 30
    while not progress_drain(walker, timeout=30).caught_up:
        assert time.time() < deadline
        time.sleep(0.2)
    assert scan_all(live.ddb, live.source) == scan_all(live.ddb, live.target)


def test_the_engine_records_only_the_applied_prefix_of_a_failed_batch(live: Live) -> None:
    for i in range(3):
        live.ddb.put_item(TableName=live.source, Item={"pk": {"S": f"k{i}"}})
    shard = live.streams.describe_stream(StreamArn=live.arn)["StreamDescription"]["Shards"][0]
    iterator = live.streams.get_shard_iterator(
        StreamArn=live.arn, ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON"
    )["ShardIterator"]
    records = [
        to_lambda_record(r, live.arn)
        for r in live.streams.get_records(ShardIterator=iterator)["Records"]
    ]
    del records[1]["dynamodb"]["NewImage"]  # the second record cannot be applied
    result = live.follower.target.apply(records)  # the Replicator engine itself
    assert result.failed_index == 1
    seqs = [r["dynamodb"]["SequenceNumber"] for r in records]
    (only,) = live.state.progress_ranges(live.arn)
    assert (only.first, only.last, only.count, only.stream) == (seqs[0], seqs[0], 1, live.arn)
    (failure,) = live.state.progress_failures(live.arn)
    assert failure.sequence == seqs[1] and "NewImage" in failure.error
    assert failed_records(live.state, live.arn) == 1


def test_status_shows_the_lag_read_from_progress(live: Live) -> None:
    from types import SimpleNamespace

    from dynashift.cli.status_cmd import _lag

    live.ddb.put_item(TableName=live.source, Item={"pk": {"S": "a"}})
    age, detail = _lag(SimpleNamespace(state=live.state, spec=live.spec))
    assert age is not None and "not applied" in detail
    assert live.state.walks() == {}  # read-only: the workflow's walk is not moved


def test_aws_control_path_with_the_lambda_handler_fed_like_an_event_source_mapping(
    live: Live, monkeypatch: pytest.MonkeyPatch
) -> None:
    from dynashift.workflow.control import ESM_BATCH_SIZE, EventSourceMappingControl
    from functions.replicator import app

    for name, value in {
        "DYNASHIFT_MIGRATION_ID": live.spec.migration_id,
        "DYNASHIFT_STATE_TABLE": live.spec.state.name,
        "DYNASHIFT_TARGET_TABLE": live.target,
        "DYNASHIFT_ENDPOINT_URL": live.spec.source.side.endpoint_url or "",
        "AWS_REGION": "us-east-1",
    }.items():
        monkeypatch.setenv(name, value)
    app.replicator.cache_clear()
    # Lambda-shaped batches of one shard, no shard id, no checkpoints: the handler is all
    # that records progress, as behind a real event source mapping.
    live.follower = StreamFollower(
        live.arn, live.streams, app.handler, None, batch_size=ESM_BATCH_SIZE
    )
    counted = Counting(live.streams)
    control = EventSourceMappingControl(
        None,
        "replicator",
        dlq_arn=None,
        streams_client=lambda _spec: counted,
        budget=ReadBudget(min_interval=0),
    )

    def check(action: Any) -> Any:
        before = counted.get_records_by_shard.copy()
        status = action(live.spec)
        for shard, calls in counted.get_records_by_shard.items():
            limit = ReadBudget().get_records_per_shard
            assert calls - before.get(shard, 0) <= limit, "read budget exceeded"
        return status

    try:
        for i in range(150):
            live.ddb.put_item(TableName=live.source, Item={"pk": {"S": f"k{i}"}})
        behind = check(control.lag)
        assert not behind.caught_up and behind.records_behind and behind.records_behind > 0
        live.start()
        deadline = time.time() + 60
        while live.follower.applied < 150:
            assert time.time() < deadline
            time.sleep(0.2)
        first, second = check(control.lag), check(control.lag)
        assert second.caught_up, (first.detail, second.detail)  # within two checks
        for _ in range(5):
            if (drained := check(control.drain)).caught_up:
                break
        assert drained.caught_up, drained.detail
        assert scan_all(live.ddb, live.source) == scan_all(live.ddb, live.target)
    finally:
        app.replicator.cache_clear()
