"""`dynashift migrate`: run the whole migration workflow locally (the same state machine).

Parses the flags into a `WorkflowInput`, hands it to `dynashift.workflow.migrate`, prints the
readiness checklist with the verdict last, writes `--report` / `--html`, and returns the exit
code: 0 READY, 1 NOT READY, 2 bad input, 3 runtime failure.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from dynashift.cli.common import bounded_int, positive_float, positive_float_at_most
from dynashift.cli.migration_options import (
    add_export_options,
    add_table_options,
    add_target_options,
    export_location_from_args,
    locations_from_args,
    target_options_from_args,
)
from dynashift.errors import BadInputError
from dynashift.models import MigrationSpec
from dynashift.plan import MAX_IN_FLIGHT, ConcurrencyPlan, is_local_endpoint
from dynashift.validation import option_error

if TYPE_CHECKING:
    from dynashift.workflow.steps import WorkflowInput

#: Local defaults: short waits and worker budgets so progress and resumes are fine-grained.
LOCAL_POLL_SECONDS = 1
#: Between polls of an export in AWS (it takes minutes); an emulator's is polled like the rest.
AWS_EXPORT_POLL_SECONDS = 30
LOCAL_WORKER_BUDGET = 180.0


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "migrate",
        help="migrate a live table: create/verify target, replicate, backfill, verify, report",
        description="Run the migration state machine locally: prepare the target, enable the "
        "source stream, replicate it, backfill in parallel segments, verify, and print the "
        "readiness checklist. Exit 0 only when READY. Re-running resumes.",
    )
    add_table_options(parser)
    add_target_options(parser)
    add_export_options(parser)
    group = parser.add_argument_group("migration")
    group.add_argument(
        "--strategy",
        choices=("concurrent", "replay", "export"),
        default="concurrent",
        help="backfill strategy (default concurrent: the replicator runs during the backfill and "
        "every item is a conditional PutItem, safe at any size and into a non-empty target; "
        "replay: BatchWriteItem, then the replicator replays the stream, several times faster "
        "but only allowed when the backfill is estimated well inside the 24 h stream window - "
        "an estimate, so it is opt-in: `dynashift plan` says when it is the better choice; "
        "export: the backfill loads an export of the source to S3 (--export-bucket), reading "
        "none of the source's capacity; needs point-in-time recovery on the source)",
    )
    group.add_argument(
        "--segments",
        type=bounded_int(1, 10_000),
        metavar="N",
        help="parallel scan segments (default: planned from the table size and the workers, at "
        "least 4; a resumed migration keeps its count)",
    )
    group.add_argument(
        "--version-attribute",
        metavar="ATTR",
        help="numeric attribute that orders item versions (backfill never overwrites newer)",
    )
    group.add_argument(
        "--ignore",
        action="append",
        default=[],
        metavar="ATTR",
        help="attribute ignored by verification (repeatable)",
    )
    group.add_argument(
        "--max-write-rate", type=positive_float, metavar="N", help="backfill cap in items/s"
    )
    group.add_argument(
        "--skip-ttl-deletes",
        action="store_true",
        help="do not replicate deletes made by the source's Time to Live",
    )
    group.add_argument(
        "--lag-threshold",
        type=positive_float,
        default=5.0,
        metavar="SECONDS",
        help="replication lag under which the migration may be READY (default 5)",
    )
    group.add_argument(
        "--verify-mode",
        choices=("auto", "batch", "merge"),
        default="auto",
        help="verification lookups: batch reads of the target, or a merged scan (default auto)",
    )
    group.add_argument(
        "--verify-sample",
        type=positive_float_at_most(1, "a fraction of the key space; 1 verifies everything"),
        metavar="FRACTION",
        help="verify a random sample of this fraction of the key space instead of the whole "
        "table (0 < FRACTION <= 1, default 1): the report then states the bound it proves "
        "(with 99.9%% confidence fewer than N divergent partition keys) and the verdict is "
        "READY (SAMPLED), never a proof that the tables are identical",
    )
    run = parser.add_argument_group("run")
    run.add_argument(
        "--follow",
        action="store_true",
        help="after READY keep replicating until SIGINT/SIGTERM, then apply every change "
        "written before the signal and exit 0",
    )
    run.add_argument(
        "--approval",
        action="store_true",
        help="after READY wait for approval, then cut over (drain and stop replication)",
    )
    run.add_argument(
        "--concurrency",
        type=bounded_int(1, 64),
        metavar="N",
        help="segment workers running at once (default: planned from the target's capacity "
        "and this machine's CPUs; `dynashift plan` shows it)",
    )
    run.add_argument(
        "--in-flight",
        type=bounded_int(1, MAX_IN_FLIGHT),
        metavar="N",
        help="conditional puts each worker keeps in flight (default: planned with the workers)",
    )
    run.add_argument(
        "--worker-budget",
        type=positive_float_at_most(840, "a Lambda runs at most 900 s; 60 s are kept as margin"),
        default=LOCAL_WORKER_BUDGET,
        metavar="SECONDS",
        help="seconds a worker runs before handing back a cursor "
        f"(default {LOCAL_WORKER_BUDGET:g})",
    )
    run.add_argument(
        "--poll-seconds",
        type=bounded_int(0, 3600),
        default=LOCAL_POLL_SECONDS,
        metavar="N",
        help=f"wait between polls of the target, stream and lag (default {LOCAL_POLL_SECONDS})",
    )
    run.add_argument("--report", metavar="FILE.json", help="write the readiness report as JSON")
    run.add_argument("--html", metavar="FILE.html", help="write the report as one HTML page")
    run.add_argument(
        "--yes",
        action="store_true",
        help="do not ask before enabling the source stream and creating the target",
    )
    parser.set_defaults(func=run_migrate)


def _spec(args: argparse.Namespace) -> MigrationSpec:
    from dynashift.workflow.migrate import migration_id_for, state_location

    source, target = locations_from_args(args)
    target_options_from_args(args)  # bad target options stop here, before any AWS call
    export = export_location_from_args(
        args,
        args.strategy == "export",
        "--strategy export",
        f" (strategy is {args.strategy})",
    )
    migration_id = migration_id_for(source, target)
    try:
        return MigrationSpec(
            migration_id=migration_id,
            source=source,
            target=target,
            state=state_location(migration_id, target),
            segments=args.segments or 1,
            strategy=args.strategy,
            export=export,
            version_attribute=args.version_attribute,
            ignore=tuple(args.ignore),
            max_write_rate=args.max_write_rate,
            skip_ttl_deletes=args.skip_ttl_deletes,
            worker_budget_seconds=args.worker_budget,
            lag_threshold_seconds=args.lag_threshold,
            verify_sample=args.verify_sample,
        )
    except ValidationError as exc:
        raise option_error(exc) from None


def _confirm(args: argparse.Namespace, spec: MigrationSpec) -> None:
    if args.yes or not sys.stdin.isatty():
        return
    answer = input(
        f"Migrate {spec.source.display()} -> {spec.target.display()}: this enables a stream on "
        "the source if needed and creates or writes the target. Continue? [y/N] "
    )
    if answer.strip().lower() not in ("y", "yes"):
        raise BadInputError("not confirmed (answer y, or pass --yes)")


@contextmanager
def _signals(stop: threading.Event) -> Iterator[None]:
    """SIGTERM sets `stop` (SIGINT raises KeyboardInterrupt as usual)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.getsignal(signal.SIGTERM)
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _approver() -> bool:
    if not sys.stdin.isatty():
        return True
    return input(
        "READY. Approve the cutover (drain and stop replication)? [y/N] "
    ).strip().lower() in (
        "y",
        "yes",
    )


