"""The engine side of every Task state of `statemachine/migration.asl.json`.

Each function here is what exactly one Lambda handler in `functions/` calls: the handler parses
its event into the pydantic model below, calls the function, and returns `model_dump(mode=
"json")`. The same functions run in-process under the local runner. Errors are the engine's
named exceptions, which the state machine retries (TransientError, NotReadyYet, ...) or routes
to a reporting state (the BadInputError family).

The execution input is a `WorkflowInput`: the validated `MigrationSpec`, the target table
overrides (`TargetOptions`) and `WorkflowSettings` (waits, concurrency, approval/cutover).
"""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from dynashift.backfill import SegmentResult, run_segment
from dynashift.errors import BadInputError, DynashiftError
from dynashift.models import MigrationSpec
from dynashift.ratelimit import RateLimiter
from dynashift.state import PHASE_BACKFILL, StateStore
from dynashift.tables import describe_table
from dynashift.target import TargetOptions
from dynashift.tombstones import finish_backfill as _finish_backfill
from dynashift.workflow.control import LagStatus, ReplicationControl

log = logging.getLogger("dynashift.workflow")

#: Above this many segments the Map states run as Distributed Maps (child executions), so no
#: single execution history approaches the 25,000-event quota (see docs/workflow.md).
DISTRIBUTED_THRESHOLD = 40


# --- models that travel in the state machine -------------------------------------------------


class WorkflowSettings(BaseModel):
    """How the workflow runs (not what it migrates)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    #: Seconds between polls of the target, the stream and the replication lag.
    poll_seconds: int = Field(default=5, ge=0, le=3600)
    #: Map MaxConcurrency: segment workers running at once.
    max_concurrency: int = Field(default=10, ge=1, le=1000)
    #: Wait for an operator's approval (task token) after READY, then cut over.
    approval: bool = False
    #: After READY, drain the stream and stop the replicator (without approval).
    cutover: bool = False
    #: How long to wait for the replicator to catch up before the readiness checklist.
    catchup_timeout_seconds: float = Field(default=900.0, gt=0)
    #: Verification lookup mode (see docs/verify.md).
    verify_mode: Literal["auto", "batch", "merge"] = "auto"
    #: Segment count above which Map states run distributed.
    distributed_threshold: int = Field(default=DISTRIBUTED_THRESHOLD, ge=1)


class WorkflowInput(BaseModel):
    """The execution input of the migration state machine."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    spec: MigrationSpec
    target_options: TargetOptions = Field(default_factory=TargetOptions)
    settings: WorkflowSettings = Field(default_factory=WorkflowSettings)


class StepEvent(BaseModel):
    """What every Task receives: the spec and the settings (more fields per step below)."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    spec: MigrationSpec
    settings: WorkflowSettings = Field(default_factory=WorkflowSettings)


class ValidateEvent(StepEvent):
    target_options: TargetOptions = Field(default_factory=TargetOptions)


class PrepareTargetEvent(StepEvent):
    target_options: TargetOptions = Field(default_factory=TargetOptions)
    action: Literal["start", "poll"]


class StreamEvent(StepEvent):
    action: Literal["enable", "poll"]


class ReplicationEvent(StepEvent):
    action: Literal["start", "start_after_backfill", "lag", "drain", "stop"]
    stream_arn: str | None = None
    since: datetime | None = None


class SegmentEvent(StepEvent):
    segment: int = Field(ge=0)
    cursor: dict[str, Any] | None = None


class ApprovalEvent(StepEvent):
    task_token: str = Field(min_length=1)


class ReportEvent(StepEvent):
    outcome: Literal["READY", "NOT_READY", "FAILED", "REJECTED"]
    failure: dict[str, Any] | None = None


class ValidationResult(BaseModel):
    source: str
    target: str
    target_action: str
    stream: dict[str, Any]
    warnings: list[str] = Field(default_factory=list)


class PlanResult(BaseModel):
    segments: list[int]
    count: int
    distributed: bool


class StepResult(BaseModel):
    """A small free-form result (the ASL reads only the fields it names)."""

    model_config = ConfigDict(extra="allow")


# --- helpers ---------------------------------------------------------------------------------


def state_store(spec: MigrationSpec) -> StateStore:
    """The state store of a migration, on the spec's state table."""
    return StateStore(spec.state.clients().dynamodb(), spec.state.name, spec.migration_id)


