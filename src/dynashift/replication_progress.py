"""Replication progress: what the replicator records, and lag / caught-up / drain read from it.

Size: one module because recording and checking share the record layout and the range rules
(a range chains only from its exact start), which must stay in one place.

The same code runs in AWS (the replicator Lambda behind an event source mapping) and locally
(the follower or the mapping emulator feeding the same engine); see docs/replicator.md.

Recording (`record_batch`, called by `Replicator.apply`): per applied batch, the applied prefix
only (a batch that stops at a failed record records the records before it): stream, first and
last sequence number, the newest record's ApproximateCreationDateTime, when it was applied. A
batch is a contiguous run of one shard's records, in order, so a range is "every record of that
shard from `first` to `last`". The first failed record of a batch is recorded too
(`failed_records`).

Checking (`ProgressChecker.check`): the shard map is rediscovered at every check and the
shards are walked parents before children. Each shard is walked from the checker's own saved
position: the next record of the shard is applied iff a recorded range STARTS at exactly its
sequence number; the walk then jumps to that range's end, and goes on until the first record
no range starts at (behind: its age is read from the stream's ApproximateCreationDateTime), the
shard's end (closed and fully applied) or its tip (`EMPTY_PAGES_AT_TIP` consecutive empty
GetRecords pages: DynamoDB may return an empty page before later records, so one empty page is
not the tip). Ranges of open sibling shards overlap in sequence numbers, but a range can only
be chained from a record the checker has read in that same shard, so chaining exact starts is
unambiguous.

Read budget per check (`ReadBudget`): one DescribeStream pass (one page per 100 shards, a
second pass only when a shard closed during the check), at most `get_records_per_shard`
(default EMPTY_PAGES_AT_TIP + 1 = 4: one page of records and the empty pages that prove the
tip, so a stream that went quiet is settled by ONE check instead of a second one
`min_interval` later) GetRecords calls per shard, and no check of a shard sooner than
`min_interval` seconds (default 5) after the previous one — a check inside that interval
answers from the saved walk (whose tip settles only what was written before that walk
began). A shard's read limit is 5 GetRecords/s shared by every reader; the checker takes at
most 4 per 5 s (0.8/s) and leaves the rest (4.2/s) to the event source mapping, which polls a
shard about 4 times a second.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime
from email.utils import parsedate_to_datetime
from typing import Any

from botocore.exceptions import ClientError

from dynashift.aws import error_code
from dynashift.clock import SYSTEM_CLOCK, Clock
from dynashift.errors import WorkerDeadlineError
from dynashift.items import Item, from_event_json, key_id, to_event_json
from dynashift.retry import is_throttle
from dynashift.state import ProgressFailure, ProgressRange

log = logging.getLogger("dynashift.progress")

#: Consecutive empty GetRecords pages after which an open shard counts as read to its tip.
EMPTY_PAGES_AT_TIP = 3
#: Iterators expire after 15 minutes; a saved one older than this is not reused.
ITERATOR_MAX_AGE = 600.0
#: An HTTP Date has whole seconds.
DATE_PRECISION = 1.0
#: Records per GetRecords page (the API maximum).
PAGE_LIMIT = 1000


# --- recording -----------------------------------------------------------------------------


def _seq(record: Mapping[str, Any]) -> str | None:
    value = (record.get("dynamodb") or {}).get("SequenceNumber")
    return str(value) if value is not None else None


def approximate_creation(value: Any) -> float | None:
    """ApproximateCreationDateTime as epoch seconds (Lambda: a number; botocore: a datetime)."""
    if value is None:
        return None
    if isinstance(value, datetime):
        return value.timestamp()
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _created(record: Mapping[str, Any]) -> float | None:
    return approximate_creation((record.get("dynamodb") or {}).get("ApproximateCreationDateTime"))


def record_batch(
    state: Any,
    records: Sequence[Mapping[str, Any]],
    applied: int,
    failed_index: int | None,
    error: str | None,
    *,
    clock: Clock = SYSTEM_CLOCK,
) -> None:
    """Record the applied prefix `records[:applied]` and the first failed record (if any).

    `records` are Lambda-shaped stream records of one shard in order (`eventSourceARN` names
    the stream). Records without a sequence number or stream (hand-made batches) are not
    recorded.
    """
    if not records:
        return
    arn = records[0].get("eventSourceARN")
    if not arn:
        return
    stream = str(arn)
    if applied > 0:
        first, last = _seq(records[0]), _seq(records[applied - 1])
        if first is not None and last is not None:
            times = [t for t in (_created(r) for r in records[:applied]) if t is not None]
            state.save_progress(
                ProgressRange(
                    stream=stream,
                    first=first,
                    last=last,
                    count=applied,
                    newest_created=max(times) if times else None,
                    applied_at=clock.wall(),
                )
            )
    if failed_index is not None and failed_index < len(records):
        seq = _seq(records[failed_index])
        if seq is not None:
            state.save_progress_failure(
                ProgressFailure(
                    stream=stream,
                    sequence=seq,
                    error=(error or "")[:500],
                    reported_failed=len(records) - failed_index,
                    at=clock.wall(),
                )
            )


def failed_records(state: Any, stream_arn: str) -> int:
    """Records the replicator reported failed and never applied afterwards: a retried record
    is applied as the first record of a later range (Lambda retries from the failed record)."""
    return sum(
        1
        for f in state.progress_failures(stream_arn)
        if not state.has_progress_from(stream_arn, f.sequence)
    )


# --- reading the stream ----------------------------------------------------------------------


@dataclass(frozen=True)
class ReadBudget:
    """The most a check reads from the stream (see the module docstring)."""

    #: One page of records plus the empty pages that prove the tip (see the module docstring).
    get_records_per_shard: int = EMPTY_PAGES_AT_TIP + 1
    #: DescribeStream pages per discovery pass (100 shards a page).
    describe_pages: int = 20
    #: Seconds between two checks of the same shard; a check inside it answers from the saved walk.
    min_interval: float = 5.0


def stream_clock(response: Mapping[str, Any]) -> float | None:
    """The stream service's own clock: the HTTP Date header of a response (None: no header)."""
    headers = (response.get("ResponseMetadata") or {}).get("HTTPHeaders") or {}
    date = headers.get("date")
    if not date:
        return None
    try:
        return parsedate_to_datetime(date).timestamp()
    except (TypeError, ValueError):
        return None


