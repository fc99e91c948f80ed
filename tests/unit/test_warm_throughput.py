"""The warm throughput rules, pure: what a new table or GSI is created with, what an existing
one is raised to, and the spec a provisioned source's warm GSIs give."""

from __future__ import annotations

import pytest

from dynashift.errors import BadInputError
from dynashift.target import TargetOptions, build_target_spec
from dynashift.target.spec import carried_warm_throughput, raised_warm_throughput
from tests.support.tables import provisioned_description

ON_DEMAND = None


@pytest.mark.parametrize(
    ("source", "capacity", "flags", "carried"),
    [
        ((12000, 4000), ON_DEMAND, {}, None),  # a new on-demand table's own: nothing to warm
        ((12000, 9000), ON_DEMAND, {}, (12000, 9000)),
        ((5, 5), ON_DEMAND, {}, None),  # a provisioned source made on-demand
        ((20000, 100), ON_DEMAND, {}, (20000, 4000)),  # the cold dimension at its floor
        (None, ON_DEMAND, {"write": 6000}, (12000, 6000)),
        ((30000, 9000), ON_DEMAND, {"write": 5000}, (30000, 5000)),  # the flag wins
        ((100, 50), (100, 50), {}, None),  # provisioned: warm = capacity is no warming
        ((400, 50), (100, 50), {}, (400, 50)),
    ],
)
def test_carried_warm_throughput(
    source: tuple[int, int] | None,
    capacity: tuple[int, int] | None,
    flags: dict[str, int],
    carried: tuple[int, int] | None,
) -> None:
    assert carried_warm_throughput(source, capacity, **flags) == carried


def test_a_flag_under_the_floor_names_the_flag_and_the_floor() -> None:
    with pytest.raises(BadInputError, match=r"^--warm-write-units 10: .*4,000 .*on-demand"):
        carried_warm_throughput(None, None, write=10)
    with pytest.raises(BadInputError, match=r"^--warm-read-units 99: .*100 .*provisioned"):
        carried_warm_throughput(None, (100, 50), read=99)


def test_raised_never_lowers_and_skips_the_unknown() -> None:
    assert raised_warm_throughput((12000, 4000), (20000, 3000)) == (20000, 4000)
    assert raised_warm_throughput((20000, 9000), (20000, 9000)) is None
    assert raised_warm_throughput(None, (20000, 9000)) is None
    assert raised_warm_throughput((12000, 4000), None) is None


def test_provisioned_gsis_keep_their_floor_and_carry_their_warmth() -> None:
    def gsi(name: str, warm: tuple[int, int]) -> dict[str, object]:
        return {
            "IndexName": name,
            "KeySchema": [{"AttributeName": "g", "KeyType": "HASH"}],
            "Projection": {"ProjectionType": "KEYS_ONLY"},
            "ProvisionedThroughput": {"ReadCapacityUnits": 10, "WriteCapacityUnits": 5},
            "WarmThroughput": {"ReadUnitsPerSecond": warm[0], "WriteUnitsPerSecond": warm[1]},
        }

    source = provisioned_description(
        (10, 5),
        [gsi("cold", (10, 5)), gsi("hot", (10, 800))],
        WarmThroughput={"ReadUnitsPerSecond": 10, "WriteUnitsPerSecond": 5},
    )
    spec = build_target_spec(source, TargetOptions())
    assert spec.warm_throughput is None and "WarmThroughput" not in spec.create_request("t")
    cold, hot = spec.global_secondary_indexes
    assert "WarmThroughput" not in cold
    assert hot["WarmThroughput"] == {"ReadUnitsPerSecond": 10, "WriteUnitsPerSecond": 800}
    assert "warm throughput 10 read / 800 write units/s" in "\n".join(spec.describe())
