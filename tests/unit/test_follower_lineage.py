"""The follower against a FAKE streams client: several parent/child shards (moto has one shard
per table), expired iterators, throttling, paging, restart, failure retry and drain."""

from __future__ import annotations

import json
import random
import threading
import time
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import pytest

from dynashift.errors import RuntimeFailure
from dynashift.follower import StreamFollower, to_lambda_record
from dynashift.replicator import ApplyResult
from dynashift.retry import Backoff
from tests.support.clock import ManualClock
from tests.support.fake_streams import ARN, ChangingStreams, FakeStreams, botocore_record


class Recorder:
    """A stand-in Replicator: records what it is given, fails on request."""

    def __init__(self, poison: str | None = None, poison_times: int = 0) -> None:
        self.applied: list[str] = []
        self.batches: list[list[dict[str, Any]]] = []
        self.poison = poison
        self.poison_times = poison_times

    def apply(self, records: Sequence[Mapping[str, Any]]) -> ApplyResult:
        self.batches.append([dict(r) for r in records])
        result = ApplyResult()
        for i, r in enumerate(records):
            seq = r["dynamodb"]["SequenceNumber"]
            if seq == self.poison and self.poison_times > 0:
                self.poison_times -= 1
                result.failed_index, result.error = i, "poisoned"
                return result
            self.applied.append(seq)
            result.applied += 1
        return result


class FakeState:
    """The two StateStore methods the follower uses, in memory."""

    def __init__(self) -> None:
        self.checkpoints: dict[str, str] = {}
        self.saves = 0

    def shard_checkpoints(self) -> dict[str, str]:
        return dict(self.checkpoints)

    def save_shard_checkpoint(self, shard_id: str, sequence_number: str, **_: Any) -> None:
        self.checkpoints[shard_id] = sequence_number
        self.saves += 1


#: Listed children first: order must come from lineage, not from the listing.
LINEAGE = {
    "D": ("B", [400, 401], False),
    "C": ("A", [300, 301, 302, 303, 304, 305], False),
    "B": ("A", [200, 201, 202], True),
    "A": (None, [100, 101, 102, 103, 104], True),
    "E": ("trimmed-parent", [500, 501], True),
}
ALL = sorted(str(s) for _, seqs, _ in LINEAGE.values() for s in seqs)


def poll_until(follower: StreamFollower, done: Any, polls: int = 200) -> int:
    for n in range(polls):
        if done():
            return n
        follower.poll_once()
    raise AssertionError(f"not done after {polls} polls")


def assert_lineage_order(applied: list[str]) -> None:
    pos = {s: i for i, s in enumerate(applied)}
    for _sid, (parent, seqs, _) in LINEAGE.items():
        mine = [pos[str(s)] for s in seqs]
        assert mine == sorted(mine), "records of one shard out of order"
        if parent in LINEAGE:
            last_parent = max(pos[str(s)] for s in LINEAGE[parent][1])
            assert min(mine) > last_parent, f"child of {parent} read before its parent finished"


def make(stream: FakeStreams, target: Any, state: Any = None, **kw: Any) -> StreamFollower:
    return StreamFollower(ARN, stream, target, state, clock=ManualClock(), **kw)


def test_parents_before_children_with_expired_iterators_and_throttling() -> None:
    stream = FakeStreams(LINEAGE, expire_every=3, throttle_every=7)
    rec = Recorder()
    follower = make(stream, rec, FakeState(), batch_size=2)
    poll_until(follower, lambda: sorted(rec.applied) == ALL)
    assert sorted(rec.applied) == ALL and len(rec.applied) == len(ALL)  # each exactly once
    assert_lineage_order(rec.applied)
    assert stream.expired > 0 and stream.throttled > 0
    assert follower.lag().records_behind == 0


def test_events_have_the_lambda_shape() -> None:
    stream = FakeStreams({"A": (None, [7], False)})
    rec = Recorder()
    make(stream, rec).poll_once()
    (event,) = rec.batches[0]
    json.dumps(event)  # JSON as Lambda delivers it: no bytes, no datetimes
    assert event["eventSourceARN"] == ARN
    assert event["dynamodb"]["NewImage"]["b"] == {"B": "AP8="}
    assert event["dynamodb"]["ApproximateCreationDateTime"] == 1_700_000_007.0


def test_ttl_identity_is_converted_to_lambda_field_names() -> None:
    raw = botocore_record(1, "REMOVE")
    raw["userIdentity"] = {"Type": "Service", "PrincipalId": "dynamodb.amazonaws.com"}
    event = to_lambda_record(raw, ARN)
    assert event["userIdentity"] == {"type": "Service", "principalId": "dynamodb.amazonaws.com"}


def test_restart_continues_from_the_checkpoint_without_loss() -> None:
    state = FakeState()
    first = Recorder()
    follower = make(FakeStreams(LINEAGE), first, state, batch_size=2)
    for _ in range(3):
        follower.poll_once()
    assert 0 < len(first.applied) < len(ALL)
    # A new process: new follower, same state store; the old one is gone.
    second = Recorder()
    follower2 = make(FakeStreams(LINEAGE), second, state, batch_size=2)
    poll_until(follower2, lambda: sorted(first.applied + second.applied) == ALL)
    assert not set(first.applied) & set(second.applied)  # checkpointed batches not redone
    assert_lineage_order(first.applied + second.applied)


