"""`dynashift sync`: find, and optionally repair, differences between a master and its slaves.

A thin adapter: parse the flags (the seed tool's, see docs/sync.md), build a `SyncEngine`, run
it, print a per-slave summary and write `--report`. Exit 0 in sync or fully repaired, 1 when
differences remain (a dry run that found some), 2 bad input, 3 runtime failure.
"""

from __future__ import annotations

import argparse
import json
import sys
from decimal import Decimal
from pathlib import Path
from typing import Any

from dynashift.cli.common import add_side_options, positive_int, side_from_args, table_ref
from dynashift.errors import BadInputError, DynashiftError
from dynashift.models import TableLocation
from dynashift.progress import Progress
from dynashift.settings import is_terminal_output
from dynashift.sync import DEFAULT_BATCH_READ_LIMIT, SyncEngine, SyncOptions
from dynashift.tables import BATCH_GET_MAX


def starting_key(text: str) -> Any:
    """`--starting-key`: a JSON key object, or the JSON list of per-segment keys dynashift logs."""
    try:
        value = json.loads(text, parse_float=Decimal)
    except json.JSONDecodeError as exc:
        raise argparse.ArgumentTypeError(f"{text!r} is not valid JSON ({exc.msg})") from None
    if not isinstance(value, dict | list):
        raise argparse.ArgumentTypeError(f"{text!r} is not a JSON object or list")
    return value


def batch_read_limit(text: str) -> int:
    value = positive_int(text)
    if value > BATCH_GET_MAX:
        raise argparse.ArgumentTypeError(f"{text!r} must be between 1 and {BATCH_GET_MAX}")
    return value


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "sync",
        help="find (and optionally repair) differences between a master table and its copies",
        description=(
            "Scan the master table and compare every item with each slave. Without a write "
            "flag this is a dry run that writes nothing."
        ),
    )
    p.add_argument("-m", "--master", required=True, type=table_ref, metavar="[REGION:]TABLE")
    p.add_argument(
        "-s",
        "--slave",
        action="append",
        type=table_ref,
        metavar="[REGION:]TABLE",
        help="a table that should hold the master's content (repeatable)",
    )
    p.add_argument(
        "--write-missing",
        action="store_true",
        help="write items a slave lacks (the master re-read consistently; skipped when the "
        "slave item appeared since it was read)",
    )
    p.add_argument(
        "--write-differing",
        action="store_true",
        help="overwrite slave items that differ (skipped when the slave item changed since "
        "it was compared)",
    )
    p.add_argument(
        "--scan-for-extra",
        action="store_true",
        help="also scan each slave for items absent from the master (report only)",
    )
    p.add_argument(
        "--delete-extra",
        action="store_true",
        help="delete slave items absent from the master, re-read consistently (implies "
        "--scan-for-extra; skipped when the slave item changed since it was read)",
    )
    p.add_argument(
        "--ignore",
        "--ignore-att",
        action="append",
        default=[],
        metavar="ATTR",
        help="attribute left out of the comparison (repeatable)",
    )
    p.add_argument(
        "--compare-replication-attributes",
        action="store_true",
        help="compare the aws:rep:* attributes of legacy global tables (ignored by default)",
    )
    p.add_argument("--parallel", type=positive_int, metavar="N", help="scan segments (default 1)")
    p.add_argument(
        "--starting-key",
        type=starting_key,
        metavar="JSON",
        help="resume the master scan: a key object, or the per-segment list dynashift logged",
    )
    p.add_argument("--scan-limit", type=positive_int, metavar="N", help="items per Scan page")
    p.add_argument(
        "--batch-read-limit",
        type=batch_read_limit,
        default=DEFAULT_BATCH_READ_LIMIT,
        metavar="N",
        help=f"keys per BatchGetItem (default {DEFAULT_BATCH_READ_LIMIT}, max {BATCH_GET_MAX})",
    )
    p.add_argument(
        "--consistent-read", action="store_true", help="strongly consistent reads of the slaves"
    )
    p.add_argument("--report", metavar="FILE.json", help="write the JSON report here")
    add_side_options(p, "", "master")
    add_side_options(p, "slave-", "slaves")
    p.set_defaults(func=run)


def _slave_side_given(args: argparse.Namespace) -> bool:
    return any(
        getattr(args, f"slave_{n}", None)
        for n in ("profile", "role_arn", "external_id", "mfa_serial", "mfa_token")
    )


def build_engine(args: argparse.Namespace) -> SyncEngine:
    if not args.slave:
        raise BadInputError("--slave: at least one slave table is required")
    if args.report:
        folder = Path(args.report).expanduser().resolve().parent
        if not folder.is_dir():
            raise BadInputError(f"--report: folder {str(folder)!r} does not exist")
    master_side = side_from_args(args, "")
    # Slaves use the master's credentials unless slave credentials are given (as the seed).
    if _slave_side_given(args):
        slave_side = side_from_args(
            args, "slave-", endpoint_url=args.slave_endpoint_url or args.endpoint_url
        )
    elif args.slave_endpoint_url:
        endpoint = side_from_args(args, "slave-").endpoint_url  # validates the URL
        slave_side = master_side.model_copy(update={"endpoint_url": endpoint})
    else:
        slave_side = master_side
    options = SyncOptions.parse(
        write_missing=args.write_missing,
        write_differing=args.write_differing,
        scan_for_extra=args.scan_for_extra,
        delete_extra=args.delete_extra,
        ignore=tuple(args.ignore),
        ignore_legacy=not args.compare_replication_attributes,
        parallel=args.parallel,
        starting_key=args.starting_key,
        scan_limit=args.scan_limit,
        batch_read_limit=args.batch_read_limit,
        consistent_reads=args.consistent_read,
    )
    tty = is_terminal_output()

    def progress(label: str, total: int | None) -> Progress:
        return Progress(label, total, tty=tty)

    return SyncEngine(
        TableLocation.from_ref(args.master, master_side),
        [TableLocation.from_ref(ref, slave_side) for ref in args.slave],
        options,
        progress=progress,
    )


def _write_report(path: str, data: dict[str, Any]) -> None:
    Path(path).expanduser().write_text(json.dumps(data, indent=2, sort_keys=False) + "\n")


def run(args: argparse.Namespace) -> int:
    engine = build_engine(args)
    engine.prepare()  # every bad input raises here, before any item is read or written
    try:
        report = engine.run()
    except (DynashiftError, KeyboardInterrupt):
        if args.report and engine.report is not None:
            _write_report(args.report, engine.report.to_json())
        raise
    for line in report.summary_lines():
        print(line, file=sys.stdout)
    if args.report:
        _write_report(args.report, report.to_json())
    return report.exit_code
