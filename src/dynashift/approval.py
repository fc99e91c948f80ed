"""Cutover approval from the console: the notification the operators get, and the decision that
answers the workflow's waiting task token.

The approval step (`workflow.steps.request_approval`, a waitForTaskToken task) stores its token
in the migration's state store and publishes `approval_message`: the execution ARN, the readiness
checklist, and three ways to answer that all end in `approval_token.send_approval`:

- no terminal: the Lambda console's Test tab of the stack's ApprovalDecisionFunction, with one of
  the two test events the message spells out (`{"execution_arn": ..., "decision": "approve"}`);
- a SigV4-signed request to that function's URL (AuthType AWS_IAM), `?execution=ARN&decision=...`;
- a terminal: `dynashift approve --execution ARN [--reject --reason TEXT]`.

`decide` checks that the decision names the execution that is waiting (a stale message cannot
approve a later run) before it sends SendTaskSuccess / SendTaskFailure.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping
from typing import Any, Literal
from urllib.parse import parse_qsl, quote

from pydantic import BaseModel, ConfigDict, Field

from dynashift.approval_token import send_approval
from dynashift.errors import BadInputError
from dynashift.readiness import ReadinessReport
from dynashift.state import StateStore
from dynashift.validation import parse_event

#: Where `request_approval` records the execution that waits (state store meta).
APPROVAL_EXECUTION_META = "approval_execution"
#: The longest readiness text put in a message (SNS allows 256 KB per message).
MAX_SUMMARY_CHARS = 100_000

PLACEHOLDER_ARN = "<execution ARN: see the Step Functions console>"


class ApprovalDecision(BaseModel):
    """What an operator answers: approve or reject one execution's cutover."""

    model_config = ConfigDict(extra="forbid")

    execution_arn: str = Field(min_length=1, pattern=r"^arn:[a-z-]+:states:")
    decision: Literal["approve", "reject"]
    reason: str = Field(default="", max_length=1000)


def console_url(region: str | None, function_name: str) -> str:
    """The Lambda console page of a function, on its Test tab."""
    region = region or "us-east-1"
    host = "console.aws.amazon.com"
    if region.startswith("cn-"):
        host = "console.amazonaws.cn"
    elif region.startswith("us-gov-"):
        host = "console.amazonaws-us-gov.com"
    return f"https://{host}/lambda/home?region={region}#/functions/{function_name}?tab=testing"


def approval_message(
    migration_id: str,
    *,
    source: str,
    target: str,
    execution_arn: str | None,
    report: ReadinessReport | None,
    approval_function: str | None = None,
    approval_url: str | None = None,
    region: str | None = None,
) -> tuple[str, str]:
    """(subject, message) of the approval notification."""
    arn = execution_arn or PLACEHOLDER_ARN
    verdict = report.verdict if report is not None else "READY"
    subject = f"dynashift {migration_id}: approve the cutover ({verdict})"[:100]
    lines = [
        f"Migration {migration_id} ({source} -> {target}) waits for your approval to cut over.",
        "",
        f"Execution: {arn}",
        "",
        "Readiness:",
        (report.to_text() if report is not None else "(no readiness report saved)")[
            :MAX_SUMMARY_CHARS
        ],
        "",
    ]
    approve = json.dumps({"execution_arn": arn, "decision": "approve"})
    reject = json.dumps({"execution_arn": arn, "decision": "reject", "reason": "why"})
    if approval_function:
        lines += [
            "Approve or reject without a terminal: open the AWS Lambda console, function "
            f"{approval_function}, Test tab",
            f"  {console_url(region, approval_function)}",
            "and run one of these test events:",
            f"  approve: {approve}",
            f"  reject:  {reject}",
            "",
        ]
    if approval_url:
        query = f"?execution={quote(arn, safe='')}"
        lines += [
            "Or send a SigV4-signed request (IAM auth, service lambda) to the approval URL:",
            f"  approve: {approval_url}{query}&decision=approve",
            f"  reject:  {approval_url}{query}&decision=reject&reason=why",
            "",
        ]
    lines += [
        "From a terminal:",
        f"  dynashift approve --execution {arn}",
        f'  dynashift approve --execution {arn} --reject --reason "why"',
    ]
    return subject, "\n".join(lines)


def record_waiting_execution(state: StateStore, execution_arn: str | None) -> None:
    state.put_meta(awaiting_approval=True, **{APPROVAL_EXECUTION_META: execution_arn or ""})


def decide(sfn_client: Any, state: StateStore, decision: ApprovalDecision) -> dict[str, Any]:
    """Send the stored task token back (SendTaskSuccess, or SendTaskFailure on reject).

    BadInputError when the decision names another execution than the one waiting, or when no
    approval is pending."""
    waiting = str((state.get_meta() or {}).get(APPROVAL_EXECUTION_META) or "")
    if waiting and waiting != decision.execution_arn:
        raise BadInputError(
            f"execution_arn: {decision.execution_arn} is not the execution waiting for approval "
            f"({waiting})"
        )
    approve = decision.decision == "approve"
    send_approval(sfn_client, state, approve=approve, reason=decision.reason)
    state.put_meta(awaiting_approval=False)
    return {
        "migration_id": state.migration_id,
        "execution_arn": decision.execution_arn,
        "decision": decision.decision,
    }


def _is_http(event: Mapping[str, Any]) -> bool:
    return "requestContext" in event and "http" in (event.get("requestContext") or {})


def parse_decision(event: Mapping[str, Any]) -> ApprovalDecision:
    """The decision of a direct invocation (`{"execution_arn", "decision", "reason"}`) or of a
    function URL request (query string `execution`, `decision`, `reason`, or the same as a
    JSON or form body)."""
    data: dict[str, Any]
    if _is_http(event):
        data = dict(event.get("queryStringParameters") or {})
        body = event.get("body")
        if body:
            text = base64.b64decode(body).decode() if event.get("isBase64Encoded") else body
            try:
                parsed = json.loads(text)
            except ValueError:
                parsed = dict(parse_qsl(text))
            if isinstance(parsed, dict):
                data.update(parsed)
        if "execution" in data:
            data["execution_arn"] = data.pop("execution")
    else:
        data = dict(event)
    return parse_event(ApprovalDecision, data)


def handle_decision_event(
    event: Mapping[str, Any], sfn_client: Any, state: StateStore
) -> dict[str, Any]:
    """The decision function: direct invocations get the result (or the error raised); function
    URL requests get an HTTP response (400 with a one-line message on bad input)."""
    if not _is_http(event):
        return decide(sfn_client, state, parse_decision(event))
    try:
        result = decide(sfn_client, state, parse_decision(event))
    except BadInputError as exc:
        return _http(400, {"error": exc.message})
    return _http(200, result)


def _http(status: int, body: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "statusCode": status,
        "headers": {"content-type": "application/json"},
        "body": json.dumps(body),
    }