def test_failed_record_is_retried_first_and_nothing_overtakes_it() -> None:
    rec = Recorder(poison="302", poison_times=3)
    follower = make(FakeStreams(LINEAGE), rec, FakeState(), batch_size=4)
    poll_until(follower, lambda: sorted(rec.applied) == ALL)
    assert len(rec.applied) == len(ALL)
    assert_lineage_order(rec.applied)


def test_a_record_failing_for_good_raises_after_bounded_attempts() -> None:
    rec = Recorder(poison="101", poison_times=10**6)
    follower = make(FakeStreams(LINEAGE), rec, None, max_record_attempts=4)
    with pytest.raises(RuntimeFailure, match=r"101 .* failed 4 times"):
        poll_until(follower, lambda: False)
    assert "102" not in rec.applied and "200" not in rec.applied


def test_lambda_handler_target_gets_events_and_reports_failures() -> None:
    applied: list[str] = []
    fails = {"n": 2}

    def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
        assert context.aws_request_id
        seqs = [r["dynamodb"]["SequenceNumber"] for r in event["Records"]]
        for i, s in enumerate(seqs):
            if s == "103" and fails["n"]:
                fails["n"] -= 1
                return {"batchItemFailures": [{"itemIdentifier": x} for x in seqs[i:]]}
            applied.append(s)
        return {"batchItemFailures": []}

    follower = make(FakeStreams(LINEAGE), handler, FakeState(), batch_size=3)
    poll_until(follower, lambda: sorted(applied) == ALL)
    assert len(applied) == len(ALL)
    assert_lineage_order(applied)


def test_trimmed_checkpoint_is_a_loud_failure() -> None:
    stream = FakeStreams({"A": (None, [1, 2, 3], False)})
    stream.trimmed.add("A")
    state = FakeState()
    state.checkpoints["A"] = "1"
    with pytest.raises(RuntimeFailure, match="trimmed"):
        make(stream, Recorder(), state).poll_once()


def test_drain_applies_what_was_there_and_stops_while_writes_continue() -> None:
    stream = FakeStreams(LINEAGE, grow="C")
    rec = Recorder()
    follower = make(stream, rec, FakeState(), batch_size=2, clock_skew=0.0)
    result = follower.drain(timeout=30)
    assert set(ALL) <= set(rec.applied)
    assert follower.finished and result.applied == len(rec.applied)
    assert_lineage_order([s for s in rec.applied if s in set(ALL)])


# --- drain: it must not stop before everything written before it is applied (issue 12) -------


def test_drain_applies_the_child_of_a_shard_that_closes_while_it_runs() -> None:
    stream = ChangingStreams({"A": (None, [1, 2, 3], False)}, page=3)
    rec = Recorder()
    follower = make(stream, rec, FakeState(), clock_skew=0.0)
    follower.poll_once()  # at A's tip; A discovered just now (rediscovery every 10 s)
    assert rec.applied == ["1", "2", "3"]
    stream.split_on_read = [10, 11]  # A closes and B gets records (created long ago)
    follower.drain(timeout=30)
    assert rec.applied == ["1", "2", "3", "10", "11"]


def test_drain_pages_past_empty_pages_before_later_records() -> None:
    # After record 3 the shard answers two empty pages before records 4 and 5.
    stream = ChangingStreams({"A": (None, [1, 2, 3, 4, 5], False)}, page=3, gaps={3: 2})
    rec = Recorder()
    follower = make(stream, rec, FakeState(), clock_skew=0.0)
    follower.drain(timeout=30)
    assert rec.applied == ["1", "2", "3", "4", "5"]


def test_drain_measures_from_the_streams_clock_not_the_local_one() -> None:
    # The stream's clock runs 120 s ahead of ours: records stamped 60 s ahead of the local clock
    # were written BEFORE the drain began (by the stream's clock) and must all be applied.
    stream = ChangingStreams({"A": (None, [1, 2, 3, 4], False)}, page=1)
    for _, records, _ in stream.shards.values():
        for r in records:
            r["dynamodb"]["ApproximateCreationDateTime"] = datetime.fromtimestamp(
                time.time() + 60, UTC
            )
    stream.clock_ahead = 120.0
    rec = Recorder()
    follower = make(stream, rec, FakeState())
    follower.drain(timeout=30)
    assert rec.applied == ["1", "2", "3", "4"]


def test_idle_waits_back_off_on_the_injected_clock() -> None:
    """Issue 15 item 4: `run` waits between empty polls on the follower's clock (instant with a
    manual one), backing off exponentially up to the cap, and ends when `stop` is set."""
    stop = threading.Event()

    class StopAfterFive(ManualClock):
        def sleep(self, seconds: float) -> None:
            super().sleep(seconds)
            if len(self.sleeps) == 5:
                stop.set()

    clock = StopAfterFive()
    rec = Recorder()
    follower = StreamFollower(
        ARN,
        FakeStreams({"A": (None, [1, 2], False)}),
        rec,
        None,
        clock=clock,
        backoff=Backoff(base=1.0, cap=4.0, rng=random.Random(1)),
    )
    follower.run(stop)
    assert sorted(rec.applied) == ["1", "2"]
    assert len(clock.sleeps) == 5 and all(0 <= s <= 4.0 for s in clock.sleeps)
    assert clock.now == sum(clock.sleeps)
