"""The types the workflow's modules share: what travels in the state machine and what the steps
need from a replicator.

`workflow/steps.py` (the Task states), `workflow/control.py` (the replicator control) and the
runners import these from here, so neither of the first two imports the other's types; both
`steps` and `control` re-export them for existing importers.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field

from dynashift.models import MigrationSpec
from dynashift.plan import MAX_IN_FLIGHT
from dynashift.target import TargetOptions

#: Step Functions' history quota per execution.
HISTORY_EVENTS_QUOTA = 25_000
#: Above this many estimated history events of the two segment loops, the Map states run as
#: Distributed Maps (each segment's loop in a child execution with its own history). Half the
#: quota: the rest is left to retries and the poll loops (target, stream, lag, drain).
DISTRIBUTED_THRESHOLD = HISTORY_EVENTS_QUOTA // 2


# --- what the steps need from a replicator --------------------------------------------------


class LagStatus(BaseModel):
    """How far the replicator is behind the source stream."""

    #: Every record written to the stream before `since` (or before now) has been applied.
    caught_up: bool
    #: The caller waited long enough; go on and let the readiness checklist report the lag.
    give_up: bool = False
    records_behind: int | None = None
    age_seconds: float | None = None
    #: Records the replicator could not apply.
    failed_records: int = 0
    #: Messages on the replicator's dead-letter queue (None: no DLQ, a local run).
    dlq_messages: int | None = None
    detail: str = ""


class ReplicationControl(Protocol):
    """What the workflow needs from a replicator, wherever it runs."""

    def start(self, spec: MigrationSpec, stream_arn: str) -> dict[str, Any]:
        """Start applying the stream from TRIM_HORIZON (or the checkpoints). Idempotent."""
        ...

    def lag(self, spec: MigrationSpec, since: datetime | None = None) -> LagStatus:
        """Whether everything written before `since` (default: now) has been applied."""
        ...

    def drain(self, spec: MigrationSpec, since: datetime | None = None) -> LagStatus:
        """Like `lag`, but may block a while to apply the remaining records."""
        ...

    def stop(self, spec: MigrationSpec) -> dict[str, Any]:
        """Stop applying the stream. Idempotent."""
        ...


# --- models that travel in the state machine -------------------------------------------------


class WorkflowSettings(BaseModel):
    """How the workflow runs (not what it migrates)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    #: Seconds between polls of the target, the stream and the replication lag.
    poll_seconds: int = Field(default=5, ge=0, le=3600)
    #: Seconds between polls of the export strategy's export (exports take minutes in AWS).
    export_poll_seconds: int = Field(default=60, ge=0, le=3600)
    #: Map MaxConcurrency: segment workers running at once (Validate plans it when the input
    #: leaves it out: `plan.concurrency_plan`).
    max_concurrency: int = Field(default=10, ge=1, le=1000)
    #: Conditional puts one backfill worker keeps in flight (None: planned by Validate).
    max_in_flight: int | None = Field(default=None, ge=1, le=MAX_IN_FLIGHT)
    #: Wait for an operator's approval (task token) after READY, then cut over.
    approval: bool = False
    #: After READY, drain the stream and stop the replicator (without approval).
    cutover: bool = False
    #: How long to wait for the replicator to catch up before the readiness checklist.
    catchup_timeout_seconds: float = Field(default=900.0, gt=0)
    #: Verification lookup mode (see docs/verify.md).
    verify_mode: Literal["auto", "batch", "merge"] = "auto"
    #: Estimated history events of the segment loops above which the Maps run distributed
    #: (docs/limits.md; 1: always distributed).
    distributed_threshold: int = Field(default=DISTRIBUTED_THRESHOLD, ge=1)
    #: How long the approval step waits for a decision (TimeoutSecondsPath); default 7 days.
    approval_timeout_seconds: int = Field(default=7 * 24 * 3600, ge=1, le=365 * 24 * 3600)
    #: An approval given longer than this after the readiness checklist re-runs the checklist
    #: before the cutover.
    approval_max_age_seconds: int = Field(default=3600, ge=0)


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
    #: `replace_stream` is read from here (TargetOptions is its one home).
    target_options: TargetOptions = Field(default_factory=TargetOptions)
    action: Literal["enable", "poll"]


