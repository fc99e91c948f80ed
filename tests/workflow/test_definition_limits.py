"""Limits by design (docs/limits.md): the Map mode chosen by the estimated history, the
budgeted "Finish backfill" loop, the approval's timeout and stale-checklist path, and the
numbers the limits page states."""

from __future__ import annotations

import json
import re
import uuid
from typing import Any

import pytest

from dynashift.items import is_tombstone
from dynashift.plan import plan_segments
from dynashift.state import PHASE_BACKFILL, PHASE_PLAIN, StateStore
from dynashift.tombstones import apply_delete, finish_backfill
from dynashift.workflow import definition as builder
from dynashift.workflow.runner import DEFINITION, ROOT
from dynashift.workflow.steps import HISTORY_EVENTS_QUOTA, WorkflowSettings, estimate_loops
from tests.support.clock import TickingClock
from tests.support.tables import create_table

KIB = 1024


def test_a_billion_items_in_32_segments_run_distributed() -> None:
    # What the segment count alone got wrong: 32 segments used to mean an inline Map.
    estimate = estimate_loops(10**9, 10**9 * KIB, 32, 600)
    assert estimate.history_events > HISTORY_EVENTS_QUOTA
    assert estimate.distributed


def test_small_tables_stay_inline_whatever_the_segment_count() -> None:
    assert not estimate_loops(10_000, 10_000 * KIB, 100, 600).distributed
    assert not estimate_loops(10**6, 10**6 * KIB, 4, 600).distributed


def test_more_budget_means_fewer_invocations() -> None:
    short = estimate_loops(10**8, 10**8 * KIB, 32, 60)
    long = estimate_loops(10**8, 10**8 * KIB, 32, 600)
    assert short.invocations > long.invocations
    assert short.distributed and not long.distributed


def test_threshold_one_always_distributes() -> None:
    assert estimate_loops(0, 0, 1, 600, threshold=1).distributed


def test_limits_page_numbers_are_the_estimate() -> None:
    text = (ROOT / "docs" / "limits.md").read_text(encoding="utf-8")
    rows = re.findall(r"^\| ([\d,]+) \| ([\d,]+) \| ([\d,]+) \| ([\d,]+) \| ([\d,]+) \| (\w+) \|$",
                      text, re.M)  # fmt: skip
    assert [int(r[0].replace(",", "")) for r in rows] == [10**6, 10**8, 10**9]
    for row in rows:
        items, segments, backfill, verify, events = (int(v.replace(",", "")) for v in row[:5])
        assert segments == plan_segments(items, items * KIB)
        estimate = estimate_loops(items, items * KIB, segments, 600)
        assert (backfill, verify, events) == (
            estimate.backfill_invocations,
            estimate.verify_invocations,
            estimate.history_events,
        ), row
        assert row[5] == ("distributed" if estimate.distributed else "inline")


def test_finish_backfill_is_a_budgeted_loop(endpoint: str, ddb: Any, table_name: Any) -> None:
    target = table_name("wf-tomb")
    create_table(ddb, target)
    state_table = f"state-{uuid.uuid4().hex[:8]}"
    StateStore.ensure_table(ddb, state_table)
    state = StateStore(ddb, state_table, "m-limits")
    state.put_meta(phase=PHASE_BACKFILL)
    keys = [{"pk": {"S": f"k{i:03d}"}} for i in range(7)]
    for key in keys:
        assert apply_delete(ddb, target, key, state) == "tombstone"
    clock = TickingClock()  # every clock read is one second later
    turns = []
    while True:
        result = finish_backfill(ddb, target, state, budget_seconds=3, clock=clock)
        turns.append(result)
        assert state.phase() == PHASE_PLAIN
        if result.done:
            break
        assert len(turns) < 10, "the loop does not end"
    assert len(turns) > 2, "one call removed everything: the budget was not applied"
    assert sum(t.removed for t in turns) == len(keys)
    assert list(state.tombstones()) == []
    for key in keys:
        item = ddb.get_item(TableName=target, Key=key, ConsistentRead=True).get("Item")
        assert item is None or not is_tombstone(item)


def _states() -> dict[str, Any]:
    machine = json.loads(DEFINITION.read_text())
    return dict(machine["States"])


def test_finish_backfill_loops_in_the_state_machine() -> None:
    states = _states()
    finish = states["Finish backfill (remove tombstones)"]
    assert finish["Next"] == "Tombstones removed?"
    choice = states["Tombstones removed?"]
    assert choice["Default"] == "Finish backfill (remove tombstones)"
    assert choice["Choices"][0]["Variable"] == "$.finish.done"


def test_approval_times_out_and_a_stale_checklist_is_run_again() -> None:
    states = _states()
    approval = states["Wait for operator approval"]
    assert approval["TimeoutSecondsPath"] == "$.settings.approval_timeout_seconds"
    assert approval["Parameters"]["Payload"]["execution_arn.$"] == "$$.Execution.Id"
    recheck = states[approval["Next"]]
    assert recheck["Parameters"]["Payload"]["max_age_seconds.$"] == (
        "$.settings.approval_max_age_seconds"
    )
    assert states[recheck["Next"]]["Default"] == "Report NOT READY"
    assert WorkflowSettings().approval_timeout_seconds == 7 * 24 * 3600


@pytest.mark.parametrize("name", sorted(builder.RETRY_UNKNOWN))
def test_retried_unknown_errors_name_existing_tasks(name: str) -> None:
    machine = json.loads(DEFINITION.read_text())
    found = [
        s
        for s in (
            machine["States"].get(name),
            *(
                st["ItemProcessor"]["States"].get(name)
                for st in machine["States"].values()
                if st["Type"] == "Map"
            ),
        )
        if s
    ]
    assert found and found[0]["Type"] == "Task", name


def test_late_approval_runs_the_checklist_again_before_the_cutover(
    ddb: Any, endpoint: str, table_name: Any
) -> None:
    from dynashift.workflow.migrate import MigrationRunner
    from tests.support.reference import assert_identical
    from tests.support.tables import fill, varied_items
    from tests.support.workflow import workflow_input

    source, target = table_name("wf-late-src"), table_name("wf-late-tgt")
    create_table(ddb, source)
    fill(ddb, source, varied_items(30, seed=4))
    # Max age 0: any approval is late, so the checklist runs again after it.
    wf = workflow_input(
        endpoint, source, target, segments=1, approval=True, approval_max_age_seconds=0
    )
    run = MigrationRunner(wf, approve=lambda: True).run()
    assert run.exit_code == 0, run.summary
    assert run.invocations.get("approval") == 1
    assert run.invocations.get("readiness") == 2, run.invocations
    assert_identical(ddb, source, ddb, target, ("pk",))


def test_sam_build_is_not_cached() -> None:
    # A cached build can ship a stale engine layer when only src/dynashift changed.
    text = (ROOT / "samconfig.toml").read_text(encoding="utf-8")
    assert not re.search(r"^\s*cached\s*=\s*true", text, re.M)


def test_functions_know_the_workers_timeout() -> None:
    template = (ROOT / "template.yaml").read_text(encoding="utf-8")
    globals_env = template.split("Globals:", 1)[1].split("Resources:", 1)[0]
    assert "DYNASHIFT_WORKER_TIMEOUT_SECONDS: !Ref WorkerTimeoutSeconds" in globals_env
