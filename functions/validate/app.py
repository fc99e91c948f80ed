"""Read-only validation of the execution input (nothing is written).

Thin adapter: parse the event, call `dynashift.workflow.steps.validate`, return JSON. In AWS the
input must name the stack's state table, migration id and target table.
"""

from __future__ import annotations

from typing import Any

from dynashift.settings import lambda_settings
from dynashift.workflow.steps import ValidateEvent, validate


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    settings = lambda_settings()
    stack = {
        "spec.state.name": settings.state_table,
        "spec.migration_id": settings.migration_id,
        "spec.target.name": settings.target_table,
    }
    return validate(ValidateEvent.model_validate(event), stack=stack).model_dump(mode="json")
