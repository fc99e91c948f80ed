"""The sync diff engine: find, and optionally repair, differences between a master and slaves.

Library, not CLI code: `dynashift sync` and the migration's verification step both use it. Every
public name is importable from `dynashift.sync`; the parts live in:

- `diff` — the item-difference rule (`ItemDiffer`: numbers by value, sets unordered, `--ignore`
  attributes and legacy `aws:rep:*` bookkeeping excluded), `diff_page` (one page of master items
  against the slave items fetched for their keys: missing / differing / same; a slave tombstone
  counts as absent), `find_extra`, and `lookup_keys` (BatchGetItem, `UnprocessedKeys` retried).
- `repair` — `repair_keys` makes every repair write: the master re-read consistently, each
  PutItem / DeleteItem conditional on the slave item being as it was read; a failed condition
  is counted as "skipped: changed since read", not an error.
- `starting_key` — `--starting-key` and the resume token of a stopped run.
- `options` / `report` — `SyncOptions` (the flags) and `SyncReport` (counts, `--report` JSON,
  exit code).
- `engine` — `SyncEngine` runs the whole comparison: a parallel scan of the master, a
  BatchGetItem on each slave per page, optional repair, then (with `scan_for_extra` /
  `delete_extra`) a parallel scan of each slave checking the master for the keys it finds.
"""

from __future__ import annotations

from dynashift.sync.diff import (
    DEFAULT_BATCH_READ_LIMIT,
    ItemDiffer,
    PageDiff,
    diff_page,
    find_extra,
    lookup_keys,
)
from dynashift.sync.engine import LOGGED_KEYS, SAMPLE_KEYS, ProgressFactory, SyncEngine
from dynashift.sync.options import SyncOptions
from dynashift.sync.repair import RepairOutcome, repair_keys
from dynashift.sync.report import SlaveReport, SyncReport
from dynashift.sync.starting_key import (
    DONE,
    MAX_PARALLEL,
    SegmentStart,
    resolve_starting_key,
    resume_token,
    starting_key_to_wire,
)

__all__ = [
    "DEFAULT_BATCH_READ_LIMIT",
    "DONE",
    "LOGGED_KEYS",
    "MAX_PARALLEL",
    "SAMPLE_KEYS",
    "ItemDiffer",
    "PageDiff",
    "ProgressFactory",
    "RepairOutcome",
    "SegmentStart",
    "SlaveReport",
    "SyncEngine",
    "SyncOptions",
    "SyncReport",
    "diff_page",
    "find_extra",
    "lookup_keys",
    "repair_keys",
    "resolve_starting_key",
    "resume_token",
    "starting_key_to_wire",
]
