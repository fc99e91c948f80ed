"""Sampled verification on the moto server: the sample is drawn once and kept by a resume, the
verification scans only the sampled key-space segments (Scan calls counted with a botocore
hook), a clean sample states its bound, a divergence in a sampled segment is NOT READY."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import boto3
import pytest

from dynashift.aws import Side
from dynashift.errors import BadInputError
from dynashift.models import MigrationSpec, TableLocation
from dynashift.readiness import (
    DIVERGENT,
    NOT_READY,
    READY_SAMPLED,
    evaluate,
)
from dynashift.sampling import VerifySample, check_sample, plan_sample, recorded_sample
from dynashift.state import StateStore, state_table_name
from dynashift.status import migration_status
from dynashift.target import TargetOptions
from dynashift.verify import (
    VerifyConfig,
    recheck_migration,
    segment_config,
    verification_summary,
    verify_segment,
)
from dynashift.workflow.steps import StepEvent, ValidateEvent, plan_segments, validate
from tests.conftest import REGION
from tests.support.readiness import ready_inputs
from tests.support.tables import create_table, fill, simple_items

ITEMS = 240
FRACTION = 0.25


class Tables:
    def __init__(self, ddb: Any, endpoint: str, table_name: Callable[[str], str]) -> None:
        self.ddb, self.endpoint = ddb, endpoint
        self.source, self.target = table_name("smp-src"), table_name("smp-tgt")
        for name in (self.source, self.target):
            create_table(ddb, name)
            fill(ddb, name, simple_items(ITEMS))
        side = Side(region=REGION, endpoint_url=endpoint)
        mid = self.source[-24:]
        self.spec = MigrationSpec(
            migration_id=mid,
            source=TableLocation(name=self.source, side=side),
            target=TableLocation(name=self.target, side=side),
            state=TableLocation(name=state_table_name(mid), side=side),
            segments=2,
            verify_sample=FRACTION,
        )
        StateStore.ensure_table(ddb, self.spec.state.name)
        self.store = StateStore(ddb, self.spec.state.name, mid)
        #: (table, Segment, TotalSegments) of every Scan the verification's clients sent.
        self.scans: list[tuple[str, int | None, int | None]] = []

    def client(self) -> Any:
        client = boto3.client("dynamodb", region_name=REGION, endpoint_url=self.endpoint)

        def record(params: dict[str, Any], **_: Any) -> None:
            self.scans.append(
                (params["TableName"], params.get("Segment"), params.get("TotalSegments"))
            )

        client.meta.events.register("provide-client-params.dynamodb.Scan", record)
        return client

    def segment_keys(self, segment: int, total: int) -> list[str]:
        """The partition keys of one key-space segment, read independently of the engine."""
        keys: list[str] = []
        start: dict[str, Any] | None = None
        while True:
            extra = {"ExclusiveStartKey": start} if start else {}
            page = self.ddb.scan(
                TableName=self.source, Segment=segment, TotalSegments=total, **extra
            )
            keys += [i["pk"]["S"] for i in page["Items"]]
            start = page.get("LastEvaluatedKey")
            if not start:
                return keys

    def verify_sample(self, sample: VerifySample) -> None:
        source, target = self.client(), self.client()
        for n in sample.segments:
            config = segment_config(self.spec, self.store, n, VerifyConfig())
            result = verify_segment(
                self.spec,
                n,
                None,
                config,
                source_client=source,
                target_client=target,
                state=self.store,
            )
            while not result.done:
                result = verify_segment(
                    self.spec,
                    n,
                    result,
                    config,
                    source_client=source,
                    target_client=target,
                    state=self.store,
                )


@pytest.fixture
def tables(ddb: Any, endpoint: str, table_name: Callable[[str], str]) -> Tables:
    return Tables(ddb, endpoint, table_name)


def test_sample_is_drawn_once_and_a_resume_verifies_the_same(tables: Tables) -> None:
    # Before the plan step drew it, nothing counts as verified.
    assert verification_summary(tables.spec, tables.store) is None
    plan = plan_segments(StepEvent(spec=tables.spec))
    sample = recorded_sample(tables.store)
    assert sample is not None and sample.fraction == FRACTION
    assert plan.verify_segments == sample.segments and plan.segments == [0, 1]
    assert len(sample.segments) == 4 and sample.total_segments == 16
    # A resume (the plan step again, another store object) keeps the seed and the numbers.
    plan_again = plan_segments(StepEvent(spec=tables.spec))
    again = plan_sample(
        StateStore(tables.ddb, tables.spec.state.name, tables.spec.migration_id),
        FRACTION,
        ITEMS,
        seed=sample.seed + 1,
    )
    assert plan_again.verify_segments == sample.segments and again == sample
    # Another fraction, or a full verification, on resume: refused naming the field, by the
    # read-only Validate step already.
    for other in (0.5, None):
        with pytest.raises(BadInputError, match=r"^spec\.verify_sample: .*resume it with"):
            check_sample(tables.store, other)
    resumed = tables.spec.model_copy(update={"verify_sample": 0.5})
    options = TargetOptions(allow_nonempty_target=True)
    with pytest.raises(BadInputError, match=r"^spec\.verify_sample: 0\.5, but"):
        validate(ValidateEvent(spec=resumed, target_options=options))
    assert recorded_sample(tables.store) == sample
    # A segment number outside the sample is refused by the worker's config.
    outside = next(n for n in range(sample.total_segments) if n not in sample.segments)
    with pytest.raises(BadInputError, match="not one of the 4 sampled key-space segments"):
        segment_config(tables.spec, tables.store, outside, VerifyConfig())


def test_sampled_verification_reads_only_the_sampled_segments(tables: Tables) -> None:
    plan_segments(StepEvent(spec=tables.spec))
    sample = recorded_sample(tables.store)
    assert sample is not None
    tables.verify_sample(sample)
    by_table = {t for t, _, _ in tables.scans}
    assert by_table == {tables.source, tables.target}
    # Every Scan of either table is one of the sampled key-space segments, each one read.
    assert {(seg, total) for _, seg, total in tables.scans} == {
        (n, sample.total_segments) for n in sample.segments
    }
    summary = verification_summary(tables.spec, tables.store)
    assert summary is not None and summary.sample is not None
    # The source items read are exactly those of the sampled segments (an independent scan),
    # about a quarter of the table.
    expected = sum(len(tables.segment_keys(n, sample.total_segments)) for n in sample.segments)
    assert summary.scanned_source == summary.scanned_target == expected
    assert 0 < expected < ITEMS / 2
    assert summary.segments_verified == summary.segments_total == 4
    report = evaluate(ready_inputs(verification=summary))
    assert report.verdict == READY_SAMPLED
    detail = next(c.detail for c in report.checks if c.name == DIVERGENT)
    assert detail.startswith(
        "sampled: 4 of 16 key-space segments (25%), 0 divergent; "
        "with 99.9% confidence fewer than 25 divergent partition keys"
    )
    assert "proven" not in report.to_text().lower()
    # `dynashift status` counts the sample, not the backfill's segments.
    status = migration_status(tables.store, tables.spec.segments)
    assert (status.sample_verified, status.sample_segments) == (4, 4)
    assert "verified    4/4 of the sample (sampled: 4 of 16 key-space segments (25%))" in (
        status.to_text()
    )
    assert all(s.verified is None for s in status.segments)


def test_divergence_in_a_sampled_segment_is_not_ready(tables: Tables) -> None:
    plan_segments(StepEvent(spec=tables.spec))
    sample = recorded_sample(tables.store)
    assert sample is not None
    inside = next(
        keys for n in sample.segments if (keys := tables.segment_keys(n, sample.total_segments))
    )[0]
    tables.ddb.delete_item(TableName=tables.target, Key={"pk": {"S": inside}})
    tables.verify_sample(sample)
    recheck_migration(
        tables.spec,
        state=tables.store,
        source_client=tables.client(),
        target_client=tables.client(),
    )
    summary = verification_summary(tables.spec, tables.store)
    assert summary is not None and summary.divergent == 1
    report = evaluate(ready_inputs(verification=summary))
    assert report.verdict == NOT_READY and not report.ready
    detail = next(c.detail for c in report.checks if c.name == DIVERGENT)
    assert detail == "1 divergent (sampled: 4 of 16 key-space segments (25%))"
