"""The four ways to fill a target, compared: scan, replay, export, import (`dynashift plan`).

Size: one module because the facts, the user's options and assumptions, the rule of each path
(cost, duration, stream window, what rules it out) and the table `plan` prints are read together
to check one figure; a third of it is field docs and the printed text (issue 16).

    compare_paths(facts, options)   pure: units, charges, durations, stream-window risk, cheapest
    compare_plan(plan, options)     the same for the facts a `plan.Plan` gathered (no call)
    source_facts(source, target_options)   read-only facts for a new target (`plan` without
                                            --target)

    scan    `migrate` (strategy concurrent): parallel scan, a conditional put per item, the
            replicator running throughout. Reads the source, writes the target, live catch-up.
    replay  `migrate --strategy replay`: scan + BatchWriteItem, then the replicator replays
            the stream. Reads the source, writes the target, live catch-up.
    export  `migrate --strategy export`: PITR export to S3, its files loaded with conditional
            puts, the replicator running throughout. No source reads; live catch-up.
    import  `copy --via-import`: PITR export to S3, then ImportTable into a new table. No
            source reads, no target writes, no live catch-up (a refresh to one point in time).

Every figure comes from `plan`'s one model: request units (`backfill_write_units`,
`scan_read_units`), on-demand prices (`Prices`, which also carries the export and import
charges), the target's write rate (`target_write_rate`, the rule `concurrency_plan` plans
with) and `backfill_duration_seconds`. The stream window: replay's rule is `plan.replay_refusal`
(migrate refuses replay when it says no, so the path is ruled out); scan and export keep the
replicator running throughout, and the plan's own rule (`fits_stream_retention`: end within half
the 24-hour retention, counted from the stream's start, so an export's time counts) only warns.

Export and import durations are not documented by AWS: they
are `Assumptions` (a start-up time plus a rate, or the user's own figure) and printed as such.

The cheapest path is the one with the lowest cost among those not ruled out — by the time limit,
by PITR being off (dynashift never turns it on), by an existing target (import creates a new
table; replay needs an empty one), by replay's stream window, by the source's LSIs (ImportTable
cannot create them), by `--no-source-reads`, or, for import, by needing a live catch-up. scan and
replay cost the same units: when both are candidates replay is named, as `plan`'s strategy
recommendation names it under the same conditions (an empty target, the window safe).
"""

from __future__ import annotations

import json
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from dynashift.errors import pitr_off
from dynashift.models import TableLocation
from dynashift.plan import (
    DEFAULT_SAMPLE_ITEMS,
    RETENTION_MARGIN,
    STREAM_RETENTION_SECONDS,
    Plan,
    Prices,
    backfill_duration_seconds,
    backfill_write_units,
    fits_stream_retention,
    human_bytes,
    human_duration,
    index_projections,
    index_write_units_per_item,
    measure_source,
    on_demand_cost,
    replay_refusal,
    scan_read_units,
    target_write_rate,
    write_units_per_item,
)
from dynashift.target import TargetOptions, build_target_spec, describe_source

PathName = Literal["scan", "replay", "export", "import"]
PATHS: tuple[PathName, ...] = ("scan", "replay", "export", "import")
#: Equal costs: replay before scan when both are candidates (the same rule as
#: `plan.recommend_strategy`: an empty target, a backfill well inside the stream window).
TIE_ORDER: tuple[PathName, ...] = ("replay", "scan", "export", "import")
GB = 1024**3
#: A backfill should end within this many seconds of the stream's start (plan's rule).
LIMIT_S = STREAM_RETENTION_SECONDS * RETENTION_MARGIN

#: What each path runs.
COMMANDS: dict[PathName, str] = {
    "scan": "migrate (--strategy concurrent)",
    "replay": "migrate --strategy replay",
    "export": "migrate --strategy export",
    "import": "copy --via-import",
}


