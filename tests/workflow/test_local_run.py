"""The whole state machine executed locally, end to end, on the moto server fixture."""

from __future__ import annotations

import io
import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from dynashift.cli.main import main
from dynashift.state import StateStore
from dynashift.workflow.migrate import (
    MigrationRunner,
    failure_of,
    local_stack,
    run_local_migration,
    write_outputs,
)
from dynashift.workflow.runner import DEFINITION
from dynashift.workflow.steps import state_store
from tests.support.fault_proxy import FaultProxy
from tests.support.reference import assert_identical
from tests.support.tables import create_table, fill, list_tables, varied_items, wait_until
from tests.support.workflow import workflow_input
from tests.support.writer import ConcurrentWriter


@pytest.fixture
def source(ddb: Any, table_name: Any) -> Iterator[tuple[str, int]]:
    name = table_name("wf-src")
    create_table(ddb, name)
    n = 300
    fill(ddb, name, varied_items(n, seed=5))
    yield name, n


def test_happy_path_with_live_writes_distributed_map(
    ddb: Any, endpoint: str, source: tuple[str, int], table_name: Any
) -> None:
    name, n = source
    target = table_name("wf-tgt")
    # Threshold 1: the segment Maps run as Distributed Maps (the large-table path). The lag
    # threshold is not what this test is about: writes go on until the approval, and on a
    # loaded 2-core CI machine (two test processes) the replicator's sandbox once trailed them
    # by 5.3 s at the checklist; 30 s keeps the test about the Distributed Map path.
    wf = workflow_input(
        endpoint,
        name,
        target,
        segments=3,
        distributed_threshold=1,
        approval=True,
        lag_threshold_seconds=30.0,
    )
    writer = ConcurrentWriter(ddb, name, ("pk",), seed=21, rate_per_s=20, key_space=n)
    stop_writes = threading.Event()

    def approve() -> bool:
        # The operator stops the writes, then approves: the cutover drains everything written.
        writer.stop()
        stop_writes.set()
        return True

    with writer:
        writer.wait_for(10, timeout=10)
        run = MigrationRunner(wf, approve=approve).run()
    assert stop_writes.is_set()
    assert run.exit_code == 0, run.summary
    assert run.summary == "READY"
    assert run.outcome is not None and run.outcome.status == "SUCCEEDED"
    assert run.outcome.output["outcome"] == "READY"
    assert run.invocations["backfill_segment"] >= 3
    assert run.invocations["verify_segment"] >= 3
    assert writer.succeeded > 10
    assert_identical(ddb, name, ddb, target, ("pk",))


def test_failing_step_fails_the_execution_and_exits_3(
    ddb: Any, endpoint: str, source: tuple[str, int], table_name: Any, capsys: Any
) -> None:
    name, _ = source
    target = table_name("wf-tgt")
    # The functions run in their own sandboxes: the fault is injected on the wire. Every
    # UpdateItem on the state table (the phase switch) is refused, as a missing permission is.
    with FaultProxy(endpoint) as proxy:
        wf = workflow_input(proxy.url, name, target)
        state_table = wf.spec.state.name
        proxy.deny = lambda op, body: op == "UpdateItem" and f'"{state_table}"'.encode() in body
        code = main(
            [
                "migrate",
                "--source",
                f"us-east-1:{name}",
                "--target",
                f"us-east-1:{target}",
                "--endpoint-url",
                proxy.url,
                "--segments",
                "2",
                "--poll-seconds",
                "0",
                "--yes",
            ]
        )
    err = capsys.readouterr().err
    assert proxy.counts[("UpdateItem", "deny")] >= 1
    assert code == 3
    last = err.strip().splitlines()[-1]
    assert last.startswith("dynashift: error: migration failed (ClientError)"), last
    assert "AccessDenied" in last
    meta = state_store(wf.spec).get_meta() or {}
    assert meta.get("outcome") == "FAILED"
    assert "AccessDenied" in str(meta.get("cause"))


