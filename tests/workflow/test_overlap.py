"""Verification overlapping the backfill (issue 14 item 1), on the real ASL and local runner.

The concurrent strategy verifies a segment as soon as its own copy is done, inside the backfill
Map's iteration, while the other segments still copy. With more segments than Map slots, a
segment whose iteration (copy, then verification) ends frees the slot a queued segment copies
in, so that segment's copy can only finish after the first one's verification started — which
the old definition (verification in its own Map after "Finish backfill") could never show.
The run goes on under a concurrent writer: rechecked, READY and identical to the source.

A segment verified early meets the target in phase BACKFILL: it may hold tombstones (I5) and
marked replicated puts that "Finish backfill" removes or strips only after the whole Map. The
second test pins down that neither changes what a verification concluded, in both lookup modes.
"""

from __future__ import annotations

from typing import Any

import pytest

from dynashift.items import REPLICATED_ATTR, is_tombstone
from dynashift.state import PHASE_BACKFILL, SEGMENT_PREFIX, StateStore
from dynashift.tombstones import apply_delete, apply_marked_put, finish_backfill
from dynashift.verify import load_verify_results, verify_table
from dynashift.workflow.migrate import MigrationRunner
from dynashift.workflow.steps import state_store
from tests.support.reference import assert_identical, scan_all
from tests.support.tables import create_table, fill, varied_items
from tests.support.workflow import workflow_input
from tests.support.writer import ConcurrentWriter

ITEMS = 160
SEGMENTS = 4
#: The writer stops once every segment is verified (before the recheck): the drain of the
#: cutover then applies everything it wrote, so the tables must end identical.
STOP_AT = "Start catch-up clock"


def test_segments_are_verified_while_others_still_copy(
    ddb: Any, endpoint: str, table_name: Any
) -> None:
    source, target = table_name("ov-src"), table_name("ov-tgt")
    create_table(ddb, source)
    fill(ddb, source, varied_items(ITEMS, seed=14))
    # Two Map slots for four segments: two segments queue behind the first two iterations.
    wf = workflow_input(
        endpoint, source, target, segments=SEGMENTS, max_concurrency=2, cutover=True
    )
    # 20 items/s per worker (the cap is shared by the two slots): a segment of ~40 items
    # copies for about 2 s, so the writes land during copies and verifications.
    wf = wf.model_copy(update={"spec": wf.spec.model_copy(update={"max_write_rate": 40.0})})
    writer = ConcurrentWriter(
        ddb, source, ("pk",), seed=14, rate_per_s=25, key_space=ITEMS + ITEMS // 5, max_seconds=120
    )
    entered: list[str] = []

    def on_state(name: str) -> None:
        entered.append(name)
        if name == STOP_AT:
            writer.stop()

    with writer:
        assert writer.wait_for(10, timeout=20)
        run = MigrationRunner(wf, on_state=on_state, drain_timeout=120).run()

    state = state_store(wf.spec)
    copied = {
        int(item["segment"]["N"]): float(item["updated"]["N"])
        for item in state.records(SEGMENT_PREFIX)
        if item.get("done", {}).get("BOOL")
    }
    verified = {r.segment: r for r in load_verify_results(state)}
    assert sorted(copied) == sorted(verified) == list(range(SEGMENTS)), (copied, verified)
    assert all(r.done for r in verified.values())
    # Each segment is verified after its own copy; the first verification starts before the
    # last copy ends (the old definition verified only after every copy and "Finish backfill").
    assert all(verified[s].started_at >= copied[s] for s in range(SEGMENTS))
    first_verify = min(r.started_at for r in verified.values())
    assert first_verify < max(copied.values()), (first_verify, copied)
    # The report's timeline shows the overlap as it happened: the backfill ends with the last
    # copy (not with "Finish backfill", which now follows the verifications).
    phases = {p["name"]: p for p in (state.report() or {}).get("phases", [])}
    backfill, verification = phases["backfill"], phases["verification"]
    assert backfill["ended"] == pytest.approx(max(copied.values()))
    assert verification["started"] < backfill["ended"] <= verification["ended"], phases
    # Only the verification inside the backfill Map ran, once per segment.
    assert "Verify copied segment" in entered and "Verify segments" not in entered
    assert run.invocations["verify_segment"] == SEGMENTS
    assert writer.failures.total() == 0, writer.summary()
    assert writer.succeeded > 20, writer.summary()
    assert "Drain replication" in entered, f"no cutover: {run.summary}"
    assert run.exit_code == 0, run.summary
    assert run.summary == "READY"
    assert_identical(ddb, source, ddb, target, ("pk",))


