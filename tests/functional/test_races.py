"""Interleavings that lost or resurrected data (issue 13 items 1, 2 and 7), replayed step by step
against the moto server with the real engine: `run_segment`, `Replicator.apply` fed from the
source's stream, `finish_backfill`."""

from __future__ import annotations

import threading
import time
import uuid
from typing import Any

import pytest

from dynashift.aws import ClientFactory, Side
from dynashift.backfill import run_segment
from dynashift.errors import BadInputError, RuntimeFailure
from dynashift.follower import StreamFollower, to_lambda_record
from dynashift.items import TOMBSTONE_ATTR
from dynashift.models import Clients, MigrationSpec
from dynashift.replicator import Replicator
from dynashift.state import PHASE_BACKFILL, PHASE_PLAIN, LeaseHeldError, StateStore
from dynashift.tombstones import finish_backfill
from dynashift.workflow.control import EventSourceMappingControl
from tests.support.backfill import make_spec, make_state, on_put_of
from tests.support.limits import enforce_key_limits
from tests.support.reference import assert_identical, scan_all
from tests.support.tables import REGION, client, create_table, enable_stream, fill, simple_items


def mid() -> str:
    return f"race-{uuid.uuid4().hex[:10]}"


class Stream:
    """The source's (single-shard) stream applied by the real Replicator on demand."""

    def __init__(self, endpoint: str, source: str, spec: MigrationSpec, state: StateStore) -> None:
        ddb = client(endpoint)
        self.streams = client(endpoint, "dynamodbstreams")
        self.arn = ddb.describe_table(TableName=source)["Table"]["LatestStreamArn"]
        shard = self.streams.describe_stream(StreamArn=self.arn)["StreamDescription"]["Shards"][0]
        self.iterator = self.streams.get_shard_iterator(
            StreamArn=self.arn, ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON"
        )["ShardIterator"]
        side = Side(region=REGION, endpoint_url=endpoint)
        self.replicator = Replicator.for_spec(
            spec, ["pk"], state, clients=Clients.fixed(ClientFactory(side))
        )
        self.results: list[Any] = []

    def apply(self) -> None:
        """Apply every record written so far, in order."""
        while True:
            page = self.streams.get_records(ShardIterator=self.iterator)
            self.iterator = page["NextShardIterator"]
            if not page["Records"]:
                return
            result = self.replicator.apply([to_lambda_record(r, self.arn) for r in page["Records"]])
            self.results.append(result)
            assert result.ok, result.error


def setup(
    endpoint: str, table_name: Any, n: int = 40, **spec_fields: Any
) -> tuple[Any, str, str, MigrationSpec, StateStore]:
    src, dst = table_name("src"), table_name("dst")
    ddb = client(endpoint)
    create_table(ddb, src)
    create_table(ddb, dst)
    fill(ddb, src, simple_items(n))
    enable_stream(ddb, src)
    spec = make_spec(endpoint, src, dst, mid(), segments=1, **spec_fields)
    return ddb, src, dst, spec, make_state(ddb, spec)


def target_item(ddb: Any, table: str, pk: str) -> dict[str, Any] | None:
    item: dict[str, Any] | None = ddb.get_item(
        TableName=table, Key={"pk": {"S": pk}}, ConsistentRead=True
    ).get("Item")
    return item


# --- item 1: a re-created item restarts its version -------------------------------------------


@pytest.mark.parametrize("target_had_items", [False, True], ids=["empty-target", "non-empty"])
def test_stale_scan_image_never_replaces_a_recreated_item(
    endpoint: str, table_name: Any, target_had_items: bool
) -> None:
    """Scan reads k at v5; the source deletes k and re-creates it at v1; the replicator applies
    both (the tombstone, then v1 over it); the backfill's put of the stale v5 must fail. Later
    versions v2 then apply, and the target ends equal to the source with no marker left."""
    ddb, src, dst, spec, state = setup(endpoint, table_name, version_attribute="v")
    ddb.put_item(TableName=src, Item={"pk": {"S": "k00005"}, "v": {"N": "5"}, "s": {"S": "old"}})
    if target_had_items:  # a pre-migration item that the backfill must still replace
        ddb.put_item(TableName=dst, Item={"pk": {"S": "k00003"}, "v": {"N": "-1"}})
    stream = Stream(endpoint, src, spec, state)

    def recreate() -> None:
        ddb.delete_item(TableName=src, Key={"pk": {"S": "k00005"}})
        new = {"pk": {"S": "k00005"}, "v": {"N": "1"}, "s": {"S": "new"}}
        ddb.put_item(TableName=src, Item=new)
        stream.apply()

    target = client(endpoint)
    fired = on_put_of(target, "k00005", recreate)
    result = run_segment(spec, 0, state=state, budget_seconds=60, target_client=target)
    assert fired == [1] and result.done
    assert target_item(ddb, dst, "k00005")["v"] == {"N": "1"}  # type: ignore[index]
    assert result.counters["skipped_newer"] >= 1
    ddb.put_item(TableName=src, Item={"pk": {"S": "k00005"}, "v": {"N": "2"}, "s": {"S": "v2"}})
    stream.apply()
    assert stream.results[-1].skipped_stale == 0
    finish_backfill(ddb, dst, state)
    assert_identical(ddb, src, ddb, dst, ("pk",))  # also: no marker, no tombstone left
    assert list(state.tombstones()) == []


