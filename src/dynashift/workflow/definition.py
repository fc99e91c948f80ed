"""The builder of `statemachine/migration.asl.json` (the one definition both runners execute).

Size: one module because it builds the whole state machine state by state, in execution
order, so the definition reads top to bottom.

The JSON is generated from this module and committed; `python -m dynashift.workflow.definition`
rewrites it, and a test checks that the builder reproduces the committed file byte for byte.
Two functions carry the rules that a hand-written definition kept getting wrong:

- `lambda_task` builds every Lambda Task with the standard Retry and Catch (`with_retry_catch`).
  `Lambda.Unknown` and `Sandbox.Timedout` (a function that ran out of time or memory) are
  retried only where a second call is safe (`RETRY_UNKNOWN`): the step is read-only, or it
  resumes from a checkpoint in the state store and its writes are conditional or idempotent.
- `segment_loop` builds the Map of one segment phase (backfill or verify) for either Map mode,
  INLINE or DISTRIBUTED, with state names that are unique in the whole machine (AWS rejects a
  definition that repeats a name, nested Maps included: DUPLICATE_STATE_NAME). The backfill
  Map's iteration goes on, for the concurrent strategy, into the verification of its own
  segment (`overlap`), so verification overlaps the copy of the other segments; the replay
  strategy verifies in the separate Map after its replicator started. A sampled verification
  (`spec.verify_sample`, `dynashift.sampling`) verifies its own key-space segments, not the
  backfill's: whatever the strategy, it skips the in-Map verification and runs the separate
  Map over `$.plan.verify_segments` (the sampled numbers) after the backfill. The export
  strategy's Map over the export's data files ("Load export files") is the same loop over other
  items.

Every `${...}` placeholder is filled by the template's DefinitionSubstitutions (in AWS) or by the
local runner (`dynashift.workflow.runner`).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any, Literal

from dynashift.workflow.deployed import CHECKOUT_ROOT

#: The writer's target is the source checkout's committed file (an installed wheel's packaged
#: copy, `dynashift.workflow.deployed`, is only read).
ROOT = CHECKOUT_ROOT
DEFINITION_PATH = ROOT / "statemachine" / "migration.asl.json"

LAMBDA_INVOKE = "arn:aws:states:::lambda:invoke"
LAMBDA_WAIT_FOR_TOKEN = "arn:aws:states:::lambda:invoke.waitForTaskToken"

#: Errors of the Lambda service itself (the invocation never ran, or was throttled): retrying
#: them is always safe.
LAMBDA_ERRORS = [
    "Lambda.ServiceException",
    "Lambda.AWSLambdaException",
    "Lambda.SdkClientException",
    "Lambda.TooManyRequestsException",
]
#: The function ran but did not answer: out of time (Sandbox.Timedout) or memory / a crashed
#: runtime (Lambda.Unknown). Its side effects may have happened, so only steps in
#: `RETRY_UNKNOWN` retry them.
UNKNOWN_ERRORS = ["Lambda.Unknown", "Sandbox.Timedout"]
#: The engine's named transient errors (dynashift.errors).
ENGINE_TRANSIENT = ["TransientError", "NotReadyYet", "EndpointUnreachableError"]
#: The BadInputError family: the run stops with "Input rejected" (nothing more is written).
BAD_INPUT = [
    "BadInputError",
    "InvalidTableRefError",
    "TableNotFoundError",
    "IncompatibleSchemaError",
    "UnsafeTargetError",
    "StreamUnavailableError",
]

#: Steps (by state name) whose Lambda may be called again after it timed out or crashed:
#: - read-only: "Validate input", "Check target", "Check stream", "Check replication lag",
#:   "Readiness checklist", "Readiness recheck before cutover" (the report is an overwrite);
#: - resumable and idempotent: "Plan segments" (records the segment count once), the segment
#:   workers (resume from the checkpoint in the state store; backfill puts are conditional, I4;
#:   verification only reads), "Finish backfill (remove tombstones)" (the phase flip is an
#:   overwrite, each tombstone is removed only if it still is one), "Recheck differences"
#:   (re-reads suspects), "Drain replication" (measures).
#: - the export strategy's steps: "Export source" (ExportTableToPointInTime with a ClientToken
#:   derived from the migration, and the export's ARN recorded in the state store: a second call
#:   finds or gets the same export), "Check export", "Check export time", "List export files"
#:   (read-only but for the file count, an overwrite) and the file loaders (resume from the
#:   cursor in the state store; their puts are conditional, I4).
#: Not retried: "Create or verify target" (a CreateTable may have happened; the next attempt
#: would meet a target it cannot tell from a foreign one), "Enable source stream" (UpdateTable
#: in flight), "Start replicator" (an event source mapping may exist twice), "Stop replicator",
#: the approval request (a second token and notification) and the reports (a second SNS
#: message). Those fail the execution, which can be re-run: it resumes from the state store.
RETRY_UNKNOWN = frozenset(
    {
        "Validate input",
        "Check target",
        "Check stream",
        "Plan segments",
        "Copy segment",
        "Copy segment (distributed)",
        "Verify segment",
        "Verify segment (distributed)",
        "Verify copied segment",
        "Verify copied segment (distributed)",
        "Finish backfill (remove tombstones)",
        "Check replication lag",
        "Recheck differences",
        "Readiness checklist",
        "Readiness recheck before cutover",
        "Drain replication",
        "Export source",
        "Check export",
        "Check export time",
        "List export files",
        "Load export file",
        "Load export file (distributed)",
    }
)

REJECTED = "Report rejected input"
FAILED = "Report failure"

MapMode = Literal["INLINE", "DISTRIBUTED"]
Phase = Literal["backfill", "verify", "load"]


# --- the two rules ---------------------------------------------------------------------------


def with_retry_catch(
    name: str, state: dict[str, Any], *, catch: Literal["route", "none"] = "route"
) -> dict[str, Any]:
    """Add the standard Retry (and, with `catch="route"`, Catch) to the Task `name`.

    Retry: Lambda service errors (1 s, x2, 3 attempts); `Lambda.Unknown` / `Sandbox.Timedout`
    where `name` is in RETRY_UNKNOWN (5 s, x2, 2 attempts); the engine's transient errors (2 s,
    x2, 6 attempts, <= 60 s). Catch: the BadInputError family into "Report rejected input",
    everything else into "Report failure"; both keep the state and add `$.failure`. Tasks inside
    a Map have no Catch (`catch="none"`): the Map state catches for them.
    """
    retry: list[dict[str, Any]] = [
        {
            "ErrorEquals": list(LAMBDA_ERRORS),
            "IntervalSeconds": 1,
            "MaxAttempts": 3,
            "BackoffRate": 2,
            "JitterStrategy": "FULL",
        }
    ]
    if name in RETRY_UNKNOWN:
        retry.append(
            {
                "ErrorEquals": list(UNKNOWN_ERRORS),
                "IntervalSeconds": 5,
                "MaxAttempts": 2,
                "BackoffRate": 2,
                "JitterStrategy": "FULL",
            }
        )
    retry.append(
        {
            "ErrorEquals": list(ENGINE_TRANSIENT),
            "IntervalSeconds": 2,
            "MaxAttempts": 6,
            "BackoffRate": 2,
            "MaxDelaySeconds": 60,
            "JitterStrategy": "FULL",
        }
    )
    out = {**state, "Retry": retry}
    if catch == "route":
        out["Catch"] = route_failures()
    return out


def route_failures() -> list[dict[str, Any]]:
    return [
        {"ErrorEquals": list(BAD_INPUT), "ResultPath": "$.failure", "Next": REJECTED},
        {"ErrorEquals": ["States.ALL"], "ResultPath": "$.failure", "Next": FAILED},
    ]


def lambda_task(
    name: str,
    function: str,
    payload: dict[str, Any],
    *,
    result_path: str | None,
    next_state: str | None,
    result_selector: dict[str, Any] | None = None,
    comment: str | None = None,
    catch: Literal["route", "none"] = "route",
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A `lambda:invoke` Task calling `${<function>FunctionArn}` with `payload`."""
    state: dict[str, Any] = {"Type": "Task"}
    if comment:
        state["Comment"] = comment
    state["Resource"] = LAMBDA_INVOKE
    state["Parameters"] = {"FunctionName": f"${{{function}FunctionArn}}", "Payload": payload}
    state["ResultSelector"] = result_selector or {"result.$": "$.Payload"}
    state["ResultPath"] = result_path
    state.update(extra or {})
    state = with_retry_catch(name, state, catch=catch)
    if next_state is None:
        state["End"] = True
    else:
        state["Next"] = next_state
    return state


