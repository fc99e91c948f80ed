"""Benchmark: the whole `dynashift migrate` against the emulator's sequential ceiling.

    .venv/bin/python -m bench.migrate [--sizes 5000 20000] [--rounds 3]
                                      [--strategies concurrent replay]
                                      [--put-threads 4 8 16 32] [--scan-segments 1 4]
                                      [--cli PATH/TO/dynashift] [--json FILE] [--census]

Starts ONE moto server in its own process (client and server each get a core). For each size
and round it measures, back to back so that load drift cancels out:

- the ceiling of each strategy, done with raw boto3 loops, one phase after the other:
  - concurrent: one conditional PutItem per item (`attribute_not_exists(pk)`) into a fresh
    table, from the fastest of `--put-threads` (all tried in a size's first round; the later
    rounds use the fastest), then one parallel scan of both tables (source and target, every
    segment of both at once) with the fastest of `--scan-segments` per table (same search);
  - replay: BatchWriteItem of 25 (same threads search), then the same scan of both tables;
- `dynashift migrate --source … --target … --endpoint-url … --yes` (the CLI as a new user runs
  it, no tuning flags; `--report` only to read the phase timings) as a subprocess, into a fresh
  source and target (so a fresh state table) per run. With `--strategy` on the CLI each row
  passes its strategy; without it the replay rows are skipped (a line says so) and the
  concurrent rows run the CLI's default.

Items come from bench/backfill.py's item maker (the same varied items in every table of a
size). Printed: per size and strategy, the median migrate seconds, the median ceiling (writes +
scan, at the threads and segments used) and the median of the per-round ratios migrate /
ceiling (with their range); then where migrate's wall time went: the report's phases (backfill,
verification) and each announced state's share, from the moment its "> State" line reached the
bench. Absolute times on moto depend on the machine and its load (printed after each round); the
ratios are the figures. Exit 1 when a migrate run fails or ends with other counts than the items
written.

The emulator's floor. moto's server is one Python process: its GIL lets it use about one core,
whatever the number of client threads. The bench reads the server's CPU seconds (utime + stime
of /proc/<pid>/stat) around each ceiling write pass, the ceiling scan and the whole migrate
run, and prints per round and in the table:

- emulator CPU seconds of the ceiling (writes + scan) and of migrate, and the emulator's busy
  share in each (its CPU seconds / the wall seconds): near 100% means the run waited on the
  emulator, not on itself;
- the FLOOR = migrate's emulator CPU seconds / the ceiling's wall seconds (median over rounds,
  like the ratio). `migrate` sends the emulator the ceiling's work plus its own (the backfill's
  read of the source, the state table, the stream): even if it kept the emulator 100% busy it
  could not end sooner than the CPU the emulator spends on its requests, so the ratio cannot go
  below the floor on this emulator. A floor above a target ratio (0.9x) says the target is out
  of reach of any client change on ONE moto server; the gap ratio - floor is what a client
  change can still win. On a multi-process store (AWS DynamoDB: partitions served by many
  hosts, capacity set by the table's throughput, not by one interpreter's core) the floor does
  not bind: there the overlap of phases is what counts.

`--census` sends migrate through `tests.support.fault_proxy.FaultProxy` (no fault rules) and
counts its requests per operation and table role (source, target, state table, stream, other):
where the emulator's CPU goes. Off by default: the proxy runs in the bench's process and costs
CPU, so a census round's migrate wall time (and its ratio) is not comparable with a plain one;
the emulator CPU figures still are. `--json FILE` writes every row and round (emulator CPU,
load average, write and scan trials, census) for quoting; it is rewritten after each round.

Size: one module because the ceiling, the migrate run and the emulator CPU accounting must
measure the same rounds back to back and share the same row, table and JSON shapes.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
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
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

from bench import emulator_credentials
from bench.backfill import create, fill, make_item, scan_segment
from tests.support.fault_proxy import FaultProxy
from tests.support.moto_server import MotoServer

ROOT = Path(__file__).resolve().parents[1]
REGION = "us-east-1"
STRATEGIES = ("concurrent", "replay")
#: How `migrate` announces a state on stderr ("> Backfill segments").
STATE_LINE = re.compile(r"^> (?P<name>.+?)\s*$")
#: DynamoDB Streams operations (their requests name a stream or an iterator, not a table).
STREAM_OPS = frozenset({"DescribeStream", "GetRecords", "GetShardIterator", "ListStreams"})
#: The local state table's name prefix (`dynashift.state.state_table_name`).
STATE_TABLE_PREFIX = "dynashift-state-"

#: Reads a process's CPU seconds so far (utime + stime).
CpuReader = Callable[[], float]


# --- emulator CPU accounting ----------------------------------------------------------------


def parse_cpu_seconds(stat: str, ticks_per_second: int) -> float:
    """utime + stime (fields 14 and 15) of a /proc/<pid>/stat line, in seconds.

    The second field is the command name in parentheses and may itself hold spaces and ')':
    the fields are counted after the LAST ')'.
    """
    _, paren, rest = stat.rpartition(")")
    fields = rest.split()
    if not paren or len(fields) < 13:
        raise ValueError(f"not a /proc/<pid>/stat line: {stat[:80]!r}")
    # fields[0] is field 3 (state): field N is fields[N - 3].
    return (int(fields[11]) + int(fields[12])) / ticks_per_second


def process_cpu_reader(pid: int) -> CpuReader:
    """A reader of process `pid`'s CPU seconds (Linux /proc)."""
    path = Path(f"/proc/{pid}/stat")
    ticks = os.sysconf("SC_CLK_TCK")

    def read() -> float:
        return parse_cpu_seconds(path.read_text(), ticks)

    read()  # fail now, not in the middle of a round, where /proc is missing
    return read


