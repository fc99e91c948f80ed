"""Verification: compare each segment of the source with the target, then recheck suspects.

Size: one module because the segment comparison (batch and merge lookups) and the recheck
share one cursor, one set of counters and the same key lookups; apart they would import each other.

The comparison rule is the sync engine's (`sync.ItemDiffer`, `sync.diff_page`,
`sync.find_extra`); repairs are sync's conditional writes (`sync.repair_keys`). Nothing
here decides on its own whether two items are equal.

Two lookup modes give the same counts on the same tables:

- **batch** — the seed tool's way. Scan the source segment and BatchGetItem the target for each
  page's keys (missing / differing); then scan the target segment and BatchGetItem the source
  for its keys (extra). Every item is read twice: once by a scan, once by a key lookup.
- **merge** — scan the same segment of both tables (they share the key schema) and pair the
  items by key in memory, so each item is read once, by a scan. Items not paired yet wait in a
  bounded buffer; past `merge_buffer` items (the scans came back in different orders) the
  oldest are resolved by the batch lookups above ("spill"), so memory stays bounded. Unpaired
  source items are always resolved against the target by key, and unpaired target items only
  decide "extra" against the source by key, so each key is compared exactly once however the
  scans are ordered and however the two tables split segments.
- **auto** — merge when every segment fits the buffer (no spill is possible) or when both tables
  are AWS DynamoDB (same scan order, so pairs meet quickly); batch otherwise.

Tombstones (invariant I5) are never counted: a target tombstone is an absent item.

`verify_segment` is resumable like the backfill: it stops after `budget_seconds` and returns a
not-done `VerifyResult`; pass that result back as `cursor` to continue with its counts.

`recheck` re-reads every suspect key with strongly consistent reads on both sides, around a
wait for the replicator, so writes in flight during the first pass are not called divergent:
per round, read the source (S1), wait until the replicator has applied everything written
before that read, read the target (T) and the source again (S2). T equal to S1 or S2, or to any
image of the key the source stream carried between the two source reads (`images`, read from the
stream: a key written faster than a round settles too): in sync. Otherwise, S1 equal to S2 (the
source held still the whole time): divergent. Otherwise the key changed during the round: it is
read again in the next round, and after the last round it is "unsettled".

Why one module of this size: the first pass and the recheck share the result models, the
classification rule and the TTL-expiry rule; the recheck (from `# --- recheck`) is the part to
move into a module of its own next.
"""

from __future__ import annotations

import json
import logging
import math
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, Literal

from botocore.exceptions import ClientError
from pydantic import BaseModel, ConfigDict, Field

from dynashift.clock import SYSTEM_CLOCK, Clock
from dynashift.errors import BadInputError, NotReadyYet
from dynashift.items import (
    Item,
    from_event_json,
    is_expired,
    is_tombstone,
    item_size,
    key_id,
    key_of,
    to_event_json,
)
from dynashift.models import PROCESS_CLIENTS, Clients, MigrationSpec
from dynashift.readiness import VERIFY_PREFIX, VerificationSummary
from dynashift.sampling import VerifySample, recorded_sample
from dynashift.state import StateStore, existing_state_store
from dynashift.sync import ItemDiffer, diff_page, find_extra, lookup_keys, repair_keys
from dynashift.tables import BATCH_GET_MAX, BatchStats, describe_table, scan_pages, table_keys

log = logging.getLogger("dynashift.verify")

Mode = Literal["batch", "merge", "auto"]
ConcreteMode = Literal["batch", "merge"]
Kind = Literal["missing", "differing", "extra"]

#: Suspect keys kept per segment (they travel in the Step Functions payload).
DEFAULT_MAX_SUSPECTS = 200
#: Unpaired items the merge mode holds in memory before resolving the oldest by key lookups.
DEFAULT_MERGE_BUFFER = 5_000
#: State store sort key of the recheck result (verify#<segment> holds each segment's counts).
RECHECK_SK = "recheck"
#: Read unit size (bytes) and the eventually consistent discount, by DynamoDB's rules.
READ_UNIT_BYTES = 4096


# --- models ----------------------------------------------------------------------------------


