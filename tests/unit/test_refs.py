from __future__ import annotations

import pytest

from dynashift.errors import InvalidTableRefError
from dynashift.refs import TableRef, is_region, is_table_name, parse_table_ref


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("orders", TableRef("orders")),
        ("us-east-1:orders", TableRef("orders", "us-east-1")),
        ("eu-central-2:a.b-c_d", TableRef("a.b-c_d", "eu-central-2")),
        ("us-gov-west-1:tbl", TableRef("tbl", "us-gov-west-1")),
    ],
)
def test_parse_valid(text, expected):
    ref = parse_table_ref(text)
    assert ref == expected
    assert str(ref) == text


@pytest.mark.parametrize("text", ["", "ab", "us-east-1:", "nowhere:orders", "bad name", "x:y:z"])
def test_parse_invalid_names_the_value(text):
    with pytest.raises(InvalidTableRefError) as err:
        parse_table_ref(text, "--source")
    assert "--source" in str(err.value)
    assert "\n" not in str(err.value)


def test_display_resolves_default_region():
    assert TableRef("t1").display("eu-west-1") == "eu-west-1:t1"
    assert TableRef("t1", "us-east-2").display("eu-west-1") == "us-east-2:t1"


@pytest.mark.parametrize(
    "name", ["orders", "a.b-c_d", "abc", "x" * 255, "ab", "x" * 256, "bad name", "tbl/1", "ä-tbl"]
)
def test_one_table_name_rule_for_refs_models_and_options(name):
    """The CLI's `[REGION:]TABLE`, the execution input's `TableLocation.name` and the table-name
    rule agree on every name (one home: `refs.is_table_name`)."""
    from pydantic import ValidationError

    from dynashift.models import TableLocation

    valid = is_table_name(name)
    assert valid == (
        3 <= len(name) <= 255 and name.isascii() and " " not in name and "/" not in name
    )
    try:
        parse_table_ref(name)
        by_ref = True
    except InvalidTableRefError:
        by_ref = False
    try:
        TableLocation(name=name)
        by_model = True
    except ValidationError:
        by_model = False
    assert by_ref == by_model == valid


@pytest.mark.parametrize(
    "region", ["us-east-1", "us-gov-west-1", "eu-central-2", "useast1", "US-EAST-1"]
)
def test_one_region_rule_for_refs_and_options(region):
    import argparse

    from dynashift.cli.migration_options import _region

    valid = is_region(region)
    assert valid == (region in ("us-east-1", "us-gov-west-1", "eu-central-2"))
    try:
        _region(region)
        by_option = True
    except argparse.ArgumentTypeError:
        by_option = False
    try:
        parse_table_ref(f"{region}:orders")
        by_ref = True
    except InvalidTableRefError:
        by_ref = False
    assert by_option == by_ref == valid