@dataclass(frozen=True)
class Span:
    """Wall seconds of one piece of work and the emulator CPU seconds spent meanwhile."""

    wall: float
    cpu: float


def measure(fn: Callable[[], object], cpu: CpuReader) -> Span:
    before = cpu()
    start = time.perf_counter()
    fn()
    wall = time.perf_counter() - start
    return Span(wall=wall, cpu=round(cpu() - before, 3))


def busy(cpu: float, wall: float) -> float:
    """The emulator's busy share: its CPU seconds per wall second (0 for no time)."""
    return cpu / wall if wall > 0 else 0.0


# --- results ----------------------------------------------------------------------------------


@dataclass
class Trial:
    """One candidate of the ceiling's search: writes at `setting` threads, or a scan at
    `setting` segments per table."""

    phase: str
    setting: int
    seconds: float
    cpu: float


@dataclass
class Ceiling:
    """One round's ceiling for one strategy: the writes, then one scan of both tables."""

    writes: float
    scan: float
    threads: int
    segments: int = 1
    #: Emulator CPU seconds during the kept write pass and the kept scan.
    writes_cpu: float = 0.0
    scan_cpu: float = 0.0
    #: Every write pass and scan tried this round (the kept ones included).
    trials: list[Trial] = field(default_factory=list)

    @property
    def total(self) -> float:
        return self.writes + self.scan

    @property
    def cpu(self) -> float:
        return self.writes_cpu + self.scan_cpu

    @property
    def busy(self) -> float:
        return busy(self.cpu, self.total)


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
    #: Emulator CPU seconds from the subprocess's start to its exit.
    emulator_cpu: float = 0.0
    #: With --census: "role operation" -> requests the emulator received.
    census: dict[str, int] = field(default_factory=dict)

    @property
    def busy(self) -> float:
        return busy(self.emulator_cpu, self.seconds)


@dataclass
class Round:
    migrate: MigrateRun
    ceiling: Ceiling
    #: 1-minute load average when the round ended.
    load: float = 0.0

    @property
    def ratio(self) -> float:
        return self.migrate.seconds / self.ceiling.total

    @property
    def floor(self) -> float:
        """The lowest ratio reachable with the emulator 100% busy on migrate's requests."""
        return self.migrate.emulator_cpu / self.ceiling.total


@dataclass
class Row:
    """Every round of one size and strategy."""

    items: int
    strategy: str
    rounds: list[Round] = field(default_factory=list)
    skipped: str = ""

    @property
    def ok(self) -> list[Round]:
        return [r for r in self.rounds if r.migrate.exit_code == 0]


def _median_range(values: Sequence[float]) -> tuple[float, float, float]:
    return statistics.median(values), min(values), max(values)