def _spec_settings(**more: Any) -> dict[str, Any]:
    return {"spec.$": "$.spec", "settings.$": "$.settings", **more}


#: Per phase: the Map name, its worker's function, and the names of the loop's states.
PHASES: dict[Phase, dict[str, str]] = {
    "backfill": {
        "map": "Backfill segments",
        "function": "BackfillSegment",
        "task": "Copy segment",
        "choice": "Segment copied?",
        "done": "Segment copied",
        "label": "Backfill",
        "verb": "Copy",
    },
    "verify": {
        "map": "Verify segments",
        "function": "VerifySegment",
        "task": "Verify segment",
        "choice": "Segment verified?",
        "done": "Segment verified",
        "label": "Verify",
        "verb": "Verify",
        # Every segment, or a sample of another partition (`dynashift.sampling`).
        "items": "$.plan.verify_segments",
    },
    # The export strategy's backfill: one iteration per data file of the export's manifest.
    "load": {
        "map": "Load export files",
        "function": "LoadExportFile",
        "task": "Load export file",
        "choice": "Export file loaded?",
        "done": "Export file loaded",
        "label": "LoadExport",
        "verb": "Load",
        "items": "$.export_files.files",
        "item": "file",
        "noun": "data file of the export",
    },
}
#: What a phase's Map iterates over unless PHASES says otherwise.
SEGMENT_ITEMS = {"items": "$.plan.segments", "item": "segment", "noun": "segment"}
#: The verification loop inside a backfill iteration (the concurrent strategy verifies a
#: segment as soon as its own copy is done, while other segments still copy): names of its
#: own, so none repeats the separate "Verify segments" Map's.
OVERLAP: dict[str, str] = {
    "choice": "Verify segment now?",
    "task": "Verify copied segment",
    "loop": "Copied segment verified?",
    "done": "Segment copied and verified",
}
#: The strategy whose segments are verified inside the backfill iteration. Its replicator runs
#: from before the first scan page (I2), so a segment whose copy is done changes in the target
#: only through the replicator, as after the whole backfill; any other strategy (replay: the
#: replicator starts after the whole backfill) is verified by the separate Map afterwards.
OVERLAP_STRATEGY = "concurrent"


