"""The state store: one DynamoDB table holding a migration's durable progress.

Size: one module because the state store owns every record of the state table through one key
builder and one pager; split, the layout below would be spread over several files.

Layout (partition key `migration_id`, sort key `sk`, both strings):

| sk                    | what                                                            |
|-----------------------|-----------------------------------------------------------------|
| `meta`                | phase, source/target names, timestamps, free-form fields        |
| `segment#000007`      | cursor (JSON wire format), done flag, counters (a map of N)     |
| `tombstone#<key id>`  | a key the replicator wrote during the backfill: a tombstone (I5) |
|                       | or a marked versioned put (`conditions` module docstring)        |
| `lease#<seg>#<id>`    | a running backfill invocation's lease (`finish_backfill` waits)   |
| `replicator#lease`    | the one stream applier of the migration (local follower)          |
| `shard#<shard id>`    | last applied stream sequence number of a shard (follower)        |
| `report`              | the latest readiness report (JSON text)                          |
| `prog#<label>#<seq>`  | one applied batch of the replicator (replication_progress)      |
| `pfail#<label>#<seq>` | a record the replicator reported failed                          |
| `pwalk#<shard id>`    | the progress checker's walk position in one shard                |

`<label>` is the stream ARN's label (its last path part, ASCII, ~23 characters) and `<seq>` a
sequence number zero-padded to 40 digits, so these sort keys stay short and sort numerically.

Every record's key comes from ONE builder, `record_key(kind, ident)`: a record about a table key
(`<key id>`: the key's JSON text) keeps it inline while the sort key stays within
`SORT_KEY_INLINE_MAX` bytes, and otherwise uses the SHA-256 digest of that text, with the full
text in the record's `key` attribute. So every record fits DynamoDB's 1,024-byte sort-key limit
whatever the migrated table's key: a 2,048-byte partition key plus a 1,024-byte sort key, binary
(base64) or non-ASCII (JSON escapes it to six bytes a character). The partition key is the
migration id (at most 64 ASCII characters, `MigrationSpec`).

Writes that commit progress are single PutItem/UpdateItem calls, so a crash leaves either the
old or the new checkpoint (I8). Reads that decide behaviour (the phase) are strongly consistent.
A segment checkpoint only moves forward: each invocation takes a higher generation
(`claim_segment`) and `save_segment` is conditional on no newer generation having claimed the
segment and on the segment not being done yet, so a straggling invocation cannot overwrite a
newer cursor or `done` (its write fails with `CheckpointFencedError`, which the worker counts).

Why one module of this size: it is the only code that reads or writes the state table (one key
builder, one pager, one meta merge), so every record kind's access lives here and nowhere else.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from dynashift.aws import error_code
from dynashift.clock import SYSTEM_CLOCK, Clock
from dynashift.errors import BadInputError, RuntimeFailure
from dynashift.items import Item, from_event_json, key_from_id, key_id, to_event_json
from dynashift.models import PROCESS_CLIENTS, Clients

if TYPE_CHECKING:
    from dynashift.models import MigrationSpec

#: Deletes in the source become tombstones in the target (invariant I5).
PHASE_BACKFILL = "BACKFILL"
#: Backfill finished and tombstones removed: deletes are plain deletes.
PHASE_PLAIN = "PLAIN"
#: "Finish backfill" runs: backfill workers stop at their next page, and the replicator still
#: writes tombstones while a straggling worker may write (`finish_backfill` waits out their
#: leases, then sets PLAIN).
PHASE_FINISHING = "FINISHING"
#: Phases in which deletes become tombstones (and versioned puts may carry a marker).
TOMBSTONE_PHASES = frozenset({PHASE_BACKFILL, PHASE_FINISHING})

META = "meta"
REPORT = "report"
SEGMENT_PREFIX = "segment#"
TOMBSTONE_PREFIX = "tombstone#"
SHARD_PREFIX = "shard#"
LEASE_PREFIX = "lease#"
REPLICATOR_LEASE = "replicator#lease"

#: Longest sort key kept inline (DynamoDB's limit is 1,024 bytes of UTF-8); longer ones are
#: replaced by a digest (see `record_key`).
SORT_KEY_INLINE_MAX = 1024
_DIGEST_TAG = "sha256:"


class CheckpointFencedError(RuntimeFailure):
    """A segment checkpoint write lost to a newer invocation (or to `done`): the writer is a
    straggler and must stop. An expected, counted outcome (never a workflow error)."""


class LeaseHeldError(RuntimeFailure):
    """Another process holds the lease (for example a second replicator of one migration)."""


def record_sort_key(kind: str, ident: str = "") -> tuple[str, str | None]:
    """(sort key, full identifier or None): THE key builder of every state record.

    `kind` is a record type (`meta`, `segment#`, `tombstone#`, ...) and `ident` what the record is
    about. Kept inline when the sort key fits `SORT_KEY_INLINE_MAX` bytes; otherwise the sort key
    is `kind + "sha256:" + hex digest of ident` and the full identifier is returned for the
    record's `key` attribute. An inline identifier never starts with "sha256:" (key ids are JSON
    objects, the others are numbers or stream shard ids), so the two forms cannot collide.
    """
    inline = kind + ident
    if len(inline.encode("utf-8")) <= SORT_KEY_INLINE_MAX:
        return inline, None
    return kind + _DIGEST_TAG + hashlib.sha256(ident.encode("utf-8")).hexdigest(), ident


PROGRESS_PREFIX = "prog#"
PROGRESS_FAILURE_PREFIX = "pfail#"
WALK_PREFIX = "pwalk#"
#: Stream sequence numbers have at most 40 digits.
SEQUENCE_WIDTH = 40


def stream_label(stream_arn: str) -> str:
    """A stream ARN's label (its last path part): short ASCII, unique per table."""
    return stream_arn.rsplit("/", 1)[-1] or "stream"


