"""Read capacity a client consumes on one table, measured with botocore event hooks.

    meter = ReadMeter(client, "orders").attach()   # every later call of `client` is seen
    ...                                            # run the code under test with `client`
    meter.calls    # Counter({"Scan": 12, ...}) reads of "orders" only
    meter.units    # sum of ConsumedCapacity.CapacityUnits of those reads

Scan, Query, GetItem and BatchGetItem are the calls that consume a table's read capacity. The
hooks ask each of them for `ReturnConsumedCapacity=TOTAL` (unless the caller asked already) and
add up what the responses report for the table; moto reports a constant per call rather than a
size-based figure, so `units` shows that reads happened and how many, not their real cost.
`during(phase)` limits the counting to a block (e.g. the backfill).
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

READS = ("Scan", "Query", "GetItem", "BatchGetItem")


class ReadMeter:
    def __init__(self, client: Any, table: str) -> None:
        self.client = client
        self.table = table
        self.calls: Counter[str] = Counter()
        self.units = 0.0
        self.counting = True
        self._lock = threading.Lock()

    def attach(self) -> ReadMeter:
        events = self.client.meta.events
        for op in READS:
            events.register(f"before-parameter-build.dynamodb.{op}", self._ask)
            events.register(f"after-call.dynamodb.{op}", self._count)
        return self

    @contextmanager
    def during(self) -> Iterator[ReadMeter]:
        """Count only inside the block (and reset the figures when it starts)."""
        with self._lock:
            self.calls.clear()
            self.units = 0.0
            self.counting = True
        try:
            yield self
        finally:
            self.counting = False

    def _tables(self, params: dict[str, Any]) -> set[str]:
        return set(params.get("RequestItems") or {}) | {params.get("TableName", "")}

    def _ask(self, params: dict[str, Any], context: dict[str, Any], **_: Any) -> None:
        if self.table in self._tables(params):
            params.setdefault("ReturnConsumedCapacity", "TOTAL")
            context["read_meter_table"] = self.table

    def _count(self, parsed: dict[str, Any], model: Any, context: dict[str, Any], **_: Any) -> None:
        if context.get("read_meter_table") != self.table:
            return
        consumed = parsed.get("ConsumedCapacity")
        entries = consumed if isinstance(consumed, list) else [consumed] if consumed else []
        ours = [e for e in entries if e.get("TableName") == self.table]
        with self._lock:
            if self.counting:
                self.calls[model.name] += 1
                self.units += sum(float(e.get("CapacityUnits", 0)) for e in ours)
