"""What a migration will do and cost, before anything is touched.

Size: one module because every estimate (units, durations, the stream-window rule, the
strategy and the concurrency plan) feeds the one `Plan` that `plan`, Validate and `migrate` show;
splitting the cost model from the concurrency plan is the next cut (issue 16 adds the export
and import paths here).

The estimate functions are pure and follow DynamoDB's rounding rules:

- a write consumes 1 write unit per started KB of the item (`write_units_per_item`); every
  GSI / LSI that holds the item costs a write in the index too (ALL projection: the item's
  units, KEYS_ONLY / INCLUDE: 1 unit, assumed for every item: an upper bound);
- a Scan is billed on the total size it reads, rounded up to 4 KB, and an eventually
  consistent read costs half (`scan_read_units`); a key lookup rounds each item up to 4 KB on
  its own (`get_read_units`);
- backfill = one eventually consistent scan of the source + one conditional put per item;
  verification (merge mode) = one eventually consistent scan of each table; replicas receive
  every write again as replicated writes.

`backfill_fits_retention` decides whether a backfill is comfortably inside the 24-hour stream
retention: the replicator reads the stream from TRIM_HORIZON, so every record written since
the backfill started must still be there when the backfill ends and the replicator catches up.
The margin (`RETENTION_MARGIN`, 50 %) leaves half the retention for that catch-up and for
retries.

`make_plan` gathers the facts read-only (DescribeTable & co., a bounded sample scan when
DescribeTable's size is 0) and runs the same checks as `migrate`'s validation.
"""

from __future__ import annotations

import json
import math
import os
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field

from dynashift.errors import pitr_off
from dynashift.items import is_tombstone, item_size
from dynashift.models import PROCESS_CLIENTS, Clients, Strategy, TableLocation
from dynashift.ratelimit import DEFAULT_CAPACITY_SHARE
from dynashift.stream import StreamStatus, check_stream
from dynashift.tables import scan_pages
from dynashift.target import (
    ON_DEMAND_INITIAL_WCU,
    SourceDescription,
    TargetCheck,
    TargetOptions,
    check_target,
    raised_warm_throughput,
)

WRITE_UNIT_BYTES = 1024
READ_UNIT_BYTES = 4096
STREAM_RETENTION_SECONDS = 24 * 3600
#: The backfill must finish within this share of the stream retention.
RETENTION_MARGIN = 0.5
#: Items read by the sample scan that measures the average item size when DescribeTable's
#: TableSizeBytes is 0 (moto, or a table created in the last ~6 hours).
DEFAULT_SAMPLE_ITEMS = 1000


class Prices(BaseModel):
    """On-demand prices in USD: us-east-1, Standard table class (AWS price list, 2025).

    Override them for another region, table class or a later price change.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    write_per_million: float = Field(default=0.625, ge=0)
    read_per_million: float = Field(default=0.125, ge=0)
    replicated_write_per_million: float = Field(default=0.625, ge=0)
    storage_per_gb_month: float = Field(default=0.25, ge=0)
    #: Export to Amazon S3 (full export), per GB of table size at the exported point in time:
    #: DynamoDB pricing page, "Export to Amazon S3", us-east-1, read 2026-12-03.
    export_per_gb: float = Field(default=0.10, ge=0)
    #: Import from Amazon S3, per GB of uncompressed source data: DynamoDB pricing page,
    #: "Import from Amazon S3", us-east-1, read 2026-12-03.
    import_per_gb: float = Field(default=0.15, ge=0)
    #: Point-in-time recovery (continuous backups), per GB-month of table size: DynamoDB
    #: pricing page, "Continuous backups (PITR)", us-east-1, read 2026-12-03.
    pitr_per_gb_month: float = Field(default=0.20, ge=0)


# --- pure estimates --------------------------------------------------------------------------


def write_units_per_item(item_bytes: float) -> int:
    """Write units of one put: 1 per started KB, at least 1."""
    return max(1, math.ceil(item_bytes / WRITE_UNIT_BYTES))


def index_write_units_per_item(item_bytes: float, projections: list[str]) -> int:
    """Extra write units per item for secondary indexes (by projection type)."""
    per_item = write_units_per_item(item_bytes)
    return sum(per_item if p == "ALL" else 1 for p in projections)


def backfill_write_units(item_count: int, avg_item_bytes: float, index_units: int = 0) -> int:
    """Write units of writing every item once (plus its index writes)."""
    return item_count * (write_units_per_item(avg_item_bytes) + index_units)


def scan_read_units(total_bytes: float, consistent: bool = False) -> float:
    """Read units of scanning `total_bytes` (4 KB units; eventually consistent costs half)."""
    units = math.ceil(total_bytes / READ_UNIT_BYTES)
    return units if consistent else units / 2


def get_read_units(item_count: int, avg_item_bytes: float, consistent: bool = False) -> float:
    """Read units of reading `item_count` items by key (each rounded up to 4 KB)."""
    units = item_count * max(1, math.ceil(avg_item_bytes / READ_UNIT_BYTES))
    return units if consistent else units / 2


def on_demand_cost(
    write_units: float, read_units: float, prices: Prices, replicated_write_units: float = 0.0
) -> float:
    """USD for the given request units at on-demand prices."""
    return (
        write_units * prices.write_per_million
        + read_units * prices.read_per_million
        + replicated_write_units * prices.replicated_write_per_million
    ) / 1_000_000


def default_write_rate(
    avg_item_bytes: float,
    *,
    provisioned_wcu: int | None = None,
    index_units: int = 0,
    share: float = DEFAULT_CAPACITY_SHARE,
) -> float:
    """Items/s a backfill can sustain: a share of a provisioned target's WCU, or an on-demand
    table's initial throughput."""
    per_item = write_units_per_item(avg_item_bytes) + index_units
    if provisioned_wcu:
        return max(provisioned_wcu * share / per_item, 0.001)
    return ON_DEMAND_INITIAL_WCU / per_item