def _existing_state(spec: MigrationSpec) -> StateStore | None:
    client = spec.state.clients().dynamodb()
    if not StateStore.table_exists(client, spec.state.name):
        return None
    return StateStore(client, spec.state.name, spec.migration_id)


def _dump(model: Any) -> dict[str, Any]:
    if isinstance(model, BaseModel):
        return model.model_dump(mode="json")
    if hasattr(model, "__dataclass_fields__"):
        from dataclasses import asdict

        return asdict(model)
    return dict(model)


# --- steps -----------------------------------------------------------------------------------


def validate(
    event: ValidateEvent, *, stack: dict[str, str | None] | None = None
) -> ValidationResult:
    """Read-only checks before anything is written: source exists, target creatable or
    compatible (and safe), stream usable, segment count unchanged on a resume.

    `stack` (in AWS): the state table, migration id and target table the stack was deployed
    for; the input must name the same ones.
    """
    from dynashift.stream import check_stream
    from dynashift.target import check_target

    spec = event.spec
    for field, value in (
        ("spec.state.name", spec.state.name),
        ("spec.migration_id", spec.migration_id),
        ("spec.target.name", spec.target.name),
    ):
        expected = (stack or {}).get(field)
        if expected and expected != value:
            raise BadInputError(f"{field}: {value!r} is not this stack's {expected!r}")
    state = _existing_state(spec)
    check = check_target(spec.source, spec.target, event.target_options, state)
    stream = check_stream(spec.source, spec.replace_stream)
    if state is not None:
        meta = state.get_meta() or {}
        recorded = meta.get("segments")
        if recorded is not None and int(recorded) != spec.segments:
            raise BadInputError(
                f"--segments {spec.segments}: migration {spec.migration_id} was started with "
                f"{recorded} segments; resume it with the same count"
            )
    return ValidationResult(
        source=spec.source.display(),
        target=spec.target.display(),
        target_action=str(getattr(check, "action", "")),
        stream=_dump(stream),
        warnings=list(getattr(check, "warnings", []) or []),
    )


def prepare_target(event: PrepareTargetEvent) -> dict[str, Any]:
    """Create the target (or verify it) and, on later polls, apply its remaining settings."""
    from dynashift.target import poll_target, start_prepare_target

    spec = event.spec
    state = state_store(spec)
    if event.action == "start":
        result = start_prepare_target(spec.source, spec.target, event.target_options, state)
    else:
        created = bool((state.get_meta() or {}).get("target_created"))
        result = poll_target(spec.source, spec.target, event.target_options, created=created)
    return _dump(result)


def source_stream(event: StreamEvent) -> dict[str, Any]:
    """Enable the source stream (NEW_AND_OLD_IMAGES) or poll it until it is ENABLED."""
    from dynashift.stream import enable_stream, poll_stream

    spec = event.spec
    status = (
        enable_stream(spec.source, spec.replace_stream)
        if event.action == "enable"
        else poll_stream(spec.source, spec.replace_stream)
    )
    data = _dump(status)
    if data.get("ready") and data.get("arn"):
        state_store(spec).put_meta(stream_arn=data["arn"])
    return data


def _streams(spec: MigrationSpec) -> Any:
    """The source's DynamoDB Streams client (one place, so a test can hand in a fake stream)."""
    return spec.source.clients().streams()


def replication_problem(state: StateStore) -> str | None:
    """Why replication cannot make the target whole (recorded when the replicator was not
    started), or None."""
    problem = (state.get_meta() or {}).get("replication_problem")
    return str(problem) if problem else None


def _replay_retention(spec: MigrationSpec, state: StateStore, stream_arn: str) -> str | None:
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
    return retention_gap(_streams(spec), stream_arn, float(started))


