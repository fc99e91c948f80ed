"""The benches stay importable and runnable: `make bench`'s runner, bench.migrate's parsing and
tables (no server: the benches themselves are run by `make bench`, not by the suite)."""

from __future__ import annotations

import argparse
import importlib
import inspect
import sys
import types
from pathlib import Path

import pytest

import bench.__main__ as runner
from bench import migrate

BENCH_DIR = Path(runner.__file__).parent


def test_every_bench_module_is_registered_importable_and_takes_argv() -> None:
    modules = {p.stem for p in BENCH_DIR.glob("*.py") if not p.stem.startswith("_")}
    assert modules == set(runner.BY_NAME)
    for bench in runner.BENCHES:
        main = importlib.import_module(bench.module).main
        assert list(inspect.signature(main).parameters) == ["argv"], bench.name


def test_runner_options_exist_in_each_bench() -> None:
    for bench in runner.BENCHES:
        source = (BENCH_DIR / f"{bench.name}.py").read_text()
        for option in {a for a in (*bench.quick, *bench.full) if a.startswith("--")}:
            assert f'"{option}"' in source, (bench.name, option)


def test_runner_quick_by_default_full_on_request_and_only() -> None:
    quick = runner.selected(runner.parse_args([]))
    full = runner.selected(runner.parse_args(["--full"]))
    assert [b.name for b, _ in quick] == [b.name for b in runner.BENCHES]
    assert dict((b.name, a) for b, a in quick)["migrate"] == ["--sizes", "5000", "--rounds", "1"]
    assert dict((b.name, a) for b, a in full)["migrate"][:3] == ["--sizes", "5000", "20000"]
    only = runner.selected(runner.parse_args(["--only", "migrate", "backfill"]))
    assert [b.name for b, _ in only] == ["backfill", "migrate"]
    with pytest.raises(SystemExit) as exc:
        runner.parse_args(["--only", "nope"])
    assert exc.value.code == 2


def test_runner_argv_for_migrate_is_accepted_by_its_parser() -> None:
    for args in (runner.BY_NAME["migrate"].quick, runner.BY_NAME["migrate"].full):
        parsed = migrate.parse_args(list(args))
        assert parsed.sizes[0] == 5000


def _fake_benches(monkeypatch: pytest.MonkeyPatch, outcomes: dict[str, object]) -> None:
    benches = []
    for name, outcome in outcomes.items():

        def main(argv: list[str], outcome: object = outcome) -> object:
            if isinstance(outcome, Exception):
                raise outcome
            return outcome

        module = types.ModuleType(f"bench.{name}")
        module.main = main  # type: ignore[attr-defined]
        monkeypatch.setitem(sys.modules, f"bench.{name}", module)
        benches.append(runner.Bench(name, quick=("--q",), full=("--f",)))
    monkeypatch.setattr(runner, "BENCHES", tuple(benches))


