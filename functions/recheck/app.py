"""Re-read every suspect key from both sides once the replicator caught up."""

from __future__ import annotations

from typing import Any

from dynashift.workflow.control import aws_control
from dynashift.workflow.steps import StepEvent, parse_event, recheck


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return recheck(parse_event(StepEvent, event), aws_control())
