"""The status view of a run (`dynashift status`): phase, per-segment progress, lag and the saved
verdict, read from the state store plus what the caller knows of the execution.

A sampled verification (`dynashift.sampling`) verifies key-space segments of its own partition,
not the backfill's: its progress is one line ("sampled: m of V key-space segments"), never
shown per backfill segment, and never called a full verification."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from dynashift.approval_token import load_approval_token
from dynashift.readiness import VERIFY_PREFIX
from dynashift.sampling import recorded_sample, sample_scope
from dynashift.state import StateStore


class SegmentProgress(BaseModel):
    model_config = ConfigDict(extra="forbid")

    segment: int
    backfill_done: bool = False
    backfill_counters: dict[str, int] = Field(default_factory=dict)
    verified: bool | None = None
    suspects: int | None = None


class MigrationStatus(BaseModel):
    """Phase, per-segment progress and lag of one run, from its execution and state store."""

    model_config = ConfigDict(extra="forbid")

    migration_id: str
    execution_status: str | None = None
    current_step: str | None = None
    phase: str | None = None
    outcome: str | None = None
    awaiting_approval: bool = False
    segments_total: int = 0
    segments: list[SegmentProgress] = Field(default_factory=list)
    lag_seconds: float | None = None
    lag_detail: str = ""
    verdict: str | None = None
    #: A sampled verification: `sampled: 8 of 32 key-space segments (25%)`.
    sample: str | None = None
    #: Sampled key-space segments whose verification is done.
    sample_verified: int = 0
    sample_segments: int = 0

    def to_text(self) -> str:
        done = sum(1 for s in self.segments if s.backfill_done)
        verified = sum(1 for s in self.segments if s.verified)
        verified_line = (
            f"  verified    {verified}/{self.segments_total} segments"
            if self.sample is None
            else f"  verified    {self.sample_verified}/{self.sample_segments} of the sample "
            f"({self.sample})"
        )
        lines = [
            f"migration {self.migration_id}",
            f"  execution   {self.execution_status or '-'}"
            + (f" (step: {self.current_step})" if self.current_step else ""),
            f"  phase       {self.phase or '-'}",
            f"  backfill    {done}/{self.segments_total} segments done",
            verified_line,
            "  lag         "
            + ("-" if self.lag_seconds is None else f"{self.lag_seconds:.1f} s")
            + (f" ({self.lag_detail})" if self.lag_detail else ""),
        ]
        if self.awaiting_approval:
            lines.append("  waiting for approval: dynashift approve --execution <ARN>")
        if self.verdict:
            lines.append(f"  readiness   {self.verdict}")
        if self.outcome:
            lines.append(f"  outcome     {self.outcome}")
        for s in self.segments:
            counters = ", ".join(f"{k} {v}" for k, v in sorted(s.backfill_counters.items()))
            check = {None: "-", True: "verified", False: "verifying"}[s.verified]
            suspects = f", {s.suspects} suspects" if s.suspects else ""
            lines.append(
                f"    segment {s.segment:>4}: backfill {'done' if s.backfill_done else 'running'}"
                f"{' (' + counters + ')' if counters else ''}; {check}{suspects}"
            )
        return "\n".join(lines)


def migration_status(
    state: StateStore,
    segments_total: int,
    *,
    execution: Mapping[str, Any] | None = None,
    current_step: str | None = None,
    lag_seconds: float | None = None,
    lag_detail: str = "",
) -> MigrationStatus:
    """What the state store says about a run (plus what the caller knows of its execution)."""
    meta = state.get_meta() or {}
    sample = recorded_sample(state)
    verify: dict[int, tuple[bool, int]] = {}
    sampled: dict[int, bool] = {}
    for item in state.records(VERIFY_PREFIX):
        data = json.loads(item["data"]["S"])
        if sample is not None:
            if int(data.get("total_segments", 0)) == sample.total_segments:
                sampled[int(data["segment"])] = bool(data.get("done"))
            continue
        verify[int(data["segment"])] = (
            bool(data.get("done")),
            int(data.get("missing", 0)) + int(data.get("differing", 0)) + int(data.get("extra", 0)),
        )
    backfill = {s.segment: s for s in state.segments()}
    segments = []
    for n in range(segments_total):
        seg = backfill.get(n)
        ver = verify.get(n)
        segments.append(
            SegmentProgress(
                segment=n,
                backfill_done=bool(seg and seg.done),
                backfill_counters=dict(seg.counters) if seg else {},
                verified=None if ver is None else ver[0],
                suspects=None if ver is None else ver[1],
            )
        )
    saved = state.report()
    if lag_seconds is None and meta.get("lag_seconds") is not None:
        lag_seconds = float(meta["lag_seconds"])
    return MigrationStatus(
        migration_id=state.migration_id,
        execution_status=(execution or {}).get("status"),
        current_step=current_step,
        phase=meta.get("phase"),
        outcome=meta.get("outcome"),
        awaiting_approval=load_approval_token(state) is not None,
        segments_total=segments_total,
        segments=segments,
        lag_seconds=lag_seconds,
        lag_detail=lag_detail,
        verdict=(saved or {}).get("verdict"),
        sample=None
        if sample is None
        else sample_scope(len(sample.segments), sample.total_segments, sample.effective_fraction),
        sample_verified=sum(1 for n in (sample.segments if sample else []) if sampled.get(n)),
        sample_segments=len(sample.segments) if sample else 0,
    )
