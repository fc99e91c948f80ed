"""Describe the source, mirror it into a target specification, create or verify the target.

    describe_source(source)                       DescribeTable + TTL + PITR + tags
    build_target_spec(src, options)               the target the source calls for (pure)
    check_target(source, target, options, state)  read-only: "create" or "exists" + warnings
    start_prepare_target(...)                     non-blocking: create (or verify), first poll
    poll_target(...)                              non-blocking: one step towards ready
    prepare_target(...)                           blocking: start + poll with a deadline

Rules, each written once here:

- The key schema must match exactly (IncompatibleSchemaError names both). Every other
  difference of an existing target (GSIs, LSIs, billing, TTL, PITR, SSE, class, tags, stream)
  is a warning: an existing target is never changed except for what the operator asked for
  explicitly (`--tag`, `--replica-region`).
- Source and target being the same table (same endpoint and table ARN, or the same name,
  region, endpoint and credentials) is refused, as is a non-empty target unless
  `allow_nonempty_target` or the state store's meta names this target (a resumed run).
  "Empty" means a Scan finds no item other than tombstones (ItemCount lags by hours).
- A KMS key in another account or region than the target must be given explicitly.
- Settings that need separate calls once the table is ACTIVE (TTL, PITR, tags, a stream for
  replicas, replicas one at a time) are applied by `poll_target`, one mutating call per poll,
  each idempotent, so the state machine can call it in a Wait/Choice loop.
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Callable, Mapping
from typing import Any, Literal

from botocore.exceptions import ClientError
from pydantic import BaseModel, ConfigDict, Field

from dynashift.aws import error_code, session_for
from dynashift.errors import (
    BadInputError,
    IncompatibleSchemaError,
    RuntimeFailure,
    TableNotFoundError,
    UnsafeTargetError,
)
from dynashift.items import TOMBSTONE_ATTR, is_tombstone
from dynashift.models import TableLocation
from dynashift.progress import NullProgress, Progress
from dynashift.state import StateStore
from dynashift.tables import describe_table, key_schema_text, same_key_schema

log = logging.getLogger("dynashift")

BillingMode = Literal["PROVISIONED", "PAY_PER_REQUEST"]
TableClass = Literal["STANDARD", "STANDARD_INFREQUENT_ACCESS"]
StreamViewType = Literal["NEW_IMAGE", "OLD_IMAGE", "NEW_AND_OLD_IMAGES", "KEYS_ONLY"]

#: Error codes meaning "this endpoint / principal cannot tell us": the setting is reported as
#: unknown with a warning instead of failing the run (DynamoDB-compatible stores, narrow IAM).
_UNSUPPORTED_CODES = frozenset(
    {
        "AccessDeniedException",
        "UnknownOperationException",
        "UnrecognizedClientException",
        "ValidationException",
        "NotImplementedError",
        "InvalidAction",
    }
)

_KMS_ARN = re.compile(r"^arn:[a-z-]+:kms:([a-z0-9-]+):(\d{12}):")
_ROLE_ACCOUNT = re.compile(r"^arn:[a-z-]+:iam::(\d{12}):")
_TABLE_ARN_ACCOUNT = re.compile(r"^arn:[a-z-]+:dynamodb:([a-z0-9-]+):(\d{12}):table/")

#: Seconds the state machine should wait before the next poll, by what is being waited on.
WAIT_TABLE = 5
WAIT_REPLICA = 20


class TargetOptions(BaseModel):
    """What the operator overrides on the target; everything else mirrors the source."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    #: None: the source's billing mode.
    billing_mode: BillingMode | None = None
    #: Capacity when the target is PROVISIONED and the source is on-demand (or to override).
    read_capacity: int | None = Field(default=None, ge=1)
    write_capacity: int | None = Field(default=None, ge=1)
    #: None: the source's table class.
    table_class: TableClass | None = None
    #: Added to (and overriding) the source's tags.
    tags: dict[str, str] = Field(default_factory=dict)
    #: Copy the source's tags to the target.
    copy_tags: bool = True
    #: Regions to add as replicas (the target becomes a global table).
    replica_regions: tuple[str, ...] = ()
    #: A KMS key for the target's encryption (required when the source's key is in another account).
    sse_kms_key_id: str | None = None
    #: None: the source's setting.
    deletion_protection: bool | None = None
    #: A stream on the target (None: none, unless replicas require NEW_AND_OLD_IMAGES).
    target_stream_view_type: StreamViewType | None = None
    #: Accept an existing target that already holds items.
    allow_nonempty_target: bool = False
    #: Accept replacing a KEYS_ONLY / OLD_IMAGE source stream (breaks its other consumers).
    replace_stream: bool = False


