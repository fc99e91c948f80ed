"""The migration specification: what every step of the workflow receives.

It travels as the Step Functions execution input (`model_dump(mode="json")`) and is parsed by
each handler with `MigrationSpec.model_validate(...)`. Bad input stops in `validate`, naming the
field; nothing is created or written before that.
"""

from __future__ import annotations

import ipaddress
import re
import threading
from collections.abc import Callable
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

from dynashift.aws import ClientFactory, Side
from dynashift.refs import TableRef, is_table_name

Strategy = Literal["concurrent", "replay", "export"]


#: S3's rules for a general purpose bucket name (S3 user guide, "Bucket naming rules").
_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
_BUCKET_BAD_PREFIXES = ("xn--", "sthree-", "amzn-s3-demo-")
_BUCKET_BAD_SUFFIXES = ("-s3alias", "--ol-s3", "--x-s3", ".mrap")

#: ExportTableToPointInTime's S3Prefix is at most 1,024 characters (API reference).
PREFIX_MAX = 1024


def bucket_problem(name: str) -> str | None:
    """Why `name` is not a valid S3 bucket name, or None."""
    if not _BUCKET.match(name):
        return (
            f"{name!r} is not a valid S3 bucket name (3-63 characters: lowercase letters, "
            "digits, dots and hyphens, starting and ending with a letter or digit)"
        )
    if ".." in name or ".-" in name or "-." in name:
        return f"{name!r} is not a valid S3 bucket name (adjacent dots or a dot beside a hyphen)"
    try:
        ipaddress.IPv4Address(name)
        return f"{name!r} is not a valid S3 bucket name (formatted as an IP address)"
    except ValueError:
        pass
    if name.startswith(_BUCKET_BAD_PREFIXES) or name.endswith(_BUCKET_BAD_SUFFIXES):
        return f"{name!r} is not a valid S3 bucket name (a prefix or suffix S3 reserves)"
    return None


class ExportLocation(BaseModel):
    """Where ExportTableToPointInTime writes the source's export: `bucket`, `prefix` (without
    a trailing slash), `bucket_owner` (12-digit account id, when the bucket is another
    account's: the target's) and `kms_key_id` (the export's objects are then SSE-KMS with that
    key). The one home of these rules: `spec.export` (required with `strategy: export`,
    refused with any other strategy; an execution input names `spec.export.bucket`) and
    `dynashift.export.ExportRequest` (the same model built by a caller from loose values:
    BadInputError). The CLI's `--export-*` flags go through
    `cli.migration_options.export_location_from_args`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    bucket: str
    #: Key prefix of the export (AWS then writes `<prefix>/AWSDynamoDB/<export id>/...`).
    prefix: str = ""
    #: The bucket's account when it is not the source's (a bucket of the target account).
    bucket_owner: str | None = Field(default=None, pattern=r"^[0-9]{12}$")
    #: SSE-KMS key (id, alias or ARN) the export's objects are encrypted with (None: SSE-S3).
    kms_key_id: str | None = Field(default=None, min_length=1, max_length=2048)

    @field_validator("bucket")
    @classmethod
    def _valid_bucket(cls, value: str) -> str:
        problem = bucket_problem(value)
        if problem:
            raise ValueError(problem)
        return value

    @field_validator("prefix")
    @classmethod
    def _valid_prefix(cls, value: str) -> str:
        value = value.rstrip("/")
        if len(value) > PREFIX_MAX:
            raise ValueError(f"an S3 prefix is at most {PREFIX_MAX} characters")
        if value.startswith("/") or "//" in value:
            raise ValueError(f"{value!r} has an empty path segment (a leading or double slash)")
        if any(ord(ch) < 32 or ord(ch) == 127 for ch in value):
            raise ValueError("an S3 prefix may not hold control characters")
        return value

    def api_kwargs(self) -> dict[str, Any]:
        """ExportTableToPointInTime's destination parameters for this location."""
        out: dict[str, Any] = {"S3Bucket": self.bucket}
        if self.prefix:
            out["S3Prefix"] = self.prefix
        if self.bucket_owner:
            out["S3BucketOwner"] = self.bucket_owner
        if self.kms_key_id:
            out["S3SseAlgorithm"] = "KMS"
            out["S3SseKmsKeyId"] = self.kms_key_id
        return out