def summary(row: Row) -> dict[str, Any] | None:
    """Medians over the row's successful rounds (None when it has none)."""
    ok = row.ok
    if not ok:
        return None
    ratio, ratio_low, ratio_high = _median_range([r.ratio for r in ok])
    floor, floor_low, floor_high = _median_range([r.floor for r in ok])

    def med(values: Iterable[float]) -> float:
        return statistics.median(list(values))

    return {
        "rounds": len(ok),
        "failed": len(row.rounds) - len(ok),
        "migrate_seconds": med(r.migrate.seconds for r in ok),
        "ceiling_seconds": med(r.ceiling.total for r in ok),
        "ceiling_writes_seconds": med(r.ceiling.writes for r in ok),
        "ceiling_scan_seconds": med(r.ceiling.scan for r in ok),
        "threads": sorted({r.ceiling.threads for r in ok}),
        "segments": sorted({r.ceiling.segments for r in ok}),
        "ceiling_cpu": med(r.ceiling.cpu for r in ok),
        "ceiling_writes_cpu": med(r.ceiling.writes_cpu for r in ok),
        "ceiling_scan_cpu": med(r.ceiling.scan_cpu for r in ok),
        "migrate_cpu": med(r.migrate.emulator_cpu for r in ok),
        "ceiling_busy": med(r.ceiling.busy for r in ok),
        "migrate_busy": med(r.migrate.busy for r in ok),
        "ratio": ratio,
        "ratio_range": [ratio_low, ratio_high],
        "floor": floor,
        "floor_range": [floor_low, floor_high],
    }


def _round_json(rnd: Round) -> dict[str, Any]:
    return {
        "migrate": {**dataclasses.asdict(rnd.migrate), "busy": rnd.migrate.busy},
        "ceiling": {
            **dataclasses.asdict(rnd.ceiling),
            "total": rnd.ceiling.total,
            "cpu": rnd.ceiling.cpu,
            "busy": rnd.ceiling.busy,
        },
        "ratio": rnd.ratio,
        "floor": rnd.floor,
        "load_average": rnd.load,
    }


