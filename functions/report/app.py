"""The final report of an execution (READY, NOT READY, FAILED or REJECTED), sent to SNS."""

from __future__ import annotations

from typing import Any

from dynashift.workflow.control import notifier
from dynashift.workflow.steps import ReportEvent, parse_event, report


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    sns, topic = notifier()
    return report(parse_event(ReportEvent, event), sns_client=sns, topic=topic)
