"""Benchmark: the whole `dynashift migrate` against the emulator's sequential ceiling.

    .venv/bin/python -m bench.migrate [--sizes 5000 20000] [--rounds 3]
                                      [--strategies concurrent replay] [--put-threads 8 16 32]
                                      [--scan-segments 4] [--cli PATH/TO/dynashift]

Starts ONE moto server in its own process (client and server each get a core). For each size
and round it measures, back to back so that load drift cancels out:

- the ceiling of each strategy, done with raw boto3 loops, one phase after the other:
  - concurrent: one conditional PutItem per item (`attribute_not_exists(pk)`) into a fresh
    table, from the fastest of `--put-threads` (all tried in a size's first round; the later
    rounds use the fastest), then one parallel scan of both tables (source and target, every
    segment of both at once);
  - replay: BatchWriteItem of 25 (same threads search), then the same scan of both tables;
- `dynashift migrate --source … --target … --endpoint-url … --yes` (the CLI as a new user runs
  it, no tuning flags; `--report` only to read the phase timings) as a subprocess, into a fresh
  source and target (so a fresh state table) per run. With `--strategy` on the CLI each row
  passes its strategy; without it the replay rows are skipped (a line says so) and the
  concurrent rows run the CLI's default.

Items come from bench/backfill.py's item maker (the same varied items in every table of a
size). Printed: per size and strategy, the median migrate seconds, the median ceiling (writes +
scan, at the threads used) and the median of the per-round ratios migrate / ceiling (with their
range); then where migrate's wall time went: the report's phases (backfill, verification) and
each announced state's share, from the moment its "> State" line reached the bench. Absolute
times on moto depend on the machine and its load (printed after each round); the ratios are
the figures. Exit 1 when a migrate run fails or ends with other counts than the items written.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

from bench import emulator_credentials
from bench.backfill import create, fill, make_item, scan_segment
from tests.support.moto_server import MotoServer

ROOT = Path(__file__).resolve().parents[1]
REGION = "us-east-1"
STRATEGIES = ("concurrent", "replay")
#: How `migrate` announces a state on stderr ("> Backfill segments").
STATE_LINE = re.compile(r"^> (?P<name>.+?)\s*$")


@dataclass
class Ceiling:
    """One round's ceiling for one strategy: the writes, then one scan of both tables."""

    writes: float
    scan: float
    threads: int

    @property
    def total(self) -> float:
        return self.writes + self.scan


@dataclass
class MigrateRun:
    """One `dynashift migrate` subprocess: wall seconds, exit code and where the time went."""

    seconds: float
    exit_code: int
    #: Report phases (backfill, verification) -> seconds.
    phases: dict[str, float] = field(default_factory=dict)
    #: Announced states in order, with the seconds until the next announcement (or exit).
    states: list[tuple[str, float]] = field(default_factory=list)
    problem: str = ""


@dataclass
class Round:
    migrate: MigrateRun
    ceiling: Ceiling

    @property
    def ratio(self) -> float:
        return self.migrate.seconds / self.ceiling.total


@dataclass
class Row:
    """Every round of one size and strategy."""

    items: int
    strategy: str
    rounds: list[Round] = field(default_factory=list)
    skipped: str = ""


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.migrate", description=(__doc__ or "").splitlines()[0]
    )
    parser.add_argument("--sizes", type=int, nargs="+", default=[5000, 20000])
    parser.add_argument("--rounds", type=int, default=3, help="rounds per size (median shown)")
    parser.add_argument("--strategies", nargs="+", choices=STRATEGIES, default=list(STRATEGIES))
    parser.add_argument(
        "--put-threads",
        type=int,
        nargs="+",
        default=[8, 16, 32],
        help="concurrencies tried for the ceiling's writes (the fastest is kept)",
    )
    parser.add_argument(
        "--scan-segments", type=int, default=4, help="parallel scan segments per table"
    )
    parser.add_argument(
        "--timeout", type=float, default=3600.0, help="seconds one migrate may take"
    )
    parser.add_argument(
        "--cli",
        default=default_cli(),
        help="the dynashift executable measured (default: the one of this venv); another "
        "worktree's to compare branches",
    )
    args = parser.parse_args(argv)
    for name in ("sizes", "put_threads"):
        if any(v < 1 for v in getattr(args, name)):
            parser.error(f"--{name.replace('_', '-')}: every value must be at least 1")
    if args.rounds < 1 or args.scan_segments < 1:
        parser.error("--rounds and --scan-segments must be at least 1")
    return args