def overlap_rule(next_state: str) -> dict[str, Any]:
    """The Choice rule "verified inside the backfill iteration": the OVERLAP_STRATEGY with a full
    verification (a sampled one verifies its own key-space segments in the separate Map)."""
    return {
        "And": [
            {"Variable": "$.spec.strategy", "StringEquals": OVERLAP_STRATEGY},
            {"Variable": "$.spec.verify_sample", "IsNull": True},
        ],
        "Next": next_state,
    }


def _suffix(mode: MapMode) -> str:
    return " (distributed)" if mode == "DISTRIBUTED" else ""


def loop_state_names(phase: Phase, mode: MapMode) -> dict[str, str]:
    """The names of a segment loop's states; the distributed variant's carry a suffix, so no
    name is used twice in the machine."""
    names = PHASES[phase]
    return {key: names[key] + _suffix(mode) for key in ("map", "task", "choice", "done")}


def overlap_state_names(mode: MapMode) -> dict[str, str]:
    """The names of the verification states inside a backfill iteration (see OVERLAP)."""
    return {key: name + _suffix(mode) for key, name in OVERLAP.items()}


def _phase_items(phase: Phase) -> dict[str, str]:
    return {key: PHASES[phase].get(key, default) for key, default in SEGMENT_ITEMS.items()}


def worker_loop(
    task: str,
    choice: str,
    function: str,
    progress: str,
    done_next: str,
    *,
    item: str = "segment",
) -> dict[str, Any]:
    """One worker looped with its cursor: the Task returns `{cursor, done}` into
    `$.<progress>`, and the Choice sends the iteration back to the Task until `done`, then to
    `done_next`. The state machine owns the loop, so one invocation always fits Lambda's 15
    minutes. `item`: what the iteration works on (`segment`, or the export's `file`)."""
    worker = lambda_task(
        task,
        function,
        _spec_settings(**{f"{item}.$": f"$.{item}", "cursor.$": f"$.{progress}.cursor"}),
        result_selector={"cursor.$": "$.Payload.cursor", "done.$": "$.Payload.done"},
        result_path=f"$.{progress}",
        next_state=choice,
        comment="One worker invocation: runs until done or its budget, returns a cursor.",
        catch="none",
    )
    return {
        task: worker,
        choice: {
            "Type": "Choice",
            "Choices": [
                {"Variable": f"$.{progress}.done", "BooleanEquals": True, "Next": done_next}
            ],
            "Default": task,
        },
    }