def describe_shards(
    streams: Any, stream_arn: str, max_pages: int = 20
) -> tuple[list[dict[str, Any]], float | None, int]:
    """(every shard, the stream's clock, pages read) of one DescribeStream pass."""
    kwargs: dict[str, Any] = {"StreamArn": stream_arn}
    shards: list[dict[str, Any]] = []
    clock: float | None = None
    pages = 0
    while pages < max_pages:
        resp = streams.describe_stream(**kwargs)
        pages += 1
        clock = clock or stream_clock(resp)
        desc = resp["StreamDescription"]
        shards.extend(desc.get("Shards", []))
        last = desc.get("LastEvaluatedShardId")
        if not last:
            return shards, clock, pages
        kwargs["ExclusiveStartShardId"] = last
    raise WorkerDeadlineError(
        f"stream {stream_arn}: more than {max_pages} DescribeStream pages; raise the budget"
    )


def lineage_order(shards: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Shards parents before children (a parent not listed — trimmed — is ignored)."""
    by_id = {s["ShardId"]: dict(s) for s in shards}
    out: list[dict[str, Any]] = []
    seen: set[str] = set()

    def visit(sid: str, depth: int = 0) -> None:
        if sid in seen or depth > len(by_id):
            return
        parent = by_id[sid].get("ParentShardId")
        if isinstance(parent, str) and parent in by_id:
            visit(parent, depth + 1)
        seen.add(sid)
        out.append(by_id[sid])

    for sid in sorted(by_id):
        visit(sid)
    return out


def _iterator(streams: Any, stream_arn: str, shard_id: str, after: str | None) -> str | None:
    kwargs: dict[str, Any] = {"StreamArn": stream_arn, "ShardId": shard_id}
    if after:
        kwargs.update(ShardIteratorType="AFTER_SEQUENCE_NUMBER", SequenceNumber=after)
    else:
        kwargs["ShardIteratorType"] = "TRIM_HORIZON"
    it = streams.get_shard_iterator(**kwargs).get("ShardIterator")
    return str(it) if it else None


# --- the walk ----------------------------------------------------------------------------------


@dataclass
class ShardWalk:
    """The checker's saved position in one shard and what its last check found."""

    shard_id: str
    parent_id: str | None = None
    stream: str = ""
    #: The last record of the shard the walk knows applied (None: nothing yet).
    position: str | None = None
    #: ApproximateCreationDateTime of the newest applied record walked.
    newest_applied: float | None = None
    #: Closed and walked to its end: every record of the shard is applied.
    done: bool = False
    #: NextShardIterator after empty pages (to page on past them), and when it was read.
    iterator: str | None = None
    iterator_at: float = 0.0
    #: Consecutive empty pages read at the position (EMPTY_PAGES_AT_TIP: the tip).
    empty_pages: int = 0
    #: The first record no applied range covers, its creation time, and unapplied records seen.
    behind_seq: str | None = None
    behind_created: float | None = None
    behind_count: int = 0
    #: The stream's records after `position` are trimmed: they can never be applied.
    trimmed: bool = False
    checked_at: float = 0.0

    @property
    def at_tip(self) -> bool:
        return self.empty_pages >= EMPTY_PAGES_AT_TIP

    def settled_for(self, since: float, *, fresh: bool = True) -> bool:
        """Every record of this shard created at or before `since` (epoch s) is applied.

        `fresh`: the walk read the shard in the check being asked. A saved walk reused inside
        `min_interval` proves its tip only as of its own check (`checked_at`).

        Creation times are the stream's (rounded down to the second in AWS), so "created after"
        is a strict comparison: a record stamped after `since` was really created after it.
        """
        if self.done:
            return True
        if self.trimmed:
            return False
        if self.behind_seq is not None:
            return self.behind_created is not None and self.behind_created > since
        if self.newest_applied is not None and self.newest_applied > since:
            return True
        # The tip proves only what the walk could see: a saved walk that began before `since`
        # says nothing of a record written after it began and before `since`.
        return self.at_tip and (fresh or self.checked_at >= since)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ShardWalk:
        names = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in data.items() if k in names})


