"""The fault-injecting proxy, on real sockets in front of the moto server fixture."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError, ConnectionClosedError

from tests.support.fault_proxy import FaultProxy, FaultRule
from tests.support.reference import scan_all


def _client(url: str, attempts: int = 1) -> Any:
    return boto3.client(
        "dynamodb",
        region_name="us-east-1",
        endpoint_url=url,
        config=Config(retries={"mode": "standard", "total_max_attempts": attempts}),
    )


@pytest.fixture
def table(ddb: Any, table_name: Any) -> str:
    name = table_name("proxy")
    ddb.create_table(
        TableName=name,
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    return name


@pytest.fixture
def proxy(endpoint: str) -> Iterator[FaultProxy]:
    with FaultProxy(endpoint, seed=1, max_consecutive=1000) as p:
        yield p


def _keys(ddb: Any, table: str) -> set[str]:
    return {i["pk"]["S"] for i in scan_all(ddb, table)}


def test_clean_forwarding(proxy: FaultProxy, table: str, ddb: Any) -> None:
    client = _client(proxy.url)
    client.put_item(TableName=table, Item={"pk": {"S": "a"}, "b": {"B": b"\x00\xff"}})
    got = client.get_item(TableName=table, Key={"pk": {"S": "a"}}, ConsistentRead=True)
    assert got["Item"]["b"] == {"B": b"\x00\xff"}
    assert proxy.faults_injected == 0
    assert proxy.requests["PutItem"] == 1 and proxy.requests["GetItem"] == 1


def test_throttle_is_an_error_and_writes_nothing(proxy: FaultProxy, table: str, ddb: Any) -> None:
    proxy.set_rules({"PutItem": FaultRule(throttle=1.0)})
    with pytest.raises(ClientError) as info:
        _client(proxy.url).put_item(TableName=table, Item={"pk": {"S": "t"}})
    assert info.value.response["Error"]["Code"] == "ProvisionedThroughputExceededException"
    assert info.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert proxy.counts[("PutItem", "throttle")] == 1
    assert _keys(ddb, table) == set()


def test_retries_get_through_a_bounded_run_of_faults(endpoint: str, table: str, ddb: Any) -> None:
    with FaultProxy(endpoint, rules={"*": FaultRule(throttle=1.0)}, max_consecutive=2) as p:
        _client(p.url, attempts=5).put_item(TableName=table, Item={"pk": {"S": "r"}})
        assert p.counts[("PutItem", "throttle")] == 2
    assert _keys(ddb, table) == {"r"}


def test_reset_before_forwarding_writes_nothing(proxy: FaultProxy, table: str, ddb: Any) -> None:
    proxy.set_rules({"PutItem": FaultRule(reset_before=1.0)})
    with pytest.raises(ConnectionClosedError):
        _client(proxy.url).put_item(TableName=table, Item={"pk": {"S": "x"}})
    assert proxy.counts[("PutItem", "reset_before")] >= 1
    assert _keys(ddb, table) == set()


def test_reset_after_forwarding_wrote_the_item(proxy: FaultProxy, table: str, ddb: Any) -> None:
    proxy.set_rules({"PutItem": FaultRule(reset_after=1.0)})
    with pytest.raises(ConnectionClosedError):
        _client(proxy.url).put_item(TableName=table, Item={"pk": {"S": "y"}})
    assert proxy.counts[("PutItem", "reset_after")] >= 1
    assert _keys(ddb, table) == {"y"}


def test_slow_responses_are_counted(proxy: FaultProxy, table: str) -> None:
    proxy.set_rules({"*": FaultRule(slow=1.0, slow_seconds=0.01)})
    _client(proxy.url).describe_table(TableName=table)
    assert proxy.counts[("DescribeTable", "slow")] == 1


def test_partial_unprocessed_items_lose_nothing(proxy: FaultProxy, table: str, ddb: Any) -> None:
    proxy.set_rules({"BatchWriteItem": FaultRule(unprocessed=1.0, unprocessed_share=0.6)})
    requests = [{"PutRequest": {"Item": {"pk": {"S": f"k{i}"}}}} for i in range(20)]
    resp = _client(proxy.url).batch_write_item(RequestItems={table: requests})
    held = resp["UnprocessedItems"][table]
    held_keys = {r["PutRequest"]["Item"]["pk"]["S"] for r in held}
    assert len(held) == 12
    written = _keys(ddb, table)
    assert written.isdisjoint(held_keys)
    assert written | held_keys == {f"k{i}" for i in range(20)}
    assert proxy.withheld[("BatchWriteItem", "items")] == 12


def test_a_single_request_batch_is_always_forwarded(
    proxy: FaultProxy, table: str, ddb: Any
) -> None:
    proxy.set_rules({"BatchWriteItem": FaultRule(unprocessed=1.0, unprocessed_share=1.0)})
    one = [{"PutRequest": {"Item": {"pk": {"S": "only"}}}}]
    resp = _client(proxy.url).batch_write_item(RequestItems={table: one})
    assert not resp["UnprocessedItems"]
    assert _keys(ddb, table) == {"only"}


def test_partial_unprocessed_keys(proxy: FaultProxy, table: str, ddb: Any) -> None:
    for i in range(10):
        ddb.put_item(TableName=table, Item={"pk": {"S": f"g{i}"}})
    proxy.set_rules({"BatchGetItem": FaultRule(unprocessed=1.0)})
    keys = [{"pk": {"S": f"g{i}"}} for i in range(10)]
    resp = _client(proxy.url).batch_get_item(
        RequestItems={table: {"Keys": keys, "ConsistentRead": True}}
    )
    got = {i["pk"]["S"] for i in resp["Responses"][table]}
    unprocessed = resp["UnprocessedKeys"][table]
    assert unprocessed["ConsistentRead"] is True
    held = {k["pk"]["S"] for k in unprocessed["Keys"]}
    assert len(held) == 5 and got.isdisjoint(held)
    assert got | held == {f"g{i}" for i in range(10)}


def _fault_sequence(endpoint: str, table: str, seed: int) -> list[str]:
    rules = {"*": FaultRule(throttle=0.3, slow=0.2, slow_seconds=0.0)}
    with FaultProxy(endpoint, seed=seed, rules=rules, max_consecutive=1000) as p:
        client = _client(p.url)
        out = []
        for _ in range(30):
            before = dict(p.counts)
            with contextlib.suppress(ClientError):
                client.describe_table(TableName=table)
            changed = [f for (_op, f), n in p.counts.items() if n != before.get((_op, f), 0)]
            out.append(changed[0] if changed else "-")
        return out


def test_faults_are_deterministic_for_a_seed(endpoint: str, table: str) -> None:
    a = _fault_sequence(endpoint, table, 7)
    assert a == _fault_sequence(endpoint, table, 7)
    assert a != _fault_sequence(endpoint, table, 8)
    assert "throttle" in a and "slow" in a and "-" in a


def test_disabled_proxy_and_headerless_requests_pass(proxy: FaultProxy, table: str) -> None:
    proxy.set_rules({"*": FaultRule(throttle=1.0)})
    proxy.enabled = False
    _client(proxy.url).describe_table(TableName=table)
    assert proxy.faults_injected == 0


def test_loopback_only() -> None:
    with pytest.raises(ValueError, match="loopback"):
        FaultProxy("http://example.com:80")
    with pytest.raises(ValueError):
        FaultRule(throttle=1.5)
    p = FaultProxy("http://127.0.0.1:9").start()
    try:
        assert p.url.startswith("http://127.0.0.1:")
    finally:
        p.stop()
