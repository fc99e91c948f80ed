"""The sync diff engine: find, and optionally repair, differences between a master and slaves.

Library, not CLI code: `dynashift sync` and the migration's verification step both use it.

- `ItemDiffer` is the item-difference rule (numbers by value, sets unordered, `--ignore`
  attributes and legacy `aws:rep:*` bookkeeping excluded). Subclass it and override `differs`
  to change the rule (e.g. "a slave item with a newer version is not different").
- `diff_page` classifies one page of master items against the slave items fetched for their
  keys: missing / differing / same. A slave tombstone (`items.is_tombstone`) counts as absent.
- `lookup_keys` fetches keys with BatchGetItem (`UnprocessedKeys` retried with backoff).
- `repair_keys` makes every repair write: the master re-read consistently, each PutItem /
  DeleteItem conditional on the slave item being as it was read; a failed condition is
  counted as "skipped: changed since read", not an error. (`put_items` / `delete_keys`, plain
  BatchWriteItem, remain for callers that copy into a table nobody else writes.)
- `SyncEngine` runs the whole comparison: a parallel scan of the master, a BatchGetItem on each
  slave per page, optional repair, then (with `scan_for_extra` / `delete_extra`) a parallel scan
  of each slave checking the master for the keys it finds. It logs a resumable `--starting-key`
  as it goes and returns a `SyncReport`.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any, Literal

from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    EndpointConnectionError,
    NoCredentialsError,
)
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from dynashift.aws import error_code
from dynashift.conditions import unchanged_since_read
from dynashift.errors import (
    BadInputError,
    DynashiftError,
    EndpointUnreachableError,
    IncompatibleSchemaError,
    RuntimeFailure,
)
from dynashift.items import (
    TOMBSTONE_ATTR,
    Item,
    differing_attributes,
    from_event_json,
    ignored_predicate,
    is_tombstone,
    key_id,
    key_of,
    to_event_json,
)
from dynashift.models import TableLocation
from dynashift.progress import NullProgress, Progress
from dynashift.retry import Backoff, call_with_retry
from dynashift.tables import (
    BATCH_GET_MAX,
    BatchStats,
    batch_get,
    batch_write,
    describe_table,
    key_schema_text,
    same_key_schema,
    scan_pages,
    table_keys,
)
from dynashift.validation import option_error

log = logging.getLogger("dynashift.sync")

DEFAULT_BATCH_READ_LIMIT = 50
MAX_PARALLEL = 1000
#: How many keys per slave and kind are logged at INFO (the rest at DEBUG).
LOGGED_KEYS = 20
#: How many keys per slave and kind the report keeps as examples.
SAMPLE_KEYS = 10

#: A segment that finished, in a resume token.
DONE: Literal["done"] = "done"


# --- the item-difference rule ----------------------------------------------------------------


class ItemDiffer:
    """Decides whether a slave item differs from the master's (overridable, like the seed's
    `isItemDifferent`). Both items are in wire format; neither is a tombstone."""

    def __init__(self, ignore: Iterable[str] = (), ignore_legacy: bool = True) -> None:
        self.ignore = tuple(ignore)
        self.ignore_legacy = ignore_legacy
        self.is_ignored = ignored_predicate(self.ignore, ignore_legacy)

    def differing_attributes(self, master: Item, slave: Item) -> list[str]:
        """Top-level attribute names that differ (present on one side only, or unequal)."""
        return differing_attributes(master, slave, self.is_ignored)

    def differs(self, master: Item, slave: Item) -> bool:
        return bool(self.differing_attributes(master, slave))


@dataclass
class PageDiff:
    """The classification of one page of master items against one slave."""

    #: Keys (wire format) present in the master, absent (or a tombstone) in the slave.
    missing: list[Item] = field(default_factory=list)
    #: Keys present on both sides whose items differ.
    differing: list[Item] = field(default_factory=list)
    same: int = 0


def diff_page(
    master_items: Sequence[Item],
    slave_items: Iterable[Item],
    names: Sequence[str],
    differ: ItemDiffer,
) -> PageDiff:
    """Classify `master_items` against the slave items fetched for their keys (pure).

    A slave tombstone counts as absent; a master tombstone is not data and is skipped.
    """
    slave_by_id = {key_id(key_of(s, names)): s for s in slave_items}
    result = PageDiff()
    for master in master_items:
        if is_tombstone(master):
            continue
        key = key_of(master, names)
        slave = slave_by_id.get(key_id(key))
        if slave is None or is_tombstone(slave):
            result.missing.append(key)
        elif differ.differs(master, slave):
            result.differing.append(key)
        else:
            result.same += 1
    return result


# --- I/O -------------------------------------------------------------------------------------


def lookup_keys(
    client: Any,
    table: str,
    keys: Sequence[Mapping[str, Any]],
    *,
    chunk: int = DEFAULT_BATCH_READ_LIMIT,
    consistent: bool = False,
    stats: BatchStats | None = None,
    projection: Sequence[str] | None = None,
    backoff: Backoff | None = None,
) -> list[Item]:
    """The items of `table` with these keys (absent keys are simply not returned).

    BatchGetItem in chunks of `chunk` keys; `UnprocessedKeys` are retried with backoff and
    jitter until every key was answered.
    """
    if not keys:
        return []
    return batch_get(
        client,
        table,
        keys,
        chunk=chunk,
        consistent=consistent,
        stats=stats,
        projection=projection,
        backoff=backoff,
    )


def put_items(
    client: Any,
    table: str,
    items: Sequence[Item],
    *,
    stats: BatchStats | None = None,
    backoff: Backoff | None = None,
) -> int:
    """Write the master's items to a slave (repair of missing / differing); returns the count."""
    if not items:
        return 0
    return batch_write(
        client, table, [{"PutRequest": {"Item": i}} for i in items], stats=stats, backoff=backoff
    )