def supported_strategies(help_text: str) -> set[str]:
    """The strategies `migrate --help` offers ({} when it has no `--strategy` option)."""
    match = re.search(r"--strategy\s+\{([^}]*)\}", help_text)
    if match:
        return {s.strip() for s in match.group(1).split(",") if s.strip()}
    if re.search(r"--strategy\b", help_text):
        return {s for s in STRATEGIES if re.search(rf"\b{s}\b", help_text)}
    return set()


def state_durations(marks: Sequence[tuple[float, str]], end: float) -> list[tuple[str, float]]:
    """(time, state) announcements -> (state, seconds until the next one or `end`)."""
    out = []
    for i, (when, name) in enumerate(marks):
        nxt = marks[i + 1][0] if i + 1 < len(marks) else end
        out.append((name, max(nxt - when, 0.0)))
    return out


def report_phases(report: dict[str, Any]) -> dict[str, float]:
    """Seconds of each finished phase of a readiness report's JSON."""
    phases = {}
    for p in report.get("phases", []):
        if p.get("started") is not None and p.get("ended") is not None:
            phases[str(p["name"])] = max(float(p["ended"]) - float(p["started"]), 0.0)
    return phases


def _median_range(values: Sequence[float]) -> tuple[float, float, float]:
    return statistics.median(values), min(values), max(values)


def format_table(rows: Sequence[Row]) -> str:
    """The result table: per size and strategy, medians of migrate, ceiling and ratio."""
    header = (
        f"{'items':>7} | {'strategy':<10} | {'migrate s':>9} | "
        f"{'ceiling s = writes + scan (threads)':<36} | ratio migrate/ceiling"
    )
    lines = [header, "-" * len(header)]
    for row in rows:
        if row.skipped:
            lines.append(f"{row.items:>7} | {row.strategy:<10} | skipped: {row.skipped}")
            continue
        ok = [r for r in row.rounds if r.migrate.exit_code == 0]
        if not ok:
            lines.append(f"{row.items:>7} | {row.strategy:<10} | every migrate run failed")
            continue
        migrate = statistics.median(r.migrate.seconds for r in ok)
        writes = statistics.median(r.ceiling.writes for r in ok)
        scan = statistics.median(r.ceiling.scan for r in ok)
        total = statistics.median(r.ceiling.total for r in ok)
        threads = "/".join(str(t) for t in sorted({r.ceiling.threads for r in ok}))
        ratio, low, high = _median_range([r.ratio for r in ok])
        ceiling = f"{total:7.1f} = {writes:.1f} + {scan:.1f} ({threads})"
        spread = f" (range {low:.2f}-{high:.2f}, {len(ok)} rounds)" if len(ok) > 1 else ""
        failed = len(row.rounds) - len(ok)
        note = f", {failed} failed" if failed else ""
        lines.append(
            f"{row.items:>7} | {row.strategy:<10} | {migrate:9.1f} | {ceiling:<36} | "
            f"{ratio:.2f}x{spread}{note}"
        )
    return "\n".join(lines)


def format_breakdown(rows: Sequence[Row], min_seconds: float = 0.5) -> str:
    """Where migrate's wall time went: report phases and announced states (medians)."""
    lines = []
    for row in rows:
        ok = [r.migrate for r in row.rounds if r.migrate.exit_code == 0]
        if not ok:
            continue
        total = statistics.median(m.seconds for m in ok)
        names = sorted({n for m in ok for n in m.phases})
        phases = ", ".join(
            f"{n} {statistics.median(m.phases.get(n, 0.0) for m in ok):.1f} s" for n in names
        )
        lines.append(f"{row.items} items, {row.strategy}: migrate {total:.1f} s; {phases}")
        order: list[str] = []
        for m in ok:
            for name, _ in m.states:
                if name not in order:
                    order.append(name)
        startup = statistics.median(m.seconds - sum(s for _, s in m.states) for m in ok)
        parts = [("(start-up before the first state)", startup)]
        for name in order:
            parts.append(
                (name, statistics.median(sum(s for n, s in m.states if n == name) for m in ok))
            )
        for name, seconds in parts:
            if seconds >= min_seconds:
                lines.append(f"    {seconds:7.1f} s {100 * seconds / total:5.1f}%  {name}")
    return "\n".join(lines)


def _client(url: str, pool: int) -> Any:
    return boto3.client(
        "dynamodb",
        region_name=REGION,
        endpoint_url=url,
        config=Config(
            max_pool_connections=pool,
            read_timeout=600,
            retries={"mode": "standard", "max_attempts": 3},
        ),
    )


