"""Re-read every suspect key from both sides once the replicator caught up."""

from __future__ import annotations

from typing import Any

from dynashift.workflow.control import aws_control
from dynashift.workflow.steps import StepEvent, recheck


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return recheck(StepEvent.model_validate(event), aws_control())
