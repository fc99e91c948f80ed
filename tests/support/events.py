"""Events as files: `tests/events/*.json`, what Lambda or the state machine hands a handler."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

EVENTS = Path(__file__).resolve().parents[1] / "events"


def load_event(name: str) -> dict[str, Any]:
    """A fresh copy of `tests/events/<name>` (each call parses the file again: mutate freely)."""
    event: dict[str, Any] = json.loads((EVENTS / name).read_text(encoding="utf-8"))
    return event
