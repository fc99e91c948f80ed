"""The readiness verdict: READY only when every required check holds; each failure named."""

from __future__ import annotations

import json
from typing import Any

import pytest

from dynashift.readiness import (
    BACKFILL,
    COUNTS,
    DIVERGENT,
    LAG,
    NOT_READY,
    READY,
    REPLICATOR,
    SOURCE_STREAM,
    TARGET_ACTIVE,
    TARGET_SETTINGS,
    VerificationSummary,
    evaluate,
    publish_report,
)
from tests.support.readiness import ready_inputs

good = ready_inputs


def test_all_checks_hold_is_ready() -> None:
    report = evaluate(good(), now=1.0)
    assert report.verdict == READY and report.ready
    assert report.failing() == []
    assert report.summary_line() == "READY"
    assert report.counts["source_items"] == 1000
    text = report.to_text()
    assert text.splitlines()[-1] == "READY"
    assert "0 divergent (3 suspects rechecked)" in text


def verification(**changes: Any) -> VerificationSummary:
    v = good().verification
    assert v is not None
    return v.model_copy(update=changes)


@pytest.mark.parametrize(
    ("changes", "failing", "detail"),
    [
        ({"target_status": "UPDATING"}, TARGET_ACTIVE, "status UPDATING"),
        ({"target_status": None}, TARGET_ACTIVE, "unknown"),
        ({"config_differences": ["TTL: source expires, target off"]}, TARGET_SETTINGS, "TTL"),
        ({"config_differences": None}, TARGET_SETTINGS, "not compared"),
        ({"stream_enabled": False}, SOURCE_STREAM, "disabled"),
        ({"stream_view_type": "KEYS_ONLY"}, SOURCE_STREAM, "new images required"),
        ({"stream_enabled": None}, SOURCE_STREAM, "unknown"),
        ({"replicator_failed_records": 2}, REPLICATOR, "2 failed records"),
        ({"dlq_messages": 5}, REPLICATOR, "5 messages on the DLQ"),
        ({"replicator_failed_records": None}, REPLICATOR, "unknown"),
        ({"segments_done": 3}, BACKFILL, "3/4 segments done"),
        ({"segments_total": 0, "segments_done": 0}, BACKFILL, "no segments planned"),
        ({"lag_seconds": 12.5}, LAG, "12.5 s (threshold 5.0 s)"),
        ({"lag_seconds": 5.0}, LAG, "5.0 s"),
        ({"lag_seconds": None}, LAG, "unknown"),
        ({"lag_seconds": 7.0, "lag_threshold_seconds": 10.0}, None, None),
        ({"verification": None}, DIVERGENT, "not verified"),
        ({"verification": verification(divergent=2)}, DIVERGENT, "2 divergent"),
        ({"verification": verification(unsettled=1)}, DIVERGENT, "kept changing"),
        ({"verification": verification(unchecked=4)}, DIVERGENT, "4 suspects not rechecked"),
        ({"verification": verification(segments_verified=3)}, DIVERGENT, "3/4 segments"),
        ({"dlq_messages": None}, None, None),
    ],
)
def test_each_failing_check_makes_not_ready(
    changes: dict[str, Any], failing: str | None, detail: str | None
) -> None:
    report = evaluate(good(**changes))
    if failing is None:
        assert report.ready, report.to_text()
        return
    assert report.verdict == NOT_READY
    assert [c.name for c in report.failing()] == [failing]
    (check,) = report.failing()
    assert detail in check.detail
    line = report.summary_line()
    assert line.startswith("NOT READY: ") and failing in line and detail in line
    assert "FAIL" in report.to_text()


def test_counts_are_informational() -> None:
    report = evaluate(good(verification=verification(scanned_target=999)))
    assert report.ready
    counts = next(c for c in report.checks if c.name == COUNTS)
    assert not counts.ok and not counts.required
    assert "source 1000, target 999" in counts.detail


def test_several_failures_are_all_listed() -> None:
    report = evaluate(good(lag_seconds=30.0, target_status="CREATING"))
    assert [c.name for c in report.failing()] == [TARGET_ACTIVE, LAG]


