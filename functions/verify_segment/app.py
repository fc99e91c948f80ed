"""One verification worker invocation over a segment (resumable with a cursor).

Thin adapter: parse the event, call `dynashift.workflow.steps.verify_segment`, return JSON.
"""

from __future__ import annotations

from typing import Any

from dynashift.workflow.steps import SegmentEvent, parse_event, verify_segment


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    result = verify_segment(parse_event(SegmentEvent, event))
    return result if isinstance(result, dict) else result.model_dump(mode="json")
