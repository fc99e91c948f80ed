"""Compatibility checks on a target (read-only) and the two-way settings parity.

check_target(source, target, options, state)  "create" or "exists" + warnings, or raises
compare_target(spec, existing, options)        every mirrored setting compared both ways
same_table(...), target_has_items(...)         the two safety rules
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from typing import Any, Literal

from botocore.exceptions import ClientError
from pydantic import BaseModel, ConfigDict, Field

from dynashift.aws import error_code, session_for
from dynashift.errors import (
    BadInputError,
    IncompatibleSchemaError,
    TableNotFoundError,
    UnsafeTargetError,
)
from dynashift.items import TOMBSTONE_ATTR, is_tombstone
from dynashift.models import PROCESS_CLIENTS, Clients, TableLocation
from dynashift.state import StateStore
from dynashift.target.describe import (
    TableDescription,
    describe_location,
    describe_source,
    has_resource_policy,
    location_region,
    warm_units,
)
from dynashift.target.options import TargetOptions
from dynashift.target.spec import (
    ON_DEMAND_INITIAL_RCU,
    ON_DEMAND_INITIAL_WCU,
    TargetSpec,
    build_target_spec,
    raised_warm_throughput,
)

log = logging.getLogger("dynashift")

_KMS_ARN = re.compile(r"^arn:[a-z-]+:kms:([a-z0-9-]+):(\d{12}):")
_ROLE_ACCOUNT = re.compile(r"^arn:[a-z-]+:iam::(\d{12}):")


class TargetCheck(BaseModel):
    """The read-only verdict on a target: what `start_prepare_target` will do, and warnings."""

    model_config = ConfigDict(extra="forbid")

    action: Literal["create", "exists"]
    source: TableDescription
    spec: TargetSpec
    #: The target's description when it exists.
    target: TableDescription | None = None
    #: The target holds items (other than tombstones).
    nonempty: bool = False
    #: The state store's meta names this target: a resumed run.
    resumed: bool = False
    #: The state store says this migration created the target.
    created_by_migration: bool = False
    warnings: list[str] = Field(default_factory=list)


def account_of_location(location: TableLocation, region: str | None) -> str | None:
    """The account the target side acts in: the role's account, else the caller's identity."""
    if location.side.role_arn:
        match = _ROLE_ACCOUNT.match(location.side.role_arn)
        return match.group(1) if match else None
    try:
        sts = session_for(location.side).client(
            "sts",
            region_name=region,
            endpoint_url=location.side.endpoint_url,
        )
        return str(sts.get_caller_identity()["Account"])
    except Exception as exc:  # any failure only means "unknown": the check is skipped
        log.debug("caller identity of %s unknown: %s", location.display(), exc)
        return None


def _check_kms(
    spec: TargetSpec,
    src: TableDescription,
    target: TableLocation,
    options: TargetOptions,
    target_region: str | None,
) -> None:
    if options.sse_kms_key_id or not spec.sse or not spec.sse.get("KMSMasterKeyId"):
        return
    match = _KMS_ARN.match(str(spec.sse["KMSMasterKeyId"]))
    if not match:
        return
    key_region, key_account = match.groups()
    if target_region and key_region != target_region:
        raise BadInputError(
            f"the source is encrypted with KMS key {spec.sse['KMSMasterKeyId']} in {key_region}; "
            f"the target is in {target_region}: give a key there with --sse-kms-key-id"
        )
    account = account_of_location(target, target_region)
    if account and account != key_account:
        raise BadInputError(
            f"the source is encrypted with KMS key {spec.sse['KMSMasterKeyId']} of account "
            f"{key_account}; the target is in account {account}: a key in another account must "
            "be given explicitly with --sse-kms-key-id"
        )


def same_table(
    source: TableLocation,
    target: TableLocation,
    source_arn: str | None = None,
    target_arn: str | None = None,
    *,
    clients: Clients = PROCESS_CLIENTS,
) -> bool:
    """True when both locations name one table (refused: a migration onto itself)."""
    if (source.side.endpoint_url or "") != (target.side.endpoint_url or ""):
        return False
    if source_arn and target_arn:
        return source_arn == target_arn
    if source.name != target.name:
        return False
    return (
        clients(source).region == clients(target).region
        and source.side.profile == target.side.profile
        and source.side.role_arn == target.side.role_arn
    )


def target_has_items(client: Any, table: str, max_pages: int = 100) -> bool:
    """True when a Scan finds an item that is not a tombstone (ItemCount lags by hours)."""
    kwargs: dict[str, Any] = {"TableName": table, "Limit": 1}
    for page_no in range(max_pages):
        page = client.scan(**kwargs)
        if any(not is_tombstone(i) for i in page.get("Items", [])):
            return True
        if not page.get("LastEvaluatedKey"):
            return False
        kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]
        if page_no == 0:
            # The first item was a tombstone: look past tombstones in bigger pages.
            kwargs.update(
                Limit=1000,
                FilterExpression="attribute_not_exists(#t)",
                ExpressionAttributeNames={"#t": TOMBSTONE_ATTR},
            )
    return True


def migration_meta(state: StateStore | None) -> dict[str, Any] | None:
    if state is None:
        return None
    try:
        return state.get_meta()
    except ClientError as exc:
        if error_code(exc) == "ResourceNotFoundException":
            return None
        raise


def _meta_names_target(meta: Mapping[str, Any] | None, target: TableLocation) -> bool:
    if not meta:
        return False
    recorded = meta.get("target")
    if isinstance(recorded, Mapping):
        recorded = recorded.get("name")
    return recorded in (target.name, target.display())


def _projection_key(projection: Mapping[str, Any]) -> tuple[str, tuple[str, ...]]:
    """A projection for comparison: its type and its (unordered) non-key attributes."""
    return (
        str(projection.get("ProjectionType", "ALL")),
        tuple(sorted(projection.get("NonKeyAttributes") or ())),
    )


def _index_capacity(index: Mapping[str, Any]) -> tuple[int, int] | None:
    pt = index.get("ProvisionedThroughput") or {}
    if not pt.get("ReadCapacityUnits"):
        return None
    return int(pt["ReadCapacityUnits"]), int(pt.get("WriteCapacityUnits", 0))


def _compare_indexes(
    kind: str,
    want: list[dict[str, Any]],
    have: list[dict[str, Any]],
    name: str,
    compare_capacity: bool,
) -> list[str]:
    warnings: list[str] = []
    have_by_name = {i["IndexName"]: i for i in have}
    for index in want:
        other = have_by_name.get(index["IndexName"])
        if other is None:
            hint = " (LSIs can only be created with the table)" if kind == "LSI" else ""
            warnings.append(f"target {name} has no {kind} {index['IndexName']}{hint}")
        elif list(other["KeySchema"]) != list(index["KeySchema"]) or _projection_key(
            other.get("Projection", {})
        ) != _projection_key(index.get("Projection", {})):
            warnings.append(f"target {name}: {kind} {index['IndexName']} differs from the source's")
        elif compare_capacity and _index_capacity(index) != _index_capacity(other):
            warnings.append(
                f"target {name}: {kind} {index['IndexName']} capacity {_index_capacity(other)} "
                f"differs from {_index_capacity(index)} (RCU, WCU)"
            )
    for extra in sorted(set(have_by_name) - {i["IndexName"] for i in want}):
        warnings.append(f"target {name} has a {kind} {extra} the source does not have")
    return warnings


def _kms_key_arn(sse: Mapping[str, Any] | None) -> str | None:
    """The KMS key ARN of an SSE specification or description (None: not known as an ARN)."""
    if not sse:
        return None
    key = sse.get("KMSMasterKeyArn") or sse.get("KMSMasterKeyId")
    return str(key) if key and _KMS_ARN.match(str(key)) else None


def _compare_warm(
    spec: TargetSpec, existing: TableDescription, options: TargetOptions
) -> list[str]:
    """The target's warm throughput (table, each GSI) lower than the spec's, one line each.

    One way only: a warmer target than the source is no difference (warm throughput only
    grows, with the target's own traffic). The spec's is the source's where it is above a new
    table's floor, or the `--warm-*` flags' (then `poll_target` raises the target's)."""
    name = existing.display()
    warnings: list[str] = []
    have, want = existing.warm_throughput, spec.warm_throughput
    if have and want and raised_warm_throughput(have, want):
        explicit = options.warm_read_units or options.warm_write_units
        warnings.append(
            f"target {name} warm throughput {have[0]:,} read / {have[1]:,} write units/s is "
            f"lower than the {want[0]:,} / {want[1]:,} "
            + ("asked for: it will be raised" if explicit else "of the source")
        )
    have_gsis = {g["IndexName"]: warm_units(g) for g in existing.gsis}
    for gsi in spec.global_secondary_indexes:
        gsi_have, gsi_want = have_gsis.get(gsi["IndexName"]), warm_units(gsi)
        if gsi_have and gsi_want and raised_warm_throughput(gsi_have, gsi_want):
            warnings.append(
                f"target {name}: GSI {gsi['IndexName']} warm throughput {gsi_have[0]:,} read / "
                f"{gsi_have[1]:,} write units/s is lower than the {gsi_want[0]:,} / "
                f"{gsi_want[1]:,} of the source"
            )
    return warnings


def compare_target(
    spec: TargetSpec, existing: TableDescription, options: TargetOptions, *, warm: bool = True
) -> list[str]:
    """Differences of an existing target from the spec, one warning each (keys checked before).

    Every mirrored setting is compared both ways: what the source (and the options) call for
    and the target lacks, and what the target has that the source does not — after cutover a
    target's TTL would expire items the source keeps, an extra index costs writes, and so on.
    GSIs and LSIs (keys, projection, GSI capacity), billing mode and capacity, TTL attribute,
    point-in-time recovery, encryption (owned key / KMS, and which key when both name one),
    table class, deletion protection, tags, replicas and the stream the options ask for.

    Not differences: a setting of the target that could not be read (the description carries
    a warning; DynamoDB-compatible stores lack some APIs), the source's replicas (a target gets
    replicas only from `replica_regions`, see `build_target_spec`), and a stream on the target
    when the options ask for none (it changes no data; the source's stream is the migration's).

    `warm=False` leaves warm throughput out (the readiness check): it is a pre-warming hint, not
    a setting the cutover depends on, and an on-demand source's warm throughput grows on its
    own while it serves traffic, so a target prepared to match could fall behind during the
    migration and never be READY. Preparing and `plan` still warn about it.
    """
    warnings: list[str] = []
    name = existing.display()
    warnings += _compare_indexes(
        "GSI",
        spec.global_secondary_indexes,
        existing.gsis,
        name,
        compare_capacity=spec.billing_mode == "PROVISIONED"
        and existing.billing_mode == "PROVISIONED",
    )
    warnings += _compare_indexes(
        "LSI", spec.local_secondary_indexes, existing.lsis, name, compare_capacity=False
    )
    if existing.billing_mode != spec.billing_mode:
        warnings.append(
            f"target {name} is {existing.billing_mode}, the source/options call for "
            f"{spec.billing_mode}"
        )
    elif spec.capacity and existing.capacity != spec.capacity:
        warnings.append(
            f"target {name} capacity {existing.capacity} differs from {spec.capacity} (RCU, WCU)"
        )
    if warm:
        warnings += _compare_warm(spec, existing, options)
    if existing.ttl_status != "UNKNOWN" and existing.ttl_attribute != spec.ttl_attribute:
        if spec.ttl_attribute is None:
            warnings.append(
                f"target {name} TTL is on {existing.ttl_attribute!r}, the source's is off "
                "(the target would expire items the source keeps)"
            )
        else:
            warnings.append(
                f"target {name} TTL is {existing.ttl_attribute or 'off'}, the source's is on "
                f"{spec.ttl_attribute!r}"
            )
    if existing.pitr is not None and existing.pitr != spec.pitr:
        if spec.pitr:
            warnings.append(f"target {name} has point-in-time recovery off (the source has it on)")
        else:
            warnings.append(f"target {name} has point-in-time recovery on (the source has it off)")
    want_class = spec.table_class or "STANDARD"
    if existing.table_class != want_class:
        warnings.append(f"target {name} table class is {existing.table_class}, not {want_class}")
    if spec.sse and not existing.sse:
        warnings.append(f"target {name} uses an AWS owned key; the source uses KMS")
    elif existing.sse and not spec.sse:
        warnings.append(f"target {name} uses KMS; the source uses an AWS owned key")
    elif spec.sse and existing.sse:
        want_key, have_key = _kms_key_arn(spec.sse), _kms_key_arn(existing.sse)
        if want_key and have_key and want_key != have_key:
            warnings.append(f"target {name} uses KMS key {have_key}, not {want_key}")
    if spec.deletion_protection != existing.deletion_protection:
        warnings.append(
            f"target {name} has deletion protection "
            + (
                "off (the source/options call for on)"
                if spec.deletion_protection
                else "on (the source/options call for off)"
            )
        )
    if existing.tags is not None:
        missing = sorted(k for k, v in spec.tags.items() if existing.tags.get(k) != v)
        explicit = [k for k in missing if k in options.tags]
        mirrored = [k for k in missing if k not in options.tags]
        if mirrored:
            warnings.append(f"target {name} lacks the source's tags: {', '.join(mirrored)}")
        if explicit:
            warnings.append(f"target {name}: tags {', '.join(explicit)} will be added")
        extra_tags = sorted(
            k for k in existing.tags if k not in spec.tags and not k.startswith("aws:")
        )
        if extra_tags:
            warnings.append(
                f"target {name} has tags the source does not have: {', '.join(extra_tags)}"
            )
    missing_replicas = [r for r in spec.replica_regions if r not in existing.replicas]
    if missing_replicas:
        warnings.append(f"target {name}: replicas will be added in {', '.join(missing_replicas)}")
    extra_replicas = sorted(set(existing.replicas) - set(spec.replica_regions))
    if extra_replicas:
        warnings.append(
            f"target {name} has replicas in {', '.join(extra_replicas)} that the options do not "
            "call for (writes there would spread to the target)"
        )
    if spec.stream_view_type and existing.stream_view_type != spec.stream_view_type:
        reason = " (replicas need NEW_AND_OLD_IMAGES)" if spec.replica_regions else ""
        warnings.append(
            f"target {name} has "
            + (f"a {existing.stream_view_type}" if existing.stream_view_type else "no")
            + f" stream, not {spec.stream_view_type}{reason}"
        )
    return warnings


def check_target(
    source: TableLocation,
    target: TableLocation,
    options: TargetOptions,
    state: StateStore | None = None,
    *,
    source_client: Any = None,
    target_client: Any = None,
    clients: Clients = PROCESS_CLIENTS,
) -> TargetCheck:
    """Read-only verdict on the target; raises on what must stop the migration (exit 2).

    IncompatibleSchemaError: an existing target with another key schema. UnsafeTargetError:
    source and target are one table; the target holds items and neither
    `allow_nonempty_target` nor the state store (a resumed run) allows it.
    TableNotFoundError: the source does not exist. `source_client` / `target_client`: the
    DynamoDB clients of each side (default: `clients`').
    """
    source_client, target_client = clients.dynamodb_pair(
        source, target, source_client, target_client
    )
    if same_table(source, target, clients=clients):
        raise UnsafeTargetError(f"target {target.display()} is the same table as the source")
    src = describe_source(source, source_client)
    spec = build_target_spec(src, options)
    warnings = list(src.warnings) + list(spec.warnings)
    if src.arn and has_resource_policy(source_client, src.arn, "source", warnings):
        warnings.append(
            "source has a resource policy; not copied (it names the source's ARN and "
            "principals: write the target's own if other accounts need it)"
        )
    if options.replica_regions:
        region = location_region(target, target_client)
        if region in options.replica_regions:
            raise BadInputError(
                f"--replica-region {region}: that is the target's own region, not a replica"
            )
    try:
        existing = describe_location(target, "target", target_client)
    except TableNotFoundError:
        existing = None
    if existing is not None and same_table(source, target, src.arn, existing.arn, clients=clients):
        raise UnsafeTargetError(
            f"target {target.display()} is the same table as the source ({src.arn})"
        )
    _check_kms(spec, src, target, options, location_region(target, target_client))
    meta = migration_meta(state)
    resumed = _meta_names_target(meta, target)
    created_by = bool(resumed and meta and meta.get("target_created"))
    if existing is None:
        if src.lsis:
            warnings.append(
                "LSIs can only be created with the table: the target is created with "
                + ", ".join(i["IndexName"] for i in src.lsis)
            )
        warm_writes = spec.warm_throughput[1] if spec.warm_throughput else 0
        if spec.billing_mode == "PAY_PER_REQUEST" and warm_writes <= ON_DEMAND_INITIAL_WCU:
            warnings.append(
                f"a new on-demand target starts with an initial throughput of about "
                f"{ON_DEMAND_INITIAL_WCU:,} WCU ({ON_DEMAND_INITIAL_RCU:,} RCU): a faster "
                "backfill is throttled while it scales; cap it with a write rate, or pre-warm "
                "it with --warm-write-units N"
            )
        return TargetCheck(
            action="create", source=src, spec=spec, resumed=resumed, warnings=warnings
        )
    if not src.same_key_schema(existing):
        raise IncompatibleSchemaError(
            f"target {existing.display()} key schema [{existing.key_schema_text()}] differs "
            f"from source {src.display()} key schema [{src.key_schema_text()}]"
        )
    warnings.extend(existing.warnings)
    warnings.extend(compare_target(spec, existing, options))
    nonempty = target_has_items(target_client, target.name)
    if nonempty and not (options.allow_nonempty_target or resumed):
        raise UnsafeTargetError(
            f"target {existing.display()} is not empty; pass --allow-nonempty-target to migrate "
            "into it anyway (its items are kept and overwritten where the source has them)"
        )
    if nonempty:
        warnings.append(
            f"target {existing.display()} is not empty"
            + (" (a resumed run of this migration)" if resumed else " (allowed)")
        )
    return TargetCheck(
        action="exists",
        source=src,
        spec=spec,
        target=existing,
        nonempty=nonempty,
        resumed=resumed,
        created_by_migration=created_by,
        warnings=warnings,
    )