@dataclass(frozen=True)
class ProgressRange:
    """One batch the replicator applied: every record of one shard from `first` to `last`."""

    stream: str
    first: str
    last: str
    count: int
    #: ApproximateCreationDateTime (epoch s) of the newest record in the range.
    newest_created: float | None
    applied_at: float


@dataclass(frozen=True)
class ProgressFailure:
    """The first record of a batch the replicator could not apply."""

    stream: str
    sequence: str
    error: str
    #: Records reported failed with it (it and every later record of its batch).
    reported_failed: int
    at: float
    attempts: int = 1


def state_table_name(migration_id: str) -> str:
    """Name of the local state store table for a migration (in AWS it is a stack resource)."""
    return f"dynashift-state-{migration_id}"


@dataclass
class SegmentState:
    segment: int
    cursor: Item | None = None
    done: bool = False
    counters: dict[str, int] = field(default_factory=dict)
    #: The invocation generation that writes this checkpoint (0: unfenced, tests and tools).
    generation: int = 0
    #: When the checkpoint was committed (epoch seconds; None before it is): for a done
    #: segment, when its copy ended.
    updated: float | None = None


@dataclass(frozen=True)
class WriteMode:
    """How the target is written during the backfill (one strongly consistent read of `meta`).

    `overwrite_older`: the target held items before the migration, so the backfill may replace
    an older version of such an item, and the replicator marks its versioned puts with `marker`
    while the phase is BACKFILL (proof in the `conditions` module docstring). False (also for a
    migration started before this was recorded): the backfill never replaces anything.
    """

    phase: str | None
    overwrite_older: bool = False
    marker: str | None = None


def _encode_cursor(cursor: Mapping[str, Any] | None) -> str | None:
    return json.dumps(to_event_json(dict(cursor)), sort_keys=True) if cursor else None


def _decode_cursor(text: str | None) -> Item | None:
    return from_event_json(json.loads(text)) if text else None


