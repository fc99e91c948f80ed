"""Benchmark: what the one-process emulator spends per request, and what overlap costs it.

    .venv/bin/python -m bench.emulator_costs [--items 4000] [--threads 8] [--rounds 2]

`bench.migrate` compares the whole `migrate` with its sequential ceiling on ONE moto server and
prints the floor (migrate's emulator CPU over the ceiling's wall time). This bench measures the
two facts behind that floor, in the emulator's own CPU seconds (utime + stime of its process,
`bench.migrate.process_cpu_reader`), on a fresh server in a separate process:

- per request: one conditional PutItem (`attribute_not_exists(#pk)`, `--threads` at once), one
  GetItem, and a Scan per item returned (one segment, no Limit: 1 MB pages);
- overlap: the same conditional puts into a fresh table, then a scan of two tables (the
  ceiling's order), against the same puts with the same scan running at the same time (what a
  verification overlapping the backfill asks of the emulator). Alternated `--rounds` times.

moto serves every request in one Python process, so its CPU seconds bound the wall time of any
work sent to it from below: no ordering of the same requests finishes in less than their CPU
time. A store that spreads over cores (AWS) has no such bound. Printed: milliseconds of emulator
CPU per request / per item, and per round the wall and CPU seconds of both orders.
"""

from __future__ import annotations

import argparse
import random
import statistics
import threading
import uuid
from collections.abc import Sequence
from typing import Any

import boto3
from botocore.config import Config

from bench import emulator_credentials
from bench.backfill import create, fill, make_item, scan_segment
from bench.migrate import REGION, CpuReader, Span, measure, process_cpu_reader, put_conditional
from tests.support.moto_server import MotoServer


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.emulator_costs", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--items", type=int, default=4000, help="items per table")
    parser.add_argument("--threads", type=int, default=8, help="conditional puts at once")
    parser.add_argument("--rounds", type=int, default=2, help="sequential/overlapped pairs")
    args = parser.parse_args(argv)
    if args.items < 100 or args.threads < 1 or args.rounds < 1:
        parser.error("--items must be at least 100, --threads and --rounds at least 1")
    return args


def scan_all(ddb: Any, tables: Sequence[str]) -> int:
    """One scan (one segment, 1 MB pages) of each table in turn; items counted."""
    return sum(len(page) for table in tables for page in scan_segment(ddb, table, 0, 1))


def per_request_ms(span: Span, requests: int) -> float:
    """Emulator CPU milliseconds per request (or per item) of one measured span."""
    return 1000.0 * span.cpu / requests if requests else 0.0


def overlapped(
    ddb: Any, table: str, items: Sequence[dict[str, Any]], threads: int, scanned: Sequence[str]
) -> None:
    """The conditional puts with the scan of `scanned` running at the same time."""
    errors: list[BaseException] = []

    def scan() -> None:
        try:
            scan_all(ddb, scanned)
        except BaseException as exc:  # re-raised below, in the caller's thread
            errors.append(exc)

    scanner = threading.Thread(target=scan, daemon=True)
    scanner.start()
    put_conditional(ddb, table, items, threads)
    scanner.join()
    if errors:
        raise errors[0]


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    emulator_credentials(REGION)
    rng = random.Random(14)
    items = [make_item(i, rng) for i in range(args.items)]
    with MotoServer() as server:
        cpu: CpuReader = process_cpu_reader(server.proc.pid)  # type: ignore[union-attr]
        ddb = boto3.client(
            "dynamodb",
            endpoint_url=server.url,
            region_name=REGION,
            config=Config(max_pool_connections=max(16, 2 * args.threads)),
        )

        def fresh() -> str:
            name = f"cost-{uuid.uuid4().hex[:8]}"
            create(ddb, name)
            return name

        source = fresh()
        fill(ddb, source, args.items)
        copy = fresh()
        puts = measure(lambda: put_conditional(ddb, copy, items, args.threads), cpu)
        gets = measure(
            lambda: [ddb.get_item(TableName=source, Key={"pk": i["pk"]}) for i in items[:500]],
            cpu,
        )
        scan = measure(lambda: scan_all(ddb, [source]), cpu)
        print(f"emulator CPU per request ({args.items} items, {args.threads} threads):")
        print(f"  conditional PutItem  {per_request_ms(puts, args.items):5.2f} ms")
        print(f"  GetItem              {per_request_ms(gets, 500):5.2f} ms")
        print(f"  Scan, per item       {per_request_ms(scan, args.items):5.2f} ms")

        ratios: list[float] = []
        for r in range(1, args.rounds + 1):
            one, two = fresh(), fresh()
            seq = measure(
                lambda: (
                    put_conditional(ddb, one, items, args.threads),  # noqa: B023
                    scan_all(ddb, [source, copy]),
                ),
                cpu,
            )
            par = measure(
                lambda: overlapped(ddb, two, items, args.threads, [source, copy]),  # noqa: B023
                cpu,
            )
            ratios.append(par.cpu / seq.cpu if seq.cpu else 0.0)
            print(
                f"round {r}: puts then scan {seq.wall:5.1f} s wall, {seq.cpu:5.1f} s CPU | "
                f"puts with the scan at once {par.wall:5.1f} s wall, {par.cpu:5.1f} s CPU "
                f"({ratios[-1]:.2f}x the CPU)",
                flush=True,
            )
            for name in (one, two):
                ddb.delete_table(TableName=name)
        print(
            f"overlap costs the emulator {statistics.median(ratios):.2f}x the CPU of the "
            f"sequential order (median of {len(ratios)})"
        )


if __name__ == "__main__":
    main()
