"""The moto race that `dynashift.emulator.serial_stream_records` closes (the emulator's own fix)."""

from __future__ import annotations

import threading
import time
from types import SimpleNamespace
from typing import Any

import pytest
from moto.dynamodb.models import table as moto_table

from dynashift.emulator import serial_stream_records


class SlowRecord:
    """Stands in for moto's StreamRecord: slow to build, which widens the window between moto
    numbering a record and appending it (the race needs two server threads inside it)."""

    def __init__(self, _table: Any, _view: str, _event: str, _old: Any, _new: Any, seq: int):
        time.sleep(0.05)
        self.seq = seq


def add_concurrently(shard: Any, writers: int) -> list[int]:
    barrier = threading.Barrier(writers)

    def write() -> None:
        barrier.wait()
        shard.add(None, object())

    threads = [threading.Thread(target=write) for _ in range(writers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    return [record.seq for record in shard.items]


def shard(mappings: dict[str, Any] | None = None) -> Any:
    table = SimpleNamespace(
        stream_specification={"StreamViewType": "NEW_AND_OLD_IMAGES"},
        lambda_event_source_mappings=mappings or {},
    )
    return moto_table.StreamShard("123456789012", table)


def test_concurrent_writes_get_distinct_increasing_sequence_numbers(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(moto_table, "StreamRecord", SlowRecord)
    undo = serial_stream_records()
    try:
        seqs = add_concurrently(shard(), 4)
    finally:
        undo()
    assert moto_table.StreamShard.add.__module__ == "moto.dynamodb.models.table"  # undone
    assert seqs == sorted(set(seqs)) and len(seqs) == 4


def test_without_the_lock_moto_repeats_a_sequence_number(monkeypatch: pytest.MonkeyPatch) -> None:
    """The bug itself, so the test above is known to test something (and a moto that fixes it
    shows up here: then `serial_stream_records` can go)."""
    monkeypatch.setattr(moto_table, "StreamRecord", SlowRecord)
    seqs = add_concurrently(shard(), 4)
    assert len(set(seqs)) < len(seqs)


# --- the export snapshot (aws_export_layout) -------------------------------------------------


def busy_table(n: int) -> tuple[Any, threading.Event, threading.Thread, list[int]]:
    """An in-process moto table of `n` items and a thread that keeps adding, updating and
    removing items in it until the event is set."""
    from moto.dynamodb.models.dynamo_type import DynamoType
    from moto.dynamodb.models.table import Table

    table = Table(
        "t",
        account_id="123456789012",
        region="us-east-1",
        schema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        attr=[{"AttributeName": "pk", "AttributeType": "S"}],
    )
    for i in range(n):
        table.put_item({"pk": {"S": f"base{i:05d}"}, "v": {"N": str(i)}})
    stop = threading.Event()
    writes = [0]

    def write() -> None:
        i = 0
        while not stop.is_set():
            table.put_item({"pk": {"S": f"w{i % 500}"}, "v": {"N": str(i)}})
            if i % 3 == 0:
                table.delete_item(DynamoType({"S": f"w{(i * 7) % 500}"}), None)
            i += 1
            writes[0] = i

    thread = threading.Thread(target=write, daemon=True)
    return table, stop, thread, writes


def race(read: Any, seconds: float = 3.0) -> tuple[int, list[BaseException]]:
    """Call `read()` against a busy table for `seconds`; (reads done, errors raised)."""
    import sys

    table, stop, thread, writes = busy_table(2_000)
    errors: list[BaseException] = []
    reads = 0
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-5)  # switch threads often: the window is a few bytecodes wide
    thread.start()
    try:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline and not errors:
            try:
                read(table)
                reads += 1
            except RuntimeError as exc:
                errors.append(exc)
    finally:
        stop.set()
        thread.join(10)
        sys.setswitchinterval(interval)
    assert writes[0] > 100, "the writer thread did not run"
    return reads, errors


def test_the_export_snapshot_survives_concurrent_writes() -> None:
    from dynashift.emulator import snapshot_lines

    seen: list[int] = []

    def read(table: Any) -> None:
        lines = snapshot_lines(table)
        keys = [line.split('"pk": {"S": "')[1].split('"')[0] for line in lines]
        assert len(set(keys)) == len(keys)
        assert sum(k.startswith("base") for k in keys) == 2_000
        seen.append(len(lines))

    reads, errors = race(read, seconds=1.0)
    assert errors == [] and reads >= 3


def updated_while_read(monkeypatch: pytest.MonkeyPatch) -> Any:
    """A moto item that an UpdateItem (moto updates items in place) changes at the instant the
    export serialises it: the first nested value read adds an attribute to the item."""
    from moto.dynamodb.models.dynamo_type import DynamoType, Item

    item = Item(DynamoType({"S": "k"}), None, {"pk": {"S": "k"}, "m": {"M": {"x": {"S": "1"}}}})
    original = DynamoType.to_regular_json
    fired: list[bool] = []

    def to_regular_json(self: Any) -> Any:
        if not fired:
            fired.append(True)
            item.attrs["added"] = DynamoType({"S": "by the update"})
        return original(self)

    monkeypatch.setattr(DynamoType, "to_regular_json", to_regular_json)
    return item


def test_an_item_updated_while_the_export_reads_it_is_read_again(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from dynashift.emulator import _item_line

    line = _item_line(updated_while_read(monkeypatch))
    assert '"added": {"S": "by the update"}' in line and '"x": {"S": "1"}' in line


def test_moto_s_own_export_read_fails_on_an_item_updated_meanwhile(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The bug `_item_line` closes (moto's TableExport serialises each live item once): shows
    the test above tests something; a moto that fixes it shows up here."""
    item = updated_while_read(monkeypatch)
    with pytest.raises(RuntimeError, match="changed size"):
        item.to_json(root_attr_name="Item")
