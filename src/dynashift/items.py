"""Pure functions on items in DynamoDB wire format (`{"S": "x"}` attribute values).

Items travel from scan to write in wire format and are never converted to Python types and
back. Comparison treats numbers by exact value ("1.50" == "1.5", all 38 digits), sets as
unordered, binary by bytes, and lists / maps recursively.

Two encodings of wire format exist: what botocore returns (binary values are `bytes`) and the
JSON of a Lambda stream event (binary values are base64 strings). `from_event_json` and
`to_event_json` convert between them, for `B` and `BS` only, recursively.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from decimal import Decimal, InvalidOperation
from typing import Any

Item = dict[str, Any]
AttributeValue = Mapping[str, Any]
KeySchema = Sequence[Mapping[str, str]]

#: Marker attribute of a tombstone item in the target (invariant I5). An item carrying it is
#: a record of a delete, not data: verification and sync treat it as absent.
TOMBSTONE_ATTR = "__dynashift_tombstone"

#: Marker of a versioned put the replicator made while the backfill ran (`conditions` module
#: docstring): the backfill never replaces such an item; removed when the backfill finishes.
REPLICATED_ATTR = "__dynashift_replicated"

#: Attribute names dynashift writes into a target: a source item holding one is refused.
RESERVED_ATTRS = frozenset({TOMBSTONE_ATTR, REPLICATED_ATTR})

#: Bookkeeping attributes of legacy (2017) global tables, ignored by default.
LEGACY_REPLICATION_PREFIX = "aws:rep:"


def is_tombstone(item: Mapping[str, Any] | None) -> bool:
    return bool(item) and TOMBSTONE_ATTR in item  # type: ignore[operator]


# --- keys ------------------------------------------------------------------------------------


def key_names(key_schema: KeySchema) -> tuple[str, ...]:
    """(partition key, [sort key]) attribute names, in that order."""
    hash_keys = [k["AttributeName"] for k in key_schema if k["KeyType"] == "HASH"]
    range_keys = [k["AttributeName"] for k in key_schema if k["KeyType"] == "RANGE"]
    return tuple(hash_keys + range_keys)


def key_of(item: Mapping[str, Any], names: Sequence[str]) -> Item:
    """The key attributes of `item` (wire format)."""
    return {name: item[name] for name in names}


def key_id(key: Mapping[str, Any]) -> str:
    """A stable, hashable text form of a key (for sets, dict keys and the state store)."""
    return json.dumps(to_event_json(dict(key)), sort_keys=True, separators=(",", ":"))


def key_from_id(text: str) -> Item:
    return from_event_json(json.loads(text))


# --- TTL ---------------------------------------------------------------------------------------

#: DynamoDB's TTL never deletes an item whose expiry time is more than five years in the past.
TTL_MAX_AGE_SECONDS = 5 * 365 * 24 * 3600


def is_expired(item: Mapping[str, Any] | None, ttl_attribute: str | None, now: float) -> bool:
    """True when DynamoDB's TTL on `ttl_attribute` expires `item` at `now` (epoch seconds).

    The attribute must be a number of epoch seconds in the past, and not more than five years
    in the past (DynamoDB ignores those). An item without it, or with another type, never
    expires.
    """
    if not item or not ttl_attribute:
        return False
    value = item.get(ttl_attribute)
    if not isinstance(value, Mapping) or "N" not in value:
        return False
    expires = _number(str(value["N"]))
    if not isinstance(expires, Decimal):
        return False
    at = Decimal(str(now))
    return at - TTL_MAX_AGE_SECONDS <= expires < at


# --- comparison ------------------------------------------------------------------------------


def _number(text: str) -> Decimal | str:
    """The exact value of a number (or the text itself when it is not a finite number).

    No context is involved: `Decimal(text)` keeps every digit, and `Decimal`'s `==` and `hash`
    compare values exactly ("1.0" == "1", "1E+2" == "100"), so two numbers that differ only in
    their 38th significant digit (DynamoDB's precision) stay different. (`normalize()` would
    round to the thread's context, 28 digits by default, and call them equal.)
    """
    try:
        value = Decimal(text)
    except InvalidOperation:
        return text
    return value if value.is_finite() else text


def _binary(value: bytes | bytearray | str) -> bytes:
    if isinstance(value, str):
        return base64.b64decode(value)
    return bytes(value)


def values_equal(a: AttributeValue, b: AttributeValue) -> bool:
    """True when two wire-format attribute values are equal by DynamoDB's meaning."""
    if len(a) != 1 or len(b) != 1:
        return a == b
    (ta, va), (tb, vb) = next(iter(a.items())), next(iter(b.items()))
    if ta != tb:
        return False
    if ta == "N":
        return _number(va) == _number(vb)
    if ta == "NS":
        return {_number(x) for x in va} == {_number(x) for x in vb}
    if ta == "SS":
        return set(va) == set(vb)
    if ta == "B":
        return _binary(va) == _binary(vb)
    if ta == "BS":
        return {_binary(x) for x in va} == {_binary(x) for x in vb}
    if ta == "L":
        return len(va) == len(vb) and all(values_equal(x, y) for x, y in zip(va, vb, strict=True))
    if ta == "M":
        return va.keys() == vb.keys() and all(values_equal(va[k], vb[k]) for k in va)
    return bool(va == vb)


def ignored_predicate(
    ignore: Iterable[str] = (), ignore_legacy: bool = True
) -> Callable[[str], bool]:
    names = frozenset(ignore)

    def is_ignored(name: str) -> bool:
        if name in names or name in RESERVED_ATTRS:
            return True
        return ignore_legacy and name.startswith(LEGACY_REPLICATION_PREFIX)

    return is_ignored


def differing_attributes(
    a: Mapping[str, Any], b: Mapping[str, Any], is_ignored: Callable[[str], bool]
) -> list[str]:
    """Names of top-level attributes that differ (present on one side only, or unequal)."""
    names = {n for n in a.keys() | b.keys() if not is_ignored(n)}
    return sorted(n for n in names if n not in a or n not in b or not values_equal(a[n], b[n]))


def items_equal(
    a: Mapping[str, Any],
    b: Mapping[str, Any],
    ignore: Iterable[str] = (),
    ignore_legacy: bool = True,
) -> bool:
    return not differing_attributes(a, b, ignored_predicate(ignore, ignore_legacy))


# --- encodings -------------------------------------------------------------------------------


def _map_binary(value: Any, conv: Callable[[Any], Any]) -> Any:
    if not isinstance(value, Mapping) or len(value) != 1:
        return value
    ((t, v),) = value.items()
    if t == "B":
        return {"B": conv(v)}
    if t == "BS":
        return {"BS": [conv(x) for x in v]}
    if t == "L":
        return {"L": [_map_binary(x, conv) for x in v]}
    if t == "M":
        return {"M": {k: _map_binary(x, conv) for k, x in v.items()}}
    return value


def _to_b64(v: Any) -> Any:
    return base64.b64encode(bytes(v)).decode("ascii") if isinstance(v, bytes | bytearray) else v


def _from_b64(v: Any) -> Any:
    return base64.b64decode(v) if isinstance(v, str) else v


def to_event_json(item: Mapping[str, Any]) -> Item:
    """botocore wire format -> JSON wire format (binary as base64 text)."""
    return {k: _map_binary(v, _to_b64) for k, v in item.items()}


def from_event_json(item: Mapping[str, Any]) -> Item:
    """JSON wire format (Lambda events, state store) -> botocore wire format (binary as bytes)."""
    return {k: _map_binary(v, _from_b64) for k, v in item.items()}


# --- size (DynamoDB's accounting) ------------------------------------------------------------


def _number_size(text: str) -> int:
    digits = text.lstrip("-").replace(".", "").lstrip("0") or "0"
    digits = digits.split("e")[0].split("E")[0]
    return (len(digits) + 1) // 2 + 1


def value_size(value: AttributeValue) -> int:
    ((t, v),) = value.items()
    if t == "S":
        return len(v.encode("utf-8"))
    if t == "N":
        return _number_size(v)
    if t == "B":
        return len(_binary(v))
    if t == "SS":
        return sum(len(x.encode("utf-8")) for x in v)
    if t == "NS":
        return sum(_number_size(x) for x in v)
    if t == "BS":
        return sum(len(_binary(x)) for x in v)
    if t in ("BOOL", "NULL"):
        return 1
    if t == "L":
        return 3 + sum(1 + value_size(x) for x in v)
    if t == "M":
        return 3 + sum(len(k.encode("utf-8")) + 1 + value_size(x) for k, x in v.items())
    return 0


def item_size(item: Mapping[str, Any]) -> int:
    """Approximate size of an item in bytes by DynamoDB's rules (names + values)."""
    return sum(len(name.encode("utf-8")) + value_size(value) for name, value in item.items())
