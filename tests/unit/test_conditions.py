"""Condition builders (I4, I5): pure, tested without AWS."""

from __future__ import annotations

import re

from dynashift.conditions import (
    Condition,
    backfill_put,
    replicated_put,
    still_marked,
    still_tombstone,
)
from dynashift.items import REPLICATED_ATTR, TOMBSTONE_ATTR

ITEM = {"pk": {"S": "a"}, "v": {"N": "7"}, "x": {"S": "y"}}


def placeholders_resolve(cond: Condition) -> None:
    """Every #name / :value used is defined, and every defined one is used."""
    names = set(re.findall(r"#\w+", cond.expression))
    values = set(re.findall(r":\w+", cond.expression))
    assert names == set(cond.names)
    assert values == set(cond.values)


def test_backfill_put_without_version_is_attribute_not_exists() -> None:
    cond = backfill_put("pk", ITEM)
    assert cond.expression == "attribute_not_exists(#pk)"
    assert cond.names == {"#pk": "pk"}
    assert cond.kwargs() == {
        "ConditionExpression": "attribute_not_exists(#pk)",
        "ExpressionAttributeNames": {"#pk": "pk"},
    }
    placeholders_resolve(cond)


def test_backfill_put_with_version_never_replaces_a_tombstone_or_a_replicated_put() -> None:
    cond = backfill_put("pk", ITEM, "v")
    assert cond.expression == (
        "attribute_not_exists(#pk) OR (attribute_not_exists(#tomb)"
        " AND attribute_not_exists(#rep) AND #v < :v)"
    )
    assert cond.names == {"#pk": "pk", "#tomb": TOMBSTONE_ATTR, "#rep": REPLICATED_ATTR, "#v": "v"}
    assert cond.values == {":v": {"N": "7"}}
    placeholders_resolve(cond)


def test_backfill_put_into_an_empty_target_never_replaces_anything() -> None:
    """Issue 13 item 1: with a target that was empty, even a versioned scan image is written
    only where nothing is (a replicated write restarting its version is never replaced)."""
    cond = backfill_put("pk", ITEM, "v", overwrite_older=False)
    assert cond.kwargs() == {
        "ConditionExpression": "attribute_not_exists(#pk)",
        "ExpressionAttributeNames": {"#pk": "pk"},
    }


def test_still_marked_compares_the_exact_marker_value() -> None:
    cond = still_marked("m-1:abc:0f3e")
    assert cond.kwargs() == {
        "ConditionExpression": "#rep = :m",
        "ExpressionAttributeNames": {"#rep": REPLICATED_ATTR},
        "ExpressionAttributeValues": {":m": {"S": "m-1:abc:0f3e"}},
    }


def test_backfill_put_item_without_version_falls_back() -> None:
    cond = backfill_put("pk", {"pk": {"S": "a"}}, "v")
    assert cond.expression == "attribute_not_exists(#pk)"


def test_replicated_put_is_unconditional_without_version() -> None:
    assert replicated_put("pk", ITEM) is None
    assert replicated_put("pk", {"pk": {"S": "a"}}, "v") is None


def test_replicated_put_with_version_wins_over_tombstone_and_equal_version() -> None:
    cond = replicated_put("pk", ITEM, "v")
    assert cond is not None
    assert "attribute_exists(#tomb)" in cond.expression
    assert "#v <= :v" in cond.expression
    placeholders_resolve(cond)


def test_still_tombstone() -> None:
    cond = still_tombstone()
    assert cond.kwargs() == {
        "ConditionExpression": "attribute_exists(#tomb)",
        "ExpressionAttributeNames": {"#tomb": TOMBSTONE_ATTR},
    }


def test_kwargs_copies_its_dicts() -> None:
    cond = backfill_put("pk", ITEM, "v")
    kwargs = cond.kwargs()
    kwargs["ExpressionAttributeNames"]["#pk"] = "changed"
    assert cond.names["#pk"] == "pk"