@dataclass
class ProgressReport:
    """One check of a stream: every listed shard's walk, parents before children."""

    stream_arn: str
    shards: list[ShardWalk] = field(default_factory=list)
    #: The stream's clock at the check (HTTP Date of DescribeStream + its precision: the check
    #: began before it), else the local clock.
    stream_now: float = 0.0
    describe_pages: int = 0
    get_records: dict[str, int] = field(default_factory=dict)

    def _blocked(self) -> set[str]:
        """Shards whose parent is listed and not done (the parent's walk speaks for them)."""
        by_id = {w.shard_id: w for w in self.shards}
        return {
            w.shard_id
            for w in self.shards
            if w.parent_id in by_id and not by_id[w.parent_id].done  # type: ignore[index]
        }

    def behind(self, since: float) -> list[ShardWalk]:
        """Walkable shards that still hold a record created at or before `since` unapplied."""
        blocked = self._blocked()
        return [
            w
            for w in self.shards
            if w.shard_id not in blocked
            and not w.settled_for(since, fresh=w.shard_id in self.get_records)
        ]

    def caught_up(self, since: float) -> bool:
        return not self.behind(since)

    @property
    def records_behind(self) -> int:
        """Unapplied records the walks have seen (a lower bound)."""
        return sum(w.behind_count for w in self.shards if not w.done)

    def age_seconds(self, now: float) -> float | None:
        """How long the oldest unapplied record seen has waited; 0 when every shard's walk
        reached an empty page or its end with nothing unapplied; None when a walk ran out of
        budget among applied records (the oldest unapplied record was not seen yet)."""
        blocked = self._blocked()
        ages = [0.0]
        for w in self.shards:
            if w.done or w.shard_id in blocked:
                continue
            if w.trimmed:
                return None
            if w.behind_seq is not None:
                if w.behind_created is None:
                    return None
                ages.append(max(0.0, now - w.behind_created))
            elif w.empty_pages == 0:
                return None
        return max(ages)

    def newest_applied(self) -> float | None:
        times = [w.newest_applied for w in self.shards if w.newest_applied is not None]
        return max(times) if times else None

    def describe_behind(self, since: float) -> str:
        parts = []
        for w in self.behind(since):
            if w.trimmed:
                parts.append(f"shard {w.shard_id}: records after {w.position} were trimmed")
            elif w.behind_seq is not None:
                parts.append(
                    f"shard {w.shard_id}: record {w.behind_seq} (created "
                    f"{_fmt_time(w.behind_created)}) not applied"
                )
            else:
                parts.append(
                    f"shard {w.shard_id}: applied up to {w.position or 'nothing'}, "
                    "tip not reached yet"
                )
        return "; ".join(parts) or "caught up"


