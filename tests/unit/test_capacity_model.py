"""bench/capacity_model.py against a hand calculation (10 M items of 1 KiB, 1 write unit each)."""

from __future__ import annotations

from typing import Any

import pytest

from bench.capacity_model import SHAPES, main, rows

ITEMS, ITEM_BYTES = 10_000_000, 1024
ON_DEMAND, QUOTA, SMALL = SHAPES


def _row(shape: Any, segments: int) -> Any:
    return next(r for r in rows(shape, ITEMS, ITEM_BYTES) if r.segments == segments)


def test_on_demand_rows_by_hand() -> None:
    one = _row(ON_DEMAND, 1)
    # one worker at 500 items/s: 20,000 s + one segment's 0.5 s
    assert (one.plan.workers, one.plan.in_flight) == (1, 64)  # ceil(4,000 x 0.01 x 2) -> cap 64
    assert one.seconds == pytest.approx(20_000.5)
    sixteen = _row(ON_DEMAND, 16)
    # 8 workers x 500 = the target's 4,000 items/s: 2,500 s + 2 waves x 0.5 s
    assert sixteen.plan.workers == 8 and sixteen.seconds == pytest.approx(2_501)
    # the plan's choice: ceil(10,240,000,000 B / 256 MiB) = 39 segments, 5 waves of 8
    (chosen,) = [r for r in rows(ON_DEMAND, ITEMS, ITEM_BYTES) if r.planned]
    assert chosen.segments == 39 and chosen.seconds == pytest.approx(2_502.5)


def test_quota_and_small_rows_by_hand() -> None:
    full = _row(QUOTA, 64)
    # 32,000 items/s = 64 workers x 500, 10 in flight each: 312.5 s + 0.5 s
    assert (full.plan.workers, full.plan.in_flight) == (64, 10)
    assert full.items_per_second == pytest.approx(ITEMS / 313)
    crowded = _row(SMALL, 1_000_000)
    # 80 items/s from one worker: 125,000 s + 1,000,000 segments x 0.5 s = 625,000 s
    assert crowded.plan.workers == 1 and crowded.items_per_second == pytest.approx(16)


def test_main_prints_every_shape_and_the_plans_choice(capsys: Any) -> None:
    assert main(["--items", "5000", "--item-bytes", "300"]) == 0
    out = capsys.readouterr().out
    assert out.count("the target takes") == 3
    assert "1,000,000" in out
    # 5,000 small items on a new on-demand table: the plan's 16 segments, 8 workers
    assert "*         16        8        10" in out