class Assumptions(BaseModel):
    """What the model cannot know, with defaults: AWS documents no export or import rate.

    An export (or import) is assumed to take `*_setup_seconds` plus the table's size at
    `*_gb_per_hour`; `export_hours` / `import_hours` replace the whole estimate with the user's
    own figure (`--export-hours`, `--import-hours`)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    export_setup_seconds: float = Field(default=600.0, ge=0)
    export_gb_per_hour: float = Field(default=100.0, gt=0)
    export_hours: float | None = Field(default=None, gt=0)
    import_setup_seconds: float = Field(default=600.0, ge=0)
    import_gb_per_hour: float = Field(default=25.0, gt=0)
    import_hours: float | None = Field(default=None, gt=0)

    def export_seconds(self, size_bytes: float) -> float:
        if self.export_hours is not None:
            return self.export_hours * 3600
        return self.export_setup_seconds + size_bytes / GB / self.export_gb_per_hour * 3600

    def import_seconds(self, size_bytes: float) -> float:
        if self.import_hours is not None:
            return self.import_hours * 3600
        return self.import_setup_seconds + size_bytes / GB / self.import_gb_per_hour * 3600

    def lines(self) -> list[str]:
        def one(what: str, hours: float | None, setup: float, rate: float, flag: str) -> str:
            if hours is not None:
                return f"{what} takes {hours:g} h ({flag}, your figure)"
            return (
                f"{what} takes {setup / 60:g} min + {rate:g} GB/h (AWS documents no rate; "
                f"give your own with {flag} HOURS)"
            )

        return [
            one(
                "an export to S3",
                self.export_hours,
                self.export_setup_seconds,
                self.export_gb_per_hour,
                "--export-hours",
            ),
            one(
                "an import from S3",
                self.import_hours,
                self.import_setup_seconds,
                self.import_gb_per_hour,
                "--import-hours",
            ),
        ]


class PathEstimate(BaseModel):
    """One path's units, charges, duration and standing."""

    model_config = ConfigDict(extra="forbid")

    path: PathName
    command: str
    source_read_units: float
    target_write_units: float
    replicated_write_units: float
    export_gb: float
    export_usd: float
    import_usd: float
    #: Read and write request units at on-demand prices.
    request_usd: float
    cost_usd: float
    needs_pitr: bool
    needs_new_target: bool
    live_catch_up: bool
    seconds: float
    #: How `seconds` adds up, e.g. "export 16 min + load 42 min".
    duration_parts: str
    stream_at_risk: bool
    stream_window: str
    #: Why the path is ruled out (empty: it is a candidate).
    out: list[str] = Field(default_factory=list)


class PathComparison(BaseModel):
    """The four paths side by side and the cheapest one within the time limit."""

    model_config = ConfigDict(extra="forbid")

    source: str
    item_count: int
    size_bytes: int
    avg_item_bytes: float
    #: Write units of one item with its index writes.
    write_units_per_item: int
    write_rate: float
    write_rate_from: str
    time_limit_seconds: float | None
    source_pitr: bool | None
    pitr_usd_per_month: float
    prices: Prices
    paths: list[PathEstimate]
    cheapest: PathName | None
    cheapest_reason: str
    assumptions: list[str]

    def path(self, name: PathName) -> PathEstimate:
        return next(p for p in self.paths if p.path == name)

    def to_json(self) -> str:
        return json.dumps(self.model_dump(mode="json"), indent=2, sort_keys=True)

    def to_text(self) -> str:
        out = [
            f"Paths (scan, replay, export, import) for {self.source}: {self.item_count:,} items, "
            f"{human_bytes(self.size_bytes)}, {self.write_units_per_item} write unit(s) per item, "
            f"target at {self.write_rate:,.0f} items/s ({self.write_rate_from})"
        ]
        head = (
            f"  {'path':<7}{'source reads':>17}{'target writes':>15}{'export':>10}"
            f"{'import':>10}{'cost':>11}{'duration':>10}  PITR  stream window"
        )
        out.append(head)
        for p in self.paths:
            out.append(
                f"  {p.path:<7}{p.source_read_units:>14,.1f} RU{p.target_write_units:>12,.0f} WU"
                f"{'$' + format(p.export_usd, ',.2f'):>10}{'$' + format(p.import_usd, ',.2f'):>10}"
                f"{'$' + format(p.cost_usd, ',.4f'):>11}{human_duration(p.seconds):>10}  "
                f"{'yes ' if p.needs_pitr else 'no  '}  {p.stream_window}"
            )
        out.append("")
        for p in self.paths:
            status = "OUT: " + "; ".join(p.out) if p.out else "candidate"
            out.append(f"  {p.path} ({p.command}, {p.duration_parts}): {status}")
        out.append("")
        limit = (
            f"within {human_duration(self.time_limit_seconds)}"
            if self.time_limit_seconds is not None
            else "(no --time-limit)"
        )
        if self.cheapest:
            out.append(f"Cheapest {limit}: {self.cheapest} ({COMMANDS[self.cheapest]})")
        else:
            out.append(f"Cheapest {limit}: none")
        out.append(f"  because {self.cheapest_reason}")
        pr = self.prices
        out.append(
            f"  prices: ${pr.export_per_gb}/GB export, ${pr.import_per_gb}/GB import, "
            f"${pr.pitr_per_gb_month}/GB-month PITR (--export-price, --import-price, --pitr-price)"
            + (
                f"; PITR on {self.source}, if you turn it on, ~ "
                f"${self.pitr_usd_per_month:,.2f}/month"
                if self.source_pitr is not True
                else ""
            )
        )
        out.append("Assumptions (estimates, not facts)")
        out.extend(f"  - {a}" for a in self.assumptions)
        return "\n".join(out)