def _fmt_time(value: float | None) -> str:
    if value is None:
        return "?"
    return datetime.fromtimestamp(value).isoformat(timespec="seconds")


class ProgressChecker:
    """Walks a stream against the recorded applied ranges (see the module docstring).

    `state` is the migration's StateStore; `persist=False` reads the saved walks without
    moving them (for `dynashift status`, which must not race the workflow's own checks).
    """

    def __init__(
        self,
        streams: Any,
        state: Any,
        stream_arn: str,
        *,
        budget: ReadBudget | None = None,
        clock: Clock = SYSTEM_CLOCK,
        persist: bool = True,
    ) -> None:
        self.streams = streams
        self.state = state
        self.stream_arn = stream_arn
        self.budget = budget or ReadBudget()
        self.clock = clock
        self.persist = persist

    def _ranges(self, first_from: str, first_to: str) -> dict[str, ProgressRange]:
        """Applied ranges starting within one page's sequence numbers (one Query)."""
        return {
            r.first: r for r in self.state.progress_ranges(self.stream_arn, first_from, first_to)
        }

    def _saved(self) -> dict[str, ShardWalk]:
        return saved_walks(self.state, self.stream_arn)

    def check(self) -> ProgressReport:
        """Rediscover the shards, walk each from its saved position (within the budget)."""
        report = ProgressReport(self.stream_arn)
        shards, stream_now, pages = describe_shards(
            self.streams, self.stream_arn, self.budget.describe_pages
        )
        report.describe_pages = pages
        # The stream's "now" as an upper bound (a Date has whole seconds).
        report.stream_now = stream_now + DATE_PRECISION if stream_now else self.clock.wall()
        walks = self._saved()
        closed_during_check = False
        for attempt in range(2):
            for shard in lineage_order(shards):
                sid = shard["ShardId"]
                walk = walks.get(sid) or ShardWalk(
                    sid, parent_id=shard.get("ParentShardId"), stream=self.stream_arn
                )
                walks[sid] = walk
                parent = walks.get(walk.parent_id) if walk.parent_id else None
                parent_listed = any(s["ShardId"] == walk.parent_id for s in shards)
                if walk.done or (parent_listed and not (parent and parent.done)):
                    continue
                if self.clock.wall() - walk.checked_at < self.budget.min_interval:
                    continue  # checked recently: answer from the saved walk
                was_done = walk.done
                calls = self._walk(walk)
                report.get_records[sid] = report.get_records.get(sid, 0) + calls
                if walk.done and not was_done:
                    closed_during_check = True
                if self.persist:
                    self.state.save_walk(sid, walk.to_json())
            if not closed_during_check or attempt == 1:
                break
            # A shard ended during this check: its children may be new. Rediscover before
            # deciding anything, and walk them too.
            closed_during_check = False
            shards, _, more = describe_shards(
                self.streams, self.stream_arn, self.budget.describe_pages
            )
            report.describe_pages += more
        listed = {s["ShardId"] for s in shards}
        report.shards = [
            walks[s["ShardId"]] for s in lineage_order(shards) if s["ShardId"] in listed
        ]
        return report

    def _walk(self, walk: ShardWalk) -> int:
        """Walk one shard with at most `get_records_per_shard` GetRecords calls; the calls made."""
        walk.checked_at = self.clock.wall()
        walk.behind_seq, walk.behind_created, walk.behind_count = None, None, 0
        calls = 0
        while calls < self.budget.get_records_per_shard:
            iterator = (
                walk.iterator if self.clock.wall() - walk.iterator_at < ITERATOR_MAX_AGE else None
            )
            try:
                if iterator is None:
                    iterator = _iterator(
                        self.streams, self.stream_arn, walk.shard_id, walk.position
                    )
                if iterator is None:
                    walk.done = True
                    return calls
                calls += 1
                resp = self.streams.get_records(ShardIterator=iterator, Limit=PAGE_LIMIT)
            except ClientError as exc:
                code = error_code(exc)
                if code == "ExpiredIteratorException":
                    walk.iterator = None
                    continue
                if code == "TrimmedDataAccessException":
                    walk.trimmed = True
                    return calls
                if code == "ResourceNotFoundException":
                    return calls
                if is_throttle(exc):
                    return calls  # leave the shard's read budget to the event source mapping
                raise
            walk.trimmed = False
            records = resp.get("Records", [])
            next_iterator = resp.get("NextShardIterator")
            if not records:
                if next_iterator is None:
                    walk.done, walk.iterator = True, None
                    return calls
                walk.empty_pages += 1
                walk.iterator, walk.iterator_at = next_iterator, self.clock.wall()
                if walk.at_tip:
                    return calls
                continue
            walk.empty_pages = 0
            walk.iterator = None
            seqs = [q for q in (_seq(r) for r in records) if q is not None]
            ranges = self._ranges(seqs[0], seqs[-1]) if seqs else {}
            for index, record in enumerate(records):
                seq = _seq(record)
                if seq is None or (walk.position is not None and int(seq) <= int(walk.position)):
                    continue
                found = ranges.get(seq)
                if found is None:
                    walk.behind_seq, walk.behind_created = seq, _created(record)
                    walk.behind_count = len(records) - index
                    return calls
                walk.position = found.last
                if found.newest_created is not None:
                    walk.newest_applied = max(walk.newest_applied or 0.0, found.newest_created)
            page_last = _seq(records[-1])
            beyond = (
                walk.position is not None
                and page_last is not None
                and int(walk.position) > int(page_last)
            )
            if next_iterator is None and not beyond:
                walk.done = True
                return calls
            if not beyond:
                walk.iterator, walk.iterator_at = next_iterator, self.clock.wall()
        return calls