# --- describing a table ------------------------------------------------------------------------


class SourceDescription(BaseModel):
    """A table's description and the settings that need their own calls (JSON-serializable)."""

    model_config = ConfigDict(extra="forbid")

    name: str
    region: str | None = None
    #: DescribeTable's `Table`, JSON-safe (timestamps as text).
    table: dict[str, Any]
    #: TTL attribute when TTL is ENABLED or ENABLING.
    ttl_attribute: str | None = None
    ttl_status: str = "UNKNOWN"
    #: Point-in-time recovery; None when it could not be read.
    pitr: bool | None = None
    #: None when the tags could not be read.
    tags: dict[str, str] | None = None
    warnings: list[str] = Field(default_factory=list)

    @property
    def arn(self) -> str:
        return str(self.table.get("TableArn", ""))

    @property
    def status(self) -> str:
        return str(self.table.get("TableStatus", "UNKNOWN"))

    @property
    def key_schema(self) -> list[dict[str, str]]:
        return list(self.table["KeySchema"])

    @property
    def item_count(self) -> int:
        return int(self.table.get("ItemCount", 0) or 0)

    @property
    def size_bytes(self) -> int:
        return int(self.table.get("TableSizeBytes", 0) or 0)

    @property
    def billing_mode(self) -> BillingMode:
        mode = self.table.get("BillingModeSummary", {}).get("BillingMode")
        if mode in ("PROVISIONED", "PAY_PER_REQUEST"):
            return mode  # type: ignore[no-any-return]
        read = self.table.get("ProvisionedThroughput", {}).get("ReadCapacityUnits", 0)
        return "PROVISIONED" if read else "PAY_PER_REQUEST"

    @property
    def capacity(self) -> tuple[int, int] | None:
        """(read, write) capacity units when PROVISIONED."""
        if self.billing_mode != "PROVISIONED":
            return None
        pt = self.table.get("ProvisionedThroughput", {})
        return int(pt.get("ReadCapacityUnits", 0)), int(pt.get("WriteCapacityUnits", 0))

    @property
    def gsis(self) -> list[dict[str, Any]]:
        return list(self.table.get("GlobalSecondaryIndexes", []))

    @property
    def lsis(self) -> list[dict[str, Any]]:
        return list(self.table.get("LocalSecondaryIndexes", []))

    @property
    def table_class(self) -> str:
        return str(self.table.get("TableClassSummary", {}).get("TableClass", "STANDARD"))

    @property
    def deletion_protection(self) -> bool:
        return bool(self.table.get("DeletionProtectionEnabled", False))

    @property
    def sse(self) -> dict[str, Any] | None:
        """SSEDescription when the table uses a KMS key (None: AWS-owned key)."""
        sse = self.table.get("SSEDescription")
        if sse and sse.get("Status") in ("ENABLED", "ENABLING", "UPDATING"):
            return dict(sse)
        return None

    @property
    def stream_view_type(self) -> str | None:
        spec = self.table.get("StreamSpecification") or {}
        return spec.get("StreamViewType") if spec.get("StreamEnabled") else None

    @property
    def stream_arn(self) -> str | None:
        return self.table.get("LatestStreamArn") if self.stream_view_type else None

    @property
    def replicas(self) -> dict[str, str]:
        """Replica region -> ReplicaStatus (global tables, version 2019.11.21)."""
        return {
            r["RegionName"]: r.get("ReplicaStatus", "UNKNOWN")
            for r in self.table.get("Replicas", [])
        }

    def display(self) -> str:
        return f"{self.region}:{self.name}" if self.region else self.name


