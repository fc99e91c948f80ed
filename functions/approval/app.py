"""Cutover approval (waitForTaskToken): store the task token and notify the operators.

`dynashift approve --execution ARN` sends the token back with SendTaskSuccess.
"""

from __future__ import annotations

from typing import Any

from dynashift.workflow.control import notifier_for
from dynashift.workflow.steps import ApprovalEvent, parse_event, request_approval


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    sns, topic = notifier_for(context)
    return request_approval(parse_event(ApprovalEvent, event), sns_client=sns, topic=topic)
