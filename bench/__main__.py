"""Run every benchmark (`make bench`): quick sizes by default, the documented ones with --full.

    .venv/bin/python -m bench [--full] [--only NAME ...] [--list]

Each bench is a module of this package with a `main(argv)`; it starts its own moto server in a
separate process and prints its own figures. Quick: each bench's smallest size, one round (about
a quarter of an hour on a loaded 2-core machine). Full: the sizes and rounds behind the README's
performance table. A bench fails when it raises or returns / exits non-zero; the others still
run, a summary says which ran and how each ended, and the exit code is 1 if any failed.
"""

from __future__ import annotations

import argparse
import importlib
import sys
import time
import traceback
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Bench:
    name: str
    quick: tuple[str, ...]
    full: tuple[str, ...]

    @property
    def module(self) -> str:
        return f"bench.{self.name}"


#: Every bench, cheapest first. `full` reproduces the README's performance table.
BENCHES = (
    Bench("capacity_model", quick=(), full=()),
    Bench(
        "emulator_costs",
        quick=("--items", "1000", "--rounds", "1"),
        full=("--items", "4000", "--rounds", "3"),
    ),
    Bench("verify_modes", quick=("--items", "5000"), full=("--items", "5000")),
    Bench("sync_diff", quick=("--items", "5000", "--rounds", "1"), full=("--rounds", "3")),
    Bench(
        "replicator",
        quick=("--items", "5000", "--writes", "2000", "--rounds", "1"),
        full=("--items", "5000", "--writes", "2000", "--rounds", "3"),
    ),
    Bench(
        "backfill",
        quick=("--sizes", "5000", "--rounds", "1"),
        full=("--sizes", "5000", "20000", "--rounds", "2"),
    ),
    Bench(
        "export",
        quick=("--items", "5000", "--rounds", "1"),
        full=("--items", "5000", "--rounds", "2"),
    ),
    Bench(
        "migrate",
        quick=("--sizes", "5000", "--rounds", "1"),
        full=("--sizes", "5000", "20000", "--rounds", "3"),
    ),
    Bench(
        "soak",
        quick=("--items", "1000", "--minutes", "0.5", "--rate", "30"),
        full=("--items", "5000", "--minutes", "2.5", "--rate", "100"),
    ),
)
BY_NAME = {b.name: b for b in BENCHES}


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench", description=(__doc__ or "").splitlines()[0]
    )
    parser.add_argument("--full", action="store_true", help="the documented sizes and rounds")
    parser.add_argument(
        "--only", nargs="+", choices=sorted(BY_NAME), metavar="NAME", help="run only these"
    )
    parser.add_argument("--list", action="store_true", help="print the commands and exit")
    return parser.parse_args(argv)


def selected(args: argparse.Namespace) -> list[tuple[Bench, list[str]]]:
    """(bench, argv) in run order."""
    chosen = [b for b in BENCHES if not args.only or b.name in args.only]
    return [(b, list(b.full if args.full else b.quick)) for b in chosen]


def command_line(bench: Bench, argv: Sequence[str]) -> str:
    return " ".join(["python -m", bench.module, *argv])


def run_one(bench: Bench, argv: list[str]) -> str:
    """Run one bench in this process; "" when it succeeded, else why it failed."""
    try:
        code = importlib.import_module(bench.module).main(argv)
    except SystemExit as exc:
        code = exc.code
    except Exception as exc:
        traceback.print_exc()
        return f"raised {type(exc).__name__}: {exc}"
    if code not in (None, 0):
        return f"exit {code}"
    return ""


def format_summary(results: Sequence[tuple[str, float, str]]) -> str:
    """One line per bench that ran: name, seconds, ok or why it failed."""
    lines = ["benches run:"]
    for name, seconds, problem in results:
        lines.append(f"  {name:<13} {seconds:7.1f} s  {'FAILED: ' + problem if problem else 'ok'}")
    failed = sum(1 for _, _, problem in results if problem)
    lines.append(f"{len(results)} run, {failed} failed")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    plan = selected(args)
    if args.list:
        for bench, bench_argv in plan:
            print(command_line(bench, bench_argv))
        return 0
    results = []
    for bench, bench_argv in plan:
        print(f"=== {command_line(bench, bench_argv)}", flush=True)
        started = time.monotonic()
        problem = run_one(bench, bench_argv)
        results.append((bench.name, time.monotonic() - started, problem))
        sys.stdout.flush()
    print()
    print(format_summary(results))
    return 1 if any(problem for _, _, problem in results) else 0


if __name__ == "__main__":
    raise SystemExit(main())