class TableFacts(BaseModel):
    """What the comparison needs to know about the tables (`plan.make_plan` reads it)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    source: str
    item_count: int = Field(ge=0)
    size_bytes: int = Field(ge=0)
    #: Extra write units per item for the target's indexes (`index_write_units_per_item`).
    index_units: int = Field(default=0, ge=0)
    replica_count: int = Field(default=0, ge=0)
    #: The source's point-in-time recovery; None when it could not be read.
    source_pitr: bool | None
    source_lsis: list[str] = Field(default_factory=list)
    target: str | None = None
    #: "new": the target does not exist yet; "empty" / "nonempty": it exists.
    target_state: Literal["new", "empty", "nonempty"] = "new"
    provisioned_wcu: int | None = None
    warm_wcu: int | None = None


class PathOptions(BaseModel):
    """The user's constraints and overrides (`plan`'s flags)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_write_rate: float | None = Field(default=None, gt=0)
    time_limit_hours: float | None = Field(default=None, gt=0)
    #: A copy as of one point in time is enough (no live writes to catch up): import qualifies.
    refresh_ok: bool = False
    #: The source's capacity must not be used: scan and replay are out.
    no_source_reads: bool = False
    prices: Prices = Field(default_factory=Prices)
    assumptions: Assumptions = Field(default_factory=Assumptions)


