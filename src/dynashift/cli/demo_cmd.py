"""`dynashift demo`: a whole migration on an embedded moto server (no AWS account needed)."""

from __future__ import annotations

import argparse
from typing import Any

from dynashift.cli.common import bounded_int, positive_float


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "demo",
        help="migrate a sample table on an embedded local server, with live writes",
        description="Start an embedded moto server, create a sample source (20,000 varied "
        "items, a GSI, TTL), keep random writes going, run the whole migration workflow and "
        "print the readiness checklist. Exit 0 when READY.",
    )
    parser.add_argument(
        "--items",
        type=bounded_int(100, 1_000_000),
        default=20_000,
        metavar="N",
        help="items in the sample source (default 20000)",
    )
    parser.add_argument(
        "--segments", type=bounded_int(1, 64), default=4, metavar="N", help="segments (default 4)"
    )
    parser.add_argument(
        "--write-rate",
        type=positive_float,
        default=40.0,
        metavar="N",
        help="live writes per second during the migration (default 40)",
    )
    parser.add_argument(
        "--strategy",
        choices=("concurrent", "replay", "export"),
        default="replay",
        help="backfill strategy (default replay: BatchWriteItem, replicator started after the "
        "backfill, which keeps the demo under 5 minutes on moto; concurrent: the replicator "
        "runs during the backfill and every item is a conditional PutItem; export: the "
        "backfill loads an export of the source from S3 - the demo turns on point-in-time "
        "recovery on its own sample table and creates the bucket, both in the embedded server)",
    )
    parser.add_argument(
        "--final-check",
        action="store_true",
        help="after the cutover, compare the whole tables once more (a fresh pass of the "
        "verification's diff engine, outside the workflow)",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from dynashift.demo import run_demo

    return run_demo(
        items=args.items,
        segments=args.segments,
        write_rate=args.write_rate,
        final_check=args.final_check,
        strategy=args.strategy,
    )
