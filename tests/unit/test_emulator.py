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
