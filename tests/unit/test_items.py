from __future__ import annotations

import pytest

from dynashift.items import (
    TOMBSTONE_ATTR,
    differing_attributes,
    from_event_json,
    ignored_predicate,
    item_size,
    items_equal,
    key_from_id,
    key_id,
    key_names,
    key_of,
    to_event_json,
    values_equal,
)


@pytest.mark.parametrize(
    ("a", "b", "equal"),
    [
        ({"N": "1.50"}, {"N": "1.5"}, True),
        ({"N": "1"}, {"N": "1.0"}, True),
        ({"N": "100"}, {"N": "1E+2"}, True),
        ({"N": "1"}, {"N": "2"}, False),
        ({"N": "1"}, {"S": "1"}, False),
        ({"NS": ["1", "2.0"]}, {"NS": ["2", "1.00"]}, True),
        ({"NS": ["1", "2"]}, {"NS": ["1", "3"]}, False),
        ({"SS": ["a", "b"]}, {"SS": ["b", "a"]}, True),
        ({"SS": ["a", "b"]}, {"SS": ["a"]}, False),
        ({"B": b"\x00\x01"}, {"B": "AAE="}, True),
        ({"B": b"\x00\x01"}, {"B": b"\x00\x02"}, False),
        ({"BS": [b"a", b"b"]}, {"BS": [b"b", b"a"]}, True),
        ({"L": [{"N": "1"}, {"S": "x"}]}, {"L": [{"N": "1.0"}, {"S": "x"}]}, True),
        ({"L": [{"N": "1"}, {"S": "x"}]}, {"L": [{"S": "x"}, {"N": "1"}]}, False),
        ({"L": [{"N": "1"}]}, {"L": [{"N": "1"}, {"N": "1"}]}, False),
        ({"M": {"a": {"N": "1"}}}, {"M": {"a": {"N": "1.0"}}}, True),
        ({"M": {"a": {"N": "1"}}}, {"M": {"a": {"N": "1"}, "b": {"NULL": True}}}, False),
        ({"BOOL": True}, {"BOOL": False}, False),
        ({"NULL": True}, {"NULL": True}, True),
    ],
)
def test_values_equal(a, b, equal):
    assert values_equal(a, b) is equal
    assert values_equal(b, a) is equal


def test_items_equal_ignores_listed_legacy_and_tombstone_attributes():
    a = {"pk": {"S": "1"}, "v": {"N": "1"}, "ts": {"N": "5"}, "aws:rep:updatetime": {"N": "1"}}
    b = {"pk": {"S": "1"}, "v": {"N": "1.0"}, "ts": {"N": "6"}}
    assert not items_equal(a, b)
    assert items_equal(a, b, ignore=["ts"])
    assert not items_equal(a, b, ignore=["ts"], ignore_legacy=False)
    assert items_equal({**b, TOMBSTONE_ATTR: {"N": "1"}}, b, ignore=["ts"])


def test_differing_attributes_names_missing_and_changed():
    a = {"pk": {"S": "1"}, "x": {"S": "a"}, "y": {"N": "1"}}
    b = {"pk": {"S": "1"}, "x": {"S": "b"}, "z": {"N": "1"}}
    assert differing_attributes(a, b, ignored_predicate()) == ["x", "y", "z"]


def test_keys():
    schema = [
        {"AttributeName": "sk", "KeyType": "RANGE"},
        {"AttributeName": "pk", "KeyType": "HASH"},
    ]
    assert key_names(schema) == ("pk", "sk")
    item = {"pk": {"B": b"\x01"}, "sk": {"N": "2"}, "v": {"S": "x"}}
    key = key_of(item, key_names(schema))
    assert key == {"pk": {"B": b"\x01"}, "sk": {"N": "2"}}
    assert key_from_id(key_id(key)) == key
    assert key_id(key) == key_id({"sk": {"N": "2"}, "pk": {"B": b"\x01"}})