def backfill_duration_seconds(item_count: int, write_rate: float) -> float:
    """Seconds to write `item_count` items at `write_rate` items/s."""
    if write_rate <= 0:
        raise ValueError(f"write rate must be positive, got {write_rate}")
    return item_count / write_rate


def backfill_fits_retention(
    item_count: int,
    avg_item_size: float,
    write_rate: float | None,
    *,
    margin: float = RETENTION_MARGIN,
    retention_seconds: float = STREAM_RETENTION_SECONDS,
) -> bool:
    """True when a backfill at `write_rate` items/s (None: an on-demand table's initial
    throughput for items of `avg_item_size` bytes) ends within `margin` of the retention."""
    rate = write_rate if write_rate else default_write_rate(avg_item_size)
    return backfill_duration_seconds(item_count, rate) <= retention_seconds * margin


def fits_stream_retention(duration_seconds: float, margin: float = RETENTION_MARGIN) -> bool:
    """True when a backfill of `duration_seconds` ends within `margin` of the retention."""
    return duration_seconds <= STREAM_RETENTION_SECONDS * margin


def human_duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def human_bytes(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024:
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TB"


# --- concurrency: workers, segments, in-flight writes ----------------------------------------

#: The default per-table write quota of DynamoDB (units/s; on-demand and provisioned).
TABLE_WCU_QUOTA = 40_000
#: The most segments a parallel Scan accepts (TotalSegments).
SCAN_SEGMENT_LIMIT = 1_000_000
#: Conditional puts one segment worker sustains (a conservative figure: about half of one
#: partition's 1,000 WCU; docs/limits.md). The workflow's loop estimates use it too.
WORKER_ITEMS_PER_SECOND = 500.0
#: Latency of one conditional PutItem from a worker in the target's region (Lambda), and from a
#: machine outside it (the local runner against AWS or a remote endpoint).
PUT_LATENCY_SECONDS = 0.010
REMOTE_PUT_LATENCY_SECONDS = 0.050
#: In-flight requests per worker = rate x latency x this headroom (latency varies).
IN_FLIGHT_HEADROOM = 2.0
MAX_IN_FLIGHT = 64
#: Segment workers running at once at most: Lambda's default concurrency quota per account
#: (WorkflowSettings.max_concurrency has the same bound).
MAX_WORKERS = 1000
#: Concurrent iterations of an inline Map state (Step Functions); more workers need the Maps
#: distributed ("Plan segments" chooses them then).
INLINE_MAP_CONCURRENCY = 40
#: Segments per worker: a worker that finishes a segment takes the next one, so a segment is
#: verified while others still copy and one slow segment does not hold the tail alone.
SEGMENTS_PER_WORKER = 2
#: ...and up to this many where every segment still carries SEGMENT_MIN_WORK_SECONDS of one
#: worker's writing: the tail (the last segments, copied and verified while others are done)
#: is then a quarter of a worker's share instead of a half. Not against a local emulator: moto
#: reads the whole table for every Scan page (it filters segments item by item), so each extra
#: segment there costs a full pass of the table in the backfill and twice in verification.
MAX_SEGMENTS_PER_WORKER = 4
#: The least work (seconds of one worker at WORKER_ITEMS_PER_SECOND) a segment beyond
#: SEGMENTS_PER_WORKER must carry: 20x its fixed cost (SEGMENT_OVERHEAD_SECONDS).
SEGMENT_MIN_WORK_SECONDS = 10.0
MIN_SEGMENTS = 4
#: Requests in flight that saturate a single-process local emulator (moto): conditional puts
#: from 16 threads reach its ceiling (issue 14's measurement); more only queue.
EMULATOR_REQUESTS_IN_FLIGHT = 16
#: Local worker processes per CPU against a remote endpoint (they mostly wait on the network).
REMOTE_WORKERS_PER_CPU = 2
#: Fixed cost of one segment (a worker invocation, its state transitions, DescribeTable, lease,
#: the first Scan page) in the throughput model.
SEGMENT_OVERHEAD_SECONDS = 0.5

Runner = Literal["aws", "local"]


def plan_segments(
    item_count: int,
    table_size_bytes: int,
    *,
    bytes_per_segment: int = 256 * 1024**2,
    items_per_segment: int = 500_000,
    minimum: int = 1,
    maximum: int = 1000,
) -> int:
    """The segment count a table's size needs: one per ~256 MiB or ~500k items, 1..1000.

    A segment of that size is scanned and written in a handful of worker invocations at
    DynamoDB's per-partition limits, and stays far below Step Functions' history limits.
    """
    wanted = max(
        math.ceil(max(table_size_bytes, 0) / bytes_per_segment),
        math.ceil(max(item_count, 0) / items_per_segment),
    )
    return max(minimum, min(maximum, wanted))


def target_write_rate(
    avg_item_bytes: float,
    *,
    provisioned_wcu: int | None = None,
    warm_wcu: int | None = None,
    max_write_rate: float | None = None,
    index_units: int = 0,
    share: float = DEFAULT_CAPACITY_SHARE,
) -> tuple[float, str]:
    """(items/s the target takes, why): `--max-write-rate`, else a share of a provisioned
    target's WCU, else an on-demand target's warm throughput (at least the initial 4,000 WCU
    of a new on-demand table), within the 40,000 WCU table quota."""
    per_item = write_units_per_item(avg_item_bytes) + index_units
    if max_write_rate:
        return max_write_rate, f"--max-write-rate {max_write_rate:,g} items/s"
    if provisioned_wcu:
        units = min(provisioned_wcu, TABLE_WCU_QUOTA)
        rate = max(units * share / per_item, 0.001)
        return rate, f"{share:.0%} of the target's {provisioned_wcu:,} WCU"
    if warm_wcu and warm_wcu > ON_DEMAND_INITIAL_WCU:
        units, why = min(warm_wcu, TABLE_WCU_QUOTA), f"its warm throughput, {warm_wcu:,} WCU"
    else:
        units, why = ON_DEMAND_INITIAL_WCU, f"on-demand initial {ON_DEMAND_INITIAL_WCU:,} WCU"
    return units / per_item, why


def is_local_endpoint(endpoint_url: str | None) -> bool:
    """True for an endpoint on this machine (an emulator such as moto)."""
    if not endpoint_url:
        return False
    host = (urlsplit(endpoint_url).hostname or "").lower()
    return host in ("localhost", "127.0.0.1", "::1") or host.startswith("127.")


class ConcurrencyPlan(BaseModel):
    """Segment workers, segments and in-flight writes per worker of one migration, and why.

    `workers` is the Map's MaxConcurrency (WorkflowSettings.max_concurrency), `segments` the
    parallel scan's TotalSegments (MigrationSpec.segments), `in_flight` the conditional puts
    one worker keeps in flight (WorkflowSettings.max_in_flight)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    runner: Runner
    workers: int = Field(ge=1)
    segments: int = Field(ge=1)
    in_flight: int = Field(ge=1)
    #: Items/s the target takes (the planning rate) and where it comes from.
    write_rate: float
    write_rate_from: str
    #: Seconds of one conditional put assumed for `in_flight`.
    put_latency_seconds: float
    reason: str

    def line(self) -> str:
        return (
            f"workers {self.workers}, segments {self.segments}, in-flight {self.in_flight} "
            f"per worker: because {self.reason}"
        )


def concurrency_plan(
    item_count: int,
    size_bytes: int,
    *,
    runner: Runner = "aws",
    provisioned_wcu: int | None = None,
    warm_wcu: int | None = None,
    max_write_rate: float | None = None,
    index_units: int = 0,
    cpus: int | None = None,
    endpoint_url: str | None = None,
    segments: int | None = None,
    workers: int | None = None,
    in_flight: int | None = None,
) -> ConcurrencyPlan:
    """The one rule for a migration's concurrency (`migrate`, `plan`, the Validate state and
    bench/capacity_model.py all call it). Explicit values (`segments`, `workers`, `in_flight`:
    the flags or the execution input) win; the others are derived:

    - the target's rate R (items/s, `target_write_rate`);
    - workers = ceil(R / WORKER_ITEMS_PER_SECOND), 1..MAX_WORKERS. The local runner runs each
      worker as a process on this machine: against a local emulator at most max(2, cpus)
      (the emulator is one process saturated by EMULATOR_REQUESTS_IN_FLIGHT requests), against
      a remote endpoint at most REMOTE_WORKERS_PER_CPU x cpus;
    - segments = max(the size's need (`plan_segments`), per-worker x workers, MIN_SEGMENTS),
      per-worker from SEGMENTS_PER_WORKER up to MAX_SEGMENTS_PER_WORKER as far as every segment
      keeps SEGMENT_MIN_WORK_SECONDS of a worker's writing (`segments_per_worker`; always
      SEGMENTS_PER_WORKER against a local emulator); workers never exceed segments;
    - in-flight = ceil(R / workers x put latency x IN_FLIGHT_HEADROOM), 1..MAX_IN_FLIGHT; against
      a local emulator EMULATOR_REQUESTS_IN_FLIGHT shared by the workers.
    """
    avg = size_bytes / item_count if item_count > 0 else 0.0
    rate, rate_from = target_write_rate(
        avg,
        provisioned_wcu=provisioned_wcu,
        warm_wcu=warm_wcu,
        max_write_rate=max_write_rate,
        index_units=index_units,
    )
    emulator = runner == "local" and is_local_endpoint(endpoint_url)
    machine = max(1, cpus or 1)
    why: list[str] = []

    by_rate = max(1, min(MAX_WORKERS, math.ceil(rate / WORKER_ITEMS_PER_SECOND)))
    if workers is not None:
        n_workers = workers
        why.append(f"--concurrency {workers}")
    elif emulator:
        n_workers = min(by_rate, max(2, machine))
        why.append(
            f"a local emulator ({endpoint_url}) is saturated by ~{EMULATOR_REQUESTS_IN_FLIGHT} "
            f"requests in flight; {machine} CPUs run the worker processes"
        )
    else:
        n_workers = by_rate
        if runner == "local":
            n_workers = min(n_workers, REMOTE_WORKERS_PER_CPU * machine)
        why.append(
            f"the target takes ~{rate:,.0f} items/s ({rate_from}), one worker writes "
            f"~{WORKER_ITEMS_PER_SECOND:,.0f}"
            + (f", {machine} CPUs run them here" if n_workers < by_rate else "")
        )

    needed = plan_segments(item_count, size_bytes)
    if segments is not None:
        n_segments = segments
        why.append(f"--segments {segments}")
    else:
        per_segment_worker = (
            SEGMENTS_PER_WORKER if emulator else segments_per_worker(item_count, n_workers)
        )
        n_segments = max(needed, per_segment_worker * n_workers, MIN_SEGMENTS)
        why.append(
            f"{per_segment_worker} segments per worker"
            if n_segments == per_segment_worker * n_workers > max(needed, MIN_SEGMENTS)
            else "one segment per 256 MiB / 500k items"
            if n_segments == needed > MIN_SEGMENTS
            else f"at least {MIN_SEGMENTS} segments"
        )
    n_workers = max(1, min(n_workers, n_segments))

    latency = REMOTE_PUT_LATENCY_SECONDS if runner == "local" else PUT_LATENCY_SECONDS
    if in_flight is not None:
        n_in_flight = in_flight
        why.append(f"--in-flight {in_flight}")
    elif emulator:
        n_in_flight = max(1, math.ceil(EMULATOR_REQUESTS_IN_FLIGHT / n_workers))
    else:
        per_worker = rate / n_workers
        n_in_flight = max(
            1, min(MAX_IN_FLIGHT, math.ceil(per_worker * latency * IN_FLIGHT_HEADROOM))
        )
        why.append(f"{per_worker:,.0f} items/s per worker at {latency * 1000:g} ms a put")
    return ConcurrencyPlan(
        runner=runner,
        workers=n_workers,
        segments=n_segments,
        in_flight=n_in_flight,
        write_rate=rate,
        write_rate_from=rate_from,
        put_latency_seconds=latency,
        reason="; ".join(why),
    )


def segments_per_worker(item_count: int, workers: int) -> int:
    """Segments per worker (see MAX_SEGMENTS_PER_WORKER): as many as keep every segment at
    SEGMENT_MIN_WORK_SECONDS of one worker's writing, between SEGMENTS_PER_WORKER and
    MAX_SEGMENTS_PER_WORKER."""
    per_segment = WORKER_ITEMS_PER_SECOND * SEGMENT_MIN_WORK_SECONDS
    fits = int(max(item_count, 0) // (max(1, workers) * per_segment))
    return max(SEGMENTS_PER_WORKER, min(MAX_SEGMENTS_PER_WORKER, fits))


def expected_backfill_seconds(plan: ConcurrencyPlan, item_count: int) -> float:
    """The throughput model (bench/capacity_model.py): `plan.workers` workers at once, each
    writing min(WORKER_ITEMS_PER_SECOND, in_flight / latency) items/s, together at most the
    target's rate; each segment costs SEGMENT_OVERHEAD_SECONDS, paid in waves of `workers`."""
    per_worker = min(WORKER_ITEMS_PER_SECOND, plan.in_flight / plan.put_latency_seconds)
    rate = min(plan.write_rate, plan.workers * per_worker)
    waves = math.ceil(plan.segments / plan.workers)
    return max(item_count, 0) / rate + waves * SEGMENT_OVERHEAD_SECONDS


