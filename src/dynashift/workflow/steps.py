"""The engine side of every Task state of `statemachine/migration.asl.json`.

Size: one module because it is the one table of Task states (a short function each) that the
contract tests read against the definition and the handlers.

Each function here is what exactly one Lambda handler in `functions/` calls: the handler parses
its event into the pydantic model below, calls the function, and returns `model_dump(mode=
"json")`. The same functions run in-process under the local runner. Errors are the engine's
named exceptions, which the state machine retries (TransientError, NotReadyYet, ...) or routes
to a reporting state (the BadInputError family).

The execution input is a `WorkflowInput`: the validated `MigrationSpec`, the target table
overrides (`TargetOptions`) and `WorkflowSettings` (waits, concurrency, approval/cutover).
Those models, and everything else the workflow modules share, are in `workflow/types.py`.

Why one module of this size: one function per Task state (the one engine call of each handler)
with its small glue, in the order of the definition; the rules they apply live elsewhere.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ValidationError

from dynashift.backfill import DEFAULT_IN_FLIGHT, SegmentResult, run_segment, start_backfill
from dynashift.clock import SYSTEM_CLOCK, Clock
from dynashift.errors import BadInputError, DynashiftError, cause_message
from dynashift.models import PROCESS_CLIENTS, Clients, MigrationSpec
from dynashift.plan import INLINE_MAP_CONCURRENCY, WORKER_ITEMS_PER_SECOND
from dynashift.ratelimit import RateLimiter
from dynashift.sampling import check_sample, plan_sample, sampled_numbers
from dynashift.state import StateStore, existing_state_store, state_store
from dynashift.tables import describe_table
from dynashift.tombstones import finish_backfill as _finish_backfill
from dynashift.validation import parse_event
from dynashift.workflow.types import (
    DISTRIBUTED_THRESHOLD,
    HISTORY_EVENTS_QUOTA,  # noqa: F401  (re-exported)
    ApprovalEvent,
    ExportEvent,
    ExportFileEvent,
    ExportFileResult,
    ExportFilesResult,
    ExportProgress,
    ExportTimeCheck,
    FinishResult,
    LagStatus,
    LoopEstimate,
    PlanResult,
    PrepareTargetEvent,
    ReadinessEvent,
    ReadinessOutput,
    ReplicationControl,
    ReplicationEvent,
    ReportEvent,
    SegmentEvent,
    StepEvent,
    StreamEvent,
    ValidateEvent,
    ValidationResult,
    VerifyOutput,
    WorkflowInput,
    WorkflowSettings,
)

if TYPE_CHECKING:
    from dynashift.settings import LambdaSettings

log = logging.getLogger("dynashift.workflow")

#: History events of one turn of a segment loop inline (TaskStateEntered, TaskScheduled,
#: TaskStarted, TaskSucceeded, TaskStateExited, ChoiceStateEntered, ChoiceStateExited).
EVENTS_PER_LOOP_TURN = 7
#: History events of one inline Map iteration besides its turns (iteration started/succeeded,
#: the final Pass entered/exited).
EVENTS_PER_ITERATION = 4
#: History events of the backfill iteration's Choice on the strategy ("Verify segment now?":
#: entered, exited): the concurrent strategy verifies the segment in the same iteration, right
#: after its copy, so its verification turns add no iteration of their own.
EVENTS_PER_STRATEGY_CHOICE = 2
#: Conservative worker throughput used to estimate invocations (docs/limits.md): a backfill
#: worker writes with conditional puts at about half one partition's 1,000 WCU; a verification
#: worker reads two tables.
BACKFILL_ITEMS_PER_SECOND = WORKER_ITEMS_PER_SECOND
BACKFILL_BYTES_PER_SECOND = 512 * 1024.0
VERIFY_ITEMS_PER_SECOND = 1_000.0
VERIFY_BYTES_PER_SECOND = 1024 * 1024.0
#: Seconds a worker function keeps beyond `worker_budget_seconds` (a page being written, the
#: checkpoint): Validate refuses a budget closer than this to the function timeout.
WORKER_TIMEOUT_MARGIN_SECONDS = 60.0


# --- helpers ---------------------------------------------------------------------------------


def normalise_input(raw: Any, env: LambdaSettings | None = None) -> WorkflowInput:
    """The execution input as operators type it, with every default applied.

    `spec.migration_id` and `spec.state` may be omitted when the function's environment names
    them (DYNASHIFT_MIGRATION_ID, DYNASHIFT_STATE_TABLE: the stack's); everything else
    optional has its default in the models. BadInputError names the first wrong field.
    """
    if not isinstance(raw, Mapping):
        raise BadInputError("input: the execution input must be a JSON object")
    data = dict(raw)
    spec = data.get("spec")
    if isinstance(spec, Mapping) and env is not None:
        spec = dict(spec)
        if "migration_id" not in spec and env.migration_id:
            spec["migration_id"] = env.migration_id
        if "state" not in spec and env.state_table:
            side = {"region": env.region, "endpoint_url": env.endpoint_url}
            spec["state"] = {
                "name": env.state_table,
                "side": {k: v for k, v in side.items() if v},
            }
        data["spec"] = spec
    return parse_event(WorkflowInput, data)


def _dump(model: Any) -> dict[str, Any]:
    if isinstance(model, BaseModel):
        return model.model_dump(mode="json")
    if hasattr(model, "__dataclass_fields__"):
        from dataclasses import asdict

        return asdict(model)
    return dict(model)


# --- steps -----------------------------------------------------------------------------------


def validate_execution_input(
    payload: Mapping[str, Any], env: LambdaSettings, *, clients: Clients = PROCESS_CLIENTS
) -> dict[str, Any]:
    """The Validate state: normalise the raw execution input (`payload["input"]`), check it,
    and return `{"input": <the normalised WorkflowInput>, "validation": ...}`; the state
    machine makes the normalised input the state every later step reads."""
    raw = payload.get("input")
    workflow = normalise_input(raw, env)
    check_replicator_settings(workflow.spec, env)
    check_export_settings(workflow.spec, env)
    workflow = plan_concurrency(workflow, raw, clients=clients)
    stack = {
        "spec.state.name": env.state_table,
        "spec.migration_id": env.migration_id,
        "spec.target.name": env.target_table,
    }
    result = validate(
        ValidateEvent(
            spec=workflow.spec,
            settings=workflow.settings,
            target_options=workflow.target_options,
        ),
        stack=stack,
        worker_timeout_seconds=env.worker_timeout_seconds,
        clients=clients,
    )
    return {
        "input": workflow.model_dump(mode="json"),
        "validation": result.model_dump(mode="json"),
    }


def plan_concurrency(
    workflow: WorkflowInput, raw: Any, *, clients: Clients = PROCESS_CLIENTS
) -> WorkflowInput:
    """Fill what the execution input leaves out — spec.segments, settings.max_concurrency,
    settings.max_in_flight — with `plan.concurrency_plan` for the deployed runner (what
    `dynashift plan` shows as "deployed"; for a target on this machine's loopback, an emulator
    under the local runner, the local rule with this machine's CPUs); given values win, and a
    resumed migration keeps its recorded segment count. When the tables cannot be read the
    input is kept as it is: the validation that follows names what is wrong."""
    spec_raw = raw.get("spec") if isinstance(raw, Mapping) else None
    settings_raw = raw.get("settings") if isinstance(raw, Mapping) else None
    spec_raw = spec_raw if isinstance(spec_raw, Mapping) else {}
    settings_raw = settings_raw if isinstance(settings_raw, Mapping) else {}
    given = ("segments" in spec_raw, "max_concurrency" in settings_raw)
    settings, spec = workflow.settings, workflow.spec
    if all(given) and settings.max_in_flight is not None:
        return workflow
    from dynashift.plan import concurrency_plan, is_local_endpoint, target_capacity
    from dynashift.target import check_target

    try:
        state = existing_state_store(spec, clients)
        segments = spec.segments if given[0] else None
        if state is not None:
            segments = state.segment_count(segments)  # a resume keeps its count
        items, size = describe_source_size(spec, clients)
        check = check_target(
            spec.source, spec.target, workflow.target_options, state, clients=clients
        )
    except DynashiftError:
        return workflow
    wcu, warm = target_capacity(check)
    local = is_local_endpoint(spec.target.side.endpoint_url)
    plan = concurrency_plan(
        items,
        size,
        runner="local" if local else "aws",
        cpus=os.cpu_count() if local else None,
        endpoint_url=spec.target.side.endpoint_url,
        provisioned_wcu=wcu,
        warm_wcu=warm,
        max_write_rate=spec.max_write_rate,
        segments=segments,
        workers=settings.max_concurrency if given[1] else None,
        in_flight=settings.max_in_flight,
    )
    log.info("concurrency: %s", plan.line())
    return workflow.model_copy(
        update={
            "spec": spec.model_copy(update={"segments": plan.segments}),
            "settings": settings.model_copy(
                update={"max_concurrency": plan.workers, "max_in_flight": plan.in_flight}
            ),
        }
    )


def check_replicator_settings(spec: MigrationSpec, env: LambdaSettings) -> None:
    """The replicator reads its target and options from the stack (its environment), not from
    the execution input: an input that differs would have the backfill and the replicator work
    with different settings (another region, another role, no version attribute). BadInputError
    names the first field that differs from the stack's value."""
    target = spec.target.side
    pairs: tuple[tuple[str, object, object], ...] = (
        ("spec.target.side.region", target.region or env.region, env.target_region or env.region),
        ("spec.target.side.role_arn", target.role_arn, env.target_role_arn),
        ("spec.target.side.external_id", target.external_id, env.target_external_id),
        ("spec.target.side.endpoint_url", target.endpoint_url, env.target_endpoint_url),
        ("spec.version_attribute", spec.version_attribute, env.version_attribute),
        ("spec.skip_ttl_deletes", spec.skip_ttl_deletes, env.skip_ttl_deletes),
    )
    for field, value, deployed in pairs:
        if value != deployed:
            raise BadInputError(
                f"{field}: {value!r} is not this stack's {deployed!r} (the replicator is "
                "deployed with the stack's value)"
            )


def check_export_settings(spec: MigrationSpec, env: LambdaSettings) -> None:
    """The export strategy's bucket and prefix must be the stack's (ExportBucketName,
    ExportPrefix): its functions may export to and read from those only (docs/export.md)."""
    export = spec.export
    if export is None:
        return
    if not env.export_bucket:
        raise BadInputError(
            "spec.export.bucket: this stack was deployed without ExportBucketName, so its "
            "functions may not export or read an export (docs/export.md)"
        )
    if export.bucket != env.export_bucket:
        raise BadInputError(
            f"spec.export.bucket: {export.bucket!r} is not this stack's {env.export_bucket!r} "
            "(ExportBucketName: the functions may use that bucket only)"
        )
    if env.export_prefix and not export.prefix.startswith(env.export_prefix):
        raise BadInputError(
            f"spec.export.prefix: {export.prefix!r} is not under this stack's "
            f"{env.export_prefix!r} (ExportPrefix: the functions may write and read only there)"
        )


def validate(
    event: ValidateEvent,
    *,
    stack: dict[str, str | None] | None = None,
    worker_timeout_seconds: float | None = None,
    clients: Clients = PROCESS_CLIENTS,
) -> ValidationResult:
    """Read-only checks before anything is written: source exists, target creatable or
    compatible (and safe), stream usable, segment count unchanged on a resume, replicas only
    on an on-demand target, the worker budget inside the functions' timeout.

    `stack` (in AWS): the state table, migration id and target table the stack was deployed
    for; the input must name the same ones. `worker_timeout_seconds`: the segment functions'
    timeout (the stack's WorkerTimeoutSeconds).
    """
    from dynashift.stream import check_stream
    from dynashift.target import check_target

    spec = event.spec
    if worker_timeout_seconds is not None:
        most = worker_timeout_seconds - WORKER_TIMEOUT_MARGIN_SECONDS
        if spec.worker_budget_seconds > most:
            raise BadInputError(
                f"spec.worker_budget_seconds: {spec.worker_budget_seconds:g} s does not fit "
                f"the workers' {worker_timeout_seconds:g} s timeout (WorkerTimeoutSeconds) "
                f"with {WORKER_TIMEOUT_MARGIN_SECONDS:g} s to spare: use at most {most:g}"
            )
    for field, value in (
        ("spec.state.name", spec.state.name),
        ("spec.migration_id", spec.migration_id),
        ("spec.target.name", spec.target.name),
    ):
        expected = (stack or {}).get(field)
        if expected and expected != value:
            raise BadInputError(f"{field}: {value!r} is not this stack's {expected!r}")
    state = existing_state_store(spec, clients)
    check = check_target(spec.source, spec.target, event.target_options, state, clients=clients)
    if event.target_options.replica_regions and check.spec.billing_mode == "PROVISIONED":
        # UpdateTable refuses a replica on a PROVISIONED table without write auto scaling,
        # which dynashift does not set up: refuse now rather than fail after the backfill.
        raise BadInputError(
            "target_options.replica_regions: the target would be PROVISIONED (like the "
            "source); replicas need on-demand or write auto scaling: set "
            "target_options.billing_mode to PAY_PER_REQUEST"
        )
    stream = check_stream(spec.source, event.target_options.replace_stream, clients=clients)
    if spec.strategy == "export":
        check_export_source(spec, clients)
    if state is not None:
        state.segment_count(spec.segments)
        check_sample(state, spec.verify_sample)  # a resume keeps its verification sample
    return ValidationResult(
        source=spec.source.display(),
        target=spec.target.display(),
        target_action=str(getattr(check, "action", "")),
        stream=_dump(stream),
        warnings=list(getattr(check, "warnings", []) or []),
    )


def prepare_target(
    event: PrepareTargetEvent, *, clients: Clients = PROCESS_CLIENTS
) -> dict[str, Any]:
    """Create the target (or verify it) and, on later polls, apply its remaining settings."""
    from dynashift.target import poll_target, start_prepare_target

    spec = event.spec
    state = state_store(spec, clients)
    options = event.target_options
    if event.action == "start":
        result = start_prepare_target(spec.source, spec.target, options, state, clients=clients)
    else:
        created = bool((state.get_meta() or {}).get("target_created"))
        result = poll_target(spec.source, spec.target, options, created=created, clients=clients)
    return _dump(result)


def source_stream(event: StreamEvent, *, clients: Clients = PROCESS_CLIENTS) -> dict[str, Any]:
    """Enable the source stream (NEW_AND_OLD_IMAGES) or poll it until it is ENABLED."""
    from dynashift.stream import enable_stream, poll_stream

    spec = event.spec
    replace = event.target_options.replace_stream
    status = (
        enable_stream(spec.source, replace, clients=clients)
        if event.action == "enable"
        else poll_stream(spec.source, replace, clients=clients)
    )
    data = _dump(status)
    if data.get("ready") and data.get("arn"):
        state_store(spec, clients).put_meta(stream_arn=data["arn"])
    return data


def _streams(spec: MigrationSpec, clients: Clients) -> Any:
    """The source's DynamoDB Streams client."""
    return clients(spec.source).streams()


def replication_problem(state: StateStore) -> str | None:
    """Why replication cannot make the target whole (recorded when the replicator was not
    started), or None."""
    problem = (state.get_meta() or {}).get("replication_problem")
    return str(problem) if problem else None


def _replay_retention(
    spec: MigrationSpec, state: StateStore, stream_arn: str, clients: Clients
) -> str | None:
    """Before a replay's replicator starts: why the stream may not hold every change since the
    first backfill scan page (`backfill_started`, recorded before the first page is read, so
    the proof is conservative), or None when it provably does."""
    from dynashift.replication_progress import retention_gap

    started = (state.get_meta() or {}).get("backfill_started")
    if started is None:
        return (
            "no record of when the backfill's first scan page was read, so the stream cannot be "
            "proven to hold every change since: start a new migration"
        )
    return retention_gap(_streams(spec, clients), stream_arn, float(started))


def replication(
    event: ReplicationEvent,
    control: ReplicationControl,
    *,
    clients: Clients = PROCESS_CLIENTS,
    clock: Clock = SYSTEM_CLOCK,
) -> dict[str, Any]:
    """Start the replicator, measure its lag, drain it, or stop it."""
    from dynashift.workflow.control import reset_drain

    spec = event.spec
    if event.action in ("start", "start_after_backfill"):
        if not event.stream_arn:
            raise BadInputError("stream_arn: required to start the replicator")
        state = state_store(spec, clients)
        reset_drain(state)
        if spec.strategy == "replay":
            # Replay writes the backfill unconditionally, so nothing may be replicated while it
            # runs: the replicator starts after it, from TRIM_HORIZON of the stream enabled
            # before the first scan page (I2), and applies every change since in order.
            if event.action == "start":
                state.put_meta(stream_arn=event.stream_arn, replicator="deferred")
                return {"started": False, "deferred": True}
            meta = state.get_meta() or {}
            if meta.get("replication_problem"):
                return {"started": False, "replication_problem": meta["replication_problem"]}
            # A resumed run whose replicator already started has read the stream from its
            # start: the proof was made then (the oldest records may have expired since).
            if meta.get("replicator") != "started":
                gap = _replay_retention(spec, state, event.stream_arn, clients)
                if gap is not None:
                    # NOT READY; the replicator never starts, nothing more is written.
                    log.error("replay cannot be completed: %s", gap)
                    state.put_meta(replication_problem=gap, replicator="not started")
                    return {"started": False, "replication_problem": gap}
            started = control.start(spec, event.stream_arn)
            state.put_meta(replicator="started")
            return {"started": True, **started}
        if event.action == "start_after_backfill":
            return {"started": True, "deferred": False, "already_running": True}
        # Deletes become tombstones from the first applied record on (I5); a resumed migration
        # that already finished its backfill keeps its phase.
        # The write mode (was the target empty?) is recorded with the phase (conditions module).
        if state.phase() is None:
            start_backfill(state)
            state.put_meta(stream_arn=event.stream_arn)
        return {"started": True, **control.start(spec, event.stream_arn)}
    if event.action == "stop":
        return {"stopped": True, **control.stop(spec)}
    problem = replication_problem(state_store(spec, clients))
    if problem:
        # No replicator runs: nothing to wait for; the checklist reports the problem.
        return LagStatus(caught_up=False, give_up=True, detail=problem).model_dump(mode="json")
    measure = control.drain if event.action == "drain" else control.lag
    status: LagStatus = measure(spec, event.since)
    if not status.caught_up and event.since is not None and event.action == "lag":
        waited = clock.wall() - event.since.timestamp()
        if waited > event.settings.catchup_timeout_seconds:
            status = status.model_copy(update={"give_up": True})
    return status.model_dump(mode="json")


def plan_segments(
    event: StepEvent, *, clients: Clients = PROCESS_CLIENTS, clock: Clock = SYSTEM_CLOCK
) -> PlanResult:
    """Record the segment count (a resume must keep it) and list the segments for the Map."""
    spec = event.spec
    state = state_store(spec, clients)
    meta = state.get_meta() or {}
    state.segment_count(spec.segments, meta=meta)  # a resume keeps its count
    if "segments" not in meta:
        state.put_meta(segments=spec.segments)
    if "backfill_started" not in meta:
        state.put_meta(backfill_started=clock.wall())
    items, size = describe_source_size(spec, clients)
    # A sampled verification's segments, drawn once and recorded (a resume verifies the same).
    sample = plan_sample(state, spec.verify_sample, items)
    verify_segments = sampled_numbers(sample, spec.segments)
    estimate = estimate_loops(
        items,
        size,
        spec.segments,
        spec.worker_budget_seconds,
        threshold=event.settings.distributed_threshold,
        strategy=spec.strategy,
        sample=None if sample is None else (len(sample.segments), sample.total_segments),
    )
    # An inline Map runs at most 40 iterations at once: more planned workers need it distributed.
    iterations = max(spec.segments, len(verify_segments))
    wide = min(event.settings.max_concurrency, iterations) > INLINE_MAP_CONCURRENCY
    return PlanResult(
        segments=list(range(spec.segments)),
        count=spec.segments,
        verify_segments=list(verify_segments),
        distributed=estimate.distributed or wide,
        invocations=estimate.invocations,
        history_events=estimate.history_events,
    )


def estimate_loops(
    item_count: int,
    size_bytes: int,
    segments: int,
    budget_seconds: float,
    *,
    threshold: int = DISTRIBUTED_THRESHOLD,
    strategy: str = "concurrent",
    sample: tuple[int, int] | None = None,
) -> LoopEstimate:
    """Worker invocations and inline history events of the backfill and verification loops.

    Each segment takes the longer of its items and its bytes at the conservative worker rates
    above; a worker turn is `budget_seconds` long. The Maps run distributed when the inline
    history estimate exceeds `threshold` (the segment count alone says nothing: 32 segments of
    a 1-billion-item table loop thousands of times).

    The concurrent strategy verifies each segment inside its backfill iteration (the
    definition's `segment_loop(..., overlap=True)`): both loops' turns are events of that one
    iteration. Any other strategy verifies in a second Map, whose iterations add theirs.
    `sample` (m, V): a sampled verification verifies m of V key-space segments, each 1/V of
    the table, in the second Map (whatever the strategy).
    """
    from dynashift.workflow.definition import OVERLAP_STRATEGY

    segments = max(1, segments)
    verified, partition = sample or (segments, segments)

    def turns(items_rate: float, bytes_rate: float, parts: int) -> int:
        per_items = max(item_count, 0) / parts
        per_bytes = max(size_bytes, 0) / parts
        seconds = max(per_items / items_rate, per_bytes / bytes_rate)
        return max(1, math.ceil(seconds / budget_seconds))

    backfill = turns(BACKFILL_ITEMS_PER_SECOND, BACKFILL_BYTES_PER_SECOND, segments) * segments
    verify = turns(VERIFY_ITEMS_PER_SECOND, VERIFY_BYTES_PER_SECOND, partition) * verified
    overlap = strategy == OVERLAP_STRATEGY and sample is None
    separate = 0 if overlap else verified * EVENTS_PER_ITERATION
    per_segment = EVENTS_PER_ITERATION + EVENTS_PER_STRATEGY_CHOICE
    events = (backfill + verify) * EVENTS_PER_LOOP_TURN + segments * per_segment + separate
    return LoopEstimate(
        segments=segments,
        verify_segments=verified,
        backfill_invocations=backfill,
        verify_invocations=verify,
        invocations=backfill + verify,
        history_events=events,
        distributed=events > threshold,
    )


def _limiter(spec: MigrationSpec, settings: WorkflowSettings) -> RateLimiter | None:
    if spec.max_write_rate is None:
        return None
    # Each worker invocation gets its share of the migration's cap.
    workers = max(1, min(settings.max_concurrency, spec.segments))
    return RateLimiter(spec.max_write_rate / workers)


def backfill_segment(
    event: SegmentEvent, *, limiter: RateLimiter | None = None, clients: Clients = PROCESS_CLIENTS
) -> SegmentResult:
    """One worker invocation: copy a segment until done or the budget is spent."""
    spec = event.spec
    return run_segment(
        spec,
        event.segment,
        state=state_store(spec, clients),
        budget_seconds=spec.worker_budget_seconds,
        cursor=event.cursor,
        limiter=limiter or _limiter(spec, event.settings),
        max_in_flight=event.settings.max_in_flight or DEFAULT_IN_FLIGHT,
        clients=clients,
    )


# --- the export strategy (dynashift.export_backfill) ------------------------------------------


def _s3(spec: MigrationSpec, clients: Clients) -> Any:
    """The S3 client of the export: the source side's (DynamoDB writes the export with the
    caller's principal; a local run reaches the emulator's S3 at the source's endpoint)."""
    return clients(spec.source).client("s3")


def check_export_source(spec: MigrationSpec, clients: Clients = PROCESS_CLIENTS) -> None:
    """Validate's export checks (PITR on, bucket reachable): read-only, BadInputError."""
    from dynashift.export_backfill import check_export_source as _check

    _check(spec, clients(spec.source).dynamodb(), _s3(spec, clients))


def export_source(event: ExportEvent, *, clients: Clients = PROCESS_CLIENTS) -> BaseModel:
    """The export strategy's export states: start it (once), poll it, check its point in time
    against the stream's start (I2), and list its data files for the load Map."""
    from dynashift import export_backfill

    spec = event.spec
    state = state_store(spec, clients)
    dynamodb = clients(spec.source).dynamodb()
    if event.action == "start":
        return ExportProgress(**export_backfill.start(spec, state, dynamodb))
    if event.action == "poll":
        return ExportProgress(**export_backfill.poll(spec, state, dynamodb))
    if event.action == "check_time":
        return ExportTimeCheck(**export_backfill.check_time(spec, state, dynamodb))
    files = export_backfill.list_files(
        spec,
        state,
        dynamodb,
        _s3(spec, clients),
        max_concurrency=event.settings.max_concurrency,
        threshold=event.settings.distributed_threshold,
    )
    return ExportFilesResult(**files)


def load_export_file(
    event: ExportFileEvent, *, clients: Clients = PROCESS_CLIENTS
) -> ExportFileResult:
    """One loader invocation: a data file of the export from its cursor {file, line, done}."""
    from dynashift.export_backfill import load_file

    spec = event.spec
    no_retry_side = spec.target.side.model_copy(update={"max_attempts": 1})
    in_flight = event.settings.max_in_flight or DEFAULT_IN_FLIGHT
    result = load_file(
        spec,
        event.file,
        state=state_store(spec, clients),
        s3=_s3(spec, clients),
        target_client=clients.for_side(no_retry_side, in_flight * 2).dynamodb(),
        limiter=_limiter(spec, event.settings),
        max_in_flight=in_flight,
    )
    return ExportFileResult(**result)


def finish_backfill(
    event: StepEvent, *, clients: Clients = PROCESS_CLIENTS, clock: Clock = SYSTEM_CLOCK
) -> FinishResult:
    """One turn of the "Finish backfill" loop: switch the replicator to plain deletes and
    remove registered tombstones (I5) until none is left (`done`) or the worker budget is
    spent; the state machine calls it again until done (each removed tombstone is
    deregistered, so the state store is the cursor)."""
    spec = event.spec
    state = state_store(spec, clients)
    target_client = clients(spec.target).dynamodb()
    result = _finish_backfill(
        target_client,
        spec.target.name,
        state,
        budget_seconds=spec.worker_budget_seconds,
        clock=clock,
    )
    if result.done and "backfill_finished" not in (state.get_meta() or {}):
        state.put_meta(backfill_finished=clock.wall())
    return FinishResult(
        done=result.done,
        registered=result.registered,
        removed=result.removed,
        recreated=result.recreated,
    )


def verify_segment(event: SegmentEvent, *, clients: Clients = PROCESS_CLIENTS) -> VerifyOutput:
    """Compare one segment of the source with the target (resumable with a cursor); the
    result, with its suspect keys, is checkpointed in the state store and only the cursor and
    counts go back to the state machine (bounded whatever the key size)."""
    from dynashift.verify import VerifyConfig, segment_config
    from dynashift.verify import verify_segment as _verify

    spec = event.spec
    state = state_store(spec, clients)
    config = VerifyConfig(
        mode=event.settings.verify_mode, budget_seconds=spec.worker_budget_seconds
    )
    config = segment_config(spec, state, event.segment, config)  # a sample's own partition
    result = _verify(spec, event.segment, event.cursor, config, state=state, clients=clients)
    return verify_output(result)


def verify_output(result: Any) -> VerifyOutput:
    """The state machine's view of a VerifyResult: no suspect keys."""
    return VerifyOutput(
        segment=result.segment,
        done=result.done,
        cursor=result.cursor.model_dump(mode="json"),
        counts=result.counts(),
        suspects=result.suspect_count,
    )


def recheck(
    event: StepEvent, control: ReplicationControl, *, clients: Clients = PROCESS_CLIENTS
) -> dict[str, Any]:
    """Re-read every suspect key from both sides once the replicator has applied everything
    written before the recheck started; only keys that still differ are divergent. A key the
    target holds an image of that the stream carried during a round is in sync (it settles
    under steady writes); those images are read from the stream with the progress walk's code.
    """
    from dynashift.replication_progress import saved_walks, window_images
    from dynashift.verify import recheck_migration

    spec = event.spec
    state = state_store(spec, clients)
    problem = replication_problem(state)
    stream_arn = (state.get_meta() or {}).get("stream_arn")

    def caught_up(since: float) -> bool:
        if problem:
            return True  # no replicator runs; readiness reports why
        return control.lag(spec, datetime.fromtimestamp(since, UTC)).caught_up

    def images() -> Any:
        """At a round's start: note where the stream walk stands, read the window later."""
        arn = str(stream_arn)
        positions = saved_walks(state, arn) if stream_arn and not problem else {}

        def read(start: float, end: float, keys: Any, names: Any) -> Any:
            if problem or not stream_arn:
                return {}
            return window_images(
                _streams(spec, clients),
                state,
                arn,
                start=start,
                end=end,
                keys=keys,
                key_names=names,
                positions=positions,
            )

        return read

    poll = max(1.0, float(event.settings.poll_seconds))
    return recheck_output(
        recheck_migration(
            spec, state=state, caught_up=caught_up, images=images, poll=poll, clients=clients
        )
    )


def recheck_output(result: Any) -> dict[str, Any]:
    """Counts only: the divergent keys are saved with the recheck result in the state store."""
    data: dict[str, Any] = result.model_dump(mode="json")
    data.pop("divergent_keys", None)
    return data


def readiness(
    event: ReadinessEvent, control: ReplicationControl, *, clients: Clients = PROCESS_CLIENTS
) -> ReadinessOutput:
    """The readiness checklist and verdict; the report is saved in the state store.

    With `max_age_seconds` (after the approval) a READY checklist saved at most that long ago
    is kept; an older one (a late approval) is run again before the cutover.
    """
    from dynashift.readiness import gather_readiness, save_report
    from dynashift.verify import verification_summary

    spec = event.spec
    state = state_store(spec, clients)
    problem = replication_problem(state)
    lag = (
        LagStatus(caught_up=False, failed_records=0, detail=problem)
        if problem
        else control.lag(spec)
    )
    summary = verification_summary(spec, state)
    report = gather_readiness(
        spec,
        verification=summary,
        phases=phase_timings(spec, state),
        lag_seconds=lag.age_seconds,
        state=state,
        replicator_failed_records=lag.failed_records,
        dlq_messages=lag.dlq_messages,
        lag_detail="" if lag.caught_up else lag.detail,
        replication_problem=problem,
        clients=clients,
    )
    save_report(state, report)
    return readiness_output(report)


def readiness_output(report: Any, *, rechecked: bool = True) -> ReadinessOutput:
    return ReadinessOutput(
        ready=report.ready,
        verdict=report.verdict,
        failing=[check.name for check in report.failing()],
        rechecked=rechecked,
    )


def phase_timings(spec: MigrationSpec, state: StateStore) -> list[Any]:
    """Backfill and verification timings (for the report's timeline and items/s).

    The backfill ends when the last segment's copy ended (its done checkpoint), not when
    "Finish backfill" did: with the concurrent strategy, that runs after the segments'
    verification, which overlaps the copy of the others. The two phases may overlap.
    """
    from dynashift.readiness import PhaseTiming
    from dynashift.sampling import recorded_sample
    from dynashift.verify import run_results

    meta = state.get_meta() or {}
    phases = []
    segments = [s for s in state.segments() if s.segment < spec.segments]
    copied = sum(s.counters.get("scanned", 0) for s in segments)
    ends = [s.updated for s in segments if s.done and s.updated is not None]
    copy_ended = max(ends) if len(ends) == spec.segments else None
    if spec.strategy == "export":
        from dynashift.export_backfill import loaded_items

        copied, copy_ended = loaded_items(state), None  # ends with "Finish backfill"
    phases.append(
        PhaseTiming(
            name="backfill",
            started=meta.get("backfill_started"),
            ended=copy_ended if copy_ended is not None else meta.get("backfill_finished"),
            items=copied,
        )
    )
    results = run_results(spec, state, recorded_sample(state))
    if results:
        finished = [r.finished_at for r in results if r.finished_at]
        phases.append(
            PhaseTiming(
                name="verification",
                started=min(r.started_at for r in results),
                ended=max(finished) if len(finished) == len(results) else None,
                items=sum(r.scanned_source for r in results),
            )
        )
    return phases


def request_approval(
    event: ApprovalEvent,
    *,
    sns_client: Any = None,
    topic: str | None = None,
    approval_function: str | None = None,
    approval_url: str | None = None,
    region: str | None = None,
    clients: Clients = PROCESS_CLIENTS,
) -> dict[str, Any]:
    """Store the task token and tell the operators how to answer: the execution ARN, the
    readiness checklist, the console (no terminal) and `dynashift approve` ways to approve or
    reject (`dynashift.approval`)."""
    from dynashift.approval import approval_message, record_waiting_execution
    from dynashift.approval_token import save_approval_token
    from dynashift.readiness import load_report

    spec = event.spec
    state = state_store(spec, clients)
    save_approval_token(state, event.task_token)
    record_waiting_execution(state, event.execution_arn)
    if sns_client is not None and topic:
        subject, message = approval_message(
            spec.migration_id,
            source=spec.source.display(),
            target=spec.target.display(),
            execution_arn=event.execution_arn,
            report=load_report(state),
            approval_function=approval_function,
            approval_url=approval_url,
            region=region,
        )
        sns_client.publish(TopicArn=topic, Subject=subject, Message=message)
    return {"awaiting_approval": True, "execution_arn": event.execution_arn}


def report(
    event: ReportEvent,
    *,
    sns_client: Any = None,
    topic: str | None = None,
    clients: Clients = PROCESS_CLIENTS,
    clock: Clock = SYSTEM_CLOCK,
) -> dict[str, Any]:
    """The final word of an execution: the saved readiness report plus the outcome.

    For REJECTED input nothing is written (validation failed before anything was created).
    On the failure paths the spec is read leniently from the state (`event.input`), which may
    be the raw console input that Validate rejected.
    """
    from dynashift.readiness import READY_SAMPLED

    spec = event.spec or _lenient_spec(event.input)
    outcome: str = event.outcome
    failure = event.failure or (event.input or {}).get("failure") or {}
    raw_spec = (event.input or {}).get("spec")
    raw = raw_spec if isinstance(raw_spec, Mapping) else {}
    data: dict[str, Any] = {
        "migration_id": spec.migration_id if spec else raw.get("migration_id"),
        "source": spec.source.display() if spec else _raw_name(raw.get("source")),
        "target": spec.target.display() if spec else _raw_name(raw.get("target")),
        "outcome": outcome,
        "finished_at": datetime.fromtimestamp(clock.wall(), UTC).isoformat(),
    }
    if failure:
        data["error"] = failure.get("Error")
        data["cause"] = cause_message(failure.get("Cause"))
    if outcome != "REJECTED" and spec is not None:
        state = existing_state_store(spec, clients)
        if state is not None:
            saved = state.report()
            if saved and outcome in ("READY", "NOT_READY"):
                data["readiness"] = saved
                if outcome == "READY" and saved.get("verdict") == READY_SAMPLED:
                    # A sampled verification: never taken for a full one (readiness module).
                    outcome = data["outcome"] = READY_SAMPLED
            state.put_meta(outcome=outcome, finished=clock.wall(), **_error_meta(data))
    if sns_client is not None and topic:
        message = data.get("cause") or data.get("readiness", {}).get("verdict") or outcome
        sns_client.publish(
            TopicArn=topic,
            Subject=f"dynashift {data['migration_id'] or ''}: {outcome}"[:100],
            Message=str(message)[:250_000],
        )
    log.info("migration %s finished: %s", data["migration_id"], outcome)
    return data


def _lenient_spec(state: Mapping[str, Any] | None) -> MigrationSpec | None:
    try:
        return MigrationSpec.model_validate((state or {}).get("spec"))
    except ValidationError:
        return None


def _raw_name(location: Any) -> str | None:
    return str(location.get("name")) if isinstance(location, Mapping) else None


def _error_meta(data: dict[str, Any]) -> dict[str, Any]:
    return {k: data[k] for k in ("error", "cause") if data.get(k)}


def describe_source_size(spec: MigrationSpec, clients: Clients) -> tuple[int, int]:
    """(ItemCount, TableSizeBytes) of the source, as DescribeTable reports them."""
    desc = describe_table(clients(spec.source).dynamodb(), spec.source.name, "source table")
    return int(desc.get("ItemCount", 0)), int(desc.get("TableSizeBytes", 0))
