"""The readiness checklist gathered from real tables and a state store on the moto server."""

from __future__ import annotations

from typing import Any

from dynashift.aws import Side
from dynashift.models import MigrationSpec, TableLocation
from dynashift.readiness import (
    BACKFILL,
    LAG,
    SOURCE_STREAM,
    TARGET_SETTINGS,
    VerificationSummary,
    gather_readiness,
    load_report,
    save_report,
)
from dynashift.state import SegmentState, StateStore, state_table_name
from dynashift.target import TargetOptions
from tests.conftest import REGION


def create(ddb: Any, name: str, *, stream: bool) -> None:
    extra: dict[str, Any] = {}
    if stream:
        extra["StreamSpecification"] = {"StreamEnabled": True, "StreamViewType": "NEW_IMAGE"}
    ddb.create_table(
        TableName=name,
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        AttributeDefinitions=[
            {"AttributeName": "pk", "AttributeType": "S"},
            {"AttributeName": "email", "AttributeType": "S"},
        ],
        GlobalSecondaryIndexes=[
            {
                "IndexName": "by-email",
                "KeySchema": [{"AttributeName": "email", "KeyType": "HASH"}],
                "Projection": {"ProjectionType": "ALL"},
            }
        ],
        BillingMode="PAY_PER_REQUEST",
        Tags=[{"Key": "team", "Value": "core"}],
        **extra,
    )


def test_gathered_checklist_follows_the_tables(ddb: Any, endpoint: str, table_name: Any) -> None:
    source, target = table_name("rsrc"), table_name("rtgt")
    create(ddb, source, stream=True)
    create(ddb, target, stream=False)
    ddb.update_time_to_live(
        TableName=source, TimeToLiveSpecification={"Enabled": True, "AttributeName": "expires"}
    )
    side = Side(region=REGION, endpoint_url=endpoint)
    mid = source[-12:]
    spec = MigrationSpec(
        migration_id=mid,
        source=TableLocation(name=source, side=side),
        target=TableLocation(name=target, side=side),
        state=TableLocation(name=state_table_name(mid), side=side),
        segments=2,
    )
    StateStore.ensure_table(ddb, spec.state.name)
    state = StateStore(ddb, spec.state.name, mid)
    state.save_segment(SegmentState(segment=0, done=True))
    verification = VerificationSummary(
        segments_total=2, segments_verified=2, scanned_source=5, scanned_target=5
    )

    report = gather_readiness(spec, verification=verification, lag_seconds=0.5, state=state)
    failing = {c.name: c.detail for c in report.failing()}
    assert set(failing) == {TARGET_SETTINGS, BACKFILL}
    assert "TTL" in failing[TARGET_SETTINGS] and "expires" in failing[TARGET_SETTINGS]
    assert failing[BACKFILL] == "1/2 segments done"

    # The target catches up with the source's settings and the backfill finishes: READY.
    ddb.update_time_to_live(
        TableName=target, TimeToLiveSpecification={"Enabled": True, "AttributeName": "expires"}
    )
    state.save_segment(SegmentState(segment=1, done=True))
    report = gather_readiness(spec, verification=verification, lag_seconds=0.5, state=state)
    assert report.ready, report.to_text()
    stream = next(c for c in report.checks if c.name == SOURCE_STREAM)
    assert stream.detail == "enabled, NEW_IMAGE"

    # An operator override is respected: tags added on purpose must be on the target.
    options = TargetOptions(tags={"env": "dev"})
    report = gather_readiness(
        spec, verification=verification, lag_seconds=9.0, state=state, target_options=options
    )
    assert {c.name for c in report.failing()} == {TARGET_SETTINGS, LAG}
    assert "env" in next(c.detail for c in report.failing() if c.name == TARGET_SETTINGS)

    save_report(state, report)
    assert load_report(state) == report
