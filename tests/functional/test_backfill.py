"""The backfill segment worker against a moto server: counters, conditions, resume, faults."""

from __future__ import annotations

import time
import uuid
from typing import Any

import pytest

from dynashift.backfill import (
    COUNTERS,
    SegmentResult,
    backfill_all,
    replay_refusal,
    run_segment,
    start_backfill,
    total_counters,
)
from dynashift.errors import BadInputError, RuntimeFailure, TransientError
from dynashift.items import TOMBSTONE_ATTR
from dynashift.plan import plan_segments
from dynashift.ratelimit import RateLimiter
from dynashift.retry import Backoff
from dynashift.state import PHASE_BACKFILL, PHASE_PLAIN
from dynashift.tombstones import finish_backfill, tombstone_item
from tests.support.backfill import (
    StreamApplier,
    delete_and_change_in_flight,
    fail_every,
    leave_unprocessed,
    make_spec,
    make_state,
)
from tests.support.clock import ManualClock, NoSleepClock
from tests.support.reference import assert_identical, scan_all
from tests.support.tables import HASH_RANGE, client, create_table, enable_stream, fill, simple_items


def mid() -> str:
    return f"bf-{uuid.uuid4().hex[:10]}"


@pytest.fixture
def tables(endpoint: str, table_name: Any) -> Any:
    """(source, target, clients) with 300 items in the source and an empty target."""
    src, dst = table_name("src"), table_name("dst")
    ddb = client(endpoint)
    create_table(ddb, src)
    create_table(ddb, dst)
    fill(ddb, src, simple_items(300))
    return src, dst, ddb


def fast_backoff() -> Backoff:
    return Backoff(base=0.001, cap=0.01, clock=NoSleepClock())


def test_copies_every_item_and_reports_every_counter(endpoint: str, tables: Any) -> None:
    src, dst, ddb = tables
    spec = make_spec(endpoint, src, dst, mid(), segments=3)
    state = make_state(ddb, spec)
    results = backfill_all(spec, state=state, page_size=40)
    assert_identical(ddb, src, ddb, dst, ("pk",))
    counters = total_counters(results)
    assert set(COUNTERS) <= set(counters)
    assert counters["scanned"] == 300
    assert counters["written"] == 300
    assert counters["skipped_newer"] == counters["tombstones_honoured"] == 0
    assert counters["throttles"] == counters["retries"] == counters["unprocessed"] == 0
    assert counters["invocations"] == 3
    assert counters["pages"] >= 300 // 40
    assert all(r.done and r.cursor is None for r in results)
    # checkpoints are durable, and the phase was set before the first page
    assert all(s.done for s in state.segments()) and len(state.segments()) == 3
    assert state.phase() == PHASE_BACKFILL
    # a finished segment is a no-op
    again = run_segment(spec, 0, state=state, budget_seconds=60)
    assert again.done and again.counters == results[0].counters
    # the result travels as JSON
    assert SegmentResult.model_validate_json(results[1].model_dump_json()) == results[1]


def test_failed_conditions_are_counted_not_overwritten(endpoint: str, tables: Any) -> None:
    src, dst, ddb = tables
    newer = [{"pk": {"S": f"k{i:05d}"}, "v": {"N": "999"}, "s": {"S": "newer"}} for i in range(10)]
    fill(ddb, dst, newer)
    for i in range(10, 15):
        ddb.put_item(TableName=dst, Item=tombstone_item({"pk": {"S": f"k{i:05d}"}}, time.time()))
    spec = make_spec(endpoint, src, dst, mid(), segments=2)
    counters = total_counters(backfill_all(spec, state=make_state(ddb, spec), page_size=50))
    assert counters["skipped_newer"] == 10
    assert counters["tombstones_honoured"] == 5
    assert counters["written"] == 285
    assert counters["scanned"] == 300
    held = ddb.get_item(TableName=dst, Key={"pk": {"S": "k00003"}})["Item"]
    assert held["s"] == {"S": "newer"}
    tomb = ddb.get_item(TableName=dst, Key={"pk": {"S": "k00012"}})["Item"]
    assert TOMBSTONE_ATTR in tomb and "s" not in tomb


