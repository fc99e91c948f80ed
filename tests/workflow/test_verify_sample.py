"""A whole migration with a sampled verification (`verify_sample` 0.25), executed locally: the
verification reads only the sampled key-space segments of the source (every Scan seen on the
wire), the report states the bound and says READY (SAMPLED), never "proven"."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from dynashift.sampling import recorded_sample
from dynashift.verify import load_verify_results
from dynashift.workflow.migrate import MigrationRunner, write_outputs
from dynashift.workflow.steps import state_store
from tests.support.fault_proxy import FaultProxy
from tests.support.reference import assert_identical
from tests.support.tables import create_table, fill, varied_items
from tests.support.workflow import workflow_input

BOUND_LINE = (
    "sampled: 4 of 16 key-space segments (25%), 0 divergent; "
    "with 99.9% confidence fewer than 25 divergent partition keys"
)


def test_sampled_migration_reads_only_the_sample_and_states_the_bound(
    ddb: Any, endpoint: str, table_name: Any, tmp_path: Path
) -> None:
    source, target = table_name("wfs-src"), table_name("wfs-tgt")
    create_table(ddb, source)
    fill(ddb, source, varied_items(200, seed=8))
    scans: list[tuple[int | None, int | None]] = []

    def record(op: str, body: bytes) -> None:
        if op == "Scan":
            request = json.loads(body)
            if request.get("TableName") == source:
                scans.append((request.get("Segment"), request.get("TotalSegments")))

    with FaultProxy(endpoint) as proxy:
        proxy.before_forward = record
        wf = workflow_input(proxy.url, source, target, segments=2, max_concurrency=4)
        # The concurrent strategy: without a sample it verifies inside the backfill Map.
        wf = wf.model_copy(update={"spec": wf.spec.model_copy(update={"verify_sample": 0.25})})
        run = MigrationRunner(wf).run()
        report_path, html_path = tmp_path / "r.json", tmp_path / "r.html"
        write_outputs(run, report_path=str(report_path), html_path=str(html_path))

    assert run.exit_code == 0, run.summary
    assert run.summary == f"READY (SAMPLED): {BOUND_LINE}"
    # The execution's output says so too (not a bare READY).
    assert run.outcome is not None and run.outcome.status == "SUCCEEDED"
    assert run.outcome.output["outcome"] == "READY (SAMPLED)"
    state = state_store(wf.spec)
    sample = recorded_sample(state)
    assert sample is not None and len(sample.segments) == 4 and sample.total_segments == 16
    # The source's Scans: the backfill's 2 segments, and for the verification exactly the
    # sampled key-space segments — no full-table verification, none in the backfill Map.
    verification = {(seg, total) for seg, total in scans if total != 2}
    assert verification == {(n, 16) for n in sample.segments}
    assert {seg for seg, total in scans if total == 2} == {0, 1}
    results = load_verify_results(state)
    assert {(r.segment, r.total_segments) for r in results} == {(n, 16) for n in sample.segments}
    assert sum(r.scanned_source for r in results) < 200 / 2
    # What the operator reads: the bound, the sampled verdict, never "proven".
    saved = json.loads(report_path.read_text())
    assert saved["verdict"] == "READY (SAMPLED)"
    assert saved["sample"]["bound"] == 25
    divergent = next(c for c in saved["checks"] if c["name"] == "divergent items")
    assert divergent["detail"].startswith(BOUND_LINE)
    html = html_path.read_text()
    assert "READY (SAMPLED)" in html and "fewer than 25 divergent partition keys" in html
    for text in (report_path.read_text(), html, run.summary):
        assert "proven" not in text.lower() and "identical" not in text.lower()
    # The backfill itself is whole: only the verification was sampled.
    assert_identical(ddb, source, ddb, target, ("pk",))