def _segment_end(item: str = "segment") -> dict[str, Any]:
    return {"Type": "Pass", "Parameters": {f"{item}.$": f"$.{item}"}, "End": True}


def segment_loop(
    phase: Phase, mode: MapMode, next_state: str, *, overlap: bool = False
) -> dict[str, Any]:
    """The Map over `$.plan.segments` (the load phase: `$.export_files.files`) whose iterations
    loop one worker with its cursor.

    Each worker invocation runs until the segment is done or its budget is spent and returns
    `{cursor, done}` (`worker_loop`). Results are discarded (`ResultPath: null`): counters and
    suspects live in the state store.

    With `overlap` (backfill only), an iteration whose copy is done goes on, for the
    OVERLAP_STRATEGY, into the verification loop of the same segment (its own cursor,
    `$.verify_progress`), while other iterations still copy: the two phases then cost about
    the longer one instead of their sum. The suspects it finds are rechecked after the
    catch-up like any others; what the segment's items do later reaches the target through the
    replicator, as after a whole backfill.
    """
    if overlap and phase != "backfill":
        raise ValueError("only the backfill iteration can go on into verification")
    names = loop_state_names(phase, mode)
    info = PHASES[phase]
    items = _phase_items(phase)
    item = items["item"]
    processor: dict[str, Any] = {"Mode": mode}
    if mode == "DISTRIBUTED":
        processor["ExecutionType"] = "STANDARD"
    start = {"cursor": None, "done": False}
    selector: dict[str, Any] = {f"{item}.$": "$$.Map.Item.Value", "progress": start}
    after = names["done"]
    if overlap:
        selector["verify_progress"] = dict(start)
        after = overlap_state_names(mode)["choice"]
    states = worker_loop(
        names["task"], names["choice"], info["function"], "progress", after, item=item
    )
    if overlap:
        more = overlap_state_names(mode)
        states[more["choice"]] = {
            "Type": "Choice",
            "Comment": "Concurrent strategy: verify this segment now, while others still copy "
            "(its replicator already runs); other strategies, and sampled verifications, "
            "verify after the whole backfill.",
            "Choices": [overlap_rule(more["task"])],
            "Default": names["done"],
        }
        verify = PHASES["verify"]["function"]
        states.update(
            worker_loop(more["task"], more["loop"], verify, "verify_progress", more["done"])
        )
        states[more["done"]] = _segment_end()
    states[names["done"]] = _segment_end(item)
    verb = info["verb"] + (" (and, concurrent strategy, verify)" if overlap else "")
    state: dict[str, Any] = {
        "Type": "Map",
        "Comment": f"{verb} every {items['noun']}; each iteration loops its worker with the "
        "cursor.",
        "ItemsPath": items["items"],
        "ItemSelector": _spec_settings(**selector),
        "MaxConcurrencyPath": "$.settings.max_concurrency",
        "ItemProcessor": {
            "ProcessorConfig": processor,
            "StartAt": names["task"],
            "States": states,
        },
        "ResultPath": None,
        "Catch": route_failures(),
        "Next": next_state,
    }
    if mode == "DISTRIBUTED":
        state["Label"] = info["label"]
    return state


# --- the machine -----------------------------------------------------------------------------


def _poll_loop(
    check: str,
    choice: str,
    wait: str,
    variable: str,
    ready_next: str,
    *,
    seconds_path: str = "$.settings.poll_seconds",
) -> dict[str, Any]:
    return {
        choice: {
            "Type": "Choice",
            "Choices": [{"Variable": variable, "BooleanEquals": True, "Next": ready_next}],
            "Default": wait,
        },
        wait: {"Type": "Wait", "SecondsPath": seconds_path, "Next": check},
    }


