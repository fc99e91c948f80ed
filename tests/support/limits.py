"""DynamoDB's key-size limits, which moto does not enforce, enforced on a test's client.

`enforce_key_limits(client)` makes every PutItem / GetItem / DeleteItem / UpdateItem of that
client fail like DynamoDB (ValidationException) when a key attribute of the request is longer
than 2,048 bytes (partition key) or 1,024 bytes (sort key). Key attribute names are taken from
DescribeTable, once per table.
"""

from __future__ import annotations

import base64
from typing import Any

from botocore.exceptions import ClientError

PARTITION_KEY_MAX = 2048
SORT_KEY_MAX = 1024


def value_bytes(value: dict[str, Any]) -> int:
    ((kind, v),) = value.items()
    if kind == "S":
        return len(v.encode("utf-8"))
    if kind == "N":
        return len(v)
    if kind == "B":
        return len(base64.b64decode(v) if isinstance(v, str) else v)
    raise AssertionError(f"not a key type: {kind}")


def enforce_key_limits(client: Any) -> list[int]:
    """Register the check on `client`; returns the list of sizes seen (for assertions)."""
    schemas: dict[str, list[tuple[str, str]]] = {}
    seen: list[int] = []

    def schema(table: str) -> list[tuple[str, str]]:
        if table not in schemas:
            desc = client.describe_table(TableName=table)["Table"]["KeySchema"]
            schemas[table] = [(k["AttributeName"], k["KeyType"]) for k in desc]
        return schemas[table]

    def check(params: dict[str, Any], model: Any, **_kwargs: Any) -> None:
        record = params.get("Key") or params.get("Item")
        if not record or "TableName" not in params:
            return
        for name, kind in schema(params["TableName"]):
            size = value_bytes(record[name])
            seen.append(size)
            limit = PARTITION_KEY_MAX if kind == "HASH" else SORT_KEY_MAX
            if size > limit:
                raise ClientError(
                    {
                        "Error": {
                            "Code": "ValidationException",
                            "Message": f"key attribute {name} is {size} bytes (limit {limit})",
                        }
                    },
                    model.name,
                )

    for op in ("PutItem", "GetItem", "DeleteItem", "UpdateItem"):
        client.meta.events.register(f"provide-client-params.dynamodb.{op}", check)
    return seen
