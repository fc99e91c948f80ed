"""Invariant I5 on a moto server: tombstones while backfilling, plain deletes after, cleanup."""

from __future__ import annotations

import time
import uuid
from typing import Any

import pytest

from dynashift.errors import NotReadyYet
from dynashift.items import REPLICATED_ATTR, TOMBSTONE_ATTR, is_tombstone
from dynashift.state import PHASE_BACKFILL, PHASE_PLAIN, StateStore
from dynashift.tombstones import (
    apply_delete,
    apply_marked_put,
    finish_backfill,
    remove_tombstone,
    strip_marker,
    tombstone_item,
    wait_for_backfill_workers,
)
from tests.support.clock import ManualClock
from tests.support.reference import scan_all
from tests.support.tables import client, create_table, fill, simple_items


@pytest.fixture
def setup(endpoint: str, table_name: Any) -> tuple[Any, str, StateStore]:
    ddb = client(endpoint)
    target = table_name("tomb")
    create_table(ddb, target)
    fill(ddb, target, simple_items(10))
    state_table = f"state-{uuid.uuid4().hex[:8]}"
    StateStore.ensure_table(ddb, state_table)
    state = StateStore(ddb, state_table, "m1")
    state.put_meta(phase=PHASE_BACKFILL)
    return ddb, target, state


def key(i: int) -> dict[str, Any]:
    return {"pk": {"S": f"k{i:05d}"}}


def get(ddb: Any, table: str, k: dict[str, Any]) -> Any:
    return ddb.get_item(TableName=table, Key=k, ConsistentRead=True).get("Item")


def test_delete_during_backfill_becomes_a_registered_tombstone(setup: Any) -> None:
    ddb, target, state = setup
    assert apply_delete(ddb, target, key(1), state) == "tombstone"
    assert apply_delete(ddb, target, key(99), state) == "tombstone"  # absent: still recorded
    item = get(ddb, target, key(1))
    assert is_tombstone(item) and set(item) == {"pk", TOMBSTONE_ATTR}
    assert sorted(map(repr, state.tombstones())) == sorted(map(repr, [key(1), key(99)]))


def test_plain_delete_after_backfill_or_without_state(setup: Any) -> None:
    ddb, target, state = setup
    assert apply_delete(ddb, target, key(2), None) == "delete"
    state.set_phase(PHASE_PLAIN)
    assert apply_delete(ddb, target, key(3), state) == "delete"
    assert get(ddb, target, key(2)) is None and get(ddb, target, key(3)) is None
    assert list(state.tombstones()) == []


def test_finish_removes_tombstones_but_keeps_recreated_items(setup: Any) -> None:
    ddb, target, state = setup
    for i in (1, 2, 3):
        apply_delete(ddb, target, key(i), state)
    ddb.put_item(TableName=target, Item={**key(2), "s": {"S": "re-created"}})
    result = finish_backfill(ddb, target, state)
    assert (result.registered, result.removed, result.recreated) == (3, 2, 1)
    assert state.phase() == PHASE_PLAIN
    assert list(state.tombstones()) == []
    assert get(ddb, target, key(1)) is None
    assert get(ddb, target, key(2))["s"] == {"S": "re-created"}
    assert not any(is_tombstone(i) for i in scan_all(ddb, target))
    again = finish_backfill(ddb, target, state)  # safe to run again
    assert again.registered == 0
    assert len(scan_all(ddb, target)) == 8


def test_a_tombstone_written_as_backfill_finishes_is_removed_by_its_writer(
    endpoint: str, setup: Any
) -> None:
    """The phase flips between the registration and the tombstone write: the writer sees the
    flip afterwards and removes its own tombstone (the cleanup may have run already)."""
    _, target, state = setup
    racing = client(endpoint)

    def flip(params: dict[str, Any], **_kw: Any) -> None:
        if TOMBSTONE_ATTR in params.get("Item", {}):
            finish_backfill(client(endpoint), target, state)

    racing.meta.events.register("provide-client-params.dynamodb.PutItem", flip)
    assert apply_delete(racing, target, key(4), state) == "delete"
    assert get(racing, target, key(4)) is None
    assert list(state.tombstones()) == []


