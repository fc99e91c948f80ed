"""The backfill segment worker (workflow step 5) and the write paths it shares with `copy`.

Size: one module because both strategies' writes, the cursor commit and the straggler lease run
inside one page loop whose invariants (I4, I5, I8) must be read together.

`run_segment` scans one segment of a parallel scan of the source, page by page, and writes each
page to the target; it commits the segment's cursor and counters to the state store after each
page is written, and returns before its budget runs out with the next cursor (None when the
segment is finished). The caller — the state machine in AWS, the local runner, `backfill_all`
in tests — owns the loop over cursors, so one call fits one Lambda invocation.

Two strategies (MigrationSpec.strategy):

* ``concurrent`` (default): the replicator already runs, so every write is a conditional PutItem
  (`conditions.backfill_put`, invariant I4) that never overwrites a replicated write or a
  tombstone (I5). Conditions cannot be batched, so puts are pipelined through a bounded pool of
  in-flight requests. A failed condition is a counted outcome: the put asks for
  ``ReturnValuesOnConditionCheckFailure=ALL_OLD`` and counts ``tombstones_honoured`` when the
  item in the way is a tombstone, ``skipped_newer`` otherwise (an endpoint that does not return
  the old item counts every failed condition as ``skipped_newer``).
* ``replay``: unconditional BatchWriteItem, 25 items a request, with the replicator started from
  TRIM_HORIZON only after the backfill — allowed only when the backfill is estimated to finish
  well inside the stream's 24-hour retention (`check_replay_allowed`), else BadInputError.

When the deadline arrives in the middle of a page, the worker stops submitting, lets the
requests in flight finish and commits the key of the last item of the longest fully written
prefix of the page as the cursor (a Scan's ExclusiveStartKey is the key of the last item
evaluated), so a slow, rate-limited page never runs past the budget. A worker killed mid-page
resumes from the last committed cursor; rewriting part of a page is harmless because of the
conditions (the rewritten items are counted as ``skipped_newer``).

Stragglers (issue 13 item 2). Step Functions retries "Copy segment" while the first invocation
may still run. Each invocation therefore (1) holds a lease in the state store for its budget,
which `tombstones.finish_backfill` waits out before removing tombstones; (2) re-reads the phase
before writing each page and stops without writing once it is past BACKFILL; (3) claims a new
generation of its segment, and its checkpoints are conditional on no newer generation and on
the segment not being done (`StateStore.save_segment`): an older invocation's checkpoint fails,
is counted as ``fenced`` and ends that invocation — it is not an error.

A source item holding an attribute dynashift reserves (`items.RESERVED_ATTRS`) is refused with
BadInputError naming its key: it would be taken for a tombstone or a marker (issue 13 item 7).

Throttling: the worker's target client has botocore's own retries turned off, so every throttle
reaches the engine: it is counted, retried with exponential backoff and full jitter, and reported
to the shared `RateLimiter`, which backs off multiplicatively.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from botocore.exceptions import ClientError
from pydantic import BaseModel, Field

from dynashift.aws import error_code
from dynashift.clock import SYSTEM_CLOCK, Clock
from dynashift.conditions import backfill_put
from dynashift.errors import BadInputError, RuntimeFailure, TransientError
from dynashift.items import (
    RESERVED_ATTRS,
    Item,
    from_event_json,
    is_tombstone,
    key_names,
    key_of,
    to_event_json,
)
from dynashift.models import PROCESS_CLIENTS, Clients, MigrationSpec
from dynashift.plan import (
    replay_refusal,  # the one replay rule (plan.py)
)
from dynashift.progress import NullProgress, Progress
from dynashift.ratelimit import RateLimiter, provisioned_wcu
from dynashift.retry import Backoff, call_with_retry, is_throttle, is_transient
from dynashift.state import (
    PHASE_BACKFILL,
    CheckpointFencedError,
    SegmentState,
    StateStore,
    WriteMode,
)
from dynashift.tables import BATCH_WRITE_MAX, BatchStats, batch_write, describe_table, scan_pages

#: Every counter a segment reports (all present, zero when nothing happened).
COUNTERS = (
    "scanned",
    "written",
    "skipped_newer",
    "tombstones_honoured",
    "throttles",
    "retries",
    "unprocessed",
    "pages",
    "invocations",
    "fenced",
)

#: A backfill invocation's lease outlasts its budget by this much (requests in flight).
LEASE_GRACE_SECONDS = 10.0

#: Default bound on conditional PutItem requests in flight per worker.
DEFAULT_IN_FLIGHT = 16


class SegmentResult(BaseModel):
    """What one invocation of a segment worker hands back (JSON: it travels in the ASL state).

    `cursor` is event-JSON wire format (binary values base64) and None once `done`. `counters`
    are cumulative for the segment over all its invocations (the state store keeps them).
    """

    segment: int
    total_segments: int
    cursor: dict[str, Any] | None = None
    done: bool = False
    counters: dict[str, int] = Field(default_factory=dict)


class Counters:
    """Thread-safe named counters (the pool's workers all add to one instance)."""

    def __init__(self, initial: Mapping[str, int] | None = None) -> None:
        self._values = dict.fromkeys(COUNTERS, 0)
        self._values.update(initial or {})
        self._lock = threading.Lock()

    def add(self, name: str, n: int = 1) -> None:
        with self._lock:
            self._values[name] = self._values.get(name, 0) + n

    def snapshot(self) -> dict[str, int]:
        with self._lock:
            return dict(self._values)

    def __getitem__(self, name: str) -> int:
        with self._lock:
            return self._values.get(name, 0)


# --- planning --------------------------------------------------------------------------------


def check_replay_allowed(
    spec: MigrationSpec,
    source_description: Mapping[str, Any],
    target_description: Mapping[str, Any] | None = None,
) -> None:
    """BadInputError (exit 2) when `spec` asks for replay and the table is too big for it."""
    if spec.strategy != "replay":
        return
    reason = replay_refusal(
        int(source_description.get("ItemCount", 0) or 0),
        int(source_description.get("TableSizeBytes", 0) or 0),
        max_write_rate=spec.max_write_rate,
        target_wcu=provisioned_wcu(target_description),
    )
    if reason:
        raise BadInputError(reason)


# --- write paths -----------------------------------------------------------------------------


class _ObservedBackoff(Backoff):
    """A Backoff that counts its waits and tells the limiter (batch writes retry through it)."""

    def __init__(self, counters: Counters, limiter: RateLimiter | None, base: Backoff) -> None:
        super().__init__(
            base=base.base,
            cap=base.cap,
            max_attempts=base.max_attempts,
            clock=base.clock,
            rng=base.rng,
        )
        self.counters = counters
        self.limiter = limiter

    def wait(self, attempt: int) -> float:
        self.counters.add("retries")
        self.counters.add("throttles")
        if self.limiter is not None:
            self.limiter.on_throttle()
        return super().wait(attempt)


def write_batches(
    client: Any,
    table: str,
    items: Sequence[Item],
    counters: Counters,
    *,
    limiter: RateLimiter | None = None,
    backoff: Backoff | None = None,
    stop_at: float = math.inf,
    clock: Clock = SYSTEM_CLOCK,
) -> int:
    """Unconditional BatchWriteItem of `items`, 25 per request, UnprocessedItems retried.

    Each backoff wait (a throttling error or UnprocessedItems) counts as a retry and a throttle
    and is reported to the limiter. No request is started after `stop_at`: returns the number
    of items written (a prefix of `items`).
    """
    observed = _ObservedBackoff(counters, limiter, backoff or Backoff())
    for start in range(0, len(items), BATCH_WRITE_MAX):
        chunk = items[start : start + BATCH_WRITE_MAX]
        if limiter is not None:
            limiter.acquire(len(chunk))
        if clock.monotonic() >= stop_at:
            return start
        stats = BatchStats()
        try:
            batch_write(
                client,
                table,
                [{"PutRequest": {"Item": item}} for item in chunk],
                backoff=observed,
                stats=stats,
            )
        except ClientError as exc:
            raise _wrap(exc, f"BatchWriteItem into {table}") from exc
        counters.add("written", len(chunk))
        counters.add("unprocessed", stats.unprocessed)
    return len(items)


def _wrap(exc: BaseException, what: str) -> RuntimeFailure:
    code = error_code(exc) or type(exc).__name__
    if is_transient(exc):
        return TransientError(f"{what}: {code} after retries")
    return RuntimeFailure(f"{what}: {code}")


class ConditionalWriter:
    """Conditional PutItem (I4/I5) of many items through a bounded pool of in-flight requests."""

    NOT_DONE = "not_done"

    def __init__(
        self,
        client: Any,
        table: str,
        key_attributes: Sequence[str],
        counters: Counters,
        *,
        version_attribute: str | None = None,
        limiter: RateLimiter | None = None,
        backoff: Backoff | None = None,
        max_in_flight: int = DEFAULT_IN_FLIGHT,
        clock: Clock = SYSTEM_CLOCK,
        overwrite_older: bool = True,
    ) -> None:
        self.client = client
        self.table = table
        self.keys = tuple(key_attributes)
        self.counters = counters
        self.version_attribute = version_attribute
        self.overwrite_older = overwrite_older
        self.limiter = limiter
        self.backoff = backoff or Backoff()
        self.clock = clock
        self.pool = ThreadPoolExecutor(max_workers=max_in_flight, thread_name_prefix="backfill")

    def close(self) -> None:
        self.pool.shutdown(wait=True, cancel_futures=True)

    def __enter__(self) -> ConditionalWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def put(self, item: Item, stop_at: float = math.inf) -> str:
        """Write one item; returns the counter it landed in, or NOT_DONE past `stop_at`."""
        condition = backfill_put(
            self.keys[0], item, self.version_attribute, overwrite_older=self.overwrite_older
        )
        attempt = 0
        while True:
            if self.limiter is not None:
                self.limiter.acquire(1)
            if self.clock.monotonic() >= stop_at:
                return self.NOT_DONE
            try:
                self.client.put_item(
                    TableName=self.table,
                    Item=item,
                    ReturnValuesOnConditionCheckFailure="ALL_OLD",
                    **condition.kwargs(),
                )
                outcome = "written"
                break
            except Exception as exc:
                if error_code(exc) == "ConditionalCheckFailedException":
                    held = getattr(exc, "response", {}).get("Item")
                    outcome = "tombstones_honoured" if is_tombstone(held) else "skipped_newer"
                    break
                if not is_transient(exc):
                    key = key_of(item, self.keys)
                    raise RuntimeFailure(
                        f"PutItem into {self.table} failed for key {to_event_json(key)}: "
                        f"{error_code(exc) or type(exc).__name__}"
                    ) from exc
                if attempt + 1 >= self.backoff.max_attempts:
                    raise _wrap(exc, f"PutItem into {self.table}") from exc
                if is_throttle(exc):
                    self.counters.add("throttles")
                    if self.limiter is not None:
                        self.limiter.on_throttle()
                self.counters.add("retries")
                self.backoff.wait(attempt)
                attempt += 1
        self.counters.add(outcome)
        return outcome

    def put_all(self, items: Sequence[Item], stop_at: float = math.inf) -> int:
        """Write `items` concurrently; returns the length of the fully written prefix.

        Items are not started after `stop_at`; the ones in flight finish. Every item of the
        returned prefix has been written (or had its condition fail, which is also final).
        """
        abort = threading.Event()

        def guarded(item: Item) -> str:
            if abort.is_set():
                return self.NOT_DONE
            try:
                return self.put(item, stop_at)
            except BaseException:
                abort.set()  # the worker is failing: start nothing more
                raise

        futures: list[Future[str]] = [self.pool.submit(guarded, item) for item in items]
        prefix, error = len(items), None
        for index, future in enumerate(futures):
            try:
                outcome = future.result()
            except BaseException as exc:  # re-raised below, after the others settle
                error = error or exc
                outcome = self.NOT_DONE
            if outcome == self.NOT_DONE:
                prefix = min(prefix, index)
        if error is not None:
            raise error
        return prefix


# --- the segment worker ----------------------------------------------------------------------


def start_backfill(
    state: StateStore, target_client: Any = None, target_table: str | None = None
) -> WriteMode:
    """Put the migration into phase BACKFILL (deletes become tombstones). Idempotent.

    Must happen before the first scan page is read and before the replicator's first write.
    The first call also records the write mode (`conditions` module docstring): whether the
    target may hold items from before the migration. It cannot when this migration created it
    (`target_created` in the meta, recorded by Prepare target); otherwise a Scan of one item
    decides when `target_client` and `target_table` are given, and without them it is assumed
    (marks cost a little, and are never wrong). `run_segment` does it when no phase is set.
    Returns the recorded mode.
    """
    if state.phase() is None:
        if (state.get_meta() or {}).get("target_created"):
            nonempty = False
        elif target_client is not None and target_table is not None:
            page = call_with_retry(
                lambda: target_client.scan(TableName=target_table, Limit=1), Backoff()
            )
            nonempty = bool(page.get("Items")) or "LastEvaluatedKey" in page
        else:
            nonempty = True
        state.init_phase(PHASE_BACKFILL, overwrite_older=nonempty)
    return state.write_mode()


def refuse_reserved(items: Sequence[Item], keys: Sequence[str]) -> None:
    """BadInputError naming the key of the first item holding an attribute dynashift reserves
    for its markers: the one rule for the scan backfill and the export load."""
    for item in items:
        if not RESERVED_ATTRS.isdisjoint(item):
            name = sorted(RESERVED_ATTRS.intersection(item))[0]
            raise BadInputError(
                f"source item {to_event_json(key_of(item, keys))}: attribute {name!r} is a "
                "name dynashift reserves for its own markers; rename it in the source"
            )


def run_segment(
    spec: MigrationSpec,
    segment: int,
    *,
    state: StateStore,
    budget_seconds: float,
    cursor: dict[str, Any] | None = None,
    limiter: RateLimiter | None = None,
    clock: Clock = SYSTEM_CLOCK,
    progress: Progress | None = None,
    source_client: Any = None,
    target_client: Any = None,
    backoff: Backoff | None = None,
    max_in_flight: int = DEFAULT_IN_FLIGHT,
    page_size: int | None = None,
    reserve_seconds: float | None = None,
    clients: Clients = PROCESS_CLIENTS,
) -> SegmentResult:
    """Backfill one segment until it is done or the budget is nearly spent.

    Resumes from `cursor` (event JSON, as a previous SegmentResult returned it) or, when None,
    from the state store's committed cursor. Commits cursor and counters after each page.
    `reserve_seconds` (default: 10 % of the budget, at most 5 s) is kept free for the requests
    in flight and the final commit. Clients default to `clients`' for each side; the target client
    leaves retries to the engine so the limiter sees every throttle. `clock`: its monotonic
    time measures the budget, its wall time (epoch seconds) the invocation's lease; see the
    module docstring for the fencing.
    """
    started = clock.monotonic()
    if not 0 <= segment < spec.segments:
        raise BadInputError(f"segment {segment} is outside 0..{spec.segments - 1}")
    if budget_seconds <= 0:
        raise BadInputError(f"budget_seconds must be positive, got {budget_seconds}")
    stop_at = worker_stop_at(started, budget_seconds, reserve_seconds)
    progress = progress or NullProgress()

    saved = state.segment(segment)
    counters = Counters(saved.counters)
    total = spec.segments
    if saved.done:
        return SegmentResult(
            segment=segment, total_segments=total, done=True, counters=counters.snapshot()
        )
    start_key: Item | None = from_event_json(cursor) if cursor else saved.cursor

    # One client per side and process, shared by every segment running here: its connection
    # pool covers all their in-flight requests (a full pool would reconnect for each request).
    pool = max_in_flight * min(total, 16)
    if source_client is None:
        source_client = clients(spec.source, pool).dynamodb()
    if target_client is None:
        no_retry_side = spec.target.side.model_copy(update={"max_attempts": 1})
        target_client = clients.for_side(no_retry_side, pool).dynamodb()
    backoff = backoff or Backoff()

    source_desc = describe_table(source_client, spec.source.name, "source")
    # The target client leaves retries to the engine (every throttle is counted): retry here.
    target_desc = call_with_retry(
        lambda: describe_table(target_client, spec.target.name, "target"), backoff
    )
    if limiter is None:
        limiter = RateLimiter.for_target(spec.max_write_rate, target_desc)
    # The lease comes before the phase check: if `finish_backfill` saw no lease, this
    # invocation's phase read comes after its flip and sees FINISHING or PLAIN.
    lease_id = state.take_lease(segment, clock.wall() + budget_seconds + LEASE_GRACE_SECONDS)
    try:
        return _run_leased(
            spec,
            segment,
            state=state,
            saved=saved,
            counters=counters,
            start_key=start_key,
            source_client=source_client,
            target_client=target_client,
            source_desc=source_desc,
            target_desc=target_desc,
            limiter=limiter,
            backoff=backoff,
            max_in_flight=max_in_flight,
            page_size=page_size,
            clock=clock,
            stop_at=stop_at,
            progress=progress,
        )
    finally:
        state.release_lease(segment, lease_id)


def worker_stop_at(started: float, budget_seconds: float, reserve: float | None = None) -> float:
    """When a backfill worker (a scan segment, an export file loader) stops taking work: its
    budget minus `reserve` (default: 10 % of the budget, at most 5 s, kept free for the requests
    in flight and the final commit), and never before half the budget."""
    if reserve is None:
        reserve = min(5.0, budget_seconds * 0.1)
    return started + max(budget_seconds - reserve, budget_seconds * 0.5)


def backfill_writer(
    spec: MigrationSpec,
    target_client: Any,
    keys: Sequence[str],
    counters: Counters,
    *,
    limiter: RateLimiter | None,
    overwrite_older: bool,
    backoff: Backoff | None = None,
    max_in_flight: int = DEFAULT_IN_FLIGHT,
    clock: Clock = SYSTEM_CLOCK,
) -> ConditionalWriter:
    """The backfill's conditional writer into `spec.target` (I4/I5, `spec.version_attribute`):
    one for the scan segments and the export's file loaders."""
    return ConditionalWriter(
        target_client,
        spec.target.name,
        keys,
        counters,
        version_attribute=spec.version_attribute,
        limiter=limiter,
        backoff=backoff,
        max_in_flight=max_in_flight,
        clock=clock,
        overwrite_older=overwrite_older,
    )


def ensure_backfilling(spec: MigrationSpec, state: StateStore) -> None:
    """RuntimeFailure once the phase is past BACKFILL: a straggling backfill worker (scan
    segment or export loader) stops without writing (a late write could resurrect an item)."""
    phase = state.phase()
    if phase is not None and phase != PHASE_BACKFILL:
        raise RuntimeFailure(
            f"migration {spec.migration_id}: backfill already finished (phase {phase}); "
            "a late backfill write could resurrect a deleted item"
        )


def _run_leased(
    spec: MigrationSpec,
    segment: int,
    *,
    state: StateStore,
    saved: SegmentState,
    counters: Counters,
    start_key: Item | None,
    source_client: Any,
    target_client: Any,
    source_desc: Mapping[str, Any],
    target_desc: Mapping[str, Any],
    limiter: RateLimiter,
    backoff: Backoff,
    max_in_flight: int,
    page_size: int | None,
    clock: Clock,
    stop_at: float,
    progress: Progress,
) -> SegmentResult:
    total = spec.segments
    keys = key_names(source_desc["KeySchema"])
    overwrite_older = False
    if spec.strategy == "replay":
        if saved.cursor is None and start_key is None:
            check_replay_allowed(spec, source_desc, target_desc)
    else:
        ensure_backfilling(spec, state)
        overwrite_older = start_backfill(state, target_client, spec.target.name).overwrite_older
    try:
        generation = state.claim_segment(segment)
    except CheckpointFencedError:
        return SegmentResult(
            segment=segment,
            total_segments=total,
            done=True,
            counters=state.segment(segment).counters,
        )

    counters.add("invocations")
    done = False
    writer = (
        backfill_writer(
            spec,
            target_client,
            keys,
            counters,
            limiter=limiter,
            backoff=backoff,
            max_in_flight=max_in_flight,
            clock=clock,
            overwrite_older=overwrite_older,
        )
        if spec.strategy == "concurrent"
        else None
    )
    try:
        pages: Iterator[Any] = scan_pages(
            source_client,
            spec.source.name,
            segment=segment,
            total_segments=total,
            start_key=start_key,
            limit=page_size,
            backoff=backoff,
        )
        slowest_page = 0.0
        for page in pages:
            page_started = clock.monotonic()
            refuse_reserved(page.items, keys)
            if writer is not None:
                ensure_backfilling(spec, state)  # a straggler stops before writing (fencing)
            counters.add("scanned", len(page.items))
            if writer is not None:
                written = writer.put_all(page.items, stop_at)
            else:
                written = write_batches(
                    target_client,
                    spec.target.name,
                    page.items,
                    counters,
                    limiter=limiter,
                    backoff=backoff,
                    stop_at=stop_at,
                    clock=clock,
                )
            progress.advance(written)
            if written < len(page.items):
                # Deadline inside the page: resume after the fully written prefix.
                if written:
                    start_key = key_of(page.items[written - 1], keys)
                counters.add("scanned", written - len(page.items))
                _commit(state, segment, start_key, False, counters, generation=generation)
                break
            counters.add("pages")
            start_key = page.cursor
            done = page.cursor is None
            if not _commit(state, segment, start_key, done, counters, generation=generation):
                # Fenced: a newer invocation owns the segment. Report what the store says, so
                # a caller that still loops on this result sees `done` when it is.
                fenced = state.segment(segment)
                done, start_key = fenced.done, fenced.cursor
                break
            now = clock.monotonic()
            slowest_page = max(slowest_page, now - page_started)
            if done or now + slowest_page > stop_at:
                break
    finally:
        if writer is not None:
            writer.close()
    return SegmentResult(
        segment=segment,
        total_segments=total,
        cursor=to_event_json(start_key) if start_key and not done else None,
        done=done,
        counters=counters.snapshot(),
    )


def _commit(
    state: StateStore,
    segment: int,
    cursor: Item | None,
    done: bool,
    counters: Counters,
    *,
    generation: int = 0,
) -> bool:
    """Save the checkpoint; False (counted as ``fenced``) when a newer invocation owns it."""
    try:
        state.save_segment(
            SegmentState(
                segment=segment,
                cursor=None if done else cursor,
                done=done,
                counters=counters.snapshot(),
                generation=generation,
            )
        )
        return True
    except CheckpointFencedError:
        counters.add("fenced")
        return False


def backfill_all(
    spec: MigrationSpec,
    *,
    state: StateStore,
    budget_seconds: float | None = None,
    limiter: RateLimiter | None = None,
    concurrency: int | None = None,
    progress: Progress | None = None,
    max_invocations: int = 10_000,
    **worker_kwargs: Any,
) -> list[SegmentResult]:
    """Run every segment to completion with threads (the local equivalent of the Map state).

    Each segment loops over `run_segment` invocations of `budget_seconds` (default: the spec's
    worker budget) until done. `worker_kwargs` go to `run_segment` (clients, page_size, ...).
    """
    budget = budget_seconds or spec.worker_budget_seconds
    limiter = limiter if limiter is not None else RateLimiter(spec.max_write_rate)

    def one(segment: int) -> SegmentResult:
        cursor: dict[str, Any] | None = None
        for _ in range(max_invocations):
            result = run_segment(
                spec,
                segment,
                state=state,
                budget_seconds=budget,
                cursor=cursor,
                limiter=limiter,
                progress=progress,
                **worker_kwargs,
            )
            if result.done:
                return result
            cursor = result.cursor
        raise RuntimeFailure(f"segment {segment} not done after {max_invocations} invocations")

    workers = concurrency or min(spec.segments, 8)
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="segment") as pool:
        return list(pool.map(one, range(spec.segments)))


def total_counters(results: Sequence[SegmentResult]) -> dict[str, int]:
    """Sum of the counters of several segments."""
    total = dict.fromkeys(COUNTERS, 0)
    for result in results:
        for name, value in result.counters.items():
            total[name] = total.get(name, 0) + value
    return total