def test_report_json_round_trip() -> None:
    report = evaluate(good(), now=5.0)
    data = json.loads(json.dumps(report.to_json()))
    assert data["verdict"] == "READY" and data["generated_at"] == 5.0
    assert type(report).model_validate(data) == report


def test_publish_to_sns_takes_a_client() -> None:
    sent: dict[str, Any] = {}

    class FakeSns:
        def publish(self, **kwargs: Any) -> dict[str, str]:
            sent.update(kwargs)
            return {"MessageId": "m-1"}

    report = evaluate(good(lag_seconds=9.0))
    assert publish_report(FakeSns(), "arn:aws:sns:us-east-1:123456789012:t", report) == "m-1"
    assert sent["Subject"] == "dynashift m1: NOT READY"
    assert sent["Message"].startswith("Readiness of us-east-1:orders")
    assert '"verdict": "NOT READY"' in sent["Message"]


# --- pure rules of the verification step -----------------------------------------------------


def test_auto_mode_rule() -> None:
    from dynashift.verify import choose_mode

    small, big = {"ItemCount": 8_000}, {"ItemCount": 400_000}
    assert choose_mode(small, small, 4, merge_buffer=5_000) == "merge"  # 2,000 per segment
    assert choose_mode(big, small, 4, merge_buffer=5_000) == "batch"  # 100,000 per segment
    assert choose_mode(big, big, 4, merge_buffer=5_000, same_scan_order=True) == "merge"
    assert choose_mode(big, big, 100, merge_buffer=5_000) == "merge"  # 4,000 per segment


def test_read_units_follow_dynamodb_rounding() -> None:
    from dynashift.verify import ReadCost

    item = {"pk": {"S": "k"}, "v": {"S": "x" * 5000}}  # 5,003 bytes: two 4 KB units
    small = {"pk": {"S": "k"}}
    cost = ReadCost()
    cost.scan_page([small] * 100)  # 300 bytes: one unit, half for eventual consistency
    assert (cost.requests, cost.read_units) == (1, 0.5)
    cost.scan_page([item, item])  # 10,006 bytes: three units
    assert cost.read_units == 0.5 + 1.5
    cost = ReadCost()
    cost.gets([item, small], keys=3, requests=1, consistent=False)  # 2 + 1 + 1 (absent key)
    assert cost.read_units == 2.0
    cost.gets([item], keys=1, requests=1, consistent=True)
    assert (cost.requests, cost.read_units, cost.items_read) == (2, 4.0, 3)


def test_phases_from_execution_history() -> None:
    from datetime import UTC, datetime

    from dynashift.readiness import phases_from_history

    def at(second: int) -> datetime:
        return datetime(2026, 1, 1, 0, 0, second, tzinfo=UTC)

    def entered(name: str, second: int) -> dict[str, Any]:
        return {"timestamp": at(second), "stateEnteredEventDetails": {"name": name}}

    def exited(name: str, second: int) -> dict[str, Any]:
        return {"timestamp": at(second), "stateExitedEventDetails": {"name": name}}

    events = [
        entered("Validate input", 0),
        exited("Validate input", 1),
        entered("Backfill segments", 2),
        entered("Backfill segment", 2),
        exited("Backfill segment", 10),
        entered("Backfill segment", 3),
        exited("Backfill segment", 12),
        exited("Backfill segments", 12),
        entered("Verify segments", 13),
        exited("Verify segments", 17),
    ]
    groups = {
        "Backfill segments": "Backfill",
        "Backfill segment": "Backfill",
        "Verify segments": "Verify",
    }
    phases = phases_from_history(events, groups, items={"Backfill": 1000})
    assert [(p.name, p.seconds, p.items) for p in phases] == [
        ("Backfill", 10.0, 1000),
        ("Verify", 4.0, 0),
    ]
    assert phases[0].items_per_second == 100.0
    assert [p.name for p in phases_from_history(events)][:2] == [
        "Validate input",
        "Backfill segments",
    ]
