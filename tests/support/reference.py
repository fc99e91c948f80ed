"""An independent reference for tests: full scans and a simple comparison.

Deliberately NOT the project's diff engine: values are turned into Python objects with boto3's
own TypeDeserializer and compared with ==, so a bug in dynashift.items cannot hide itself.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterable, Iterator
from typing import Any

from boto3.dynamodb.types import TypeDeserializer

from tests.support.tables import list_tables

_deser = TypeDeserializer()
TOMBSTONE = "__dynashift_tombstone"


def _plain(item: dict[str, Any]) -> dict[str, Any]:
    return {k: _deser.deserialize(v) for k, v in item.items()}


def scan_all(client: Any, table: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    kwargs: dict[str, Any] = {"TableName": table, "ConsistentRead": True}
    while True:
        page = client.scan(**kwargs)
        items.extend(page.get("Items", []))
        if "LastEvaluatedKey" not in page:
            return items
        kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def table_contents(client: Any, table: str, keys: tuple[str, ...]) -> dict[tuple[Any, ...], Any]:
    out = {}
    for item in scan_all(client, table):
        plain = _plain(item)
        out[tuple(plain[k] for k in keys)] = plain
    return out


def diff_tables(
    client_a: Any, table_a: str, client_b: Any, table_b: str, keys: tuple[str, ...]
) -> dict[str, list[Any]]:
    """{'missing': keys only in a, 'extra': keys only in b, 'differing': keys unequal}.

    Tombstones in b count as extra: after a migration none may be left.
    """
    a = table_contents(client_a, table_a, keys)
    b = table_contents(client_b, table_b, keys)
    return {
        "missing": sorted(set(a) - set(b), key=repr),
        "extra": sorted(set(b) - set(a), key=repr),
        "differing": sorted((k for k in a.keys() & b.keys() if a[k] != b[k]), key=repr),
    }


def assert_identical(
    client_a: Any, table_a: str, client_b: Any, table_b: str, keys: tuple[str, ...]
) -> None:
    d = diff_tables(client_a, table_a, client_b, table_b, keys)
    summary = {k: (len(v), v[:5]) for k, v in d.items()}
    assert not any(d.values()), f"tables differ: {summary}"


def snapshot(client: Any, *tables: str) -> dict[str, list[str]]:
    """Every item of `tables` as sorted JSON (to show that nothing was written)."""
    return {
        t: sorted(json.dumps(i, sort_keys=True, default=repr) for i in scan_all(client, t))
        for t in tables
    }


@contextlib.contextmanager
def nothing_written(client: Any, tables: Iterable[str] | None = None) -> Iterator[None]:
    """Assert that the block creates or deletes no table and changes no item and no stream
    setting of `tables` (default: of every table on the server)."""

    def state() -> tuple[set[str], dict[str, list[str]], dict[str, Any]]:
        names = list_tables(client)
        watched = sorted(names if tables is None else set(tables))
        return (
            names,
            snapshot(client, *watched),
            {
                t: client.describe_table(TableName=t)["Table"].get("StreamSpecification")
                for t in watched
            },
        )

    before = state()
    yield
    after = state()
    assert after[0] == before[0], f"tables created or deleted: {sorted(after[0] ^ before[0])}"
    assert after[1] == before[1], "a table's items changed"
    assert after[2] == before[2], "a stream setting changed"
