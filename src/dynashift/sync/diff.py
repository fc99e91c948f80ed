"""The item-difference rule and the comparison of one page: what both `dynashift sync` and the
migration's verification use (one rule for both).

- `ItemDiffer` is the item-difference rule (numbers by value, sets unordered, `--ignore`
  attributes and legacy `aws:rep:*` bookkeeping excluded). Subclass it and override `differs`
  to change the rule (e.g. "a slave item with a newer version is not different").
- `diff_page` classifies one page of master items against the slave items fetched for their
  keys: missing / differing / same. A slave tombstone (`items.is_tombstone`) counts as absent.
- `find_extra` finds the slave keys the master lacks.
- `lookup_keys` fetches keys with BatchGetItem (`UnprocessedKeys` retried with backoff).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from dynashift.items import (
    Item,
    differing_attributes,
    ignored_predicate,
    is_tombstone,
    key_id,
    key_of,
)
from dynashift.retry import Backoff
from dynashift.tables import BatchStats, batch_get

DEFAULT_BATCH_READ_LIMIT = 50


class ItemDiffer:
    """Decides whether a slave item differs from the master's (overridable, like the seed's
    `isItemDifferent`). Both items are in wire format; neither is a tombstone."""

    def __init__(self, ignore: Iterable[str] = (), ignore_legacy: bool = True) -> None:
        self.ignore = tuple(ignore)
        self.ignore_legacy = ignore_legacy
        self.is_ignored = ignored_predicate(self.ignore, ignore_legacy)

    def differing_attributes(self, master: Item, slave: Item) -> list[str]:
        """Top-level attribute names that differ (present on one side only, or unequal)."""
        return differing_attributes(master, slave, self.is_ignored)

    def differs(self, master: Item, slave: Item) -> bool:
        return bool(self.differing_attributes(master, slave))


@dataclass
class PageDiff:
    """The classification of one page of master items against one slave."""

    #: Keys (wire format) present in the master, absent (or a tombstone) in the slave.
    missing: list[Item] = field(default_factory=list)
    #: Keys present on both sides whose items differ.
    differing: list[Item] = field(default_factory=list)
    same: int = 0


def diff_page(
    master_items: Sequence[Item],
    slave_items: Iterable[Item],
    names: Sequence[str],
    differ: ItemDiffer,
) -> PageDiff:
    """Classify `master_items` against the slave items fetched for their keys (pure).

    A slave tombstone counts as absent; a master tombstone is not data and is skipped.
    """
    slave_by_id = {key_id(key_of(s, names)): s for s in slave_items}
    result = PageDiff()
    for master in master_items:
        if is_tombstone(master):
            continue
        key = key_of(master, names)
        slave = slave_by_id.get(key_id(key))
        if slave is None or is_tombstone(slave):
            result.missing.append(key)
        elif differ.differs(master, slave):
            result.differing.append(key)
        else:
            result.same += 1
    return result


def find_extra(
    slave_keys: Sequence[Item],
    master_items: Iterable[Item],
    names: Sequence[str],
) -> list[Item]:
    """Slave keys with no (non-tombstone) master item (pure)."""
    present = {key_id(key_of(m, names)) for m in master_items if not is_tombstone(m)}
    return [k for k in slave_keys if key_id(k) not in present]


def lookup_keys(
    client: Any,
    table: str,
    keys: Sequence[Mapping[str, Any]],
    *,
    chunk: int = DEFAULT_BATCH_READ_LIMIT,
    consistent: bool = False,
    stats: BatchStats | None = None,
    projection: Sequence[str] | None = None,
    backoff: Backoff | None = None,
) -> list[Item]:
    """The items of `table` with these keys (absent keys are simply not returned).

    BatchGetItem in chunks of `chunk` keys; `UnprocessedKeys` are retried with backoff and
    jitter until every key was answered.
    """
    if not keys:
        return []
    return batch_get(
        client,
        table,
        keys,
        chunk=chunk,
        consistent=consistent,
        stats=stats,
        projection=projection,
        backoff=backoff,
    )
