"""Moved to `tests.support.backfill` and `tests.support.tables` (this name stays for older
imports)."""

from tests.support.backfill import (
    StreamApplier,
    error_response,
    fail_every,
    leave_unprocessed,
    make_spec,
    make_state,
    no_sleep,
    on_put_of,
)
from tests.support.tables import (
    HASH_ONLY,
    HASH_RANGE,
    REGION,
    client,
    create_table,
    enable_stream,
    fill,
    simple_items,
    wait_until,
)

__all__ = [
    "HASH_ONLY",
    "HASH_RANGE",
    "REGION",
    "StreamApplier",
    "client",
    "create_table",
    "enable_stream",
    "error_response",
    "fail_every",
    "fill",
    "leave_unprocessed",
    "make_spec",
    "make_state",
    "no_sleep",
    "on_put_of",
    "simple_items",
    "wait_until",
]