def _json_safe(value: Any) -> Any:
    return json.loads(json.dumps(value, default=str))


def _optional_call(what: str, warnings: list[str], call: Callable[[], Any]) -> Any:
    try:
        return call()
    except ClientError as exc:
        if error_code(exc) in _UNSUPPORTED_CODES:
            warnings.append(f"{what}: could not be read ({error_code(exc)})")
            return None
        raise


def describe_location(location: TableLocation, what: str = "source") -> SourceDescription:
    """DescribeTable, DescribeTimeToLive, DescribeContinuousBackups, ListTagsOfResource."""
    factory = location.clients()
    client = factory.dynamodb()
    table = describe_table(client, location.name, what)
    warnings: list[str] = []
    ttl = _optional_call(
        f"{what} TTL", warnings, lambda: client.describe_time_to_live(TableName=location.name)
    )
    ttl_desc = (ttl or {}).get("TimeToLiveDescription", {})
    ttl_status = str(ttl_desc.get("TimeToLiveStatus", "UNKNOWN" if ttl is None else "DISABLED"))
    ttl_attribute = ttl_desc.get("AttributeName") if ttl_status in ("ENABLED", "ENABLING") else None
    backups = _optional_call(
        f"{what} point-in-time recovery",
        warnings,
        lambda: client.describe_continuous_backups(TableName=location.name),
    )
    pitr: bool | None = None
    if backups is not None:
        status = (
            backups.get("ContinuousBackupsDescription", {})
            .get("PointInTimeRecoveryDescription", {})
            .get("PointInTimeRecoveryStatus")
        )
        pitr = status in ("ENABLED", "ENABLING")
    tags: dict[str, str] | None = None
    if table.get("TableArn"):
        tags = _optional_call(
            f"{what} tags", warnings, lambda: _list_tags(client, table["TableArn"])
        )
    return SourceDescription(
        name=location.name,
        region=factory.region,
        table=_json_safe(table),
        ttl_attribute=ttl_attribute,
        ttl_status=ttl_status,
        pitr=pitr,
        tags=tags,
        warnings=warnings,
    )


def describe_source(source: TableLocation) -> SourceDescription:
    """The source table's description (TableNotFoundError, exit 2, when it does not exist)."""
    return describe_location(source, "source")


def _list_tags(client: Any, arn: str) -> dict[str, str]:
    tags: dict[str, str] = {}
    kwargs: dict[str, Any] = {"ResourceArn": arn}
    for _ in range(1000):
        page = client.list_tags_of_resource(**kwargs)
        tags.update({t["Key"]: t["Value"] for t in page.get("Tags", [])})
        if not page.get("NextToken"):
            break
        kwargs["NextToken"] = page["NextToken"]
    return tags


# --- the target specification --------------------------------------------------------------------


