"""Invariant I5 in one place: a delete during backfill is never resurrected.

While the migration is in phase BACKFILL, the replicator turns a source REMOVE into a
tombstone in the target: an item holding only the key and `TOMBSTONE_ATTR`. The backfill's
conditional put (`conditions.backfill_put`) refuses to overwrite it, so a stale scan page cannot
bring the item back. A later INSERT of the same key overwrites the tombstone normally.

Every tombstone is registered in the state store *before* it is written. `finish_backfill`
flips the phase to PLAIN, then removes every registered tombstone that is still a tombstone.
A replicator that decided "tombstone" just before the flip re-reads the phase after writing it
and, seeing PLAIN, removes its own tombstone: either the cleanup sees the registration or the
writer sees the flip, so no tombstone outlives the backfill.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError

from dynashift.aws import error_code
from dynashift.conditions import still_tombstone
from dynashift.items import TOMBSTONE_ATTR, Item
from dynashift.state import PHASE_BACKFILL, PHASE_PLAIN, StateStore


def tombstone_item(key: Mapping[str, Any], now: float | None = None) -> Item:
    return {**key, TOMBSTONE_ATTR: {"N": f"{now if now is not None else time.time():.6f}"}}


def deletes_become_tombstones(state: StateStore) -> bool:
    """True while the backfill runs (strongly consistent read of the phase)."""
    return state.phase() == PHASE_BACKFILL


def remove_tombstone(target_client: Any, table: str, key: Mapping[str, Any]) -> bool:
    """Delete `key` from the target only if it is still a tombstone. True when removed."""
    try:
        target_client.delete_item(TableName=table, Key=dict(key), **still_tombstone().kwargs())
        return True
    except ClientError as exc:
        if error_code(exc) == "ConditionalCheckFailedException":
            return False
        raise


def apply_delete(
    target_client: Any, table: str, key: Mapping[str, Any], state: StateStore | None
) -> str:
    """Apply a source delete to the target. Returns "tombstone" or "delete".

    `state` None means no backfill is tracked (plain deletes).
    """
    if state is not None and deletes_become_tombstones(state):
        state.register_tombstone(key)
        target_client.put_item(TableName=table, Item=tombstone_item(key))
        if not deletes_become_tombstones(state):
            # The backfill finished while we wrote: the cleanup may have missed us.
            remove_tombstone(target_client, table, key)
            state.deregister_tombstone(key)
            return "delete"
        return "tombstone"
    target_client.delete_item(TableName=table, Key=dict(key))
    return "delete"


@dataclass
class CleanupResult:
    registered: int = 0
    removed: int = 0
    #: Registered keys that were no longer tombstones (re-created since): left in place.
    recreated: int = 0
    #: False when the budget ran out first: call again (removed keys are deregistered).
    done: bool = True


def finish_backfill(
    target_client: Any,
    table: str,
    state: StateStore,
    *,
    budget_seconds: float | None = None,
    clock: Any = time.monotonic,
) -> CleanupResult:
    """Flip to plain deletes, then remove every registered tombstone. Safe to run again.

    With `budget_seconds` it stops once the budget is spent (`done` False), after one
    tombstone at least; the next call goes on with the tombstones still registered.
    """
    state.set_phase(PHASE_PLAIN)
    result = CleanupResult()
    deadline = None if budget_seconds is None else clock() + budget_seconds
    for key in state.tombstones():
        if deadline is not None and result.registered and clock() >= deadline:
            result.done = False
            break
        result.registered += 1
        if remove_tombstone(target_client, table, key):
            result.removed += 1
        else:
            result.recreated += 1
        state.deregister_tombstone(key)
    return result
