"""Pure parts of replication progress (issue 12): the per-shard caught-up rule, lineage order,
the stream's clock, the DLQ counted whole, and how the checklist shows lag and a lost stream."""

from __future__ import annotations

from email.utils import formatdate
from typing import Any

from dynashift.readiness import LAG, ReadinessInputs, dlq_depth, evaluate
from dynashift.replication_progress import (
    DATE_PRECISION,
    EMPTY_PAGES_AT_TIP,
    ShardWalk,
    lineage_order,
    stream_clock,
)
from dynashift.state import stream_label


def test_a_shard_is_settled_for_t_only_by_evidence() -> None:
    assert ShardWalk("s", done=True).settled_for(100)
    assert not ShardWalk("s").settled_for(100)  # nothing read yet: unknown is not settled
    # The first unapplied record decides: created after T -> everything up to T is applied.
    assert ShardWalk("s", behind_seq="5", behind_created=101).settled_for(100)
    assert not ShardWalk("s", behind_seq="5", behind_created=100).settled_for(100)
    assert not ShardWalk("s", behind_seq="5", behind_created=None).settled_for(100)
    # A record created after T applied: sequence order covers everything before it.
    assert ShardWalk("s", newest_applied=101).settled_for(100)
    assert not ShardWalk("s", newest_applied=100).settled_for(100)
    # The tip: only after EMPTY_PAGES_AT_TIP consecutive empty pages.
    assert not ShardWalk("s", empty_pages=EMPTY_PAGES_AT_TIP - 1).settled_for(100)
    assert ShardWalk("s", empty_pages=EMPTY_PAGES_AT_TIP).settled_for(100)
    # A tip seen by a SAVED walk (reused inside min_interval) that began before t does not
    # cover a record written between that walk and t: the recheck's hot key was once called
    # divergent that way (its "caught up" answered from a walk older than its source read).
    saved = ShardWalk("s", empty_pages=EMPTY_PAGES_AT_TIP, checked_at=99)
    assert not saved.settled_for(100, fresh=False)
    assert saved.settled_for(99, fresh=False)
    assert not ShardWalk("s", trimmed=True, empty_pages=9).settled_for(100)


def test_lineage_order_puts_parents_first_and_ignores_trimmed_parents() -> None:
    shards = [
        {"ShardId": "d", "ParentShardId": "b"},
        {"ShardId": "c", "ParentShardId": "a"},
        {"ShardId": "b", "ParentShardId": "a"},
        {"ShardId": "a"},
        {"ShardId": "e", "ParentShardId": "gone"},
    ]
    order = [s["ShardId"] for s in lineage_order(shards)]
    assert sorted(order) == ["a", "b", "c", "d", "e"]
    assert order.index("a") < order.index("b") < order.index("d")
    assert order.index("a") < order.index("c")


def test_stream_clock_is_the_http_date_and_label_is_short() -> None:
    resp = {"ResponseMetadata": {"HTTPHeaders": {"date": formatdate(1_700_000_000, usegmt=True)}}}
    assert stream_clock(resp) == 1_700_000_000
    assert stream_clock({}) is None
    assert DATE_PRECISION == 1.0
    arn = "arn:aws:dynamodb:us-east-1:123456789012:table/t/stream/2024-01-01T00:00:00.000"
    assert stream_label(arn) == "2024-01-01T00:00:00.000"


class FakeSqs:
    """SQS GetQueueAttributes as AWS answers it (counts as strings)."""

    def __init__(self) -> None:
        self.asked: list[str] = []

    def get_queue_attributes(self, QueueUrl: str, AttributeNames: list[str]) -> Any:
        self.asked = AttributeNames
        values = {
            "ApproximateNumberOfMessages": "1",
            "ApproximateNumberOfMessagesNotVisible": "2",
            "ApproximateNumberOfMessagesDelayed": "4",
        }
        return {"Attributes": {k: v for k, v in values.items() if k in AttributeNames}}


def test_the_dlq_is_counted_whole() -> None:
    sqs = FakeSqs()
    assert dlq_depth(sqs, "https://queue") == 7  # visible + in flight + delayed


def _inputs(**kw: Any) -> ReadinessInputs:
    return ReadinessInputs(migration_id="m", source="s", target="t", **kw)


def test_checklist_shows_lag_detail_and_a_lost_stream() -> None:
    report = evaluate(_inputs(lag_seconds=12.0, lag_detail="shard A: record 7 not applied"))
    (lag,) = [c for c in report.checks if c.name == LAG]
    assert not lag.ok and "12.0 s" in lag.detail and "shard A: record 7" in lag.detail
    lost = evaluate(_inputs(lag_seconds=0.0, replication_problem="the stream lost records"))
    (lag,) = [c for c in lost.checks if c.name == LAG]
    assert not lag.ok and lag.detail == "the stream lost records"
    failed = evaluate(_inputs(replicator_failed_records=2, dlq_messages=3))
    assert "2 failed records; 3 messages on the DLQ" in failed.summary_line()


def test_age_under_a_writer_that_never_pauses() -> None:
    from dynashift.replication_progress import ProgressReport

    # Read to an empty page with nothing unapplied: no lag now (though not "caught up" for now).
    at_page_end = ProgressReport("arn", shards=[ShardWalk("a", empty_pages=1, newest_applied=90)])
    assert not at_page_end.caught_up(100) and at_page_end.age_seconds(100) == 0.0
    behind = ProgressReport(
        "arn",
        shards=[
            ShardWalk("a", behind_seq="7", behind_created=97),
            ShardWalk("b", done=True),
            ShardWalk("c", parent_id="a", behind_seq="9", behind_created=50),  # waits for a
        ],
    )
    assert behind.age_seconds(100) == 3.0
    # Out of budget among applied records: the oldest unapplied record was not seen.
    unknown = ProgressReport("arn", shards=[ShardWalk("a", newest_applied=90)])
    assert unknown.age_seconds(100) is None
