"""`plan.concurrency_plan`, the throughput model and the strategy recommendation, against figures
worked out by hand (the arithmetic is in each comment)."""

from __future__ import annotations

import pytest

from dynashift.aws import Side
from dynashift.models import MigrationSpec, TableLocation
from dynashift.plan import (
    ConcurrencyPlan,
    concurrency_plan,
    expected_backfill_seconds,
    is_local_endpoint,
    recommend_strategy,
    target_write_rate,
)
from dynashift.workflow.migrate import execution_input
from dynashift.workflow.steps import WorkflowInput, WorkflowSettings

SMALL = (5_000, 5_000 * 300)  # 5,000 items of 300 B: 1 write unit each
MOTO = "http://127.0.0.1:5000"


def _shape(plan: ConcurrencyPlan) -> tuple[int, int, int]:
    return plan.workers, plan.segments, plan.in_flight


def test_on_demand_new_target_in_aws() -> None:
    plan = concurrency_plan(*SMALL)
    # R = 4,000 WCU / 1 unit = 4,000 items/s; workers ceil(4,000 / 500) = 8; segments
    # max(size 1, 2 x 8, 4) = 16; in-flight ceil(500 items/s x 0.010 s x 2) = 10.
    assert plan.write_rate == 4000
    assert _shape(plan) == (8, 16, 10)
    assert plan.line().startswith("workers 8, segments 16, in-flight 10 per worker: because ")
    assert "on-demand initial 4,000 WCU" in plan.reason


def test_provisioned_40000_and_100_wcu_targets() -> None:
    big = concurrency_plan(1_000_000, 1_000_000 * 1024, provisioned_wcu=40_000)
    # 80 % of 40,000 WCU = 32,000 items/s; 64 workers; 1 M / (64 x 5,000) = 3 segments per
    # worker -> 192; 500/s each -> 10 in flight
    assert big.write_rate == 32_000 and _shape(big) == (64, 192, 10)
    small = concurrency_plan(*SMALL, provisioned_wcu=100)
    # 80 items/s: 1 worker; at least 4 segments; ceil(80 x 0.010 x 2 = 1.6) = 2 in flight
    assert small.write_rate == 80 and _shape(small) == (1, 4, 2)


def test_item_size_indexes_warm_throughput_and_write_rate_cap() -> None:
    # 2,048 B items: 2 units each -> 2,000 items/s -> 4 workers, 8 segments
    assert _shape(concurrency_plan(1000, 1000 * 2048)) == (4, 8, 10)
    # 300 B items + 1 index unit: 2 units -> the same
    assert _shape(concurrency_plan(*SMALL, index_units=1)) == (4, 8, 10)
    # warm throughput 12,000 WCU: 12,000 items/s -> 24 workers, 48 segments
    warm = concurrency_plan(*SMALL, warm_wcu=12_000)
    assert _shape(warm) == (24, 48, 10) and "warm throughput, 12,000 WCU" in warm.reason
    # a warm throughput below the initial 4,000 is not used
    assert concurrency_plan(*SMALL, warm_wcu=3000).write_rate == 4000
    # --max-write-rate 250: 1 worker, ceil(250 x 0.010 x 2) = 5 in flight
    capped = concurrency_plan(*SMALL, max_write_rate=250)
    assert _shape(capped) == (1, 4, 5) and "--max-write-rate 250" in capped.reason
    # the table quota: 100,000 provisioned WCU count as 40,000
    assert target_write_rate(300, provisioned_wcu=100_000)[0] == 32_000


def test_size_sets_the_segments_of_a_big_table() -> None:
    # 100 M items of 1 KiB: ceil(102.4e9 / 256 MiB) = 382 segments (docs/limits.md), more than
    # 2 x 8 workers
    plan = concurrency_plan(100_000_000, 100_000_000 * 1024)
    assert _shape(plan) == (8, 382, 10)
    assert "one segment per 256 MiB / 500k items" in plan.reason


def test_the_local_runner_sizes_by_the_machine() -> None:
    # a local emulator: max(2, CPUs) workers sharing 16 requests in flight
    assert _shape(concurrency_plan(*SMALL, runner="local", cpus=2, endpoint_url=MOTO)) == (2, 4, 8)
    assert _shape(concurrency_plan(*SMALL, runner="local", cpus=8, endpoint_url=MOTO)) == (8, 16, 2)
    assert _shape(concurrency_plan(*SMALL, runner="local", cpus=1, endpoint_url=MOTO)) == (2, 4, 8)
    # AWS from this machine: min(8, 2 x 2 CPUs) = 4 workers, 1,000 items/s each at 50 ms a put:
    # ceil(1,000 x 0.050 x 2) = 100, capped at 64
    remote = concurrency_plan(*SMALL, runner="local", cpus=2)
    assert _shape(remote) == (4, 8, 64) and "2 CPUs" in remote.reason
    # a provisioned 5 WCU target on the emulator: 4 items/s need one worker, which gets all 16
    slow = concurrency_plan(*SMALL, runner="local", cpus=2, endpoint_url=MOTO, provisioned_wcu=5)
    assert _shape(slow) == (1, 4, 16)
    assert is_local_endpoint(MOTO) and is_local_endpoint("http://localhost:8000")
    assert not is_local_endpoint("https://dynamodb.eu-west-1.amazonaws.com")
    assert not is_local_endpoint(None)