def _timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def put_conditional(ddb: Any, table: str, items: Sequence[dict[str, Any]], threads: int) -> None:
    def put(item: dict[str, Any]) -> None:
        try:
            ddb.put_item(
                TableName=table,
                Item=item,
                ConditionExpression="attribute_not_exists(#pk)",
                ExpressionAttributeNames={"#pk": "pk"},
            )
        except ClientError as exc:
            if exc.response["Error"]["Code"] != "ConditionalCheckFailedException":
                raise

    with ThreadPoolExecutor(threads) as pool:
        for _ in pool.map(put, items):
            pass


def batch_write(ddb: Any, table: str, items: Sequence[dict[str, Any]], threads: int) -> None:
    def write(start: int) -> None:
        pending = [{"PutRequest": {"Item": i}} for i in items[start : start + 25]]
        while pending:
            resp = ddb.batch_write_item(RequestItems={table: pending})
            pending = resp.get("UnprocessedItems", {}).get(table, [])

    with ThreadPoolExecutor(threads) as pool:
        for _ in pool.map(write, range(0, len(items), 25)):
            pass


def scan_both(ddb: Any, tables: Sequence[str], segments: int) -> int:
    """One parallel scan of every table at once (every segment of each); items counted."""

    def one(job: tuple[str, int]) -> int:
        return sum(len(page) for page in scan_segment(ddb, job[0], job[1], segments))

    jobs = [(t, s) for t in tables for s in range(segments)]
    with ThreadPoolExecutor(len(jobs)) as pool:
        return sum(pool.map(one, jobs))


WRITERS = {"concurrent": put_conditional, "replay": batch_write}


def measure_ceiling(
    ddb: Any,
    strategy: str,
    *,
    source: str,
    items: Sequence[dict[str, Any]],
    threads: Sequence[int],
    segments: int,
) -> Ceiling:
    """Writes at each concurrency in `threads` (fresh table each), the fastest kept + one scan."""
    writer = WRITERS[strategy]
    best: tuple[float, int, str] | None = None
    for n in threads:
        table = f"ceil-{strategy[:4]}-{uuid.uuid4().hex[:6]}"
        create(ddb, table)
        seconds = _timed(lambda: writer(ddb, table, items, n))  # noqa: B023
        print(f"      {strategy} writes, {n} threads: {seconds:.1f} s", flush=True)
        if best is None or seconds < best[0]:
            if best is not None:
                ddb.delete_table(TableName=best[2])
            best = (seconds, n, table)
        else:
            ddb.delete_table(TableName=table)
    assert best is not None
    seconds, n, table = best
    counted = 0

    def scan() -> None:
        nonlocal counted
        counted = scan_both(ddb, [source, table], segments)

    scan_seconds = _timed(scan)
    ddb.delete_table(TableName=table)
    if counted != 2 * len(items):
        raise RuntimeError(f"ceiling scan counted {counted} items, expected {2 * len(items)}")
    return Ceiling(writes=seconds, scan=scan_seconds, threads=n)


def default_cli() -> str:
    """The `dynashift` next to this Python (the project's venv), else the one on PATH."""
    exe = Path(sys.executable).with_name("dynashift")
    return str(exe) if exe.exists() else "dynashift"


def migrate_command(
    source: str, target: str, url: str, report: Path, strategy: str | None, *, cli: str = ""
) -> list[str]:
    """`dynashift migrate` as a new user runs it against a local endpoint (no tuning flags)."""
    cmd = [
        cli or default_cli(),
        "migrate",
        "--source",
        f"{REGION}:{source}",
        "--target",
        f"{REGION}:{target}",
        "--endpoint-url",
        url,
        "--report",
        str(report),
        "--yes",
    ]
    if strategy is not None:
        cmd[2:2] = ["--strategy", strategy]
    return cmd


