"""Repairs never destroy live data (issue 13, item 6), on a real moto server.

Each test drives one race deterministically: a botocore event hook on the client the engine
uses runs a "writer" (another client) at an exact point between the engine's reads and its
repair write — the master's newer write arriving on the slave by replication, or a master
write the scan did not see. The engine itself is not mocked. A repair that would land on a
changed item must be skipped and counted ("skipped: changed since read"), never overwrite or
delete it.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Callable, Iterator
from typing import Any

from dynashift.aws import Side
from dynashift.items import items_equal, to_event_json
from dynashift.models import MigrationSpec, TableLocation
from dynashift.sync import SyncEngine, SyncOptions
from dynashift.verify import Suspect, recheck
from tests.support.tables import REGION, client, create_table

WRITES = ("PutItem", "DeleteItem", "BatchWriteItem")
HOOKED = ("BatchGetItem", "GetItem", *WRITES)
Trigger = Callable[[str, dict[str, Any]], bool]


def _tables(params: dict[str, Any]) -> set[str]:
    if "TableName" in params:
        return {params["TableName"]}
    return set(params.get("RequestItems", {}))


@contextlib.contextmanager
def between(engine_client: Any, when: Trigger, writer: Callable[[], None]) -> Iterator[list[str]]:
    """Run `writer` once, right before the engine's first call for which `when(op, params)`."""
    fired: list[str] = []

    def hook(params: dict[str, Any], model: Any, **_: Any) -> None:
        if not fired and when(model.name, params):
            fired.append(model.name)
            writer()

    events = [(f"before-parameter-build.dynamodb.{op}", uuid.uuid4().hex) for op in HOOKED]
    for event, unique_id in events:
        engine_client.meta.events.register(event, hook, unique_id=unique_id)
    try:
        yield fired
    finally:
        for event, unique_id in events:
            engine_client.meta.events.unregister(event, unique_id=unique_id)


def writes_to(table: str) -> Trigger:
    """Before the first repair write to `table`: after every read the repair is based on."""
    return lambda op, params: op in WRITES and table in _tables(params)


def _item(key: str, version: int, **extra: Any) -> dict[str, Any]:
    return {"pk": {"S": key}, "v": {"N": str(version)}, **extra}


def _get(ddb: Any, table: str, key: str) -> dict[str, Any]:
    got = ddb.get_item(TableName=table, Key={"pk": {"S": key}}, ConsistentRead=True)
    return got.get("Item") or {}


def _pair(ddb: Any, table_name: Any) -> tuple[str, str]:
    return create_table(ddb, table_name("rm")), create_table(ddb, table_name("rs"))


def _sync(endpoint: str, master: str, slave: str, **options: Any) -> tuple[SyncEngine, Any]:
    engine_client = client(endpoint)
    side = Side(region=REGION, endpoint_url=endpoint)
    engine = SyncEngine(
        TableLocation(name=master, side=side),
        [TableLocation(name=slave, side=side)],
        SyncOptions(**options),
        client_for=lambda _loc: engine_client,
    )
    engine.prepare()
    return engine, engine_client


def _replicated(ddb: Any, master: str, slave: str, item: dict[str, Any]) -> Callable[[], None]:
    """A master write and its replication to the slave."""

    def write() -> None:
        ddb.put_item(TableName=master, Item=item)
        ddb.put_item(TableName=slave, Item=item)

    return write


def _counts(engine: SyncEngine, report: Any, *names: str) -> tuple[int, ...]:
    rep = report.slaves[engine.slaves[0].display]
    return tuple(getattr(rep, n) for n in names)


# --- sync --------------------------------------------------------------------------------------