class Suspect(BaseModel):
    """A key the first pass found different (event-JSON wire format: binary as base64)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: Kind
    key: dict[str, Any]

    def wire_key(self) -> Item:
        return from_event_json(self.key)


class ReadCost(BaseModel):
    """Requests made and read units consumed on one table, by DynamoDB's rounding rules.

    Scan: the page's total item size rounded up to 4 KB. BatchGetItem: each item rounded up to
    4 KB on its own, a key with no item at least one unit. Eventually consistent reads cost
    half. (moto reports a constant ConsumedCapacity, so the units are computed from sizes.)
    """

    model_config = ConfigDict(extra="forbid")

    requests: int = 0
    read_units: float = 0.0
    items_read: int = 0

    def scan_page(self, items: Sequence[Item], consistent: bool = False) -> None:
        size = sum(item_size(i) for i in items)
        units = max(1, math.ceil(size / READ_UNIT_BYTES))
        self.requests += 1
        self.read_units += units * (1.0 if consistent else 0.5)
        self.items_read += len(items)

    def gets(self, found: Sequence[Item], keys: int, requests: int, consistent: bool) -> None:
        units = sum(max(1, math.ceil(item_size(i) / READ_UNIT_BYTES)) for i in found)
        units += max(keys - len(found), 0)
        self.requests += requests
        self.read_units += units * (1.0 if consistent else 0.5)
        self.items_read += len(found)

    def add(self, other: ReadCost) -> None:
        self.requests += other.requests
        self.read_units += other.read_units
        self.items_read += other.items_read


class VerifyCursor(BaseModel):
    """Where a segment's verification stopped (scan positions in event-JSON wire format)."""

    model_config = ConfigDict(extra="forbid")

    #: batch mode: "source" (source scan + target lookups) then "target" (extra check).
    phase: Literal["source", "target"] = "source"
    source_key: dict[str, Any] | None = None
    target_key: dict[str, Any] | None = None
    source_done: bool = False
    target_done: bool = False


class VerifyResult(BaseModel):
    """Counts of one segment's verification; not `done` means: call again with it as cursor."""

    model_config = ConfigDict(extra="forbid")

    migration_id: str
    segment: int
    total_segments: int
    mode: ConcreteMode
    done: bool = False
    cursor: VerifyCursor = Field(default_factory=VerifyCursor)
    #: Wall-clock time (epoch s) the segment's first pass started.
    started_at: float = 0.0
    finished_at: float | None = None
    calls: int = 0
    scanned_source: int = 0
    #: Non-tombstone target items seen by the target scan / lookups of this segment.
    scanned_target: int = 0
    same: int = 0
    missing: int = 0
    differing: int = 0
    extra: int = 0
    #: Target tombstones skipped (never counted as data).
    tombstones: int = 0
    #: Keys that differ only because DynamoDB's TTL expired the item on one side: an extra
    #: target item whose TTL time is past (the source expired it; with `skip_ttl_deletes` the
    #: target keeps it until its own TTL deletes it), or a source item past its TTL time the
    #: target already expired. Not divergent, not suspects; counted here.
    expired: int = 0
    #: merge mode: unpaired items resolved by key lookups (buffer full or end of a call).
    spilled: int = 0
    #: merge mode: the most unpaired items held in memory at once, measured after each page
    #: (bounded by the buffer plus one page of at most half the buffer).
    max_buffered: int = 0
    source_reads: ReadCost = Field(default_factory=ReadCost)
    target_reads: ReadCost = Field(default_factory=ReadCost)
    suspects: list[Suspect] = Field(default_factory=list)
    #: Suspects found beyond `max_suspects` (counted, not listed, so never rechecked).
    suspects_dropped: int = 0

    @property
    def suspect_count(self) -> int:
        return self.missing + self.differing + self.extra

    def counts(self) -> dict[str, int]:
        return {
            "scanned_source": self.scanned_source,
            "scanned_target": self.scanned_target,
            "same": self.same,
            "missing": self.missing,
            "differing": self.differing,
            "extra": self.extra,
            "expired": self.expired,
        }


class RecheckResult(BaseModel):
    """The outcome of rechecking suspects; only `divergent` keys are real differences."""

    model_config = ConfigDict(extra="forbid")

    checked: int = 0
    #: Suspects found equal (in flight during the first pass).
    settled: int = 0
    #: Keys different although the source held still after the replicator caught up.
    divergent: int = 0
    #: Keys that changed during every round (could not be settled).
    unsettled: int = 0
    #: Keys different only because DynamoDB's TTL expired the item on one side (see
    #: `VerifyResult.expired`): not divergent, not repaired.
    expired: int = 0
    #: Divergent keys written from the source (`repair=True`) and then found equal.
    repaired: int = 0
    #: Repairs not written because the key changed since it was read (skipped, not an error).
    repair_skipped: int = 0
    #: Repairs written without a condition (item too large for one) after a consistent re-read.
    repair_unconditional: int = 0
    rounds: int = 0
    #: Still-divergent (and unsettled) keys, bounded like the suspects.
    divergent_keys: list[Suspect] = Field(default_factory=list)


# --- helpers ---------------------------------------------------------------------------------


class _Sides:
    def __init__(
        self,
        spec: MigrationSpec,
        source_client: Any | None,
        target_client: Any | None,
        clients: Clients,
        parallelism: int = 4,
    ) -> None:
        self.source, self.target = clients.dynamodb_pair(
            spec.source, spec.target, source_client, target_client, parallelism
        )
        desc = describe_table(self.source, spec.source.name, "source")
        self.names = table_keys(desc)
        self.source_desc = desc
        self._source_name = spec.source.name
        self._ttl: tuple[str | None] | None = None

    @property
    def ttl_attribute(self) -> str | None:
        """The source's TTL attribute (None: TTL off or not readable), read once when needed."""
        if self._ttl is None:
            self._ttl = (source_ttl_attribute(self.source, self._source_name),)
        return self._ttl[0]


