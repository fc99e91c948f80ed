"""Moved to `tests.support.reference` (this name stays for the benches and older imports)."""

from tests.support.reference import assert_identical, diff_tables, scan_all, table_contents

__all__ = ["assert_identical", "diff_tables", "scan_all", "table_contents"]
