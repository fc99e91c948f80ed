"""The pure target specification: the target table the source and the options call for.

build_target_spec(src, options)   mirror the source, apply the options (no I/O)
carried_warm_throughput(...)      the warm throughput a new table or GSI is created with
raised_warm_throughput(have, want) what an existing one lower than that is raised to
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from dynashift.errors import BadInputError
from dynashift.tables import key_schema_text
from dynashift.target.describe import TableDescription, warm_units
from dynashift.target.options import (
    BillingMode,
    StreamViewType,
    TableClass,
    TargetOptions,
)

#: Units per second a new on-demand table (or GSI) serves before it scales — its initial
#: throughput, which AWS documents as 12,000 read / 4,000 write units — and so the least warm
#: throughput CreateTable accepts for it (a provisioned one's least is its capacity).
ON_DEMAND_INITIAL_RCU = 12000
ON_DEMAND_INITIAL_WCU = 4000


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
    #: (read, write) units per second the new table is pre-warmed to (None: not pre-warmed);
    #: a GSI's is its `WarmThroughput`. See `carried_warm_throughput`.
    warm_throughput: tuple[int, int] | None = None
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
        if self.warm_throughput:
            req["WarmThroughput"] = warm_request(self.warm_throughput)
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
        lines.append(f"warm throughput: {_warm_text(self.warm_throughput)}")
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


def warm_request(units: tuple[int, int]) -> dict[str, int]:
    """A `WarmThroughput` parameter (CreateTable, UpdateTable, a GSI) of (read, write)."""
    return {"ReadUnitsPerSecond": units[0], "WriteUnitsPerSecond": units[1]}


def _warm_text(units: tuple[int, int] | None) -> str:
    if not units:
        return "not pre-warmed"
    return f"{units[0]:,} read / {units[1]:,} write units/s (pre-warmed: a one-time charge)"


def raised_warm_throughput(
    have: tuple[int, int] | None, want: tuple[int, int] | None
) -> tuple[int, int] | None:
    """The warm throughput to raise a table or GSI to when `have` is lower than `want` in a
    dimension, never lowering the other (UpdateTable cannot decrease it); None when it is not
    lower, or either is unknown (an endpoint that reports no warm throughput)."""
    if want is None or have is None or (have[0] >= want[0] and have[1] >= want[1]):
        return None
    return max(have[0], want[0]), max(have[1], want[1])


def carried_warm_throughput(
    source: tuple[int, int] | None,
    capacity: tuple[int, int] | None,
    *,
    read: int | None = None,
    write: int | None = None,
) -> tuple[int, int] | None:
    """The warm throughput (read, write units/s) a new table or GSI is created with, or None.

    The source's (`read` / `write`, the `--warm-*` flags, override it) when it is above what
    the new one serves anyway: its provisioned `capacity`, else the on-demand initial
    throughput. That floor is also the least CreateTable accepts: an override under it is bad
    input naming its flag, and the dimension not warmed is created at its floor.
    """
    floor = capacity or (ON_DEMAND_INITIAL_RCU, ON_DEMAND_INITIAL_WCU)
    why = "its provisioned capacity" if capacity else "the on-demand initial throughput"
    for flag, value, least in (
        ("--warm-read-units", read, floor[0]),
        ("--warm-write-units", write, floor[1]),
    ):
        if value is not None and value < least:
            raise BadInputError(
                f"{flag} {value}: below the {least:,} units/s a new target serves anyway ({why})"
            )
    want_read = read or (source[0] if source else 0)
    want_write = write or (source[1] if source else 0)
    if want_read <= floor[0] and want_write <= floor[1]:
        return None
    return max(want_read, floor[0]), max(want_write, floor[1])


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
    warm = warm_units(index)
    if warm:
        text += f", warm throughput {_warm_text(warm)}"
    return text


def _projection(projection: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {"ProjectionType": projection.get("ProjectionType", "ALL")}
    if projection.get("NonKeyAttributes"):
        out["NonKeyAttributes"] = list(projection["NonKeyAttributes"])
    return out


def build_target_spec(src: TableDescription, options: TargetOptions) -> TargetSpec:
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
        gsi_capacity: tuple[int, int] | None = None
        if capacity:
            pt = index.get("ProvisionedThroughput", {})
            if src.billing_mode == "PROVISIONED" and pt.get("ReadCapacityUnits"):
                gsi_capacity = (int(pt["ReadCapacityUnits"]), int(pt["WriteCapacityUnits"]))
            else:
                gsi_capacity = capacity
            gsi["ProvisionedThroughput"] = _throughput(gsi_capacity)
        gsi_warm = carried_warm_throughput(warm_units(index), gsi_capacity)
        if gsi_warm:
            gsi["WarmThroughput"] = warm_request(gsi_warm)
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

    warm = carried_warm_throughput(
        src.warm_throughput,
        capacity,
        read=options.warm_read_units,
        write=options.warm_write_units,
    )

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
        warm_throughput=warm,
        tags=tags,
        replica_regions=options.replica_regions,
        warnings=warnings,
    )