class TargetSpec(BaseModel):
    """The target table the source and the options call for (no name: see `create_request`)."""

    model_config = ConfigDict(extra="forbid")

    key_schema: list[dict[str, str]]
    attribute_definitions: list[dict[str, str]]
    billing_mode: BillingMode
    #: (read, write) when PROVISIONED.
    capacity: tuple[int, int] | None = None
    global_secondary_indexes: list[dict[str, Any]] = Field(default_factory=list)
    local_secondary_indexes: list[dict[str, Any]] = Field(default_factory=list)
    #: SSESpecification for CreateTable (None: AWS-owned key, the default).
    sse: dict[str, Any] | None = None
    table_class: TableClass | None = None
    deletion_protection: bool = False
    stream_view_type: StreamViewType | None = None
    ttl_attribute: str | None = None
    pitr: bool = False
    tags: dict[str, str] = Field(default_factory=dict)
    replica_regions: tuple[str, ...] = ()
    warnings: list[str] = Field(default_factory=list)

    def create_request(self, table_name: str) -> dict[str, Any]:
        """CreateTable keyword arguments (TTL, PITR and replicas need their own calls)."""
        req: dict[str, Any] = {
            "TableName": table_name,
            "KeySchema": self.key_schema,
            "AttributeDefinitions": self.attribute_definitions,
            "BillingMode": self.billing_mode,
        }
        if self.capacity:
            req["ProvisionedThroughput"] = _throughput(self.capacity)
        if self.global_secondary_indexes:
            req["GlobalSecondaryIndexes"] = self.global_secondary_indexes
        if self.local_secondary_indexes:
            req["LocalSecondaryIndexes"] = self.local_secondary_indexes
        if self.sse:
            req["SSESpecification"] = self.sse
        if self.table_class:
            req["TableClass"] = self.table_class
        if self.deletion_protection:
            req["DeletionProtectionEnabled"] = True
        if self.stream_view_type:
            req["StreamSpecification"] = {
                "StreamEnabled": True,
                "StreamViewType": self.stream_view_type,
            }
        if self.tags:
            req["Tags"] = [{"Key": k, "Value": v} for k, v in sorted(self.tags.items())]
        return req

    def describe(self) -> list[str]:
        """One line per setting, for `plan`."""
        lines = [f"key schema: {_schema_text(self.key_schema, self.attribute_definitions)}"]
        if self.capacity:
            lines.append(f"billing: PROVISIONED, {self.capacity[0]} RCU / {self.capacity[1]} WCU")
        else:
            lines.append("billing: PAY_PER_REQUEST (on-demand)")
        for gsi in self.global_secondary_indexes:
            lines.append(f"GSI {gsi['IndexName']}: {_index_text(gsi, self.attribute_definitions)}")
        for lsi in self.local_secondary_indexes:
            lines.append(f"LSI {lsi['IndexName']}: {_index_text(lsi, self.attribute_definitions)}")
        if self.sse:
            lines.append(f"encryption: KMS key {self.sse.get('KMSMasterKeyId') or '(AWS managed)'}")
        else:
            lines.append("encryption: AWS owned key (default)")
        lines.append(f"table class: {self.table_class or 'STANDARD'}")
        lines.append(f"deletion protection: {'on' if self.deletion_protection else 'off'}")
        lines.append(f"TTL: {self.ttl_attribute or 'off'}")
        lines.append(f"point-in-time recovery: {'on' if self.pitr else 'off'}")
        lines.append(f"stream: {self.stream_view_type or 'off'}")
        if self.tags:
            lines.append("tags: " + ", ".join(f"{k}={v}" for k, v in sorted(self.tags.items())))
        if self.replica_regions:
            lines.append("replicas (global table): " + ", ".join(self.replica_regions))
        return lines


def _throughput(capacity: tuple[int, int]) -> dict[str, int]:
    return {"ReadCapacityUnits": capacity[0], "WriteCapacityUnits": capacity[1]}


def _schema_text(key_schema: list[dict[str, str]], attrs: list[dict[str, str]]) -> str:
    return key_schema_text({"KeySchema": key_schema, "AttributeDefinitions": attrs})


def _index_text(index: Mapping[str, Any], attrs: list[dict[str, str]]) -> str:
    projection = index.get("Projection", {})
    kind = projection.get("ProjectionType", "ALL")
    text = f"{_schema_text(list(index['KeySchema']), attrs)}, projection {kind}"
    if projection.get("NonKeyAttributes"):
        text += " (" + ", ".join(projection["NonKeyAttributes"]) + ")"
    pt = index.get("ProvisionedThroughput")
    if pt:
        text += f", {pt['ReadCapacityUnits']} RCU / {pt['WriteCapacityUnits']} WCU"
    return text