def source_ttl_attribute(client: Any, table: str) -> str | None:
    """The TTL attribute of `table` when its TTL is ENABLED (or ENABLING), else None.

    A store without the API (or a role without the permission) has no TTL as far as the
    verification is concerned: nothing is then classified as expired.
    """
    try:
        desc = client.describe_time_to_live(TableName=table).get("TimeToLiveDescription", {})
    except ClientError as exc:
        log.warning("TTL of %s not readable (%s): no item counted as expired", table, exc)
        return None
    if desc.get("TimeToLiveStatus") in ("ENABLED", "ENABLING"):
        return str(desc.get("AttributeName")) or None
    return None


def _json_key(key: Mapping[str, Any] | None) -> dict[str, Any] | None:
    return to_event_json(dict(key)) if key else None


def choose_mode(
    source_desc: Mapping[str, Any],
    target_desc: Mapping[str, Any],
    total_segments: int,
    *,
    merge_buffer: int = DEFAULT_MERGE_BUFFER,
    same_scan_order: bool = False,
) -> ConcreteMode:
    """The auto rule (module docstring): merge when no spill is possible or scans agree."""
    largest = max(int(source_desc.get("ItemCount", 0)), int(target_desc.get("ItemCount", 0)))
    per_segment = largest / max(total_segments, 1)
    if per_segment <= merge_buffer or same_scan_order:
        return "merge"
    return "batch"


def _record(result: VerifyResult, kind: Kind, keys: Sequence[Item], max_suspects: int) -> None:
    for key in keys:
        if len(result.suspects) < max_suspects:
            result.suspects.append(Suspect(kind=kind, key=to_event_json(key)))
        else:
            result.suspects_dropped += 1
    if kind == "missing":
        result.missing += len(keys)
    elif kind == "differing":
        result.differing += len(keys)
    else:
        result.extra += len(keys)