def replication(event: ReplicationEvent, control: ReplicationControl) -> dict[str, Any]:
    """Start the replicator, measure its lag, drain it, or stop it."""
    from dynashift.workflow.control import reset_drain

    spec = event.spec
    if event.action in ("start", "start_after_backfill"):
        if not event.stream_arn:
            raise BadInputError("stream_arn: required to start the replicator")
        state = state_store(spec)
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
                gap = _replay_retention(spec, state, event.stream_arn)
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
        if state.phase() is None:
            state.put_meta(phase=PHASE_BACKFILL, stream_arn=event.stream_arn)
        return {"started": True, **control.start(spec, event.stream_arn)}
    if event.action == "stop":
        return {"stopped": True, **control.stop(spec)}
    problem = replication_problem(state_store(spec))
    if problem:
        # No replicator runs: nothing to wait for; the checklist reports the problem.
        return LagStatus(caught_up=False, give_up=True, detail=problem).model_dump(mode="json")
    measure = control.drain if event.action == "drain" else control.lag
    status: LagStatus = measure(spec, event.since)
    if not status.caught_up and event.since is not None and event.action == "lag":
        waited = time.time() - event.since.timestamp()
        if waited > event.settings.catchup_timeout_seconds:
            status = status.model_copy(update={"give_up": True})
    return status.model_dump(mode="json")


def plan_segments(event: StepEvent) -> PlanResult:
    """Record the segment count (a resume must keep it) and list the segments for the Map."""
    spec = event.spec
    state = state_store(spec)
    meta = state.get_meta() or {}
    recorded = meta.get("segments")
    if recorded is not None and int(recorded) != spec.segments:
        raise BadInputError(
            f"segments: migration {spec.migration_id} was started with {recorded} segments"
        )
    if recorded is None:
        state.put_meta(segments=spec.segments)
    if "backfill_started" not in meta:
        state.put_meta(backfill_started=time.time())
    return PlanResult(
        segments=list(range(spec.segments)),
        count=spec.segments,
        distributed=spec.segments > event.settings.distributed_threshold,
    )


def _limiter(spec: MigrationSpec, settings: WorkflowSettings) -> RateLimiter | None:
    if spec.max_write_rate is None:
        return None
    # Each worker invocation gets its share of the migration's cap.
    workers = max(1, min(settings.max_concurrency, spec.segments))
    return RateLimiter(spec.max_write_rate / workers)


def backfill_segment(event: SegmentEvent, *, limiter: RateLimiter | None = None) -> SegmentResult:
    """One worker invocation: copy a segment until done or the budget is spent."""
    spec = event.spec
    return run_segment(
        spec,
        event.segment,
        state=state_store(spec),
        budget_seconds=spec.worker_budget_seconds,
        cursor=event.cursor,
        limiter=limiter or _limiter(spec, event.settings),
    )


def finish_backfill(event: StepEvent) -> dict[str, Any]:
    """Switch the replicator to plain deletes and remove every registered tombstone (I5)."""
    spec = event.spec
    state = state_store(spec)
    target_client = spec.target.clients().dynamodb()
    result = _dump(_finish_backfill(target_client, spec.target.name, state))
    if "backfill_finished" not in (state.get_meta() or {}):
        state.put_meta(backfill_finished=time.time())
    return result


def verify_segment(event: SegmentEvent) -> dict[str, Any]:
    """Compare one segment of the source with the target (resumable with a cursor); the
    result, with its suspect keys, is checkpointed in the state store."""
    from dynashift.verify import verify_segment as _verify

    spec = event.spec
    result = _verify(
        spec,
        event.segment,
        mode=event.settings.verify_mode,
        cursor=event.cursor,
        budget_seconds=spec.worker_budget_seconds,
        state=state_store(spec),
    )
    return _dump(result)


def recheck(event: StepEvent, control: ReplicationControl) -> dict[str, Any]:
    """Re-read every suspect key from both sides once the replicator has applied everything
    written before the recheck started; only keys that still differ are divergent. A key the
    target holds an image of that the stream carried during a round is in sync (it settles
    under steady writes); those images are read from the stream with the progress walk's code.
    """
    from dynashift.replication_progress import saved_walks, window_images
    from dynashift.verify import recheck_migration

    spec = event.spec
    state = state_store(spec)
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
                _streams(spec),
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
    return _dump(
        recheck_migration(spec, state=state, caught_up=caught_up, images=images, poll=poll)
    )


def readiness(event: StepEvent, control: ReplicationControl) -> dict[str, Any]:
    """The readiness checklist and verdict; saved in the state store."""
    from dynashift.readiness import gather_readiness, save_report
    from dynashift.verify import verification_summary

    spec = event.spec
    state = state_store(spec)
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
    )
    save_report(state, report)
    return {**report.to_json(), "ready": report.ready}