def run_migrate(cmd: list[str], size: int, timeout: float) -> MigrateRun:
    marks: list[tuple[float, str]] = []
    tail: list[str] = []
    out: list[str] = []
    started = time.monotonic()
    proc = subprocess.Popen(
        cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )

    def read_stderr() -> None:
        assert proc.stderr is not None
        for line in proc.stderr:
            match = STATE_LINE.match(line)
            if match:
                marks.append((time.monotonic(), match.group("name")))
            tail.append(line)
            del tail[:-40]

    def read_stdout() -> None:
        assert proc.stdout is not None
        out.append(proc.stdout.read())

    readers = [threading.Thread(target=f, daemon=True) for f in (read_stderr, read_stdout)]
    for reader in readers:
        reader.start()
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    ended = time.monotonic()
    for reader in readers:
        reader.join(timeout=10)
    run = MigrateRun(
        seconds=ended - started,
        exit_code=proc.returncode,
        states=state_durations(marks, ended),
    )
    report_path = Path(cmd[cmd.index("--report") + 1])
    report = json.loads(report_path.read_text()) if report_path.exists() else {}
    run.phases = report_phases(report)
    counts = report.get("counts", {})
    if proc.returncode != 0:
        run.problem = f"exit {proc.returncode}: " + "".join(tail[-15:]) + "".join(out)[-1500:]
    elif counts.get("source_items") != size or counts.get("target_items") != size:
        run.exit_code = 1
        run.problem = f"counts {counts} (expected {size} items on each side)"
    return run


def _drop(ddb: Any, tag: str) -> None:
    for name in ddb.list_tables().get("TableNames", []):
        if tag in name:
            ddb.delete_table(TableName=name)


def skip_reason(strategy: str, offered: set[str]) -> str:
    """Why a strategy cannot be measured with this CLI ("" when it can)."""
    if offered and strategy not in offered:
        return f"`migrate --strategy` offers {sorted(offered)}"
    if not offered and strategy != "concurrent":
        return "this `dynashift migrate` has no --strategy option (re-run once it has)"
    return ""


def measure_size(
    ddb: Any, url: str, size: int, args: argparse.Namespace, offered: set[str]
) -> list[Row]:
    """Every round of one size: per strategy, a fresh source, its ceiling, then migrate."""
    rng = random.Random(size)  # bench.backfill.fill's seed: the same items as its tables
    items = [make_item(i, rng) for i in range(size)]
    rows = {
        s: Row(items=size, strategy=s, skipped=skip_reason(s, offered)) for s in args.strategies
    }
    for row in rows.values():
        if row.skipped:
            print(f"{size} items, {row.strategy}: skipped ({row.skipped})", flush=True)
    threads = {s: list(args.put_threads) for s in rows}
    for rnd in range(args.rounds):
        for strategy, row in rows.items():
            if row.skipped:
                continue
            tag = uuid.uuid4().hex[:6]
            source, target = f"src-{tag}", f"tgt-{tag}"
            create(ddb, source)
            fill(ddb, source, size)
            print(f"{size} items, {strategy}, round {rnd + 1}:", flush=True)
            ceiling = measure_ceiling(
                ddb,
                strategy,
                source=source,
                items=items,
                threads=threads[strategy],
                segments=args.scan_segments,
            )
            threads[strategy] = [ceiling.threads]
            report = Path(tempfile.mkdtemp()) / "report.json"
            flag = strategy if offered else None
            cmd = migrate_command(source, target, url, report, flag, cli=args.cli)
            run = run_migrate(cmd, size, args.timeout)
            _drop(ddb, tag)
            row.rounds.append(Round(migrate=run, ceiling=ceiling))
            print(
                f"    ceiling {ceiling.total:.1f} s ({ceiling.writes:.1f} writes at "
                f"{ceiling.threads} threads + {ceiling.scan:.1f} scan) | migrate "
                f"{run.seconds:.1f} s (exit {run.exit_code}) | "
                f"ratio {run.seconds / ceiling.total:.2f} | load average {os.getloadavg()[0]:.1f}",
                flush=True,
            )
            if run.problem:
                print(f"    migrate failed: {run.problem}", file=sys.stderr, flush=True)
    return list(rows.values())


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    emulator_credentials(REGION)

    help_cmd = [args.cli, "migrate", "--help"]
    help_text = subprocess.run(
        help_cmd, check=False, cwd=ROOT, capture_output=True, text=True
    ).stdout
    offered = supported_strategies(help_text)
    print(f"{args.cli}: migrate strategies offered: {sorted(offered) or 'no --strategy option'}")
    rows: list[Row] = []
    server = MotoServer().start()
    try:
        ddb = _client(server.url, 2 * max(*args.put_threads, 2 * args.scan_segments))
        for size in args.sizes:
            rows.extend(measure_size(ddb, server.url, size, args, offered))
    finally:
        server.stop()
    print()
    print(format_table(rows))
    print()
    print("Where migrate's wall time went (medians; states under 0.5 s left out):")
    print(format_breakdown(rows))
    failed = any(r.migrate.problem for row in rows for r in row.rounds)
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
