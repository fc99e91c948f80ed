"""A whole migration run locally: validate, execute the state machine, report, follow.

`run_local_migration` is what `dynashift migrate` and `dynashift demo` call. It validates the
input with the same step the state machine starts with (so bad input stops before anything is
created), creates the state table next to the target, starts the local replicator, executes
`statemachine/migration.asl.json` on the private interpreter and follows its history to show a
line per checklist state and progress bars for the segment phases. Re-running the same
migration (same tables, so the same migration id and state table) resumes from the state store.
"""

from __future__ import annotations

import hashlib
import logging
import re
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TextIO

from dynashift.errors import BadInputError, DynashiftError, RuntimeFailure
from dynashift.models import MigrationSpec, TableLocation
from dynashift.progress import Progress
from dynashift.state import StateStore, state_table_name
from dynashift.workflow.local import LocalReplication
from dynashift.workflow.runner import ExecutionOutcome, LocalStepFunctions
from dynashift.workflow.steps import ValidateEvent, WorkflowInput, state_store, validate

log = logging.getLogger("dynashift.workflow")

#: Error names of the BadInputError family (a rejected input ends the run with exit 2).
BAD_INPUT_ERRORS = frozenset(
    {
        "BadInputError",
        "InvalidTableRefError",
        "TableNotFoundError",
        "IncompatibleSchemaError",
        "UnsafeTargetError",
        "StreamUnavailableError",
    }
)

#: States whose first entry is announced as a phase (Wait / Choice / polls are not).
QUIET_TYPES = ("Wait", "Choice", "Pass")


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


@dataclass
class MigrationRun:
    """The outcome of a local run."""

    exit_code: int
    outcome: ExecutionOutcome | None
    report: dict[str, Any] | None = None
    summary: str = ""
    followed_records: int = 0
    invocations: dict[str, int] = field(default_factory=dict)


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
        if name.removesuffix(" (distributed)") in ("Copy segment", "Verify segment"):
            return
        self.announced.add(name)
        self._close_bars()
        self.current = name
        self.runner.say(f"> {name}")
        if name.startswith("Backfill segments"):
            self._open("backfill", self.runner.source_items)
        elif name.startswith("Verify segments"):
            self._open("verify", self.runner.source_items)

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
        now = time.monotonic()
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
    ) -> None:
        self.input = workflow_input
        self.on_state = on_state
        self.spec = workflow_input.spec
        self.follow = follow
        self.approve = approve
        self.out = out or sys.stdout
        self.err = err or sys.stderr
        self.stop = stop or threading.Event()
        self.timeout = timeout
        self.control = LocalReplication(drain_timeout=drain_timeout)
        self.source_items: int | None = None
        self.sfn: LocalStepFunctions | None = None
        self._approved = False

    def say(self, text: str) -> None:
        print(text, file=self.err, flush=True)

    # --- progress sources ----------------------------------------------------------------------

    def phase_count(self, label: str) -> int:
        state = state_store(self.spec)
        if label == "backfill":
            return sum(s.counters.get("scanned", 0) for s in state.segments())
        from dynashift.verify import load_verify_results

        return sum(r.scanned_source for r in load_verify_results(state))

    def check_approval(self) -> None:
        if self._approved or self.sfn is None or not self.input.settings.approval:
            return
        from dynashift.readiness import load_approval_token

        token = load_approval_token(state_store(self.spec))
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
            )
        )
        for warning in validation.warnings:
            self.say(f"warning: {warning}")
        client = self.spec.state.clients().dynamodb()
        StateStore.ensure_table(client, self.spec.state.name)
        try:
            from dynashift.tables import describe_table

            desc = describe_table(self.spec.source.clients().dynamodb(), self.spec.source.name)
            self.source_items = int(desc.get("ItemCount", 0)) or None
        except DynashiftError:
            self.source_items = None

    def run(self) -> MigrationRun:
        # The workers' pools are sized for their in-flight requests; a full pool only means a
        # connection is not reused, which is not worth a warning per request.
        logging.getLogger("urllib3.connectionpool").setLevel(logging.ERROR)
        self.prepare()
        self.say(
            f"migrating {self.spec.source.display()} -> {self.spec.target.display()} "
            f"(migration {self.spec.migration_id}, {self.spec.segments} segments)"
        )
        watcher = _Watcher(self)
        sfn = LocalStepFunctions(self.control)
        outcome: ExecutionOutcome | None = None
        try:
            with sfn:
                self.sfn = sfn
                arn = sfn.start_execution(self.input.model_dump(mode="json"))
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
                    self.control.stop()
                    raise
                finally:
                    watcher.close()
                    self.sfn = None
                invocations = dict(sfn_invocations(sfn))
        except BaseException:
            self.control.stop()
            raise
        return self._finish(outcome, invocations)

    def _poll(self, watcher: _Watcher) -> Callable[[], None]:
        def poll() -> None:
            if self.stop.is_set():
                raise KeyboardInterrupt
            watcher.on_poll()

        return poll

    def _finish(self, outcome: ExecutionOutcome, invocations: dict[str, int]) -> MigrationRun:
        state = state_store(self.spec)
        report = state.report()
        if outcome.status == "SUCCEEDED":
            followed = 0
            if self.follow:
                followed = self._follow()
            else:
                self.control.stop()
            summary = report_summary(report) if report else "READY"
            code = 0 if summary == "READY" else 1
            return MigrationRun(code, outcome, report, summary, followed, invocations)
        self.control.stop()
        if outcome.error == "NotReady":
            summary = report_summary(report) if report else "NOT READY"
            return MigrationRun(1, outcome, report, summary, 0, invocations)
        error, message = failure_of(outcome)
        if outcome.error == "InputRejected" or error in BAD_INPUT_ERRORS:
            raise BadInputError(message or error)
        raise RuntimeFailure(f"migration failed ({error}): {message or 'no cause given'}")

    def _follow(self) -> int:
        self.say("READY - following the source stream; press Ctrl-C to stop (changes are drained)")
        try:
            while not self.stop.wait(0.5):
                if not self.control.running:
                    raise RuntimeFailure("the local replicator stopped while following")
        except KeyboardInterrupt:
            pass
        self.say("stopping: applying every change written before the signal...")
        applied = self.control.drain_and_stop()
        self.say(f"drained: {applied} stream records applied")
        return applied