def phase_timings(spec: MigrationSpec, state: StateStore) -> list[Any]:
    """Backfill and verification timings (for the report's timeline and items/s)."""
    from dynashift.readiness import PhaseTiming
    from dynashift.verify import load_verify_results

    meta = state.get_meta() or {}
    phases = []
    copied = sum(s.counters.get("scanned", 0) for s in state.segments())
    phases.append(
        PhaseTiming(
            name="backfill",
            started=meta.get("backfill_started"),
            ended=meta.get("backfill_finished"),
            items=copied,
        )
    )
    results = [r for r in load_verify_results(state) if r.segment < spec.segments]
    if results:
        ends = [r.finished_at for r in results if r.finished_at]
        phases.append(
            PhaseTiming(
                name="verification",
                started=min(r.started_at for r in results),
                ended=max(ends) if len(ends) == len(results) else None,
                items=sum(r.scanned_source for r in results),
            )
        )
    return phases


def request_approval(
    event: ApprovalEvent, *, sns_client: Any = None, topic: str | None = None
) -> dict[str, Any]:
    """Store the task token for `dynashift approve` and tell the operators."""
    from dynashift.readiness import save_approval_token

    spec = event.spec
    state = state_store(spec)
    save_approval_token(state, event.task_token)
    state.put_meta(awaiting_approval=True)
    if sns_client is not None and topic:
        sns_client.publish(
            TopicArn=topic,
            Subject=f"dynashift {spec.migration_id}: approval requested"[:100],
            Message=f"Migration {spec.migration_id} is READY and waits for approval: "
            f"dynashift approve --execution <execution ARN>",
        )
    return {"awaiting_approval": True}


def report(
    event: ReportEvent, *, sns_client: Any = None, topic: str | None = None
) -> dict[str, Any]:
    """The final word of an execution: the saved readiness report plus the outcome.

    For REJECTED input nothing is written (validation failed before anything was created).
    """
    spec = event.spec
    outcome = event.outcome
    failure = event.failure or {}
    data: dict[str, Any] = {
        "migration_id": spec.migration_id,
        "source": spec.source.display(),
        "target": spec.target.display(),
        "outcome": outcome,
        "finished_at": datetime.now(UTC).isoformat(),
    }
    if failure:
        data["error"] = failure.get("Error")
        data["cause"] = _cause_text(failure.get("Cause"))
    if outcome != "REJECTED":
        state = _existing_state(spec)
        if state is not None:
            saved = state.report()
            if saved and outcome in ("READY", "NOT_READY"):
                data["readiness"] = saved
            state.put_meta(outcome=outcome, finished=time.time(), **_error_meta(data))
    if sns_client is not None and topic:
        message = data.get("cause") or data.get("readiness", {}).get("verdict") or outcome
        sns_client.publish(
            TopicArn=topic,
            Subject=f"dynashift {spec.migration_id}: {outcome}"[:100],
            Message=str(message)[:250_000],
        )
    log.info("migration %s finished: %s", spec.migration_id, outcome)
    return data


def _error_meta(data: dict[str, Any]) -> dict[str, Any]:
    return {k: data[k] for k in ("error", "cause") if data.get(k)}


def _cause_text(cause: Any) -> str | None:
    """A Lambda error's Cause is JSON text with errorMessage; keep the message only."""
    if cause is None:
        return None
    import json

    try:
        parsed = json.loads(cause) if isinstance(cause, str) else cause
    except ValueError:
        return str(cause)
    if isinstance(parsed, dict):
        return str(parsed.get("errorMessage") or parsed)
    return str(parsed)


def error_payload(exc: BaseException) -> dict[str, Any]:
    """The Lambda error shape for an exception (errorType is what the ASL matches)."""
    message = exc.message if isinstance(exc, DynashiftError) else f"{type(exc).__name__}: {exc}"
    return {"errorType": type(exc).__name__, "errorMessage": message}


def describe_source_size(spec: MigrationSpec) -> tuple[int, int]:
    """(ItemCount, TableSizeBytes) of the source, as DescribeTable reports them."""
    desc = describe_table(spec.source.clients().dynamodb(), spec.source.name, "source table")
    return int(desc.get("ItemCount", 0)), int(desc.get("TableSizeBytes", 0))