def test_event_json_round_trip_is_recursive():
    item = {
        "b": {"B": b"\xff"},
        "bs": {"BS": [b"\x00", b"\x01"]},
        "m": {"M": {"inner": {"B": b"\x02"}, "l": {"L": [{"B": b"\x03"}, {"S": "s"}]}}},
        "s": {"S": "text"},
    }
    wire = to_event_json(item)
    assert wire["b"] == {"B": "/w=="}
    assert wire["m"]["M"]["l"]["L"][0] == {"B": "Aw=="}
    assert from_event_json(wire) == item


def test_item_size_follows_dynamodb_rules():
    assert item_size({"pk": {"S": "abc"}}) == 5
    assert item_size({"n": {"N": "123"}}) == 1 + 3
    assert item_size({"b": {"BOOL": True}, "z": {"NULL": True}}) == 4
    assert item_size({"m": {"M": {"a": {"S": "xy"}}}}) == 1 + 3 + 1 + 1 + 2


# DynamoDB keeps 38 significant digits; the default decimal context keeps 28 (issue 13, item 5).
_D38 = "1234567890123456789012345678901234567"  # 37 digits before the last one


@pytest.mark.parametrize(
    ("a", "b", "equal"),
    [
        ({"N": _D38 + "1"}, {"N": _D38 + "2"}, False),
        ({"N": "-0." + _D38 + "1"}, {"N": "-0." + _D38 + "2"}, False),
        ({"N": _D38 + "1E+88"}, {"N": _D38 + "2E+88"}, False),
        ({"N": _D38 + "1"}, {"N": _D38 + "1.000"}, True),
        ({"NS": ["1", _D38 + "1"]}, {"NS": [_D38 + "2", "1"]}, False),
        ({"NS": ["1", _D38 + "1"]}, {"NS": [_D38 + "1.0", "1"]}, True),
        ({"M": {"a": {"L": [{"N": _D38 + "1"}]}}}, {"M": {"a": {"L": [{"N": _D38 + "2"}]}}}, False),
        (
            {"L": [{"M": {"n": {"NS": [_D38 + "1"]}}}]},
            {"L": [{"M": {"n": {"NS": [_D38 + "2"]}}}]},
            False,
        ),
        ({"N": "1.0"}, {"N": "1"}, True),
        ({"N": "1E+2"}, {"N": "100"}, True),
        ({"N": "-0"}, {"N": "0"}, True),
        ({"NS": ["1E+2", "0.10"]}, {"NS": ["0.1", "100"]}, True),
    ],
)
def test_values_equal_uses_all_38_digits(a, b, equal):
    assert values_equal(a, b) is equal
    assert values_equal(b, a) is equal


def test_items_equal_sees_the_38th_digit():
    a = {"pk": {"S": "k"}, "n": {"N": _D38 + "1"}}
    b = {"pk": {"S": "k"}, "n": {"N": _D38 + "2"}}
    assert not items_equal(a, b)
    assert differing_attributes(a, b, ignored_predicate()) == ["n"]


@pytest.mark.parametrize(
    ("value", "expired"),
    [
        ({"N": "999"}, True),
        ({"N": "999.5"}, True),
        ({"N": "1000"}, False),  # expires at 1000: not yet
        ({"N": "5000"}, False),
        ({"S": "999"}, False),  # only numbers are TTL times
        (None, False),
    ],
)
def test_is_expired(value, expired):
    from dynashift.items import is_expired

    item = {"pk": {"S": "k"}} | ({"ttl": value} if value else {})
    assert is_expired(item, "ttl", 1000.0) is expired
    assert is_expired(item, None, 1000.0) is False


def test_is_expired_ignores_times_beyond_five_years_like_dynamodb():
    from dynashift.items import TTL_MAX_AGE_SECONDS, is_expired

    now = 2_000_000_000.0
    old = {"ttl": {"N": str(int(now - TTL_MAX_AGE_SECONDS - 1))}}
    recent = {"ttl": {"N": str(int(now - TTL_MAX_AGE_SECONDS + 1))}}
    assert not is_expired(old, "ttl", now)
    assert is_expired(recent, "ttl", now)
