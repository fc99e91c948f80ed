"""What a migration will do and cost, before anything is touched.

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
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from dynashift.items import is_tombstone, item_size
from dynashift.models import TableLocation
from dynashift.ratelimit import DEFAULT_CAPACITY_SHARE
from dynashift.stream import StreamStatus, check_stream
from dynashift.tables import scan_pages
from dynashift.target import SourceDescription, TargetCheck, TargetOptions, check_target

WRITE_UNIT_BYTES = 1024
READ_UNIT_BYTES = 4096
STREAM_RETENTION_SECONDS = 24 * 3600
#: The backfill must finish within this share of the stream retention.
RETENTION_MARGIN = 0.5
#: Write units per second a new on-demand table serves before it scales (its initial
#: throughput; AWS documents 4,000 WCU / 12,000 RCU).
ON_DEMAND_INITIAL_WCU = 4000
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
        if self.warnings:
            out.append("")
            out.append("Warnings")
            out.extend(f"  - {w}" for w in self.warnings)
        return "\n".join(out)


def sample_items(
    location: TableLocation, limit: int = DEFAULT_SAMPLE_ITEMS
) -> tuple[int, int, bool]:
    """(items, total bytes, whole table read) of a bounded scan of up to `limit` items."""
    client = location.clients().dynamodb()
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


def _index_projections(src: SourceDescription) -> list[str]:
    return [str(i.get("Projection", {}).get("ProjectionType", "ALL")) for i in src.gsis + src.lsis]


def make_plan(
    source: TableLocation,
    target: TableLocation,
    options: TargetOptions,
    *,
    write_rate: float | None = None,
    prices: Prices | None = None,
    sample_limit: int = DEFAULT_SAMPLE_ITEMS,
) -> Plan:
    """Read-only: the checks `migrate` validates with, the facts, the estimates.

    Raises what validation raises (missing table, incompatible keys, same table, non-empty
    target without allow, KEYS_ONLY stream without replace): a plan of a migration that would
    be refused is not printed.
    """
    prices = prices or Prices()
    check: TargetCheck = check_target(source, target, options)
    stream: StreamStatus = check_stream(source, options.replace_stream)
    src = check.source
    spec = check.spec
    warnings = list(check.warnings)

    item_count, size_bytes = src.item_count, src.size_bytes
    count_from: Literal["DescribeTable", "sample scan"] = "DescribeTable"
    avg_from: Literal["DescribeTable", "sample scan", "none (empty table)"] = "DescribeTable"
    sampled = 0
    if item_count and size_bytes:
        avg = size_bytes / item_count
    else:
        sampled, sampled_bytes, complete = sample_items(source, sample_limit)
        avg = sampled_bytes / sampled if sampled else 0.0
        avg_from = "sample scan" if sampled else "none (empty table)"
        if complete and sampled != item_count:
            item_count, count_from = sampled, "sample scan"
        elif not item_count and sampled:
            item_count, count_from = sampled, "sample scan"
            warnings.append(
                "DescribeTable reports 0 items (it is refreshed about every 6 hours): the item "
                f"count is at least {sampled:,}, the estimates are a lower bound"
            )
        size_bytes = size_bytes or round(avg * item_count)

    per_item = write_units_per_item(avg)
    index_units = index_write_units_per_item(avg, _index_projections(src))
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
    if spec.replica_regions:
        have = check.target.replicas if check.target else {}
        new = [r for r in spec.replica_regions if r not in have]
        if new:
            target_changes.append("add replicas in " + ", ".join(new) + " (one at a time)")
    if check.action == "exists" and not target_changes:
        target_changes.append("none")

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
        warnings=warnings,
    )
