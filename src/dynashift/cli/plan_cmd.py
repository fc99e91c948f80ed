"""`dynashift plan`: what a migration will create, change and cost — without changing anything."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from dynashift.cli.common import positive_float
from dynashift.cli.migration_options import (
    add_table_options,
    add_target_options,
    locations_from_args,
    target_options_from_args,
)
from dynashift.plan import Prices, make_plan


def _price(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text!r} must not be negative")
    return value


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "plan",
        help="show what a migration will create, change and cost (changes nothing)",
        description="Print, without writing anything, what `dynashift migrate` with the same "
        "options would create or change on each side, the source's size, the estimated read "
        "and write units and on-demand cost of backfill and verification, and the backfill "
        "duration. Runs the same checks as migrate: exit 2 when it would refuse.",
    )
    add_table_options(parser)
    add_target_options(parser)
    est = parser.add_argument_group("estimates")
    est.add_argument(
        "--write-rate",
        type=positive_float,
        metavar="ITEMS_PER_S",
        help="backfill write rate to estimate the duration with (default: 80%% of a "
        "provisioned target's WCU, or an on-demand table's initial 4,000 WCU)",
    )
    defaults = Prices()
    est.add_argument(
        "--write-price",
        type=_price,
        default=defaults.write_per_million,
        metavar="USD",
        help="USD per million write request units (default %(default)s)",
    )
    est.add_argument(
        "--read-price",
        type=_price,
        default=defaults.read_per_million,
        metavar="USD",
        help="USD per million read request units (default %(default)s)",
    )
    est.add_argument(
        "--replicated-write-price",
        type=_price,
        default=defaults.replicated_write_per_million,
        metavar="USD",
        help="USD per million replicated write units (default %(default)s)",
    )
    est.add_argument(
        "--storage-price",
        type=_price,
        default=defaults.storage_per_gb_month,
        metavar="USD",
        help="USD per GB-month of storage (default %(default)s)",
    )
    parser.add_argument("--json", action="store_true", help="print the plan as JSON")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    source, target = locations_from_args(args)
    options = target_options_from_args(args)
    prices = Prices(
        write_per_million=args.write_price,
        read_per_million=args.read_price,
        replicated_write_per_million=args.replicated_write_price,
        storage_per_gb_month=args.storage_price,
    )
    plan = make_plan(source, target, options, write_rate=args.write_rate, prices=prices)
    sys.stdout.write((plan.to_json() if args.json else plan.to_text()) + "\n")
    return 0
