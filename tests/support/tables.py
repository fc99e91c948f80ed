"""Small table helpers shared by the reliability tests (independent of the dynashift engine)."""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterable
from typing import Any

import boto3
from botocore.config import Config

from tests.support.writer import default_item

#: The account and region of the moto server (moto's default account).
ACCOUNT = "123456789012"
REGION = "us-east-1"
HASH_ONLY = [{"AttributeName": "pk", "KeyType": "HASH"}]
HASH_RANGE = [
    {"AttributeName": "pk", "KeyType": "HASH"},
    {"AttributeName": "sk", "KeyType": "RANGE"},
]
#: `create_table(ddb, name, **SK_NUMBER)`: keyed pk (S) + sk (N).
SK_NUMBER: dict[str, Any] = {"sort_key": "sk", "types": {"sk": "N"}}


def client(endpoint: str, service: str = "dynamodb", attempts: int = 10) -> Any:
    """A fresh client on `endpoint` (a moto server or a FaultProxy), standard retries; its own,
    so faults can be registered on it (never on the shared `ddb` fixture)."""
    return boto3.client(
        service,
        region_name=REGION,
        endpoint_url=endpoint,
        config=Config(
            retries={"mode": "standard", "total_max_attempts": attempts},
            max_pool_connections=32,  # the backfill's writers share one client
        ),
    )


def create_table(
    ddb: Any,
    name: str,
    key_schema: list[dict[str, str]] | None = None,
    *,
    sort_key: str | None = None,
    types: dict[str, str] | None = None,
    attributes: dict[str, str] | None = None,
    stream: bool = False,
    **extra: Any,
) -> str:
    """An on-demand table keyed `pk` (+ `sort_key`), or by `key_schema`; attribute types default
    to S; `attributes` defines more (an index's keys: name -> type); `extra` goes to CreateTable
    as is."""
    types = types or {}
    schema = key_schema or [{"AttributeName": "pk", "KeyType": "HASH"}]
    if sort_key and not key_schema:
        schema = [*schema, {"AttributeName": sort_key, "KeyType": "RANGE"}]
    kwargs: dict[str, Any] = {
        "TableName": name,
        "KeySchema": schema,
        "AttributeDefinitions": [
            {
                "AttributeName": k["AttributeName"],
                "AttributeType": types.get(k["AttributeName"], "S"),
            }
            for k in schema
        ]
        + [{"AttributeName": n, "AttributeType": t} for n, t in (attributes or {}).items()],
        "BillingMode": "PAY_PER_REQUEST",
        **extra,
    }
    if stream:
        kwargs["StreamSpecification"] = {
            "StreamEnabled": True,
            "StreamViewType": "NEW_AND_OLD_IMAGES",
        }
    ddb.create_table(**kwargs)
    return name


def enable_stream(ddb: Any, table: str) -> str:
    """Turn on NEW_AND_OLD_IMAGES (after the initial fill, like a live table) -> stream ARN."""
    resp = ddb.update_table(
        TableName=table,
        StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"},
    )
    return str(resp["TableDescription"]["LatestStreamArn"])


def simple_items(n: int, start: int = 0) -> list[dict[str, Any]]:
    """`n` small items keyed pk=S `k00000`... with a number `v` and a string `s`."""
    return [
        {"pk": {"S": f"k{i:05d}"}, "v": {"N": str(i)}, "s": {"S": f"item {i}"}}
        for i in range(start, start + n)
    ]


def varied_items(n: int, seed: int = 0, prefix: str = "k") -> list[dict[str, Any]]:
    """`n` items keyed pk=S, with every attribute type (see writer.default_item)."""
    rng = random.Random(seed)
    return [{"pk": {"S": f"{prefix}{i:05d}"}, **default_item(rng)} for i in range(n)]


def fill(ddb: Any, table: str, items: Iterable[dict[str, Any]]) -> int:
    """Write items with BatchWriteItem, retrying anything left unprocessed."""
    batch: list[dict[str, Any]] = []
    n = 0

    def flush(requests: list[dict[str, Any]]) -> None:
        for _ in range(50):
            resp = ddb.batch_write_item(RequestItems={table: requests})
            requests = resp.get("UnprocessedItems", {}).get(table, [])
            if not requests:
                return
        raise AssertionError("BatchWriteItem never finished")

    for item in items:
        batch.append({"PutRequest": {"Item": item}})
        n += 1
        if len(batch) == 25:
            flush(batch)
            batch = []
    if batch:
        flush(batch)
    return n


def list_tables(ddb: Any) -> set[str]:
    names: set[str] = set()
    kwargs: dict[str, Any] = {}
    for _ in range(1000):
        resp = ddb.list_tables(**kwargs)
        names.update(resp.get("TableNames", []))
        if "LastEvaluatedTableName" not in resp:
            return names
        kwargs["ExclusiveStartTableName"] = resp["LastEvaluatedTableName"]
    raise AssertionError("ListTables did not end")


def wait_until(predicate: Callable[[], bool], timeout: float = 30.0, every: float = 0.05) -> bool:
    """Poll `predicate` until it holds or `timeout` passes (never forever)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(every)
    return predicate()


def provisioned_description(
    capacity: tuple[int, int], gsis: list[dict[str, Any]], *, tags: Any = None, **table: Any
) -> Any:
    """A `TableDescription` of a provisioned table `orders` keyed `pk`, with GSIs keyed `g`
    (`gsis`, as DescribeTable gives them); `table` adds DescribeTable fields (no endpoint)."""
    from dynashift.target import TableDescription

    return TableDescription(
        name="orders",
        table={
            "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"}],
            "AttributeDefinitions": [
                {"AttributeName": "pk", "AttributeType": "S"},
                {"AttributeName": "g", "AttributeType": "S"},
            ],
            "BillingModeSummary": {"BillingMode": "PROVISIONED"},
            "ProvisionedThroughput": {
                "ReadCapacityUnits": capacity[0],
                "WriteCapacityUnits": capacity[1],
            },
            "GlobalSecondaryIndexes": gsis,
            **table,
        },
        tags=tags,
    )