# --- item 2: a straggling invocation after a retry --------------------------------------------


@pytest.mark.parametrize("delete_when", ["before-finish", "while-finishing"])
def test_straggler_cannot_resurrect_a_delete_or_move_a_checkpoint_back(
    endpoint: str, table_name: Any, delete_when: str
) -> None:
    """Invocation A holds the image of k (read before its delete) and stalls just before its
    put; Step Functions' retry B copies the segment to the end; k is deleted, before "Finish
    backfill" starts or while it waits for A. A resumes: its put must not bring k back, and its
    checkpoint must not overwrite B's `done`."""
    ddb, src, dst, spec, state = setup(endpoint, table_name, n=40)
    stream = Stream(endpoint, src, spec, state)
    # the key of A's first page that is not its last item: A still has pages to go after it
    first_page = ddb.scan(TableName=src, Segment=0, TotalSegments=1, Limit=10)["Items"]
    k = first_page[3]["pk"]["S"]
    paused, go = threading.Event(), threading.Event()

    def stall() -> None:
        paused.set()
        assert go.wait(30)

    a_client = client(endpoint)
    on_put_of(a_client, k, stall)
    outcome: dict[str, Any] = {}

    def invocation_a() -> None:
        try:
            outcome["a"] = run_segment(
                spec,
                0,
                state=state,
                budget_seconds=60,
                target_client=a_client,
                max_in_flight=1,
                page_size=10,
            )
        except RuntimeFailure as exc:
            outcome["a_error"] = exc

    a = threading.Thread(target=invocation_a)
    a.start()
    assert paused.wait(30)
    b = run_segment(spec, 0, state=state, budget_seconds=60, page_size=10)  # the retry
    assert b.done

    def delete_k() -> None:
        ddb.delete_item(TableName=src, Key={"pk": {"S": k}})
        stream.apply()

    if delete_when == "before-finish":
        delete_k()
        assert TOMBSTONE_ATTR in (target_item(ddb, dst, k) or {})

    def finish() -> None:
        outcome["finish"] = finish_backfill(ddb, dst, state)

    f = threading.Thread(target=finish)
    f.start()
    deadline = time.monotonic() + 10
    while state.phase() == PHASE_BACKFILL and time.monotonic() < deadline:
        time.sleep(0.05)
    if delete_when == "while-finishing":
        delete_k()
    f.join(1.0)  # a cleanup that does not wait for A would be done by now
    go.set()
    a.join(30)
    f.join(30)
    assert not a.is_alive() and not f.is_alive()
    assert target_item(ddb, dst, k) is None, "the straggler resurrected a deleted item"
    assert state.segment(0).done, "the straggler moved the checkpoint back"
    assert outcome["finish"].removed == 1
    # A stopped at the checkpoint after its page: fenced, counted, not an error
    assert "a_error" not in outcome, outcome.get("a_error")
    assert outcome["a"].counters["fenced"] == 1
    assert outcome["a"].done and outcome["a"].cursor is None  # what the store says
    assert state.active_leases(time.time()) == []
    stream.apply()
    assert_identical(ddb, src, ddb, dst, ("pk",))


def test_a_worker_that_sees_the_backfill_finished_stops_before_writing_a_page(
    endpoint: str, table_name: Any
) -> None:
    ddb, _src, dst, spec, state = setup(endpoint, table_name, n=30)
    source = client(endpoint)
    scans = []

    def after_scan(**_kwargs: Any) -> None:
        scans.append(1)
        if len(scans) == 2:  # "Finish backfill" ran while page 2 was read
            state.set_phase(PHASE_PLAIN)

    source.meta.events.register("after-call.dynamodb.Scan", after_scan)
    with pytest.raises(RuntimeFailure, match="already finished"):
        run_segment(spec, 0, state=state, budget_seconds=60, source_client=source, page_size=10)
    assert len(scan_all(ddb, dst)) == 10  # page 1 only
    assert state.active_leases(time.time()) == []


# --- item 7: attribute names dynashift reserves -------------------------------------------------