def _projection(projection: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {"ProjectionType": projection.get("ProjectionType", "ALL")}
    if projection.get("NonKeyAttributes"):
        out["NonKeyAttributes"] = list(projection["NonKeyAttributes"])
    return out


def build_target_spec(src: SourceDescription, options: TargetOptions) -> TargetSpec:
    """Mirror the source, apply the options. Pure; BadInputError names an impossible option."""
    warnings: list[str] = []
    billing = options.billing_mode or src.billing_mode
    capacity: tuple[int, int] | None = None
    if billing == "PROVISIONED":
        base = src.capacity
        read = options.read_capacity or (base[0] if base else None)
        write = options.write_capacity or (base[1] if base else None)
        if not read or not write:
            raise BadInputError(
                "--billing-mode PROVISIONED: the source is on-demand, so give the target's "
                "capacity with --read-capacity N and --write-capacity N"
            )
        capacity = (read, write)

    gsis: list[dict[str, Any]] = []
    for index in src.gsis:
        gsi: dict[str, Any] = {
            "IndexName": index["IndexName"],
            "KeySchema": list(index["KeySchema"]),
            "Projection": _projection(index.get("Projection", {})),
        }
        if capacity:
            pt = index.get("ProvisionedThroughput", {})
            if src.billing_mode == "PROVISIONED" and pt.get("ReadCapacityUnits"):
                gsi["ProvisionedThroughput"] = {
                    "ReadCapacityUnits": int(pt["ReadCapacityUnits"]),
                    "WriteCapacityUnits": int(pt["WriteCapacityUnits"]),
                }
            else:
                gsi["ProvisionedThroughput"] = _throughput(capacity)
        gsis.append(gsi)
    lsis = [
        {
            "IndexName": index["IndexName"],
            "KeySchema": list(index["KeySchema"]),
            "Projection": _projection(index.get("Projection", {})),
        }
        for index in src.lsis
    ]
    used = {k["AttributeName"] for k in src.key_schema}
    for index in gsis + lsis:
        used.update(k["AttributeName"] for k in index["KeySchema"])
    attrs = [dict(a) for a in src.table["AttributeDefinitions"] if a["AttributeName"] in used]

    sse: dict[str, Any] | None = None
    if options.sse_kms_key_id:
        sse = {"Enabled": True, "SSEType": "KMS", "KMSMasterKeyId": options.sse_kms_key_id}
    elif src.sse and src.sse.get("SSEType") == "KMS":
        sse = {"Enabled": True, "SSEType": "KMS"}
        if src.sse.get("KMSMasterKeyArn"):
            sse["KMSMasterKeyId"] = src.sse["KMSMasterKeyArn"]

    stream = options.target_stream_view_type
    if options.replica_regions:
        if stream and stream != "NEW_AND_OLD_IMAGES":
            raise BadInputError(
                f"--replica-region: a global table needs a NEW_AND_OLD_IMAGES stream, not {stream}"
            )
        stream = "NEW_AND_OLD_IMAGES"
        if billing == "PROVISIONED":
            warnings.append(
                "replicas of a PROVISIONED table: configure write auto scaling on every replica "
                "(dynashift does not set up Application Auto Scaling) or use PAY_PER_REQUEST"
            )
        if sse and options.sse_kms_key_id is None and src.sse:
            warnings.append(
                "replicas with a customer managed KMS key need a key in each replica region"
            )
    if src.replicas and not options.replica_regions:
        warnings.append(
            "the source is a global table (replicas in "
            + ", ".join(sorted(src.replicas))
            + "); the target gets no replicas unless --replica-region is given"
        )

    tags = {k: v for k, v in (src.tags or {}).items() if not k.startswith("aws:")}
    if not options.copy_tags:
        tags = {}
    tags.update(options.tags)
    if src.tags is None and options.copy_tags:
        warnings.append("the source's tags could not be read: they are not copied")

    return TargetSpec(
        key_schema=[dict(k) for k in src.key_schema],
        attribute_definitions=attrs,
        billing_mode=billing,
        capacity=capacity,
        global_secondary_indexes=gsis,
        local_secondary_indexes=lsis,
        sse=sse,
        table_class=options.table_class
        or (src.table_class if src.table_class != "STANDARD" else None),  # type: ignore[arg-type]
        deletion_protection=(
            src.deletion_protection
            if options.deletion_protection is None
            else options.deletion_protection
        ),
        stream_view_type=stream,
        ttl_attribute=src.ttl_attribute,
        pitr=bool(src.pitr),
        tags=tags,
        replica_regions=options.replica_regions,
        warnings=warnings,
    )


# --- checks ------------------------------------------------------------------------------------


class TargetCheck(BaseModel):
    """The read-only verdict on a target: what `start_prepare_target` will do, and warnings."""

    model_config = ConfigDict(extra="forbid")

    action: Literal["create", "exists"]
    source: SourceDescription
    spec: TargetSpec
    #: The target's description when it exists.
    target: SourceDescription | None = None
    #: The target holds items (other than tombstones).
    nonempty: bool = False
    #: The state store's meta names this target: a resumed run.
    resumed: bool = False
    #: The state store says this migration created the target.
    created_by_migration: bool = False
    warnings: list[str] = Field(default_factory=list)


def _account_of_location(location: TableLocation) -> str | None:
    """The account the target side acts in: the role's account, else the caller's identity."""
    if location.side.role_arn:
        match = _ROLE_ACCOUNT.match(location.side.role_arn)
        return match.group(1) if match else None
    try:
        sts = session_for(location.side).client(
            "sts",
            region_name=location.clients().region,
            endpoint_url=location.side.endpoint_url,
        )
        return str(sts.get_caller_identity()["Account"])
    except Exception as exc:  # any failure only means "unknown": the check is skipped
        log.debug("caller identity of %s unknown: %s", location.display(), exc)
        return None


def _check_kms(
    spec: TargetSpec, src: SourceDescription, target: TableLocation, options: TargetOptions
) -> None:
    if options.sse_kms_key_id or not spec.sse or not spec.sse.get("KMSMasterKeyId"):
        return
    match = _KMS_ARN.match(str(spec.sse["KMSMasterKeyId"]))
    if not match:
        return
    key_region, key_account = match.groups()
    target_region = target.clients().region
    if target_region and key_region != target_region:
        raise BadInputError(
            f"the source is encrypted with KMS key {spec.sse['KMSMasterKeyId']} in {key_region}; "
            f"the target is in {target_region}: give a key there with --sse-kms-key-id"
        )
    account = _account_of_location(target)
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
) -> bool:
    """True when both locations name one table (refused: a migration onto itself)."""
    if (source.side.endpoint_url or "") != (target.side.endpoint_url or ""):
        return False
    if source_arn and target_arn:
        return source_arn == target_arn
    if source.name != target.name:
        return False
    return (
        source.clients().region == target.clients().region
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


def _migration_meta(state: StateStore | None) -> dict[str, Any] | None:
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


def compare_target(
    spec: TargetSpec, existing: SourceDescription, options: TargetOptions
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
) -> TargetCheck:
    """Read-only verdict on the target; raises on what must stop the migration (exit 2).

    IncompatibleSchemaError: an existing target with another key schema. UnsafeTargetError:
    source and target are one table; the target holds items and neither
    `allow_nonempty_target` nor the state store (a resumed run) allows it.
    TableNotFoundError: the source does not exist.
    """
    if same_table(source, target):
        raise UnsafeTargetError(f"target {target.display()} is the same table as the source")
    src = describe_source(source)
    spec = build_target_spec(src, options)
    warnings = list(src.warnings) + list(spec.warnings)
    if options.replica_regions:
        region = target.clients().region
        if region in options.replica_regions:
            raise BadInputError(
                f"--replica-region {region}: that is the target's own region, not a replica"
            )
    try:
        existing = describe_location(target, "target")
    except TableNotFoundError:
        existing = None
    if existing is not None and same_table(source, target, src.arn, existing.arn):
        raise UnsafeTargetError(
            f"target {target.display()} is the same table as the source ({src.arn})"
        )
    _check_kms(spec, src, target, options)
    meta = _migration_meta(state)
    resumed = _meta_names_target(meta, target)
    created_by = bool(resumed and meta and meta.get("target_created"))
    if existing is None:
        if src.lsis:
            warnings.append(
                "LSIs can only be created with the table: the target is created with "
                + ", ".join(i["IndexName"] for i in src.lsis)
            )
        if spec.billing_mode == "PAY_PER_REQUEST":
            warnings.append(
                "a new on-demand target starts with an initial throughput of about 4,000 WCU "
                "(12,000 RCU): a faster backfill is throttled while it scales; cap it with a "
                "write rate"
            )
        return TargetCheck(
            action="create", source=src, spec=spec, resumed=resumed, warnings=warnings
        )
    if not same_key_schema(src.table, existing.table):
        raise IncompatibleSchemaError(
            f"target {existing.display()} key schema [{key_schema_text(existing.table)}] differs "
            f"from source {src.display()} key schema [{key_schema_text(src.table)}]"
        )
    warnings.extend(existing.warnings)
    warnings.extend(compare_target(spec, existing, options))
    nonempty = target_has_items(target.clients().dynamodb(), target.name)
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


# --- create and converge -----------------------------------------------------------------------


class PrepareResult(BaseModel):
    """Where preparing the target stands (travels in Step Functions state)."""

    model_config = ConfigDict(extra="forbid")

    target: str
    action: Literal["create", "exists"]
    #: This migration created the target (every mirrored setting is applied to it).
    created: bool = False
    ready: bool = False
    status: str = "UNKNOWN"
    #: What was just done or is being waited on.
    step: str = ""
    #: Suggested seconds before the next poll (0: poll again at once).
    wait_seconds: int = 0
    table_arn: str | None = None
    stream_arn: str | None = None
    replicas: dict[str, str] = Field(default_factory=dict)
    warnings: list[str] = Field(default_factory=list)


def _pending(
    client: Any,
    *,
    target: TableLocation,
    spec: TargetSpec,
    desc: SourceDescription,
    options: TargetOptions,
    created: bool,
) -> tuple[str, int] | None:
    """Do the next step towards `spec` (at most one mutating call): (step, wait) or None."""
    name = target.name
    if desc.status != "ACTIVE":
        return f"waiting for table {desc.status}", WAIT_TABLE
    creating = [g["IndexName"] for g in desc.gsis if g.get("IndexStatus", "ACTIVE") != "ACTIVE"]
    if creating:
        return f"waiting for GSI {', '.join(creating)}", WAIT_TABLE
    if created and spec.ttl_attribute and desc.ttl_attribute != spec.ttl_attribute:
        if desc.ttl_status in ("ENABLING", "DISABLING"):
            return f"waiting for TTL {desc.ttl_status}", WAIT_TABLE
        client.update_time_to_live(
            TableName=name,
            TimeToLiveSpecification={"Enabled": True, "AttributeName": spec.ttl_attribute},
        )
        return f"enabled TTL on {spec.ttl_attribute!r}", 0
    if created and spec.pitr and desc.pitr is False:
        client.update_continuous_backups(
            TableName=name,
            PointInTimeRecoverySpecification={"PointInTimeRecoveryEnabled": True},
        )
        return "enabled point-in-time recovery", 0
    wanted_tags = spec.tags if created else dict(options.tags)
    if desc.tags is not None and desc.arn:
        missing = {k: v for k, v in wanted_tags.items() if desc.tags.get(k) != v}
        if missing:
            client.tag_resource(
                ResourceArn=desc.arn,
                Tags=[{"Key": k, "Value": v} for k, v in sorted(missing.items())],
            )
            return f"tagged {', '.join(sorted(missing))}", 0
    if spec.replica_regions:
        if desc.stream_view_type is None:
            client.update_table(
                TableName=name,
                StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"},
            )
            return "enabled the stream replicas need", WAIT_TABLE
        replicas = desc.replicas
        for region, status in replicas.items():
            if status in (
                "CREATION_FAILED",
                "INACCESSIBLE_ENCRYPTION_CREDENTIALS",
                "REGION_DISABLED",
            ):
                raise RuntimeFailure(f"replica of {name} in {region} is {status}")
        for region in spec.replica_regions:
            current = replicas.get(region)
            if current is None:
                client.update_table(
                    TableName=name, ReplicaUpdates=[{"Create": {"RegionName": region}}]
                )
                return f"adding replica {region}", WAIT_REPLICA
            if current != "ACTIVE":
                return f"waiting for replica {region} ({current})", WAIT_REPLICA
    return None


def poll_target(
    source: TableLocation,
    target: TableLocation,
    options: TargetOptions,
    *,
    created: bool = False,
    spec: TargetSpec | None = None,
) -> PrepareResult:
    """One non-blocking step: wait for ACTIVE, then apply TTL, PITR, tags, replicas in turn.

    `created`: the target was created by this migration, so every mirrored setting is applied;
    otherwise only what the options ask for explicitly (tags, replicas). `spec`: the spec from
    `check_target` (described again from the source when not given).
    """
    if spec is None:
        spec = build_target_spec(describe_source(source), options)
    client = target.clients().dynamodb()
    desc = describe_location(target, "target")
    step = _pending(client, target=target, spec=spec, desc=desc, options=options, created=created)
    if step is not None and not step[0].startswith("waiting"):
        log.info("target %s: %s", target.display(), step[0])
    return PrepareResult(
        target=target.display(),
        action="create" if created else "exists",
        created=created,
        ready=step is None,
        status=desc.status,
        step=step[0] if step else "ready",
        wait_seconds=step[1] if step else 0,
        table_arn=desc.arn or None,
        stream_arn=desc.stream_arn,
        replicas=desc.replicas,
    )


def start_prepare_target(
    source: TableLocation,
    target: TableLocation,
    options: TargetOptions,
    state: StateStore | None = None,
) -> PrepareResult:
    """Check, create the target when missing, and take the first step. Non-blocking.

    With a state store, the meta records `target` and `target_created` before CreateTable, so
    a resumed run recognises its own target (non-empty allowed, mirrored settings applied).
    """
    check = check_target(source, target, options, state)
    created = check.created_by_migration
    recorded_options = {"target_options": options.model_dump(mode="json")}
    if check.action == "create":
        if state is not None:
            _record(state, target=target.name, target_created=True, **recorded_options)
        client = target.clients().dynamodb()
        try:
            client.create_table(**check.spec.create_request(target.name))
            log.info("creating target %s", target.display())
        except ClientError as exc:
            if error_code(exc) != "ResourceInUseException":
                raise
            log.info("target %s is being created already", target.display())
        created = True
    elif state is not None and not check.resumed:
        _record(state, target=target.name, target_created=False, **recorded_options)
    elif state is not None:
        _record(state, **recorded_options)
    result = poll_target(source, target, options, created=created, spec=check.spec)
    return result.model_copy(update={"action": check.action, "warnings": check.warnings})


def recorded_target_options(state: StateStore | None) -> TargetOptions | None:
    """The options the target was prepared with (the meta record), for the settings check."""
    meta = _migration_meta(state)
    data = (meta or {}).get("target_options")
    return TargetOptions.model_validate(data) if isinstance(data, Mapping) else None


def _record(state: StateStore, **fields: Any) -> None:
    try:
        state.put_meta(**fields)
    except ClientError as exc:
        if error_code(exc) != "ResourceNotFoundException":
            raise
        log.debug("state table %s does not exist yet: target not recorded", state.table)


def prepare_target(
    source: TableLocation,
    target: TableLocation,
    options: TargetOptions,
    state: StateStore | None = None,
    *,
    timeout: float = 600.0,
    progress: Progress | None = None,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
    poll_interval: float = 1.0,
) -> PrepareResult:
    """Blocking: create or verify the target and wait until every setting is applied.

    Waits at most `timeout` seconds (RuntimeFailure naming what it was waiting for). Polls
    every `poll_interval` seconds while something is pending (at once after a quick step).
    """
    progress = progress or NullProgress()
    deadline = clock() + timeout
    result = start_prepare_target(source, target, options, state)
    first = result
    spec = None
    while not result.ready:
        progress.advance(0, note=result.step)
        if clock() > deadline:
            raise RuntimeFailure(
                f"target {target.display()} not ready after {timeout:.0f}s: {result.step}"
            )
        if result.wait_seconds:
            sleep(min(poll_interval, max(0.0, deadline - clock())))
        if spec is None:
            spec = build_target_spec(describe_source(source), options)
        result = poll_target(source, target, options, created=result.created, spec=spec)
    progress.advance(1, note="ready")
    return result.model_copy(update={"action": first.action, "warnings": first.warnings})
