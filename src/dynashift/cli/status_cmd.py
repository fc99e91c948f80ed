"""`dynashift status --execution ARN`: phase, per-segment progress and lag of a deployed run.

Reads the execution (status, the step it is in) and the migration's state store (phase,
segment checkpoints, verification, saved verdict); the lag is read from the progress the
replicator records, with the workflow's own check (`replication_progress`) in read-only mode:
it walks the stream from the saved positions within the same read budget and saves nothing.
`--json` prints the same as JSON. Exit 0.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from dynashift.cli.approve_cmd import add_execution_options, open_execution
from dynashift.status import migration_status


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "status",
        help="show the phase, per-segment progress and lag of a deployed migration",
        description="Read a migration's execution and state store; changes nothing.",
    )
    add_execution_options(p)
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=run)


def _current_step(sfn: Any, arn: str) -> str | None:
    history = sfn.get_execution_history(executionArn=arn, reverseOrder=True, maxResults=50)
    for event in history.get("events", []):
        entered = event.get("stateEnteredEventDetails")
        if entered:
            return str(entered["name"])
    return None


def _lag(ctx: Any) -> tuple[float | None, str]:
    meta = ctx.state.get_meta() or {}
    arn = meta.get("stream_arn")
    if not arn:
        return None, "no stream recorded yet"
    from dynashift.models import PROCESS_CLIENTS
    from dynashift.replication_progress import ProgressChecker, ReadBudget
    from dynashift.workflow.control import progress_lag

    streams = PROCESS_CLIENTS(ctx.spec.source).streams()
    checker = ProgressChecker(
        streams, ctx.state, str(arn), budget=ReadBudget(min_interval=0), persist=False
    )
    lag = progress_lag(checker)
    detail = lag.detail
    if lag.failed_records:
        detail += f"; {lag.failed_records} failed record(s)"
    return lag.age_seconds, detail


def run(args: argparse.Namespace) -> int:
    ctx = open_execution(args)
    running = ctx.execution.get("status") == "RUNNING"
    step = _current_step(ctx.sfn, ctx.arn) if running else None
    lag, detail = _lag(ctx) if running else (None, "")
    status = migration_status(
        ctx.state,
        ctx.spec.segments,
        execution=ctx.execution,
        current_step=step,
        lag_seconds=lag,
        lag_detail=detail,
    )
    if args.json:
        print(json.dumps(status.model_dump(mode="json"), indent=2, sort_keys=True))
    else:
        print(status.to_text())
    return 0
