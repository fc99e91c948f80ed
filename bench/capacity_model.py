"""Model (no AWS, no server): expected backfill throughput in AWS against the segment count.

    .venv/bin/python -m bench.capacity_model [--items 10000000] [--item-bytes 1024]

For a few target shapes (a new on-demand table, 40,000 WCU provisioned — the default table
quota —, a small 100 WCU provisioned table) and segment counts from 1 to the parallel scan's
limit (1,000,000), it prints what `plan.concurrency_plan` gives for the deployed runner with that
segment count (workers, in-flight writes per worker) and what `plan.expected_backfill_seconds`
expects of it: the rate is min(the target's rate, workers x one worker's rate), plus a fixed
cost per segment paid in waves of `workers`. The row marked `*` is the plan's own choice (no
--segments). The figures are a model with the constants of `dynashift.plan`, not a measurement:
too few segments leave the target's capacity idle, too many pay their per-segment cost.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from dataclasses import dataclass

from dynashift.plan import (
    SCAN_SEGMENT_LIMIT,
    TABLE_WCU_QUOTA,
    ConcurrencyPlan,
    concurrency_plan,
    expected_backfill_seconds,
    human_duration,
)

SEGMENTS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 1_000, 10_000, 100_000, SCAN_SEGMENT_LIMIT)


@dataclass(frozen=True)
class Shape:
    name: str
    provisioned_wcu: int | None = None


SHAPES = (
    Shape("on-demand, new table (initial 4,000 WCU)"),
    Shape(f"provisioned {TABLE_WCU_QUOTA:,} WCU (the table quota)", TABLE_WCU_QUOTA),
    Shape("provisioned 100 WCU", 100),
)


@dataclass(frozen=True)
class Row:
    segments: int
    plan: ConcurrencyPlan
    seconds: float
    items_per_second: float
    planned: bool


def rows(shape: Shape, items: int, item_bytes: int) -> list[Row]:
    """One row per segment count, and the plan's own choice (marked `planned`)."""
    size = items * item_bytes
    out: list[Row] = []
    chosen = concurrency_plan(items, size, provisioned_wcu=shape.provisioned_wcu)
    counts = sorted({*SEGMENTS, chosen.segments})
    for segments in counts:
        plan = concurrency_plan(
            items, size, provisioned_wcu=shape.provisioned_wcu, segments=segments
        )
        seconds = expected_backfill_seconds(plan, items)
        out.append(Row(segments, plan, seconds, items / seconds, segments == chosen.segments))
    return out


def render(shape: Shape, table: Sequence[Row]) -> str:
    lines = [
        f"{shape.name}: the target takes {table[0].plan.write_rate:,.0f} items/s "
        f"({table[0].plan.write_rate_from})",
        f"  {'segments':>10} {'workers':>8} {'in-flight':>9} {'items/s':>10} {'backfill':>10}",
    ]
    for row in table:
        mark = "*" if row.planned else " "
        lines.append(
            f"{mark} {row.segments:>10,} {row.plan.workers:>8,} {row.plan.in_flight:>9} "
            f"{row.items_per_second:>10,.0f} {human_duration(row.seconds):>10}"
        )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.capacity_model", description=__doc__)
    parser.add_argument("--items", type=int, default=10_000_000, help="items (default 10 M)")
    parser.add_argument(
        "--item-bytes", type=int, default=1024, help="average item size (default 1024)"
    )
    args = parser.parse_args(argv)
    print(
        f"Expected backfill throughput in AWS: {args.items:,} items of {args.item_bytes:,} B "
        "(model: dynashift.plan; * = the plan's choice)\n"
    )
    for shape in SHAPES:
        print(render(shape, rows(shape, args.items, args.item_bytes)))
        print()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
