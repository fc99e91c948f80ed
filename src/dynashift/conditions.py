"""Condition expressions, built in one place and tested without AWS (STYLE habit 7).

Every expression uses `#name` / `:value` placeholders. A failed condition is an expected,
counted outcome (ConditionalCheckFailedException), never an error.

Why the backfill never replaces what the replicator wrote (invariant I4, issue 13 item 1)
----------------------------------------------------------------------------------------

During a migration the target has exactly two writers: the backfill (scan images) and the
replicator (stream records). Tombstone cleanup and marker stripping run after the phase is
PLAIN and every backfill invocation is over (`tombstones.finish_backfill` waits out their leases;
each page re-reads the phase), so they never race a backfill put. The write mode is decided once,
when the phase is first set (`backfill.start_backfill`), before the replicator's first write:

* **Empty target** (`overwrite_older` False — this migration created the target, or a Scan found
  it empty before the phase was set; a migration whose mode was not recorded reads as this mode
  too, which is safe: its backfill replaces nothing): the backfill put is
  `attribute_not_exists(#pk)`, with or without a version attribute, and replicated puts carry no
  marker. Every item in the target was written by the backfill or the replicator, and this put
  writes only where nothing is, so it replaces nothing at all — in particular nothing the
  replicator wrote. The backfill never needs to replace anything here: convergence comes from
  the stream. For a key whose last stream record R is a REMOVE, the replicator's tombstone is
  unconditional and blocks later backfill puts; cleanup deletes it. If R is a put, the target
  just before R is applied holds (a) a replicator write of R's lifetime (between two lifetimes
  lies a REMOVE whose tombstone is applied in between), whose version is <= R's because versions
  grow within a lifetime, or a tombstone; or (b) a backfill image I written before the
  replicator's first write of the key (afterwards the key exists and the put fails). I was read
  at or after the stream was enabled; if a REMOVE followed it, that REMOVE's tombstone is
  applied after I and before R; otherwise I is of R's lifetime and not newer than R. So R's
  condition (`replicated_put`) passes and the key ends at R. A key without stream records did
  not change since the stream was enabled: the scan read its final image, nothing else writes
  the key, and the put succeeds. The re-create case (scan reads v5, delete, re-create at v1) is
  (b) with a REMOVE after I: the stale v5 can only land before the tombstone, which replaces it.
* **Non-empty target** with a version attribute (`overwrite_older` True): an item that was in
  the target before the migration may be older than the source and the backfill replaces it when
  its version is lower. To tell such items from the replicator's, every replicated write made
  while the phase is BACKFILL carries a mark: a tombstone carries `TOMBSTONE_ATTR`; a versioned
  put carries `REPLICATED_ATTR` = the migration's marker token plus a unique suffix (registered
  in the state store *before* the write, like a tombstone, and stripped by `finish_backfill`,
  conditionally on the exact value, so a write in between is never undone); an unversioned
  replicated put leaves no version attribute on the item, so `#v < :v` is false for it. The
  backfill put `attribute_not_exists(#pk) OR (attribute_not_exists(#tomb) AND
  attribute_not_exists(#rep) AND #v < :v)` therefore replaces only unmarked items holding a
  version: pre-migration items or the backfill's own earlier images. A replicator that writes a
  mark just as the phase turns PLAIN re-reads the phase and strips its own mark (the same
  argument as for tombstones, `tombstones` module docstring): a mark never outlives the
  backfill. Convergence is then the argument above, with "a pre-migration item" added to (b): it
  is replaced by the scan image, or by R. (A pre-migration item from an older lifetime with a
  higher version than the source's is beyond any condition: verification reports it.)

Write cost: nothing extra for the common empty target (the condition is cheaper than before);
with a non-empty target and a version attribute, each versioned replicated put during the
backfill costs one state-store write before it, one consistent phase read after it, and one
consistent GetItem plus one conditional PutItem in `finish_backfill`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from dynashift.items import REPLICATED_ATTR, TOMBSTONE_ATTR


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
    partition_key: str,
    item: Mapping[str, Any],
    version_attribute: str | None = None,
    *,
    overwrite_older: bool = True,
) -> Condition:
    """Invariant I4 (and I5): a backfill put never overwrites a replicated write or tombstone.

    Without a version attribute, or with `overwrite_older` False (an empty target, see the
    module docstring): `attribute_not_exists(pk)` — anything already in the target is newer than
    the scan and wins. Otherwise an older, unmarked target version may be replaced, but never a
    tombstone nor a replicated put: `attribute_not_exists(pk) OR (attribute_not_exists(#tomb)
    AND attribute_not_exists(#rep) AND #v < :v)`. An item without the version attribute falls
    back to the plain condition.
    """
    names = {"#pk": partition_key}
    if not overwrite_older or version_attribute is None or version_attribute not in item:
        return Condition("attribute_not_exists(#pk)", names)
    return Condition(
        "attribute_not_exists(#pk) OR (attribute_not_exists(#tomb)"
        " AND attribute_not_exists(#rep) AND #v < :v)",
        {**names, "#tomb": TOMBSTONE_ATTR, "#rep": REPLICATED_ATTR, "#v": version_attribute},
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


def still_marked(value: str) -> Condition:
    """Marker stripping rewrites an item only while it carries exactly the marker value read
    (each marked put writes a value of its own, so any write in between wins)."""
    return Condition("#rep = :m", {"#rep": REPLICATED_ATTR}, {":m": {"S": value}})
