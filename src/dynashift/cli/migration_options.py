"""The option group shared by `plan`, `copy` and `migrate`: tables, credentials, target settings.

    add_table_options(parser)     --source/--target and each side's credentials and endpoint
    add_target_options(parser)    overrides for the target table and the source stream
    add_export_options(parser)    the export strategy's S3 location (--export-bucket ...)
    locations_from_args(args)     -> (source TableLocation, target TableLocation)
    source_location_from_args(args) -> source TableLocation (`plan` without --target)
    target_options_from_args(args) -> TargetOptions
    export_location_from_args(args, wanted, by) -> ExportLocation | None

Every value is validated here or by the pydantic models; a bad one raises BadInputError naming
the flag (exit 2, one line) before anything is read or written.
"""

from __future__ import annotations

import argparse
import re

from pydantic import ValidationError

from dynashift.cli.common import add_side_options, positive_int, side_from_args, table_ref
from dynashift.errors import BadInputError
from dynashift.models import ExportLocation, TableLocation
from dynashift.refs import TableRef, is_region
from dynashift.target import TargetOptions
from dynashift.validation import option_error

_TAG_KEY = re.compile(r"^[\w\s.:/=+@-]{1,128}$", re.UNICODE)


def _region(text: str) -> str:
    if not is_region(text):
        raise argparse.ArgumentTypeError(f"{text!r} is not a region name (e.g. eu-west-1)")
    return text


def _tag(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"{text!r} is not KEY=VALUE")
    if not _TAG_KEY.match(key) or key.startswith("aws:"):
        raise argparse.ArgumentTypeError(f"{text!r}: {key!r} is not a valid tag key")
    if len(value) > 256:
        raise argparse.ArgumentTypeError(f"{text!r}: tag values are at most 256 characters")
    return key, value


def add_table_options(parser: argparse.ArgumentParser, *, target_required: bool = True) -> None:
    """--source/--target [REGION:]TABLE, per-side credentials and endpoints, --endpoint-url."""
    tables = parser.add_argument_group("tables")
    tables.add_argument(
        "--source", required=True, type=table_ref, metavar="[REGION:]TABLE", help="source table"
    )
    tables.add_argument(
        "--target",
        required=target_required,
        type=table_ref,
        metavar="[REGION:]TABLE",
        help="target table" + ("" if target_required else " (plan: optional, a new table)"),
    )
    tables.add_argument(
        "--endpoint-url",
        metavar="URL",
        help="endpoint for both sides (a DynamoDB-compatible store, or a local moto server)",
    )
    add_side_options(parser, "source-", "source")
    add_side_options(parser, "target-", "target")


def add_target_options(parser: argparse.ArgumentParser) -> None:
    """Overrides for the target table's settings, and the source stream switch."""
    group = parser.add_argument_group("target table settings (default: mirror the source)")
    group.add_argument(
        "--billing-mode",
        choices=("PROVISIONED", "PAY_PER_REQUEST"),
        type=str.upper,
        help="billing mode of the target",
    )
    group.add_argument(
        "--read-capacity",
        type=positive_int,
        metavar="N",
        help="target read capacity units (with --billing-mode PROVISIONED)",
    )
    group.add_argument(
        "--write-capacity",
        type=positive_int,
        metavar="N",
        help="target write capacity units (with --billing-mode PROVISIONED)",
    )
    group.add_argument(
        "--warm-write-units",
        type=positive_int,
        metavar="N",
        help="pre-warm the target to N write units/s (default: the source's warm throughput "
        "when above a new table's; at least 4,000 on demand, or the write capacity)",
    )
    group.add_argument(
        "--warm-read-units",
        type=positive_int,
        metavar="N",
        help="pre-warm the target to N read units/s (default: the source's; at least 12,000 "
        "on demand, or the read capacity)",
    )
    group.add_argument(
        "--table-class",
        choices=("STANDARD", "STANDARD_INFREQUENT_ACCESS"),
        type=str.upper,
        help="table class of the target",
    )
    group.add_argument(
        "--tag",
        action="append",
        type=_tag,
        default=[],
        metavar="KEY=VALUE",
        help="tag to add to the target (repeatable; overrides a source tag of the same key)",
    )
    group.add_argument(
        "--no-copy-tags", action="store_true", help="do not copy the source's tags to the target"
    )
    group.add_argument(
        "--replica-region",
        action="append",
        type=_region,
        default=[],
        metavar="REGION",
        help="add a replica in REGION: the target becomes a global table (repeatable)",
    )
    group.add_argument(
        "--sse-kms-key-id",
        metavar="KEY",
        help="KMS key (id, alias or ARN) for the target's encryption; required when the "
        "source's key is in another account",
    )
    protection = group.add_mutually_exclusive_group()
    protection.add_argument(
        "--deletion-protection",
        dest="deletion_protection",
        action="store_const",
        const=True,
        default=None,
        help="turn deletion protection on for the target (default: as the source)",
    )
    protection.add_argument(
        "--no-deletion-protection",
        dest="deletion_protection",
        action="store_const",
        const=False,
        help="turn deletion protection off for the target",
    )
    group.add_argument(
        "--allow-nonempty-target",
        action="store_true",
        help="accept an existing target that already holds items",
    )
    group.add_argument(
        "--replace-stream",
        action="store_true",
        help="replace a KEYS_ONLY / OLD_IMAGE source stream with NEW_AND_OLD_IMAGES (disables "
        "the current stream: its other consumers stop receiving records)",
    )


