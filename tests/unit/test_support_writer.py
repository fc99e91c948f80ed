"""The concurrent writer used by the reliability tests (against the moto server fixture)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.support.reference import _plain, scan_all
from tests.support.writer import OPERATIONS, ConcurrentWriter, default_item

ALL_TYPES = {"S", "N", "B", "BOOL", "NULL", "L", "M", "SS", "NS", "BS"}


def _create(ddb: Any, name: str, sort_key: bool = False) -> None:
    schema = [{"AttributeName": "pk", "KeyType": "HASH"}]
    defs = [{"AttributeName": "pk", "AttributeType": "S"}]
    if sort_key:
        schema.append({"AttributeName": "sk", "KeyType": "RANGE"})
        defs.append({"AttributeName": "sk", "AttributeType": "N"})
    ddb.create_table(
        TableName=name, KeySchema=schema, AttributeDefinitions=defs, BillingMode="PAY_PER_REQUEST"
    )


def _types(value: dict[str, Any], out: set[str]) -> set[str]:
    ((kind, inner),) = value.items()
    out.add(kind)
    if kind == "L":
        for v in inner:
            _types(v, out)
    if kind == "M":
        for v in inner.values():
            _types(v, out)
    return out


def test_plan_is_a_pure_function_of_the_seed() -> None:
    a = ConcurrentWriter(None, "x", ("pk",), seed=11, key_space=50).plan(200)
    b = ConcurrentWriter(None, "x", ("pk",), seed=11, key_space=50).plan(200)
    c = ConcurrentWriter(None, "x", ("pk",), seed=12, key_space=50).plan(200)
    assert a == b
    assert [(p.op, p.key) for p in a] != [(p.op, p.key) for p in c]
    assert {p.op for p in a} == set(OPERATIONS)
    assert all(p.key_index < 50 for p in a)


def test_items_cover_every_attribute_type() -> None:
    import random

    rng = random.Random(1)
    seen: set[str] = set()
    for _ in range(30):
        for value in default_item(rng).values():
            _types(value, seen)
    assert seen >= ALL_TYPES


def test_versions_increase_per_key_across_deletes() -> None:
    plan = ConcurrentWriter(None, "x", ("pk",), seed=5, key_space=10, version_attribute="v").plan(
        300
    )
    last: dict[int, int] = {}
    for p in plan:
        if p.op == "delete":
            assert p.version is None
            continue
        assert p.attributes["v"] == {"N": str(p.version)}
        assert p.version is not None and p.version > last.get(p.key_index, 0)
        last[p.key_index] = p.version


@pytest.mark.parametrize("sort_key", [False, True])
def test_run_records_every_op_and_table_matches_model(
    ddb: Any, table_name: Any, sort_key: bool
) -> None:
    name = table_name("writer")
    _create(ddb, name, sort_key)
    keys = ddb.describe_table(TableName=name)["Table"]
    writer = ConcurrentWriter(
        ddb, name, keys, seed=3, rate_per_s=0, key_space=40, max_ops=250, version_attribute="ver"
    )
    with writer:
        assert writer.wait_for(50, timeout=30)
    assert 50 <= writer.total <= 250
    assert writer.total == sum(writer.counts.values())
    assert [op.seq for op in writer.ops] == list(range(writer.total))
    planned = writer.plan(writer.total)
    assert [(op.op, op.key) for op in writer.ops] == [(p.op, p.key) for p in planned]
    assert not writer.failures and not writer.uncertain_keys
    knames = ("pk", "sk") if sort_key else ("pk",)
    actual = {tuple(_plain(i)[k] for k in knames): _plain(i) for i in scan_all(ddb, name)}
    expected = {tuple(_plain(i)[k] for k in knames): _plain(i) for i in writer.expected_items()}
    assert actual == expected
    assert actual, "the writer left some items"


def test_bounded_by_max_ops_and_rate(ddb: Any, table_name: Any) -> None:
    name = table_name("writer")
    _create(ddb, name)
    writer = ConcurrentWriter(ddb, name, ("pk",), seed=1, rate_per_s=0, max_ops=30).start()
    writer.join(30)
    assert writer.total == 30
    slow = ConcurrentWriter(ddb, name, ("pk",), seed=1, rate_per_s=20, max_seconds=0.5).start()
    slow.join(30)
    # 20/s for half a second: about 10 (the first op is due at once), never hundreds.
    assert 1 <= slow.total <= 12


def test_failed_requests_are_recorded_not_raised(ddb: Any, table_name: Any) -> None:
    writer = ConcurrentWriter(ddb, table_name("missing"), ("pk",), seed=2, rate_per_s=0, max_ops=5)
    writer.start().join(30)
    assert writer.total == 5 and writer.succeeded == 0
    assert sum(writer.failures.values()) == 5
    assert all("ResourceNotFound" in (op.error or "") for op in writer.ops)


def test_rejects_bad_configuration() -> None:
    with pytest.raises(ValueError, match="operations"):
        ConcurrentWriter(None, "x", ("pk",), operations=("truncate",))
    with pytest.raises(ValueError, match="type"):
        ConcurrentWriter(None, "x", ("pk",), key_types={"pk": "BOOL"})
