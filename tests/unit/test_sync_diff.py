"""Pure parts of the sync engine: the difference rule, page classification, starting keys."""

from __future__ import annotations

import json

import pytest

from dynashift.errors import BadInputError
from dynashift.items import TOMBSTONE_ATTR
from dynashift.sync import (
    DONE,
    ItemDiffer,
    SlaveReport,
    SyncOptions,
    SyncReport,
    diff_page,
    find_extra,
    resolve_starting_key,
    resume_token,
)

NAMES = ("pk", "sk")
DESC = {
    "KeySchema": [
        {"AttributeName": "pk", "KeyType": "HASH"},
        {"AttributeName": "sk", "KeyType": "RANGE"},
    ],
    "AttributeDefinitions": [
        {"AttributeName": "pk", "AttributeType": "S"},
        {"AttributeName": "sk", "AttributeType": "N"},
    ],
}


def item(pk: str, sk: str = "1", **attrs: dict) -> dict:
    return {"pk": {"S": pk}, "sk": {"N": sk}, **attrs}


def test_differ_uses_wire_format_rules_and_ignores():
    d = ItemDiffer(ignore=["ts"])
    a = item("a", n={"N": "1.50"}, ss={"SS": ["x", "y"]}, ts={"N": "1"})
    b = item("a", n={"N": "1.5"}, ss={"SS": ["y", "x"]}, ts={"N": "2"})
    assert not d.differs(a, b)
    assert d.differing_attributes(a, {**b, "extra": {"S": "e"}}) == ["extra"]
    assert d.differs(a, {k: v for k, v in b.items() if k != "n"})


def test_differ_ignores_legacy_replication_attributes_by_default():
    a = item("a", **{"aws:rep:updatetime": {"N": "1"}})
    b = item("a", **{"aws:rep:updatetime": {"N": "2"}})
    assert not ItemDiffer().differs(a, b)
    assert ItemDiffer(ignore_legacy=False).differs(a, b)


def test_diff_page_classifies_and_treats_tombstones_as_absent():
    master = [item("a"), item("b", v={"S": "1"}), item("c"), item("d")]
    slave = [
        item("b", v={"S": "2"}),
        item("c"),
        item("d", **{TOMBSTONE_ATTR: {"BOOL": True}}),
        item("zzz"),  # not asked for: ignored
    ]
    d = diff_page(master, slave, NAMES, ItemDiffer())
    assert d.missing == [item("a"), item("d")]
    assert d.differing == [item("b")]
    assert d.same == 1


def test_diff_page_uses_an_overridden_rule():
    class NewerSlaveWins(ItemDiffer):
        def differs(self, master, slave):
            return int(slave["v"]["N"]) < int(master["v"]["N"])

    master = [item("a", v={"N": "2"}), item("b", v={"N": "2"})]
    slave = [item("a", v={"N": "3"}), item("b", v={"N": "1"})]
    d = diff_page(master, slave, NAMES, NewerSlaveWins())
    assert d.differing == [item("b")]
    assert d.same == 1


def test_find_extra_ignores_master_tombstones():
    keys = [item("a"), item("b"), item("c")]
    master = [item("a"), item("b", **{TOMBSTONE_ATTR: {"BOOL": True}})]
    assert find_extra(keys, master, NAMES) == [item("b"), item("c")]


def test_starting_key_plain_and_wire_forms():
    plain = resolve_starting_key({"pk": "abc", "sk": 5}, DESC, None)
    wire = resolve_starting_key({"pk": {"S": "abc"}, "sk": {"N": "5"}}, DESC, 1)
    assert plain == wire == [{"pk": {"S": "abc"}, "sk": {"N": "5"}}]


def test_starting_key_list_form_round_trips_through_resume_token():
    cursors = [{"pk": {"S": "a"}, "sk": {"N": "1"}}, DONE, None]
    token = resume_token(cursors)
    assert resolve_starting_key(json.loads(token), DESC, None) == cursors
    assert resolve_starting_key(json.loads(token), DESC, 3) == cursors
    single = resume_token([{"pk": {"S": "a"}, "sk": {"N": "1"}}])
    assert json.loads(single) == {"pk": {"S": "a"}, "sk": {"N": "1"}}


