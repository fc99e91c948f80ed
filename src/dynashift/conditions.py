"""Condition expressions, built in one place and tested without AWS (STYLE habit 7).

Every expression uses `#name` / `:value` placeholders. A failed condition is an expected,
counted outcome (ConditionalCheckFailedException), never an error.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from dynashift.items import TOMBSTONE_ATTR


@dataclass(frozen=True)
class Condition:
    expression: str
    names: dict[str, str] = field(default_factory=dict)
    values: dict[str, Any] = field(default_factory=dict)

    def kwargs(self) -> dict[str, Any]:
        """Keyword arguments for PutItem / DeleteItem."""
        out: dict[str, Any] = {"ConditionExpression": self.expression}
        if self.names:
            out["ExpressionAttributeNames"] = dict(self.names)
        if self.values:
            out["ExpressionAttributeValues"] = dict(self.values)
        return out


def backfill_put(
    partition_key: str, item: Mapping[str, Any], version_attribute: str | None = None
) -> Condition:
    """Invariant I4 (and I5): a backfill put never overwrites a replicated write or tombstone.

    Without a version attribute: `attribute_not_exists(pk)` — anything already in the target
    (a replicated write, a tombstone) is newer than the scan and wins.
    With one, an older target version may be replaced, but never a tombstone:
    `attribute_not_exists(pk) OR (attribute_not_exists(#tomb) AND #v < :v)`.
    An item without the version attribute falls back to the plain condition.
    """
    names = {"#pk": partition_key}
    if version_attribute is None or version_attribute not in item:
        return Condition("attribute_not_exists(#pk)", names)
    return Condition(
        "attribute_not_exists(#pk) OR (attribute_not_exists(#tomb) AND #v < :v)",
        {**names, "#tomb": TOMBSTONE_ATTR, "#v": version_attribute},
        {":v": item[version_attribute]},
    )


def replicated_put(
    partition_key: str, item: Mapping[str, Any], version_attribute: str | None = None
) -> Condition | None:
    """A replicated INSERT/MODIFY: unconditional, unless a version attribute is in use.

    With a version attribute the stream's write wins over an older or equal version, over a
    tombstone and over a target item that has no version yet (written before the attribute
    existed, or by a key-only INSERT), and loses only to a strictly newer version already in
    the target (so a batch applied twice is harmless, invariant I3).
    """
    if version_attribute is None or version_attribute not in item:
        return None
    return Condition(
        "attribute_not_exists(#pk) OR attribute_exists(#tomb) OR attribute_not_exists(#v)"
        " OR #v <= :v",
        {"#pk": partition_key, "#tomb": TOMBSTONE_ATTR, "#v": version_attribute},
        {":v": item[version_attribute]},
    )


def still_tombstone() -> Condition:
    """Tombstone cleanup deletes only what is still a tombstone (a re-created item survives)."""
    return Condition("attribute_exists(#tomb)", {"#tomb": TOMBSTONE_ATTR})


#: DynamoDB's limit on the length of one expression string.
MAX_EXPRESSION_LENGTH = 4096


def unchanged_since_read(
    partition_key: str,
    seen: Mapping[str, Any] | None,
    key_names: tuple[str, ...] | list[str] = (),
    absent: tuple[str, ...] | list[str] = (),
) -> Condition | None:
    """A repair write applies only to the item exactly as it was read (issue 13, item 6).

    `seen` None (the item was absent): `attribute_not_exists(pk)`. Otherwise the item must exist
    and hold every attribute it was read with, each equal to the value read (key attributes are
    equal by the key), and none of `absent` (the attributes the new image has and the read one
    lacked, the likeliest to appear with a newer write). A write since the read that changes,
    removes or adds one of those attributes fails the condition. None when the expression would
    exceed DynamoDB's 4 KB limit (an item with hundreds of attributes): the caller must fall back
    to a consistent re-read right before an unconditional write.
    """
    names = {"#pk": partition_key}
    if seen is None:
        return Condition("attribute_not_exists(#pk)", names)
    clauses = ["attribute_exists(#pk)"]
    values: dict[str, Any] = {}
    keys = set(key_names) | {partition_key}
    for i, (name, value) in enumerate(sorted((n, v) for n, v in seen.items() if n not in keys)):
        names[f"#a{i}"] = name
        values[f":a{i}"] = value
        clauses.append(f"#a{i} = :a{i}")
    for i, name in enumerate(sorted(set(absent) - set(seen) - keys)):
        names[f"#n{i}"] = name
        clauses.append(f"attribute_not_exists(#n{i})")
    expression = " AND ".join(clauses)
    if len(expression) > MAX_EXPRESSION_LENGTH:
        return None
    return Condition(expression, names, values)