def source_location_from_args(args: argparse.Namespace) -> TableLocation:
    """The source location the table options describe."""
    source_ref: TableRef = args.source
    endpoint = getattr(args, "endpoint_url", None)
    source_side = side_from_args(args, "source-", region=source_ref.region, endpoint_url=endpoint)
    return TableLocation(name=source_ref.name, side=source_side)


def locations_from_args(args: argparse.Namespace) -> tuple[TableLocation, TableLocation]:
    """The source and target locations the table options describe."""
    target_ref: TableRef = args.target
    endpoint = getattr(args, "endpoint_url", None)
    target_side = side_from_args(args, "target-", region=target_ref.region, endpoint_url=endpoint)
    return (
        source_location_from_args(args),
        TableLocation(name=target_ref.name, side=target_side),
    )


def target_options_from_args(args: argparse.Namespace) -> TargetOptions:
    """The TargetOptions the target options describe (BadInputError names a bad combination)."""
    billing = getattr(args, "billing_mode", None)
    read, write = getattr(args, "read_capacity", None), getattr(args, "write_capacity", None)
    if (read or write) and billing == "PAY_PER_REQUEST":
        raise BadInputError(
            "--read-capacity/--write-capacity: not allowed with --billing-mode PAY_PER_REQUEST"
        )
    try:
        return TargetOptions(
            billing_mode=billing,
            read_capacity=read,
            write_capacity=write,
            warm_read_units=getattr(args, "warm_read_units", None),
            warm_write_units=getattr(args, "warm_write_units", None),
            table_class=getattr(args, "table_class", None),
            tags=dict(getattr(args, "tag", None) or []),
            copy_tags=not getattr(args, "no_copy_tags", False),
            replica_regions=tuple(dict.fromkeys(getattr(args, "replica_region", None) or [])),
            sse_kms_key_id=getattr(args, "sse_kms_key_id", None),
            deletion_protection=getattr(args, "deletion_protection", None),
            allow_nonempty_target=bool(getattr(args, "allow_nonempty_target", False)),
            replace_stream=bool(getattr(args, "replace_stream", False)),
        )
    except ValidationError as exc:
        raise option_error(exc) from None


#: The export flags (`--export-<field>`, the ExportLocation field with dashes).
EXPORT_FLAGS = ("bucket", "prefix", "bucket_owner", "kms_key_id")


def add_export_options(
    parser: argparse.ArgumentParser, group: argparse._ArgumentGroup | None = None
) -> None:
    """Where the source is exported (`--strategy export`, docs/export.md; `copy --via-import`,
    which passes its own `group`): required with the option calling for an export, refused
    without it (`export_location_from_args`)."""
    if group is None:
        group = parser.add_argument_group("export strategy (--strategy export; docs/export.md)")
    group.add_argument(
        "--export-bucket",
        metavar="BUCKET",
        help="S3 bucket the source is exported to (point-in-time recovery must be on)",
    )
    group.add_argument(
        "--export-prefix", metavar="PREFIX", help="key prefix of the export (default: none)"
    )
    group.add_argument(
        "--export-bucket-owner",
        metavar="ACCOUNT",
        help="account id owning the bucket when it is not the source's (e.g. the target's)",
    )
    group.add_argument(
        "--export-kms-key-id",
        metavar="KEY",
        help="KMS key (id, alias or ARN) encrypting the export's objects (default: SSE-S3)",
    )


def export_location_from_args(
    args: argparse.Namespace, wanted: bool, by: str, why_not: str = ""
) -> ExportLocation | None:
    """The export location the `--export-*` flags describe, when `wanted` (`by` calls for an
    export: `--strategy export`, `--via-import`): `--export-bucket` is then required, and every
    export flag is refused otherwise (BadInputError naming the flag; `why_not` is appended)."""
    given = {f: getattr(args, f"export_{f}", None) for f in EXPORT_FLAGS}
    given = {f: v for f, v in given.items() if v is not None}
    if not wanted:
        if given:
            flag = "--export-" + next(iter(given)).replace("_", "-")
            raise BadInputError(f"{flag}: only with {by}{why_not}")
        return None
    if "bucket" not in given:
        raise BadInputError(f"--export-bucket: required with {by}")
    try:
        return ExportLocation.model_validate(given)
    except ValidationError as exc:
        raise option_error(exc, prefix="export-") from None
