"""`dynashift sync` and verification through the fault-injecting proxy (real sockets):
throttling, partial UnprocessedKeys / UnprocessedItems, connection resets and slow responses.
The counts must be exact (a fault must never turn into a missing or extra item) and a repair
must leave the slave identical to the master (tests/support/reference.py)."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import pytest

from dynashift.aws import Side
from dynashift.cli.main import main
from dynashift.models import MigrationSpec, TableLocation
from dynashift.verify import verify_table
from tests.support.fault_proxy import FaultProxy, FaultRule
from tests.support.reference import assert_identical
from tests.support.tables import REGION, client, create_table, fill, varied_items

N = 150
MISSING, DIFFERING, EXTRA = 12, 9, 7
READS = ("Scan", "BatchGetItem", "GetItem", "Query")
WRITES = ("PutItem", "DeleteItem", "BatchWriteItem")

PLANS: dict[str, dict[str, FaultRule]] = {
    "throttle": dict.fromkeys((*READS, *WRITES), FaultRule(throttle=0.25)),
    "unprocessed": {
        "BatchGetItem": FaultRule(unprocessed=0.8, unprocessed_share=0.7),
        "BatchWriteItem": FaultRule(unprocessed=0.8, unprocessed_share=0.7),
    },
    "resets": dict.fromkeys((*READS, *WRITES), FaultRule(reset_before=0.1, reset_after=0.1)),
    "slow": {"*": FaultRule(slow=0.2, slow_seconds=0.05)},
}
EXPECTED = {
    "throttle": ("throttle",),
    "unprocessed": ("unprocessed",),
    "resets": ("reset_before", "reset_after"),
    "slow": ("slow",),
}


def _drifted(ddb: Any, table_name: Any) -> tuple[str, str]:
    """A master of N items and a slave with known drift: missing, differing and extra items."""
    master, slave = create_table(ddb, table_name("sv-m")), create_table(ddb, table_name("sv-s"))
    rows = varied_items(N, seed=77)
    fill(ddb, master, rows)
    copy = rows[MISSING:]
    copy[:DIFFERING] = [{**r, "s": {"S": "drifted"}} for r in copy[:DIFFERING]]
    extra = varied_items(EXTRA, seed=78, prefix="extra")
    fill(ddb, slave, copy + extra)
    return master, slave


def _sync(url: str, master: str, slave: str, report: Path, *flags: str) -> tuple[int, Any]:
    argv = ["sync", "--master", f"{REGION}:{master}", "--slave", f"{REGION}:{slave}"]
    argv += ["--endpoint-url", url, "--scan-for-extra", "--parallel", "3", "--report", str(report)]
    argv += ["--batch-read-limit", "25", "--scan-limit", "40", *flags]
    code = main(argv)
    data = json.loads(report.read_text())
    return code, next(iter(data["slaves"].values()))


@pytest.mark.parametrize("plan", sorted(PLANS))
def test_sync_counts_and_repairs_exactly_through_faults(
    endpoint: str, table_name: Any, tmp_path: Path, plan: str
) -> None:
    ddb = client(endpoint)
    master, slave = _drifted(ddb, table_name)
    with FaultProxy(endpoint, seed=sorted(PLANS).index(plan), rules=PLANS[plan]) as proxy:
        code, dry = _sync(proxy.url, master, slave, tmp_path / "dry.json")
        assert code == 1
        assert (dry["missing"], dry["differing"], dry["extra"]) == (MISSING, DIFFERING, EXTRA)
        code, fix = _sync(
            proxy.url,
            master,
            slave,
            tmp_path / "fix.json",
            "--write-missing",
            "--write-differing",
            "--delete-extra",
        )
        totals = proxy.totals()
    assert code == 0, fix
    assert (fix["wrote_missing"], fix["wrote_differing"], fix["deleted_extra"]) == (
        MISSING,
        DIFFERING,
        EXTRA,
    )
    assert sum(totals[k] for k in EXPECTED[plan]) > 0, f"nothing injected: {totals}"
    assert_identical(ddb, master, ddb, slave, ("pk",))


def _spec(url: str, source: str, target: str) -> MigrationSpec:
    side = Side(region=REGION, endpoint_url=url)
    mid = f"vf-{uuid.uuid4().hex[:10]}"
    return MigrationSpec(
        migration_id=mid,
        source=TableLocation(name=source, side=side),
        target=TableLocation(name=target, side=side),
        state=TableLocation(name=f"dynashift-state-{mid}", side=side),
        segments=3,
    )


@pytest.mark.parametrize("mode", ["batch", "merge"])
def test_verification_counts_are_exact_through_faults(
    endpoint: str, table_name: Any, mode: str
) -> None:
    ddb = client(endpoint)
    source, target = _drifted(ddb, table_name)
    rules = {
        **dict.fromkeys(READS, FaultRule(throttle=0.15, reset_before=0.05, slow=0.05)),
        "BatchGetItem": FaultRule(throttle=0.1, unprocessed=0.6, reset_after=0.05),
    }
    with FaultProxy(endpoint, seed=5, rules=rules) as proxy:
        spec = _spec(proxy.url, source, target)
        results = verify_table(spec, mode=mode, checkpoint=False, page_limit=40)
        totals = proxy.totals()
    assert sum(r.missing for r in results) == MISSING
    assert sum(r.differing for r in results) == DIFFERING
    assert sum(r.extra for r in results) == EXTRA
    assert sum(r.same for r in results) == N - MISSING - DIFFERING
    assert totals["throttle"] + totals["reset_before"] > 0, totals
    if mode == "batch":
        assert totals["unprocessed"] > 0, totals
