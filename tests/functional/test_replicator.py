"""The apply engine against a real moto server: order, duplicates, deletes/tombstones, TTL,
versions, and a poisoned record (partial failure, nothing out of order)."""

from __future__ import annotations

import itertools
import json
import threading
from typing import Any

import pytest
from botocore.awsrequest import AWSResponse

from dynashift.aws import ClientFactory, Side
from dynashift.items import TOMBSTONE_ATTR
from dynashift.models import Clients, TableLocation
from dynashift.replicator import Replicator
from dynashift.state import PHASE_BACKFILL, PHASE_PLAIN, StateStore
from dynashift.tombstones import finish_backfill
from tests.support.reference import scan_all

_seq = itertools.count(1_000_000)


def record(
    name: str, pk: str, image: dict[str, Any] | None = None, *, ttl: bool = False
) -> dict[str, Any]:
    """One record in the shape Lambda delivers (JSON wire format, epoch seconds)."""
    body: dict[str, Any] = {
        "Keys": {"pk": {"S": pk}},
        "SequenceNumber": str(next(_seq)),
        "SizeBytes": 10,
        "StreamViewType": "NEW_AND_OLD_IMAGES",
        "ApproximateCreationDateTime": 1_700_000_000,
    }
    if image is not None:
        body["NewImage"] = {"pk": {"S": pk}, **image}
    out: dict[str, Any] = {
        "eventID": body["SequenceNumber"],
        "eventName": name,
        "eventVersion": "1.1",
        "eventSource": "aws:dynamodb",
        "awsRegion": "us-east-1",
        "dynamodb": body,
    }
    if ttl:
        out["userIdentity"] = {"type": "Service", "principalId": "dynamodb.amazonaws.com"}
    return out


def put(pk: str, **attrs: Any) -> dict[str, Any]:
    return record("MODIFY", pk, attrs)


def remove(pk: str, ttl: bool = False) -> dict[str, Any]:
    return record("REMOVE", pk, ttl=ttl)


