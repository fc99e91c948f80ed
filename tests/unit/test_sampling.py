"""Sampled verification, pure parts: the bound against a hand calculation, the key-space
partition, the seeded sample, the readiness wording and verdict, the loop estimate and the
definition's routing of a sampled verification."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest

from dynashift.readiness import (
    DIVERGENT,
    NOT_READY,
    READY,
    READY_SAMPLED,
    SampleSummary,
    VerificationSummary,
    evaluate,
)
from dynashift.report_html import render_html
from dynashift.sampling import (
    MAX_KEY_SPACE_SEGMENTS,
    MAX_SAMPLED_SEGMENTS,
    divergence_bound,
    draw_sample,
    sample_partition,
)
from dynashift.status import MigrationStatus
from dynashift.workflow import definition
from dynashift.workflow.steps import EVENTS_PER_ITERATION, EVENTS_PER_LOOP_TURN, estimate_loops
from tests.support.readiness import ready_inputs

# --- the bound ---------------------------------------------------------------------------------


def test_bound_matches_a_hand_calculation() -> None:
    # f = 0.25, c = 0.999: ln(0.001) / ln(0.75) = -6.907755 / -0.287682 = 24.0117, so a clean
    # sample shows D < 24.0117: fewer than 25 divergent partition keys.
    assert divergence_bound(0.25, 0.999) == 25
    # Check the two sides of the hand calculation: 24 keys escape a sample with probability
    # 0.75**24 = 0.001004 (> 0.001: not excluded), 25 with 0.75**25 = 0.000753 (excluded).
    assert 0.75**24 > 0.001 > 0.75**25
    # f = 0.1, c = 0.999: ln(0.001) / ln(0.9) = 65.56 -> fewer than 66.
    assert divergence_bound(0.1, 0.999) == 66
    # f = 0.5, c = 0.99: ln(0.01) / ln(0.5) = 6.64 -> fewer than 7.
    assert divergence_bound(0.5, 0.99) == 7
    # Reading everything leaves no room: fewer than 1.
    assert divergence_bound(1.0) == 1


@pytest.mark.parametrize("fraction", [0.0, -0.1, 1.5, math.nan])
def test_bound_refuses_a_fraction_outside_0_1(fraction: float) -> None:
    with pytest.raises(ValueError, match="fraction"):
        divergence_bound(fraction)


# --- the partition and the sample ----------------------------------------------------------------


def test_partition_is_a_power_of_two_with_small_pieces_within_scans_limit() -> None:
    # A small table: at least 4 sampled segments, so m/V is close to f.
    assert sample_partition(0.25, 200) == (16, 4)
    # 10 M items: pieces of at most ~1,000 items (16,384 segments), 1% of them sampled.
    total, sampled = sample_partition(0.01, 10_000_000)
    assert total == 16_384 and sampled == math.ceil(0.01 * 16_384) == 164
    assert 10_000_000 / total <= 1_000
    # A billion items: the finest partition, within Scan's 1,000,000 segments.
    total, sampled = sample_partition(0.001, 10**9)
    assert total == MAX_KEY_SPACE_SEGMENTS <= 1_000_000 and sampled == 525
    # A large fraction of a huge table: the sampled numbers stay within the payload bound.
    total, sampled = sample_partition(0.5, 10**9)
    assert sampled <= MAX_SAMPLED_SEGMENTS and sampled == total // 2
    # m/V never under the fraction asked for.
    for fraction in (0.3, 0.07, 0.9, 1e-7):
        total, sampled = sample_partition(fraction, 12_345)
        assert total & (total - 1) == 0
        assert sampled / total >= fraction and 1 <= sampled <= total


def test_sample_is_deterministic_by_seed_and_uniform_without_repeats() -> None:
    first = draw_sample(0.25, 200, seed=42)
    again = draw_sample(0.25, 200, seed=42)
    other = draw_sample(0.25, 200, seed=43)
    assert first == again
    assert first.segments != other.segments
    assert first.segments == sorted(set(first.segments))
    assert len(first.segments) == 4 and first.total_segments == 16
    assert all(0 <= n < 16 for n in first.segments)
    assert first.effective_fraction == 0.25 and first.bound == 25
    # The record round-trips (what the state store keeps for a resume).
    assert type(first).model_validate(json.loads(first.model_dump_json())) == first
    # Over many seeds every segment number is drawn about equally often (m/V = 1/4 each).
    counts = [0] * 16
    for seed in range(2_000):
        for n in draw_sample(0.25, 200, seed=seed).segments:
            counts[n] += 1
    assert all(400 < c < 600 for c in counts), counts


# --- readiness wording and verdict ---------------------------------------------------------------

SAMPLE = SampleSummary(segments=4, total_segments=16, fraction=0.25, confidence=0.999, bound=25)


def _summary(**fields: Any) -> VerificationSummary:
    values: dict[str, Any] = {
        "segments_total": 4,
        "segments_verified": 4,
        "scanned_source": 50,
        "scanned_target": 50,
        "sample": SAMPLE,
    }
    return VerificationSummary(**(values | fields))


def _all_text(report: Any) -> str:
    return "\n".join(
        [report.to_text(), json.dumps(report.to_json()), render_html(report), report.summary_line()]
    )


def test_clean_sample_is_ready_sampled_states_the_bound_and_never_proven() -> None:
    report = evaluate(ready_inputs(verification=_summary()), now=1.0)
    assert report.verdict == READY_SAMPLED != READY
    assert report.ready  # the operator asked for the sample: exit 0, the cutover may follow
    line = next(c for c in report.checks if c.name == DIVERGENT)
    assert line.ok
    assert line.detail.startswith(
        "sampled: 4 of 16 key-space segments (25%), 0 divergent; "
        "with 99.9% confidence fewer than 25 divergent partition keys"
    ), line.detail
    assert report.summary_line() == (
        "READY (SAMPLED): sampled: 4 of 16 key-space segments (25%), 0 divergent; "
        "with 99.9% confidence fewer than 25 divergent partition keys"
    )
    assert report.counts["divergence_bound"] == 25
    assert report.to_json()["sample"]["bound"] == 25
    text = _all_text(report)
    assert "fewer than 25 divergent partition keys" in text
    assert "proven" not in text.lower()
    assert "identical" not in text.lower()
    assert "READY (SAMPLED)" in render_html(report)


def test_full_verification_is_unchanged() -> None:
    report = evaluate(
        ready_inputs(verification=_summary(sample=None, segments_total=2, segments_verified=2))
    )
    assert report.verdict == READY and report.sample is None
    line = next(c for c in report.checks if c.name == DIVERGENT)
    assert line.detail == "0 divergent (0 suspects rechecked)"
    text = "\n".join([report.to_text(), json.dumps(report.to_json()), report.summary_line()])
    assert "sampled" not in text.lower()
    assert 'id="sample"' not in render_html(report)


def test_divergence_found_in_the_sample_is_not_ready() -> None:
    report = evaluate(ready_inputs(verification=_summary(suspects=3, divergent=3)))
    assert report.verdict == NOT_READY and not report.ready
    line = next(c for c in report.checks if c.name == DIVERGENT)
    assert not line.ok
    assert line.detail == "3 divergent (sampled: 4 of 16 key-space segments (25%))"
    # No bound is claimed from a dirty sample.
    assert "confidence" not in report.to_text() + report.summary_line()
    assert "divergence_bound" not in report.counts


def test_unfinished_sample_is_not_ready() -> None:
    report = evaluate(ready_inputs(verification=_summary(segments_verified=3)))
    assert report.verdict == NOT_READY
    line = next(c for c in report.checks if c.name == DIVERGENT)
    assert "3/4 sampled key-space segments verified" in line.detail


def test_status_shows_the_sample_not_a_full_verification() -> None:
    status = MigrationStatus(
        migration_id="m1",
        segments_total=2,
        verdict=READY_SAMPLED,
        sample="sampled: 4 of 16 key-space segments (25%)",
        sample_verified=3,
        sample_segments=4,
    )
    text = status.to_text()
    assert "verified    3/4 of the sample (sampled: 4 of 16 key-space segments (25%))" in text
    assert "readiness   READY (SAMPLED)" in text


# --- the loops and the definition ----------------------------------------------------------------


def test_estimate_counts_the_sampled_segments() -> None:
    # 1 M items of 1 KB, 4 backfill segments; a sample of 64 of 1,024 key-space segments.
    full = estimate_loops(10**6, 10**9, 4, 600)
    sampled = estimate_loops(10**6, 10**9, 4, 600, sample=(64, 1024))
    assert sampled.backfill_invocations == full.backfill_invocations
    # Each sampled segment (~977 items, ~1 MB) is one verify turn: 64 turns, not 4 long ones.
    assert sampled.verify_invocations == 64 and sampled.verify_segments == 64
    events = (sampled.backfill_invocations + 64) * EVENTS_PER_LOOP_TURN
    # The sample is verified in the separate Map even for the concurrent strategy.
    assert sampled.history_events == events + 4 * 6 + 64 * EVENTS_PER_ITERATION


def _walk(states: dict[str, Any]) -> dict[str, Any]:
    found = dict(states)
    for state in states.values():
        inner = state.get("ItemProcessor", {}).get("States")
        if inner:
            found.update(_walk(inner))
    return found


def test_definition_routes_a_sample_to_the_separate_verify_maps() -> None:
    states = _walk(definition.build()["States"])
    for name in ("Verify segments", "Verify segments (distributed)"):
        assert states[name]["ItemsPath"] == "$.plan.verify_segments"
    for name in ("Backfill segments", "Backfill segments (distributed)"):
        assert states[name]["ItemsPath"] == "$.plan.segments"
    # In-Map verification only for the concurrent strategy WITHOUT a sample.
    rule = states["Verify segment now?"]["Choices"][0]
    assert {"Variable": "$.spec.verify_sample", "IsNull": True} in rule["And"]
    # After the backfill: a sampled concurrent run goes to the verify Maps (its replicator
    # already runs: not through the replay strategy's start).
    choices = states["Segments verified already?"]["Choices"]
    assert choices[0]["Next"] == "Start catch-up clock"
    assert choices[1]["Next"] == "Verify in parallel?"
    assert {"Variable": "$.spec.strategy", "StringEquals": "concurrent"} in choices[1]["Or"]
    selector = states["Plan segments"]["ResultSelector"]
    assert selector["verify_segments.$"] == "$.Payload.verify_segments"


# --- the flag ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("flag", "expected"),
    [(["--verify-sample", "0.25"], 0.25), (["--verify-sample", "1"], None), ([], None)],
)
def test_flag_sets_the_spec_field_and_one_means_full(
    flag: list[str], expected: float | None
) -> None:
    from dynashift.cli.main import build_parser
    from dynashift.cli.migrate_cmd import _spec

    argv = ["migrate", "--source", "us-east-1:src-t", "--target", "us-east-1:tgt-t", *flag]
    args = build_parser().parse_args(argv)
    assert _spec(args).verify_sample == expected