def test_version_attribute_replaces_only_older_versions(endpoint: str, tables: Any) -> None:
    src, dst, ddb = tables
    # target: k0 older (v=-1 < 0), k1 newer (v=1000 > 1), k2 a tombstone with an old version
    ddb.put_item(TableName=dst, Item={"pk": {"S": "k00000"}, "v": {"N": "-1"}})
    ddb.put_item(TableName=dst, Item={"pk": {"S": "k00001"}, "v": {"N": "1000"}})
    ddb.put_item(
        TableName=dst,
        Item={**tombstone_item({"pk": {"S": "k00002"}}, time.time()), "v": {"N": "-5"}},
    )
    spec = make_spec(endpoint, src, dst, mid(), segments=1, version_attribute="v")
    (result,) = backfill_all(spec, state=make_state(ddb, spec))
    assert result.counters["written"] == 298
    assert result.counters["skipped_newer"] == 1
    assert result.counters["tombstones_honoured"] == 1
    assert ddb.get_item(TableName=dst, Key={"pk": {"S": "k00000"}})["Item"]["v"] == {"N": "0"}
    assert ddb.get_item(TableName=dst, Key={"pk": {"S": "k00001"}})["Item"]["v"] == {"N": "1000"}


class FakeClock(ManualClock):
    """Advances one second per PutItem (so budgets are spent without waiting)."""

    def tick(self, **_kwargs: Any) -> None:
        self.advance(1.0)


def test_returns_before_the_budget_and_resumes_mid_page(endpoint: str, tables: Any) -> None:
    src, dst, ddb = tables
    spec = make_spec(endpoint, src, dst, mid(), segments=2)
    state = make_state(ddb, spec)
    target = client(endpoint)
    clock = FakeClock()
    target.meta.events.register("before-call.dynamodb.PutItem", clock.tick)
    results: list[SegmentResult] = []
    for segment in range(2):
        cursor = None
        for _ in range(200):
            started = clock.now
            result = run_segment(
                spec,
                segment,
                state=state,
                budget_seconds=40,
                cursor=cursor,
                clock=clock,
                target_client=target,
                page_size=100,
                max_in_flight=4,
            )
            # stopped in time: at most the in-flight requests ran past the soft deadline
            assert clock.now - started <= 40 + 4
            if result.done:
                break
            assert result.cursor is not None
            # alternate: pass the cursor back, or let the worker read the committed one
            cursor = result.cursor if len(results) % 2 else None
            results.append(result)
        results.append(result)
        assert result.done
    assert_identical(ddb, src, ddb, dst, ("pk",))
    counters = total_counters([r for r in results if r.done])
    assert counters["written"] == 300  # never a duplicate write
    assert counters["skipped_newer"] == 0
    assert counters["invocations"] >= 300 // 40


class Killed(BaseException):
    """The worker process dies (not an exception the engine may handle)."""


def test_resumes_after_a_worker_is_killed_mid_segment(endpoint: str, tables: Any) -> None:
    src, dst, ddb = tables
    spec = make_spec(endpoint, src, dst, mid(), segments=1)
    state = make_state(ddb, spec)
    doomed = client(endpoint)
    puts = {"n": 0}

    def kill_after_130(**_kwargs: Any) -> None:
        puts["n"] += 1
        if puts["n"] == 130:
            raise Killed

    doomed.meta.events.register("before-call.dynamodb.PutItem", kill_after_130)
    with pytest.raises(Killed):
        run_segment(
            spec,
            0,
            state=state,
            budget_seconds=60,
            target_client=doomed,
            page_size=50,
            max_in_flight=1,
        )
    saved = state.segment(0)
    assert not saved.done and saved.cursor is not None
    assert saved.counters["written"] == 100  # two pages committed, the third was in flight
    result = run_segment(spec, 0, state=state, budget_seconds=60, page_size=50)
    assert result.done
    assert_identical(ddb, src, ddb, dst, ("pk",))
    # the crashed page's 29 puts are rewritten harmlessly: their conditions fail
    assert result.counters["written"] == 271
    assert result.counters["skipped_newer"] == 29
    assert result.counters["scanned"] == 300
    assert result.counters["invocations"] == 2


def test_throttled_puts_are_retried_and_slow_the_limiter(endpoint: str, tables: Any) -> None:
    src, dst, ddb = tables
    spec = make_spec(endpoint, src, dst, mid(), segments=2)
    target = client(endpoint)
    injected = fail_every(target, "PutItem", 7, "ProvisionedThroughputExceededException")
    fail_every(target, "PutItem", 23, "InternalServerError")
    limiter = RateLimiter(100_000, clock=NoSleepClock())
    results = backfill_all(
        spec,
        state=make_state(ddb, spec),
        limiter=limiter,
        target_client=target,
        backoff=fast_backoff(),
        page_size=60,
    )
    counters = total_counters(results)
    assert_identical(ddb, src, ddb, dst, ("pk",))
    assert counters["written"] == 300
    assert counters["throttles"] == len(injected) > 0
    assert counters["retries"] > counters["throttles"]  # 5xx errors are retried too
    assert limiter.throttles == counters["throttles"]
    assert limiter.rate is not None and limiter.rate < 100_000