@pytest.fixture
def target(ddb: Any, table_name: Any) -> str:
    name = table_name("repl-tgt")
    ddb.create_table(
        TableName=name,
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    return name


@pytest.fixture
def state(ddb: Any, table_name: Any) -> StateStore:
    name = table_name("repl-state")
    StateStore.ensure_table(ddb, name)
    store = StateStore(ddb, name, "m1")
    store.put_meta(phase=PHASE_BACKFILL)
    return store


def make(endpoint: str, target: str, state: StateStore | None = None, **kwargs: Any) -> Replicator:
    side = Side(endpoint_url=endpoint)
    # A private factory: fault hooks registered on its client stay in this test.
    return Replicator(
        TableLocation(name=target, side=side),
        ["pk"],
        state=state,
        clients=Clients.fixed(ClientFactory(side)),
        **kwargs,
    )


def contents(ddb: Any, table: str) -> dict[str, dict[str, Any]]:
    return {i["pk"]["S"]: i for i in scan_all(ddb, table)}


def test_many_updates_to_one_key_end_in_the_last(ddb: Any, endpoint: str, target: str) -> None:
    updates = [put("hot", n={"N": str(i)}, b={"B": "AAEC"}) for i in range(120)]
    repl = make(endpoint, target)
    # Uneven batches, like Lambda's.
    done = 0
    for size in (1, 7, 50, 62):
        res = repl.apply(updates[done : done + size])
        assert res.ok and res.applied == size
        done += size
    item = contents(ddb, target)["hot"]
    assert item["n"] == {"N": "119"}
    assert item["b"] == {"B": b"\x00\x01\x02"}  # base64 in the event, bytes in the table


def test_coalescing_writes_only_the_last_unconditional_record(
    ddb: Any, endpoint: str, target: str
) -> None:
    repl = make(endpoint, target)
    calls: list[str] = []
    repl.client.meta.events.register(
        "before-call.dynamodb.PutItem", lambda params, **_: calls.append(put_key(params))
    )
    batch = [put("a", v={"N": "1"}), put("b", v={"N": "1"}), put("a", v={"N": "2"})]
    batch += [remove("b"), put("a", v={"N": "3"})]
    res = repl.apply(batch)
    assert res.ok and res.coalesced == 3 and res.puts == 1 and res.deletes == 1
    assert calls == ["a"]
    assert contents(ddb, target) == {"a": {"pk": {"S": "a"}, "v": {"N": "3"}}}


def test_versioned_puts_are_not_coalesced_and_never_go_back(
    ddb: Any, endpoint: str, target: str
) -> None:
    repl = make(endpoint, target, version_attribute="ver")
    ddb.put_item(TableName=target, Item={"pk": {"S": "k"}, "ver": {"N": "5"}, "x": {"S": "new"}})
    res = repl.apply([put("k", ver={"N": "6"}, x={"S": "six"}), put("k", ver={"N": "4"})])
    assert res.ok and res.coalesced == 0 and res.puts == 1 and res.skipped_stale == 1
    assert contents(ddb, target)["k"]["x"] == {"S": "six"}
    # A later REMOVE is unconditional: it supersedes versioned puts before it.
    res = repl.apply([put("k", ver={"N": "7"}), remove("k")])
    assert res.coalesced == 1 and res.deletes == 1
    assert "k" not in contents(ddb, target)


def test_duplicate_and_overlapping_delivery_is_harmless(
    ddb: Any, endpoint: str, target: str
) -> None:
    batch = []
    for i in range(60):
        key = f"k{i % 9}"
        batch.append(remove(key) if i % 7 == 3 else put(key, n={"N": str(i)}))
    once = make(endpoint, target)
    assert once.apply(batch).ok
    expected = contents(ddb, target)
    assert once.apply(batch).ok  # the same batch again
    assert once.apply(batch[10:40]).ok and once.apply(batch[40:]).ok  # a retry's overlap
    assert contents(ddb, target) == expected
    assert len(expected) == 9 - sum(1 for k in range(9) if batch[51 + k]["eventName"] == "REMOVE")


def test_deletes_become_tombstones_during_backfill_then_plain(
    ddb: Any, endpoint: str, target: str, state: StateStore
) -> None:
    repl = make(endpoint, target, state)
    assert repl.apply([put("a", x={"S": "1"}), put("b", x={"S": "1"})]).ok
    res = repl.apply([remove("a")])
    assert res.tombstones == 1 and res.deletes == 0
    assert TOMBSTONE_ATTR in contents(ddb, target)["a"]
    assert [k["pk"]["S"] for k in state.tombstones()] == ["a"]
    # Re-created while the backfill still runs: the put replaces the tombstone.
    assert repl.apply([put("a", x={"S": "2"})]).ok
    assert contents(ddb, target)["a"] == {"pk": {"S": "a"}, "x": {"S": "2"}}
    assert repl.apply([remove("b")]).tombstones == 1
    cleanup = finish_backfill(repl.client, target, state)
    assert (cleanup.removed, cleanup.recreated) == (1, 1)
    assert state.phase() == PHASE_PLAIN
    res = repl.apply([remove("a"), put("c", x={"S": "3"}), remove("c")])
    assert (res.deletes, res.tombstones, res.coalesced) == (2, 0, 1)
    assert contents(ddb, target) == {}
    assert list(state.tombstones()) == []


@pytest.mark.parametrize("skip", [False, True])
def test_ttl_deletes_are_skipped_only_when_asked(
    ddb: Any, endpoint: str, target: str, skip: bool
) -> None:
    repl = make(endpoint, target, skip_ttl_deletes=skip)
    assert repl.apply([put("t", x={"S": "1"}), put("u", x={"S": "1"})]).ok
    res = repl.apply([remove("t", ttl=True), remove("u")])
    assert res.ok and res.skipped_ttl == (1 if skip else 0)
    assert res.deletes == (1 if skip else 2)
    assert set(contents(ddb, target)) == ({"t"} if skip else set())
    # A skipped TTL delete has no effect, so it does not supersede the put before it.
    res = repl.apply([put("v", x={"S": "1"}), remove("v", ttl=True)])
    assert res.coalesced == (0 if skip else 1)
    assert ("v" in contents(ddb, target)) is skip


def put_key(request: dict[str, Any]) -> str:
    """The pk of a PutItem, from the serialized request a before-call hook sees."""
    return str(json.loads(request["body"])["Item"]["pk"]["S"])


def _error(code: str) -> tuple[AWSResponse, dict[str, Any]]:
    parsed = {"Error": {"Code": code, "Message": "injected"}, "ResponseMetadata": {}}
    return AWSResponse("http://injected", 400, {}, None), parsed


def test_poisoned_record_stops_the_batch_and_the_retry_keeps_order(
    ddb: Any, endpoint: str, target: str
) -> None:
    repl = make(endpoint, target)
    poisoned = threading.Event()
    poisoned.set()

    def fail_poison(params: dict[str, Any], **_: Any) -> Any:
        if poisoned.is_set() and put_key(params) == "poison":
            return _error("ValidationException")
        return None

    repl.client.meta.events.register("before-call.dynamodb.PutItem", fail_poison)
    batch = [put("a", n={"N": "1"}), put("b", n={"N": "1"}), put("poison", n={"N": "1"})]
    batch += [put("c", n={"N": "1"}), put("a", n={"N": "2"}), put("b", n={"N": "2"})]
    res = repl.apply(batch)
    assert res.failed_index == 2 and res.applied == 2
    assert "ValidationException" in (res.error or "")
    assert res.last_sequence_number == batch[1]["dynamodb"]["SequenceNumber"]
    # Nothing after the failure was written; "a" and "b" were superseded by records after it,
    # so the target holds an older state of them, never a newer one out of order.
    assert contents(ddb, target) == {}
    # Still poisoned: the retry from the failed record fails at the same place.
    again = repl.apply(batch[2:])
    assert again.failed_index == 0 and contents(ddb, target) == {}
    poisoned.clear()
    assert repl.apply(batch[2:]).ok
    got = {k: v["n"]["N"] for k, v in contents(ddb, target).items()}
    assert got == {"a": "2", "b": "2", "c": "1", "poison": "1"}


def test_unusable_record_fails_there_and_nothing_after_it(
    ddb: Any, endpoint: str, target: str
) -> None:
    repl = make(endpoint, target)
    keys_only = record("INSERT", "no-image")  # a KEYS_ONLY stream has no NewImage
    res = repl.apply([put("a", n={"N": "1"}), keys_only, put("b", n={"N": "1"})])
    assert res.failed_index == 1 and res.applied == 1
    assert "NewImage" in (res.error or "")
    assert set(contents(ddb, target)) == {"a"}
