"""The export strategy's export: start it, poll it, check its time, list its data files.

Thin adapter: parse the event, call `dynashift.workflow.steps.export_source`, return JSON.
"""

from __future__ import annotations

from typing import Any

from dynashift.workflow.steps import ExportEvent, export_source, parse_event


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return export_source(parse_event(ExportEvent, event)).model_dump(mode="json")
