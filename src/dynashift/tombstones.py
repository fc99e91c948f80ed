"""Invariant I5 in one place: a delete during backfill is never resurrected.

While the migration is in phase BACKFILL (or FINISHING), the replicator turns a source REMOVE into a
tombstone in the target: an item holding only the key and `TOMBSTONE_ATTR`. The backfill's
conditional put (`conditions.backfill_put`) refuses to overwrite it, so a stale scan page cannot
bring the item back. A later INSERT of the same key overwrites the tombstone normally.

Every tombstone is registered in the state store *before* it is written. `finish_backfill`
flips the phase to PLAIN (through FINISHING, below), then removes every registered tombstone
that is still a tombstone.
A replicator that decided "tombstone" just before the flip re-reads the phase after writing it
and, seeing PLAIN, removes its own tombstone: either the cleanup sees the registration or the
writer sees the flip, so no tombstone outlives the backfill.

With a non-empty target and a version attribute, versioned replicated puts made during the
backfill carry `REPLICATED_ATTR` (`apply_marked_put`, proof in the `conditions` docstring). They
are registered like tombstones and cleaned by the same loop: a registered key that is no longer
a tombstone has its marker stripped, conditionally on the exact marker value it carries (each
marked put writes `<migration token>:<unique>`).

Stragglers (issue 13 item 2): `finish_backfill` sets phase FINISHING first — backfill workers
re-read the phase before every page and stop; the replicator still writes tombstones — then
waits until no backfill invocation holds a lease, and only then sets PLAIN and removes the
tombstones: no backfill put can land after a plain delete or the cleanup.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError

from dynashift.aws import error_code
from dynashift.clock import SYSTEM_CLOCK, Clock
from dynashift.conditions import still_marked, still_tombstone
from dynashift.errors import NotReadyYet
from dynashift.items import REPLICATED_ATTR, TOMBSTONE_ATTR, Item
from dynashift.state import PHASE_FINISHING, PHASE_PLAIN, TOMBSTONE_PHASES, StateStore


def tombstone_item(key: Mapping[str, Any], now: float) -> Item:
    """The tombstone of `key`, marked with the wall time `now` (epoch seconds)."""
    return {**key, TOMBSTONE_ATTR: {"N": f"{now:.6f}"}}


def deletes_become_tombstones(state: StateStore) -> bool:
    """True until the backfill is finished (strongly consistent read of the phase)."""
    return state.phase() in TOMBSTONE_PHASES


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
        target_client.put_item(TableName=table, Item=tombstone_item(key, state.clock.wall()))
        if not deletes_become_tombstones(state):
            # The backfill finished while we wrote: the cleanup may have missed us.
            remove_tombstone(target_client, table, key)
            state.deregister_tombstone(key)
            return "delete"
        return "tombstone"
    target_client.delete_item(TableName=table, Key=dict(key))
    return "delete"


def apply_marked_put(
    target_client: Any,
    table: str,
    key: Mapping[str, Any],
    image: Mapping[str, Any],
    *,
    state: StateStore,
    marker: str,
    condition_kwargs: Mapping[str, Any],
) -> bool:
    """A versioned replicated put during the backfill of a non-empty target: register the key,
    write the image with this migration's marker, and strip the marker again if the backfill
    finished meanwhile (the cleanup may have missed it). True when written, False when the
    condition refused it; other errors propagate."""
    state.register_tombstone(key)
    try:
        target_client.put_item(
            TableName=table,
            Item={**image, REPLICATED_ATTR: {"S": f"{marker}:{uuid.uuid4().hex}"}},
            **condition_kwargs,
        )
    except ClientError as exc:
        if error_code(exc) == "ConditionalCheckFailedException":
            return False
        raise
    if not deletes_become_tombstones(state):
        strip_marker(target_client, table, key, marker)
        state.deregister_tombstone(key)
    return True


def strip_marker(target_client: Any, table: str, key: Mapping[str, Any], marker: str) -> bool:
    """Remove this migration's marker from `key`'s item, if it still carries it. True if so.

    A consistent GetItem, then a PutItem of the item without the marker, conditional on the
    marker holding exactly the value read. Every marked put writes a value of its own
    (`marker:<unique>`), so any write in between — marked or not — makes the condition fail and
    wins. PutItem, not UpdateItem: the functions that write the target are allowed PutItem and
    DeleteItem only. A marker of another migration or a user's value is never touched.
    """
    item = target_client.get_item(TableName=table, Key=dict(key), ConsistentRead=True).get("Item")
    held = (item or {}).get(REPLICATED_ATTR, {}).get("S")
    if not isinstance(held, str) or not held.startswith(marker + ":"):
        return False
    assert item is not None
    clean = {name: value for name, value in item.items() if name != REPLICATED_ATTR}
    try:
        target_client.put_item(TableName=table, Item=clean, **still_marked(held).kwargs())
        return True
    except ClientError as exc:
        if error_code(exc) == "ConditionalCheckFailedException":
            return False
        raise


def wait_for_backfill_workers(
    state: StateStore,
    timeout: float,
    *,
    clock: Clock = SYSTEM_CLOCK,
    poll: float = 0.5,
) -> None:
    """Wait until no backfill invocation holds a lease (call in phase FINISHING).

    NotReadyYet (retried by the state machine) when one still does after `timeout` seconds: a
    lease lasts at most one worker budget, and its holder stops at its next page anyway.
    Leases and the timeout are read on `clock`'s wall time.
    """
    deadline = clock.wall() + timeout
    while True:
        active = state.active_leases(clock.wall())
        if not active:
            return
        if clock.wall() >= deadline:
            segments = sorted({segment for segment, _until in active})
            raise NotReadyYet(
                f"backfill invocation(s) of segment(s) {segments} still running "
                f"(leases until {max(until for _s, until in active):.0f}); tombstones are "
                "removed once they stop"
            )
        clock.sleep(poll)


@dataclass
class CleanupResult:
    registered: int = 0
    removed: int = 0
    #: Registered keys that were no longer tombstones (re-created since): left in place.
    recreated: int = 0
    #: Of those, items whose replicated-put marker was stripped.
    unmarked: int = 0
    #: False when the budget ran out first: call again (cleaned keys are deregistered).
    done: bool = True


def clean_key(
    target_client: Any,
    table: str,
    key: Mapping[str, Any],
    marker: str | None,
    result: CleanupResult,
) -> None:
    """Cleanup of one registered key: remove its tombstone, or strip its marker."""
    result.registered += 1
    if remove_tombstone(target_client, table, key):
        result.removed += 1
        return
    result.recreated += 1
    if marker is not None and strip_marker(target_client, table, key, marker):
        result.unmarked += 1


def finish_backfill(
    target_client: Any,
    table: str,
    state: StateStore,
    *,
    budget_seconds: float | None = None,
    lease_wait_seconds: float = 30.0,
    clock: Clock = SYSTEM_CLOCK,
) -> CleanupResult:
    """Flip to plain deletes, wait out running backfill invocations, then remove every
    registered tombstone and marker. Safe to run again.

    With `budget_seconds` it stops once the budget is spent (`done` False), after one key at
    least; the next call goes on with the keys still registered (each cleaned key is
    deregistered, so the registry is the cursor).
    """
    if state.phase() != PHASE_PLAIN:
        # Workers stop at their next page; a straggler may still write until its lease ends,
        # so deletes stay tombstones until then (a plain delete could be resurrected).
        state.set_phase(PHASE_FINISHING)
        wait_for_backfill_workers(state, lease_wait_seconds, clock=clock)
        state.set_phase(PHASE_PLAIN)
    mode = state.write_mode()
    marker = mode.marker if mode.overwrite_older else None
    result = CleanupResult()
    deadline = None if budget_seconds is None else clock.wall() + budget_seconds
    for key in state.tombstones():
        if deadline is not None and result.registered and clock.wall() >= deadline:
            result.done = False
            break
        clean_key(target_client, table, key, marker, result)
        state.deregister_tombstone(key)
    return result