def test_a_source_attribute_named_like_the_tombstone_marker_is_refused(
    endpoint: str, table_name: Any
) -> None:
    """A user attribute `__dynashift_tombstone` would make verify ignore the item's attribute
    and cleanup delete the item: the backfill and the replicator refuse it, naming it; real
    tombstones still work."""
    ddb, src, dst, spec, state = setup(endpoint, table_name, n=20)
    stream = Stream(endpoint, src, spec, state)
    run_segment(spec, 0, state=state, budget_seconds=60)
    # the tombstone case: a delete during the backfill is a tombstone, then removed
    ddb.delete_item(TableName=src, Key={"pk": {"S": "k00001"}})
    stream.apply()
    assert TOMBSTONE_ATTR in (target_item(ddb, dst, "k00001") or {})
    # the user-attribute case, replicated: the record is refused with a clear error
    user_item = {"pk": {"S": "k00001"}, TOMBSTONE_ATTR: {"S": "mine"}, "s": {"S": "user"}}
    ddb.put_item(TableName=src, Item=user_item)
    with pytest.raises(AssertionError, match="reserves"):
        stream.apply()
    finish_backfill(ddb, dst, state)
    assert target_item(ddb, dst, "k00001") is None  # the tombstone went, nothing else
    # the user-attribute case, scanned: a new backfill of this source is refused
    spec2 = make_spec(endpoint, src, table_name("dst2"), mid(), segments=1)
    create_table(ddb, spec2.target.name)
    with pytest.raises(BadInputError, match=f"'{TOMBSTONE_ATTR}'.*reserves"):
        run_segment(spec2, 0, state=make_state(ddb, spec2), budget_seconds=60)


# --- item 3: long keys in the tombstone registry ----------------------------------------------


def test_deletes_of_long_keys_become_tombstones_and_are_cleaned(
    endpoint: str, table_name: Any
) -> None:
    """A 1,100-byte key and 200 "é": their registry records must fit the 1,024-byte sort-key
    limit (enforced on the state client, as DynamoDB would) or the replicator fails for good."""
    ddb, src, dst, spec, _state = setup(endpoint, table_name, n=5)
    state_client = client(endpoint)
    seen = enforce_key_limits(state_client)
    state = StateStore(state_client, spec.state.name, spec.migration_id)
    long_keys = ["x" * 1100, "é" * 200]
    for pk in long_keys:
        ddb.put_item(TableName=src, Item={"pk": {"S": pk}, "s": {"S": "long"}})
    stream = Stream(endpoint, src, spec, state)
    run_segment(spec, 0, state=state, budget_seconds=60)
    for pk in long_keys:
        ddb.delete_item(TableName=src, Key={"pk": {"S": pk}})
    stream.apply()
    assert stream.results[-1].tombstones == 2
    assert sorted(k["pk"]["S"] for k in state.tombstones()) == sorted(long_keys)
    cleanup = finish_backfill(ddb, dst, state)
    assert (cleanup.registered, cleanup.removed) == (2, 2)
    assert seen and max(seen) <= 1024
    assert_identical(ddb, src, ddb, dst, ("pk",))


def test_only_one_follower_applies_a_migrations_stream(endpoint: str, table_name: Any) -> None:
    """A second follower of the same migration waits for the first one's lease and gives up
    while it is renewed; once the first stops (releasing it), another can follow at once."""
    _ddb, src, _dst, spec, state = setup(endpoint, table_name, n=3)
    stream = Stream(endpoint, src, spec, state)

    def follower() -> StreamFollower:
        streams = client(endpoint, "dynamodbstreams")
        return StreamFollower(stream.arn, streams, stream.replicator, state, lease_seconds=1.5)

    first, stop_first = follower(), threading.Event()
    running = threading.Thread(target=first.run, args=(stop_first,))
    running.start()
    try:
        deadline = time.monotonic() + 10
        while first._leased_at is None and time.monotonic() < deadline:
            time.sleep(0.05)
        started = time.monotonic()
        with pytest.raises(LeaseHeldError, match="another replicator"):
            follower().run(threading.Event())
        assert time.monotonic() - started >= 1.5  # it waited for the lease to lapse
    finally:
        stop_first.set()
        running.join(10)
    assert first.error is None
    second, stop_second = follower(), threading.Event()
    stop_second.set()  # acquire, then stop at once
    second.run(stop_second)
    assert second.error is None


def test_a_second_event_source_mapping_of_the_stream_is_refused(
    ddb: Any, endpoint: str, table_name: Any
) -> None:
    """In AWS the single applier is the one event source mapping: starting the replicator
    when two map the stream to the replicator function fails, naming them."""
    from tests.support.functions import create_function
    from tests.support.workflow import workflow_input

    source = table_name("esm2-src")
    create_table(ddb, source)
    arn = enable_stream(ddb, source)
    fn = table_name("esm2-fn")
    create_function(endpoint, fn)
    lam = client(endpoint, "lambda")
    for _ in range(2):
        lam.create_event_source_mapping(
            EventSourceArn=arn, FunctionName=fn, StartingPosition="TRIM_HORIZON"
        )
    control = EventSourceMappingControl(lam, fn, dlq_arn=None, streams_client=lambda spec: None)
    spec = workflow_input(endpoint, source, table_name("esm2-tgt")).spec
    with pytest.raises(RuntimeFailure, match=r"2 event source mappings .* at most one"):
        control.start(spec, arn)
