"""`dynashift plan`: what a migration will create, change and cost — without changing anything —
and how the four paths (scan, replay, export, import) compare for the table (`dynashift.paths`)."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from dynashift.cli.common import non_negative_float, positive_float
from dynashift.cli.migration_options import (
    add_table_options,
    add_target_options,
    locations_from_args,
    source_location_from_args,
    target_options_from_args,
)
from dynashift.paths import Assumptions, PathOptions, compare_paths, compare_plan, source_facts
from dynashift.plan import Prices, make_plan


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "plan",
        help="show what a migration will create, change and cost (changes nothing)",
        description="Print, without writing anything, what `dynashift migrate` with the same "
        "options would create or change on each side, the source's size, the estimated read "
        "and write units and on-demand cost of backfill and verification, and the backfill "
        "duration; then the four paths (scan, replay, export, import) side by side and the "
        "cheapest within --time-limit. Runs the same checks as migrate: exit 2 when it would "
        "refuse.",
    )
    add_table_options(parser, target_required=False)
    add_target_options(parser)
    est = parser.add_argument_group("estimates")
    est.add_argument(
        "--write-rate",
        "--max-write-rate",
        dest="write_rate",
        type=positive_float,
        metavar="ITEMS_PER_S",
        help="backfill write rate to estimate the duration with (default: 80%% of a "
        "provisioned target's WCU, or an on-demand table's initial 4,000 WCU)",
    )
    defaults = Prices()
    est.add_argument(
        "--write-price",
        type=non_negative_float,
        default=defaults.write_per_million,
        metavar="USD",
        help="USD per million write request units (default %(default)s)",
    )
    est.add_argument(
        "--read-price",
        type=non_negative_float,
        default=defaults.read_per_million,
        metavar="USD",
        help="USD per million read request units (default %(default)s)",
    )
    est.add_argument(
        "--replicated-write-price",
        type=non_negative_float,
        default=defaults.replicated_write_per_million,
        metavar="USD",
        help="USD per million replicated write units (default %(default)s)",
    )
    est.add_argument(
        "--storage-price",
        type=non_negative_float,
        default=defaults.storage_per_gb_month,
        metavar="USD",
        help="USD per GB-month of storage (default %(default)s)",
    )
    est.add_argument(
        "--export-price",
        type=non_negative_float,
        default=defaults.export_per_gb,
        metavar="USD",
        help="USD per GB exported to S3 (default %(default)s)",
    )
    est.add_argument(
        "--import-price",
        type=non_negative_float,
        default=defaults.import_per_gb,
        metavar="USD",
        help="USD per GB imported from S3, uncompressed (default %(default)s)",
    )
    est.add_argument(
        "--pitr-price",
        type=non_negative_float,
        default=defaults.pitr_per_gb_month,
        metavar="USD",
        help="USD per GB-month of point-in-time recovery (default %(default)s)",
    )
    paths = parser.add_argument_group("paths (scan, replay, export, import; docs/paths.md)")
    paths.add_argument(
        "--time-limit",
        type=positive_float,
        metavar="HOURS",
        help="the cheapest path must finish within this many hours",
    )
    paths.add_argument(
        "--refresh",
        action="store_true",
        help="a copy as of one point in time is enough (writes after it need not reach the "
        "target): lets the import path (copy --via-import) qualify",
    )
    paths.add_argument(
        "--no-source-reads",
        action="store_true",
        help="the source's read capacity must not be used (rules out scan and replay)",
    )
    paths.add_argument(
        "--export-hours",
        type=positive_float,
        metavar="HOURS",
        help="how long an export to S3 takes (default: an assumption, 10 min + 100 GB/h)",
    )
    paths.add_argument(
        "--import-hours",
        type=positive_float,
        metavar="HOURS",
        help="how long an import from S3 takes (default: an assumption, 10 min + 25 GB/h)",
    )
    parser.add_argument("--json", action="store_true", help="print the plan as JSON")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    options = target_options_from_args(args)
    prices = Prices(
        write_per_million=args.write_price,
        read_per_million=args.read_price,
        replicated_write_per_million=args.replicated_write_price,
        storage_per_gb_month=args.storage_price,
        export_per_gb=args.export_price,
        import_per_gb=args.import_price,
        pitr_per_gb_month=args.pitr_price,
    )
    path_options = PathOptions(
        max_write_rate=args.write_rate,
        time_limit_hours=args.time_limit,
        refresh_ok=args.refresh,
        no_source_reads=args.no_source_reads,
        prices=prices,
        assumptions=Assumptions(export_hours=args.export_hours, import_hours=args.import_hours),
    )
    if args.target is None:
        # No target named: only the paths, for a new table mirroring the source.
        facts, warnings = source_facts(source_location_from_args(args), options)
        comparison = compare_paths(facts, path_options)
        if args.json:
            out: dict[str, Any] = {"source": facts.source, "target": None, "warnings": warnings}
            out["paths"] = comparison.model_dump(mode="json")
            sys.stdout.write(json.dumps(out, indent=2, sort_keys=True) + "\n")
        else:
            head = f"dynashift plan: {facts.source} (no --target: a new table; nothing changed)"
            lines = [head, "", comparison.to_text()]
            if warnings:
                lines += ["", "Warnings", *(f"  - {w}" for w in warnings)]
            sys.stdout.write("\n".join(lines) + "\n")
        return 0
    source, target = locations_from_args(args)
    plan = make_plan(source, target, options, write_rate=args.write_rate, prices=prices)
    comparison = compare_plan(plan, path_options)
    if args.json:
        doc = {**plan.model_dump(mode="json"), "paths": comparison.model_dump(mode="json")}
        sys.stdout.write(json.dumps(doc, indent=2, sort_keys=True) + "\n")
    else:
        sys.stdout.write(plan.to_text() + "\n\n" + comparison.to_text() + "\n")
    return 0