def _key(i: int) -> dict[str, Any]:
    return {"pk": {"S": f"k{i:05d}"}}


def test_finish_backfill_changes_nothing_an_early_verification_concluded(
    ddb: Any, endpoint: str, table_name: Any
) -> None:
    source, target = table_name("ov-tsrc"), table_name("ov-ttgt")
    for name in (source, target):
        create_table(ddb, name)
    rows = varied_items(30, seed=3)
    fill(ddb, source, rows)
    fill(ddb, target, rows)  # the backfill's copy
    spec = workflow_input(endpoint, source, target, segments=2).spec
    StateStore.ensure_table(ddb, spec.state.name)
    state = StateStore(ddb, spec.state.name, spec.migration_id)
    # A non-empty target with a version attribute: replicated puts carry the marker.
    assert state.init_phase(PHASE_BACKFILL, overwrite_older=True)
    marker = state.write_mode().marker
    assert marker
    # What the replicator did during the backfill: a delete (a tombstone that stays one), a
    # delete then a re-create (the tombstone overwritten by a marked put: "recreated"), and
    # an update (a marked put).
    ddb.delete_item(TableName=source, Key=_key(1))
    assert apply_delete(ddb, target, _key(1), state) == "tombstone"
    recreated = {**_key(2), "s": {"S": "re-created"}}
    ddb.put_item(TableName=source, Item=recreated)
    assert apply_delete(ddb, target, _key(2), state) == "tombstone"
    updated = {**_key(3), "n": {"N": "7"}}
    ddb.put_item(TableName=source, Item=updated)
    for image in (recreated, updated):
        key = {"pk": image["pk"]}
        assert apply_marked_put(
            ddb, target, key, image, state=state, marker=marker, condition_kwargs={}
        )
    held = scan_all(ddb, target)
    assert any(REPLICATED_ATTR in item for item in held) and any(map(is_tombstone, held))

    def verdicts() -> dict[str, tuple[int, ...]]:
        out = {}
        for mode in ("batch", "merge"):
            results = verify_table(spec, mode=mode, checkpoint=False)
            fields = ("scanned_source", "scanned_target", "same", "missing", "differing", "extra")
            counts = [sum(getattr(r, field) for r in results) for field in fields]
            out[mode] = (*counts, sum(len(r.suspects) for r in results))
        return out

    early = verdicts()  # still in phase BACKFILL, tombstone and markers in the target
    assert early["batch"] == early["merge"] == (29, 29, 29, 0, 0, 0, 0), early
    cleanup = finish_backfill(ddb, target, state)
    assert (cleanup.removed, cleanup.recreated, cleanup.unmarked) == (1, 2, 2), cleanup
    assert verdicts() == early
    assert_identical(ddb, source, ddb, target, ("pk",))


def test_the_history_estimate_counts_the_verification_inside_the_backfill_iteration() -> None:
    from dynashift.workflow.steps import EVENTS_PER_ITERATION, estimate_loops

    args = (10**6, 10**9, 4, 600.0)
    concurrent = estimate_loops(*args, strategy="concurrent")
    replay = estimate_loops(*args, strategy="replay")
    assert concurrent.invocations == replay.invocations == 8
    # Replay verifies in a second Map: one more iteration per segment in the history.
    assert replay.history_events - concurrent.history_events == 4 * EVENTS_PER_ITERATION