class TableLocation(BaseModel):
    """A table and how to reach it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    side: Side = Field(default_factory=Side)

    @field_validator("name")
    @classmethod
    def _valid_name(cls, value: str) -> str:
        if not is_table_name(value):
            raise ValueError(f"{value!r} is not a valid DynamoDB table name")
        return value

    @classmethod
    def from_ref(cls, ref: TableRef, side: Side) -> TableLocation:
        return cls(name=ref.name, side=side.with_region(ref.region))

    def display(self) -> str:
        region = self.side.region
        return f"{region}:{self.name}" if region else self.name


_factories: dict[tuple[Side, int], ClientFactory] = {}
_factories_lock = threading.Lock()


def factory_for(side: Side, parallelism: int = 10) -> ClientFactory:
    """One ClientFactory per (side, pool size) per process, shared by all workers."""
    key = (side, parallelism)
    with _factories_lock:
        factory = _factories.get(key)
        if factory is None:
            factory = _factories[key] = ClientFactory(side, parallelism)
        return factory


class Clients:
    """Which client factory reaches a table: the engine is handed one and never builds its own.

    As s3transfer's `TransferManager` is handed its client, the entry points (handlers, CLI
    commands, the local runner) choose the `Clients`; engine functions take one as a parameter
    (`PROCESS_CLIENTS` by default, the way `SYSTEM_CLOCK` is the default clock) and call
    `clients(location, parallelism)` or `clients.for_side(side, parallelism)`. A test keeps
    `factory_for` and client construction out of the rest of the engine.
    """

    def __init__(self, make: Callable[[Side, int], ClientFactory] = factory_for) -> None:
        self._make = make

    def __call__(self, location: TableLocation, parallelism: int = 10) -> ClientFactory:
        return self._make(location.side, parallelism)

    def for_side(self, side: Side, parallelism: int = 10) -> ClientFactory:
        return self._make(side, parallelism)

    def dynamodb_pair(
        self,
        source: TableLocation,
        target: TableLocation,
        source_client: Any = None,
        target_client: Any = None,
        parallelism: int = 10,
    ) -> tuple[Any, Any]:
        """Each side's DynamoDB client: the one a caller handed in, else this factory's."""
        if source_client is None:
            source_client = self(source, parallelism).dynamodb()
        if target_client is None:
            target_client = self(target, parallelism).dynamodb()
        return source_client, target_client

    @classmethod
    def fixed(cls, factory: ClientFactory) -> Clients:
        """The same `factory` for every table (a caller that holds one side's factory)."""
        return cls(lambda _side, _parallelism: factory)


#: The process-wide factories, one per (side, pool size), shared by every worker.
PROCESS_CLIENTS = Clients()


class MigrationSpec(BaseModel):
    """Everything a migration step needs to know. Immutable once validated."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    migration_id: str = Field(pattern=r"^[A-Za-z0-9_-]{1,64}$")
    source: TableLocation
    target: TableLocation
    #: The state store table (a stack resource in AWS; created next to the target locally).
    state: TableLocation
    segments: int = Field(default=4, ge=1, le=10_000)
    strategy: Strategy = "concurrent"
    #: The export strategy's S3 location (validated against `strategy`, declared after it).
    export: ExportLocation | None = Field(default=None, validate_default=True)
    version_attribute: str | None = Field(default=None, min_length=1, max_length=255)
    ignore: tuple[str, ...] = ()
    max_write_rate: float | None = Field(default=None, gt=0)
    skip_ttl_deletes: bool = False
    #: How long a worker may run before it hands back a cursor (Lambda budget minus margin).
    worker_budget_seconds: float = Field(default=600.0, gt=0, le=840)
    #: Replication lag under which the migration may be called READY.
    lag_threshold_seconds: float = Field(default=5.0, gt=0)
    #: Verify a random sample of this fraction of the key space (`dynashift.sampling`) instead
    #: of the whole table; None (or 1) verifies everything.
    verify_sample: float | None = Field(default=None, gt=0, le=1)

    @field_validator("verify_sample")
    @classmethod
    def _whole_is_full(cls, value: float | None) -> float | None:
        return None if value == 1 else value

    @field_validator("export")
    @classmethod
    def _export_for_export_strategy(
        cls, export: ExportLocation | None, info: ValidationInfo
    ) -> ExportLocation | None:
        strategy = (info.data or {}).get("strategy")
        if strategy == "export" and export is None:
            raise ValueError("required by strategy 'export' (the bucket the export is written to)")
        if strategy != "export" and export is not None and strategy is not None:
            raise ValueError(f"only the export strategy exports (strategy is {strategy!r})")
        return export

    @field_validator("target")
    @classmethod
    def _not_same_as_source(cls, target: TableLocation, info: object) -> TableLocation:
        data = getattr(info, "data", {}) or {}
        source = data.get("source")
        if (
            source is not None
            and source.name == target.name
            and source.side.region == target.side.region
            and source.side.endpoint_url == target.side.endpoint_url
            and source.side.role_arn == target.side.role_arn
            and source.side.profile == target.side.profile
        ):
            raise ValueError(f"target {target.display()} is the same table as the source")
        return target
