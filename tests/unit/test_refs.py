from __future__ import annotations

import pytest

from dynashift.errors import InvalidTableRefError
from dynashift.refs import TableRef, parse_table_ref


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