def _report(name: str, outcome: str, fail_state: str, *, with_failure: bool) -> dict[str, Any]:
    if with_failure:
        # Reached from any state, the first one included: the state may still be the raw
        # console input, so the report reads `$` whole rather than `$.spec`.
        payload: dict[str, Any] = {"outcome": outcome, "failure.$": "$.failure", "input.$": "$"}
        result_path = "$.reported"
    else:
        payload = _spec_settings(outcome=outcome)
        result_path = "$.report"
    state = lambda_task(
        name, "Report", payload, result_path=result_path, next_state=fail_state, catch="none"
    )
    state["Catch"] = [
        {"ErrorEquals": ["States.ALL"], "ResultPath": "$.report_error", "Next": fail_state}
    ]
    return state


def export_states(scan: str, finish: str) -> dict[str, Any]:
    """The Choice between the export strategy's backfill and the scan's (`scan`), and the export
    strategy's: export the source to S3 at a point in time, wait for it, check that point
    follows the stream's start (I2), list the data files of its manifest and load them with a
    Map whose iterations loop a loader with its cursor {file, line, done} (I8), then on to
    `finish` like the scan backfill."""
    states: dict[str, Any] = {}
    states["Backfill from export?"] = {
        "Type": "Choice",
        "Comment": "The export strategy loads the backfill from an export of the source to S3 "
        "(no source read capacity); its replicator already runs, from TRIM_HORIZON of the "
        "stream enabled before the export's point in time (I2). Others scan the source.",
        "Choices": [
            {"Variable": "$.spec.strategy", "StringEquals": "export", "Next": "Export source"}
        ],
        "Default": scan,
    }
    export = "ExportSource"
    states["Export source"] = lambda_task(
        "Export source",
        export,
        _spec_settings(action="start"),
        result_path="$.export",
        next_state="Export done?",
        comment="ExportTableToPointInTime to the input's bucket/prefix (ClientToken from the "
        "migration; the ARN is recorded in the state store): a retry or a resumed run finds the "
        "same export.",
    )
    states.update(
        _poll_loop(
            "Check export",
            "Export done?",
            "Wait for export",
            "$.export.result.done",
            "Check export time",
            seconds_path="$.settings.export_poll_seconds",
        )
    )
    states["Check export"] = lambda_task(
        "Check export",
        export,
        _spec_settings(action="poll"),
        result_path="$.export",
        next_state="Export done?",
        comment="DescribeExport; a FAILED export fails the execution with its code and message.",
    )
    states["Check export time"] = lambda_task(
        "Check export time",
        export,
        _spec_settings(action="check_time"),
        result_path="$.export_time",
        next_state="List export files",
        comment="The export's point in time must follow the enabling of the stream the "
        "replicator reads (I2): an earlier export could miss a change the stream never had.",
    )
    states["List export files"] = lambda_task(
        "List export files",
        export,
        _spec_settings(action="manifest"),
        result_selector={
            "files.$": "$.Payload.files",
            "count.$": "$.Payload.count",
            "distributed.$": "$.Payload.distributed",
        },
        result_path="$.export_files",
        next_state="Many export files?",
        comment="Reads the export's manifest, records the data file count in the state store and "
        "plans the loaders from it.",
    )
    states["Many export files?"] = {
        "Type": "Choice",
        "Comment": "Distributed when the files' loader invocations would crowd one execution's "
        "history (as for the segments).",
        "Choices": [
            {
                "Variable": "$.export_files.distributed",
                "BooleanEquals": True,
                "Next": "Load export files (distributed)",
            }
        ],
        "Default": "Load export files",
    }
    states["Load export files"] = segment_loop("load", "INLINE", finish)
    states["Load export files (distributed)"] = segment_loop("load", "DISTRIBUTED", finish)
    return states