class _Segment:
    """One call's worth of work on one segment (shared by both modes)."""

    def __init__(
        self,
        spec: MigrationSpec,
        sides: _Sides,
        result: VerifyResult,
        differ: ItemDiffer,
        *,
        max_suspects: int,
        page_limit: int | None,
        lookup_chunk: int,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        self.clock = clock
        self.spec = spec
        self.sides = sides
        self.result = result
        self.differ = differ
        self.max_suspects = max_suspects
        self.page_limit = page_limit
        self.chunk = lookup_chunk

    def scan(self, client: Any, table: str, start: Mapping[str, Any] | None) -> Any:
        return scan_pages(
            client,
            table,
            segment=self.result.segment,
            total_segments=self.result.total_segments,
            start_key=from_event_json(start) if start else None,
            limit=self.page_limit,
        )

    def lookup(self, items: Sequence[Item], side: Literal["source", "target"]) -> list[Item]:
        """The items of `side` with the keys of `items` (eventually consistent BatchGetItem),
        counted in that side's reads."""
        client, location = (
            (self.sides.source, self.spec.source)
            if side == "source"
            else (self.sides.target, self.spec.target)
        )
        reads = self.result.source_reads if side == "source" else self.result.target_reads
        stats = BatchStats()
        keys = [key_of(i, self.sides.names) for i in items]
        found = lookup_keys(client, location.name, keys, chunk=self.chunk, stats=stats)
        reads.gets(found, len(keys), stats.requests, consistent=False)
        return found

    def compare_sources(self, source_items: Sequence[Item]) -> None:
        """Look up source items in the target and classify them (missing / differing)."""
        if source_items:
            self.classify(source_items, self.lookup(source_items, "target"))

    def classify(self, source_items: Sequence[Item], target_items: Sequence[Item]) -> None:
        diff = diff_page(source_items, target_items, self.sides.names, self.differ)
        self.result.same += diff.same
        missing = self.not_expired(diff.missing, source_items)
        _record(self.result, "missing", missing, self.max_suspects)
        _record(self.result, "differing", diff.differing, self.max_suspects)

    def not_expired(self, keys: list[Item], images: Sequence[Item]) -> list[Item]:
        """`keys` less those whose item in `images` DynamoDB's TTL has expired (counted)."""
        if not keys:
            return keys
        ttl = self.sides.ttl_attribute
        if ttl is None:
            return keys
        names, now = self.sides.names, self.clock.wall()
        by_id = {key_id(key_of(i, names)): i for i in images}
        kept = [k for k in keys if not is_expired(by_id.get(key_id(k)), ttl, now)]
        self.result.expired += len(keys) - len(kept)
        return kept

    def check_extra(self, target_items: Sequence[Item]) -> None:
        """Look up (non-tombstone) target items in the source; absent ones are extra."""
        if not target_items:
            return
        names = self.sides.names
        found = self.lookup(target_items, "source")
        keys = [key_of(i, names) for i in target_items]
        extra = self.not_expired(find_extra(keys, found, names), target_items)
        _record(self.result, "extra", extra, self.max_suspects)


def _run_batch(work: _Segment, out_of_time: Callable[[], bool]) -> None:
    cursor = work.result.cursor
    if cursor.phase == "source" and not cursor.source_done:
        if not _scan_batch_side(work, "source", out_of_time):
            return
        cursor.phase = "target"
    if cursor.phase == "target" and not cursor.target_done:
        _scan_batch_side(work, "target", out_of_time)


def _scan_batch_side(
    work: _Segment, side: Literal["source", "target"], out_of_time: Callable[[], bool]
) -> bool:
    """One phase of the batch mode: scan `side` from its cursor, each page's live items looked
    up on the other side (source: missing / differing; target: extra). False when out of time
    (the cursor holds where to continue), True when the side's scan is done."""
    result, cursor = work.result, work.result.cursor
    source = side == "source"
    client, location = (
        (work.sides.source, work.spec.source) if source else (work.sides.target, work.spec.target)
    )
    reads = result.source_reads if source else result.target_reads
    start = cursor.source_key if source else cursor.target_key
    for page in work.scan(client, location.name, start):
        reads.scan_page(page.items)
        items = [i for i in page.items if not is_tombstone(i)]
        done = page.cursor is None
        if source:
            result.scanned_source += len(items)
            work.compare_sources(items)
            cursor.source_key, cursor.source_done = _json_key(page.cursor), done
        else:
            result.tombstones += len(page.items) - len(items)
            result.scanned_target += len(items)
            work.check_extra(items)
            cursor.target_key, cursor.target_done = _json_key(page.cursor), done
        if not done and out_of_time():
            return False
    return True


def _run_merge(work: _Segment, out_of_time: Callable[[], bool], buffer: int) -> None:
    # Pages of at most half the buffer, read alternately from both tables: when the scans
    # agree on the order, a page of one side is paired by the next page of the other before
    # the buffer fills. Memory: `buffer` unpaired items plus one page.
    half = max(1, buffer // 2)
    work.page_limit = min(work.page_limit, half) if work.page_limit else half
    result, cursor, names, spec = work.result, work.result.cursor, work.sides.names, work.spec
    pending_source: OrderedDict[str, Item] = OrderedDict()
    pending_target: OrderedDict[str, Item] = OrderedDict()
    source_pages = (
        None
        if cursor.source_done
        else work.scan(work.sides.source, spec.source.name, cursor.source_key)
    )
    target_pages = (
        None
        if cursor.target_done
        else work.scan(work.sides.target, spec.target.name, cursor.target_key)
    )
    read_source = read_target = 0

    def spill(
        side: OrderedDict[str, Item], keep: int, resolve: Callable[[list[Item]], None]
    ) -> None:
        while len(side) > keep:
            batch = [
                side.popitem(last=False)[1] for _ in range(min(BATCH_GET_MAX, len(side) - keep))
            ]
            result.spilled += len(batch)
            resolve(batch)

    while source_pages is not None or target_pages is not None:
        take_source = source_pages is not None and (
            target_pages is None or read_source <= read_target
        )
        if take_source:
            assert source_pages is not None
            page = next(source_pages)
            result.source_reads.scan_page(page.items)
            matched_s: list[Item] = []
            matched_t: list[Item] = []
            for item in page.items:
                if is_tombstone(item):
                    continue
                result.scanned_source += 1
                kid = key_id(key_of(item, names))
                other = pending_target.pop(kid, None)
                if other is None:
                    pending_source[kid] = item
                else:
                    matched_s.append(item)
                    matched_t.append(other)
            read_source += len(page.items)
            work.classify(matched_s, matched_t)
            cursor.source_key = _json_key(page.cursor)
            if page.cursor is None:
                cursor.source_done, source_pages = True, None
        else:
            assert target_pages is not None
            page = next(target_pages)
            result.target_reads.scan_page(page.items)
            matched_s, matched_t = [], []
            for item in page.items:
                kid = key_id(key_of(item, names))
                tomb = is_tombstone(item)
                if tomb:
                    result.tombstones += 1
                else:
                    result.scanned_target += 1
                mine = pending_source.pop(kid, None)
                if mine is not None:
                    matched_s.append(mine)
                    matched_t.append(item)
                elif not tomb:
                    pending_target[kid] = item
            read_target += len(page.items)
            work.classify(matched_s, matched_t)
            cursor.target_key = _json_key(page.cursor)
            if page.cursor is None:
                cursor.target_done, target_pages = True, None
        result.max_buffered = max(result.max_buffered, len(pending_source) + len(pending_target))
        # Over the bound: resolve the oldest unpaired items of the fuller side by key.
        while len(pending_source) + len(pending_target) > buffer:
            over = len(pending_source) + len(pending_target) - buffer
            if len(pending_source) >= len(pending_target):
                spill(pending_source, len(pending_source) - over, work.compare_sources)
            else:
                spill(pending_target, len(pending_target) - over, work.check_extra)
        if (source_pages is not None or target_pages is not None) and out_of_time():
            break
    # Whatever is still unpaired is resolved by key before returning (the cursor is past it).
    spill(pending_source, 0, work.compare_sources)
    spill(pending_target, 0, work.check_extra)


@dataclass(frozen=True)
class VerifyConfig:
    """What configures one verification (not what it is done with: the clients, the clocks and
    the state store are passed to `verify_segment` beside it)."""

    #: "batch" (look the source's keys up in the target), "merge" (scan both), "auto" (choose).
    mode: Mode = "auto"
    #: Seconds a call may run before it returns a cursor (default `spec.worker_budget_seconds`).
    budget_seconds: float | None = None
    #: Suspect keys kept per segment (they travel in the Step Functions payload).
    max_suspects: int = DEFAULT_MAX_SUSPECTS
    #: Unpaired items the merge mode holds before resolving the oldest by key lookups (>= 2).
    merge_buffer: int = DEFAULT_MERGE_BUFFER
    #: Scan page size (None: DynamoDB's 1 MB pages).
    page_limit: int | None = None
    #: Keys per BatchGetItem.
    lookup_chunk: int = BATCH_GET_MAX
    #: Segments of the scan (default `spec.segments`).
    total_segments: int | None = None
    #: Save each call's result in the state store (`verify#<segment>`).
    checkpoint: bool = True
    #: What "differs" means (default: `ItemDiffer(spec.ignore)`).
    differ: ItemDiffer | None = None


def verify_segment(
    spec: MigrationSpec,
    segment: int,
    cursor: VerifyResult | Mapping[str, Any] | None = None,
    config: VerifyConfig = VerifyConfig(),
    *,
    clock: Clock = SYSTEM_CLOCK,
    source_client: Any | None = None,
    target_client: Any | None = None,
    state: StateStore | None = None,
    clients: Clients = PROCESS_CLIENTS,
) -> VerifyResult:
    """Verify one segment of `spec.source` against `spec.target` (module docstring), as
    `config` says.

    `cursor` continues a segment: either a not-done result of a previous call (or its JSON), or
    just its `cursor` field (what the state machine carries) — then the counts come from the
    state store checkpoint `verify#<segment>`. With `config.checkpoint`, every call ends by
    saving its result there (`state`, default the spec's state store when that table exists).
    Runs until the segment is done or `config.budget_seconds` (default
    `spec.worker_budget_seconds`) have passed, checked between pages, so at least one page is
    read per call.
    """
    mode, merge_buffer, checkpoint = config.mode, config.merge_buffer, config.checkpoint
    total = config.total_segments or spec.segments
    if not 0 <= segment < total:
        raise BadInputError(f"segment {segment} is outside 0..{total - 1}")
    if merge_buffer < 2:
        raise BadInputError(f"merge buffer {merge_buffer} must be at least 2")
    sides = _Sides(spec, source_client, target_client, clients)
    if checkpoint and state is None:
        state = existing_state_store(spec, clients)
    if cursor is not None and not isinstance(cursor, VerifyResult) and "segment" not in cursor:
        # A bare VerifyCursor: the counts live in the state store. A checkpoint ahead of the
        # cursor (a retried call whose answer was lost) is a consistent later point: use it.
        saved = load_verify_result(state, segment) if state is not None else None
        if saved is None or saved.migration_id != spec.migration_id:
            raise BadInputError(
                f"no verification checkpoint of segment {segment} in the state store to "
                "continue the cursor from"
            )
        cursor = saved
    if cursor is not None:
        result = (
            cursor.model_copy(deep=True)
            if isinstance(cursor, VerifyResult)
            else VerifyResult.model_validate(cursor)
        )
        if result.segment != segment or result.migration_id != spec.migration_id:
            raise BadInputError(
                f"cursor is for segment {result.segment} of {result.migration_id}, "
                f"not segment {segment} of {spec.migration_id}"
            )
        if result.done:
            return result
    else:
        concrete: ConcreteMode
        if mode == "auto":
            target_desc = describe_table(sides.target, spec.target.name, "target")
            concrete = choose_mode(
                sides.source_desc,
                target_desc,
                total,
                merge_buffer=merge_buffer,
                same_scan_order=not spec.source.side.endpoint_url
                and not spec.target.side.endpoint_url,
            )
        else:
            concrete = mode
        result = VerifyResult(
            migration_id=spec.migration_id,
            segment=segment,
            total_segments=total,
            mode=concrete,
            started_at=clock.wall(),
        )
    result.calls += 1
    budget = spec.worker_budget_seconds if config.budget_seconds is None else config.budget_seconds
    deadline = clock.monotonic() + budget

    def out_of_time() -> bool:
        return clock.monotonic() >= deadline

    work = _Segment(
        spec,
        sides,
        result,
        config.differ or ItemDiffer(spec.ignore),
        max_suspects=config.max_suspects,
        page_limit=config.page_limit,
        lookup_chunk=config.lookup_chunk,
        clock=clock,
    )
    if result.mode == "batch":
        _run_batch(work, out_of_time)
    else:
        _run_merge(work, out_of_time, merge_buffer)
    result.done = result.cursor.source_done and result.cursor.target_done
    if result.done:
        result.finished_at = clock.wall()
    if state is not None:
        save_verify_result(state, result)
    log.debug(
        "verify segment %d/%d (%s): %s%s",
        segment,
        total,
        result.mode,
        result.counts(),
        "" if result.done else " (continues)",
    )
    return result


def verify_table(
    spec: MigrationSpec,
    config: VerifyConfig | None = None,
    *,
    on_result: Callable[[VerifyResult], None] | None = None,
    **options: Any,
) -> list[VerifyResult]:
    """Every segment of `spec`, one after the other, each called until done (local runs).

    `options`: `VerifyConfig` fields (override `config`'s) and `verify_segment`'s keyword
    arguments (clients, clocks, state store)."""
    fields = {
        name: options.pop(name) for name in VerifyConfig.__dataclass_fields__ if name in options
    }
    config = replace(config or VerifyConfig(), **fields)
    results = []
    for segment in range(spec.segments):
        result = verify_segment(spec, segment, None, config, **options)
        while not result.done:
            result = verify_segment(spec, segment, result, config, **options)
        if on_result is not None:
            on_result(result)
        results.append(result)
    return results


# --- recheck ---------------------------------------------------------------------------------

#: `caught_up(t)`: True once the replicator has applied every source write made before `t`
#: (epoch seconds). Locally built from the stream follower's lag; in AWS from the replicator's
#: checkpoints.
CaughtUp = Callable[[float], bool]
#: `images(start, end, keys, key_names)`: key id -> every image (None: a delete) the source
#: stream carried for those keys in records created from `start` to `end` (epoch seconds).
WindowImages = Callable[[float, float, Sequence[Item], Sequence[str]], Mapping[str, Any]]
#: Called at the start of each round, before the first source read: the reader of the stream
#: window that round will ask for (it notes where the stream stands now).
StreamWindow = Callable[[], WindowImages]


def _classify(
    source: Item | None, target: Item | None, names: Sequence[str], differ: ItemDiffer
) -> Kind | None:
    """The sync rule for one key: None when in sync, else how the target differs."""
    if source is None or is_tombstone(source):
        if target is not None and not is_tombstone(target):
            return "extra"
        return None
    diff = diff_page([source], [target] if target is not None else [], names, differ)
    if diff.missing:
        return "missing"
    if diff.differing:
        return "differing"
    return None


def _expired(
    divergent: Mapping[str, tuple[Kind, Item | None]],
    keys: Mapping[str, Item],
    sides: _Sides,
    spec: MigrationSpec,
    now: float,
) -> set[str]:
    """Divergent keys that differ only by a TTL expiry: a missing key whose source item is past
    its TTL time, an extra key whose target item (read again, consistently) is."""
    ttl = sides.ttl_attribute if divergent else None
    if ttl is None:
        return set()
    expired = {
        kid
        for kid, (kind, source) in divergent.items()
        if kind == "missing" and is_expired(source, ttl, now)
    }
    extra = [keys[kid] for kid, (kind, _) in divergent.items() if kind == "extra"]
    if extra:
        target = _read(sides.target, spec.target.name, extra, sides.names)
        expired |= {kid for kid, item in target.items() if is_expired(item, ttl, now)}
    return expired


def _read(client: Any, table: str, keys: Sequence[Item], names: Sequence[str]) -> dict[str, Item]:
    found = lookup_keys(client, table, keys, chunk=BATCH_GET_MAX, consistent=True)
    return {key_id(key_of(i, names)): i for i in found}


def _wait_caught_up(
    caught_up: CaughtUp | None,
    since: float,
    *,
    timeout: float,
    poll: float,
    clock: Clock,
) -> None:
    if caught_up is None:
        return
    deadline = clock.monotonic() + timeout
    while not caught_up(since):
        if clock.monotonic() >= deadline:
            raise NotReadyYet(
                f"the replicator has not applied the writes made before {since:.3f} "
                f"within {timeout:.0f}s"
            )
        clock.sleep(poll)


def recheck(
    spec: MigrationSpec,
    suspects: Sequence[Suspect | Mapping[str, Any]],
    *,
    caught_up: CaughtUp | None = None,
    images: StreamWindow | None = None,
    repair: bool = False,
    rounds: int = 3,
    timeout: float = 120.0,
    poll: float = 0.2,
    max_keys: int = DEFAULT_MAX_SUSPECTS,
    clock: Clock = SYSTEM_CLOCK,
    source_client: Any | None = None,
    target_client: Any | None = None,
    differ: ItemDiffer | None = None,
    clients: Clients = PROCESS_CLIENTS,
) -> RecheckResult:
    """Re-read suspects with strongly consistent reads; only still-different keys are divergent.

    `caught_up` None: the caller guarantees the replicator is idle (drained, or none running).
    With `repair`, divergent keys get the source's version (sync's `repair_keys`: never over a
    target item changed since it was read, `repair_skipped` counts those) and
    are read once more; those then equal are `repaired`, the rest stay divergent. NotReadyYet
    (a transient error the workflow retries) when the replicator does not catch up in `timeout`.
    """
    if rounds < 1:
        raise BadInputError(f"recheck rounds {rounds} must be at least 1")
    sides = _Sides(spec, source_client, target_client, clients)
    differ = differ or ItemDiffer(spec.ignore)
    names = sides.names
    unique: dict[str, Item] = {}
    for s in suspects:
        suspect = s if isinstance(s, Suspect) else Suspect.model_validate(s)
        key = suspect.wire_key()
        unique.setdefault(key_id(key), key)
    result = RecheckResult(checked=len(unique))
    wait = {"timeout": timeout, "poll": poll, "clock": clock}

    def settle(keys: dict[str, Item]) -> tuple[dict[str, tuple[Kind, Item | None]], set[str]]:
        """One round: (divergent id -> (kind, source item)), ids still changing."""
        key_list = list(keys.values())
        window = images() if images is not None else None
        start = clock.wall()
        first = _read(sides.source, spec.source.name, key_list, names)
        _wait_caught_up(caught_up, start, **wait)  # type: ignore[arg-type]
        target = _read(sides.target, spec.target.name, key_list, names)
        second = _read(sides.source, spec.source.name, key_list, names)
        end = clock.wall()
        open_keys = {
            kid
            for kid in keys
            if _classify(first.get(kid), target.get(kid), names, differ) is not None
            and _classify(second.get(kid), target.get(kid), names, differ) is not None
        }
        carried: Mapping[str, Any] = {}
        if window is not None and open_keys:
            carried = window(start, end, [keys[k] for k in open_keys], names)
        divergent: dict[str, tuple[Kind, Item | None]] = {}
        moving: set[str] = set()
        for kid in keys:
            s1, t, s2 = first.get(kid), target.get(kid), second.get(kid)
            kind = _classify(s1, t, names, differ)
            if kid not in open_keys or kind is None:
                continue
            if any(_classify(img, t, names, differ) is None for img in carried.get(kid, ())):
                continue  # the target holds a state the source passed through in this round
            if _classify(s1, s2, names, differ) is None:
                later = _classify(s2, t, names, differ)
                divergent[kid] = (later or kind, s2)
            else:
                moving.add(kid)
        return divergent, moving

    # A key is divergent when two consecutive rounds find it different with the source holding
    # still: one round alone can meet a write whose stream record carries a creation time just
    # past the catch-up mark (clock granularity), which the next round sees applied. A key
    # found different only in the last round still counts (no round left to clear it).
    pending = dict(unique)
    divergent: dict[str, tuple[Kind, Item | None]] = {}
    seen_once: dict[str, tuple[Kind, Item | None]] = {}
    for _ in range(rounds):
        if not pending:
            break
        result.rounds += 1
        found, moving = settle(pending)
        divergent.update({kid: v for kid, v in found.items() if kid in seen_once})
        seen_once = {kid: v for kid, v in found.items() if kid not in seen_once}
        pending = {kid: pending[kid] for kid in moving | seen_once.keys()}
    divergent.update(seen_once)
    pending = {kid: key for kid, key in pending.items() if kid not in divergent}
    result.unsettled = len(pending)
    expired = _expired(divergent, unique, sides, spec, clock.wall())
    divergent = {kid: v for kid, v in divergent.items() if kid not in expired}
    result.expired = len(expired)

    if repair and divergent:
        # sync's conditional repair: the source re-read consistently, each write conditional on
        # the target item being as read (a replicated write in between is never overwritten).
        outcome = repair_keys(
            sides.source,
            spec.source.name,
            sides.target,
            spec.target.name,
            [unique[kid] for kid in divergent],
            names=names,
            differ=differ,
            allow_delete=True,
        )
        result.repair_skipped = len(outcome.skipped)
        result.repair_unconditional = outcome.unconditional
        log.info(
            "repaired %d divergent keys (%d puts, %d deletes, %d skipped: changed since read)",
            len(divergent),
            len(outcome.written),
            len(outcome.deleted),
            len(outcome.skipped),
        )
        still, moving = settle({kid: unique[kid] for kid in divergent})
        result.repaired = len(divergent) - len(still) - len(moving)
        divergent = still
        result.unsettled += len(moving)

    result.divergent = len(divergent)
    result.settled = (
        result.checked - result.divergent - result.unsettled - result.repaired - result.expired
    )
    for kid, (kind, _) in divergent.items():
        if len(result.divergent_keys) < max_keys:
            result.divergent_keys.append(Suspect(kind=kind, key=to_event_json(unique[kid])))
    for kid in pending:
        if len(result.divergent_keys) < max_keys:
            result.divergent_keys.append(Suspect(kind="differing", key=to_event_json(unique[kid])))
    return result


# --- summaries and the state store -----------------------------------------------------------


def all_suspects(results: Sequence[VerifyResult]) -> list[Suspect]:
    return [s for r in results for s in r.suspects]


def summarize(
    results: Sequence[VerifyResult],
    recheck_result: RecheckResult | None,
    segments_total: int,
) -> VerificationSummary:
    """What the readiness checklist needs from the verification and the recheck."""
    suspects = sum(r.suspect_count for r in results)
    listed = sum(len(r.suspects) for r in results)
    rc = recheck_result
    # Suspects that were never rechecked (no recheck, or beyond the bound) are not proven equal.
    unchecked = suspects if rc is None else suspects - listed
    return VerificationSummary(
        segments_total=segments_total,
        segments_verified=len({r.segment for r in results if r.done}),
        scanned_source=sum(r.scanned_source for r in results),
        scanned_target=sum(r.scanned_target for r in results),
        suspects=suspects,
        divergent=rc.divergent if rc else 0,
        unsettled=rc.unsettled if rc else 0,
        unchecked=unchecked,
        repaired=rc.repaired if rc else 0,
        expired=sum(r.expired for r in results) + (rc.expired if rc else 0),
    )


def save_verify_result(state: StateStore, result: VerifyResult) -> None:
    """Checkpoint a segment's verification in the state store (`verify#<segment>`)."""
    state.put_record(
        VERIFY_PREFIX,
        f"{result.segment:06d}",
        data={"S": json.dumps(result.model_dump(mode="json"), sort_keys=True)},
        done={"BOOL": result.done},
        updated={"N": str(state.clock.wall())},
    )


def load_verify_results(state: StateStore) -> list[VerifyResult]:
    return [VerifyResult.model_validate_json(i["data"]["S"]) for i in state.records(VERIFY_PREFIX)]


def load_verify_result(state: StateStore, segment: int) -> VerifyResult | None:
    item = state.get_record(VERIFY_PREFIX, f"{segment:06d}")
    return VerifyResult.model_validate_json(item["data"]["S"]) if item else None


def save_recheck_result(state: StateStore, result: RecheckResult) -> None:
    state.put_record(
        RECHECK_SK,
        data={"S": json.dumps(result.model_dump(mode="json"), sort_keys=True)},
        updated={"N": str(state.clock.wall())},
    )


def load_recheck_result(state: StateStore) -> RecheckResult | None:
    item = state.get_record(RECHECK_SK)
    return RecheckResult.model_validate_json(item["data"]["S"]) if item else None


def _store(spec: MigrationSpec, state: StateStore | None, clients: Clients) -> StateStore:
    if state is not None:
        return state
    found = existing_state_store(spec, clients)
    if found is None:
        raise BadInputError(f"state table {spec.state.name!r} does not exist")
    return found


def recheck_migration(
    spec: MigrationSpec,
    *,
    state: StateStore | None = None,
    caught_up: CaughtUp | None = None,
    images: StreamWindow | None = None,
    repair: bool = False,
    clients: Clients = PROCESS_CLIENTS,
    **kwargs: Any,
) -> RecheckResult:
    """Recheck every suspect the segments' checkpoints list; save and return the result.

    The workflow's Recheck step: pass `caught_up` built from the replicator's lag (see `recheck`).
    """
    store = _store(spec, state, clients)
    results = run_results(spec, store, recorded_sample(store))
    result = recheck(
        spec,
        all_suspects(results),
        caught_up=caught_up,
        images=images,
        repair=repair,
        clients=clients,
        **kwargs,
    )
    save_recheck_result(store, result)
    return result


def verification_summary(
    spec: MigrationSpec, state: StateStore | None = None, clients: Clients = PROCESS_CLIENTS
) -> VerificationSummary | None:
    """The checklist's view of the saved verification and recheck of `spec`; a sampled one
    (a sample recorded in the state store) carries the sample and its bound. None when a sample
    was asked for but never drawn (nothing verified: the checklist says so)."""
    store = _store(spec, state, clients)
    sample = recorded_sample(store)
    if sample is None and spec.verify_sample is not None:
        return None
    results = run_results(spec, store, sample)
    recheck_result = load_recheck_result(store)
    if sample is None:
        return summarize(results, recheck_result, spec.segments)
    summary = summarize(results, recheck_result, len(sample.segments))
    summary.sample = sample.summary()
    return summary


def run_results(
    spec: MigrationSpec, store: StateStore, sample: VerifySample | None
) -> list[VerifyResult]:
    """The saved segment results of this migration's verification: those of the sampled
    key-space segments (`sample`), or of the backfill's segments (a full verification)."""
    results = load_verify_results(store)
    if sample is None:
        return [r for r in results if r.segment < spec.segments]
    chosen = set(sample.segments)
    return [r for r in results if r.total_segments == sample.total_segments and r.segment in chosen]


def segment_config(
    spec: MigrationSpec, state: StateStore, segment: int, config: VerifyConfig
) -> VerifyConfig:
    """`config` for `segment` of this migration's verification. A sampled one (`dynashift.
    sampling`) scans its own key-space partition: TotalSegments V, and only the recorded
    sampled numbers (BadInputError for another, or when no sample was drawn)."""
    if spec.verify_sample is None:
        return config
    sample = recorded_sample(state)
    if sample is None:
        raise BadInputError(
            f"spec.verify_sample: no verification sample is recorded for migration "
            f"{spec.migration_id} (the Plan segments step draws it)"
        )
    if segment not in sample.segments:
        raise BadInputError(
            f"segment {segment} is not one of the {len(sample.segments)} sampled key-space "
            f"segments of {sample.total_segments}"
        )
    return replace(config, total_segments=sample.total_segments)