class _Model(BaseModel):
    """The figures every path draws from (computed once)."""

    facts: TableFacts
    options: PathOptions
    rate: float
    rate_from: str
    writes: int
    replicated: int
    reads: float
    gb: float
    load_s: float
    export_s: float
    import_s: float
    pitr_out: str | None
    replay_refusal: str | None

    @classmethod
    def of(cls, facts: TableFacts, options: PathOptions) -> _Model:
        avg = facts.size_bytes / facts.item_count if facts.item_count > 0 else 0.0
        rate, rate_from = target_write_rate(
            avg,
            provisioned_wcu=facts.provisioned_wcu,
            warm_wcu=facts.warm_wcu,
            max_write_rate=options.max_write_rate,
            index_units=facts.index_units,
        )
        writes = backfill_write_units(facts.item_count, avg, facts.index_units)
        pitr_out = (
            pitr_off(facts.source)
            if facts.source_pitr is False
            else f"export needs PITR, whose status on {facts.source} could not be read"
            if facts.source_pitr is None
            else None
        )
        return cls(
            facts=facts,
            options=options,
            rate=rate,
            rate_from=rate_from,
            writes=writes,
            replicated=writes * facts.replica_count,
            reads=scan_read_units(facts.size_bytes),
            gb=facts.size_bytes / GB,
            load_s=backfill_duration_seconds(facts.item_count, rate),
            export_s=options.assumptions.export_seconds(facts.size_bytes),
            import_s=options.assumptions.import_seconds(facts.size_bytes),
            pitr_out=pitr_out,
            replay_refusal=replay_refusal(
                facts.item_count,
                facts.size_bytes,
                max_write_rate=options.max_write_rate,
                target_wcu=facts.provisioned_wcu or 0,
            ),
        )

    def timing(self, name: PathName) -> tuple[float, str, str, bool]:
        """(seconds, how they add up, the stream window, at risk) of one path."""
        load = human_duration(self.load_s)
        export = human_duration(self.export_s)
        if name in ("scan", "export"):
            # The replicator runs throughout; the plan's rule still wants the backfill (from the
            # stream's start: export included) to end within half the retention (a warning).
            seconds = self.load_s if name == "scan" else self.export_s + self.load_s
            parts = f"load {load}" if name == "scan" else f"export {export} + load {load}"
            risk = not fits_stream_retention(seconds)
            window = (
                f"AT RISK (a warning): ends after {human_duration(LIMIT_S)} (half the 24 h "
                "retention)"
                if risk
                else f"not at risk: ends within {human_duration(LIMIT_S)}, the replicator "
                "running throughout"
            )
            return seconds, parts, window, risk
        if name == "replay":
            risk = self.replay_refusal is not None
            window = (
                f"AT RISK: ends after {human_duration(LIMIT_S)}, so migrate refuses replay"
                if risk
                else f"not at risk: ends within {human_duration(LIMIT_S)}, then the replicator "
                "replays the stream"
            )
            return self.load_s, f"load {load} (batch writes, same units)", window, risk
        return (
            self.export_s + self.import_s,
            f"export {export} + import {human_duration(self.import_s)}",
            "none: no stream is read (a refresh, no catch-up)",
            False,
        )

    def ruled_out(self, name: PathName, seconds: float) -> list[str]:
        """Why a path is not a candidate (empty: it is one)."""
        facts, options = self.facts, self.options
        target = facts.target or "the target"
        out: list[str] = []
        if name in ("scan", "replay") and options.no_source_reads:
            out.append("reads the source's capacity (--no-source-reads)")
        if name in ("export", "import") and self.pitr_out:
            out.append(self.pitr_out)
        if name == "replay" and self.replay_refusal:
            out.append("the 24 h stream window is at risk: " + self.replay_refusal)
        if name == "replay" and facts.target_state == "nonempty":
            out.append(
                f"needs an empty target: {target} holds items (batch writes overwrite them "
                "unconditionally)"
            )
        if name == "import":
            if facts.target_state != "new":
                out.append(
                    f"needs a fresh target: {target} exists (ImportTable creates a new table)"
                )
            if facts.source_lsis:
                out.append(
                    "ImportTable cannot create the source's LSIs " + ", ".join(facts.source_lsis)
                )
            if not options.refresh_ok:
                out.append(
                    "no live catch-up: it copies one point in time (pass --refresh when "
                    "writes after it need not reach the target)"
                )
        limit = options.time_limit_hours
        if limit is not None and seconds > limit * 3600:
            out.append(
                f"over the time limit: ~{human_duration(seconds)} > {human_duration(limit * 3600)}"
            )
        return out

    def estimate(self, name: PathName) -> PathEstimate:
        reads_source = name in ("scan", "replay")
        exported = name in ("export", "import")
        prices = self.options.prices
        seconds, parts, window, at_risk = self.timing(name)
        writes = 0 if name == "import" else self.writes
        replicated = 0 if name == "import" else self.replicated
        reads = self.reads if reads_source else 0.0
        request = on_demand_cost(writes, reads, prices, replicated)
        export_usd = self.gb * prices.export_per_gb if exported else 0.0
        import_usd = self.gb * prices.import_per_gb if name == "import" else 0.0
        return PathEstimate(
            path=name,
            command=COMMANDS[name],
            source_read_units=reads,
            target_write_units=writes,
            replicated_write_units=replicated,
            export_gb=self.gb if exported else 0.0,
            export_usd=export_usd,
            import_usd=import_usd,
            request_usd=request,
            cost_usd=request + export_usd + import_usd,
            needs_pitr=exported,
            needs_new_target=name == "import",
            live_catch_up=name != "import",
            seconds=seconds,
            duration_parts=parts,
            stream_at_risk=at_risk,
            stream_window=window,
            out=self.ruled_out(name, seconds),
        )


