"""A whole migration run locally: validate, execute the state machine, report, follow.

Size: one module because a local run is one sequence — validate, execute, follow the
history with its progress display, report — that the CLI calls once.

`run_local_migration` is what `dynashift migrate` and `dynashift demo` call. It validates the
input with the same step the state machine starts with (so bad input stops before anything is
created), creates the state table next to the target, brings up the template's stack on the
private server with the run's stack parameters (`stack_parameters`), starts an execution with
the operator's input (`execution_input`) and follows its history to show a line per checklist
state and progress bars for the segment phases. The replicator is the stack's replicator
function behind the event source mapping the workflow creates, as in AWS. Re-running the same
migration (same tables, so the same migration id and state table) resumes from the state store.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import re
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

from dynashift.clock import SYSTEM_CLOCK, Clock
from dynashift.errors import BadInputError, DynashiftError, RuntimeFailure, cause_message
from dynashift.models import PROCESS_CLIENTS, Clients, MigrationSpec, TableLocation
from dynashift.plan import ConcurrencyPlan
from dynashift.progress import Progress
from dynashift.state import StateStore, existing_state_store, state_table_name
from dynashift.tables import describe_table
from dynashift.target import TargetOptions
from dynashift.workflow.control import EventSourceMappingControl
from dynashift.workflow.definition import BAD_INPUT
from dynashift.workflow.runner import REGION, ExecutionOutcome, LocalStepFunctions
from dynashift.workflow.steps import ValidateEvent, WorkflowInput, state_store, validate

log = logging.getLogger("dynashift.workflow")

#: Error names of the BadInputError family (a rejected input ends the run with exit 2): the
#: ones the definition routes to "Input rejected".
BAD_INPUT_ERRORS = frozenset(BAD_INPUT)

#: States whose first entry is announced as a phase (Wait / Choice / polls are not).
QUIET_TYPES = ("Wait", "Choice", "Pass")
#: The loops' worker states: entered once per invocation, shown by the progress bars instead.
WORKER_STATES = ("Copy segment", "Verify segment", "Verify copied segment", "Load export file")


def migration_id_for(source: TableLocation, target: TableLocation) -> str:
    """A stable id for (source, target): re-running the same migration finds its state."""
    text = "|".join(
        str(x)
        for x in (
            source.name,
            source.side.region,
            source.side.endpoint_url,
            target.name,
            target.side.region,
            target.side.endpoint_url,
        )
    )
    digest = hashlib.sha256(text.encode()).hexdigest()[:8]
    stem = re.sub(r"[^A-Za-z0-9_-]", "-", f"{source.name}-to-{target.name}")[:50]
    return f"{stem}-{digest}"


def state_location(migration_id: str, target: TableLocation) -> TableLocation:
    """Locally the state table lives next to the target (same account, region, endpoint)."""
    return TableLocation(name=state_table_name(migration_id), side=target.side)


def stack_parameters(spec: MigrationSpec) -> dict[str, str]:
    """The template parameters a stack deployed for this migration would be given."""
    target = spec.target.side
    return {
        "MigrationId": spec.migration_id,
        "SourceTableName": spec.source.name,
        "TargetTableName": spec.target.name,
        "TargetRegion": target.region or "",
        "SourceRoleArn": spec.source.side.role_arn or "",
        "TargetRoleArn": target.role_arn or "",
        "TargetExternalId": target.external_id or "",
        "TargetEndpointUrl": target.endpoint_url or "",
        "StateEndpointUrl": spec.state.side.endpoint_url or "",
        "VersionAttribute": spec.version_attribute or "",
        "SkipTtlDeletes": "true" if spec.skip_ttl_deletes else "false",
        "ExportBucketName": spec.export.bucket if spec.export else "",
        "ExportPrefix": spec.export.prefix if spec.export else "",
        "ExportKmsKeyArn": _key_arn(spec.export.kms_key_id if spec.export else None),
    }


def _key_arn(key: str | None) -> str:
    """A KMS key given as an ARN names the key the policies allow (an id or alias: none)."""
    return key if key and key.startswith("arn:") and ":key/" in key else ""


def stack_region(spec: MigrationSpec) -> str:
    """The local stack's region: the state table's (a stack's state table is in its region)."""
    return spec.state.side.region or REGION


def execution_input(workflow_input: WorkflowInput) -> dict[str, Any]:
    """The input an execution is started with: what an operator types in the console — the
    values the flags gave, without the defaults, which the Validate state applies (and returns
    as the input every later state reads), exactly as for an execution started in AWS. The
    run's concurrency (segments, workers, in-flight writes) is always given — the local run
    planned it — so Validate does not plan it again for the deployed runner."""
    data = workflow_input.model_dump(mode="json", exclude_defaults=True)
    settings = workflow_input.settings
    data.setdefault("spec", {})["segments"] = workflow_input.spec.segments
    planned = data.setdefault("settings", {})
    planned["max_concurrency"] = settings.max_concurrency
    if settings.max_in_flight is not None:
        planned["max_in_flight"] = settings.max_in_flight
    return data


def local_stack(
    spec: MigrationSpec, *, clients: Clients = PROCESS_CLIENTS, **kwargs: Any
) -> LocalStepFunctions:
    """The template's stack deployed for `spec`, on a private server (start it with `with`):
    the stack parameters of the migration, the state table next to the target, the event source
    mappings reading the source stream with the source's credentials (from `clients`)."""
    from dynashift.workflow.runner import ACCOUNT_ID

    region = stack_region(spec)
    source_streams = clients(spec.source).streams

    state_arn = f"arn:aws:dynamodb:{region}:{ACCOUNT_ID}:table/{spec.state.name}"
    kwargs.setdefault("streams_for", lambda arn: source_streams())
    if spec.target.side.profile:
        # The replicator writes the target (and the state table beside it) with the target's
        # credentials: its execution role is the target profile, as the stack's would be a
        # role of the target account's reach.
        kwargs.setdefault("role_profiles", {"ReplicatorFunction": spec.target.side.profile})
    return LocalStepFunctions(
        stack_parameters(spec),
        resources={"StateTable": {"Ref": spec.state.name, "Arn": state_arn}},
        region=region,
        **kwargs,
    )


@dataclass
class MigrationRun:
    """The outcome of a local run."""

    exit_code: int
    outcome: ExecutionOutcome | None
    report: dict[str, Any] | None = None
    summary: str = ""
    followed_records: int = 0
    invocations: dict[str, int] = field(default_factory=dict)
    #: Event source mappings the workflow created on the private server, and those it deleted.
    mappings_created: list[str] = field(default_factory=list)
    mappings_deleted: list[str] = field(default_factory=list)


class _Watcher:
    """Turns history events and state store progress into lines and progress bars."""

    def __init__(self, runner: MigrationRunner) -> None:
        self.runner = runner
        self.announced: set[str] = set()
        self.bars: dict[str, Progress] = {}
        self.bar_done: dict[str, int] = {}
        self.current: str | None = None
        self._last_poll = 0.0

    def on_event(self, event: dict[str, Any]) -> None:
        details = event.get("stateEnteredEventDetails")
        kind = str(event.get("type", ""))
        if not details or not kind.endswith("StateEntered"):
            return
        name = str(details.get("name", ""))
        if self.runner.on_state is not None and name not in self.announced:
            self.runner.on_state(name)
        if any(kind.startswith(t) for t in QUIET_TYPES) or name in self.announced:
            return
        worker = name.removesuffix(" (distributed)")
        if worker in WORKER_STATES:
            if worker == "Verify copied segment" and "verify" not in self.bars:
                # Concurrent strategy: segments are verified inside the backfill Map, while
                # others still copy: a second bar beside the backfill's.
                self._open("verify", self.runner.source_items)
            return
        self.announced.add(name)
        self._close_bars()
        self.current = name
        self.runner.say(f"> {name}")
        if name.startswith(("Backfill segments", "Load export files")):
            self._open("backfill", self.runner.source_items)
        elif name.startswith("Verify segments"):
            total, share = self.runner.source_items, self.runner.spec.verify_sample
            # A sampled verification reads about its share of the items.
            self._open("verify", round(total * share) if total and share else total)

    def _open(self, label: str, total: int | None) -> None:
        self.bars[label] = Progress(label, total or None, stream=self.runner.err)
        self.bar_done[label] = 0

    def _close_bars(self) -> None:
        for label, bar in list(self.bars.items()):
            self._refresh(label, bar)
            bar.close()
        self.bars.clear()

    def _refresh(self, label: str, bar: Progress) -> None:
        try:
            done = self.runner.phase_count(label)
        except Exception as exc:  # progress is best effort; the run goes on
            log.debug("progress read failed: %s", exc)
            return
        delta = done - self.bar_done.get(label, 0)
        if delta > 0:
            bar.advance(delta)
            self.bar_done[label] = done

    def on_poll(self) -> None:
        now = self.runner.clock.monotonic()
        if now - self._last_poll < 1.0:
            return
        self._last_poll = now
        for label, bar in self.bars.items():
            self._refresh(label, bar)
        self.runner.check_approval()

    def close(self) -> None:
        self._close_bars()


class MigrationRunner:
    """Runs one migration locally (see module docstring)."""

    def __init__(
        self,
        workflow_input: WorkflowInput,
        *,
        follow: bool = False,
        approve: Callable[[], bool] | None = None,
        out: TextIO | None = None,
        err: TextIO | None = None,
        stop: threading.Event | None = None,
        drain_timeout: float = 300.0,
        timeout: float | None = None,
        on_state: Callable[[str], None] | None = None,
        on_invoke: Callable[[str, dict[str, Any]], None] | None = None,
        template_path: Path | None = None,
        clients: Clients = PROCESS_CLIENTS,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        self.input = workflow_input
        self.clients = clients
        self.clock = clock
        self.on_invoke = on_invoke
        self.template_path = template_path
        self.drain_timeout = drain_timeout
        self.on_state = on_state
        self.spec = workflow_input.spec
        self.follow = follow
        self.approve = approve
        self.out = out or sys.stdout
        self.err = err or sys.stderr
        self.stop = stop or threading.Event()
        self.timeout = timeout
        #: The replication control on the private server (while the stack is up).
        self.control: EventSourceMappingControl | None = None
        self.source_items: int | None = None
        self.sfn: LocalStepFunctions | None = None
        self._approved = False

    def say(self, text: str) -> None:
        print(text, file=self.err, flush=True)

    # --- progress sources ----------------------------------------------------------------------

    def phase_count(self, label: str) -> int:
        state = state_store(self.spec, self.clients)
        if label == "backfill" and self.spec.strategy == "export":
            from dynashift.export_backfill import loaded_items

            return loaded_items(state)
        if label == "backfill":
            return sum(s.counters.get("scanned", 0) for s in state.segments())
        from dynashift.verify import load_verify_results

        return sum(r.scanned_source for r in load_verify_results(state))

    def check_approval(self) -> None:
        if self._approved or self.sfn is None or not self.input.settings.approval:
            return
        from dynashift.approval_token import load_approval_token

        token = load_approval_token(state_store(self.spec, self.clients))
        if not token:
            return
        self._approved = True
        if self.approve is not None and not self.approve():
            self.say("cutover not approved: the migration stays in sync (replication runs)")
            self.sfn.send_task_success(token, {"approved": False})
            return
        self.sfn.send_task_success(token, {"approved": True})

    # --- the run ---------------------------------------------------------------------------------

    def prepare(self) -> None:
        """Validate (read-only) and create the state table. Raises BadInputError."""
        validation = validate(
            ValidateEvent(
                spec=self.spec,
                settings=self.input.settings,
                target_options=self.input.target_options,
            ),
            clients=self.clients,
        )
        for warning in validation.warnings:
            self.say(f"warning: {warning}")
        client = self.clients(self.spec.state).dynamodb()
        StateStore.ensure_table(client, self.spec.state.name)
        try:
            from dynashift.tables import describe_table

            desc = describe_table(self.clients(self.spec.source).dynamodb(), self.spec.source.name)
            self.source_items = int(desc.get("ItemCount", 0)) or None
        except DynashiftError:
            self.source_items = None

    def stack(self) -> LocalStepFunctions:
        """The template's stack for this migration on a private server (not started)."""
        kwargs: dict[str, Any] = {}
        if self.template_path is not None:
            kwargs["template_path"] = self.template_path
        return local_stack(
            self.spec,
            on_invoke=self.on_invoke,
            keep_batches=20,
            clients=self.clients,
            clock=self.clock,
            **kwargs,
        )

    def _control(self, sfn: LocalStepFunctions) -> EventSourceMappingControl:
        """The control the ReplicationFunction uses, for the runner's own drain and stop."""
        stack = sfn.stack
        if stack is None:
            raise RuntimeFailure("the local stack is not started")
        env = sfn.function_environment("ReplicationFunction")
        return EventSourceMappingControl(
            sfn.client("lambda"),
            env.get("DYNASHIFT_REPLICATOR_FUNCTION", ""),
            dlq_arn=env.get("DYNASHIFT_DLQ_ARN"),
            sqs_client=sfn.client("sqs"),
            dlq_url=env.get("DYNASHIFT_DLQ_URL"),
            clients=self.clients,
            clock=self.clock,
        )

    def run(self) -> MigrationRun:
        # The workers' pools are sized for their in-flight requests; a full pool only means a
        # connection is not reused, which is not worth a warning per request.
        logging.getLogger("urllib3.connectionpool").setLevel(logging.ERROR)
        # The private stack starts while the input is validated (nothing of it is visible
        # outside this process; bad input stops it unused).
        stack = self.stack().start_in_background()
        try:
            self.prepare()
        except BaseException:
            stack.stop()
            raise
        self.say(
            f"migrating {self.spec.source.display()} -> {self.spec.target.display()} "
            f"(migration {self.spec.migration_id}, {self.spec.segments} segments, "
            f"strategy {self.spec.strategy})"
        )
        watcher = _Watcher(self)
        with stack as sfn:
            self.control = self._control(sfn)
            self.sfn = sfn
            arn = sfn.start_execution(execution_input(self.input))
            try:
                outcome = sfn.wait(
                    arn,
                    on_event=watcher.on_event,
                    on_poll=self._poll(watcher),
                    timeout=self.timeout,
                )
            except KeyboardInterrupt:
                self.say("interrupted: letting the workers in flight commit their checkpoints")
                budget = self.spec.worker_budget_seconds + 30
                if not sfn.stop_execution(arn, wait=budget):
                    self.say("warning: a worker was still running after its budget")
                raise
            finally:
                watcher.close()
                self.sfn = None
            return self._finish(sfn, outcome)

    def _poll(self, watcher: _Watcher) -> Callable[[], None]:
        def poll() -> None:
            if self.stop.is_set():
                raise KeyboardInterrupt
            watcher.on_poll()

        return poll

    def _finish(self, sfn: LocalStepFunctions, outcome: ExecutionOutcome) -> MigrationRun:
        state = state_store(self.spec, self.clients)
        report = state.report()
        followed = 0
        if outcome.status == "SUCCEEDED" and self.follow:
            followed = self._follow(sfn)
        esm = sfn.esm
        created: list[str] = []
        deleted: list[str] = []
        if esm is not None:
            with contextlib.suppress(Exception):
                esm.sync()
            created, deleted = list(esm.seen), list(esm.deleted)
        invocations = dict(sfn.dispatcher.invocations) if sfn.dispatcher else {}

        def run(code: int, summary: str) -> MigrationRun:
            return MigrationRun(
                code, outcome, report, summary, followed, invocations, created, deleted
            )

        if outcome.status == "SUCCEEDED":
            summary = report_summary(report) if report else "READY"
            # READY, or READY (SAMPLED) when the operator asked for a sampled verification.
            return run(0 if report is None or report_ready(report) else 1, summary)
        if outcome.error == "NotReady":
            return run(1, report_summary(report) if report else "NOT READY")
        error, message = failure_of(outcome)
        if outcome.error == "InputRejected" or error in BAD_INPUT_ERRORS:
            raise BadInputError(message or error)
        if sfn.log_dir is not None:
            sfn.keep_logs = True
            self.say(f"the functions' logs are in {sfn.log_dir}")
        raise RuntimeFailure(f"migration failed ({error}): {message or 'no cause given'}")

    def _follow(self, sfn: LocalStepFunctions) -> int:
        """After READY: keep the replicator's mapping running until SIGINT/SIGTERM, then wait
        until everything written before the signal is applied (the same lag measure as the
        workflow's drain) and delete the mapping."""
        control, esm = self.control, sfn.esm
        if control is None or esm is None:
            raise RuntimeFailure("the local stack has no replicator to follow with")
        self.say("READY - following the source stream; press Ctrl-C to stop (changes are drained)")
        try:
            while not self.stop.wait(0.5):
                esm.sync()
                if not esm.running:
                    raise RuntimeFailure("the replicator's event source mapping stopped")
        except KeyboardInterrupt:
            pass
        since = datetime.fromtimestamp(self.clock.wall(), UTC)
        self.say("stopping: applying every change written before the signal...")
        before = sum(s.records_delivered for s in esm.stats.values())
        deadline = self.clock.monotonic() + self.drain_timeout
        while not control.drain(self.spec, since).caught_up:
            if self.clock.monotonic() > deadline:
                raise RuntimeFailure(
                    f"drain did not finish within {self.drain_timeout:g}s: stream records "
                    "written before the signal are not applied yet"
                )
            self.clock.sleep(0.2)
        control.stop(self.spec)
        esm.sync()
        applied = sum(s.records_delivered for s in esm.stats.values()) - before
        self.say(f"drained: {applied} stream records applied")
        return applied


def report_summary(report: dict[str, Any]) -> str:
    from dynashift.readiness import ReadinessReport

    return ReadinessReport.model_validate(report).summary_line()


def report_ready(report: dict[str, Any]) -> bool:
    from dynashift.readiness import ReadinessReport

    return ReadinessReport.model_validate(report).ready


def failure_of(outcome: ExecutionOutcome) -> tuple[str, str | None]:
    """(error name, message) of a failed execution.

    The definition's Fail states carry `"<error>: <cause>"` (States.Format of the caught error),
    where a Lambda error's cause is JSON with `errorMessage`.
    """
    error = outcome.error or outcome.status
    cause = outcome.cause
    if outcome.error in ("InputRejected", "MigrationFailed") and cause and ": " in cause:
        error, cause = cause.split(": ", 1)
    return error, cause_message(cause or None)


def plan_local_run(
    spec: MigrationSpec,
    target_options: TargetOptions,
    *,
    segments: int | None = None,
    workers: int | None = None,
    in_flight: int | None = None,
    cpus: int | None = None,
    clients: Clients = PROCESS_CLIENTS,
) -> ConcurrencyPlan:
    """Workers, segments and in-flight writes of a local run (`plan.concurrency_plan` with this
    machine's CPUs and the target's endpoint): the explicit values win, a resumed migration
    keeps its recorded segment count. Read-only; raises what validation raises for a missing
    source, an unusable target or a replay the table is too big for (nothing is created)."""
    from dynashift.plan import concurrency_plan, target_capacity
    from dynashift.target import check_target

    state = existing_state_store(spec, clients)
    if state is not None:
        # The one resume rule: a resumed migration keeps its count (a different one is refused).
        segments = state.segment_count(segments)
    source = describe_table(clients(spec.source).dynamodb(), spec.source.name, "source table")
    check = check_target(spec.source, spec.target, target_options, state, clients=clients)
    wcu, warm = target_capacity(check)
    items, size = int(source.get("ItemCount", 0) or 0), int(source.get("TableSizeBytes", 0) or 0)
    if spec.strategy == "replay":
        # The one replay rule (the first backfill invocation applies it too): refused before
        # the target is created or the stream enabled.
        from dynashift.plan import replay_refusal

        reason = replay_refusal(
            items, size, max_write_rate=spec.max_write_rate, target_wcu=wcu or 0
        )
        if reason:
            raise BadInputError(reason)
    if spec.strategy == "export":
        # Validate's export checks (PITR on, bucket reachable), before anything is created.
        from dynashift.workflow.steps import check_export_source

        check_export_source(spec)
    return concurrency_plan(
        items,
        size,
        runner="local",
        provisioned_wcu=wcu,
        warm_wcu=warm,
        max_write_rate=spec.max_write_rate,
        cpus=cpus or os.cpu_count(),
        endpoint_url=spec.target.side.endpoint_url,
        segments=segments,
        workers=workers,
        in_flight=in_flight,
    )


def write_outputs(
    run: MigrationRun,
    *,
    report_path: str | None = None,
    html_path: str | None = None,
    out: TextIO | None = None,
) -> None:
    """Print the checklist (verdict last) and write the --report / --html files."""
    out = out or sys.stdout
    report = run.report
    if report is None:
        print(run.summary or "NOT READY: no readiness report", file=out)
        return
    from dynashift.readiness import ReadinessReport, write_report_file

    parsed = ReadinessReport.model_validate(report)
    if run.followed_records:
        print(f"(after READY, {run.followed_records} more stream records were applied)", file=out)
    print(parsed.to_text(), file=out, flush=True)
    if report_path:
        write_report_file(report_path, parsed)
    if html_path:
        from dynashift.report_html import write_html

        write_html(html_path, parsed)


def run_local_migration(workflow_input: WorkflowInput, **kwargs: Any) -> MigrationRun:
    """Run a migration locally (see `MigrationRunner`)."""
    return MigrationRunner(workflow_input, **kwargs).run()
