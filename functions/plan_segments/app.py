"""Record the segment count and list the segments for the Map states.

Thin adapter: parse the event, call `dynashift.workflow.steps.plan_segments`, return JSON.
"""

from __future__ import annotations

from typing import Any

from dynashift.workflow.steps import StepEvent, parse_event, plan_segments


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    result = plan_segments(parse_event(StepEvent, event))
    return result if isinstance(result, dict) else result.model_dump(mode="json")
