"""The apply engine: DynamoDB stream records in, the same changes in the target out.

Input is a batch of records in the shape Lambda delivers for a DynamoDB stream (the local
follower converts botocore records to that shape first), all from one shard, in sequence order.

- INSERT / MODIFY put the raw `NewImage` (wire format; base64 binary is decoded to bytes, nothing
  else is converted). With a version attribute the put is conditional
  (`conditions.replicated_put`): a strictly newer version already in the target wins, and the
  record is counted as `skipped_stale`.
- While the backfill runs on a target that held items before the migration, a versioned put also
  carries this migration's marker (`tombstones.apply_marked_put`), so the backfill never
  replaces it (proof in the `conditions` module docstring).
- An image holding an attribute dynashift reserves (`items.RESERVED_ATTRS`) is refused
  (BadRecordError): it would be taken for a tombstone or a marker.
- REMOVE goes through `tombstones.apply_delete`: a tombstone while the backfill runs (I5), a
  plain delete afterwards.
- A REMOVE made by DynamoDB's TTL (`userIdentity` Service / `dynamodb.amazonaws.com`) is
  skipped when `skip_ttl_deletes` is on (the target expires the item with its own TTL).

Order and failure (invariant I3). Records are applied one after another in batch order. The
first record that cannot be applied stops the batch: `failed_index` is its position and no
record after it is written, so a retry from that record (Lambda's ReportBatchItemFailures, the
follower) replays the rest in order. Re-applying records is harmless: puts write whole images,
deletes of absent items are no-ops, and versioned puts never move an item backwards.

Coalescing. A record is *superseded* — not written — when a later record of the same key in the
same batch has an unconditional effect: a REMOVE, or a put without a version condition. After
such a write the item's state does not depend on anything before it, so skipping the earlier
writes is provably equivalent. A conditional (versioned) put never supersedes anything. If the
batch fails at `failed_index`, a superseded record before it is covered by its superseding
record, which lies at or after `failed_index` and is therefore delivered again: per key, the
target always holds a prefix of the key's history, never an out-of-order state.

Progress. With a state store, every `apply` records the applied prefix of its batch (and the
first failed record) through `replication_progress.record_batch`, so lag and drain are read
from what the replicator did, in AWS and locally alike.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from botocore.exceptions import BotoCoreError, ClientError
from pydantic import BaseModel

from dynashift.aws import error_code
from dynashift.clock import SYSTEM_CLOCK, Clock
from dynashift.conditions import replicated_put
from dynashift.errors import DynashiftError, RuntimeFailure, StreamUnavailableError
from dynashift.items import RESERVED_ATTRS, Item, from_event_json, key_id
from dynashift.models import PROCESS_CLIENTS, Clients, MigrationSpec, TableLocation
from dynashift.replication_progress import approximate_creation, record_batch
from dynashift.state import PHASE_PLAIN, TOMBSTONE_PHASES, StateStore, WriteMode
from dynashift.tombstones import apply_delete, apply_marked_put

log = logging.getLogger(__name__)

TTL_PRINCIPAL = "dynamodb.amazonaws.com"

OpKind = Literal["put", "remove"]


class BadRecordError(DynashiftError):
    """A stream record that cannot be applied (no NewImage, unknown event, no key)."""


class RecordNotAppliedError(RuntimeFailure):
    """A record was not applied: it failed, or an earlier record of its batch failed."""


class ApplyResult(BaseModel):
    """What one `Replicator.apply` call did. All counts cover records before `failed_index`."""

    #: Records handled: written, skipped (TTL, stale) or superseded by a later record.
    applied: int = 0
    puts: int = 0
    deletes: int = 0
    tombstones: int = 0
    skipped_ttl: int = 0
    #: Versioned puts refused because the target already holds a newer version.
    skipped_stale: int = 0
    #: Records not written because a later record of the same key in the batch supersedes them.
    coalesced: int = 0
    #: The first record that failed; every record before it is handled, nothing after it is.
    failed_index: int | None = None
    #: Why it failed (error code and message; never item contents).
    error: str | None = None
    #: ApproximateCreationDateTime (epoch seconds) of the newest handled record.
    newest_approximate_creation: float | None = None
    #: SequenceNumber of the last handled record (a safe checkpoint).
    last_sequence_number: str | None = None

    @property
    def ok(self) -> bool:
        return self.failed_index is None

    def add(self, other: ApplyResult) -> None:
        """Accumulate counters of another result (for totals across batches)."""
        for name in ("applied", "puts", "deletes", "tombstones", "skipped_ttl", "skipped_stale"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.coalesced += other.coalesced
        if other.newest_approximate_creation is not None:
            self.newest_approximate_creation = max(
                self.newest_approximate_creation or 0.0, other.newest_approximate_creation
            )


@dataclass
class _Op:
    index: int
    kind: OpKind
    key: Item
    key_id: str
    image: Item | None
    sequence: str | None
    approx: float | None
    ttl: bool


def is_ttl_delete(record: Mapping[str, Any]) -> bool:
    """A REMOVE made by DynamoDB's Time to Live (userIdentity Service/dynamodb.amazonaws.com)."""
    identity = record.get("userIdentity") or {}
    kind = identity.get("type", identity.get("Type"))
    principal = identity.get("principalId", identity.get("PrincipalId"))
    return record.get("eventName") == "REMOVE" and kind == "Service" and principal == TTL_PRINCIPAL


