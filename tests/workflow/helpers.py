"""Moved to `tests.support.workflow` (this name stays for older imports)."""

from tests.support.workflow import KEYS, REGION, make_source, random_writes, workflow_input

__all__ = ["KEYS", "REGION", "make_source", "random_writes", "workflow_input"]