def delete_keys(
    client: Any,
    table: str,
    keys: Sequence[Item],
    *,
    stats: BatchStats | None = None,
    backoff: Backoff | None = None,
) -> int:
    """Delete slave items absent from the master (repair of extra); returns the count."""
    if not keys:
        return 0
    return batch_write(
        client, table, [{"DeleteRequest": {"Key": k}} for k in keys], stats=stats, backoff=backoff
    )


# --- conditional repairs ---------------------------------------------------------------------


@dataclass
class RepairOutcome:
    """What a repair pass did, key by key (wire-format keys)."""

    #: Keys given the master's current image.
    written: list[Item] = field(default_factory=list)
    #: Keys deleted from the slave (absent from the master).
    deleted: list[Item] = field(default_factory=list)
    #: "skipped: changed since read" — the master or the slave item changed between the
    #: comparison and the write (a failed condition, or a fresh read of the master that no
    #: longer calls for the write). Not an error; the key is left for the next run.
    skipped: list[Item] = field(default_factory=list)
    #: Writes made without a condition (too large to express) after a consistent re-read.
    unconditional: int = 0


def _identical(a: Mapping[str, Any] | None, b: Mapping[str, Any] | None) -> bool:
    """Every attribute equal, none ignored (the tombstone marker included)."""
    if a is None or b is None:
        return a is None and b is None
    return not differing_attributes(a, b, lambda _name: False)


def repair_keys(
    master_client: Any,
    master_table: str,
    slave_client: Any,
    slave_table: str,
    keys: Sequence[Item],
    *,
    names: Sequence[str],
    differ: ItemDiffer,
    seen: Mapping[str, Item | None] | None = None,
    allow_put: bool = True,
    allow_delete: bool = False,
    chunk: int = BATCH_GET_MAX,
    stats: BatchStats | None = None,
    backoff: Backoff | None = None,
) -> RepairOutcome:
    """Make the slave's items of `keys` the master's, never over a change made since the read.

    The one place every repair write is made (sync's --write-missing / --write-differing /
    --delete-extra, recheck's repair), so none can destroy live data:

    1. The slave items as compared are `seen` (key id -> item, None: absent); without `seen`
       they are read now, consistently.
    2. The master is re-read consistently (after the slave read): the image written is the
       master's current one, never the possibly stale image of an eventually consistent scan.
       A master item now equal to the slave's needs no write; one now absent calls for a delete
       (only with `allow_delete`), one now present for a put (only with `allow_put`); anything
       else is skipped as changed since read.
    3. Each write is a PutItem / DeleteItem conditional on the slave item being exactly as read
       (`conditions.unchanged_since_read`): a write by the master's replication, the replicator
       or anyone else in between fails the condition and the key is skipped — counted in
       `skipped`, not an error. Where the condition cannot be built (an item with hundreds of
       attributes exceeds the 4 KB expression limit) the slave is re-read consistently right
       before an unconditional write, made only when it is still as read (`unconditional`).

    A write whose condition fails although the slave now holds exactly what was to be written
    (a retried request that had been applied) counts as done.
    """
    outcome = RepairOutcome()
    if not keys:
        return outcome
    stats = stats if stats is not None else BatchStats()
    backoff = backoff or Backoff()
    if seen is None:
        found = lookup_keys(
            slave_client,
            slave_table,
            keys,
            chunk=chunk,
            consistent=True,
            stats=stats,
            backoff=backoff,
        )
        by_id = {key_id(key_of(i, names)): i for i in found}
        seen = {key_id(k): by_id.get(key_id(k)) for k in keys}
    fresh = {
        key_id(key_of(i, names)): i
        for i in lookup_keys(
            master_client,
            master_table,
            keys,
            chunk=chunk,
            consistent=True,
            stats=stats,
            backoff=backoff,
        )
    }
    for key in keys:
        kid = key_id(key)
        master, slave = fresh.get(kid), seen.get(kid)
        if master is not None and is_tombstone(master):
            master = None
        slave_data = None if slave is None or is_tombstone(slave) else slave
        if master is not None and slave_data is not None and not differ.differs(master, slave_data):
            outcome.skipped.append(key)  # the master changed to what the slave holds
            continue
        if master is None and slave_data is None:
            outcome.skipped.append(key)  # both sides agree now: nothing to delete
            continue
        if (master is not None and not allow_put) or (master is None and not allow_delete):
            outcome.skipped.append(key)
            continue
        done = _conditional_write(
            slave_client,
            slave_table,
            key,
            names=names,
            image=master,
            seen=slave,
            backoff=backoff,
            outcome=outcome,
        )
        if not done:
            outcome.skipped.append(key)
        elif master is None:
            outcome.deleted.append(key)
        else:
            outcome.written.append(key)
    return outcome


