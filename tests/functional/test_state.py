"""The state store on a moto server: checkpoints, phase, tombstone registry, shards, report."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from dynashift.state import PHASE_BACKFILL, PHASE_PLAIN, SegmentState, StateStore
from tests.functional.backfill_support import client


@pytest.fixture(scope="module")
def table(endpoint: str) -> str:
    name = f"state-{uuid.uuid4().hex[:10]}"
    assert StateStore.ensure_table(client(endpoint), name) is True
    return name


def store(endpoint: str, table: str) -> StateStore:
    return StateStore(client(endpoint), table, f"m-{uuid.uuid4().hex[:8]}")


def test_ensure_table_is_idempotent(endpoint: str, table: str) -> None:
    ddb = client(endpoint)
    assert StateStore.ensure_table(ddb, table) is False
    assert StateStore.table_exists(ddb, table)
    assert not StateStore.table_exists(ddb, f"missing-{uuid.uuid4().hex[:6]}")


def test_meta_merges_and_phase_is_read_back(endpoint: str, table: str) -> None:
    s = store(endpoint, table)
    assert s.get_meta() is None and s.phase() is None
    s.put_meta(source="a", target="b")
    s.put_meta(phase=PHASE_BACKFILL, target="c", started=1.5)
    meta = s.get_meta()
    assert meta == {"source": "a", "target": "c", "started": 1.5, "phase": PHASE_BACKFILL}
    s.set_phase(PHASE_PLAIN)
    assert s.phase() == PHASE_PLAIN
    s.put_meta(note="x")  # keeps the phase
    assert s.phase() == PHASE_PLAIN and s.get_meta()["target"] == "c"  # type: ignore[index]


def test_segment_checkpoints_round_trip_binary_cursors(endpoint: str, table: str) -> None:
    s = store(endpoint, table)
    assert s.segment(3) == SegmentState(segment=3)
    cursor = {"pk": {"B": b"\x00\xffkey"}, "sk": {"N": "12.5"}}
    s.save_segment(SegmentState(3, cursor, False, {"scanned": 10, "written": 9}))
    s.save_segment(SegmentState(1, None, True, {"scanned": 4}))
    got = s.segment(3)
    assert got.cursor == cursor and not got.done
    assert got.counters == {"scanned": 10, "written": 9}
    assert [x.segment for x in s.segments()] == [1, 3]
    s.save_segment(SegmentState(3, None, True, {"scanned": 11}))
    assert s.segment(3).done and s.segment(3).cursor is None


def test_tombstone_registry(endpoint: str, table: str) -> None:
    s = store(endpoint, table)
    keys = [{"pk": {"S": "a"}}, {"pk": {"B": b"\x01\x02"}}, {"pk": {"N": "7"}}]
    for k in keys:
        s.register_tombstone(k)
    s.register_tombstone(keys[0])  # twice: one entry
    assert sorted(map(repr, s.tombstones())) == sorted(map(repr, keys))
    s.deregister_tombstone(keys[1])
    assert len(list(s.tombstones())) == 2


def test_shard_checkpoints_report_and_isolation(endpoint: str, table: str) -> None:
    a, b = store(endpoint, table), store(endpoint, table)
    assert a.shard_checkpoint("shard-1") is None
    a.save_shard_checkpoint("shard-1", "100", records=3)
    a.save_shard_checkpoint("shard-2", "200")
    a.save_shard_checkpoint("shard-1", "150")
    assert a.shard_checkpoints() == {"shard-1": "150", "shard-2": "200"}
    a.save_report({"verdict": "READY", "n": 1})
    assert a.report() == {"verdict": "READY", "n": 1}
    # another migration in the same table sees none of it
    assert b.shard_checkpoints() == {} and b.report() is None and b.segments() == []
    many = [SegmentState(i, None, True, {"written": i}) for i in range(30)]
    for seg in many:
        b.save_segment(seg)
    assert [x.segment for x in b.segments()] == list(range(30))
    assert a.segments() == []


def test_counters_are_numbers_in_the_table(endpoint: str, table: str) -> None:
    s = store(endpoint, table)
    s.save_segment(SegmentState(0, None, False, {"written": 5}))
    raw: Any = client(endpoint).get_item(
        TableName=table, Key={"migration_id": {"S": s.migration_id}, "sk": {"S": "segment#000000"}}
    )["Item"]
    assert raw["counters"]["M"]["written"] == {"N": "5"}


def test_init_phase_sets_only_once_and_keeps_meta(endpoint: str, table: str) -> None:
    s = store(endpoint, table)
    assert s.init_phase(PHASE_BACKFILL) is True
    assert s.get_meta() == {"phase": PHASE_BACKFILL}
    s.put_meta(segments=4)
    s.set_phase(PHASE_PLAIN)
    assert s.init_phase(PHASE_BACKFILL) is False
    assert s.get_meta() == {"segments": 4, "phase": PHASE_PLAIN}