def drain_mark(streams: Any, stream_arn: str) -> float | None:
    """When a drain begins, by the stream's own clock: the Date of a DescribeStream response
    plus its one-second precision (the moment lies before it). None when the endpoint sends
    no Date."""
    resp = streams.describe_stream(StreamArn=stream_arn)
    date = stream_clock(resp)
    return None if date is None else date + DATE_PRECISION


# --- images in a window (recheck) -----------------------------------------------------------


def saved_walks(state: Any, stream_arn: str) -> dict[str, ShardWalk]:
    """The progress checker's saved positions in a stream's shards."""
    return {
        sid: ShardWalk.from_json(data)
        for sid, data in state.walks().items()
        if data.get("stream") == stream_arn
    }


def window_images(
    streams: Any,
    state: Any,
    stream_arn: str,
    *,
    start: float,
    end: float,
    keys: Sequence[Item],
    key_names: Sequence[str],
    positions: Mapping[str, ShardWalk] | None = None,
    max_pages_per_shard: int = 10,
) -> dict[str, list[Item | None]]:
    """Key id -> every image (None for a REMOVE) the stream carried for `keys` in records
    created from `start` (rounded down to the second) to `end` (epoch seconds).

    Each shard is read from the progress checker's positions (`positions`: `saved_walks` taken
    BEFORE `start`, so every record created after `start` lies after them; default: the saved
    walks now), parents before children, until a record created after `end` + 1 s, the shard's
    end or an empty page, and at most `max_pages_per_shard` pages.
    """
    wanted = {key_id(k) for k in keys}
    out: dict[str, list[Item | None]] = {}
    if not wanted:
        return out
    saved = positions if positions is not None else saved_walks(state, stream_arn)
    shards, _, _ = describe_shards(streams, stream_arn)
    floor = int(start)
    for shard in lineage_order(shards):
        sid = shard["ShardId"]
        walk = saved.get(sid)
        if walk is not None and walk.done:
            continue
        try:
            iterator = _iterator(streams, stream_arn, sid, walk.position if walk else None)
        except ClientError as exc:
            if error_code(exc) in ("TrimmedDataAccessException", "ResourceNotFoundException"):
                continue
            raise
        pages = 0
        while iterator and pages < max_pages_per_shard:
            try:
                resp = streams.get_records(ShardIterator=iterator, Limit=PAGE_LIMIT)
            except ClientError as exc:
                if is_throttle(exc) or error_code(exc) == "ExpiredIteratorException":
                    break
                raise
            pages += 1
            records = resp.get("Records", [])
            if not records:
                break
            past = False
            for record in records:
                created = _created(record)
                if created is not None and created > end + 1.0:
                    past = True
                    break
                if created is not None and created < floor:
                    continue
                body = record.get("dynamodb") or {}
                image = body.get("NewImage")
                source = image or body.get("OldImage") or body.get("Keys") or {}
                if any(n not in source for n in key_names):
                    continue
                wire_key = _wire({n: source[n] for n in key_names})
                kid = key_id(wire_key)
                if kid in wanted:
                    out.setdefault(kid, []).append(
                        None if record.get("eventName") == "REMOVE" else _wire(image or {})
                    )
            if past:
                break
            iterator = resp.get("NextShardIterator")
    return out


