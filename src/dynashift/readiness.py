"""The readiness checklist, its verdict, and where the report goes (terminal, JSON, state, SNS).

Size: one module because the checklist table below, the pure verdict that fills it (`evaluate`)
and the report model it returns are read together; gathering the inputs from the tables is the
part to move into a module of its own next.

The verdict is `READY` only when every required check holds (invariant I6); otherwise it is
`NOT READY` and names the failing checks. The checks:

| check                     | holds when                                                        |
|---------------------------|-------------------------------------------------------------------|
| `target ACTIVE`           | DescribeTable of the target says ACTIVE                            |
| `target settings`         | GSIs, TTL, PITR, billing, tags... as the source and overrides ask  |
| `source stream`           | the source stream is enabled with new images                      |
| `replicator healthy`      | no failed stream records and nothing on the replicator's DLQ       |
| `backfill complete`       | every planned segment is marked done in the state store            |
| `replication lag`         | lag is known and below the threshold (default 5 s), and the stream |
|                           | still held every change since the first scan page (replay)         |
| `divergent items`         | zero keys still differ after the recheck, none left unchecked      |
|                           | (keys differing only by a TTL expiry are counted apart, noted)     |
|                           | — or, sampled, zero in the sample, with the bound it proves       |
| `item counts` (info only) | source and target items seen by the verification scans             |

Sampled verification (`--verify-sample`, `dynashift.sampling`) proves less than a full one: not
that the tables are identical, only that, with the stated confidence, fewer than N partition keys
diverge. A clean sample is still a pass — the operator asked for exactly that trade, and a run
that could never pass would make the option useless (exit 0, `ready` true, so the cutover may
follow) — but it can never be taken for a full verification: the verdict is `READY (SAMPLED)`,
not `READY`, so a script or a Choice comparing the verdict with "READY" does not match it; the
divergence line, the summary line, the JSON (`sample`), the HTML page and `dynashift status` all
say "sampled: m of V key-space segments" with the bound, and never "proven" or "identical".
Divergent keys found in a sample are real (rechecked like any): NOT READY, reported as always.

`evaluate` is pure (inputs in, report out) so every verdict is unit-tested without AWS;
`gather_readiness` collects the inputs from the tables and the state store. A value that could
not be measured fails its check ("unknown"), so READY is never reached by omission.

The approval task token of the cutover step lives in `dynashift.approval_token` and the status
view of a run in `dynashift.status`; the token's functions are re-exported here for older
importers.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from dynashift.approval_token import (  # noqa: F401  (re-exported for older importers)
    APPROVAL_SK,
    clear_approval_token,
    load_approval_token,
    save_approval_token,
    send_approval,
)
from dynashift.clock import SYSTEM_CLOCK
from dynashift.export_backfill import export_files_loaded
from dynashift.models import PROCESS_CLIENTS, Clients
from dynashift.sampling import SampleSummary, sample_scope
from dynashift.state import StateStore, state_store

Verdict = Literal["READY", "READY (SAMPLED)", "NOT READY"]

READY: Verdict = "READY"
#: Every check holds, the verification being a sample (module docstring).
READY_SAMPLED: Verdict = "READY (SAMPLED)"
NOT_READY: Verdict = "NOT READY"

TARGET_ACTIVE = "target ACTIVE"
TARGET_SETTINGS = "target settings"
SOURCE_STREAM = "source stream"
REPLICATOR = "replicator healthy"
BACKFILL = "backfill complete"
LAG = "replication lag"
DIVERGENT = "divergent items"
COUNTS = "item counts"

#: State store sort keys owned by this module (see state.py for the layout).
VERIFY_PREFIX = "verify#"


# --- models ----------------------------------------------------------------------------------


class VerificationSummary(BaseModel):
    """Verification of every segment plus the recheck, reduced to what the checklist needs."""

    model_config = ConfigDict(extra="forbid")

    segments_total: int = 0
    segments_verified: int = 0
    scanned_source: int = 0
    scanned_target: int = 0
    #: Keys found missing / differing / extra by the first pass (before the recheck).
    suspects: int = 0
    #: Keys still different after the strongly consistent recheck.
    divergent: int = 0
    #: Keys that kept changing during every recheck round (could not be settled).
    unsettled: int = 0
    #: Suspects beyond the bounded list: never rechecked, so not proven equal.
    unchecked: int = 0
    #: Divergent keys written back from the source (`repair=True`).
    repaired: int = 0
    #: Keys different only because DynamoDB's TTL expired the item on one side (extra target
    #: items the source expired, kept while TTL deletes are skipped): not divergent.
    expired: int = 0
    #: A sampled verification (segments_* then count the sampled key-space segments); None:
    #: every segment of the table was verified.
    sample: SampleSummary | None = None


class CheckItem(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str
    ok: bool
    detail: str
    #: Informational checks never change the verdict.
    required: bool = True


class PhaseTiming(BaseModel):
    """One phase of the workflow for the timeline (epoch seconds)."""

    model_config = ConfigDict(extra="forbid")

    name: str
    started: float | None = None
    ended: float | None = None
    items: int = 0

    @property
    def seconds(self) -> float | None:
        if self.started is None or self.ended is None:
            return None
        return max(self.ended - self.started, 0.0)

    @property
    def items_per_second(self) -> float | None:
        seconds = self.seconds
        if not seconds or not self.items:
            return None
        return self.items / seconds


def _epoch(value: Any) -> float:
    return value.timestamp() if hasattr(value, "timestamp") else float(value)


def phases_from_history(
    events: Iterable[Mapping[str, Any]],
    groups: Mapping[str, str] | None = None,
    items: Mapping[str, int] | None = None,
) -> list[PhaseTiming]:
    """Phase timings from a Step Functions execution history (GetExecutionHistory events).

    `groups` maps state names to phase labels (states it does not name are left out); without
    it every state is its own phase. A phase spans its states' first entry to their last exit,
    in order of first entry. `items` gives the items processed per phase label (items/s).
    """
    spans: dict[str, list[float | None]] = {}
    for event in events:
        for key, idx in (("stateEnteredEventDetails", 0), ("stateExitedEventDetails", 1)):
            details = event.get(key)
            if not details:
                continue
            name = str(details["name"])
            label = groups.get(name) if groups is not None else name
            if label is None:
                continue
            when = _epoch(event["timestamp"])
            span = spans.setdefault(label, [None, None])
            if idx == 0:
                span[0] = when if span[0] is None else min(span[0], when)
            else:
                span[1] = when if span[1] is None else max(span[1], when)
    ordered = sorted(spans.items(), key=lambda kv: kv[1][0] if kv[1][0] is not None else 0.0)
    return [
        PhaseTiming(name=label, started=start, ended=end, items=(items or {}).get(label, 0))
        for label, (start, end) in ordered
    ]


class ReadinessInputs(BaseModel):
    """Everything the verdict depends on, measured elsewhere. None means "not measured"."""

    model_config = ConfigDict(extra="forbid")

    migration_id: str
    source: str
    target: str
    target_status: str | None = None
    #: Differences between the source's and the target's settings; None: not compared.
    config_differences: list[str] | None = None
    stream_enabled: bool | None = None
    stream_view_type: str | None = None
    replicator_failed_records: int | None = None
    #: Messages on the replicator's dead-letter queue; None: there is no DLQ (local runs).
    dlq_messages: int | None = None
    segments_total: int = 0
    segments_done: int = 0
    backfill_unit: str = "segments"  # or the export strategy's data files
    lag_seconds: float | None = None
    lag_threshold_seconds: float = Field(default=5.0, gt=0)
    #: What the lag check found (records behind, the shard behind), shown with the lag.
    lag_detail: str = ""
    #: Why replication cannot be trusted at all (e.g. the stream lost records); fails `LAG`.
    replication_problem: str | None = None
    verification: VerificationSummary | None = None
    phases: list[PhaseTiming] = Field(default_factory=list)


class ReadinessReport(BaseModel):
    """The checklist and its verdict: printed, returned as execution output, saved, published."""

    model_config = ConfigDict(extra="forbid")

    migration_id: str
    source: str
    target: str
    generated_at: float
    verdict: Verdict
    checks: list[CheckItem]
    counts: dict[str, int] = Field(default_factory=dict)
    phases: list[PhaseTiming] = Field(default_factory=list)
    #: Set when the verification was a sample: what it read and the bound it proves.
    sample: SampleSummary | None = None

    @property
    def ready(self) -> bool:
        """Every required check holds (READY, or READY (SAMPLED) when sampling was asked for)."""
        return self.verdict in (READY, READY_SAMPLED)

    def failing(self) -> list[CheckItem]:
        return [c for c in self.checks if c.required and not c.ok]

    def summary_line(self) -> str:
        """`READY`, `READY (SAMPLED): sampled: ...; with 99.9% confidence fewer than N ...` or
        `NOT READY: <check>: <detail>; ...` — the CLI prints this last."""
        if self.verdict == READY_SAMPLED and self.sample is not None:
            return f"{READY_SAMPLED}: {self.sample.line(0)}"
        if self.ready:
            return self.verdict
        return f"{NOT_READY}: " + "; ".join(f"{c.name}: {c.detail}" for c in self.failing())

    def to_json(self) -> dict[str, Any]:
        return self.model_dump(mode="json")

    def to_text(self) -> str:
        """A fixed-width table for the terminal, the verdict last."""
        width = max(len(c.name) for c in self.checks) if self.checks else 10
        lines = [
            f"Readiness of {self.source} -> {self.target} (migration {self.migration_id})",
            "",
        ]
        for check in self.checks:
            mark = "ok" if check.ok else ("FAIL" if check.required else "--")
            lines.append(f"  [{mark:>4}] {check.name:<{width}}  {check.detail}")
        lines += ["", self.summary_line()]
        return "\n".join(lines)


# --- the verdict (pure) ----------------------------------------------------------------------


def _fmt_seconds(value: float) -> str:
    return f"{value:.1f} s"


def evaluate(inputs: ReadinessInputs, now: float | None = None) -> ReadinessReport:
    """The checklist for `inputs`; READY only when every required check holds."""
    checks: list[CheckItem] = []

    status = inputs.target_status
    checks.append(
        CheckItem(
            name=TARGET_ACTIVE,
            ok=status == "ACTIVE",
            detail=f"status {status}" if status else "unknown (target not described)",
        )
    )

    diffs = inputs.config_differences
    if diffs is None:
        checks.append(CheckItem(name=TARGET_SETTINGS, ok=False, detail="not compared"))
    else:
        checks.append(
            CheckItem(
                name=TARGET_SETTINGS,
                ok=not diffs,
                detail="GSIs, TTL, PITR, billing and tags match" if not diffs else "; ".join(diffs),
            )
        )

    view = inputs.stream_view_type
    if inputs.stream_enabled is None:
        checks.append(CheckItem(name=SOURCE_STREAM, ok=False, detail="unknown"))
    else:
        stream_ok = bool(inputs.stream_enabled) and view in ("NEW_IMAGE", "NEW_AND_OLD_IMAGES")
        detail = f"enabled, {view}" if inputs.stream_enabled else "disabled"
        if inputs.stream_enabled and not stream_ok:
            detail += " (new images required)"
        checks.append(CheckItem(name=SOURCE_STREAM, ok=stream_ok, detail=detail))

    failed, dlq = inputs.replicator_failed_records, inputs.dlq_messages
    if failed is None:
        checks.append(CheckItem(name=REPLICATOR, ok=False, detail="unknown (no replicator data)"))
    else:
        problems = []
        if failed:
            problems.append(f"{failed} failed records")
        if dlq:
            problems.append(f"{dlq} messages on the DLQ")
        dlq_text = "no DLQ (local run)" if dlq is None else "DLQ empty"
        checks.append(
            CheckItem(
                name=REPLICATOR,
                ok=not problems,
                detail="; ".join(problems) if problems else f"0 failed records, {dlq_text}",
            )
        )

    total, done, unit = inputs.segments_total, inputs.segments_done, inputs.backfill_unit
    checks.append(
        CheckItem(
            name=BACKFILL,
            ok=total > 0 and done >= total,
            detail=f"{done}/{total} {unit} done" if total else f"no {unit} planned",
        )
    )

    lag, threshold = inputs.lag_seconds, inputs.lag_threshold_seconds
    extra = f"; {inputs.lag_detail}" if inputs.lag_detail else ""
    if inputs.replication_problem:
        checks.append(CheckItem(name=LAG, ok=False, detail=inputs.replication_problem))
    elif lag is None:
        checks.append(CheckItem(name=LAG, ok=False, detail="unknown" + extra))
    else:
        lag_ok = lag < threshold
        checks.append(
            CheckItem(
                name=LAG,
                ok=lag_ok,
                detail=f"{_fmt_seconds(lag)} (threshold {_fmt_seconds(threshold)})"
                + ("" if lag_ok else extra),
            )
        )

    v = inputs.verification
    counts: dict[str, int] = {}
    if v is None:
        checks.append(CheckItem(name=DIVERGENT, ok=False, detail="not verified"))
    else:
        problems = []
        unit = "sampled key-space segments" if v.sample is not None else "segments"
        if v.segments_verified < v.segments_total:
            problems.append(f"{v.segments_verified}/{v.segments_total} {unit} verified")
        if v.divergent:
            problems.append(f"{v.divergent} divergent")
        if v.unsettled:
            problems.append(f"{v.unsettled} kept changing during every recheck")
        if v.unchecked:
            problems.append(f"{v.unchecked} suspects not rechecked (over the bound)")
        repaired = f", {v.repaired} repaired" if v.repaired else ""
        expired = (
            f"; note: {v.expired} expired by TTL (in one table only until TTL deletes them "
            "there too), not divergent"
            if v.expired
            else ""
        )
        if v.sample is not None:
            # Never "proven": what was read, and the bound when clean (module docstring).
            part = v.sample
            detail = (
                "; ".join(problems)
                + f" ({sample_scope(part.segments, part.total_segments, part.fraction)})"
                + expired
                if problems
                else f"{part.line(0)} ({v.suspects} suspects rechecked{repaired}){expired}"
            )
        elif problems:
            detail = "; ".join(problems) + expired
        else:
            detail = f"0 divergent ({v.suspects} suspects rechecked{repaired}){expired}"
        checks.append(CheckItem(name=DIVERGENT, ok=not problems, detail=detail))
        counts = {
            "source_items": v.scanned_source,
            "target_items": v.scanned_target,
            "suspects": v.suspects,
            "divergent": v.divergent,
            "unsettled": v.unsettled,
            "unchecked": v.unchecked,
            "repaired": v.repaired,
            "expired": v.expired,
        }
        if v.sample is not None:
            counts |= {
                "sampled_segments": v.sample.segments,
                "key_space_segments": v.sample.total_segments,
            }
            if not problems:  # the bound is what a clean, complete sample shows
                counts["divergence_bound"] = v.sample.bound
        checks.append(
            CheckItem(
                name=COUNTS,
                ok=v.scanned_source == v.scanned_target,
                required=False,
                detail=f"source {v.scanned_source}, target {v.scanned_target} "
                + (
                    "(from the verification scans, taken while writes continue)"
                    if v.sample is None
                    else "(in the sampled key-space segments only, while writes continue)"
                ),
            )
        )

    ready = all(c.ok for c in checks if c.required)
    sample = v.sample if v is not None else None
    return ReadinessReport(
        migration_id=inputs.migration_id,
        source=inputs.source,
        target=inputs.target,
        generated_at=SYSTEM_CLOCK.wall() if now is None else now,
        verdict=NOT_READY if not ready else READY if sample is None else READY_SAMPLED,
        checks=checks,
        counts=counts,
        phases=list(inputs.phases),
        sample=sample,
    )


# --- gathering -------------------------------------------------------------------------------


def backfill_progress(state: StateStore, segments_total: int) -> int:
    """How many of the planned segments the state store marks done."""
    return sum(1 for s in state.segments() if s.done and s.segment < segments_total)


#: Attributes that together count every message on an SQS queue.
DLQ_COUNT_ATTRIBUTES = (
    "ApproximateNumberOfMessages",
    "ApproximateNumberOfMessagesNotVisible",
    "ApproximateNumberOfMessagesDelayed",
)


def dlq_depth(sqs_client: Any, queue_url: str) -> int:
    """Every message on a dead-letter queue: visible, in flight (not visible) and delayed."""
    attrs = sqs_client.get_queue_attributes(
        QueueUrl=queue_url, AttributeNames=list(DLQ_COUNT_ATTRIBUTES)
    )["Attributes"]
    return sum(int(attrs.get(name, 0)) for name in DLQ_COUNT_ATTRIBUTES)


def gather_readiness(
    spec: Any,
    *,
    verification: VerificationSummary | None,
    lag_seconds: float | None,
    state: StateStore | None = None,
    target_options: Any = None,
    replicator_failed_records: int | None = 0,
    dlq_messages: int | None = None,
    phases: Sequence[PhaseTiming] = (),
    now: float | None = None,
    lag_detail: str = "",
    replication_problem: str | None = None,
    clients: Clients = PROCESS_CLIENTS,
) -> ReadinessReport:
    """The readiness report of a `MigrationSpec` (each side's client from `clients`).

    Settings parity is the target module's rule: the target the source and `target_options`
    (a `TargetOptions`, overrides such as billing mode or added tags; by default the ones the
    target was prepared with, recorded in the state store) call for, compared with the
    existing target (`target.compare_target`).
    """
    from dynashift.target import (
        TargetOptions,
        build_target_spec,
        compare_target,
        describe_location,
        recorded_target_options,
    )

    if state is None:
        state = state_store(spec, clients)
    options = (
        target_options
        if target_options is not None
        else recorded_target_options(state) or TargetOptions()
    )
    source = describe_location(spec.source, "source", clients=clients)
    target = describe_location(spec.target, "target", clients=clients)
    differences = compare_target(build_target_spec(source, options), target, options, warm=False)
    stream = source.table.get("StreamSpecification") or {}
    done, total, unit = backfill_progress(state, spec.segments), spec.segments, "segments"
    if spec.strategy == "export":
        done, total, unit = export_files_loaded(state)
    inputs = ReadinessInputs(
        migration_id=spec.migration_id,
        source=spec.source.display(),
        target=spec.target.display(),
        target_status=target.status,
        config_differences=differences,
        stream_enabled=bool(stream.get("StreamEnabled")),
        stream_view_type=stream.get("StreamViewType"),
        replicator_failed_records=replicator_failed_records,
        dlq_messages=dlq_messages,
        segments_total=total,
        segments_done=done,
        backfill_unit=unit,
        lag_seconds=lag_seconds,
        lag_threshold_seconds=spec.lag_threshold_seconds,
        lag_detail=lag_detail,
        replication_problem=replication_problem,
        verification=verification,
        phases=list(phases),
    )
    return evaluate(inputs, state.clock.wall() if now is None else now)


# --- where the report goes -------------------------------------------------------------------


def save_report(state: StateStore, report: ReadinessReport) -> None:
    state.save_report(report.to_json())


def load_report(state: StateStore) -> ReadinessReport | None:
    data = state.report()
    return ReadinessReport.model_validate(data) if data else None


def write_report_file(path: str, report: ReadinessReport) -> None:
    """`--report FILE.json`."""
    with open(path, "w", encoding="utf-8") as fh:
        json.dump(report.to_json(), fh, indent=2, sort_keys=True)
        fh.write("\n")


def publish_report(sns_client: Any, topic_arn: str, report: ReadinessReport) -> str:
    """Publish the checklist to an SNS topic; returns the message id."""
    subject = f"dynashift {report.migration_id}: {report.verdict}"[:100]
    body = report.to_text() + "\n\n" + json.dumps(report.to_json(), indent=1, sort_keys=True)
    resp = sns_client.publish(TopicArn=topic_arn, Subject=subject, Message=body[:250_000])
    return str(resp["MessageId"])