def _conditional_write(
    client: Any,
    table: str,
    key: Item,
    *,
    names: Sequence[str],
    image: Item | None,
    seen: Item | None,
    backoff: Backoff,
    outcome: RepairOutcome,
) -> bool:
    """Put `image` (or delete the key when None) if the slave item is still `seen`."""
    condition = unchanged_since_read(
        names[0], seen, list(names), list(image) if image is not None else []
    )
    if condition is None:
        # Too large for a condition: the narrowest window instead, and said so in the report.
        now = _get_consistent(client, table, key, backoff)
        if not _identical(now, seen):
            return False
        outcome.unconditional += 1
        log.warning(
            "unconditional repair of %s in %s (the item is too large for a condition)",
            _key_text(key),
            table,
        )
    try:
        if image is None:
            call_with_retry(
                lambda: client.delete_item(
                    TableName=table, Key=key, **(condition.kwargs() if condition else {})
                ),
                backoff,
            )
        else:
            call_with_retry(
                lambda: client.put_item(
                    TableName=table, Item=image, **(condition.kwargs() if condition else {})
                ),
                backoff,
            )
    except ClientError as exc:
        if error_code(exc) != "ConditionalCheckFailedException":
            raise
        # A retried request that had been applied fails its own condition: count it as done.
        return _identical(_get_consistent(client, table, key, backoff), image)
    return True


def _get_consistent(client: Any, table: str, key: Item, backoff: Backoff) -> Item | None:
    item = call_with_retry(
        lambda: client.get_item(TableName=table, Key=key, ConsistentRead=True), backoff
    ).get("Item")
    return dict(item) if item else None


def find_extra(
    slave_keys: Sequence[Item],
    master_items: Iterable[Item],
    names: Sequence[str],
) -> list[Item]:
    """Slave keys with no (non-tombstone) master item (pure)."""
    present = {key_id(key_of(m, names)) for m in master_items if not is_tombstone(m)}
    return [k for k in slave_keys if key_id(k) not in present]


# --- starting keys / resume tokens -----------------------------------------------------------

SegmentStart = Item | None | Literal["done"]

_KEY_TYPES = ("S", "N", "B")


def _wire_key_value(name: str, value: Any, attr_type: str) -> Any:
    """One key attribute of a `--starting-key` (wire or plain JSON) in botocore wire format."""
    if isinstance(value, Mapping):
        if len(value) != 1 or next(iter(value)) not in _KEY_TYPES:
            raise BadInputError(
                f"--starting-key: attribute {name!r} has an invalid value {json.dumps(value)}"
            )
        ((given, raw),) = value.items()
        if given != attr_type:
            raise BadInputError(
                f"--starting-key: attribute {name!r} is {given} but the table defines it as "
                f"{attr_type}"
            )
        value = raw
    if attr_type == "S":
        if not isinstance(value, str):
            raise BadInputError(f"--starting-key: attribute {name!r} must be a string")
        return {"S": value}
    if attr_type == "N":
        if isinstance(value, bool) or not isinstance(value, int | float | str | Decimal):
            raise BadInputError(f"--starting-key: attribute {name!r} must be a number")
        try:
            number = Decimal(str(value))
        except InvalidOperation:
            raise BadInputError(
                f"--starting-key: attribute {name!r} value {value!r} is not a number"
            ) from None
        return {"N": str(value) if isinstance(value, str) else format(number, "f")}
    if not isinstance(value, str):
        raise BadInputError(f"--starting-key: attribute {name!r} must be base64 text")
    try:
        return from_event_json({name: {"B": value}})[name]
    except ValueError:
        raise BadInputError(
            f"--starting-key: attribute {name!r} value {value!r} is not valid base64"
        ) from None