def test_remove_tombstone_never_deletes_data(setup: Any) -> None:
    ddb, target, _ = setup
    assert remove_tombstone(ddb, target, key(5)) is False
    assert get(ddb, target, key(5)) is not None
    ddb.put_item(TableName=target, Item=tombstone_item(key(6), time.time()))
    assert remove_tombstone(ddb, target, key(6)) is True
    assert get(ddb, target, key(6)) is None


# --- marked replicated puts (non-empty target with a version attribute; issue 13 item 1) ------


def test_a_marked_put_written_as_backfill_finishes_is_unmarked_by_its_writer(
    endpoint: str, setup: Any
) -> None:
    """Like a tombstone: the phase flips between the registration and the marked write; the
    writer sees PLAIN afterwards and strips its own marker, keeping the item."""
    _, target, state = setup
    racing = client(endpoint)
    image = {**key(4), "v": {"N": "9"}, "s": {"S": "replicated"}}

    def flip(params: dict[str, Any], **_kw: Any) -> None:
        if REPLICATED_ATTR in params.get("Item", {}):
            finish_backfill(client(endpoint), target, state)

    racing.meta.events.register("provide-client-params.dynamodb.PutItem", flip)
    assert apply_marked_put(
        racing, target, key(4), image, state=state, marker="m1:tok", condition_kwargs={}
    )
    assert get(racing, target, key(4)) == image  # written, and no marker left
    assert list(state.tombstones()) == []


def test_strip_marker_touches_only_this_migrations_exact_marker(setup: Any) -> None:
    ddb, target, _ = setup
    mine = {**key(1), "s": {"S": "a"}, REPLICATED_ATTR: {"S": "m1:tok:0001"}}
    other = {**key(2), "s": {"S": "b"}, REPLICATED_ATTR: {"S": "m2:tok:0001"}}
    for item in (mine, other):
        ddb.put_item(TableName=target, Item=item)
    assert strip_marker(ddb, target, key(1), "m1:tok") is True
    assert get(ddb, target, key(1)) == {**key(1), "s": {"S": "a"}}
    assert strip_marker(ddb, target, key(2), "m1:tok") is False  # another migration's
    assert get(ddb, target, key(2)) == other
    assert strip_marker(ddb, target, key(3), "m1:tok") is False  # unmarked item
    assert strip_marker(ddb, target, key(99), "m1:tok") is False  # absent


def test_finish_strips_markers_and_removes_tombstones_of_one_registry(setup: Any) -> None:
    ddb, target, state = setup
    store = StateStore(ddb, state.table, f"m-{uuid.uuid4().hex[:6]}")
    assert store.init_phase(PHASE_BACKFILL, overwrite_older=True)
    mode = store.write_mode()
    assert mode.overwrite_older and mode.marker and mode.marker.startswith(store.migration_id)
    image = {**key(7), "v": {"N": "3"}}
    assert apply_marked_put(
        ddb, target, key(7), image, state=store, marker=mode.marker, condition_kwargs={}
    )
    assert get(ddb, target, key(7))[REPLICATED_ATTR]["S"].startswith(mode.marker + ":")
    assert apply_delete(ddb, target, key(8), store) == "tombstone"
    result = finish_backfill(ddb, target, store)
    assert (result.registered, result.removed, result.recreated, result.unmarked) == (2, 1, 1, 1)
    assert get(ddb, target, key(7)) == image and get(ddb, target, key(8)) is None
    assert list(store.tombstones()) == []


def test_the_lease_wait_runs_on_the_clock_it_is_given(setup: Any) -> None:
    """Issue 15 item 4: the wait for backfill leases sleeps on the injected clock.

    A lease held for 20 s more is waited out at once (the manual clock moves when slept on),
    through several sleeps; with a 5 s timeout the same wait gives up naming the segment.
    """
    _, _, state = setup
    start = 1_900_000_000.0
    state.take_lease(3, start + 20)
    clock = ManualClock(wall_start=start)
    wait_for_backfill_workers(state, timeout=60, clock=clock, poll=2.0)
    assert clock.sleeps == [2.0] * 10 and clock.wall() == start + 20
    impatient = ManualClock(wall_start=start)
    with pytest.raises(NotReadyYet, match=r"segment\(s\) \[3\]"):
        wait_for_backfill_workers(state, timeout=5, clock=impatient, poll=2.0)
    assert impatient.sleeps == [2.0] * 3