def test_a_non_retryable_error_stops_the_worker_with_a_named_error(
    endpoint: str, tables: Any
) -> None:
    src, dst, ddb = tables
    spec = make_spec(endpoint, src, dst, mid(), segments=1)
    target = client(endpoint)
    fail_every(target, "PutItem", 1, "ValidationException")
    with pytest.raises(RuntimeFailure, match="ValidationException"):
        run_segment(spec, 0, state=make_state(ddb, spec), budget_seconds=60, target_client=target)
    target2 = client(endpoint)
    fail_every(target2, "PutItem", 1, "ThrottlingException")
    backoff = Backoff(base=0.001, cap=0.001, max_attempts=3, clock=NoSleepClock())
    with pytest.raises(TransientError):
        run_segment(
            spec,
            0,
            state=make_state(ddb, spec),
            budget_seconds=60,
            target_client=target2,
            backoff=backoff,
            limiter=RateLimiter(None, clock=NoSleepClock()),
        )


def test_replay_writes_batches_and_retries_unprocessed_items(endpoint: str, tables: Any) -> None:
    src, dst, ddb = tables
    spec = make_spec(endpoint, src, dst, mid(), segments=2, strategy="replay")
    target = client(endpoint)
    dropped = leave_unprocessed(target, every=2, count=5)
    throttled = fail_every(target, "BatchWriteItem", 5, "ProvisionedThroughputExceededException")
    results = backfill_all(
        spec,
        state=make_state(ddb, spec),
        target_client=target,
        backoff=fast_backoff(),
        limiter=RateLimiter(None, clock=NoSleepClock()),
        page_size=70,
    )
    counters = total_counters(results)
    assert_identical(ddb, src, ddb, dst, ("pk",))
    assert counters["written"] == 300
    assert counters["unprocessed"] == sum(dropped) > 0
    assert counters["retries"] == counters["throttles"] >= len(dropped) + len(throttled)


def test_replay_is_refused_when_the_backfill_would_outlast_retention(
    endpoint: str, tables: Any
) -> None:
    src, dst, ddb = tables
    spec = make_spec(endpoint, src, dst, mid(), segments=1, strategy="replay", max_write_rate=0.001)
    with pytest.raises(BadInputError, match="retention") as err:
        run_segment(spec, 0, state=make_state(ddb, spec), budget_seconds=60)
    assert err.value.exit_code == 2
    assert "--strategy concurrent" in str(err.value)
    assert scan_all(ddb, dst) == []


def test_refuses_to_run_after_the_backfill_finished(endpoint: str, tables: Any) -> None:
    src, dst, ddb = tables
    spec = make_spec(endpoint, src, dst, mid(), segments=1)
    state = make_state(ddb, spec)
    state.set_phase(PHASE_PLAIN)
    with pytest.raises(RuntimeFailure, match="already finished"):
        run_segment(spec, 0, state=state, budget_seconds=60)
    assert scan_all(ddb, dst) == []


def test_bad_segment_number_is_bad_input(endpoint: str, tables: Any) -> None:
    src, dst, ddb = tables
    spec = make_spec(endpoint, src, dst, mid(), segments=2)
    with pytest.raises(BadInputError, match="segment 2"):
        run_segment(spec, 2, state=make_state(ddb, spec), budget_seconds=60)


def test_delete_during_backfill_is_not_resurrected(endpoint: str, table_name: Any) -> None:
    """I5 step by step: the scan has read k7; k7 is deleted in the source and the replicator
    writes a tombstone; the backfill's put of k7 then fails; finish removes the tombstone.
    k9 is updated in the source meanwhile: the replicated write wins over the stale put."""
    src, dst = table_name("src"), table_name("dst")
    ddb = client(endpoint)
    create_table(ddb, src)
    create_table(ddb, dst)
    fill(ddb, src, simple_items(50))
    enable_stream(ddb, src)
    spec = make_spec(endpoint, src, dst, mid(), segments=1)
    state = make_state(ddb, spec)
    state.put_meta(phase=PHASE_BACKFILL)
    applier = StreamApplier(endpoint, src, dst, state)
    applier.poll()

    target = client(endpoint)
    fired_7, fired_9 = delete_and_change_in_flight(ddb, src, applier, target)
    result = run_segment(spec, 0, state=state, budget_seconds=60, target_client=target)
    assert fired_7 == fired_9 == [1]
    assert result.done
    assert result.counters["tombstones_honoured"] == 1
    assert result.counters["skipped_newer"] == 1
    assert result.counters["written"] == 48
    assert list(state.tombstones()) == [{"pk": {"S": "k00007"}}]
    cleanup = finish_backfill(ddb, dst, state)
    assert (cleanup.registered, cleanup.removed, cleanup.recreated) == (1, 1, 0)
    assert_identical(ddb, src, ddb, dst, ("pk",))


