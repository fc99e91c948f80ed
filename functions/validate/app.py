"""Read-only validation of the execution input (nothing is written).

Thin adapter: parse the event, call `dynashift.workflow.steps.validate`, return JSON.
"""

from __future__ import annotations

from typing import Any

from dynashift.workflow.steps import ValidateEvent, validate


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    result = validate(ValidateEvent.model_validate(event))
    return result if isinstance(result, dict) else result.model_dump(mode="json")