def recommend_strategy(
    item_count: int,
    size_bytes: int,
    *,
    target_empty: bool,
    max_write_rate: float | None = None,
    target_wcu: int = 0,
) -> tuple[Strategy, str]:
    """The backfill strategy `plan` recommends, and why (one line).

    replay (BatchWriteItem, the replicator started after the backfill) when the target starts
    empty and the backfill is estimated well inside the 24-hour stream window — the rule that
    refuses replay (`replay_refusal`, below) allows it; concurrent (a conditional put per item,
    the replicator running during the backfill) otherwise."""
    avg = size_bytes / item_count if item_count > 0 else 0.0
    rate = max_write_rate or default_write_rate(avg, provisioned_wcu=target_wcu or None)
    seconds = backfill_duration_seconds(item_count, rate)
    if not target_empty:
        return "concurrent", (
            "the target already holds items: conditional puts never overwrite newer ones"
        )
    refusal = replay_refusal(
        item_count, size_bytes, max_write_rate=max_write_rate, target_wcu=target_wcu
    )
    if refusal:
        return "concurrent", (
            f"the backfill (~{human_duration(seconds)}) is not well inside the 24 h stream "
            "window, so replay would be refused"
        )
    return "replay", (
        f"the backfill (~{human_duration(seconds)}) is well inside the 24 h stream window and "
        "the target starts empty: batch writes, then the replicator replays the stream"
    )


