"""One export loader invocation: a data file of the export until done or its budget.

Thin adapter: parse the event, call `dynashift.workflow.steps.load_export_file`, return JSON.
"""

from __future__ import annotations

from typing import Any

from dynashift.workflow.steps import ExportFileEvent, load_export_file, parse_event


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return load_export_file(parse_event(ExportFileEvent, event)).model_dump(mode="json")
