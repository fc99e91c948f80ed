"""Create, verify and converge the target: non-blocking steps and a blocking wait.

start_prepare_target(...)   check, create when missing, first step
poll_target(...)            one step towards ready (at most one mutating call)
prepare_target(...)         blocking: start + poll with a deadline (an injected `Clock`)
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any, Literal, NamedTuple

from botocore.exceptions import ClientError
from pydantic import BaseModel, ConfigDict, Field

from dynashift.aws import error_code
from dynashift.clock import SYSTEM_CLOCK, Clock
from dynashift.errors import RuntimeFailure
from dynashift.models import PROCESS_CLIENTS, Clients, TableLocation
from dynashift.progress import NullProgress, Progress
from dynashift.state import StateStore
from dynashift.target.checks import check_target, migration_meta
from dynashift.target.describe import (
    TableDescription,
    describe_location,
    describe_source,
    warm_units,
)
from dynashift.target.options import TargetOptions
from dynashift.target.spec import (
    TargetSpec,
    build_target_spec,
    raised_warm_throughput,
    warm_request,
)

log = logging.getLogger("dynashift")

#: Seconds the state machine should wait before the next poll, by what is being waited on.
WAIT_TABLE = 5
WAIT_REPLICA = 20


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


class PendingStep(NamedTuple):
    """What `poll_target` just did or waits on, and the seconds to wait before the next poll."""

    step: str
    wait_seconds: int


class WarmUpdate(NamedTuple):
    """An UpdateTable raising a warm throughput, and what it says it did."""

    request: dict[str, Any]
    step: str


def _warm_update(
    spec: TargetSpec, desc: TableDescription, options: TargetOptions, created: bool
) -> WarmUpdate | None:
    """The warm throughput still to apply, never lowering one: a created table's and its GSIs'
    (ImportTable cannot set the table's: `copy --via-import`); an existing table's only when
    `--warm-*` is given (then to the spec's: the flags', the source's in the other dimension).
    The table first, then each GSI, one call each; nothing while one is UPDATING."""
    if not created and not (options.warm_read_units or options.warm_write_units):
        return None
    if (desc.table.get("WarmThroughput") or {}).get("Status") == "UPDATING":
        return None
    table = raised_warm_throughput(desc.warm_throughput, spec.warm_throughput)
    if table is not None:
        return WarmUpdate(
            {"WarmThroughput": warm_request(table)},
            f"raised warm throughput to {table[0]:,} read / {table[1]:,} write units/s",
        )
    if not created:
        return None
    have_gsis = {g["IndexName"]: g for g in desc.gsis}
    for gsi in spec.global_secondary_indexes:
        have = have_gsis.get(gsi["IndexName"])
        if have is None or (have.get("WarmThroughput") or {}).get("Status") == "UPDATING":
            continue
        raised = raised_warm_throughput(warm_units(have), warm_units(gsi))
        if raised is not None:
            update = {"IndexName": gsi["IndexName"], "WarmThroughput": warm_request(raised)}
            return WarmUpdate(
                {"GlobalSecondaryIndexUpdates": [{"Update": update}]},
                f"raised GSI {gsi['IndexName']} warm throughput to {raised[0]:,} read / "
                f"{raised[1]:,} write units/s",
            )
    return None


def _pending(
    client: Any,
    *,
    target: TableLocation,
    spec: TargetSpec,
    desc: TableDescription,
    options: TargetOptions,
    created: bool,
) -> PendingStep | None:
    """Do the next step towards `spec` (at most one mutating call); None when ready."""
    name = target.name
    if desc.status != "ACTIVE":
        return PendingStep(f"waiting for table {desc.status}", WAIT_TABLE)
    creating = [g["IndexName"] for g in desc.gsis if g.get("IndexStatus", "ACTIVE") != "ACTIVE"]
    if creating:
        return PendingStep(f"waiting for GSI {', '.join(creating)}", WAIT_TABLE)
    warm = _warm_update(spec, desc, options, created)
    if warm is not None:
        client.update_table(TableName=name, **warm.request)
        return PendingStep(warm.step, WAIT_TABLE)
    if created and spec.ttl_attribute and desc.ttl_attribute != spec.ttl_attribute:
        if desc.ttl_status in ("ENABLING", "DISABLING"):
            return PendingStep(f"waiting for TTL {desc.ttl_status}", WAIT_TABLE)
        client.update_time_to_live(
            TableName=name,
            TimeToLiveSpecification={"Enabled": True, "AttributeName": spec.ttl_attribute},
        )
        return PendingStep(f"enabled TTL on {spec.ttl_attribute!r}", 0)
    if created and spec.pitr and desc.pitr is False:
        try:
            client.update_continuous_backups(
                TableName=name,
                PointInTimeRecoverySpecification={"PointInTimeRecoveryEnabled": True},
            )
        except ClientError as exc:
            # A table created moments ago: DynamoDB is still turning its backups on.
            if error_code(exc) != "ContinuousBackupsUnavailableException":
                raise
            return PendingStep("waiting for backups to be available (for PITR)", WAIT_TABLE)
        return PendingStep("enabled point-in-time recovery", 0)
    wanted_tags = spec.tags if created else dict(options.tags)
    if desc.tags is not None and desc.arn:
        missing = {k: v for k, v in wanted_tags.items() if desc.tags.get(k) != v}
        if missing:
            client.tag_resource(
                ResourceArn=desc.arn,
                Tags=[{"Key": k, "Value": v} for k, v in sorted(missing.items())],
            )
            return PendingStep(f"tagged {', '.join(sorted(missing))}", 0)
    if spec.replica_regions:
        if desc.stream_view_type is None:
            client.update_table(
                TableName=name,
                StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"},
            )
            return PendingStep("enabled the stream replicas need", WAIT_TABLE)
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
                return PendingStep(f"adding replica {region}", WAIT_REPLICA)
            if current != "ACTIVE":
                return PendingStep(f"waiting for replica {region} ({current})", WAIT_REPLICA)
    return None


def poll_target(
    source: TableLocation,
    target: TableLocation,
    options: TargetOptions,
    *,
    created: bool = False,
    spec: TargetSpec | None = None,
    source_client: Any = None,
    target_client: Any = None,
    clients: Clients = PROCESS_CLIENTS,
) -> PrepareResult:
    """One non-blocking step: wait for ACTIVE, then apply warm throughput, TTL, PITR, tags,
    replicas in turn.

    `created`: the target was created by this migration, so every mirrored setting is applied;
    otherwise only what the options ask for explicitly (tags, replicas, `--warm-*`). `spec`:
    the spec from `check_target` (described again from the source when not given). `source_client` /
    `target_client`: each side's DynamoDB client (default: `clients`' for that side).
    """
    if spec is None:
        spec = build_target_spec(describe_source(source, source_client, clients=clients), options)
    client = target_client if target_client is not None else clients(target).dynamodb()
    desc = describe_location(target, "target", client)
    step = _pending(client, target=target, spec=spec, desc=desc, options=options, created=created)
    if step is not None and not step.step.startswith("waiting"):
        log.info("target %s: %s", target.display(), step.step)
    return PrepareResult(
        target=target.display(),
        action="create" if created else "exists",
        created=created,
        ready=step is None,
        status=desc.status,
        step=step.step if step else "ready",
        wait_seconds=step.wait_seconds if step else 0,
        table_arn=desc.arn or None,
        stream_arn=desc.stream_arn,
        replicas=desc.replicas,
    )


def start_prepare_target(
    source: TableLocation,
    target: TableLocation,
    options: TargetOptions,
    state: StateStore | None = None,
    *,
    source_client: Any = None,
    target_client: Any = None,
    clients: Clients = PROCESS_CLIENTS,
) -> PrepareResult:
    """Check, create the target when missing, and take the first step. Non-blocking.

    With a state store, the meta records `target` and `target_created` before CreateTable, so
    a resumed run recognises its own target (non-empty allowed, mirrored settings applied).
    `source_client` / `target_client`: each side's DynamoDB client (default: `clients`').
    """
    source_client, target_client = clients.dynamodb_pair(
        source, target, source_client, target_client
    )
    given = {"source_client": source_client, "target_client": target_client}
    check = check_target(source, target, options, state, **given)
    created = check.created_by_migration
    recorded_options = {"target_options": options.model_dump(mode="json")}
    if check.action == "create":
        if state is not None:
            _record(state, target=target.name, target_created=True, **recorded_options)
        try:
            target_client.create_table(**check.spec.create_request(target.name))
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
    result = poll_target(source, target, options, created=created, spec=check.spec, **given)
    return result.model_copy(update={"action": check.action, "warnings": check.warnings})


def recorded_target_options(state: StateStore | None) -> TargetOptions | None:
    """The options the target was prepared with (the meta record), for the settings check."""
    meta = migration_meta(state)
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
    clock: Clock = SYSTEM_CLOCK,
    poll_interval: float = 1.0,
    source_client: Any = None,
    target_client: Any = None,
    clients: Clients = PROCESS_CLIENTS,
) -> PrepareResult:
    """Blocking: create or verify the target and wait until every setting is applied.

    Waits at most `timeout` seconds by `clock` (RuntimeFailure naming what it was waiting
    for). Polls every `poll_interval` seconds while something is pending (at once after a
    quick step). Every call goes through `source_client` / `target_client` when given.
    """
    progress = progress or NullProgress()
    source_client, target_client = clients.dynamodb_pair(
        source, target, source_client, target_client
    )
    given = {"source_client": source_client, "target_client": target_client}
    deadline = clock.monotonic() + timeout
    result = start_prepare_target(source, target, options, state, **given)
    first = result
    spec = None
    while not result.ready:
        progress.advance(0, note=result.step)
        if clock.monotonic() > deadline:
            raise RuntimeFailure(
                f"target {target.display()} not ready after {timeout:.0f}s: {result.step}"
            )
        if result.wait_seconds:
            clock.sleep(min(poll_interval, max(0.0, deadline - clock.monotonic())))
        if spec is None:
            spec = build_target_spec(
                describe_source(source, source_client, clients=clients), options
            )
        result = poll_target(source, target, options, created=result.created, spec=spec, **given)
    progress.advance(1, note="ready")
    return result.model_copy(update={"action": first.action, "warnings": first.warnings})
