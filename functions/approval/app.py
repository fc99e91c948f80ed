"""Cutover approval (waitForTaskToken): store the task token and notify the operators.

The notification names the execution, carries the readiness checklist and the ways to answer:
the ApprovalDecisionFunction from the Lambda console (no terminal), its IAM-auth function URL,
or `dynashift approve --execution ARN`.
"""

from __future__ import annotations

from typing import Any

from dynashift.settings import lambda_settings
from dynashift.workflow.control import notifier
from dynashift.workflow.steps import ApprovalEvent, parse_event, request_approval


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    sns, topic = notifier()
    settings = lambda_settings()
    return request_approval(
        parse_event(ApprovalEvent, event),
        sns_client=sns,
        topic=topic,
        approval_function=settings.approval_function,
        approval_url=settings.approval_url,
        region=settings.region,
    )