class Replicator:
    """Applies stream record batches to one target table (see module docstring).

    `state` None means no backfill is tracked: deletes are always plain deletes.
    `clients` gives the target side's client factory (by default the process-wide one,
    refreshing assume-role credentials for a target in another account).
    """

    def __init__(
        self,
        target: TableLocation,
        key_names: Sequence[str],
        *,
        state: StateStore | None,
        version_attribute: str | None = None,
        skip_ttl_deletes: bool = False,
        clients: Clients = PROCESS_CLIENTS,
        parallelism: int = 4,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        if not key_names:
            raise ValueError("key_names must name the partition key (and sort key)")
        self.target = target
        self.key_names = tuple(key_names)
        self.state = state
        self.version_attribute = version_attribute
        self.skip_ttl_deletes = skip_ttl_deletes
        self.client = clients(target, parallelism).dynamodb()
        self.clock = clock
        self._mode: WriteMode | None = None
        self._mode_fresh = False

    @classmethod
    def for_spec(
        cls,
        spec: MigrationSpec,
        key_names: Sequence[str],
        state: StateStore | None,
        *,
        clients: Clients = PROCESS_CLIENTS,
    ) -> Replicator:
        """The replicator of a migration: its target, version attribute and TTL option."""
        return cls(
            spec.target,
            key_names,
            state=state,
            version_attribute=spec.version_attribute,
            skip_ttl_deletes=spec.skip_ttl_deletes,
            clients=clients,
        )

    # --- parsing -----------------------------------------------------------------------------

    def _parse(self, index: int, record: Mapping[str, Any]) -> _Op:
        body = record.get("dynamodb") or {}
        name = record.get("eventName")
        seq = body.get("SequenceNumber")
        where = f"record {index} (sequence {seq})"
        image: Item | None = None
        if name in ("INSERT", "MODIFY"):
            if "NewImage" not in body:
                raise StreamUnavailableError(
                    f"{where}: {name} without NewImage; the stream must be NEW_IMAGE or "
                    "NEW_AND_OLD_IMAGES"
                )
            image = from_event_json(body["NewImage"])
            reserved = sorted(RESERVED_ATTRS.intersection(image))
            if reserved:
                raise BadRecordError(
                    f"{where}: the source item has attribute {reserved[0]!r}, a name dynashift "
                    "reserves for its own markers; rename it in the source"
                )
            kind: OpKind = "put"
        elif name == "REMOVE":
            kind = "remove"
        else:
            raise BadRecordError(f"{where}: unknown eventName {name!r}")
        # The key from the image when there is one (moto 5.2 double-encodes binary values in
        # `Keys`; the images are right), else from `Keys` (KEYS_ONLY / NEW_IMAGE REMOVEs).
        source = image or body.get("OldImage") or body.get("Keys") or {}
        missing = [k for k in self.key_names if k not in source]
        if missing:
            raise BadRecordError(f"{where}: key attribute(s) {', '.join(missing)} missing")
        key = from_event_json({k: source[k] for k in self.key_names})
        return _Op(
            index=index,
            kind=kind,
            key=key,
            key_id=key_id(key),
            image=image,
            sequence=seq,
            approx=approximate_creation(body.get("ApproximateCreationDateTime")),
            ttl=kind == "remove" and is_ttl_delete(record),
        )

    def _unconditional(self, op: _Op) -> bool:
        if op.kind == "remove":
            return True
        assert op.image is not None
        return replicated_put(self.key_names[0], op.image, self.version_attribute) is None

    def _superseded(self, ops: Sequence[_Op]) -> set[int]:
        """Indexes of ops made redundant by a later unconditional write of the same key."""
        covered: set[str] = set()
        superseded: set[int] = set()
        for op in reversed(ops):
            if self.skip_ttl_deletes and op.ttl:
                continue  # a skipped record has no effect: it supersedes nothing
            if op.key_id in covered:
                superseded.add(op.index)
            elif self._unconditional(op):
                covered.add(op.key_id)
        return superseded

    # --- applying ----------------------------------------------------------------------------

    def _write_mode(self) -> WriteMode:
        """The migration's write mode, read at most once per batch; PLAIN and an empty-target
        mode are final, so they are not read again."""
        assert self.state is not None
        final = self._mode is not None and (
            self._mode.phase == PHASE_PLAIN
            or (self._mode.phase is not None and not self._mode.overwrite_older)
        )
        if not final and not self._mode_fresh:
            self._mode = self.state.write_mode()
            self._mode_fresh = True
        assert self._mode is not None
        return self._mode

    def _put(self, op: _Op) -> bool:
        """True when written, False when refused as stale (a newer version is in the target)."""
        assert op.image is not None
        condition = replicated_put(self.key_names[0], op.image, self.version_attribute)
        kwargs = condition.kwargs() if condition else {}
        if condition is not None and self.state is not None:
            mode = self._write_mode()
            if mode.overwrite_older and mode.phase in TOMBSTONE_PHASES and mode.marker:
                return apply_marked_put(
                    self.client,
                    self.target.name,
                    op.key,
                    op.image,
                    state=self.state,
                    marker=mode.marker,
                    condition_kwargs=kwargs,
                )
        try:
            self.client.put_item(TableName=self.target.name, Item=op.image, **kwargs)
            return True
        except ClientError as exc:
            if condition is not None and error_code(exc) == "ConditionalCheckFailedException":
                return False
            raise

    def _remove(self, op: _Op, plain: list[bool]) -> str:
        if plain[0] or self.state is None:
            return apply_delete(self.client, self.target.name, op.key, None)
        outcome = apply_delete(self.client, self.target.name, op.key, self.state)
        if outcome == "delete" and self.state.phase() == PHASE_PLAIN:
            plain[0] = True  # PLAIN is final: no tombstones for the rest of this batch
        return outcome

    def apply(self, records: Sequence[Mapping[str, Any]]) -> ApplyResult:
        """Apply one batch in order; stop at the first record that fails (see module doc)."""
        result = ApplyResult()
        ops: list[_Op] = []
        stop_at: int | None = None
        for index, record in enumerate(records):
            try:
                ops.append(self._parse(index, record))
            except DynashiftError as exc:
                stop_at, result.error = index, f"{type(exc).__name__}: {exc}"
                break
        superseded = self._superseded(ops)
        plain = [False]
        self._mode_fresh = False
        for op in ops:
            try:
                if op.index in superseded:
                    result.coalesced += 1
                elif op.kind == "put":
                    if self._put(op):
                        result.puts += 1
                    else:
                        result.skipped_stale += 1
                elif self.skip_ttl_deletes and op.ttl:
                    result.skipped_ttl += 1
                elif self._remove(op, plain) == "tombstone":
                    result.tombstones += 1
                else:
                    result.deletes += 1
            except (ClientError, BotoCoreError, DynashiftError) as exc:
                code = error_code(exc) or type(exc).__name__
                log.warning(
                    "record %d (sequence %s, key %s) failed: %s",
                    op.index,
                    op.sequence,
                    op.key_id,
                    code,
                )
                stop_at, result.error = op.index, f"{code}: {exc}"
                break
            result.applied += 1
            result.last_sequence_number = op.sequence
            if op.approx is not None:
                result.newest_approximate_creation = max(
                    result.newest_approximate_creation or 0.0, op.approx
                )
        result.failed_index = stop_at
        if self.state is not None:
            # Progress is recorded wherever this engine runs (Lambda or local): lag, catch-up
            # and drain are read from these records (dynashift.replication_progress).
            record_batch(
                self.state,
                records,
                result.applied,
                result.failed_index,
                result.error,
                clock=self.clock,
            )
        return result

    def age_seconds(self, result: ApplyResult) -> float | None:
        """Age of the newest record a result applied, by this replicator's clock."""
        if result.newest_approximate_creation is None:
            return None
        return max(0.0, self.clock.wall() - result.newest_approximate_creation)
