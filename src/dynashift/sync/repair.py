"""Conditional repairs: the one place a repair write is made (sync's --write-missing /
--write-differing / --delete-extra, the migration's recheck).

`repair_keys` re-reads the master consistently and makes each PutItem / DeleteItem conditional
on the slave item being as it was read; a failed condition is counted as "skipped: changed
since read", not an error.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from botocore.exceptions import ClientError

from dynashift.aws import error_code
from dynashift.conditions import unchanged_since_read
from dynashift.items import Item, differing_attributes, is_tombstone, key_id, key_of
from dynashift.retry import Backoff, call_with_retry
from dynashift.sync.diff import ItemDiffer, lookup_keys
from dynashift.tables import BATCH_GET_MAX, BatchStats

log = logging.getLogger("dynashift.sync")


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
            key_id(key),
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