def _wire(image: Mapping[str, Any]) -> Item:
    """A botocore image (bytes) or a Lambda-shaped one (base64 text) as wire-format items."""
    return from_event_json(to_event_json(dict(image)))


# --- replay within retention -------------------------------------------------------------------


def retention_gap(streams: Any, stream_arn: str, first_read: float) -> str | None:
    """None when the stream provably still holds every change made since `first_read` (epoch
    seconds: when the first backfill scan page was read), else why not.

    For each shard the stream still lists whose parent it no longer lists (the oldest part of
    each lineage): proven when its oldest available record (TRIM_HORIZON) was created at or
    before `first_read`, or when it is the stream's very first shard (no parent) and nothing
    was trimmed from it (an iterator AT its starting sequence number is still granted; DynamoDB
    answers TrimmedDataAccessException otherwise). A shard whose parent was trimmed away and
    whose oldest record is newer than `first_read` may have lost changes: not proven.
    """
    shards, _, _ = describe_shards(streams, stream_arn)
    listed = {s["ShardId"] for s in shards}
    for shard in lineage_order(shards):
        sid = shard["ShardId"]
        parent = shard.get("ParentShardId")
        if parent in listed:
            continue
        oldest = _oldest_created(streams, stream_arn, sid)
        if oldest is not None and oldest <= first_read:
            continue
        start = (shard.get("SequenceNumberRange") or {}).get("StartingSequenceNumber")
        if parent is None and start:
            try:
                streams.get_shard_iterator(
                    StreamArn=stream_arn,
                    ShardId=sid,
                    ShardIteratorType="AT_SEQUENCE_NUMBER",
                    SequenceNumber=start,
                )
                continue
            except ClientError as exc:
                if error_code(exc) != "TrimmedDataAccessException":
                    raise
        since = datetime.fromtimestamp(first_read).isoformat(timespec="seconds")
        what = (
            f"its parent shard {parent} is gone"
            if parent is not None
            else "its oldest records were trimmed"
        )
        oldest_text = "none" if oldest is None else _fmt_time(oldest)
        return (
            f"the source stream no longer holds every change since the first backfill scan page "
            f"({since}): shard {sid}'s oldest record is from {oldest_text} and {what} (stream "
            "retention is 24 hours). Changes may be lost: start a new migration and let the "
            "backfill finish well within 24 hours (more segments, a higher write rate), or use "
            "the concurrent strategy"
        )
    return None


def _oldest_created(streams: Any, stream_arn: str, shard_id: str) -> float | None:
    """ApproximateCreationDateTime of a shard's oldest available record (past a few empty
    pages); None when it has none."""
    try:
        iterator = _iterator(streams, stream_arn, shard_id, None)
    except ClientError as exc:
        if error_code(exc) in ("TrimmedDataAccessException", "ResourceNotFoundException"):
            return None
        raise
    for _ in range(EMPTY_PAGES_AT_TIP):
        if not iterator:
            return None
        resp = streams.get_records(ShardIterator=iterator, Limit=1)
        records = resp.get("Records", [])
        if records:
            return _created(records[0])
        iterator = resp.get("NextShardIterator")
    return None
