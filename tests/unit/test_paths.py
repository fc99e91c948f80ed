"""`plan`'s comparison of the four paths for a 10,000,000-item table, against hand calculations.

The table: 10,000,000 items of exactly 1 KiB (1,024 B) each, no GSI or LSI, PITR on, the target
a new on-demand table, no replicas. Prices: the defaults (us-east-1 on-demand).

    size        10,000,000 x 1,024 B = 10,240,000,000 B = 10,240,000,000 / 1,073,741,824
                = 9.5367431640625 GB
    write units 1 KiB -> 1 unit per item -> 10,000,000 WU -> x $0.625/M = $6.25
    scan reads  ceil(10,240,000,000 / 4,096) = 2,500,000 units, eventually consistent / 2
                = 1,250,000 RU -> x $0.125/M = $0.15625
    export      9.5367431640625 GB x $0.10 = $0.95367431640625
    import      9.5367431640625 GB x $0.15 = $1.430511474609375
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from dynashift.errors import pitr_off
from dynashift.paths import (
    Assumptions,
    PathComparison,
    PathOptions,
    TableFacts,
    compare_paths,
)
from dynashift.plan import Prices

ITEMS = 10_000_000
SIZE = ITEMS * 1024
GB = 9.5367431640625

#: scan and replay: $6.25 writes + $0.15625 reads
SCAN_USD = 6.25 + 0.15625  # = 6.40625
#: export: $6.25 writes + $0.95367431640625 export, no source reads
EXPORT_USD = 6.25 + 0.95367431640625  # = 7.20367431640625
#: import: $0.95367431640625 export + $1.430511474609375 import, no reads, no writes
IMPORT_USD = 0.95367431640625 + 1.430511474609375  # = 2.384185791015625

#: --max-write-rate 10,000 items/s: load = 10,000,000 / 10,000 = 1,000 s
LOAD_S = 1000.0
#: export (default assumption): 600 s + 9.5367431640625 GB / 100 GB/h x 3,600 = 600 + 343.32...
EXPORT_S = 600 + 343.32275390625  # = 943.32275390625
#: import (default assumption): 600 s + 9.5367431640625 GB / 25 GB/h x 3,600 = 600 + 1,373.29...
IMPORT_S = 600 + 1373.291015625  # = 1,973.291015625


#: Which keyword goes to the table's facts and which to the user's options.
OPTION_KEYS = {"max_write_rate", "time_limit_hours", "refresh_ok", "no_source_reads"}
OPTION_KEYS |= {"prices", "assumptions"}


def _compare(**kw: Any) -> PathComparison:
    args: dict[str, Any] = {
        "source": "us-east-1:orders",
        "item_count": ITEMS,
        "size_bytes": SIZE,
        "source_pitr": True,
        "max_write_rate": 10_000,
        "refresh_ok": True,
    }
    args.update(kw)
    options = {k: v for k, v in args.items() if k in OPTION_KEYS and v is not None}
    facts = {k: v for k, v in args.items() if k not in OPTION_KEYS}
    return compare_paths(TableFacts(**facts), PathOptions(**options))


def test_every_figure_of_the_four_paths_matches_the_hand_calculation() -> None:
    c = compare_paths(
        TableFacts(source="us-east-1:orders", item_count=ITEMS, size_bytes=SIZE, source_pitr=True),
        PathOptions(max_write_rate=10_000, refresh_ok=True),
    )
    assert c.write_units_per_item == 1 and c.write_rate == 10_000
    scan, replay, export, imp = (c.path(n) for n in ("scan", "replay", "export", "import"))
    for p in (scan, replay):
        assert p.source_read_units == 1_250_000
        assert p.target_write_units == 10_000_000
        assert p.export_usd == 0 and p.import_usd == 0
        assert p.cost_usd == pytest.approx(SCAN_USD)
        assert p.seconds == pytest.approx(LOAD_S)
        assert not p.needs_pitr and p.live_catch_up
    assert export.source_read_units == 0 and export.target_write_units == 10_000_000
    assert export.export_gb == pytest.approx(GB)
    assert export.export_usd == pytest.approx(0.95367431640625)
    assert export.cost_usd == pytest.approx(EXPORT_USD)
    # export 943.32 s + load 1,000 s = 1,943.32 s
    assert export.seconds == pytest.approx(EXPORT_S + LOAD_S)
    assert export.needs_pitr and export.live_catch_up
    assert imp.source_read_units == 0 and imp.target_write_units == 0
    assert imp.export_usd == pytest.approx(0.95367431640625)
    assert imp.import_usd == pytest.approx(1.430511474609375)
    assert imp.cost_usd == pytest.approx(IMPORT_USD)
    # export 943.32 s + import 1,973.29 s = 2,916.61 s (48.6 min)
    assert imp.seconds == pytest.approx(EXPORT_S + IMPORT_S)
    assert imp.needs_pitr and imp.needs_new_target and not imp.live_catch_up
    # 1,000 s is far inside 12 h (half the 24 h retention): replay's window is safe
    assert not replay.stream_at_risk and not scan.stream_at_risk
    # PITR at $0.20/GB-month: 9.5367431640625 x 0.20 = $1.9073486328125 a month
    assert c.pitr_usd_per_month == pytest.approx(1.9073486328125)


def test_two_time_limits_pick_different_paths() -> None:
    # 0.5 h = 1,800 s: scan and replay (1,000 s) fit; export (1,943 s) and import (2,917 s) do
    # not. scan and replay both cost $6.40625: replay is named (the target is new and the window
    # safe: the conditions under which plan recommends the replay strategy).
    tight = _compare(time_limit_hours=0.5)
    assert tight.cheapest == "replay"
    assert tight.path("export").out == ["over the time limit: ~32 min > 30 min"]
    assert tight.path("import").out == ["over the time limit: ~49 min > 30 min"]
    # 1 h = 3,600 s: all four fit; import ($2.38) is the cheapest
    loose = _compare(time_limit_hours=1)
    assert loose.cheapest == "import"
    assert all(not p.out for p in loose.paths)
    assert "$2.3842" in loose.cheapest_reason


def test_the_default_rate_is_the_plans_on_demand_rule() -> None:
    # no --max-write-rate, a new on-demand target: 4,000 WCU / 1 unit = 4,000 items/s,
    # load = 10,000,000 / 4,000 = 2,500 s
    c = _compare(max_write_rate=None)
    assert c.write_rate == 4000
    assert c.path("scan").seconds == pytest.approx(2500)
    # a provisioned target of 1,000 WCU: 80 % = 800 items/s, 12,500 s
    p = _compare(max_write_rate=None, provisioned_wcu=1000)
    assert p.path("scan").seconds == pytest.approx(12_500)


def test_replay_out_when_the_stream_window_is_at_risk() -> None:
    # 200 items/s: 10,000,000 / 200 = 50,000 s > 43,200 s (half of 24 h): replay_refusal says no
    c = _compare(max_write_rate=200)
    replay = c.path("replay")
    assert replay.stream_at_risk
    assert replay.out[0].startswith("the 24 h stream window is at risk: --strategy replay")
    # scan (the replicator running throughout) gets the plan's warning, and stays a candidate
    scan = c.path("scan")
    assert scan.stream_at_risk and scan.out == []
    assert scan.stream_window.startswith("AT RISK (a warning): ends after 12.0 h")
    assert c.cheapest == "import"


def test_pitr_off_rules_out_export_and_import_and_says_it_is_never_turned_on() -> None:
    c = _compare(source_pitr=False)
    said = pitr_off("us-east-1:orders")
    assert c.path("export").out == [said]
    assert said in c.path("import").out
    assert c.cheapest == "replay"
    assert said in c.to_text()


def test_existing_target_live_writes_lsis_and_spared_source() -> None:
    c = _compare(target="dst", target_state="nonempty", refresh_ok=False, source_lsis=["by-day"])
    imp = c.path("import")
    assert any(o.startswith("needs a fresh target: dst exists") for o in imp.out)
    assert any("LSIs by-day" in o for o in imp.out)
    assert any(o.startswith("no live catch-up") for o in imp.out)
    # replay is out too: scan ($6.40625) is cheaper than export ($7.20)
    assert c.cheapest == "scan"
    assert c.path("replay").out == [
        "needs an empty target: dst holds items (batch writes overwrite them unconditionally)"
    ]
    # the source's capacity must not be used: only export is left
    spared = _compare(no_source_reads=True, refresh_ok=False)
    assert spared.cheapest == "export"
    assert spared.path("scan").out == ["reads the source's capacity (--no-source-reads)"]


def test_assumptions_and_prices_are_overridable_and_printed_as_assumptions() -> None:
    c = _compare(
        assumptions=Assumptions(export_hours=2, import_hours=3),
        prices=Prices(export_per_gb=0.2, import_per_gb=0.3),
    )
    # export 2 h = 7,200 s; import path 2 h + 3 h = 18,000 s
    assert c.path("export").seconds == pytest.approx(7200 + LOAD_S)
    assert c.path("import").seconds == pytest.approx(18_000)
    assert c.path("import").cost_usd == pytest.approx(GB * 0.5)
    text = c.to_text()
    assert "Assumptions (estimates, not facts)" in text
    assert "an export to S3 takes 2 h (--export-hours, your figure)" in text
    default = _compare().to_text()
    assert "10 min + 100 GB/h (AWS documents no rate" in default


def test_every_path_out_names_no_cheapest() -> None:
    c = _compare(source_pitr=False, no_source_reads=True)
    assert c.cheapest is None
    assert c.cheapest_reason.startswith("every path is ruled out")


def test_the_docs_example_is_what_the_comparison_prints() -> None:
    docs = Path(__file__).resolve().parents[2] / "docs" / "paths.md"
    facts = TableFacts(
        source="eu-west-1:orders",
        item_count=ITEMS,
        size_bytes=SIZE,
        source_pitr=True,
        target="eu-west-1:orders-v2",
    )
    options = PathOptions(max_write_rate=10_000, refresh_ok=True, time_limit_hours=0.5)
    assert compare_paths(facts, options).to_text() in docs.read_text(encoding="utf-8")