def build_workflow_input(args: argparse.Namespace) -> tuple[WorkflowInput, ConcurrencyPlan]:
    """The execution input the flags describe, with the run's planned concurrency (explicit
    --segments / --concurrency / --in-flight win). Read-only: BadInputError before anything is
    created."""
    from dynashift.workflow.migrate import plan_local_run
    from dynashift.workflow.steps import WorkflowInput, WorkflowSettings

    spec = _spec(args)
    options = target_options_from_args(args)
    planned = plan_local_run(
        spec,
        options,
        segments=args.segments,
        workers=args.concurrency,
        in_flight=args.in_flight,
    )
    spec = spec.model_copy(update={"segments": planned.segments})
    emulated = is_local_endpoint(spec.source.side.endpoint_url)
    settings = WorkflowSettings(
        poll_seconds=args.poll_seconds,
        export_poll_seconds=args.poll_seconds if emulated else AWS_EXPORT_POLL_SECONDS,
        max_concurrency=planned.workers,
        max_in_flight=planned.in_flight,
        approval=args.approval,
        cutover=not args.follow,
        verify_mode=args.verify_mode,
    )
    return WorkflowInput(spec=spec, target_options=options, settings=settings), planned


def run_migrate(args: argparse.Namespace) -> int:
    from dynashift.workflow.migrate import run_local_migration, write_outputs
    from dynashift.workflow.runner import warm_up

    # The sandboxes' forkserver and moto's interpreter load while the flags are checked against
    # the tables (which mostly waits on their endpoint).
    warm_up()
    workflow_input, planned = build_workflow_input(args)
    spec = workflow_input.spec
    _confirm(args, spec)
    print(planned.line(), file=sys.stderr, flush=True)
    stop = threading.Event()
    with _signals(stop):
        run = run_local_migration(
            workflow_input,
            follow=args.follow,
            approve=_approver if args.approval else None,
            stop=stop,
        )
    write_outputs(run, report_path=args.report, html_path=args.html)
    return run.exit_code
