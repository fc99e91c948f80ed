"""`dynashift approve --execution ARN`: answer the cutover approval of a deployed run.

The workflow's approval step stores its task token in the migration's state store
(`approval_token.save_approval_token`); this command finds the state store from the execution's
input and sends SendTaskSuccess (or SendTaskFailure with `--reject`). Exit 0 when sent, 2 when
the ARN is malformed, the execution does not exist or is not waiting for approval.
"""

from __future__ import annotations

import argparse
import json
import re
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError
from pydantic import ValidationError

from dynashift.approval_token import send_approval
from dynashift.aws import ClientFactory, Side, error_code
from dynashift.errors import BadInputError
from dynashift.models import PROCESS_CLIENTS, MigrationSpec, TableLocation
from dynashift.state import StateStore
from dynashift.validation import input_message, option_error

EXECUTION_ARN = re.compile(
    r"^arn:(?P<partition>[a-z-]+):states:(?P<region>[a-z0-9-]+):(?P<account>\d{12}):"
    r"execution:[A-Za-z0-9_.-]+:[A-Za-z0-9_.-]+$"
)


def execution_arn(text: str) -> str:
    if not EXECUTION_ARN.match(text):
        raise argparse.ArgumentTypeError(f"{text!r} is not a Step Functions execution ARN")
    return text


def add_execution_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--execution", required=True, type=execution_arn, metavar="ARN", help="execution ARN"
    )
    parser.add_argument("--profile", metavar="P", help="AWS profile")
    parser.add_argument("--role-arn", metavar="ARN", help="role to assume")
    parser.add_argument(
        "--endpoint-url", metavar="URL", help="endpoint for Step Functions and the state table"
    )


@dataclass
class ExecutionContext:
    arn: str
    sfn: Any
    execution: dict[str, Any]
    spec: MigrationSpec
    state: StateStore


def spec_from_input(data: Any) -> MigrationSpec:
    """The MigrationSpec of an execution input (the workflow's `{"spec": ...}` or a bare spec)."""
    if isinstance(data, dict) and "spec" in data:
        data = data["spec"]
    try:
        return MigrationSpec.model_validate(data)
    except ValidationError as exc:
        raise BadInputError(
            f"the execution's input is not a dynashift migration ({input_message(exc)})"
        ) from None


def open_execution(args: argparse.Namespace) -> ExecutionContext:
    arn = args.execution
    match = EXECUTION_ARN.match(arn)
    assert match is not None
    try:
        side = Side(
            region=match["region"],
            profile=args.profile,
            role_arn=args.role_arn,
            endpoint_url=args.endpoint_url,
        )
    except ValidationError as exc:
        raise option_error(exc) from None
    sfn = ClientFactory(side).client("stepfunctions")
    try:
        execution = sfn.describe_execution(executionArn=arn)
    except ClientError as exc:
        if error_code(exc) in ("ExecutionDoesNotExist", "InvalidArn"):
            raise BadInputError(f"execution {arn} does not exist") from exc
        raise
    spec = spec_from_input(json.loads(execution.get("input") or "{}"))
    # The state table as the workflow reaches it, with this command's credentials when the
    # spec names none (in AWS the handlers use their execution role).
    state_side = spec.state.side
    updates = {
        k: v
        for k, v in {
            "profile": args.profile,
            "role_arn": args.role_arn,
            "endpoint_url": args.endpoint_url,
        }.items()
        if v and getattr(state_side, k) is None
    }
    if updates and not state_side.profile and not state_side.role_arn:
        state_side = state_side.model_copy(update=updates)
    location = TableLocation(name=spec.state.name, side=state_side)
    state = StateStore(PROCESS_CLIENTS(location).dynamodb(), location.name, spec.migration_id)
    return ExecutionContext(arn, sfn, execution, spec, state)


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "approve",
        help="approve (or reject) the cutover of a migration waiting for approval",
        description="Send the task token the approval step stored, so the workflow cuts over.",
    )
    add_execution_options(p)
    p.add_argument("--reject", action="store_true", help="reject instead: the run fails")
    p.add_argument("--reason", default="", metavar="TEXT", help="recorded with the answer")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    ctx = open_execution(args)
    status = ctx.execution.get("status")
    if status != "RUNNING":
        raise BadInputError(f"execution {ctx.arn} is {status}, not waiting for approval")
    send_approval(ctx.sfn, ctx.state, approve=not args.reject, reason=args.reason)
    verb = "rejected" if args.reject else "approved"
    print(f"{verb} the cutover of migration {ctx.spec.migration_id} ({ctx.arn})")
    return 0