def target_capacity(check: TargetCheck) -> tuple[int | None, int | None]:
    """(provisioned WCU, warm write units/s) of the target: an existing target's, else what it
    will be created with (its warm throughput when it is pre-warmed)."""
    if check.target is not None:
        capacity = check.target.capacity
        warm = (check.target.table.get("WarmThroughput") or {}).get("WriteUnitsPerSecond")
        return (capacity[1] if capacity else None), (int(warm) if warm else None)
    capacity, warm_new = check.spec.capacity, check.spec.warm_throughput
    return (capacity[1] if capacity else None), (warm_new[1] if warm_new else None)


# --- the plan --------------------------------------------------------------------------------


class Estimate(BaseModel):
    """Request units and on-demand cost of one phase."""

    model_config = ConfigDict(extra="forbid")

    read_units: float
    write_units: float = 0.0
    replicated_write_units: float = 0.0
    cost_usd: float


class Plan(BaseModel):
    """What a migration will create, change and cost (`to_text()`, or JSON)."""

    model_config = ConfigDict(extra="forbid")

    source: str
    target: str
    item_count: int
    item_count_from: Literal["DescribeTable", "sample scan"]
    size_bytes: int
    avg_item_bytes: float
    avg_item_from: Literal["DescribeTable", "sample scan", "none (empty table)"]
    sample_items: int = 0
    target_action: Literal["create", "exists"]
    target_settings: list[str]
    target_changes: list[str]
    source_changes: list[str]
    write_units_per_item: int
    index_write_units_per_item: int
    backfill: Estimate
    verification: Estimate
    total_cost_usd: float
    target_storage_usd_per_month: float
    prices: Prices
    write_rate: float
    write_rate_from: str
    backfill_seconds: float
    stream_retention_seconds: int = STREAM_RETENTION_SECONDS
    retention_margin: float = RETENTION_MARGIN
    fits_stream_retention: bool
    #: The strategy `plan` recommends (`migrate --strategy`) and why.
    strategy: Strategy
    strategy_reason: str
    #: Workers, segments and in-flight writes of `migrate` on this machine, and of the
    #: deployed state machine (the Validate state plans with the same function).
    concurrency: ConcurrencyPlan
    concurrency_deployed: ConcurrencyPlan
    #: Facts `paths.compare_plan` needs: the source's PITR (None: unreadable) and LSIs, whether
    #: an existing target holds items, the target's provisioned / warm write units, replicas.
    source_pitr: bool | None = None
    source_lsis: list[str] = Field(default_factory=list)
    target_nonempty: bool = False
    target_wcu: int | None = None
    target_warm_wcu: int | None = None
    replica_count: int = 0
    warnings: list[str] = Field(default_factory=list)

    def to_json(self) -> str:
        return json.dumps(self.model_dump(mode="json"), indent=2, sort_keys=True)

    def to_text(self) -> str:
        out: list[str] = []
        out.append(f"dynashift plan: {self.source} -> {self.target} (nothing has been changed)")
        out.append("")
        out.append("Source")
        out.append(f"  items:         {self.item_count:,} (from {self.item_count_from})")
        out.append(
            f"  size:          {human_bytes(self.size_bytes)}, average item "
            f"{self.avg_item_bytes:,.0f} B (from {self.avg_item_from}"
            + (f", {self.sample_items:,} items" if self.avg_item_from == "sample scan" else "")
            + ")"
        )
        out.append(
            "  PITR:          "
            + (
                "on"
                if self.source_pitr
                else f"off ({pitr_off(self.source)})"
                if self.source_pitr is False
                else "unknown (DescribeContinuousBackups could not be read)"
            )
        )
        out.append("  changes:       " + ("; ".join(self.source_changes) or "none"))
        out.append("")
        verb = "will be created" if self.target_action == "create" else "exists (verified)"
        out.append(f"Target {self.target} {verb}")
        for line in self.target_settings:
            out.append(f"  {line}")
        if self.target_changes:
            out.append("  changes:       " + "; ".join(self.target_changes))
        out.append("")
        out.append("Estimates (DynamoDB rounding: 1 KB write units, 4 KB read units)")
        out.append(
            f"  write units per item: {self.write_units_per_item}"
            + (
                f" + {self.index_write_units_per_item} for indexes"
                if self.index_write_units_per_item
                else ""
            )
        )
        b, v = self.backfill, self.verification
        out.append(
            f"  backfill:      {b.read_units:,.1f} read units (source scan, eventually "
            f"consistent), {b.write_units:,.0f} write units"
            + (
                f", {b.replicated_write_units:,.0f} replicated write units"
                if b.replicated_write_units
                else ""
            )
            + f"  ~ ${b.cost_usd:,.4f}"
        )
        out.append(
            f"  verification:  {v.read_units:,.1f} read units (scan of both tables)"
            f"  ~ ${v.cost_usd:,.4f}"
        )
        out.append(
            f"  total:         ~ ${self.total_cost_usd:,.4f} at on-demand prices; target storage "
            f"~ ${self.target_storage_usd_per_month:,.4f}/month"
        )
        p = self.prices
        out.append(
            f"  prices used:   ${p.write_per_million}/M write units, ${p.read_per_million}/M "
            f"read units, ${p.replicated_write_per_million}/M replicated write units, "
            f"${p.storage_per_gb_month}/GB-month (override with --write-price, --read-price, "
            "--replicated-write-price, --storage-price)"
        )
        out.append(
            f"  backfill time: {human_duration(self.backfill_seconds)} at "
            f"{self.write_rate:,.0f} items/s ({self.write_rate_from}); stream retention 24 h, "
            f"must finish within {self.retention_margin:.0%} of it: "
            + ("fits" if self.fits_stream_retention else "DOES NOT FIT")
        )
        out.append("")
        out.append(
            f"Strategy: {self.strategy} recommended (migrate --strategy {self.strategy}; "
            "the default is concurrent)"
        )
        out.append(f"  because {self.strategy_reason}")
        out.append("")
        out.append("Concurrency (explicit --segments / --concurrency / --in-flight win)")
        out.append(f"  migrate here:  {self.concurrency.line()}")
        out.append(f"  deployed:      {self.concurrency_deployed.line()}")
        if self.warnings:
            out.append("")
            out.append("Warnings")
            out.extend(f"  - {w}" for w in self.warnings)
        return "\n".join(out)