def test_resume_after_interruption(ddb: Any, endpoint: str, table_name: Any) -> None:
    name = table_name("wf-src")
    create_table(ddb, name)
    n = 600
    fill(ddb, name, varied_items(n, seed=8))
    target = table_name("wf-tgt")
    # Short worker budgets: cursors are committed (and handed back) every few seconds.
    wf = workflow_input(endpoint, name, target, segments=2, worker_budget_seconds=4.0)
    wf = wf.model_copy(update={"spec": wf.spec.model_copy(update={"max_write_rate": 40.0})})
    stop = threading.Event()
    store = state_store(wf.spec)

    def copied() -> int:
        if not StateStore.table_exists(ddb, wf.spec.state.name):
            return 0
        return sum(s.counters.get("written", 0) for s in store.segments())

    interrupter = threading.Thread(
        target=lambda: wait_until(lambda: copied() >= 100, timeout=120) and stop.set()
    )
    interrupter.start()
    with pytest.raises(KeyboardInterrupt):
        run_local_migration(wf, stop=stop)
    interrupter.join()
    first = copied()
    assert 100 <= first < n, first
    assert not all(s.done for s in store.segments())

    fast = wf.model_copy(update={"spec": wf.spec.model_copy(update={"max_write_rate": None})})
    run = run_local_migration(fast)
    assert run.exit_code == 0, run.summary
    assert all(s.done for s in store.segments())
    # Resumed, not restarted: the committed counters grow by what was left, so the items
    # scanned over both runs stay about n (a restart would scan the first `first` again).
    scanned = sum(s.counters.get("scanned", 0) for s in store.segments())
    assert n <= scanned < n + first, (scanned, first)
    assert_identical(ddb, name, ddb, target, ("pk",))


def test_bad_input_exits_2_and_creates_nothing(
    ddb: Any, endpoint: str, table_name: Any, capsys: Any
) -> None:
    missing = table_name("wf-missing")
    target = table_name("wf-tgt")
    before = list_tables(ddb)
    code = main(
        ["migrate", "--source", missing, "--target", target, "--endpoint-url", endpoint, "--yes"]
    )
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert len(err) == 1 and missing in err[0], err
    assert list_tables(ddb) == before


def test_wrong_jsonpath_fails_like_aws(tmp_path: Path) -> None:
    definition = json.loads(DEFINITION.read_text())
    definition["States"]["Validate input"]["Parameters"]["Payload"]["spec.$"] = "$.nope"
    path = tmp_path / "broken.asl.json"
    path.write_text(json.dumps(definition))
    wf = workflow_input("http://127.0.0.1:9", "jp-src", "jp-tgt")
    with local_stack(wf.spec, definition_path=path) as sfn:
        arn = sfn.start_execution({"spec": {}, "settings": {}, "target_options": {}})
        outcome = sfn.wait(arn, timeout=60)
    assert outcome.status == "FAILED"
    # AWS fails the execution with States.Runtime (not catchable); moto routes it through the
    # catch-all: either way the run fails and names the missing path.
    error, message = failure_of(outcome)
    assert error == "States.Runtime", (error, message)
    assert "$.nope" in str(message)


def test_approval_then_cutover(
    ddb: Any, endpoint: str, source: tuple[str, int], table_name: Any, tmp_path: Path
) -> None:
    name, n = source
    target = table_name("wf-tgt")
    wf = workflow_input(endpoint, name, target, approval=True)
    asked = []

    def approve() -> bool:
        asked.append(time.monotonic())
        return True

    runner = MigrationRunner(wf, approve=approve)
    run = runner.run()
    assert run.exit_code == 0, run.summary
    assert asked, "the approval was never requested"
    assert run.invocations.get("approval") == 1
    # Cutover deletes the replicator's event source mapping (through the Lambda API).
    assert run.mappings_created and run.mappings_deleted == run.mappings_created
    assert_identical(ddb, name, ddb, target, ("pk",))
    report, html = tmp_path / "r.json", tmp_path / "r.html"
    write_outputs(run, report_path=str(report), html_path=str(html), out=io.StringIO())
    data = json.loads(report.read_text())
    assert data["verdict"] == "READY"
    phases = {p["name"]: p for p in data["phases"]}
    assert phases["backfill"]["items"] >= n and phases["backfill"]["ended"]
    assert phases["verification"]["items"] >= n
    assert "READY" in html.read_text()
