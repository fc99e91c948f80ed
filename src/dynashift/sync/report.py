"""The result of a sync run: counts per slave, the `--report` JSON, the summary lines and the
exit code."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from dynashift.items import Item, to_event_json


@dataclass
class SlaveReport:
    """Counts for one slave (the report's `slaves` entries)."""

    missing: int = 0
    differing: int = 0
    extra: int = 0
    wrote_missing: int = 0
    wrote_differing: int = 0
    deleted_extra: int = 0
    same: int = 0
    #: Repairs not made because the item changed between the comparison and the write.
    skipped_changed: int = 0
    #: Repairs written without a condition (item too large for one) after a consistent re-read.
    unconditional: int = 0
    extra_scanned: bool = False
    slave_scanned: int = 0
    samples: dict[str, list[Item]] = field(
        default_factory=lambda: {"missing": [], "differing": [], "extra": [], "skipped": []}
    )

    @property
    def unrepaired(self) -> int:
        return (
            self.missing
            - self.wrote_missing
            + self.differing
            - self.wrote_differing
            + self.extra
            - self.deleted_extra
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "missing": self.missing,
            "differing": self.differing,
            "extra": self.extra,
            "wrote_missing": self.wrote_missing,
            "wrote_differing": self.wrote_differing,
            "deleted_extra": self.deleted_extra,
            "skipped_changed": self.skipped_changed,
            "unconditional": self.unconditional,
            "same": self.same,
            "extra_scanned": self.extra_scanned,
            "slave_scanned": self.slave_scanned,
            "samples": {k: [to_event_json(x) for x in v] for k, v in self.samples.items()},
        }

    def summary(self) -> str:
        extra = str(self.extra) if self.extra_scanned else "not scanned"
        return (
            f"missing {self.missing}, differing {self.differing}, extra {extra}, same "
            f"{self.same}; wrote missing {self.wrote_missing}, wrote differing "
            f"{self.wrote_differing}, deleted extra {self.deleted_extra}"
            + (
                f"; skipped: changed since read {self.skipped_changed}"
                if self.skipped_changed
                else ""
            )
            + (f"; unconditional {self.unconditional}" if self.unconditional else "")
        )


@dataclass
class SyncReport:
    """The result of a sync run. `to_json()` is the `--report` file."""

    master: str
    scanned: int = 0
    slaves: dict[str, SlaveReport] = field(default_factory=dict)
    dry_run: bool = True
    complete: bool = False
    parallel: int = 1
    elapsed_seconds: float = 0.0
    unprocessed_keys: int = 0
    error: str | None = None
    #: `--starting-key` that resumes an incomplete run (None when complete).
    resume: str | None = None

    @property
    def in_sync(self) -> bool:
        return all(s.unrepaired == 0 for s in self.slaves.values())

    @property
    def exit_code(self) -> int:
        """0 in sync or fully repaired, 1 differences left (a dry run that found some)."""
        if self.error is not None:
            return 3
        return 0 if self.in_sync else 1

    def to_json(self) -> dict[str, Any]:
        return {
            "master": self.master,
            "scanned": self.scanned,
            "slaves": {name: s.to_json() for name, s in self.slaves.items()},
            "dry_run": self.dry_run,
            "complete": self.complete,
            "parallel": self.parallel,
            "elapsed_seconds": round(self.elapsed_seconds, 3),
            "unprocessed_keys": self.unprocessed_keys,
            "exit_code": self.exit_code,
            "error": self.error,
            "resume": self.resume,
        }

    def summary_lines(self) -> list[str]:
        mode = "dry run" if self.dry_run else "repair"
        lines = [
            f"{self.master}: scanned {self.scanned} items in {self.elapsed_seconds:.1f}s "
            f"({mode}, {self.parallel} segment{'s' if self.parallel != 1 else ''})"
        ]
        lines += [f"  {name}: {s.summary()}" for name, s in self.slaves.items()]
        if self.error is None:
            lines.append("in sync" if self.in_sync else "differences remain")
        return lines