def build() -> dict[str, Any]:
    """The whole state machine definition."""
    states: dict[str, Any] = {}
    states["Validate input"] = lambda_task(
        "Validate input",
        "Validate",
        {"input.$": "$"},
        # The state becomes the normalised input (every default applied): every later state
        # reads `$.spec`, `$.settings` and `$.target_options` from here.
        result_selector={
            "spec.$": "$.Payload.input.spec",
            "target_options.$": "$.Payload.input.target_options",
            "settings.$": "$.Payload.input.settings",
            "validation.$": "$.Payload.validation",
        },
        result_path="$",
        next_state="Create or verify target",
        comment="Read-only checks; applies the defaults and returns the normalised input. Bad "
        "input stops here and nothing is written.",
    )
    states["Create or verify target"] = lambda_task(
        "Create or verify target",
        "PrepareTarget",
        _spec_settings(**{"target_options.$": "$.target_options", "action": "start"}),
        result_path="$.target",
        next_state="Target ready?",
    )
    states.update(
        _poll_loop(
            "Check target",
            "Target ready?",
            "Wait for target",
            "$.target.result.ready",
            "Enable source stream",
        )
    )
    states["Check target"] = lambda_task(
        "Check target",
        "PrepareTarget",
        _spec_settings(**{"target_options.$": "$.target_options", "action": "poll"}),
        result_path="$.target",
        next_state="Target ready?",
    )
    states["Enable source stream"] = lambda_task(
        "Enable source stream",
        "SourceStream",
        _spec_settings(**{"target_options.$": "$.target_options", "action": "enable"}),
        result_path="$.stream",
        next_state="Stream ready?",
    )
    states.update(
        _poll_loop(
            "Check stream",
            "Stream ready?",
            "Wait for stream",
            "$.stream.result.ready",
            "Start replicator",
        )
    )
    states["Check stream"] = lambda_task(
        "Check stream",
        "SourceStream",
        _spec_settings(**{"target_options.$": "$.target_options", "action": "poll"}),
        result_path="$.stream",
        next_state="Stream ready?",
    )
    states["Start replicator"] = lambda_task(
        "Start replicator",
        "Replication",
        _spec_settings(**{"action": "start", "stream_arn.$": "$.stream.result.arn"}),
        result_path="$.replicator",
        next_state="Plan segments",
        comment="From TRIM_HORIZON, before the first scan page is read (I2).",
    )
    states["Plan segments"] = lambda_task(
        "Plan segments",
        "PlanSegments",
        _spec_settings(),
        result_selector={
            "segments.$": "$.Payload.segments",
            "distributed.$": "$.Payload.distributed",
            "count.$": "$.Payload.count",
            "verify_segments.$": "$.Payload.verify_segments",
            "invocations.$": "$.Payload.invocations",
        },
        result_path="$.plan",
        next_state="Backfill from export?",
        comment="Records the segment count (a resume keeps it): the backfill's segments, and "
        "the verification's for every strategy.",
    )
    finish = "Finish backfill (remove tombstones)"
    states.update(export_states("Many segments?", finish))
    states["Many segments?"] = {
        "Type": "Choice",
        "Comment": "Distributed when the estimated worker invocations would crowd one "
        "execution's 25,000 history events (docs/limits.md): each segment's loop then has its "
        "own child execution history.",
        "Choices": [
            {
                "Variable": "$.plan.distributed",
                "BooleanEquals": True,
                "Next": "Backfill segments (distributed)",
            }
        ],
        "Default": "Backfill segments",
    }
    states["Backfill segments"] = segment_loop("backfill", "INLINE", finish, overlap=True)
    states["Backfill segments (distributed)"] = segment_loop(
        "backfill", "DISTRIBUTED", finish, overlap=True
    )
    states[finish] = lambda_task(
        finish,
        "FinishBackfill",
        _spec_settings(),
        result_selector={
            "done.$": "$.Payload.done",
            "removed.$": "$.Payload.removed",
            "recreated.$": "$.Payload.recreated",
        },
        result_path="$.finish",
        next_state="Tombstones removed?",
        comment="Switches the replicator to plain deletes, then removes registered tombstones "
        "until done or the worker budget is spent (a loop like the segments').",
    )
    clock = "Start catch-up clock"
    states["Tombstones removed?"] = {
        "Type": "Choice",
        "Choices": [
            {
                "Variable": "$.finish.done",
                "BooleanEquals": True,
                "Next": "Segments verified already?",
            }
        ],
        "Default": finish,
    }
    states["Segments verified already?"] = {
        "Type": "Choice",
        "Comment": "The concurrent strategy verified each segment inside the backfill Map, as "
        "soon as its copy was done (unless sampled): straight to the catch-up. The other "
        "strategies verify now; the concurrent (sampled) and export strategies' replicator "
        "already runs (no replay start).",
        "Choices": [
            overlap_rule(clock),
            {
                "Or": [
                    {"Variable": "$.spec.strategy", "StringEquals": OVERLAP_STRATEGY},
                    {"Variable": "$.spec.strategy", "StringEquals": "export"},
                ],
                "Next": "Verify in parallel?",
            },
        ],
        "Default": "Start replicator (replay strategy)",
    }
    states["Start replicator (replay strategy)"] = lambda_task(
        "Start replicator (replay strategy)",
        "Replication",
        _spec_settings(**{"action": "start_after_backfill", "stream_arn.$": "$.stream.result.arn"}),
        result_path="$.replicator_after_backfill",
        next_state="Verify in parallel?",
        comment="Replay strategy only: the replicator starts after the unconditional backfill, "
        "from TRIM_HORIZON of the stream enabled before the first scan page (I2). (The "
        "concurrent strategy does not come here: its replicator already runs.)",
    )
    states["Verify in parallel?"] = {
        "Type": "Choice",
        "Choices": [
            {
                "Variable": "$.plan.distributed",
                "BooleanEquals": True,
                "Next": "Verify segments (distributed)",
            }
        ],
        "Default": "Verify segments",
    }
    states["Verify segments"] = segment_loop("verify", "INLINE", clock)
    states["Verify segments (distributed)"] = segment_loop("verify", "DISTRIBUTED", clock)
    states[clock] = {
        "Type": "Pass",
        "Parameters": {"since.$": "$$.State.EnteredTime"},
        "ResultPath": "$.catchup",
        "Next": "Check replication lag",
    }
    states["Check replication lag"] = lambda_task(
        "Check replication lag",
        "Replication",
        _spec_settings(**{"action": "lag", "since.$": "$.catchup.since"}),
        result_path="$.lag",
        next_state="Replication caught up?",
    )
    states["Replication caught up?"] = {
        "Type": "Choice",
        "Choices": [
            {
                "Or": [
                    {"Variable": "$.lag.result.caught_up", "BooleanEquals": True},
                    {"Variable": "$.lag.result.give_up", "BooleanEquals": True},
                ],
                "Next": "Recheck differences",
            }
        ],
        "Default": "Wait for replication",
    }
    states["Wait for replication"] = {
        "Type": "Wait",
        "SecondsPath": "$.settings.poll_seconds",
        "Next": "Check replication lag",
    }
    states["Recheck differences"] = lambda_task(
        "Recheck differences",
        "Recheck",
        _spec_settings(),
        result_path="$.recheck",
        next_state="Readiness checklist",
    )
    readiness_selector = {
        "verdict.$": "$.Payload.verdict",
        "ready.$": "$.Payload.ready",
    }
    states["Readiness checklist"] = lambda_task(
        "Readiness checklist",
        "Readiness",
        _spec_settings(),
        result_selector=readiness_selector,
        result_path="$.readiness",
        next_state="Ready?",
    )
    states["Ready?"] = {
        "Type": "Choice",
        "Choices": [
            {"Variable": "$.readiness.ready", "BooleanEquals": True, "Next": "Cut over now?"}
        ],
        "Default": "Report NOT READY",
    }
    states["Report NOT READY"] = _report(
        "Report NOT READY", "NOT_READY", "Migration NOT READY", with_failure=False
    )
    states["Migration NOT READY"] = {
        "Type": "Fail",
        "Error": "NotReady",
        "Cause": "The readiness checklist has failing items: see the report in the state store.",
    }
    states["Cut over now?"] = {
        "Type": "Choice",
        "Choices": [
            {
                "Variable": "$.settings.approval",
                "BooleanEquals": True,
                "Next": "Wait for operator approval",
            },
            {"Variable": "$.settings.cutover", "BooleanEquals": True, "Next": "Drain replication"},
        ],
        "Default": "Write final report",
    }
    approval = with_retry_catch(
        "Wait for operator approval",
        {
            "Type": "Task",
            "Comment": "Stores the task token; `dynashift approve` (or the console) sends it "
            "back. Times out after settings.approval_timeout_seconds.",
            "Resource": LAMBDA_WAIT_FOR_TOKEN,
            "Parameters": {
                "FunctionName": "${ApprovalFunctionArn}",
                "Payload": _spec_settings(
                    **{"task_token.$": "$$.Task.Token", "execution_arn.$": "$$.Execution.Id"}
                ),
            },
            "TimeoutSecondsPath": "$.settings.approval_timeout_seconds",
            "ResultPath": "$.approval",
        },
    )
    approval["Next"] = "Readiness recheck before cutover"
    states["Wait for operator approval"] = approval
    states["Readiness recheck before cutover"] = lambda_task(
        "Readiness recheck before cutover",
        "Readiness",
        _spec_settings(**{"max_age_seconds.$": "$.settings.approval_max_age_seconds"}),
        result_selector=readiness_selector,
        result_path="$.readiness",
        next_state="Still ready?",
        comment="Keeps the checklist saved at the approval request when it is at most "
        "settings.approval_max_age_seconds old; an older one is run again before the cutover.",
    )
    states["Still ready?"] = {
        "Type": "Choice",
        "Choices": [
            {"Variable": "$.readiness.ready", "BooleanEquals": True, "Next": "Drain replication"}
        ],
        "Default": "Report NOT READY",
    }
    states["Drain replication"] = lambda_task(
        "Drain replication",
        "Replication",
        _spec_settings(**{"action": "drain", "since.$": "$$.State.EnteredTime"}),
        result_path="$.drain",
        next_state="Replication drained?",
    )
    states["Replication drained?"] = {
        "Type": "Choice",
        "Choices": [
            {
                "Variable": "$.drain.result.caught_up",
                "BooleanEquals": True,
                "Next": "Stop replicator",
            }
        ],
        "Default": "Wait for drain",
    }
    states["Wait for drain"] = {
        "Type": "Wait",
        "SecondsPath": "$.settings.poll_seconds",
        "Next": "Drain replication",
    }
    states["Stop replicator"] = lambda_task(
        "Stop replicator",
        "Replication",
        _spec_settings(action="stop"),
        result_path="$.stopped",
        next_state="Write final report",
    )
    states["Write final report"] = lambda_task(
        "Write final report",
        "Report",
        _spec_settings(outcome="READY"),
        result_path="$.report",
        next_state="Migration complete",
    )
    states["Migration complete"] = {"Type": "Succeed", "OutputPath": "$.report.result"}
    states[REJECTED] = _report(REJECTED, "REJECTED", "Input rejected", with_failure=True)
    states[FAILED] = _report(FAILED, "FAILED", "Migration failed", with_failure=True)
    states["Input rejected"] = {
        "Type": "Fail",
        "Error": "InputRejected",
        "CausePath": "States.Format('{}: {}', $.failure.Error, $.failure.Cause)",
    }
    states["Migration failed"] = {
        "Type": "Fail",
        "Error": "MigrationFailed",
        "CausePath": "States.Format('{}: {}', $.failure.Error, $.failure.Cause)",
    }
    return {
        "Comment": "dynashift: migrate a live DynamoDB table with zero downtime (one "
        "definition, two runners). Generated by dynashift.workflow.definition: edit that, then "
        "run `python -m dynashift.workflow.definition`.",
        "StartAt": "Validate input",
        "States": states,
    }


