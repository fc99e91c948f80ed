"""A readiness checklist's inputs with every check holding (tests change what they test)."""

from __future__ import annotations

from typing import Any

from dynashift.readiness import ReadinessInputs, VerificationSummary


def ready_inputs(**changes: Any) -> ReadinessInputs:
    """Every check of the checklist holds; `changes` replace fields."""
    base = ReadinessInputs(
        migration_id="m1",
        source="us-east-1:orders",
        target="eu-west-1:orders",
        target_status="ACTIVE",
        config_differences=[],
        stream_enabled=True,
        stream_view_type="NEW_AND_OLD_IMAGES",
        replicator_failed_records=0,
        dlq_messages=0,
        segments_total=4,
        segments_done=4,
        lag_seconds=0.4,
        lag_threshold_seconds=5.0,
        verification=VerificationSummary(
            segments_total=4,
            segments_verified=4,
            scanned_source=1000,
            scanned_target=1000,
            suspects=3,
        ),
    )
    return base.model_copy(update=changes)
