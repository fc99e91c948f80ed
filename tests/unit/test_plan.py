"""Plan estimates against hand calculations (DynamoDB's rounding rules)."""

from __future__ import annotations

import pytest

from dynashift.plan import (
    Prices,
    backfill_duration_seconds,
    backfill_fits_retention,
    backfill_write_units,
    default_write_rate,
    fits_stream_retention,
    get_read_units,
    human_duration,
    index_write_units_per_item,
    on_demand_cost,
    scan_read_units,
    write_units_per_item,
)


@pytest.mark.parametrize(
    ("size", "units"),
    [(0, 1), (1, 1), (1024, 1), (1025, 2), (2048, 2), (2049, 3), (400 * 1024, 400)],
)
def test_write_units_round_up_per_started_kb(size: int, units: int) -> None:
    assert write_units_per_item(size) == units


def test_index_writes_by_projection() -> None:
    # a 1.5 KB item: 2 units in an ALL index, 1 in KEYS_ONLY / INCLUDE
    assert index_write_units_per_item(1536, ["ALL", "KEYS_ONLY", "INCLUDE"]) == 2 + 1 + 1
    assert index_write_units_per_item(1536, []) == 0


def test_backfill_write_units() -> None:
    # 10,000 items of 1.5 KB -> 2 units each; with one ALL GSI, 2 more each
    assert backfill_write_units(10_000, 1536) == 20_000
    assert backfill_write_units(10_000, 1536, index_units=2) == 40_000


def test_scan_read_units_total_size_4kb_half_when_eventual() -> None:
    # 10,000 items x 100 B = 1,000,000 B -> ceil(1e6 / 4096) = 245 units; eventual = 122.5
    assert scan_read_units(1_000_000, consistent=True) == 245
    assert scan_read_units(1_000_000) == 122.5
    assert scan_read_units(0) == 0


def test_get_read_units_each_item_rounded() -> None:
    # by key, each 100 B item costs a whole 4 KB unit: 10,000 units, 5,000 eventually
    assert get_read_units(10_000, 100, consistent=True) == 10_000
    assert get_read_units(10_000, 100) == 5_000
    assert get_read_units(10, 5000, consistent=True) == 20


def test_on_demand_cost_with_stated_and_overridden_prices() -> None:
    prices = Prices()
    assert prices.write_per_million == 0.625 and prices.read_per_million == 0.125
    # 2,000,000 WRU * 0.625 + 4,000,000 RRU * 0.125 = 1.25 + 0.5 = 1.75 USD
    assert on_demand_cost(2_000_000, 4_000_000, prices) == pytest.approx(1.75)
    custom = Prices(write_per_million=1.25, read_per_million=0.25, replicated_write_per_million=2)
    assert on_demand_cost(1_000_000, 1_000_000, custom, 1_000_000) == pytest.approx(3.5)


def test_default_write_rate() -> None:
    # on-demand initial 4,000 WCU / 2 units per item = 2,000 items/s
    assert default_write_rate(1536) == 2000
    # provisioned 1,000 WCU, 80 % share, 1 unit + 1 index unit per item = 400 items/s
    assert default_write_rate(100, provisioned_wcu=1000, index_units=1) == 400


def test_duration_and_retention_margin() -> None:
    assert backfill_duration_seconds(10_000, 100) == 100
    with pytest.raises(ValueError, match="positive"):
        backfill_duration_seconds(1, 0)
    # 12 h is exactly the margin (50 % of 24 h): fits; one more item does not
    assert backfill_fits_retention(43_200, 100, 1.0)
    assert not backfill_fits_retention(43_201, 100, 1.0)
    assert fits_stream_retention(12 * 3600) and not fits_stream_retention(12 * 3600 + 1)
    # no write rate: an on-demand table's initial throughput for the item size
    assert backfill_fits_retention(100_000_000, 1000, None)  # 4,000/s -> ~6.9 h
    assert not backfill_fits_retention(100_000_000, 5000, None)  # 800/s -> ~34.7 h
    assert backfill_fits_retention(10, 100, 1.0, margin=0.0001) is False


def test_human_duration() -> None:
    assert human_duration(30) == "30 s"
    assert human_duration(600) == "10 min"
    assert human_duration(36_000) == "10.0 h"