def _cheapest(paths: list[PathEstimate]) -> tuple[PathName | None, str]:
    candidates = [p for p in paths if not p.out]
    if not candidates:
        return None, "every path is ruled out (see OUT above)"
    best = min(candidates, key=lambda p: (round(p.cost_usd, 9), TIE_ORDER.index(p.path)))
    others = [f"{p.path} ${p.cost_usd:,.4f}" for p in candidates if p.path != best.path]
    reason = f"it costs ${best.cost_usd:,.4f}, the least of the candidates" + (
        f" ({', '.join(others)}; at equal cost replay comes first, as plan's strategy recommends)"
        if others
        else ""
    )
    ruled_out = [p.path for p in paths if p.out]
    if ruled_out:
        reason += "; " + ", ".join(ruled_out) + " ruled out (see OUT above)"
    return best.path, reason


def compare_paths(facts: TableFacts, options: PathOptions | None = None) -> PathComparison:
    """The comparison for one table (pure: every fact is in `facts`)."""
    options = options or PathOptions()
    model = _Model.of(facts, options)
    paths = [model.estimate(name) for name in PATHS]
    cheapest, reason = _cheapest(paths)
    notes = [
        *options.assumptions.lines(),
        f"the target takes {model.rate:,.0f} items/s ({model.rate_from}); replay's batch writes "
        "use the same write units, so the model gives it the same load time",
        "import is billed on the uncompressed export (DynamoDB JSON), assumed the table's size; "
        "it is usually larger",
        "verification (one scan of each table) and replication of live writes cost the same "
        "on every path and are not included",
    ]
    if facts.replica_count:
        notes.append(
            "import creates a single-region table: replicas added afterwards are not costed"
        )
    avg = facts.size_bytes / facts.item_count if facts.item_count > 0 else 0.0
    limit = options.time_limit_hours
    return PathComparison(
        source=facts.source,
        item_count=facts.item_count,
        size_bytes=facts.size_bytes,
        avg_item_bytes=round(avg, 1),
        write_units_per_item=write_units_per_item(avg) + facts.index_units,
        write_rate=model.rate,
        write_rate_from=model.rate_from,
        time_limit_seconds=limit * 3600 if limit is not None else None,
        source_pitr=facts.source_pitr,
        pitr_usd_per_month=model.gb * options.prices.pitr_per_gb_month,
        prices=options.prices,
        paths=paths,
        cheapest=cheapest,
        cheapest_reason=reason,
        assumptions=notes,
    )


def plan_facts(plan: Plan) -> TableFacts:
    """The facts `plan.make_plan` read, for the comparison (no further call)."""
    state: Literal["new", "empty", "nonempty"] = (
        "new" if plan.target_action == "create" else "nonempty" if plan.target_nonempty else "empty"
    )
    return TableFacts(
        source=plan.source,
        item_count=plan.item_count,
        size_bytes=plan.size_bytes,
        index_units=plan.index_write_units_per_item,
        replica_count=plan.replica_count,
        source_pitr=plan.source_pitr,
        source_lsis=plan.source_lsis,
        target=plan.target,
        target_state=state,
        provisioned_wcu=plan.target_wcu,
        warm_wcu=plan.target_warm_wcu,
    )


def compare_plan(plan: Plan, options: PathOptions | None = None) -> PathComparison:
    """The comparison for the facts a plan gathered, at the plan's prices unless given."""
    options = options or PathOptions(prices=plan.prices)
    return compare_paths(plan_facts(plan), options)


def source_facts(
    source: TableLocation, target_options: TargetOptions, sample_limit: int = DEFAULT_SAMPLE_ITEMS
) -> tuple[TableFacts, list[str]]:
    """(facts, warnings) for a target not named yet: a new table mirroring the source with the
    options applied (read-only: DescribeTable & co., a bounded sample scan when DescribeTable's
    size is 0 — the plan's `measure_source`)."""
    src = describe_source(source)
    spec = build_target_spec(src, target_options)
    size = measure_source(source, src, sample_limit)
    return (
        TableFacts(
            source=source.display() if source.side.region else src.display(),
            item_count=size.item_count,
            size_bytes=size.size_bytes,
            index_units=index_write_units_per_item(size.avg_item_bytes, index_projections(src)),
            replica_count=len(spec.replica_regions),
            source_pitr=src.pitr,
            source_lsis=[str(i.get("IndexName", "")) for i in src.lsis],
            target=None,
            target_state="new",
            provisioned_wcu=spec.capacity[1] if spec.capacity else None,
        ),
        [*src.warnings, *spec.warnings, *size.warnings],
    )
