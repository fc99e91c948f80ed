"""The state store on a moto server: checkpoints, phase, tombstone registry, shards, report."""

from __future__ import annotations

import time
import uuid
from typing import Any

import pytest

from dynashift.errors import RuntimeFailure
from dynashift.state import (
    PHASE_BACKFILL,
    PHASE_PLAIN,
    SORT_KEY_INLINE_MAX,
    CheckpointFencedError,
    LeaseHeldError,
    SegmentState,
    StateStore,
    record_sort_key,
)
from tests.support.clock import ManualClock
from tests.support.limits import enforce_key_limits
from tests.support.tables import client


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


# --- issue 13 item 3: every record fits DynamoDB's key limits, whatever the migrated key ------

LONG_KEYS = [
    {"pk": {"S": "x" * 1100}},  # a 1,100-byte key
    {"pk": {"S": "é" * 200}},  # 400 bytes, 1,200 once JSON escapes it
    {"pk": {"S": "p" * 2048}, "sk": {"S": "s" * 1024}},  # the largest composite key
    {"pk": {"B": bytes(range(256)) * 8}},  # 2,048 bytes of binary (2,732 in base64)
    {"pk": {"S": "é" * 1024}, "sk": {"B": b"\xff" * 1024}},
    {"pk": {"N": "-1.2345678901234567890123456789012345678E+125"}, "sk": {"S": "ü" * 512}},
]


def test_tombstone_registry_fits_any_key(endpoint: str, table: str) -> None:
    ddb = client(endpoint)
    seen = enforce_key_limits(ddb)
    s = StateStore(ddb, table, f"m-{uuid.uuid4().hex[:8]}")
    short = {"pk": {"S": "a"}}
    for key in [*LONG_KEYS, short]:
        s.register_tombstone(key)
    s.register_tombstone(LONG_KEYS[2])  # twice: still one entry
    assert sorted(map(repr, s.tombstones())) == sorted(map(repr, [*LONG_KEYS, short]))
    assert seen and max(seen) <= 1024
    # a short key stays readable inline; a long one is a digest (with the full key stored)
    sks = {
        i["sk"]["S"]
        for i in ddb.query(
            TableName=table,
            KeyConditionExpression="migration_id = :m",
            ExpressionAttributeValues={":m": {"S": s.migration_id}},
        )["Items"]
    }
    assert 'tombstone#{"pk":{"S":"a"}}' in sks
    assert sum(sk.startswith("tombstone#sha256:") for sk in sks) == len(LONG_KEYS)
    for key in LONG_KEYS:
        s.deregister_tombstone(key)
    assert list(s.tombstones()) == [short]


def test_record_sort_key_is_inline_up_to_the_limit_then_a_digest() -> None:
    fits = "x" * (SORT_KEY_INLINE_MAX - len("tombstone#"))
    assert record_sort_key("tombstone#", fits) == ("tombstone#" + fits, None)
    sk, full = record_sort_key("tombstone#", fits + "x")
    assert full == fits + "x" and sk.startswith("tombstone#sha256:") and len(sk) < 100
    assert record_sort_key("tombstone#", "é" * 600)[1] == "é" * 600  # bytes, not characters


# --- issue 13 item 2: checkpoints only move forward ----------------------------------------


def test_an_older_generation_cannot_overwrite_a_checkpoint(endpoint: str, table: str) -> None:
    s = store(endpoint, table)
    first = s.claim_segment(2)
    second = s.claim_segment(2)  # Step Functions retried the invocation
    assert second == first + 1
    s.save_segment(SegmentState(2, {"pk": {"S": "k9"}}, False, {"pages": 3}, second))
    with pytest.raises(CheckpointFencedError):
        s.save_segment(SegmentState(2, {"pk": {"S": "k1"}}, False, {"pages": 1}, first))
    assert s.segment(2).cursor == {"pk": {"S": "k9"}} and s.segment(2).generation == second
    s.save_segment(SegmentState(2, None, True, {"pages": 4}, second))
    with pytest.raises(CheckpointFencedError):  # done stays done, even for its own generation
        s.save_segment(SegmentState(2, {"pk": {"S": "k9"}}, False, {"pages": 5}, second))
    with pytest.raises(CheckpointFencedError):
        s.claim_segment(2)
    assert s.segment(2).done and s.segment(2).counters == {"pages": 4}


def test_leases_are_listed_until_released_or_expired(endpoint: str, table: str) -> None:
    s, other = store(endpoint, table), store(endpoint, table)
    now = time.time()
    lease = s.take_lease(1, now + 60)
    s.take_lease(3, now - 1)  # expired: a crashed invocation
    assert s.active_leases(now) == [(1, pytest.approx(now + 60, abs=0.01))]
    assert other.active_leases(now) == []
    s.release_lease(1, lease)
    assert s.active_leases(now) == []