def test_runner_exits_non_zero_when_one_bench_fails_and_runs_the_others(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    _fake_benches(monkeypatch, {"zz_ok": None, "zz_boom": RuntimeError("x"), "zz_two": 2})
    assert runner.main([]) == 1
    out = capsys.readouterr().out
    assert "zz_ok" in out and "ok" in out.split("zz_ok")[-1].splitlines()[0]
    assert "FAILED: raised RuntimeError: x" in out
    assert "FAILED: exit 2" in out
    assert "3 run, 2 failed" in out


def test_runner_exits_zero_when_every_bench_passes(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    _fake_benches(monkeypatch, {"zz_a": None, "zz_b": 0})
    assert runner.main([]) == 0
    assert "2 run, 0 failed" in capsys.readouterr().out
    assert runner.main(["--list"]) == 0
    assert capsys.readouterr().out.splitlines() == [
        "python -m bench.zz_a --q",
        "python -m bench.zz_b --q",
    ]


def test_migrate_parse_args_defaults_and_bad_values() -> None:
    args = migrate.parse_args([])
    assert args.sizes == [5000, 20000]
    assert args.rounds == 3
    assert args.strategies == ["concurrent", "replay"]
    assert args.put_threads == [8, 16, 32]
    custom = migrate.parse_args(["--sizes", "100", "--rounds", "1", "--strategies", "replay"])
    assert (custom.sizes, custom.rounds, custom.strategies) == ([100], 1, ["replay"])
    for bad in (["--rounds", "0"], ["--put-threads", "0"], ["--strategies", "export"]):
        with pytest.raises(SystemExit) as exc:
            migrate.parse_args(bad)
        assert exc.value.code == 2


def test_supported_strategies_read_from_migrate_help() -> None:
    parser = argparse.ArgumentParser(prog="dynashift migrate")
    parser.add_argument("--segments", type=int)
    assert migrate.supported_strategies(parser.format_help()) == set()
    parser.add_argument("--strategy", choices=["concurrent", "replay"])
    assert migrate.supported_strategies(parser.format_help()) == {"concurrent", "replay"}
    assert migrate.supported_strategies("--strategy NAME  concurrent (default)") == {"concurrent"}


def test_migrate_command_is_the_plain_cli_with_the_strategy_only_when_asked() -> None:
    report = Path("/tmp/r.json")
    plain = migrate.migrate_command("s", "t", "http://127.0.0.1:1", report, None)
    assert plain[1:] == [
        "migrate",
        "--source",
        "us-east-1:s",
        "--target",
        "us-east-1:t",
        "--endpoint-url",
        "http://127.0.0.1:1",
        "--report",
        str(report),
        "--yes",
    ]
    replay = migrate.migrate_command("s", "t", "http://127.0.0.1:1", report, "replay")
    assert replay[1:4] == ["migrate", "--strategy", "replay"]
    assert replay[4:] == plain[2:]
    other = migrate.migrate_command("s", "t", "u", report, None, cli="/w/.venv/bin/dynashift")
    assert other[:2] == ["/w/.venv/bin/dynashift", "migrate"]


def test_state_durations_and_report_phases() -> None:
    marks = [(10.0, "Validate input"), (12.5, "Backfill segments"), (40.0, "Verify segments")]
    assert migrate.state_durations(marks, 50.0) == [
        ("Validate input", 2.5),
        ("Backfill segments", 27.5),
        ("Verify segments", 10.0),
    ]
    report = {
        "phases": [
            {"name": "backfill", "started": 100.0, "ended": 130.5, "items": 5},
            {"name": "verification", "started": 131.0, "ended": None, "items": 5},
        ]
    }
    assert migrate.report_phases(report) == {"backfill": 30.5}


def _round(
    seconds: float, writes: float, scan: float, threads: int, code: int = 0
) -> migrate.Round:
    run = migrate.MigrateRun(
        seconds=seconds,
        exit_code=code,
        phases={"backfill": seconds / 2},
        states=[("Backfill segments", seconds / 2), ("Verify segments", seconds / 4)],
    )
    return migrate.Round(migrate=run, ceiling=migrate.Ceiling(writes, scan, threads))


def test_format_table_reports_medians_and_the_per_round_ratio() -> None:
    rows = [
        migrate.Row(
            items=5000,
            strategy="concurrent",
            rounds=[_round(50, 40, 10, 16), _round(70, 40, 10, 16), _round(60, 40, 10, 16)],
        ),
        migrate.Row(items=5000, strategy="replay", rounds=[_round(30, 5, 10, 8, code=1)]),
        migrate.Row(items=5000, strategy="replay", skipped="no --strategy option"),
    ]
    table = migrate.format_table(rows).splitlines()
    assert "ratio migrate/ceiling" in table[0]
    concurrent = table[2]
    assert "60.0" in concurrent and "50.0 = 40.0 + 10.0 (16)" in concurrent
    assert "1.20x (range 1.00-1.40, 3 rounds)" in concurrent
    assert "every migrate run failed" in table[3]
    assert "skipped: no --strategy option" in table[4]

    breakdown = migrate.format_breakdown(rows[:1]).splitlines()
    assert breakdown[0] == "5000 items, concurrent: migrate 60.0 s; backfill 30.0 s"
    assert any("30.0 s  50.0%  Backfill segments" in line for line in breakdown)
    assert any("15.0 s  25.0%  (start-up before the first state)" in line for line in breakdown)
