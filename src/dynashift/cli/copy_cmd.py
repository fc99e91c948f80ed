"""`dynashift copy`: one-shot copy of a table or a key subset (no streams). A thin adapter:
parse the flags, confirm a truncation, call `copy.copy_table` — or, with `--via-import`,
`import_refresh.import_refresh` (export to S3, then ImportTable) — and print the summary."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from dynashift.cli.common import bounded_int, positive_float, positive_int
from dynashift.cli.migration_options import (
    add_export_options,
    add_table_options,
    add_target_options,
    export_location_from_args,
    locations_from_args,
    target_options_from_args,
)
from dynashift.copy import CopyOptions, CopySummary, copy_table
from dynashift.errors import BadInputError
from dynashift.import_refresh import (
    VIA_IMPORT_CONFLICTS,
    ImportRefreshOptions,
    ImportRefreshSummary,
    import_refresh,
)
from dynashift.progress import Progress
from dynashift.settings import is_terminal_output


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "copy",
        help="one-shot copy of a table (or a key subset) into another, without streams",
        description=(
            "Copy every item of --source (or the items of one partition with --pk) into "
            "--target, creating the target like `migrate` does when it is missing. Changes made "
            "to the source during the copy are not replicated: use `migrate` for live tables."
        ),
    )
    add_table_options(p)
    add_target_options(p)
    g = p.add_argument_group("copy")
    g.add_argument(
        "--segments",
        type=bounded_int(1, 1000),
        metavar="N",
        help="parallel scan segments (default 4)",
    )
    g.add_argument(
        "--max-write-rate",
        type=positive_float,
        metavar="ITEMS_PER_S",
        help="cap the write rate (default: 80%% of a provisioned target's WCU, else uncapped)",
    )
    g.add_argument(
        "--truncate-target",
        action="store_true",
        help="delete every item of an existing target first (after an on-demand backup)",
    )
    g.add_argument(
        "--no-backup",
        action="store_true",
        help="with --truncate-target: do not take an on-demand backup first",
    )
    g.add_argument(
        "--yes", action="store_true", help="confirm --truncate-target without being asked"
    )
    g.add_argument("--pk", metavar="VALUE", help="copy only the items of this partition key value")
    g.add_argument(
        "--sk-begins-with",
        metavar="PREFIX",
        help="with --pk: only items whose sort key begins with PREFIX",
    )
    g.add_argument(
        "--index", metavar="NAME", help="with --pk: query this GSI/LSI instead of the table"
    )
    g.add_argument("--page-size", type=positive_int, metavar="N", help="items per Scan/Query page")
    g.add_argument("--json", action="store_true", help="print the summary as JSON")
    imp = p.add_argument_group(
        "via import (docs/import-refresh.md)",
        "export the source to S3 (needs point-in-time recovery on it) and create the target "
        "with ImportTable: no source read or target write capacity is used; the target must "
        "not exist",
    )
    imp.add_argument(
        "--via-import", action="store_true", help="refresh through an export and ImportTable"
    )
    add_export_options(p, imp)
    p.set_defaults(func=run)


def _confirm_truncate(args: argparse.Namespace, target: str) -> bool:
    if not args.truncate_target or args.yes:
        return True
    if not sys.stdin.isatty():
        raise BadInputError(
            f"--truncate-target deletes every item of {target}: pass --yes to confirm "
            "(stdin is not a terminal)"
        )
    answer = input(f"Delete every item of {target} before copying? Type the table name: ")
    if answer.strip() != target.rsplit(":", maxsplit=1)[-1]:
        raise BadInputError("--truncate-target: not confirmed, nothing was changed")
    return True


def format_summary(summary: CopySummary) -> str:
    lines = [f"copied {summary.source} -> {summary.target} ({summary.mode})"]
    if summary.target_created:
        lines.append("  target created")
    if summary.backup_arn:
        lines.append(f"  backup: {summary.backup_arn}")
    if summary.truncated:
        lines.append(f"  truncated: {summary.truncated} items deleted first")
    lines.append(
        f"  read {summary.read}, written {summary.written} in {summary.seconds:.1f}s "
        f"({summary.items_per_second:,.0f} items/s)"
    )
    if summary.throttles or summary.unprocessed:
        lines.append(
            f"  throttled/unprocessed retries: {summary.retries} "
            f"(unprocessed items {summary.unprocessed})"
        )
    lines.extend(f"  warning: {w}" for w in summary.warnings)
    return "\n".join(lines)


def format_import_summary(summary: ImportRefreshSummary) -> str:
    lines = [
        f"imported {summary.source} -> {summary.target} (export, then ImportTable)",
        f"  export: {summary.export_arn} ({summary.exported_items} items"
        + (f", as of {summary.export_time})" if summary.export_time else ")"),
        f"  import: {summary.import_arn}",
        f"  imported {summary.imported_items} of {summary.processed_items} items read, "
        f"{summary.error_count} errors, in {summary.seconds:.1f}s",
    ]
    lines.extend(f"  set after the import: {step}" for step in summary.settings_applied)
    lines.extend(f"  settings differ: {p}" for p in summary.parity)
    if not summary.parity:
        lines.append("  settings: the target's match the source's")
    lines.extend(f"  warning: {w}" for w in summary.warnings)
    return "\n".join(lines)


def _import_options(args: argparse.Namespace) -> ImportRefreshOptions | None:
    """What `--via-import` asks for (None without it: no `--export-*` flag allowed then)."""
    export = export_location_from_args(args, args.via_import, "--via-import")
    if export is None:
        return None
    for attr, flag in VIA_IMPORT_CONFLICTS.items():
        if getattr(args, attr, None):
            raise BadInputError(f"{flag}: cannot be combined with --via-import")
    return ImportRefreshOptions(export=export, target=target_options_from_args(args))


def _run_import(args: argparse.Namespace, options: ImportRefreshOptions) -> int:
    source, target = locations_from_args(args)
    progress = Progress("copy --via-import", tty=is_terminal_output())
    summary = import_refresh(source, target, options, progress=progress)
    if args.json:
        print(json.dumps(summary.model_dump(mode="json"), indent=2, sort_keys=True))
    else:
        print(format_import_summary(summary))
    return 0


def run(args: argparse.Namespace) -> int:
    import_options = _import_options(args)
    if import_options is not None:
        return _run_import(args, import_options)
    source, target = locations_from_args(args)
    if args.no_backup and not args.truncate_target:
        raise BadInputError("--no-backup: only meaningful with --truncate-target")
    options = CopyOptions(
        segments=args.segments or 4,
        max_write_rate=args.max_write_rate,
        truncate_target=args.truncate_target,
        backup=not args.no_backup,
        partition_key_value=args.pk,
        sort_key_prefix=args.sk_begins_with,
        index=args.index,
        page_size=args.page_size,
        target=target_options_from_args(args),
    )
    confirmed = _confirm_truncate(args, target.display())
    progress = Progress("copy", tty=is_terminal_output())
    summary = copy_table(source, target, options, truncate_confirmed=confirmed, progress=progress)
    if args.json:
        print(json.dumps(summary.model_dump(mode="json"), indent=2, sort_keys=True))
    else:
        print(format_summary(summary))
    return 0
