"""Switch the replicator to plain deletes and remove every tombstone.

Thin adapter: parse the event, call `dynashift.workflow.steps.finish_backfill`, return JSON.
"""

from __future__ import annotations

from typing import Any

from dynashift.workflow.steps import StepEvent, finish_backfill, parse_event


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    result = finish_backfill(parse_event(StepEvent, event))
    return result if isinstance(result, dict) else result.model_dump(mode="json")
