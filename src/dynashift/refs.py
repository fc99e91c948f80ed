"""`[REGION:]TABLE` references."""

from __future__ import annotations

import re
from dataclasses import dataclass

from dynashift.errors import InvalidTableRefError

#: The one home of what a table name and a region look like (refs, models, CLI options).
_TABLE_NAME = re.compile(r"^[A-Za-z0-9_.-]{3,255}$")
_REGION = re.compile(r"^[a-z]{2}(-[a-z]+)+-\d+$")


def is_table_name(text: str) -> bool:
    """3-255 characters of a-z, A-Z, 0-9, '_', '-', '.' (DynamoDB's rule)."""
    return bool(_TABLE_NAME.match(text))


def is_region(text: str) -> bool:
    """`us-east-1`, `eu-central-2`, `us-gov-west-1`, ... (the shape, not a list)."""
    return bool(_REGION.match(text))


@dataclass(frozen=True)
class TableRef:
    """A table name and, optionally, the region it lives in."""

    name: str
    region: str | None = None

    def __str__(self) -> str:
        return f"{self.region}:{self.name}" if self.region else self.name

    def display(self, default_region: str | None) -> str:
        """`region:name` with the region resolved (for reports)."""
        region = self.region or default_region
        return f"{region}:{self.name}" if region else self.name


def parse_table_ref(text: str, what: str = "table") -> TableRef:
    """Parse `[REGION:]TABLE`; raise InvalidTableRefError naming the bad value."""
    raw = (text or "").strip()
    if not raw:
        raise InvalidTableRefError(f"{what}: empty table reference (expected [REGION:]TABLE)")
    region: str | None
    if ":" in raw:
        region, _, name = raw.partition(":")
        if not is_region(region):
            raise InvalidTableRefError(
                f"{what}: {text!r} has an invalid region {region!r} (expected [REGION:]TABLE, "
                "e.g. us-east-1:orders)"
            )
    else:
        region, name = None, raw
    if not is_table_name(name):
        raise InvalidTableRefError(
            f"{what}: {text!r} is not a valid table name (3-255 characters of a-z, A-Z, 0-9, "
            "'_', '-', '.')"
        )
    return TableRef(name=name, region=region)
