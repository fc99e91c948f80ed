"""Reading either side: `TableDescription`, what describes a source or a target table.

    describe_location(location, what, client)   DescribeTable + TTL + PITR + tags
    describe_source(source, client)             the same, named "source"
    warm_units(table_or_index)                  (read, write) of a `WarmThroughput`
    has_resource_policy(client, arn, warnings)  GetResourcePolicy finds one (None: unknown)

A setting this endpoint or principal cannot tell (DynamoDB-compatible stores, narrow IAM) is
`None` / "UNKNOWN" with a warning instead of failing the run.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any

from botocore.exceptions import ClientError
from pydantic import BaseModel, ConfigDict, Field

from dynashift.aws import error_code
from dynashift.models import PROCESS_CLIENTS, Clients, TableLocation
from dynashift.tables import describe_table, key_schema_text, same_key_schema
from dynashift.target.options import BillingMode

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


class TableDescription(BaseModel):
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
    def warm_throughput(self) -> tuple[int, int] | None:
        """(read, write) units per second the table serves at once (None: not reported)."""
        return warm_units(self.table)

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

    def key_schema_text(self) -> str:
        """`pk (S, HASH), sk (N, RANGE)` — for messages that name two schemas."""
        return key_schema_text(self.table)

    def same_key_schema(self, other: TableDescription) -> bool:
        """Both tables have the same key attributes, types and roles."""
        return same_key_schema(self.table, other.table)


def warm_units(table_or_index: Mapping[str, Any]) -> tuple[int, int] | None:
    """The (read, write) units per second of a DescribeTable table or GSI's `WarmThroughput`
    (None: not reported, as by DynamoDB-compatible stores)."""
    warm = table_or_index.get("WarmThroughput") or {}
    read, write = warm.get("ReadUnitsPerSecond"), warm.get("WriteUnitsPerSecond")
    if not read and not write:
        return None
    return int(read or 0), int(write or 0)


#: The name `plan` and older callers use for a source's description.
SourceDescription = TableDescription


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


def location_region(
    location: TableLocation, client: Any = None, *, clients: Clients = PROCESS_CLIENTS
) -> str | None:
    """The region a location's calls go to: its side's, else the client's or the session's."""
    if location.side.region:
        return location.side.region
    region = getattr(getattr(client, "meta", None), "region_name", None)
    return str(region) if region else clients(location).region


def describe_location(
    location: TableLocation,
    what: str = "source",
    client: Any = None,
    *,
    clients: Clients = PROCESS_CLIENTS,
) -> TableDescription:
    """DescribeTable, DescribeTimeToLive, DescribeContinuousBackups, ListTagsOfResource.

    `client`: the DynamoDB client of the location's side (default: `clients`').
    """
    if client is None:
        client = clients(location).dynamodb()
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
    return TableDescription(
        name=location.name,
        region=location_region(location, client, clients=clients),
        table=_json_safe(table),
        ttl_attribute=ttl_attribute,
        ttl_status=ttl_status,
        pitr=pitr,
        tags=tags,
        warnings=warnings,
    )


def describe_source(
    source: TableLocation, client: Any = None, *, clients: Clients = PROCESS_CLIENTS
) -> TableDescription:
    """The source table's description (TableNotFoundError, exit 2, when it does not exist)."""
    return describe_location(source, "source", client, clients=clients)


def has_resource_policy(client: Any, arn: str, what: str, warnings: list[str]) -> bool | None:
    """Whether the table `arn` has a resource-based policy (GetResourcePolicy); None, with a
    warning, when this endpoint or principal cannot tell."""
    try:
        client.get_resource_policy(ResourceArn=arn)
    except ClientError as exc:
        if error_code(exc) == "PolicyNotFoundException":
            return False
        if error_code(exc) in _UNSUPPORTED_CODES:
            warnings.append(f"{what} resource policy: could not be read ({error_code(exc)})")
            return None
        raise
    return True


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