def test_target_equals_source_under_concurrent_writes(endpoint: str, table_name: Any) -> None:
    """A writer changes, deletes and re-creates source items while the backfill runs; a stream
    stand-in applies the changes; after it catches up and the tombstones are removed, the
    target equals the source."""
    from tests.support.writer import ConcurrentWriter

    src, dst = table_name("src"), table_name("dst")
    ddb = client(endpoint)
    create_table(ddb, src, HASH_RANGE)
    create_table(ddb, dst, HASH_RANGE)
    seed_writer = ConcurrentWriter(ddb, src, ("pk", "sk"), seed=1, key_space=250)
    fill(ddb, src, ({**seed_writer.key_for(i), "v": {"N": str(i)}} for i in range(250)))
    enable_stream(ddb, src)
    spec = make_spec(endpoint, src, dst, mid(), segments=3)
    state = make_state(ddb, spec)
    state.put_meta(phase=PHASE_BACKFILL)  # before the replicator starts: deletes -> tombstones
    applier = StreamApplier(endpoint, src, dst, state).start()
    writer = ConcurrentWriter(
        client(endpoint),
        src,
        ("pk", "sk"),
        seed=11,
        rate_per_s=100,
        key_space=250,
        max_seconds=30,
    )
    with writer:
        assert writer.wait_for(30, timeout=10)
        results = backfill_all(
            spec,
            state=state,
            limiter=RateLimiter(250),
            page_size=25,
            budget_seconds=1.0,
            concurrency=3,
        )
    applier.stop()
    applier.poll()
    counters = total_counters(results)
    assert writer.counts["delete"] + writer.counts["recreate"] > 0
    assert counters["invocations"] > 3  # the 1 s budget made segments hand back cursors
    assert (
        counters["written"] + counters["skipped_newer"] + counters["tombstones_honoured"]
        == (counters["scanned"])
    )
    finish_backfill(ddb, dst, state)
    applier.poll()
    assert_identical(ddb, src, ddb, dst, ("pk", "sk"))
    assert list(state.tombstones()) == []


def test_plan_segments_scales_with_size_and_count() -> None:
    assert plan_segments(0, 0) == 1
    assert plan_segments(1_000, 200_000) == 1
    assert plan_segments(10_000_000, 1024**3) == 20  # 500k items per segment wins
    assert plan_segments(100_000, 10 * 1024**3) == 40  # 256 MiB per segment wins
    assert plan_segments(10**12, 10**15) == 1000  # capped


def test_replay_rule_uses_rate_capacity_or_on_demand_throughput() -> None:
    assert replay_refusal(1_000_000, 10**9) is None  # ~4,000 items/s on demand: minutes
    assert replay_refusal(1_000_000, 10**9, max_write_rate=10) is not None  # ~28 h
    assert replay_refusal(1_000_000, 10**9, target_wcu=100) is None  # 80 items/s: 3.5 h
    assert replay_refusal(1_000_000, 10**9, target_wcu=10) is not None  # 8 items/s: 35 h
    reason = replay_refusal(10**10, 10**12)
    assert reason is not None and "24 h" in reason and "--strategy concurrent" in reason


def test_the_write_mode_is_decided_once_before_the_first_write(endpoint: str, tables: Any) -> None:
    """Issue 13 item 1: the backfill may replace older versions only in a target that held items
    before the migration; a target this migration created cannot, whatever it holds later."""
    src, dst, ddb = tables
    created = make_state(ddb, make_spec(endpoint, src, dst, mid()))
    created.put_meta(target_created=True)
    ddb.put_item(TableName=dst, Item={"pk": {"S": "k00000"}, "v": {"N": "-1"}})
    assert start_backfill(created, ddb, dst).overwrite_older is False
    found = make_state(ddb, make_spec(endpoint, src, dst, mid()))
    mode = start_backfill(found, ddb, dst)
    assert mode.overwrite_older and mode.phase == PHASE_BACKFILL
    assert start_backfill(found, ddb, dst) == mode  # decided once
    unknown = make_state(ddb, make_spec(endpoint, src, dst, mid()))
    assert start_backfill(unknown).overwrite_older is True  # no client: assume items