def sample_items(
    location: TableLocation,
    limit: int = DEFAULT_SAMPLE_ITEMS,
    *,
    clients: Clients = PROCESS_CLIENTS,
) -> tuple[int, int, bool]:
    """(items, total bytes, whole table read) of a bounded scan of up to `limit` items."""
    client = clients(location).dynamodb()
    count = size = 0
    complete = False
    for page in scan_pages(client, location.name, limit=min(limit, 1000)):
        for item in page.items:
            if is_tombstone(item):
                continue
            count += 1
            size += item_size(item)
        if page.cursor is None:
            complete = True
            break
        if count >= limit:
            break
    return count, size, complete


class SourceSize(BaseModel):
    """A source's item count and size: DescribeTable's, else measured by a sample scan."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    item_count: int
    item_count_from: Literal["DescribeTable", "sample scan"] = "DescribeTable"
    size_bytes: int
    avg_item_bytes: float
    avg_item_from: Literal["DescribeTable", "sample scan", "none (empty table)"] = "DescribeTable"
    sampled: int = 0
    warnings: list[str] = Field(default_factory=list)


def measure_source(
    source: TableLocation,
    src: SourceDescription,
    sample_limit: int = DEFAULT_SAMPLE_ITEMS,
    *,
    clients: Clients = PROCESS_CLIENTS,
) -> SourceSize:
    """DescribeTable's ItemCount and TableSizeBytes; when either is 0 (refreshed about every 6
    hours; always 0 on moto) a bounded sample scan measures the average item (and the count,
    when the sample read the whole table, else it is a lower bound, with a warning)."""
    item_count, size_bytes = src.item_count, src.size_bytes
    if item_count and size_bytes:
        return SourceSize(
            item_count=item_count, size_bytes=size_bytes, avg_item_bytes=size_bytes / item_count
        )
    count_from: Literal["DescribeTable", "sample scan"] = "DescribeTable"
    warnings: list[str] = []
    sampled, sampled_bytes, complete = sample_items(source, sample_limit, clients=clients)
    avg = sampled_bytes / sampled if sampled else 0.0
    if complete and sampled != item_count:
        item_count, count_from = sampled, "sample scan"
    elif not item_count and sampled:
        item_count, count_from = sampled, "sample scan"
        warnings.append(
            "DescribeTable reports 0 items (it is refreshed about every 6 hours): the item "
            f"count is at least {sampled:,}, the estimates are a lower bound"
        )
    return SourceSize(
        item_count=item_count,
        item_count_from=count_from,
        size_bytes=size_bytes or round(avg * item_count),
        avg_item_bytes=avg,
        avg_item_from="sample scan" if sampled else "none (empty table)",
        sampled=sampled,
        warnings=warnings,
    )


def index_projections(src: SourceDescription) -> list[str]:
    return [str(i.get("Projection", {}).get("ProjectionType", "ALL")) for i in src.gsis + src.lsis]


def make_plan(
    source: TableLocation,
    target: TableLocation,
    options: TargetOptions,
    *,
    write_rate: float | None = None,
    prices: Prices | None = None,
    sample_limit: int = DEFAULT_SAMPLE_ITEMS,
    cpus: int | None = None,
    clients: Clients = PROCESS_CLIENTS,
) -> Plan:
    """Read-only: the checks `migrate` validates with, the facts, the estimates.

    Raises what validation raises (missing table, incompatible keys, same table, non-empty
    target without allow, KEYS_ONLY stream without replace): a plan of a migration that would
    be refused is not printed. `cpus` (default: this machine's) sizes the local runner's plan.
    """
    prices = prices or Prices()
    check: TargetCheck = check_target(source, target, options, clients=clients)
    stream: StreamStatus = check_stream(source, options.replace_stream, clients=clients)
    src = check.source
    spec = check.spec
    warnings = list(check.warnings)

    size = measure_source(source, src, sample_limit, clients=clients)
    warnings.extend(size.warnings)
    item_count, size_bytes, avg = size.item_count, size.size_bytes, size.avg_item_bytes
    count_from, avg_from, sampled = size.item_count_from, size.avg_item_from, size.sampled

    per_item = write_units_per_item(avg)
    index_units = index_write_units_per_item(avg, index_projections(src))
    writes = backfill_write_units(item_count, avg, index_units)
    replicated = writes * len(spec.replica_regions)
    total_bytes = avg * item_count
    backfill_reads = scan_read_units(total_bytes)
    backfill = Estimate(
        read_units=backfill_reads,
        write_units=writes,
        replicated_write_units=replicated,
        cost_usd=on_demand_cost(writes, backfill_reads, prices, replicated),
    )
    verify_reads = 2 * scan_read_units(total_bytes)
    verification = Estimate(
        read_units=verify_reads, cost_usd=on_demand_cost(0, verify_reads, prices)
    )

    capacity = spec.capacity
    if write_rate:
        rate, rate_from = write_rate, "--write-rate"
    elif capacity:
        rate = default_write_rate(avg, provisioned_wcu=capacity[1], index_units=index_units)
        rate_from = f"{DEFAULT_CAPACITY_SHARE:.0%} of the target's {capacity[1]} WCU"
    else:
        rate = default_write_rate(avg, index_units=index_units)
        rate_from = f"on-demand initial throughput, {ON_DEMAND_INITIAL_WCU:,} WCU"
    seconds = backfill_duration_seconds(item_count, rate)
    fits = fits_stream_retention(seconds)
    if not fits:
        warnings.append(
            f"the backfill (~{human_duration(seconds)}) is not comfortably inside the 24 h "
            f"stream retention (limit {human_duration(STREAM_RETENTION_SECONDS * RETENTION_MARGIN)}"
            "): raise the write rate / target capacity, or stream records may expire before "
            "the replicator applies them"
        )

    source_changes: list[str] = []
    if stream.action == "enable":
        source_changes.append("enable a NEW_AND_OLD_IMAGES stream")
    elif stream.action == "replace":
        source_changes.append(
            f"disable the {stream.view_type} stream and enable NEW_AND_OLD_IMAGES"
        )
        warnings.append(stream.message or f"the {stream.view_type} stream will be replaced")
    else:
        source_changes.append(f"none (its {stream.view_type} stream is used as is)")

    target_changes: list[str] = []
    if check.action == "create":
        target_changes.append("create the table")
        if spec.ttl_attribute:
            target_changes.append(f"enable TTL on {spec.ttl_attribute!r}")
        if spec.pitr:
            target_changes.append("enable point-in-time recovery")
    else:
        existing = check.target
        if existing is not None and existing.tags is not None:
            add = sorted(k for k, v in options.tags.items() if existing.tags.get(k) != v)
            if add:
                target_changes.append("add tags " + ", ".join(add))
        raised = (
            raised_warm_throughput(existing.warm_throughput, spec.warm_throughput)
            if existing is not None and (options.warm_read_units or options.warm_write_units)
            else None
        )
        if raised:
            target_changes.append(
                f"raise warm throughput to {raised[0]:,} read / {raised[1]:,} write units/s "
                "(a one-time charge)"
            )
    if spec.replica_regions:
        have = check.target.replicas if check.target else {}
        new = [r for r in spec.replica_regions if r not in have]
        if new:
            target_changes.append("add replicas in " + ", ".join(new) + " (one at a time)")
    if check.action == "exists" and not target_changes:
        target_changes.append("none")

    wcu, warm = target_capacity(check)
    strategy, strategy_reason = recommend_strategy(
        item_count,
        size_bytes,
        target_empty=check.action == "create" or not check.nonempty,
        max_write_rate=write_rate,
        target_wcu=wcu or 0,
    )
    sizing: dict[str, Any] = {
        "provisioned_wcu": wcu,
        "warm_wcu": warm,
        "max_write_rate": write_rate,
        "index_units": index_units,
    }
    local = concurrency_plan(
        item_count,
        size_bytes,
        runner="local",
        cpus=cpus or os.cpu_count(),
        endpoint_url=target.side.endpoint_url,
        **sizing,
    )
    deployed = concurrency_plan(item_count, size_bytes, runner="aws", **sizing)

    return Plan(
        source=source.display() if source.side.region else src.display(),
        target=target.display(),
        item_count=item_count,
        item_count_from=count_from,
        size_bytes=size_bytes,
        avg_item_bytes=round(avg, 1),
        avg_item_from=avg_from,
        sample_items=sampled,
        target_action=check.action,
        target_settings=spec.describe(),
        target_changes=target_changes,
        source_changes=source_changes,
        write_units_per_item=per_item,
        index_write_units_per_item=index_units,
        backfill=backfill,
        verification=verification,
        total_cost_usd=backfill.cost_usd + verification.cost_usd,
        target_storage_usd_per_month=total_bytes / 1024**3 * prices.storage_per_gb_month,
        prices=prices,
        write_rate=rate,
        write_rate_from=rate_from,
        backfill_seconds=seconds,
        fits_stream_retention=fits,
        strategy=strategy,
        strategy_reason=strategy_reason,
        concurrency=local,
        concurrency_deployed=deployed,
        source_pitr=src.pitr,
        source_lsis=[str(i.get("IndexName", "")) for i in src.lsis],
        target_nonempty=check.action == "exists" and check.nonempty,
        target_wcu=wcu,
        target_warm_wcu=warm,
        replica_count=len(spec.replica_regions),
        warnings=warnings,
    )


def replay_refusal(
    item_count: int,
    table_size_bytes: int,
    *,
    max_write_rate: float | None = None,
    target_wcu: int = 0,
) -> str | None:
    """Why the replay strategy is refused for this table (None: allowed).

    Replay starts the replicator from TRIM_HORIZON only after the backfill, so every change made
    during the backfill must still be in the stream then. The rule is the plan's
    (`plan.backfill_fits_retention`: the estimate must stay within half the 24-hour retention),
    at `max_write_rate`, else a share of a provisioned target's WCU, else an on-demand table's
    initial throughput.
    """
    avg = table_size_bytes / item_count if item_count > 0 else 0.0
    rate = max_write_rate or (
        default_write_rate(avg, provisioned_wcu=target_wcu) if target_wcu else None
    )
    if backfill_fits_retention(item_count, avg, rate):
        return None
    seconds = backfill_duration_seconds(item_count, rate or default_write_rate(avg))
    limit = STREAM_RETENTION_SECONDS * RETENTION_MARGIN
    return (
        f"--strategy replay: the backfill of {item_count:,} items is estimated at "
        f"{human_duration(seconds)}, not well inside the stream's "
        f"{STREAM_RETENTION_SECONDS // 3600} h retention (limit {human_duration(limit)}): "
        "stream records written during it could expire before the replicator reads them; "
        "use --strategy concurrent"
    )
