"""The benches stay importable and runnable: `make bench`'s runner, bench.migrate's parsing and
tables (no server: the benches themselves are run by `make bench`, not by the suite)."""

from __future__ import annotations

import argparse
import importlib
import inspect
import json
import os
import sys
import time
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
    assert args.put_threads == [4, 8, 16, 32]
    assert args.scan_segments == [1, 4]
    assert (args.json, args.census) == (None, False)
    custom = migrate.parse_args(["--sizes", "100", "--rounds", "1", "--strategies", "replay"])
    assert (custom.sizes, custom.rounds, custom.strategies) == ([100], 1, ["replay"])
    other = migrate.parse_args(["--scan-segments", "2", "--json", "out.json", "--census"])
    assert (other.scan_segments, other.json, other.census) == ([2], Path("out.json"), True)
    bad_values = (
        ["--rounds", "0"],
        ["--put-threads", "0"],
        ["--scan-segments", "4", "0"],
        ["--strategies", "export"],
    )
    for bad in bad_values:
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
    seconds: float,
    writes: float,
    scan: float,
    threads: int,
    code: int = 0,
    *,
    cpu: float = 0.0,
    ceiling_cpu: tuple[float, float] = (0.0, 0.0),
    segments: int = 4,
) -> migrate.Round:
    run = migrate.MigrateRun(
        seconds=seconds,
        exit_code=code,
        phases={"backfill": seconds / 2},
        states=[("Backfill segments", seconds / 2), ("Verify segments", seconds / 4)],
        emulator_cpu=cpu,
    )
    ceiling = migrate.Ceiling(
        writes,
        scan,
        threads,
        segments=segments,
        writes_cpu=ceiling_cpu[0],
        scan_cpu=ceiling_cpu[1],
        trials=[migrate.Trial("writes", threads, writes, ceiling_cpu[0])],
    )
    return migrate.Round(migrate=run, ceiling=ceiling, load=1.5)


def _rows() -> list[migrate.Row]:
    return [
        migrate.Row(
            items=5000,
            strategy="concurrent",
            rounds=[
                _round(50, 40, 10, 16, cpu=45, ceiling_cpu=(36, 9)),
                _round(70, 40, 10, 16, cpu=55, ceiling_cpu=(38, 9)),
                _round(60, 40, 10, 16, cpu=48, ceiling_cpu=(37, 8)),
            ],
        ),
        migrate.Row(items=5000, strategy="replay", rounds=[_round(30, 5, 10, 8, code=1)]),
        migrate.Row(items=5000, strategy="replay", skipped="no --strategy option"),
    ]


def test_format_table_reports_medians_the_per_round_ratio_and_the_floor() -> None:
    rows = _rows()
    table = migrate.format_table(rows).splitlines()
    assert "ratio migrate/ceiling" in table[0] and "floor migrate cpu/ceiling" in table[0]
    concurrent = table[2]
    assert "60.0" in concurrent and "50.0 = 40.0 + 10.0 (16/4)" in concurrent
    # emulator CPU (medians of each): ceiling 45 (45, 47, 45) = writes 37 + scan 9; migrate 48
    assert "45.0 = 37.0 + 9.0 / 48.0" in concurrent
    # busy: ceiling median of 0.90, 0.94, 0.90 = 90%, migrate of 0.90, 0.786, 0.80 = 80%
    assert " 90% /  80%" in concurrent
    assert "1.20x (1.00-1.40, 3 rounds)" in concurrent
    # floor: 45/50, 55/50, 48/50 -> median 0.96, range 0.90-1.10
    assert concurrent.endswith("0.96x (0.90-1.10)")
    assert "every migrate run failed" in table[3]
    assert "skipped: no --strategy option" in table[4]

    breakdown = migrate.format_breakdown(rows[:1]).splitlines()
    assert breakdown[0] == "5000 items, concurrent: migrate 60.0 s; backfill 30.0 s"
    assert any("30.0 s  50.0%  Backfill segments" in line for line in breakdown)
    assert any("15.0 s  25.0%  (start-up before the first state)" in line for line in breakdown)


def test_floor_is_migrate_emulator_cpu_over_ceiling_wall_and_busy_shares() -> None:
    rnd = _round(80, 30, 10, 16, cpu=36, ceiling_cpu=(27, 7))
    assert rnd.ratio == pytest.approx(2.0)
    assert rnd.floor == pytest.approx(0.9)
    assert rnd.ceiling.cpu == pytest.approx(34) and rnd.ceiling.busy == pytest.approx(0.85)
    assert rnd.migrate.busy == pytest.approx(0.45)
    assert migrate.busy(1.0, 0.0) == 0.0
    one = migrate.summary(migrate.Row(items=10, strategy="replay", rounds=[rnd]))
    assert one is not None
    assert (one["floor"], one["floor_range"], one["rounds"]) == (rnd.floor, [0.9, 0.9], 1)
    assert migrate.summary(migrate.Row(items=10, strategy="replay")) is None
    line = migrate.format_round(rnd)
    assert "at 16 threads + 10.0 scan at 4 segments" in line
    assert "emulator cpu: ceiling 34.0 s (27.0 writes + 7.0 scan, busy 85%)" in line
    assert "migrate 36.0 s (busy 45%) | floor 0.90" in line