class StateStore:
    """Durable progress of one migration in a DynamoDB table (see module docstring)."""

    def __init__(
        self, client: Any, table_name: str, migration_id: str, clock: Clock = SYSTEM_CLOCK
    ) -> None:
        self.client = client
        self.table = table_name
        self.migration_id = migration_id
        #: Stamps the records' `updated` / `created` times (wall time).
        self.clock = clock

    # --- table lifecycle ---------------------------------------------------------------------

    @staticmethod
    def ensure_table(
        client: Any, table_name: str, timeout: float = 120.0, *, clock: Clock = SYSTEM_CLOCK
    ) -> bool:
        """Create the state table if missing and wait for ACTIVE (at most `timeout` seconds by
        `clock`). True when it was created."""
        try:
            status = client.describe_table(TableName=table_name)["Table"]["TableStatus"]
            created = False
        except ClientError as exc:
            if error_code(exc) != "ResourceNotFoundException":
                raise
            client.create_table(
                TableName=table_name,
                KeySchema=[
                    {"AttributeName": "migration_id", "KeyType": "HASH"},
                    {"AttributeName": "sk", "KeyType": "RANGE"},
                ],
                AttributeDefinitions=[
                    {"AttributeName": "migration_id", "AttributeType": "S"},
                    {"AttributeName": "sk", "AttributeType": "S"},
                ],
                BillingMode="PAY_PER_REQUEST",
            )
            status, created = "CREATING", True
        deadline = clock.monotonic() + timeout
        while status != "ACTIVE":
            if clock.monotonic() > deadline:
                raise RuntimeFailure(f"state table {table_name} not ACTIVE after {timeout:.0f}s")
            clock.sleep(0.5)
            status = client.describe_table(TableName=table_name)["Table"]["TableStatus"]
        return created

    @staticmethod
    def table_exists(client: Any, table_name: str) -> bool:
        try:
            client.describe_table(TableName=table_name)
            return True
        except ClientError as exc:
            if error_code(exc) == "ResourceNotFoundException":
                return False
            raise

    # --- low level ---------------------------------------------------------------------------

    def record_key(self, kind: str, ident: str = "") -> dict[str, Any]:
        """The primary key of the record `kind + ident` (see `record_sort_key`).

        Fixed-name records (`meta`, `report`, `verify#000003`, ...) are never long; a record about
        a table key goes through `_keyed_record`, which also stores the full identifier.
        """
        sk, _full = record_sort_key(kind, ident)
        return {"migration_id": {"S": self.migration_id}, "sk": {"S": sk}}

    def _key(self, sk: str) -> dict[str, Any]:
        return self.record_key(sk)

    def _keyed_record(self, kind: str, ident: str) -> dict[str, Any]:
        """Key attributes of a record about `ident`, plus `key` (its full text) when digested."""
        sk, full = record_sort_key(kind, ident)
        item: dict[str, Any] = {"migration_id": {"S": self.migration_id}, "sk": {"S": sk}}
        if full is not None:
            item["key"] = {"S": full}
        return item

    @staticmethod
    def _ident_of(item: Mapping[str, Any], kind: str) -> str:
        if "key" in item:
            return str(item["key"]["S"])
        return str(item["sk"]["S"][len(kind) :])

    def _get(self, sk: str) -> dict[str, Any] | None:
        resp = self.client.get_item(TableName=self.table, Key=self._key(sk), ConsistentRead=True)
        item: dict[str, Any] | None = resp.get("Item")
        return item

    def _query(self, condition: str, values: Mapping[str, str]) -> Iterator[dict[str, Any]]:
        """The one pager of the state table: every item of this migration whose sort key meets
        `condition` (`sk` against the `values` placeholders), strongly consistent, page by page."""
        kwargs: dict[str, Any] = {
            "TableName": self.table,
            "KeyConditionExpression": f"migration_id = :m AND {condition}",
            "ExpressionAttributeValues": {":m": {"S": self.migration_id}}
            | {name: {"S": value} for name, value in values.items()},
            "ConsistentRead": True,
        }
        while True:
            page = self.client.query(**kwargs)
            yield from page.get("Items", [])
            if "LastEvaluatedKey" not in page:
                return
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    def _query_prefix(self, prefix: str) -> Iterator[dict[str, Any]]:
        return self._query("begins_with(sk, :p)", {":p": prefix})

    def _query_between(self, low: str, high: str) -> Iterator[dict[str, Any]]:
        return self._query("sk BETWEEN :lo AND :hi", {":lo": low, ":hi": high})

    # --- records other modules define (verification, recheck, approval) -----------------------
    # The state store is still the only code that reads or writes the state table: those modules
    # give the record's kind and content, these methods the key (`record_key`) and the calls.

    def put_record(self, kind: str, ident: str = "", **attributes: Any) -> None:
        """Write the record `kind + ident` with these wire-format attributes (one PutItem)."""
        item = {**self.record_key(kind, ident), **attributes}
        self.client.put_item(TableName=self.table, Item=item)

    def get_record(self, kind: str, ident: str = "") -> dict[str, Any] | None:
        """The record `kind + ident` (strongly consistent), or None."""
        key = self.record_key(kind, ident)
        item: dict[str, Any] | None = self.client.get_item(
            TableName=self.table, Key=key, ConsistentRead=True
        ).get("Item")
        return item

    def records(self, kind: str) -> list[dict[str, Any]]:
        """Every record whose sort key starts with `kind` (strongly consistent)."""
        return list(self._query_prefix(kind))

    def delete_record(self, kind: str, ident: str = "") -> None:
        self.client.delete_item(TableName=self.table, Key=self.record_key(kind, ident))

    # --- meta and phase ----------------------------------------------------------------------

    def get_meta(self) -> dict[str, Any] | None:
        item = self._get(META)
        if item is None:
            return None
        return json.loads(item["data"]["S"]) | {"phase": item.get("phase", {}).get("S")}

    def put_meta(self, **fields: Any) -> None:
        """Merge `fields` (JSON-serializable) into the meta record.

        The phase is written only when `phase` is one of the fields, and the other attributes of
        the record (the write mode) are kept. The PutItem is conditional on the phase it read, so
        a concurrent `set_phase` is never undone (the merge is then redone).
        """
        phase = fields.pop("phase", None)
        for _attempt in range(10):
            item = self._get(META) or {}
            current = json.loads(item["data"]["S"]) if "data" in item else {}
            current.update(fields)
            new = {
                **item,
                **self._key(META),
                "data": {"S": json.dumps(current, sort_keys=True, default=str)},
                "updated": {"N": str(self.clock.wall())},
            }
            if phase:
                new["phase"] = {"S": phase}
            old_phase = item.get("phase")
            condition: dict[str, Any] = (
                {
                    "ConditionExpression": "phase = :old",
                    "ExpressionAttributeValues": {":old": old_phase},
                }
                if old_phase
                else {"ConditionExpression": "attribute_not_exists(phase)"}
            )
            try:
                self.client.put_item(TableName=self.table, Item=new, **condition)
                return
            except ClientError as exc:
                if error_code(exc) != "ConditionalCheckFailedException":
                    raise
        raise RuntimeFailure(f"migration {self.migration_id}: meta record kept changing")

    def segment_count(
        self, requested: int | None = None, *, meta: Mapping[str, Any] | None = None
    ) -> int | None:
        """The one home of "a resume keeps its segment count": the count this migration was
        started with (recorded in the meta record by the plan step), else `requested`.

        A resumed segment must be the same slice of the scan as the checkpoint it resumes, so a
        `requested` count other than the recorded one is refused: BadInputError naming
        `segments`. `meta`: the meta record when the caller has just read it.
        """
        recorded = (meta if meta is not None else self.get_meta() or {}).get("segments")
        if recorded is None:
            return requested
        if requested is not None and int(recorded) != requested:
            raise BadInputError(
                f"segments: {requested}, but migration {self.migration_id} was started with "
                f"{recorded} segments; resume it with the same count"
            )
        return int(recorded)

    def phase(self) -> str | None:
        item = self._get(META)
        return item.get("phase", {}).get("S") if item else None

    def set_phase(self, phase: str) -> None:
        self.client.update_item(
            TableName=self.table,
            Key=self._key(META),
            UpdateExpression="SET phase = :p, updated = :t",
            ExpressionAttributeValues={":p": {"S": phase}, ":t": {"N": str(self.clock.wall())}},
        )

    def init_phase(self, phase: str, *, overwrite_older: bool = False) -> bool:
        """Set the phase only if none is recorded yet (atomic). True when this call set it.

        Records the write mode with it (`WriteMode`): `overwrite_older` and a fresh marker token.
        Keeps every other meta field; creates the meta record (empty data) if it is missing.
        """
        try:
            self.client.update_item(
                TableName=self.table,
                Key=self._key(META),
                UpdateExpression=(
                    "SET phase = :p, updated = :t, #d = if_not_exists(#d, :empty), "
                    "overwrite_older = :o, marker = :m"
                ),
                ConditionExpression="attribute_not_exists(phase)",
                ExpressionAttributeNames={"#d": "data"},
                ExpressionAttributeValues={
                    ":p": {"S": phase},
                    ":t": {"N": str(self.clock.wall())},
                    ":empty": {"S": "{}"},
                    ":o": {"BOOL": overwrite_older},
                    ":m": {"S": f"{self.migration_id}:{uuid.uuid4().hex}"},
                },
            )
            return True
        except ClientError as exc:
            if error_code(exc) == "ConditionalCheckFailedException":
                return False
            raise

    def write_mode(self) -> WriteMode:
        """Phase and write mode in one strongly consistent read."""
        item = self._get(META) or {}
        return WriteMode(
            phase=item.get("phase", {}).get("S"),
            overwrite_older=bool(item.get("overwrite_older", {}).get("BOOL", False)),
            marker=item.get("marker", {}).get("S"),
        )

    # --- segments ----------------------------------------------------------------------------

    @staticmethod
    def _segment_sk(segment: int) -> str:
        return f"{SEGMENT_PREFIX}{segment:06d}"

    @staticmethod
    def _segment_from(item: Mapping[str, Any]) -> SegmentState:
        counters = {k: int(v["N"]) for k, v in item.get("counters", {}).get("M", {}).items()}
        # The segment number comes from the sort key, the one attribute every version of the
        # record has: an emulator may serve a record that an UpdateItem (`claim_segment`) is still
        # creating with its key alone (moto builds a new item attribute by attribute).
        return SegmentState(
            segment=int(item["sk"]["S"].removeprefix(SEGMENT_PREFIX)),
            cursor=_decode_cursor(item.get("cursor", {}).get("S")),
            done=bool(item.get("done", {}).get("BOOL", False)),
            counters=counters,
            generation=int(item.get("generation", {}).get("N", "0")),
            updated=float(item["updated"]["N"]) if "updated" in item else None,
        )

    def segment(self, segment: int) -> SegmentState:
        item = self._get(self._segment_sk(segment))
        return self._segment_from(item) if item else SegmentState(segment=segment)

    def claim_segment(self, segment: int) -> int:
        """Take the next generation of a segment for one worker invocation; returns it.

        Every later checkpoint of an older generation fails (`save_segment`), so an invocation
        that Step Functions retried while the first one still runs leaves only one writer.
        CheckpointFencedError when the segment is already done.
        """
        try:
            resp = self.client.update_item(
                TableName=self.table,
                Key=self._key(self._segment_sk(segment)),
                UpdateExpression="SET #s = :s, updated = :t ADD #g :one",
                ConditionExpression="attribute_not_exists(#d) OR #d = :f",
                ExpressionAttributeNames={"#s": "segment", "#g": "generation", "#d": "done"},
                ExpressionAttributeValues={
                    ":s": {"N": str(segment)},
                    ":t": {"N": str(self.clock.wall())},
                    ":one": {"N": "1"},
                    ":f": {"BOOL": False},
                },
                ReturnValues="UPDATED_NEW",
            )
        except ClientError as exc:
            if error_code(exc) == "ConditionalCheckFailedException":
                raise CheckpointFencedError(f"segment {segment} is already done") from exc
            raise
        return int(resp["Attributes"]["generation"]["N"])

    def save_segment(self, state: SegmentState) -> None:
        """Commit a segment's checkpoint (call after the page before `cursor` is written).

        Conditional: no newer generation than `state.generation` has claimed the segment, and a
        segment that is done stays done. Else CheckpointFencedError (nothing is written).
        """
        item: dict[str, Any] = {
            **self._key(self._segment_sk(state.segment)),
            "segment": {"N": str(state.segment)},
            "done": {"BOOL": state.done},
            "counters": {"M": {k: {"N": str(v)} for k, v in sorted(state.counters.items())}},
            "generation": {"N": str(state.generation)},
            "updated": {"N": str(self.clock.wall())},
        }
        cursor = _encode_cursor(state.cursor)
        if cursor:
            item["cursor"] = {"S": cursor}
        condition = "(attribute_not_exists(#g) OR #g <= :g)"
        values: dict[str, Any] = {":g": {"N": str(state.generation)}}
        names = {"#g": "generation"}
        if not state.done:
            condition += " AND (attribute_not_exists(#d) OR #d = :f)"
            names["#d"] = "done"
            values[":f"] = {"BOOL": False}
        try:
            self.client.put_item(
                TableName=self.table,
                Item=item,
                ConditionExpression=condition,
                ExpressionAttributeNames=names,
                ExpressionAttributeValues=values,
            )
        except ClientError as exc:
            if error_code(exc) == "ConditionalCheckFailedException":
                raise CheckpointFencedError(
                    f"segment {state.segment}: checkpoint of generation {state.generation} "
                    "refused (a newer invocation claimed the segment, or it is done)"
                ) from exc
            raise

    def segments(self) -> list[SegmentState]:
        return [self._segment_from(i) for i in self._query_prefix(SEGMENT_PREFIX)]

    # --- backfill invocation leases ----------------------------------------------------------

    def take_lease(self, segment: int, until: float) -> str:
        """Record a running backfill invocation of `segment` until `until` (epoch seconds).

        Returns the lease id for `release_lease`. `finish_backfill` waits until no lease is
        active, so a straggling invocation's last writes land before the tombstones go.
        """
        lease_id = uuid.uuid4().hex
        self.client.put_item(
            TableName=self.table,
            Item={
                **self._key(f"{LEASE_PREFIX}{segment:06d}#{lease_id}"),
                "until": {"N": f"{until:.3f}"},
            },
        )
        return lease_id

    def release_lease(self, segment: int, lease_id: str) -> None:
        self.client.delete_item(
            TableName=self.table, Key=self._key(f"{LEASE_PREFIX}{segment:06d}#{lease_id}")
        )

    def active_leases(self, now: float) -> list[tuple[int, float]]:
        """(segment, until) of every lease still running at `now`."""
        out = []
        for item in self._query_prefix(LEASE_PREFIX):
            until = float(item["until"]["N"])
            if until > now:
                out.append((int(item["sk"]["S"][len(LEASE_PREFIX) :].split("#")[0]), until))
        return out

    def acquire_replicator_lease(self, owner: str, until: float, now: float) -> None:
        """Become (or stay) the one replicator applying this migration's stream until `until`.

        LeaseHeldError when another owner's lease is still running at `now`.
        """
        try:
            self.client.put_item(
                TableName=self.table,
                Item={
                    **self._key(REPLICATOR_LEASE),
                    "owner": {"S": owner},
                    "until": {"N": f"{until:.3f}"},
                },
                ConditionExpression="attribute_not_exists(sk) OR #o = :o OR #u < :now",
                ExpressionAttributeNames={"#o": "owner", "#u": "until"},
                ExpressionAttributeValues={
                    ":o": {"S": owner},
                    ":now": {"N": f"{now:.3f}"},
                },
            )
        except ClientError as exc:
            if error_code(exc) == "ConditionalCheckFailedException":
                raise LeaseHeldError(
                    f"migration {self.migration_id}: another replicator is applying the stream "
                    "(its lease in the state store is still running); stop it first"
                ) from exc
            raise

    def release_replicator_lease(self, owner: str) -> None:
        try:
            self.client.delete_item(
                TableName=self.table,
                Key=self._key(REPLICATOR_LEASE),
                ConditionExpression="#o = :o",
                ExpressionAttributeNames={"#o": "owner"},
                ExpressionAttributeValues={":o": {"S": owner}},
            )
        except ClientError as exc:
            if error_code(exc) != "ConditionalCheckFailedException":
                raise

    # --- tombstone registry ------------------------------------------------------------------

    def register_tombstone(self, key: Mapping[str, Any]) -> None:
        """Register a key the replicator writes during the backfill (before it writes it)."""
        self.client.put_item(
            TableName=self.table,
            Item={
                **self._keyed_record(TOMBSTONE_PREFIX, key_id(key)),
                "created": {"N": str(self.clock.wall())},
            },
        )

    def deregister_tombstone(self, key: Mapping[str, Any]) -> None:
        self.client.delete_item(
            TableName=self.table, Key=self.record_key(TOMBSTONE_PREFIX, key_id(key))
        )

    def tombstones(self) -> Iterator[Item]:
        for item in self._query_prefix(TOMBSTONE_PREFIX):
            yield key_from_id(self._ident_of(item, TOMBSTONE_PREFIX))

    # --- stream checkpoints ------------------------------------------------------------------

    def shard_checkpoint(self, shard_id: str) -> str | None:
        item = self._get(SHARD_PREFIX + shard_id)
        return item["sequence"]["S"] if item else None

    def save_shard_checkpoint(self, shard_id: str, sequence_number: str, **extra: Any) -> None:
        item: dict[str, Any] = {
            **self._key(SHARD_PREFIX + shard_id),
            "sequence": {"S": sequence_number},
            "updated": {"N": str(self.clock.wall())},
        }
        if extra:
            item["data"] = {"S": json.dumps(extra, sort_keys=True, default=str)}
        self.client.put_item(TableName=self.table, Item=item)

    def shard_checkpoints(self) -> dict[str, str]:
        return {
            i["sk"]["S"][len(SHARD_PREFIX) :]: i["sequence"]["S"]
            for i in self._query_prefix(SHARD_PREFIX)
        }

    # --- replication progress (see dynashift.replication_progress) ----------------------------

    @staticmethod
    def _progress_sk(prefix: str, stream_arn: str, sequence: str) -> str:
        return f"{prefix}{stream_label(stream_arn)}#{int(sequence):0{SEQUENCE_WIDTH}d}"

    def save_progress(self, applied: ProgressRange) -> bool:
        """Record one applied range of sequence numbers (`first`..`last`, one shard).

        Keyed by its first sequence number; a redelivered batch starting at the same record
        keeps the longest range recorded (a shorter one never replaces it). False when a
        longer range was already recorded.
        """
        last_pad = f"{int(applied.last):0{SEQUENCE_WIDTH}d}"
        data = {
            "stream": applied.stream,
            "count": applied.count,
            "newest_created": applied.newest_created,
            "applied_at": applied.applied_at,
        }
        try:
            self.client.put_item(
                TableName=self.table,
                Item={
                    **self._key(self._progress_sk(PROGRESS_PREFIX, applied.stream, applied.first)),
                    "first": {"S": applied.first},
                    "last": {"S": applied.last},
                    "last_pad": {"S": last_pad},
                    "data": {"S": json.dumps(data, sort_keys=True)},
                    "updated": {"N": str(self.clock.wall())},
                },
                ConditionExpression="attribute_not_exists(sk) OR last_pad <= :lp",
                ExpressionAttributeValues={":lp": {"S": last_pad}},
            )
            return True
        except ClientError as exc:
            if error_code(exc) == "ConditionalCheckFailedException":
                return False
            raise

    @staticmethod
    def _range_from(item: Mapping[str, Any]) -> ProgressRange:
        data = json.loads(item["data"]["S"])
        newest = data.get("newest_created")
        return ProgressRange(
            stream=str(data.get("stream", "")),
            first=item["first"]["S"],
            last=item["last"]["S"],
            count=int(data.get("count", 0)),
            newest_created=None if newest is None else float(newest),
            applied_at=float(data.get("applied_at", 0.0)),
        )

    def progress_ranges(
        self, stream_arn: str, first_from: str | None = None, first_to: str | None = None
    ) -> list[ProgressRange]:
        """The applied ranges recorded for a stream, by first sequence number; only those whose
        first lies in [`first_from`, `first_to`] when given (one key-range Query: the cost
        follows the window, not the stream's history)."""
        if first_from is None and first_to is None:
            items = self._query_prefix(f"{PROGRESS_PREFIX}{stream_label(stream_arn)}#")
        else:
            lo = self._progress_sk(PROGRESS_PREFIX, stream_arn, first_from or "0")
            hi = self._progress_sk(PROGRESS_PREFIX, stream_arn, first_to or "9" * SEQUENCE_WIDTH)
            items = self._query_between(lo, hi)
        ranges = [self._range_from(i) for i in items]
        return [r for r in ranges if r.stream in ("", stream_arn)]

    def has_progress_from(self, stream_arn: str, first: str) -> bool:
        """Whether an applied range starting at `first` is recorded."""
        return self._get(self._progress_sk(PROGRESS_PREFIX, stream_arn, first)) is not None

    def save_progress_failure(self, failure: ProgressFailure) -> None:
        """Record a record the replicator reported failed (the first failed one of a batch);
        `attempts` counts the reports."""
        data = {
            "stream": failure.stream,
            "error": failure.error,
            "reported_failed": failure.reported_failed,
            "at": failure.at,
        }
        self.client.update_item(
            TableName=self.table,
            Key=self._key(
                self._progress_sk(PROGRESS_FAILURE_PREFIX, failure.stream, failure.sequence)
            ),
            UpdateExpression="SET seq = :s, #d = :d, updated = :t ADD attempts :one",
            ExpressionAttributeNames={"#d": "data"},
            ExpressionAttributeValues={
                ":s": {"S": failure.sequence},
                ":d": {"S": json.dumps(data, sort_keys=True)},
                ":t": {"N": str(self.clock.wall())},
                ":one": {"N": "1"},
            },
        )

    def progress_failures(self, stream_arn: str) -> list[ProgressFailure]:
        """Every failed record recorded for a stream, by sequence number."""
        out = []
        for item in self._query_prefix(f"{PROGRESS_FAILURE_PREFIX}{stream_label(stream_arn)}#"):
            data = json.loads(item["data"]["S"])
            out.append(
                ProgressFailure(
                    stream=str(data.get("stream", "")),
                    sequence=item["seq"]["S"],
                    error=str(data.get("error", "")),
                    reported_failed=int(data.get("reported_failed", 0)),
                    at=float(data.get("at", 0.0)),
                    attempts=int(item["attempts"]["N"]),
                )
            )
        return [f for f in out if f.stream in ("", stream_arn)]

    def save_walk(self, shard_id: str, data: Mapping[str, Any]) -> None:
        """The progress checker's position in one shard (JSON)."""
        self.client.put_item(
            TableName=self.table,
            Item={
                **self._key(WALK_PREFIX + shard_id),
                "data": {"S": json.dumps(dict(data), sort_keys=True, default=str)},
                "updated": {"N": str(self.clock.wall())},
            },
        )

    def walks(self) -> dict[str, dict[str, Any]]:
        """Shard id -> the progress checker's saved position."""
        return {
            i["sk"]["S"][len(WALK_PREFIX) :]: json.loads(i["data"]["S"])
            for i in self._query_prefix(WALK_PREFIX)
        }

    # --- report ------------------------------------------------------------------------------

    def save_report(self, report: Mapping[str, Any]) -> None:
        self.client.put_item(
            TableName=self.table,
            Item={
                **self._key(REPORT),
                "data": {"S": json.dumps(report, sort_keys=True, default=str)},
                "updated": {"N": str(self.clock.wall())},
            },
        )

    def report(self) -> dict[str, Any] | None:
        item = self._get(REPORT)
        return json.loads(item["data"]["S"]) if item else None


def state_store(spec: MigrationSpec, clients: Clients = PROCESS_CLIENTS) -> StateStore:
    """The state store of a migration, on the spec's state table."""
    return StateStore(clients(spec.state).dynamodb(), spec.state.name, spec.migration_id)


def existing_state_store(
    spec: MigrationSpec, clients: Clients = PROCESS_CLIENTS
) -> StateStore | None:
    """The spec's state store, or None when its table does not exist (library use, tests)."""
    client = clients(spec.state).dynamodb()
    if not StateStore.table_exists(client, spec.state.name):
        return None
    return StateStore(client, spec.state.name, spec.migration_id)
