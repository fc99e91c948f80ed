"""One backfill worker invocation: copies a segment until done or its budget, returns a cursor.

Thin adapter: parse the event, call `dynashift.workflow.steps.backfill_segment`, return JSON.
"""

from __future__ import annotations

from typing import Any

from dynashift.workflow.steps import SegmentEvent, backfill_segment, parse_event


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    result = backfill_segment(parse_event(SegmentEvent, event))
    return result if isinstance(result, dict) else result.model_dump(mode="json")
