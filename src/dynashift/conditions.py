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
