"""The readiness checklist and its verdict (saved in the state store)."""

from __future__ import annotations

from typing import Any

from dynashift.workflow.control import aws_control
from dynashift.workflow.steps import ReadinessEvent, parse_event, readiness


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    result = readiness(parse_event(ReadinessEvent, event), aws_control())
    return result.model_dump(mode="json")