def sfn_invocations(sfn: LocalStepFunctions) -> dict[str, int]:
    from dynashift.workflow.runner import _current

    dispatcher = _current.get("dispatcher")
    return dict(dispatcher.invocations) if dispatcher else {}


def report_summary(report: dict[str, Any]) -> str:
    from dynashift.readiness import ReadinessReport

    return ReadinessReport.model_validate(report).summary_line()


def report_text(report: dict[str, Any]) -> str:
    from dynashift.readiness import ReadinessReport

    return ReadinessReport.model_validate(report).to_text()


def failure_of(outcome: ExecutionOutcome) -> tuple[str, str | None]:
    """(error name, message) of a failed execution.

    The definition's Fail states carry `"<error>: <cause>"` (States.Format of the caught error),
    where a Lambda error's cause is JSON with `errorMessage`.
    """
    error = outcome.error or outcome.status
    cause = outcome.cause
    if outcome.error in ("InputRejected", "MigrationFailed") and cause and ": " in cause:
        error, cause = cause.split(": ", 1)
    if not cause:
        return error, None
    import json

    try:
        parsed = json.loads(cause)
    except ValueError:
        return error, cause
    if isinstance(parsed, dict):
        return error, str(parsed.get("errorMessage") or parsed)
    return error, str(parsed)


def plan_segment_count(spec: MigrationSpec, requested: int | None, minimum: int = 4) -> int:
    """The segment count of a run: the one recorded by an earlier run of this migration (a
    resume must keep it; a different `requested` count is refused by validation), else the
    requested one, else planned from the source's size (at least `minimum`)."""
    client = spec.state.clients().dynamodb()
    if StateStore.table_exists(client, spec.state.name):
        recorded = (state_store(spec).get_meta() or {}).get("segments")
        if recorded is not None and requested is None:
            return int(recorded)
    if requested is not None:
        return requested
    from dynashift.backfill import plan_segments
    from dynashift.tables import describe_table

    desc = describe_table(spec.source.clients().dynamodb(), spec.source.name, "source table")
    planned = plan_segments(int(desc.get("ItemCount", 0)), int(desc.get("TableSizeBytes", 0)))
    return max(minimum, planned)


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
        import importlib

        # The HTML page is issue 7's (dynashift.report_html); refuse clearly until it exists.
        try:
            report_html: Any = importlib.import_module("dynashift.report_html")
        except ModuleNotFoundError:
            raise BadInputError("--html: HTML reports are not available in this build") from None
        report_html.write_html(html_path, parsed)


def run_local_migration(workflow_input: WorkflowInput, **kwargs: Any) -> MigrationRun:
    """Run a migration locally (see `MigrationRunner`)."""
    return MigrationRunner(workflow_input, **kwargs).run()
