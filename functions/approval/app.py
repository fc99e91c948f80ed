"""Cutover approval (waitForTaskToken): store the task token and notify the operators.

`dynashift approve --execution ARN` sends the token back with SendTaskSuccess.
"""

from __future__ import annotations

from typing import Any

from dynashift.workflow.control import notifier
from dynashift.workflow.steps import ApprovalEvent, request_approval


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    sns, topic = notifier()
    return request_approval(ApprovalEvent.model_validate(event), sns_client=sns, topic=topic)