def starting_key_to_wire(value: Mapping[str, Any], description: Mapping[str, Any]) -> Item:
    """A `--starting-key` object (wire format, or plain JSON values as the seed tool logs them)
    as a wire-format key of the table described by `description`."""
    names = table_keys(description)
    if set(value) != set(names):
        raise BadInputError(
            f"--starting-key: {json.dumps(to_event_json(dict(value)), default=str)} does not "
            f"match the key schema ({key_schema_text(description)})"
        )
    types = {a["AttributeName"]: a["AttributeType"] for a in description["AttributeDefinitions"]}
    return {n: _wire_key_value(n, value[n], types.get(n, "S")) for n in names}


def resolve_starting_key(
    value: Mapping[str, Any] | Sequence[Any] | None,
    description: Mapping[str, Any],
    parallel: int | None,
) -> list[SegmentStart]:
    """Where each master segment starts.

    - None: every segment from the beginning.
    - A key object (the seed tool's form): one serial scan resumes after that key. A key belongs
      to one segment of a parallel scan and DynamoDB does not say which, so with `--parallel`
      greater than 1 an object is refused (the seed passes it to every segment, which rescans
      or skips data).
    - A list (what dynashift logs for a parallel scan): one entry per segment, a key object
      (resume after it), null (start from the beginning) or "done". Its length is the
      parallelism; `--parallel`, if given, must agree.
    """
    if value is None:
        return [None] * (parallel or 1)
    if isinstance(value, Mapping):
        if parallel not in (None, 1):
            raise BadInputError(
                f"--starting-key: a single key resumes a serial scan only, not --parallel "
                f"{parallel}; give the list of per-segment keys that dynashift logged"
            )
        return [starting_key_to_wire(value, description)]
    if isinstance(value, str | bytes) or not isinstance(value, Sequence):
        raise BadInputError("--starting-key: expected a JSON object (a key) or a list of keys")
    if not value:
        raise BadInputError("--starting-key: the list of segment keys is empty")
    if len(value) > MAX_PARALLEL:
        raise BadInputError(f"--starting-key: more than {MAX_PARALLEL} segments")
    if parallel is not None and parallel != len(value):
        raise BadInputError(
            f"--starting-key: has {len(value)} segment keys but --parallel is {parallel}"
        )
    starts: list[SegmentStart] = []
    for i, entry in enumerate(value):
        if entry is None or entry == DONE:
            starts.append(entry)
        elif isinstance(entry, Mapping):
            starts.append(starting_key_to_wire(entry, description))
        else:
            raise BadInputError(
                f"--starting-key: segment {i} entry {json.dumps(entry, default=str)} is not a "
                f'key object, null or "{DONE}"'
            )
    return starts


def resume_token(cursors: Sequence[SegmentStart]) -> str:
    """The `--starting-key` JSON that resumes from `cursors` (key object when serial)."""

    def encode(c: SegmentStart) -> Any:
        return c if c is None or c == DONE else to_event_json(dict(c))  # type: ignore[arg-type]

    if len(cursors) == 1 and cursors[0] not in (None, DONE):
        return json.dumps(encode(cursors[0]), separators=(",", ":"))
    return json.dumps([encode(c) for c in cursors], separators=(",", ":"))


# --- options and report ----------------------------------------------------------------------