def test_write_differing_never_overwrites_a_newer_replicated_write(
    ddb: Any, endpoint: str, table_name: Any
) -> None:
    master, slave = _pair(ddb, table_name)
    ddb.put_item(TableName=master, Item=_item("k", 1))
    ddb.put_item(TableName=slave, Item=_item("k", 0))
    newer = _item("k", 2, note={"S": "newer"})
    engine, engine_client = _sync(endpoint, master, slave, write_differing=True)
    with between(engine_client, writes_to(slave), _replicated(ddb, master, slave, newer)) as fired:
        report = engine.run()
    assert fired, "the race was not driven"
    assert items_equal(_get(ddb, slave, "k"), newer), "a newer write was overwritten"
    assert _counts(engine, report, "differing", "wrote_differing", "skipped_changed") == (1, 0, 1)
    assert "skipped: changed since read 1" in report.summary_lines()[1]
    assert report.exit_code == 1  # not proven in sync: the next run decides


def test_write_missing_never_overwrites_an_item_that_appeared(
    ddb: Any, endpoint: str, table_name: Any
) -> None:
    master, slave = _pair(ddb, table_name)
    ddb.put_item(TableName=master, Item=_item("k", 1))
    newer = _item("k", 2)
    engine, engine_client = _sync(endpoint, master, slave, write_missing=True)
    with between(engine_client, writes_to(slave), _replicated(ddb, master, slave, newer)) as fired:
        report = engine.run()
    assert fired
    assert items_equal(_get(ddb, slave, "k"), newer)
    assert _counts(engine, report, "missing", "wrote_missing", "skipped_changed") == (1, 0, 1)


def test_repair_writes_the_masters_current_image_not_the_scanned_one(
    ddb: Any, endpoint: str, table_name: Any
) -> None:
    """The master changes after its scan page was read (not replicated yet): the repair writes
    what the master holds now, read consistently, not the scan's older image."""
    master, slave = _pair(ddb, table_name)
    ddb.put_item(TableName=master, Item=_item("k", 1))
    ddb.put_item(TableName=slave, Item=_item("k", 0))
    ddb.put_item(TableName=master, Item=_item("gone", 1))
    newer = _item("k", 2)

    def master_only() -> None:
        ddb.put_item(TableName=master, Item=newer)
        ddb.delete_item(TableName=master, Key={"pk": {"S": "gone"}})

    def slave_lookup(op: str, params: dict[str, Any]) -> bool:
        return op == "BatchGetItem" and slave in _tables(params)

    engine, engine_client = _sync(endpoint, master, slave, write_missing=True, write_differing=True)
    with between(engine_client, slave_lookup, master_only) as fired:
        report = engine.run()
    assert fired
    assert items_equal(_get(ddb, slave, "k"), newer), "the scan's stale image was written"
    assert _get(ddb, slave, "gone") == {}, "an item the master deleted was written"
    counts = _counts(engine, report, "wrote_differing", "wrote_missing", "skipped_changed")
    assert counts == (1, 0, 1)


def test_delete_extra_never_deletes_an_item_the_master_created_meanwhile(
    ddb: Any, endpoint: str, table_name: Any
) -> None:
    master, slave = _pair(ddb, table_name)
    ddb.put_item(TableName=slave, Item=_item("x", 0))  # extra, re-created by the master
    ddb.put_item(TableName=slave, Item=_item("y", 0))  # extra, and stays so
    created = _item("x", 1)
    engine, engine_client = _sync(endpoint, master, slave, delete_extra=True)
    with between(
        engine_client, writes_to(slave), _replicated(ddb, master, slave, created)
    ) as fired:
        report = engine.run()
    assert fired
    assert items_equal(_get(ddb, slave, "x"), created), "a replicated item was deleted"
    assert _get(ddb, slave, "y") == {}
    assert _counts(engine, report, "extra", "deleted_extra", "skipped_changed") == (2, 1, 1)


