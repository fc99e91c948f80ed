"""The apply engine's rules without AWS: parsing, TTL detection, what coalescing may skip.

The DynamoDB client is a recording fake (AWS is faked, the engine is real)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from dynashift.models import Clients, TableLocation
from dynashift.replicator import Replicator, approximate_creation, is_ttl_delete


class RecordingClient:
    def __init__(self) -> None:
        self.calls: list[tuple[str, str, dict[str, Any]]] = []

    def put_item(self, **kw: Any) -> dict[str, Any]:
        self.calls.append(("put", kw["Item"]["pk"]["S"], kw))
        return {}

    def delete_item(self, **kw: Any) -> dict[str, Any]:
        self.calls.append(("delete", kw["Key"]["pk"]["S"], kw))
        return {}


class Factory:
    def __init__(self) -> None:
        self.client = RecordingClient()

    def dynamodb(self) -> RecordingClient:
        return self.client


def engine(**kwargs: Any) -> tuple[Replicator, RecordingClient]:
    factory = Factory()
    repl = Replicator(
        TableLocation(name="target"),
        ["pk"],
        state=None,
        clients=Clients.fixed(factory),
        **kwargs,  # type: ignore[arg-type]
    )
    return repl, factory.client


def rec(name: str, pk: str, ttl: bool = False, **attrs: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"Keys": {"pk": {"S": pk}}, "SequenceNumber": f"{len(attrs)}{pk}"}
    if name != "REMOVE":
        body["NewImage"] = {"pk": {"S": pk}, **attrs}
    out: dict[str, Any] = {"eventName": name, "dynamodb": body}
    if ttl:
        out["userIdentity"] = {"type": "Service", "principalId": "dynamodb.amazonaws.com"}
    return out


def test_ttl_delete_detection() -> None:
    assert is_ttl_delete(rec("REMOVE", "a", ttl=True))
    assert not is_ttl_delete(rec("REMOVE", "a"))
    assert not is_ttl_delete(rec("MODIFY", "a", ttl=True))
    user = rec("REMOVE", "a")
    user["userIdentity"] = {"type": "Service", "principalId": "someone.amazonaws.com"}
    assert not is_ttl_delete(user)
    botocore_shape = rec("REMOVE", "a")
    botocore_shape["userIdentity"] = {"Type": "Service", "PrincipalId": "dynamodb.amazonaws.com"}
    assert is_ttl_delete(botocore_shape)


def test_approximate_creation_accepts_both_encodings() -> None:
    assert approximate_creation(1_700_000_000) == 1_700_000_000.0
    assert approximate_creation(datetime.fromtimestamp(5, UTC)) == 5.0
    assert approximate_creation(None) is None
    assert approximate_creation("soon") is None


def test_only_the_last_unconditional_write_of_a_key_is_sent() -> None:
    repl, client = engine()
    batch = [rec("INSERT", "a", v={"N": "1"}), rec("REMOVE", "a")]
    batch += [rec("INSERT", "a", v={"N": "2"}), rec("MODIFY", "b", v={"N": "1"})]
    res = repl.apply(batch)
    assert [(op, pk) for op, pk, _ in client.calls] == [("put", "a"), ("put", "b")]
    assert client.calls[0][2]["Item"]["v"] == {"N": "2"}
    assert "ConditionExpression" not in client.calls[0][2]
    assert (res.applied, res.coalesced, res.puts) == (4, 2, 2)


def test_versioned_puts_are_all_sent_in_order_with_conditions() -> None:
    repl, client = engine(version_attribute="ver")
    repl.apply([rec("MODIFY", "a", ver={"N": "1"}), rec("MODIFY", "a", ver={"N": "2"})])
    assert [c[2]["ExpressionAttributeValues"][":v"] for c in client.calls] == [
        {"N": "1"},
        {"N": "2"},
    ]
    # An item without the version attribute is written unconditionally, so it supersedes.
    client.calls.clear()
    res = repl.apply([rec("MODIFY", "a", ver={"N": "3"}), rec("MODIFY", "a", x={"S": "1"})])
    assert res.coalesced == 1 and len(client.calls) == 1


def test_skipped_ttl_delete_supersedes_nothing() -> None:
    repl, client = engine(skip_ttl_deletes=True)
    res = repl.apply([rec("INSERT", "a", v={"N": "1"}), rec("REMOVE", "a", ttl=True)])
    assert (res.skipped_ttl, res.coalesced, res.puts) == (1, 0, 1)
    assert [op for op, _, _ in client.calls] == ["put"]


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        ({"eventName": "MODIFY", "dynamodb": {"Keys": {"pk": {"S": "x"}}}}, "NewImage"),
        ({"eventName": "TRUNCATE", "dynamodb": {"Keys": {"pk": {"S": "x"}}}}, "eventName"),
        ({"eventName": "REMOVE", "dynamodb": {"Keys": {"id": {"S": "x"}}}}, "pk"),
    ],
)
def test_an_unusable_record_stops_the_batch_before_anything_after_it(
    bad: dict[str, Any], message: str
) -> None:
    repl, client = engine()
    res = repl.apply([rec("INSERT", "a", v={"N": "1"}), bad, rec("INSERT", "c", v={"N": "1"})])
    assert res.failed_index == 1 and res.applied == 1 and message in (res.error or "")
    assert [pk for _, pk, _ in client.calls] == ["a"]