@pytest.mark.parametrize(
    ("value", "parallel", "needle"),
    [
        ({"pk": "a"}, None, "key schema"),
        ({"pk": "a", "sk": "x"}, None, "'sk'"),
        ({"pk": 1, "sk": 1}, None, "'pk'"),
        ({"pk": {"N": "1"}, "sk": 1}, None, "defines it as S"),
        ({"pk": "a", "sk": 1}, 4, "--parallel 4"),
        ([None, None], 3, "--parallel is 3"),
        ([], None, "empty"),
        ([7], None, "segment 0"),
    ],
)
def test_bad_starting_keys_name_the_problem(value, parallel, needle):
    with pytest.raises(BadInputError) as err:
        resolve_starting_key(value, DESC, parallel)
    assert needle in str(err.value)
    assert "--starting-key" in str(err.value)


def test_options_validation_names_the_option():
    with pytest.raises(BadInputError, match="--batch-read-limit"):
        SyncOptions.parse(batch_read_limit=101)
    with pytest.raises(BadInputError, match="--parallel"):
        SyncOptions.parse(parallel=0)
    opts = SyncOptions.parse(delete_extra=True)
    assert opts.scan_slaves and not opts.dry_run


def test_report_shape_and_exit_codes():
    rep = SyncReport(master="us-east-1:m", scanned=10)
    rep.slaves["us-east-1:s1"] = SlaveReport(missing=2, differing=1, extra=1, extra_scanned=True)
    data = rep.to_json()
    assert data["master"] == "us-east-1:m" and data["scanned"] == 10
    assert {
        k: data["slaves"]["us-east-1:s1"][k]
        for k in (
            "missing",
            "differing",
            "extra",
            "wrote_missing",
            "wrote_differing",
            "deleted_extra",
        )
    } == {
        "missing": 2,
        "differing": 1,
        "extra": 1,
        "wrote_missing": 0,
        "wrote_differing": 0,
        "deleted_extra": 0,
    }
    assert rep.exit_code == 1
    s = rep.slaves["us-east-1:s1"]
    s.wrote_missing, s.wrote_differing, s.deleted_extra = 2, 1, 1
    assert rep.exit_code == 0
    json.dumps(rep.to_json())


# --- the repair condition (issue 13, item 6) -------------------------------------------------


def test_repair_condition_of_an_absent_item_is_attribute_not_exists():
    from dynashift.conditions import unchanged_since_read

    cond = unchanged_since_read("pk", None, ["pk", "sk"])
    assert cond is not None
    assert cond.kwargs() == {
        "ConditionExpression": "attribute_not_exists(#pk)",
        "ExpressionAttributeNames": {"#pk": "pk"},
    }


def test_repair_condition_pins_every_attribute_read_and_the_new_ones_absent():
    from dynashift.conditions import unchanged_since_read

    seen = {"pk": {"S": "a"}, "sk": {"N": "1"}, "v": {"N": "3"}, "m": {"M": {"x": {"L": []}}}}
    cond = unchanged_since_read("pk", seen, ["pk", "sk"], absent=["pk", "v", "added"])
    assert cond is not None
    assert cond.expression == (
        "attribute_exists(#pk) AND #a0 = :a0 AND #a1 = :a1 AND attribute_not_exists(#n0)"
    )
    assert cond.names == {"#pk": "pk", "#a0": "m", "#a1": "v", "#n0": "added"}
    assert cond.values == {":a0": {"M": {"x": {"L": []}}}, ":a1": {"N": "3"}}


def test_repair_condition_too_long_for_dynamodb_is_none():
    from dynashift.conditions import MAX_EXPRESSION_LENGTH, unchanged_since_read

    wide = {f"a{i}": {"N": "1"} for i in range(400)}
    assert unchanged_since_read("pk", {"pk": {"S": "k"}, **wide}) is None
    fits = {f"a{i}": {"N": "1"} for i in range(100)}
    cond = unchanged_since_read("pk", {"pk": {"S": "k"}, **fits})
    assert cond is not None and len(cond.expression) <= MAX_EXPRESSION_LENGTH