def test_delete_extra_rereads_the_master_consistently(
    ddb: Any, endpoint: str, table_name: Any
) -> None:
    """The master creates the key after the extra lookup, before replication reaches the
    slave: the consistent re-read of the master sees it and the slave item is kept."""
    master, slave = _pair(ddb, table_name)
    ddb.put_item(TableName=slave, Item=_item("x", 0))
    engine, engine_client = _sync(endpoint, master, slave, delete_extra=True)
    master_lookups = 0

    def after_the_extra_lookup(op: str, params: dict[str, Any]) -> bool:
        nonlocal master_lookups
        if op == "BatchGetItem" and master in _tables(params):
            master_lookups += 1
            return master_lookups == 2  # the repair's re-read
        return writes_to(slave)(op, params)  # no re-read at all: before the delete

    def create_on_master() -> None:
        ddb.put_item(TableName=master, Item=_item("x", 1))

    with between(engine_client, after_the_extra_lookup, create_on_master) as fired:
        report = engine.run()
    assert fired
    assert _get(ddb, slave, "x") != {}, "deleted although the master holds the key"
    assert _counts(engine, report, "extra", "deleted_extra", "skipped_changed") == (1, 0, 1)


def test_an_item_too_large_for_a_condition_is_reread_right_before_an_unconditional_write(
    ddb: Any, endpoint: str, table_name: Any
) -> None:
    master, slave = _pair(ddb, table_name)
    wide = {f"attribute_{i:03d}": {"N": str(i)} for i in range(300)}
    for key in ("k", "j"):
        ddb.put_item(TableName=master, Item=_item(key, 1, **wide))
        ddb.put_item(TableName=slave, Item=_item(key, 0, **wide))
    newer = _item("j", 2, **wide)
    engine, engine_client = _sync(endpoint, master, slave, write_differing=True)

    def reread_of_j(op: str, params: dict[str, Any]) -> bool:
        return op == "GetItem" and params["Key"]["pk"]["S"] == "j"

    with between(engine_client, reread_of_j, _replicated(ddb, master, slave, newer)) as fired:
        report = engine.run()
    assert fired
    assert items_equal(_get(ddb, slave, "k"), _get(ddb, master, "k"))
    assert items_equal(_get(ddb, slave, "j"), newer)
    counts = _counts(engine, report, "wrote_differing", "unconditional", "skipped_changed")
    assert counts == (1, 1, 1)


# --- recheck --repair --------------------------------------------------------------------------


def _spec(endpoint: str, source: str, target: str) -> MigrationSpec:
    side = Side(region=REGION, endpoint_url=endpoint)
    mid = f"rr-{uuid.uuid4().hex[:10]}"
    return MigrationSpec(
        migration_id=mid,
        source=TableLocation(name=source, side=side),
        target=TableLocation(name=target, side=side),
        state=TableLocation(name=f"dynashift-state-{mid}", side=side),
        segments=1,
    )


def _suspect(kind: Any, key: str) -> Suspect:
    return Suspect(kind=kind, key=to_event_json({"pk": {"S": key}}))


def test_recheck_repair_never_overwrites_a_newer_replicated_write(
    ddb: Any, endpoint: str, table_name: Any
) -> None:
    source, target = _pair(ddb, table_name)
    ddb.put_item(TableName=source, Item=_item("k", 1))
    ddb.put_item(TableName=target, Item=_item("k", 0))
    newer = _item("k", 2)
    target_client = client(endpoint)
    with between(
        target_client, writes_to(target), _replicated(ddb, source, target, newer)
    ) as fired:
        result = recheck(
            _spec(endpoint, source, target),
            [_suspect("differing", "k")],
            repair=True,
            target_client=target_client,
        )
    assert fired
    assert items_equal(_get(ddb, target, "k"), newer), "a newer write was overwritten"
    assert (result.repair_skipped, result.divergent) == (1, 0)


def test_recheck_repair_never_deletes_an_item_the_source_created_meanwhile(
    ddb: Any, endpoint: str, table_name: Any
) -> None:
    source, target = _pair(ddb, table_name)
    ddb.put_item(TableName=target, Item=_item("x", 0))
    created = _item("x", 1)
    target_client = client(endpoint)
    with between(
        target_client, writes_to(target), _replicated(ddb, source, target, created)
    ) as fired:
        result = recheck(
            _spec(endpoint, source, target),
            [_suspect("extra", "x")],
            repair=True,
            target_client=target_client,
        )
    assert fired
    assert items_equal(_get(ddb, target, "x"), created), "a replicated item was deleted"
    assert (result.repair_skipped, result.divergent) == (1, 0)