def test_cpu_seconds_parsed_after_the_last_parenthesis_of_the_name() -> None:
    # pid (comm) state ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt utime stime
    tail = "S 1 2 3 0 -1 4194304 10 0 0 0 250 75 0 0 20 0 3 0"
    for name in ("python", "my proc", "a) (b c)", ") )"):
        line = f"4242 ({name}) {tail}\n"
        assert migrate.parse_cpu_seconds(line, 100) == pytest.approx(3.25), name
    assert migrate.parse_cpu_seconds(f"1 (x) {tail}", 1000) == pytest.approx(0.325)
    for bad in ("", "4242 python S 1 2", "4242 (x) S 1 2 3"):
        with pytest.raises(ValueError):
            migrate.parse_cpu_seconds(bad, 100)


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs Linux /proc")
def test_process_cpu_reader_reads_a_live_process() -> None:
    read = migrate.process_cpu_reader(os.getpid())
    before = read()
    deadline = time.process_time() + 0.05
    while time.process_time() < deadline:  # burn 50 ms of CPU
        pass
    after = read()
    assert before > 0 and after - before >= 0.02


def test_measure_takes_the_emulator_cpu_around_the_work() -> None:
    ticks = iter([10.0, 12.5])
    span = migrate.measure(lambda: None, lambda: next(ticks))
    assert span.cpu == pytest.approx(2.5) and span.wall >= 0


def test_results_json_holds_rows_rounds_and_emulator_cpu() -> None:
    rows = _rows()
    rows[0].rounds[0].migrate.census = {"source Scan": 4}
    doc = json.loads(json.dumps(migrate.results_json(rows, {"cpus": 2})))
    assert doc["cpus"] == 2
    assert [(r["items"], r["strategy"], r["skipped"]) for r in doc["rows"]] == [
        (5000, "concurrent", ""),
        (5000, "replay", ""),
        (5000, "replay", "no --strategy option"),
    ]
    first = doc["rows"][0]
    assert first["summary"]["floor"] == pytest.approx(0.96)
    assert first["summary"]["migrate_cpu"] == 48
    assert len(first["rounds"]) == 3
    rnd = first["rounds"][0]
    assert rnd["migrate"]["emulator_cpu"] == 45 and rnd["migrate"]["census"] == {"source Scan": 4}
    assert rnd["ceiling"]["writes_cpu"] == 36 and rnd["ceiling"]["scan_cpu"] == 9
    assert rnd["ceiling"]["cpu"] == 45 and rnd["ceiling"]["segments"] == 4
    assert rnd["ceiling"]["trials"] == [
        {"phase": "writes", "setting": 16, "seconds": 40, "cpu": 36}
    ]
    assert (rnd["ratio"], rnd["floor"], rnd["load_average"]) == (1.0, 0.9, 1.5)
    assert rnd["migrate"]["states"][0] == ["Backfill segments", 25.0]
    assert doc["rows"][1]["summary"] is None and doc["rows"][2]["rounds"] == []


def test_census_counts_requests_by_table_role_and_operation() -> None:
    census = migrate.Census("src-a", "tgt-a")
    census("Scan", json.dumps({"TableName": "src-a", "Segment": 0}).encode())
    census("PutItem", json.dumps({"TableName": "tgt-a"}).encode())
    census("PutItem", json.dumps({"TableName": "tgt-a"}).encode())
    census("UpdateItem", json.dumps({"TableName": "dynashift-state-m1"}).encode())
    census("BatchWriteItem", json.dumps({"RequestItems": {"tgt-a": []}}).encode())
    census("GetRecords", json.dumps({"ShardIterator": "x"}).encode())
    census("ListTables", b"{}")
    census("DescribeTable", json.dumps({"TableName": "someone-else"}).encode())
    transact = {
        "TransactItems": [{"Put": {"TableName": "tgt-a"}}, {"Update": {"TableName": "src-a"}}]
    }
    census("TransactWriteItems", json.dumps(transact).encode())
    census("PutItem", b"not json")
    tags = {"ResourceArn": "arn:aws:dynamodb:us-east-1:000000000000:table/src-a"}
    census("ListTagsOfResource", json.dumps(tags).encode())
    assert census.counts == {
        "source Scan": 1,
        "target PutItem": 2,
        "state table UpdateItem": 1,
        "target BatchWriteItem": 1,
        "stream GetRecords": 1,
        "- ListTables": 1,
        "other DescribeTable": 1,
        "target+source TransactWriteItems": 1,
        "- PutItem": 1,
        "source ListTagsOfResource": 1,
    }
    text = migrate.format_census(dict(census.counts)).splitlines()
    assert text[0] == "    requests to the emulator: 11"
    assert text[1] == "      target: 3 (PutItem 2, BatchWriteItem 1)"
    rows = _rows()
    rows[0].rounds[0].migrate.census = {"target PutItem": 10, "source Scan": 2}
    rows[0].rounds[1].migrate.census = {"target PutItem": 12}
    med = migrate.median_census(rows).splitlines()
    assert med[0] == "5000 items, concurrent (2 rounds):"
    assert "target: 11 (PutItem 11)" in med[2] and "source: 1 (Scan 1)" in med[3]


def test_emulator_costs_per_request_and_arguments() -> None:
    from bench import emulator_costs

    assert emulator_costs.per_request_ms(migrate.Span(wall=9.0, cpu=2.5), 1000) == 2.5
    assert emulator_costs.per_request_ms(migrate.Span(wall=1.0, cpu=1.0), 0) == 0.0
    args = emulator_costs.parse_args([])
    assert (args.items, args.threads, args.rounds) == (4000, 8, 2)
    with pytest.raises(SystemExit):
        emulator_costs.parse_args(["--items", "10"])
