"""The readiness checklist and its verdict (saved in the state store)."""

from __future__ import annotations

from typing import Any

from dynashift.workflow.control import aws_control
from dynashift.workflow.steps import StepEvent, readiness


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return readiness(StepEvent.model_validate(event), aws_control())