def test_one_replicator_lease_at_a_time(endpoint: str, table: str) -> None:
    s = store(endpoint, table)
    s.acquire_replicator_lease("a", until=1000.0, now=900.0)
    s.acquire_replicator_lease("a", until=1100.0, now=950.0)  # renewal
    with pytest.raises(LeaseHeldError, match="another replicator"):
        s.acquire_replicator_lease("b", until=1200.0, now=1000.0)
    s.acquire_replicator_lease("b", until=1300.0, now=1101.0)  # a's lease expired
    s.release_replicator_lease("a")  # not a's any more: no effect
    with pytest.raises(LeaseHeldError):
        s.acquire_replicator_lease("a", until=1300.0, now=1200.0)
    s.release_replicator_lease("b")
    s.acquire_replicator_lease("a", until=1300.0, now=1200.0)


def test_a_resume_keeps_its_segment_count_at_every_entry(ddb: Any, endpoint: str) -> None:
    """ "A resume keeps its segment count" has one home (`StateStore.segment_count`): the plan
    step records the count, and the plan step, Validate and the CLI's count all refuse another
    count for the same migration (BadInputError naming `segments`) or reuse the recorded one."""
    from dynashift.errors import BadInputError
    from dynashift.target import TargetOptions
    from dynashift.workflow.migrate import plan_local_run
    from dynashift.workflow.steps import StepEvent, ValidateEvent, plan_segments, validate
    from tests.support.tables import create_table, fill, varied_items
    from tests.support.workflow import workflow_input

    source = f"seg-src-{uuid.uuid4().hex[:8]}"
    create_table(ddb, source)
    fill(ddb, source, varied_items(3, seed=1))
    spec = workflow_input(endpoint, source, f"seg-tgt-{uuid.uuid4().hex[:8]}", segments=3).spec
    StateStore.ensure_table(ddb, spec.state.name)

    def plan_segment_count(spec: Any, requested: int | None) -> int:
        return plan_local_run(spec, TargetOptions(), segments=requested).segments

    assert plan_segment_count(spec, 5) == 5  # nothing recorded yet: the requested count
    assert plan_segments(StepEvent(spec=spec)).count == 3
    state = StateStore(ddb, spec.state.name, spec.migration_id)
    assert state.segment_count() == 3 and state.segment_count(3) == 3
    assert plan_segment_count(spec, None) == 3
    other = spec.model_copy(update={"segments": 5})
    refusals = {
        "store": lambda: state.segment_count(5),
        "plan step": lambda: plan_segments(StepEvent(spec=other)),
        "validate": lambda: validate(ValidateEvent(spec=other)),
        "cli count": lambda: plan_segment_count(spec, 5),
    }
    for where, call in refusals.items():
        with pytest.raises(BadInputError) as info:
            call()
        message = str(info.value)
        assert message.startswith("segments: 5") and "3 segments" in message, (where, message)
    assert state.segment_count() == 3


class _SmallPages:
    """The moto client, with every Query limited to two items (so the pager must follow
    LastEvaluatedKey: moto's pages are otherwise 1 MB)."""

    def __init__(self, client: Any) -> None:
        self.client = client
        self.queries = 0

    def query(self, **kwargs: Any) -> Any:
        self.queries += 1
        return self.client.query(Limit=2, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.client, name)


def test_the_one_pager_reads_every_page_of_a_prefix_and_a_range(endpoint: str, table: str) -> None:
    paged = _SmallPages(client(endpoint))
    s = StateStore(paged, table, f"m-{uuid.uuid4().hex[:8]}")
    for i in range(5):
        s.put_record("x#", f"{i:02d}", n={"N": str(i)})
    s.put_record("y#", "00")
    other = StateStore(paged, table, f"m-{uuid.uuid4().hex[:8]}")
    other.put_record("x#", "99")
    assert [r["n"]["N"] for r in s.records("x#")] == ["0", "1", "2", "3", "4"]
    assert paged.queries >= 3
    between = [r["n"]["N"] for r in s._query_between("x#01", "x#03")]
    assert between == ["1", "2", "3"]


def test_the_store_stamps_and_waits_on_the_clock_it_is_given(endpoint: str, table: str) -> None:
    """Issue 15 item 4: record times are the injected clock's wall time, and the wait for an
    ACTIVE state table sleeps on the injected clock (instant here, its deadline kept)."""
    ddb = client(endpoint)
    s = StateStore(ddb, table, f"m-{uuid.uuid4().hex[:8]}", clock=ManualClock(wall_start=1234.5))
    s.put_meta(phase=PHASE_BACKFILL)
    s.save_segment(SegmentState(segment=0))
    items = ddb.query(
        TableName=table,
        KeyConditionExpression="migration_id = :m",
        ExpressionAttributeValues={":m": {"S": s.migration_id}},
        ConsistentRead=True,
    )["Items"]
    assert len(items) == 2 and {i["updated"]["N"] for i in items} == {"1234.5"}

    def creating(parsed: dict[str, Any], **_: Any) -> None:
        parsed["Table"]["TableStatus"] = "CREATING"

    clock = ManualClock()
    ddb.meta.events.register("after-call.dynamodb.DescribeTable", creating)
    with pytest.raises(RuntimeFailure, match="not ACTIVE after 3s"):
        StateStore.ensure_table(ddb, table, timeout=3, clock=clock)
    assert clock.sleeps == [0.5] * 7