def render() -> str:
    """The definition as committed: 2-space JSON, keys in build order, a final newline."""
    return json.dumps(build(), indent=2, ensure_ascii=False) + "\n"


def with_dummy_arns(text: str) -> str:
    """The definition with every `${Name}` placeholder filled by a syntactically valid dummy
    ARN (what the asl-validator and the static checks read)."""
    import re

    def arn(match: re.Match[str]) -> str:
        name = match.group(1).removesuffix("Arn")
        return f"arn:aws:lambda:us-east-1:123456789012:function:dynashift-{name}"

    return re.sub(r"\$\{([A-Za-z0-9]+)\}", arn, text)


def main(argv: list[str] | None = None) -> int:
    """`python -m dynashift.workflow.definition [PATH]` rewrites the committed definition;
    `--filled PATH` writes it with dummy ARNs instead (for `make asl`)."""
    args = sys.argv[1:] if argv is None else argv
    text = render()
    if args[:1] == ["--filled"] and len(args) == 2:
        Path(args[1]).write_text(with_dummy_arns(text), encoding="utf-8")
        return 0
    path = Path(args[0]) if args else DEFINITION_PATH
    if path.exists() and path.read_text(encoding="utf-8") == text:
        print(f"{path}: up to date")
        return 0
    path.write_text(text, encoding="utf-8")
    print(f"{path}: written")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
