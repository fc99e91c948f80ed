"""Create the target table or verify it; later calls poll it until ready.

Thin adapter: parse the event, call `dynashift.workflow.steps.prepare_target`, return JSON.
"""

from __future__ import annotations

from typing import Any

from dynashift.workflow.steps import PrepareTargetEvent, parse_event, prepare_target


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    result = prepare_target(parse_event(PrepareTargetEvent, event))
    return result if isinstance(result, dict) else result.model_dump(mode="json")