def results_json(rows: Sequence[Row], meta: dict[str, Any]) -> dict[str, Any]:
    """Every row (summary + rounds) and the run's settings, for `--json`."""
    return {
        **meta,
        "rows": [
            {
                "items": row.items,
                "strategy": row.strategy,
                "skipped": row.skipped,
                "summary": summary(row),
                "rounds": [_round_json(r) for r in row.rounds],
            }
            for row in rows
        ],
    }


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
        default=[4, 8, 16, 32],
        help="concurrencies tried for the ceiling's writes (the fastest is kept)",
    )
    parser.add_argument(
        "--scan-segments",
        type=int,
        nargs="+",
        default=[1, 4],
        help="parallel scan segments per table tried for the ceiling's scan (the fastest is kept)",
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
    parser.add_argument(
        "--json", type=Path, metavar="FILE", help="write the rows and rounds as JSON to FILE"
    )
    parser.add_argument(
        "--census",
        action="store_true",
        help="send migrate through a counting proxy and print its requests per operation and "
        "table role (costs CPU: migrate's wall time is then not comparable)",
    )
    args = parser.parse_args(argv)
    for name in ("sizes", "put_threads", "scan_segments"):
        if any(v < 1 for v in getattr(args, name)):
            parser.error(f"--{name.replace('_', '-')}: every value must be at least 1")
    if args.rounds < 1:
        parser.error("--rounds must be at least 1")
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


def _settings(values: Sequence[int]) -> str:
    return ",".join(str(v) for v in values)


def format_table(rows: Sequence[Row]) -> str:
    """The result table: per size and strategy, medians of migrate, ceiling, emulator CPU,
    ratio and floor."""
    header = (
        f"{'items':>7} | {'strategy':<10} | {'migrate s':>9} | "
        f"{'ceiling s = writes + scan (threads/segs)':<40} | "
        f"{'emulator cpu s: ceiling = w + s / migrate':<41} | "
        f"{'busy ceil/migr':<14} | {'ratio migrate/ceiling':<27} | floor migrate cpu/ceiling"
    )
    lines = [header, "-" * len(header)]
    for row in rows:
        if row.skipped:
            lines.append(f"{row.items:>7} | {row.strategy:<10} | skipped: {row.skipped}")
            continue
        s = summary(row)
        if s is None:
            lines.append(f"{row.items:>7} | {row.strategy:<10} | every migrate run failed")
            continue
        settings = f"{_settings(s['threads'])}/{_settings(s['segments'])}"
        ceiling = (
            f"{s['ceiling_seconds']:7.1f} = {s['ceiling_writes_seconds']:.1f} + "
            f"{s['ceiling_scan_seconds']:.1f} ({settings})"
        )
        cpu = (
            f"{s['ceiling_cpu']:7.1f} = {s['ceiling_writes_cpu']:.1f} + "
            f"{s['ceiling_scan_cpu']:.1f} / {s['migrate_cpu']:.1f}"
        )
        shares = f"{100 * s['ceiling_busy']:3.0f}% / {100 * s['migrate_busy']:3.0f}%"
        ratio = f"{s['ratio']:.2f}x"
        floor = f"{s['floor']:.2f}x"
        if s["rounds"] > 1:
            ratio += " ({:.2f}-{:.2f}, {} rounds)".format(*s["ratio_range"], s["rounds"])
            floor += " ({:.2f}-{:.2f})".format(*s["floor_range"])
        if s["failed"]:
            ratio += f", {s['failed']} failed"
        lines.append(
            f"{row.items:>7} | {row.strategy:<10} | {s['migrate_seconds']:9.1f} | "
            f"{ceiling:<40} | {cpu:<41} | {shares:<14} | {ratio:<27} | {floor}"
        )
    return "\n".join(lines)


def format_round(rnd: Round) -> str:
    """The line printed after each round."""
    c, m = rnd.ceiling, rnd.migrate
    return (
        f"    ceiling {c.total:.1f} s ({c.writes:.1f} writes at {c.threads} threads + "
        f"{c.scan:.1f} scan at {c.segments} segments) | migrate {m.seconds:.1f} s "
        f"(exit {m.exit_code}) | ratio {rnd.ratio:.2f} | load average {rnd.load:.1f}\n"
        f"    emulator cpu: ceiling {c.cpu:.1f} s ({c.writes_cpu:.1f} writes + "
        f"{c.scan_cpu:.1f} scan, busy {100 * c.busy:.0f}%) | migrate {m.emulator_cpu:.1f} s "
        f"(busy {100 * m.busy:.0f}%) | floor {rnd.floor:.2f}"
    )


def format_breakdown(rows: Sequence[Row], min_seconds: float = 0.5) -> str:
    """Where migrate's wall time went: report phases and announced states (medians)."""
    lines = []
    for row in rows:
        ok = [r.migrate for r in row.ok]
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


# --- census -----------------------------------------------------------------------------------


def table_names(body: dict[str, Any]) -> list[str]:
    """The tables a DynamoDB request names (TableName, a table's ResourceArn, batch
    RequestItems, transactions)."""
    names: list[str] = []
    if isinstance(body.get("TableName"), str):
        names.append(body["TableName"])
    arn = body.get("ResourceArn")
    if isinstance(arn, str) and ":table/" in arn:
        names.append(arn.split(":table/", 1)[1].split("/", 1)[0])
    names.extend(str(t) for t in body.get("RequestItems") or {})
    for entry in body.get("TransactItems") or []:
        for action in entry.values():
            if isinstance(action, dict) and isinstance(action.get("TableName"), str):
                names.append(action["TableName"])
    return names


def request_role(op: str, body: bytes, source: str, target: str) -> str:
    """The table role a request serves: source, target, state table, stream, other or '-'."""
    if op in STREAM_OPS:
        return "stream"
    try:
        doc = json.loads(body or b"{}")
    except ValueError:
        return "-"
    roles = []
    for name in table_names(doc if isinstance(doc, dict) else {}):
        if name == source:
            role = "source"
        elif name == target:
            role = "target"
        elif name.startswith(STATE_TABLE_PREFIX):
            role = "state table"
        else:
            role = "other"
        if role not in roles:
            roles.append(role)
    return "+".join(roles) or "-"


class Census:
    """Requests per (role, operation), counted by a FaultProxy's `before_forward` hook."""

    def __init__(self, source: str, target: str) -> None:
        self.source = source
        self.target = target
        self.counts: Counter[str] = Counter()
        self._lock = threading.Lock()

    def __call__(self, op: str, body: bytes) -> None:
        key = f"{request_role(op, body, self.source, self.target)} {op}"
        with self._lock:
            self.counts[key] += 1


def format_census(census: dict[str, int], indent: str = "    ") -> str:
    """Requests by role, then operation (most first), with each role's total."""
    by_role: dict[str, dict[str, int]] = {}
    for key, n in census.items():
        role, _, op = key.rpartition(" ")
        by_role.setdefault(role, {})[op] = n
    lines = [f"{indent}requests to the emulator: {sum(census.values())}"]
    for role, ops in sorted(by_role.items(), key=lambda kv: -sum(kv[1].values())):
        parts = ", ".join(f"{op} {n}" for op, n in sorted(ops.items(), key=lambda kv: -kv[1]))
        lines.append(f"{indent}  {role}: {sum(ops.values())} ({parts})")
    return "\n".join(lines)


def median_census(rows: Sequence[Row]) -> str:
    """Per row with a census: the median requests per role and operation over its rounds."""
    lines = []
    for row in rows:
        runs = [r.migrate.census for r in row.ok if r.migrate.census]
        if not runs:
            continue
        keys = sorted({k for c in runs for k in c})
        med = {k: round(statistics.median(c.get(k, 0) for c in runs)) for k in keys}
        lines.append(f"{row.items} items, {row.strategy} ({len(runs)} rounds):")
        lines.append(format_census(med))
    return "\n".join(lines)


# --- the measured work ------------------------------------------------------------------------


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


def _trial(kind: str, setting: int, span: Span, label: str) -> Trial:
    """One tried setting of the ceiling, printed as it is measured."""
    print(f"      {label}: {span.wall:.1f} s (emulator cpu {span.cpu:.1f} s)", flush=True)
    return Trial(kind, setting, span.wall, span.cpu)


def measure_ceiling(
    ddb: Any,
    strategy: str,
    *,
    source: str,
    items: Sequence[dict[str, Any]],
    threads: Sequence[int],
    segments: Sequence[int],
    cpu: CpuReader,
) -> Ceiling:
    """Writes at each concurrency in `threads` (fresh table each), the fastest kept; then the
    scan of both tables at each of `segments` per table, the fastest kept."""
    writer = WRITERS[strategy]
    trials: list[Trial] = []
    best: tuple[Span, int, str] | None = None
    for n in threads:
        table = f"ceil-{strategy[:4]}-{uuid.uuid4().hex[:6]}"
        create(ddb, table)
        span = measure(lambda: writer(ddb, table, items, n), cpu)  # noqa: B023
        trials.append(_trial("writes", n, span, f"{strategy} writes, {n} threads"))
        if best is None or span.wall < best[0].wall:
            if best is not None:
                ddb.delete_table(TableName=best[2])
            best = (span, n, table)
        else:
            ddb.delete_table(TableName=table)
    assert best is not None
    writes, n_threads, table = best
    scan: tuple[Span, int] | None = None
    for segs in segments:
        counted = 0

        def run(segs: int = segs) -> None:
            nonlocal counted
            counted = scan_both(ddb, [source, table], segs)

        span = measure(run, cpu)
        if counted != 2 * len(items):
            ddb.delete_table(TableName=table)
            raise RuntimeError(f"ceiling scan counted {counted} items, expected {2 * len(items)}")
        trials.append(_trial("scan", segs, span, f"scan of both tables, {segs} segments each"))
        if scan is None or span.wall < scan[0].wall:
            scan = (span, segs)
    assert scan is not None
    ddb.delete_table(TableName=table)
    return Ceiling(
        writes=writes.wall,
        scan=scan[0].wall,
        threads=n_threads,
        segments=scan[1],
        writes_cpu=writes.cpu,
        scan_cpu=scan[0].cpu,
        trials=trials,
    )


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


def run_migrate(cmd: list[str], size: int, timeout: float, cpu: CpuReader) -> MigrateRun:
    marks: list[tuple[float, str]] = []
    tail: list[str] = []
    out: list[str] = []
    cpu_before = cpu()
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
    emulator_cpu = round(cpu() - cpu_before, 3)
    for reader in readers:
        reader.join(timeout=10)
    run = MigrateRun(
        seconds=ended - started,
        exit_code=proc.returncode,
        states=state_durations(marks, ended),
        emulator_cpu=emulator_cpu,
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


@dataclass
class Session:
    """What every round of a run shares: the emulator, its CPU reader and the options."""

    ddb: Any
    url: str
    cpu: CpuReader
    args: argparse.Namespace
    offered: set[str]
    rows: list[Row] = field(default_factory=list)
    meta: dict[str, Any] = field(default_factory=dict)

    def save(self) -> None:
        if self.args.json is not None:
            doc = results_json(self.rows, self.meta)
            self.args.json.write_text(json.dumps(doc, indent=1) + "\n")

    def migrate(self, source: str, target: str, strategy: str, size: int) -> MigrateRun:
        """One migrate run (through a counting proxy with --census); its report in a temporary
        directory removed afterwards."""
        flag = strategy if self.offered else None
        args = self.args
        with tempfile.TemporaryDirectory(prefix="bench-migrate-") as tmp:
            report = Path(tmp) / "report.json"
            if not args.census:
                cmd = migrate_command(source, target, self.url, report, flag, cli=args.cli)
                return run_migrate(cmd, size, args.timeout, self.cpu)
            census = Census(source, target)
            with FaultProxy(self.url, upstream_timeout=600.0) as proxy:
                proxy.before_forward = census
                cmd = migrate_command(source, target, proxy.url, report, flag, cli=args.cli)
                run = run_migrate(cmd, size, args.timeout, self.cpu)
        run.census = dict(census.counts)
        return run

    def measure_size(self, size: int) -> None:
        """Every round of one size: per strategy, a fresh source, its ceiling, then migrate."""
        args = self.args
        rng = random.Random(size)  # bench.backfill.fill's seed: the same items as its tables
        items = [make_item(i, rng) for i in range(size)]
        rows = {
            s: Row(items=size, strategy=s, skipped=skip_reason(s, self.offered))
            for s in args.strategies
        }
        self.rows.extend(rows.values())
        for row in rows.values():
            if row.skipped:
                print(f"{size} items, {row.strategy}: skipped ({row.skipped})", flush=True)
        threads = {s: list(args.put_threads) for s in rows}
        segments = {s: list(args.scan_segments) for s in rows}
        for rnd in range(args.rounds):
            for strategy, row in rows.items():
                if row.skipped:
                    continue
                tag = uuid.uuid4().hex[:6]
                source, target = f"src-{tag}", f"tgt-{tag}"
                create(self.ddb, source)
                fill(self.ddb, source, size)
                print(f"{size} items, {strategy}, round {rnd + 1}:", flush=True)
                ceiling = measure_ceiling(
                    self.ddb,
                    strategy,
                    source=source,
                    items=items,
                    threads=threads[strategy],
                    segments=segments[strategy],
                    cpu=self.cpu,
                )
                threads[strategy] = [ceiling.threads]
                segments[strategy] = [ceiling.segments]
                run = self.migrate(source, target, strategy, size)
                _drop(self.ddb, tag)
                result = Round(migrate=run, ceiling=ceiling, load=os.getloadavg()[0])
                row.rounds.append(result)
                print(format_round(result), flush=True)
                if run.census:
                    print(format_census(run.census), flush=True)
                if run.problem:
                    print(f"    migrate failed: {run.problem}", file=sys.stderr, flush=True)
                self.save()


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    emulator_credentials(REGION)

    help_cmd = [args.cli, "migrate", "--help"]
    help_text = subprocess.run(
        help_cmd, check=False, cwd=ROOT, capture_output=True, text=True
    ).stdout
    offered = supported_strategies(help_text)
    print(f"{args.cli}: migrate strategies offered: {sorted(offered) or 'no --strategy option'}")
    if args.census:
        print("census on: migrate goes through a counting proxy (its wall time includes it)")
    server = MotoServer().start()
    try:
        assert server.proc is not None
        pool = 2 * max(*args.put_threads, 2 * max(args.scan_segments))
        session = Session(
            ddb=_client(server.url, pool),
            url=server.url,
            cpu=process_cpu_reader(server.proc.pid),
            args=args,
            offered=offered,
            meta={
                "bench": "bench.migrate",
                "started": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
                "cli": args.cli,
                "argv": list(sys.argv[1:] if argv is None else argv),
                "cpus": os.cpu_count(),
                "census": args.census,
                "load_average_start": os.getloadavg()[0],
            },
        )
        for size in args.sizes:
            session.measure_size(size)
    finally:
        server.stop()
    session.meta["load_average_end"] = os.getloadavg()[0]
    session.save()
    rows = session.rows
    print()
    print(format_table(rows))
    print()
    print(
        "floor = migrate's emulator CPU s / ceiling wall s: the lowest ratio reachable on this "
        "one-process emulator (it does not bind on AWS)"
    )
    print()
    print("Where migrate's wall time went (medians; states under 0.5 s left out):")
    print(format_breakdown(rows))
    if args.census:
        print()
        print("Requests migrate sent the emulator (median per round):")
        print(median_census(rows))
    failed = any(r.migrate.problem for row in rows for r in row.rounds)
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
