"""Verification overlapping the backfill (issue 14 item 1), on the real ASL and local runner.

The concurrent strategy verifies a segment as soon as its own copy is done, inside the backfill
Map's iteration, while the other segments still copy. With more segments than Map slots, a
segment whose iteration (copy, then verification) ends frees the slot a queued segment copies
in, so that segment's copy can only finish after the first one's verification started — which
the old definition (verification in its own Map after "Finish backfill") could never show.
The run goes on under a concurrent writer: rechecked, READY and identical to the source.
"""

from __future__ import annotations

from typing import Any

from dynashift.state import SEGMENT_PREFIX
from dynashift.verify import load_verify_results
from dynashift.workflow.migrate import MigrationRunner
from dynashift.workflow.steps import state_store
from tests.reference import assert_identical
from tests.support.tables import create_table, fill, varied_items
from tests.support.writer import ConcurrentWriter
from tests.workflow.helpers import workflow_input

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
    # Only the verification inside the backfill Map ran, once per segment.
    assert "Verify copied segment" in entered and "Verify segments" not in entered
    assert run.invocations["verify_segment"] == SEGMENTS
    assert writer.failures.total() == 0, writer.summary()
    assert writer.succeeded > 20, writer.summary()
    assert "Drain replication" in entered, f"no cutover: {run.summary}"
    assert run.exit_code == 0, run.summary
    assert run.summary == "READY"
    assert_identical(ddb, source, ddb, target, ("pk",))