def test_a_large_enough_table_gets_up_to_four_segments_per_worker() -> None:
    # Issue 14: more segments than workers fill the tail (a finished worker takes the next
    # segment, which is verified while others still copy). A segment beyond 2 per worker must
    # carry 10 s of one worker's writing: 500 items/s x 10 s = 5,000 items.
    # 1 M items of 300 B, new on-demand target: 8 workers; 1 M / (8 x 5,000) = 25 -> capped at 4
    big = concurrency_plan(1_000_000, 1_000_000 * 300)
    assert _shape(big) == (8, 32, 10) and "4 segments per worker" in big.reason
    # 120,000 items: 120,000 / 40,000 = 3 per worker
    assert _shape(concurrency_plan(120_000, 120_000 * 300)) == (8, 24, 10)
    # 5,000 items: too small for more than 2 per worker
    assert _shape(concurrency_plan(*SMALL)) == (8, 16, 10)
    # a local emulator keeps 2 per worker: moto reads the whole table for every Scan page
    local = concurrency_plan(1_000_000, 1_000_000 * 300, runner="local", cpus=2, endpoint_url=MOTO)
    assert _shape(local) == (2, 4, 8)


def test_explicit_values_win() -> None:
    plan = concurrency_plan(*SMALL, segments=3, workers=5, in_flight=7)
    # never more workers than segments
    assert _shape(plan) == (3, 3, 7)
    assert "--segments 3" in plan.reason and "--concurrency 5" in plan.reason
    # explicit segments only: workers still from the rate, in-flight from the rate per worker
    assert _shape(concurrency_plan(*SMALL, segments=40)) == (8, 40, 10)


def test_throughput_model_by_hand() -> None:
    plan = concurrency_plan(*SMALL)
    # rate min(4,000, 8 x min(500, 10 / 0.010)) = 4,000/s: 5,000 / 4,000 = 1.25 s, plus
    # ceil(16 / 8) = 2 waves of 0.5 s = 2.25 s
    assert expected_backfill_seconds(plan, 5000) == pytest.approx(2.25)
    one = concurrency_plan(*SMALL, segments=1)
    # 1 worker (in-flight ceil(4,000 x 0.010 x 2) = 80 -> 64): 500/s -> 10 s + 0.5 s
    assert one.in_flight == 64
    assert expected_backfill_seconds(one, 5000) == pytest.approx(10.5)
    many = concurrency_plan(*SMALL, segments=1_000_000)
    # 125,000 waves of 8 segments: 1.25 s + 62,500 s
    assert expected_backfill_seconds(many, 5000) == pytest.approx(62_501.25)
    small = concurrency_plan(*SMALL, provisioned_wcu=100)
    # 1 worker at min(80, 500, 2 / 0.010): 5,000 / 80 = 62.5 s + 4 waves x 0.5 s
    assert expected_backfill_seconds(small, 5000) == pytest.approx(64.5)


def test_strategy_recommendation() -> None:
    strategy, why = recommend_strategy(*SMALL, target_empty=True)
    assert strategy == "replay" and "well inside the 24 h stream window" in why
    strategy, why = recommend_strategy(*SMALL, target_empty=False)
    assert strategy == "concurrent" and "already holds items" in why
    # 1 B items of 1 KiB at 4,000/s: 250,000 s > 12 h -> replay would be refused
    strategy, why = recommend_strategy(10**9, 10**9 * 1024, target_empty=True)
    assert strategy == "concurrent" and "would be refused" in why
    # 100 WCU -> 80 items/s: 1 M items take 12,500 s (replay), 10 M take 125,000 s (concurrent)
    assert recommend_strategy(10**6, 10**8, target_empty=True, target_wcu=100)[0] == "replay"
    assert recommend_strategy(10**7, 10**9, target_empty=True, target_wcu=100)[0] == "concurrent"


def test_execution_input_carries_strategy_and_planned_concurrency() -> None:
    side = Side(region="us-east-1", endpoint_url=MOTO)
    spec = MigrationSpec(
        migration_id="m-1",
        source=TableLocation(name="orders", side=side),
        target=TableLocation(name="orders-v2", side=side),
        state=TableLocation(name="dynashift-state", side=side),
        segments=4,  # the model's default: still given, Validate must not plan it again
        strategy="replay",
    )
    settings = WorkflowSettings(max_concurrency=10, max_in_flight=8)
    data = execution_input(WorkflowInput(spec=spec, settings=settings))
    assert data["spec"]["strategy"] == "replay"
    assert data["spec"]["segments"] == 4
    assert data["settings"]["max_concurrency"] == 10
    assert data["settings"]["max_in_flight"] == 8