class ReplicationEvent(StepEvent):
    action: Literal["start", "start_after_backfill", "lag", "drain", "stop"]
    stream_arn: str | None = None
    since: datetime | None = None


class SegmentEvent(StepEvent):
    segment: int = Field(ge=0)
    cursor: dict[str, Any] | None = None


class ExportEvent(StepEvent):
    """The export strategy's export steps (one function, an action per state)."""

    action: Literal["start", "poll", "check_time", "manifest"]


class ExportFileEvent(StepEvent):
    """One loader invocation: a data file of the export (its index in the manifest)."""

    file: int = Field(ge=0)
    cursor: dict[str, Any] | None = None


class ExportProgress(BaseModel):
    """The export's status (start and poll): `done` once COMPLETED."""

    arn: str
    status: str
    done: bool
    item_count: int | None = None


class ExportTimeCheck(BaseModel):
    """The export's point in time and the enabling of the stream it must follow (I2)."""

    export_time: str
    stream_enabled: str


class ExportFileResult(BaseModel):
    """One loader invocation: its cursor {file, line, done} (the state store keeps it too)."""

    cursor: dict[str, Any]
    done: bool


class ExportFilesResult(BaseModel):
    """The export's data files for the load Map (indices into the recorded manifest)."""

    files: list[int]
    count: int
    distributed: bool
    items: int = 0


class ApprovalEvent(StepEvent):
    task_token: str = Field(min_length=1)
    #: The waiting execution (`$$.Execution.Id`), named in the notification and checked by the
    #: decision function.
    execution_arn: str | None = None


class ReadinessEvent(StepEvent):
    #: After the approval: keep a READY checklist saved at most this long ago, run it again
    #: otherwise (None: always run it).
    max_age_seconds: int | None = Field(default=None, ge=0)


class ReportEvent(BaseModel):
    """What the report states send: the spec (READY / NOT READY) or, on the failure paths that
    any state (Validate included) reaches, the whole state as `input` with `failure`."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    spec: MigrationSpec | None = None
    settings: WorkflowSettings = Field(default_factory=WorkflowSettings)
    outcome: Literal["READY", "NOT_READY", "FAILED", "REJECTED"]
    failure: dict[str, Any] | None = None
    #: The state at the failure: the normalised input, or the raw console input when Validate
    #: rejected it (read leniently: it may be what was wrong).
    input: dict[str, Any] | None = None


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
    #: The segment numbers the verification Maps iterate: the backfill's, or the sampled
    #: key-space segments of a sampled verification (`dynashift.sampling`).
    verify_segments: list[int] = Field(default_factory=list)
    #: Estimated worker invocations of the backfill and verification loops together.
    invocations: int = 0
    #: Estimated history events of those loops if the Maps ran inline.
    history_events: int = 0


class LoopEstimate(BaseModel):
    """What the segment loops of a table will cost (docs/limits.md)."""

    segments: int
    #: Segments verified (the sampled ones when sampled, else `segments`).
    verify_segments: int = 0
    backfill_invocations: int
    verify_invocations: int
    invocations: int
    history_events: int
    distributed: bool


class FinishResult(BaseModel):
    """One turn of the "Finish backfill" loop (counts of this invocation)."""

    done: bool
    registered: int = 0
    removed: int = 0
    recreated: int = 0


class VerifyOutput(BaseModel):
    """What a verification worker returns to the state machine: its cursor and counts. The
    suspects (keys) stay in the segment's checkpoint in the state store."""

    segment: int
    done: bool
    cursor: dict[str, Any]
    counts: dict[str, int]
    suspects: int = 0


class ReadinessOutput(BaseModel):
    """The verdict for the Choice; the report itself is saved in the state store."""

    ready: bool
    verdict: str
    #: Names of the failing required checks (a fixed, short list).
    failing: list[str] = Field(default_factory=list)
    #: False when a fresh saved checklist was kept (`max_age_seconds`).
    rechecked: bool = True
