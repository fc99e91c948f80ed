"""Enable the source stream (NEW_AND_OLD_IMAGES) or poll it until ENABLED.

Thin adapter: parse the event, call `dynashift.workflow.steps.source_stream`, return JSON.
"""

from __future__ import annotations

from typing import Any

from dynashift.workflow.steps import StreamEvent, parse_event, source_stream


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    result = source_stream(parse_event(StreamEvent, event))
    return result if isinstance(result, dict) else result.model_dump(mode="json")
