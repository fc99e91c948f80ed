"""What a sync run does: the `dynashift sync` flags as one validated object."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from dynashift.sync.diff import DEFAULT_BATCH_READ_LIMIT
from dynashift.sync.starting_key import MAX_PARALLEL
from dynashift.tables import BATCH_GET_MAX
from dynashift.validation import option_error


class SyncOptions(BaseModel):
    """What a sync run does (the `dynashift sync` flags)."""

    model_config = ConfigDict(extra="forbid", frozen=True, arbitrary_types_allowed=True)

    write_missing: bool = False
    write_differing: bool = False
    scan_for_extra: bool = False
    delete_extra: bool = False
    ignore: tuple[str, ...] = ()
    #: Ignore the `aws:rep:*` bookkeeping attributes of legacy global tables.
    ignore_legacy: bool = True
    #: Master scan segments; None: 1, or the length of a list `starting_key`.
    parallel: int | None = Field(default=None, ge=1, le=MAX_PARALLEL)
    #: A key object (serial resume) or a list of per-segment keys / null / "done".
    starting_key: dict[str, Any] | list[Any] | None = None
    scan_limit: int | None = Field(default=None, ge=1)
    batch_read_limit: int = Field(default=DEFAULT_BATCH_READ_LIMIT, ge=1, le=BATCH_GET_MAX)
    #: Strongly consistent reads of the slaves (master lookups for extras are always consistent).
    consistent_reads: bool = False
    #: Seconds between resume-key log lines.
    log_every: float = Field(default=10.0, gt=0)

    @field_validator("ignore")
    @classmethod
    def _names(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for name in value:
            if not name or len(name) > 255:
                raise ValueError(f"{name!r} is not an attribute name")
        return value

    @classmethod
    def parse(cls, **values: Any) -> SyncOptions:
        """Build options; a bad value raises BadInputError naming the option."""
        try:
            return cls(**values)
        except ValidationError as exc:
            raise option_error(exc) from None

    @property
    def scan_slaves(self) -> bool:
        return self.scan_for_extra or self.delete_extra

    @property
    def dry_run(self) -> bool:
        return not (self.write_missing or self.write_differing or self.delete_extra)