class SyncOptions(BaseModel):
    """What a sync run does (the `dynashift sync` flags)."""

    model_config = ConfigDict(extra="forbid", frozen=True, arbitrary_types_allowed=True)

    write_missing: bool = False
    write_differing: bool = False
    scan_for_extra: bool = False
    delete_extra: bool = False
    ignore: tuple[str, ...] = ()
    #: Ignore the `aws:rep:*` bookkeeping attributes of legacy global tables.
    ignore_legacy: bool = True
    #: Master scan segments; None: 1, or the length of a list `starting_key`.
    parallel: int | None = Field(default=None, ge=1, le=MAX_PARALLEL)
    #: A key object (serial resume) or a list of per-segment keys / null / "done".
    starting_key: dict[str, Any] | list[Any] | None = None
    scan_limit: int | None = Field(default=None, ge=1)
    batch_read_limit: int = Field(default=DEFAULT_BATCH_READ_LIMIT, ge=1, le=BATCH_GET_MAX)
    #: Strongly consistent reads of the slaves (master lookups for extras are always consistent).
    consistent_reads: bool = False
    #: Seconds between resume-key log lines.
    log_every: float = Field(default=10.0, gt=0)

    @field_validator("ignore")
    @classmethod
    def _names(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for name in value:
            if not name or len(name) > 255:
                raise ValueError(f"{name!r} is not an attribute name")
        return value

    @classmethod
    def parse(cls, **values: Any) -> SyncOptions:
        """Build options; a bad value raises BadInputError naming the option."""
        try:
            return cls(**values)
        except ValidationError as exc:
            raise option_error(exc) from None

    @property
    def scan_slaves(self) -> bool:
        return self.scan_for_extra or self.delete_extra

    @property
    def dry_run(self) -> bool:
        return not (self.write_missing or self.write_differing or self.delete_extra)


@dataclass
class SlaveReport:
    """Counts for one slave (the report's `slaves` entries)."""

    missing: int = 0
    differing: int = 0
    extra: int = 0
    wrote_missing: int = 0
    wrote_differing: int = 0
    deleted_extra: int = 0
    same: int = 0
    #: Repairs not made because the item changed between the comparison and the write.
    skipped_changed: int = 0
    #: Repairs written without a condition (item too large for one) after a consistent re-read.
    unconditional: int = 0
    extra_scanned: bool = False
    slave_scanned: int = 0
    samples: dict[str, list[Item]] = field(
        default_factory=lambda: {"missing": [], "differing": [], "extra": [], "skipped": []}
    )

    @property
    def unrepaired(self) -> int:
        return (
            self.missing
            - self.wrote_missing
            + self.differing
            - self.wrote_differing
            + self.extra
            - self.deleted_extra
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "missing": self.missing,
            "differing": self.differing,
            "extra": self.extra,
            "wrote_missing": self.wrote_missing,
            "wrote_differing": self.wrote_differing,
            "deleted_extra": self.deleted_extra,
            "skipped_changed": self.skipped_changed,
            "unconditional": self.unconditional,
            "same": self.same,
            "extra_scanned": self.extra_scanned,
            "slave_scanned": self.slave_scanned,
            "samples": {k: [to_event_json(x) for x in v] for k, v in self.samples.items()},
        }

    def summary(self) -> str:
        extra = str(self.extra) if self.extra_scanned else "not scanned"
        return (
            f"missing {self.missing}, differing {self.differing}, extra {extra}, same "
            f"{self.same}; wrote missing {self.wrote_missing}, wrote differing "
            f"{self.wrote_differing}, deleted extra {self.deleted_extra}"
            + (
                f"; skipped: changed since read {self.skipped_changed}"
                if self.skipped_changed
                else ""
            )
            + (f"; unconditional {self.unconditional}" if self.unconditional else "")
        )


@dataclass
class SyncReport:
    """The result of a sync run. `to_json()` is the `--report` file."""

    master: str
    scanned: int = 0
    slaves: dict[str, SlaveReport] = field(default_factory=dict)
    dry_run: bool = True
    complete: bool = False
    parallel: int = 1
    elapsed_seconds: float = 0.0
    unprocessed_keys: int = 0
    error: str | None = None
    #: `--starting-key` that resumes an incomplete run (None when complete).
    resume: str | None = None

    @property
    def in_sync(self) -> bool:
        return all(s.unrepaired == 0 for s in self.slaves.values())

    @property
    def exit_code(self) -> int:
        """0 in sync or fully repaired, 1 differences left (a dry run that found some)."""
        if self.error is not None:
            return 3
        return 0 if self.in_sync else 1

    def to_json(self) -> dict[str, Any]:
        return {
            "master": self.master,
            "scanned": self.scanned,
            "slaves": {name: s.to_json() for name, s in self.slaves.items()},
            "dry_run": self.dry_run,
            "complete": self.complete,
            "parallel": self.parallel,
            "elapsed_seconds": round(self.elapsed_seconds, 3),
            "unprocessed_keys": self.unprocessed_keys,
            "exit_code": self.exit_code,
            "error": self.error,
            "resume": self.resume,
        }

    def summary_lines(self) -> list[str]:
        mode = "dry run" if self.dry_run else "repair"
        lines = [
            f"{self.master}: scanned {self.scanned} items in {self.elapsed_seconds:.1f}s "
            f"({mode}, {self.parallel} segment{'s' if self.parallel != 1 else ''})"
        ]
        lines += [f"  {name}: {s.summary()}" for name, s in self.slaves.items()]
        if self.error is None:
            lines.append("in sync" if self.in_sync else "differences remain")
        return lines


ProgressFactory = Callable[[str, int | None], Progress]


def _null_progress(label: str, total: int | None) -> Progress:
    return NullProgress(label, total)


# --- the engine ------------------------------------------------------------------------------


@dataclass
class _Table:
    location: TableLocation
    client: Any
    display: str
    description: dict[str, Any]


class _Aborted(Exception):
    """Another segment failed: stop quietly."""


class SyncEngine:
    """Compares a master table with its slaves and optionally repairs them.

    `client_for(location)` returns the DynamoDB client of a table (default: the process-wide
    client factory of its side, pool sized to the parallelism); `progress(label, total)` makes
    a progress reporter; `clock` / `sleep` are injectable so tests never wait.
    """

    def __init__(
        self,
        master: TableLocation,
        slaves: Sequence[TableLocation],
        options: SyncOptions | None = None,
        *,
        differ: ItemDiffer | None = None,
        progress: ProgressFactory | None = None,
        client_for: Callable[[TableLocation], Any] | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.options = options or SyncOptions()
        self.master_location = master
        self.slave_locations = list(slaves)
        self.differ = differ or ItemDiffer(self.options.ignore, self.options.ignore_legacy)
        self.progress_factory = progress or _null_progress
        self.clock = clock
        self.sleep = sleep
        self._client_for = client_for
        self._lock = threading.Lock()
        self._abort = threading.Event()
        self._cursors: list[SegmentStart] = []
        self._last_resume_log = 0.0
        self._stats = BatchStats()
        self.master: _Table | None = None
        self.slaves: list[_Table] = []
        self.report: SyncReport | None = None

    # -- setup --

    def _client(self, location: TableLocation, pool: int) -> Any:
        if self._client_for is not None:
            return self._client_for(location)
        return location.clients(pool).dynamodb()

    def _backoff(self) -> Backoff:
        return Backoff(sleep=self.sleep)

    def prepare(self) -> SyncReport:
        """Validate everything before the first read of items or write: slaves given and
        distinct, every table exists, every slave shares the master's key schema, the starting
        key fits. Raises BadInputError subclasses (exit 2)."""
        if not self.slave_locations:
            raise BadInputError("--slave: at least one slave table is required")
        starting = self.options.starting_key
        pool = self.options.parallel or (len(starting) if isinstance(starting, list) else 1)
        self.master = self._describe(self.master_location, "master", pool)
        seen = {self._identity(self.master_location): "master"}
        for loc in self.slave_locations:
            ident = self._identity(loc)
            if ident in seen:
                raise BadInputError(
                    f"--slave: {loc.display()} is the same table as the {seen[ident]}"
                )
            seen[ident] = "slave"
        self.slaves = [self._describe(loc, "slave", pool) for loc in self.slave_locations]
        for slave in self.slaves:
            if not same_key_schema(self.master.description, slave.description):
                raise IncompatibleSchemaError(
                    f"slave {slave.display} key schema "
                    f"({key_schema_text(slave.description)}) differs from master "
                    f"{self.master.display} ({key_schema_text(self.master.description)})"
                )
        self._cursors = resolve_starting_key(
            self.options.starting_key, self.master.description, self.options.parallel
        )
        self.report = SyncReport(
            master=self.master.display,
            slaves={s.display: SlaveReport(extra_scanned=False) for s in self.slaves},
            dry_run=self.options.dry_run,
            parallel=len(self._cursors),
        )
        return self.report

    @staticmethod
    def _identity(loc: TableLocation) -> tuple[Any, ...]:
        side = loc.side
        return (loc.name, side.region, side.endpoint_url, side.profile, side.role_arn)

    def _describe(self, loc: TableLocation, what: str, pool: int) -> _Table:
        try:
            client = self._client(loc, pool)
            description = describe_table(client, loc.name, what)
        except ClientError as exc:
            raise RuntimeFailure(
                f"cannot describe {what} table {loc.name!r}: {error_code(exc) or exc}"
            ) from exc
        except NoCredentialsError as exc:
            raise BadInputError(
                f"no AWS credentials found for the {what} table {loc.name!r} (configure them, "
                "or give a profile / role)"
            ) from exc
        except BotoCoreError as exc:
            raise RuntimeFailure(f"cannot describe {what} table {loc.name!r}: {exc}") from exc
        region = loc.side.region or getattr(getattr(client, "meta", None), "region_name", None)
        display = f"{region}:{loc.name}" if region else loc.name
        return _Table(loc, client, display, description)

    # -- run --

    def run(self) -> SyncReport:
        """Prepare (if not done), compare, repair as asked; return the report.

        Bad input raises (exit 2) before anything is read or written. A runtime failure after
        retries raises RuntimeFailure with the resume key logged and kept in `self.report`.
        """
        report = self.report or self.prepare()
        assert self.master is not None
        if report.complete or report.error is not None:
            raise RuntimeError("a SyncEngine runs once; make a new one (with the resume key)")
        started = self.clock()
        try:
            self._master_phase()
            if self.options.scan_slaves:
                for slave in self.slaves:
                    self._extra_phase(slave)
            report.complete = True
        except (KeyboardInterrupt, DynashiftError, ClientError, BotoCoreError) as exc:
            self._abort.set()
            report.resume = None if self._master_done() else resume_token(self._cursors)
            report.error = str(exc) or type(exc).__name__
            if report.resume:
                log.error(
                    "sync of %s stopped; resume the master scan with --parallel %d "
                    "--starting-key '%s'",
                    self.master.display,
                    len(self._cursors),
                    report.resume,
                )
            if isinstance(exc, EndpointConnectionError):
                raise EndpointUnreachableError(f"cannot reach an endpoint: {exc}") from exc
            if isinstance(exc, ClientError | BotoCoreError):
                raise RuntimeFailure(f"sync failed: {error_code(exc) or exc}") from exc
            raise
        finally:
            report.elapsed_seconds = self.clock() - started
            report.unprocessed_keys = self._stats.unprocessed
        return report

    def _master_done(self) -> bool:
        return all(c == DONE for c in self._cursors)

    def _run_segments(self, count: int, work: Callable[[int], None]) -> None:
        if count == 1:
            work(0)
            return
        with ThreadPoolExecutor(max_workers=count, thread_name_prefix="sync") as pool:
            futures = [pool.submit(work, i) for i in range(count)]
            try:
                done, _ = wait(futures, return_when=FIRST_EXCEPTION)
            except BaseException:
                self._abort.set()
                raise
            for f in done:
                exc = f.exception()
                if exc is not None and not isinstance(exc, _Aborted):
                    self._abort.set()
                    raise exc
            for f in futures:
                exc = f.exception()  # waits for the rest
                if exc is not None and not isinstance(exc, _Aborted):
                    raise exc

    def _master_phase(self) -> None:
        assert self.master is not None and self.report is not None
        total = self.master.description.get("ItemCount")
        progress = self.progress_factory(f"scan {self.master.display}", total)
        todo = sum(1 for c in self._cursors if c != DONE)
        log.info(
            "comparing %s with %s (%d segment%s%s)",
            self.master.display,
            ", ".join(s.display for s in self.slaves),
            len(self._cursors),
            "s" if len(self._cursors) != 1 else "",
            f", {todo} to resume" if self.options.starting_key is not None else "",
        )
        try:
            self._run_segments(len(self._cursors), lambda i: self._master_segment(i, progress))
        finally:
            progress.close()

    def _master_segment(self, segment: int, progress: Progress) -> None:
        assert self.master is not None and self.report is not None
        start = self._cursors[segment]
        if start == DONE or isinstance(start, str):
            return
        names = table_keys(self.master.description)
        backoff = self._backoff()
        pages = scan_pages(
            self.master.client,
            self.master.location.name,
            segment=segment,
            total_segments=len(self._cursors),
            start_key=start,
            limit=self.options.scan_limit,
            backoff=backoff,
        )
        for page in pages:
            if self._abort.is_set():
                raise _Aborted
            if page.items:
                self._compare_page(page.items, names, backoff)
            with self._lock:
                self.report.scanned += len(page.items)
                cursor: SegmentStart = page.cursor if page.cursor else DONE
                self._cursors[segment] = cursor
            progress.advance(len(page.items))
            self._maybe_log_resume()
        if len(self._cursors) > 1:
            log.info("segment %d of %d finished", segment, len(self._cursors))

    def _compare_page(self, items: list[Item], names: Sequence[str], backoff: Backoff) -> None:
        by_id = {key_id(key_of(i, names)): i for i in items if not is_tombstone(i)}
        keys = [key_of(i, names) for i in by_id.values()]
        opts = self.options
        master = self.master
        assert master is not None
        for slave in self.slaves:
            stats = BatchStats()
            found = lookup_keys(
                slave.client,
                slave.location.name,
                keys,
                chunk=opts.batch_read_limit,
                consistent=opts.consistent_reads,
                stats=stats,
                backoff=backoff,
            )
            diff = diff_page(items, found, names, self.differ)
            to_write: list[Item] = []
            if opts.write_missing:
                to_write += diff.missing
            if opts.write_differing:
                to_write += diff.differing
            repaired = RepairOutcome()
            if to_write:
                found_by_id = {key_id(key_of(i, names)): i for i in found}
                repaired = repair_keys(
                    master.client,
                    master.location.name,
                    slave.client,
                    slave.location.name,
                    to_write,
                    names=names,
                    differ=self.differ,
                    seen={key_id(k): found_by_id.get(key_id(k)) for k in to_write},
                    chunk=opts.batch_read_limit,
                    stats=stats,
                    backoff=backoff,
                )
            self._record(
                slave,
                diff,
                stats,
                repaired,
                master_by_id=by_id,
                slave_items=found,
                names=names,
            )

    def _record(
        self,
        slave: _Table,
        diff: PageDiff,
        stats: BatchStats,
        repaired: RepairOutcome,
        *,
        master_by_id: Mapping[str, Item],
        slave_items: Sequence[Item],
        names: Sequence[str],
    ) -> None:
        assert self.report is not None
        with self._lock:
            rep = self.report.slaves[slave.display]
            self._stats.unprocessed += stats.unprocessed
            self._stats.retries += stats.retries
            for kind, keys in (("missing", diff.missing), ("differing", diff.differing)):
                for k in keys:
                    count = getattr(rep, kind)
                    level = logging.INFO if count < LOGGED_KEYS else logging.DEBUG
                    if count < SAMPLE_KEYS:
                        rep.samples[kind].append(k)
                    if log.isEnabledFor(level):
                        detail = ""
                        if kind == "differing":
                            detail = self._diff_detail(k, master_by_id, slave_items, names)
                        log.log(level, "%s %s: %s%s", kind, slave.display, _key_text(k), detail)
                    setattr(rep, kind, count + 1)
            rep.same += diff.same
            written = {key_id(k) for k in repaired.written}
            rep.wrote_missing += sum(1 for k in diff.missing if key_id(k) in written)
            rep.wrote_differing += sum(1 for k in diff.differing if key_id(k) in written)
            self._count_skipped(slave, rep, repaired)

    @staticmethod
    def _count_skipped(slave: _Table, rep: SlaveReport, repaired: RepairOutcome) -> None:
        """Count (and log, by key only) repairs skipped because an item changed since read."""
        for k in repaired.skipped:
            level = logging.INFO if rep.skipped_changed < LOGGED_KEYS else logging.DEBUG
            log.log(level, "skipped (changed since read) %s: %s", slave.display, _key_text(k))
            if rep.skipped_changed < SAMPLE_KEYS:
                rep.samples["skipped"].append(k)
            rep.skipped_changed += 1
        rep.unconditional += repaired.unconditional

    def _diff_detail(
        self,
        key: Item,
        master_by_id: Mapping[str, Item],
        slave_items: Sequence[Item],
        names: Sequence[str],
    ) -> str:
        """` (attributes: a, b)` — names only, never values."""
        kid = key_id(key)
        slave = next((s for s in slave_items if key_id(key_of(s, names)) == kid), None)
        if slave is None:
            return ""
        attrs = self.differ.differing_attributes(master_by_id[kid], slave)
        return f" (attributes: {', '.join(attrs)})" if attrs else ""

    def _maybe_log_resume(self) -> None:
        now = self.clock()
        with self._lock:
            if now - self._last_resume_log < self.options.log_every or self._master_done():
                return
            self._last_resume_log = now
            token = resume_token(self._cursors)
        log.info("resumable: --parallel %d --starting-key '%s'", len(self._cursors), token)

    def _extra_phase(self, slave: _Table) -> None:
        assert self.master is not None and self.report is not None
        names = table_keys(self.master.description)
        segments = max(1, len(self._cursors))
        rep = self.report.slaves[slave.display]
        progress = self.progress_factory(
            f"scan {slave.display} for extra", slave.description.get("ItemCount")
        )
        projection = [*names, TOMBSTONE_ATTR]
        placeholders = {f"#k{i}": n for i, n in enumerate(projection)}
        scan_extra = {
            "ProjectionExpression": ", ".join(placeholders),
            "ExpressionAttributeNames": placeholders,
        }
        log.info("scanning %s for items absent from %s", slave.display, self.master.display)

        def work(segment: int) -> None:
            assert self.master is not None
            backoff = self._backoff()
            for page in scan_pages(
                slave.client,
                slave.location.name,
                segment=segment,
                total_segments=segments,
                limit=self.options.scan_limit,
                backoff=backoff,
                extra=scan_extra,
            ):
                if self._abort.is_set():
                    raise _Aborted
                keys = [key_of(i, names) for i in page.items if not is_tombstone(i)]
                stats = BatchStats()
                found = lookup_keys(
                    self.master.client,
                    self.master.location.name,
                    keys,
                    chunk=self.options.batch_read_limit,
                    consistent=True,
                    stats=stats,
                    projection=projection,
                    backoff=backoff,
                )
                extra = find_extra(keys, found, names)
                repaired = RepairOutcome()
                if extra and self.options.delete_extra:
                    repaired = repair_keys(
                        self.master.client,
                        self.master.location.name,
                        slave.client,
                        slave.location.name,
                        extra,
                        names=names,
                        differ=self.differ,
                        allow_put=False,
                        allow_delete=True,
                        chunk=self.options.batch_read_limit,
                        stats=stats,
                        backoff=backoff,
                    )
                with self._lock:
                    self._stats.unprocessed += stats.unprocessed
                    for k in extra:
                        level = logging.INFO if rep.extra < LOGGED_KEYS else logging.DEBUG
                        log.log(level, "extra %s: %s", slave.display, _key_text(k))
                        if rep.extra < SAMPLE_KEYS:
                            rep.samples["extra"].append(k)
                        rep.extra += 1
                    rep.deleted_extra += len(repaired.deleted)
                    self._count_skipped(slave, rep, repaired)
                    rep.slave_scanned += len(page.items)
                progress.advance(len(page.items))

        try:
            self._run_segments(segments, work)
        finally:
            progress.close()
        rep.extra_scanned = True


def _key_text(key: Mapping[str, Any]) -> str:
    return json.dumps(to_event_json(dict(key)), sort_keys=True, separators=(",", ":"))
