"""What AWS enforces on the state machine that neither moto nor asl-validator checks, the
builder that generates it, and the limits it is designed against (docs/limits.md).

- the committed definition is exactly what `dynashift.workflow.definition` builds;
- state names are unique in the whole machine, nested Maps included (DUPLICATE_STATE_NAME);
- every Next / Default / Choice / Catch target exists in its scope and every state is reachable;
- every JSONPath a state reads is present in what the previous state outputs, starting from the
  minimal console input (a missing path is States.Runtime in AWS, which no Catch catches); each
  Task's output keys come from its handler's result model;
- every Lambda output stays well under 256 KB whatever the key size (States.DataLimitExceeded is
  not catchable either).

`make asl` runs the asl-validator npm package on the same definition (`make test` depends on it).
"""

from __future__ import annotations

import base64
import json
import re
import types
import typing
from collections.abc import Iterator
from typing import Any, Union, get_args, get_origin

import pytest
from pydantic import BaseModel

from dynashift.backfill import COUNTERS, SegmentResult
from dynashift.readiness import CheckItem, ReadinessReport
from dynashift.stream import StreamStatus
from dynashift.target import PrepareResult
from dynashift.verify import (
    DEFAULT_MAX_SUSPECTS,
    RecheckResult,
    Suspect,
    VerifyCursor,
    VerifyResult,
)
from dynashift.workflow import definition as builder
from dynashift.workflow import steps
from dynashift.workflow.control import LagStatus
from dynashift.workflow.runner import DEFINITION

# --- the builder ------------------------------------------------------------------------------


def test_builder_reproduces_the_committed_definition_byte_for_byte() -> None:
    assert DEFINITION.read_bytes() == builder.render().encode("utf-8"), (
        "statemachine/migration.asl.json is stale: run `python -m dynashift.workflow.definition`"
    )


def test_segment_loops_of_both_modes_have_distinct_names() -> None:
    inline = set(_names(builder.segment_loop("backfill", "INLINE", "X")["ItemProcessor"]))
    distributed = set(_names(builder.segment_loop("backfill", "DISTRIBUTED", "X")["ItemProcessor"]))
    verify = set(_names(builder.segment_loop("verify", "INLINE", "X")["ItemProcessor"]))
    assert inline and not inline & distributed and not inline & verify


def test_unknown_lambda_errors_are_retried_only_where_safe() -> None:
    retried = set()
    for name, state, _ in _walk(_definition()):
        if state["Type"] != "Task":
            continue
        errors = {e for r in state.get("Retry", []) for e in r["ErrorEquals"]}
        if {"Lambda.Unknown", "Sandbox.Timedout"} <= errors:
            retried.add(name)
        else:
            assert not errors & {"Lambda.Unknown", "Sandbox.Timedout"}, name
    assert retried == set(builder.RETRY_UNKNOWN)
    # A second call would repeat a side effect that is not idempotent.
    for unsafe in ("Create or verify target", "Start replicator", "Wait for operator approval"):
        assert unsafe not in retried


# --- names and graph --------------------------------------------------------------------------


def _definition() -> dict[str, Any]:
    return json.loads(DEFINITION.read_text())


def _processor(state: dict[str, Any]) -> dict[str, Any] | None:
    return state.get("ItemProcessor") or state.get("Iterator")


def _walk(machine: dict[str, Any], depth: int = 0) -> Iterator[tuple[str, dict[str, Any], int]]:
    for name, state in machine["States"].items():
        yield name, state, depth
        inner = _processor(state)
        if inner:
            yield from _walk(inner, depth + 1)
        for branch in state.get("Branches", []):
            yield from _walk(branch, depth + 1)


def _names(machine: dict[str, Any]) -> list[str]:
    return [name for name, _, _ in _walk(machine)]


def duplicate_names(machine: dict[str, Any]) -> list[str]:
    names = _names(machine)
    return sorted({n for n in names if names.count(n) > 1})


def _targets(state: dict[str, Any]) -> list[str]:
    out = [state[k] for k in ("Next", "Default") if k in state]
    out += [c["Next"] for c in state.get("Choices", [])]
    out += [c["Next"] for c in state.get("Catch", [])]
    return out


def graph_problems(machine: dict[str, Any], scope: str = "top") -> list[str]:
    """Undefined targets, unreachable states and states that neither go on nor end, in
    `machine` and every nested Map / Parallel (each is its own scope, as in AWS)."""
    states = machine["States"]
    problems = []
    if machine["StartAt"] not in states:
        problems.append(f"{scope}: StartAt {machine['StartAt']!r} undefined")
    for name, state in states.items():
        for target in _targets(state):
            if target not in states:
                problems.append(f"{scope}/{name}: target {target!r} undefined in its scope")
        terminal = state["Type"] in ("Succeed", "Fail") or state.get("End") is True
        if not terminal and "Next" not in state and state["Type"] != "Choice":
            problems.append(f"{scope}/{name}: neither Next nor End")
        inner = _processor(state)
        if inner:
            problems += graph_problems(inner, f"{scope}/{name}")
    seen, todo = set(), [machine["StartAt"]]
    while todo:
        name = todo.pop()
        if name in seen or name not in states:
            continue
        seen.add(name)
        todo += _targets(states[name])
    problems += [f"{scope}/{n}: unreachable" for n in states if n not in seen]
    return problems


def test_state_names_are_unique_in_the_whole_machine() -> None:
    assert duplicate_names(_definition()) == []


def test_the_name_check_sees_nested_duplicates() -> None:
    machine = _definition()
    inline = machine["States"]["Backfill segments"]["ItemProcessor"]["States"]
    distributed = machine["States"]["Backfill segments (distributed)"]["ItemProcessor"]
    distributed["States"]["Copy segment"] = inline["Copy segment"]
    assert duplicate_names(machine) == ["Copy segment"]


def test_every_target_is_defined_and_every_state_reachable() -> None:
    assert graph_problems(_definition()) == []


def test_the_graph_check_sees_a_dangling_next_and_an_orphan() -> None:
    machine = _definition()
    machine["States"]["Plan segments"]["Next"] = "Plan segmnets?"
    machine["States"]["Orphan"] = {"Type": "Pass", "End": True}
    problems = graph_problems(machine)
    assert any("'Plan segmnets?' undefined" in p for p in problems), problems
    assert "top/Orphan: unreachable" in problems


# --- JSONPath flow ----------------------------------------------------------------------------

#: A shape: the keys known to be present, each with its own shape; LEAF: present, contents
#: unknown (a scalar, or a free-form dict nobody may read into).
Shape = dict[str, Any]
LEAF: Any = None

#: The minimal console input (docs/workflow.md): only what the operator must type.
CONSOLE_INPUT: Shape = {"spec": {"source": {"name": LEAF}, "target": {"name": LEAF}}}

CONTEXT_PATHS = {"$$.Task.Token", "$$.Execution.Id", "$$.State.EnteredTime"}
MAP_CONTEXT_PATHS = {"$$.Map.Item.Value"}


def model_shape(model: type[BaseModel]) -> Shape:
    """The keys `model.model_dump(mode="json")` always holds (defaults included)."""
    hints = typing.get_type_hints(model)
    shape: Shape = {}
    for name, field in model.model_fields.items():
        if field.exclude:
            continue
        shape[name] = _annotation_shape(hints[name])
    return shape


def _annotation_shape(annotation: Any) -> Any:
    if get_origin(annotation) in (Union, types.UnionType):
        options = [a for a in get_args(annotation) if a is not type(None)]
        if len(options) != len(get_args(annotation)):
            return LEAF  # may be null: nothing below it is certain
        annotation = options[0] if len(options) == 1 else LEAF
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return model_shape(annotation)
    return LEAF


def _without(shape: Shape, *keys: str) -> Shape:
    return {k: v for k, v in shape.items() if k not in keys}


#: Each function's output (the `Payload` of its lambda:invoke result), from its result model.
#: Replication's depends on the action; the engine functions' return annotations are checked
#: below so a change of model shows up here.
OUTPUTS: dict[tuple[str, str | None], Shape] = {
    ("Validate", None): {
        "input": model_shape(steps.WorkflowInput),
        "validation": model_shape(steps.ValidationResult),
    },
    ("PrepareTarget", None): model_shape(PrepareResult),
    ("SourceStream", None): model_shape(StreamStatus),
    ("Replication", "start"): {"started": LEAF},
    ("Replication", "start_after_backfill"): {"started": LEAF},
    ("Replication", "lag"): model_shape(LagStatus),
    ("Replication", "drain"): model_shape(LagStatus),
    ("Replication", "stop"): {"stopped": LEAF},
    ("PlanSegments", None): model_shape(steps.PlanResult),
    ("BackfillSegment", None): model_shape(SegmentResult),
    ("FinishBackfill", None): model_shape(steps.FinishResult),
    ("VerifySegment", None): model_shape(steps.VerifyOutput),
    ("Recheck", None): _without(model_shape(RecheckResult), "divergent_keys"),
    ("Readiness", None): model_shape(steps.ReadinessOutput),
    ("Report", None): {"outcome": LEAF, "migration_id": LEAF},
    ("ExportSource", "start"): model_shape(steps.ExportProgress),
    ("ExportSource", "poll"): model_shape(steps.ExportProgress),
    ("ExportSource", "check_time"): model_shape(steps.ExportTimeCheck),
    ("ExportSource", "manifest"): model_shape(steps.ExportFilesResult),
    ("LoadExportFile", None): model_shape(steps.ExportFileResult),
}


def test_output_models_are_what_the_engine_steps_return() -> None:
    for function, model in (
        (steps.plan_segments, steps.PlanResult),
        (steps.finish_backfill, steps.FinishResult),
        (steps.verify_segment, steps.VerifyOutput),
        (steps.readiness, steps.ReadinessOutput),
        (steps.backfill_segment, SegmentResult),
        (steps.validate, steps.ValidationResult),
        (steps.load_export_file, steps.ExportFileResult),
    ):
        assert typing.get_type_hints(function)["return"] is model, function.__name__


_PATH = re.compile(r"\$(\$)?((?:\.[A-Za-z_][A-Za-z0-9_]*)*)")


def _segments(path: str) -> list[str]:
    assert re.fullmatch(r"\$(\.[A-Za-z_][A-Za-z0-9_]*)*", path), f"unsupported path {path!r}"
    return path.split(".")[1:]


def lookup(shape: Any, path: str) -> Any:
    """The shape at `path`; KeyError naming the path when it is not certainly present."""
    node = shape
    for part in _segments(path):
        if not isinstance(node, dict) or part not in node:
            raise KeyError(path)
        node = node[part]
    return node


def _assign(shape: Shape, path: str | None, value: Any) -> Shape:
    if path is None:
        return shape
    parts = _segments(path)
    if not parts:
        return value if isinstance(value, dict) else {}
    out = dict(shape)
    node = out
    for part in parts[:-1]:
        child = node.get(part)
        node[part] = dict(child) if isinstance(child, dict) else {}
        node = node[part]
    node[parts[-1]] = value
    return out


def _meet(a: Any, b: Any) -> Any:
    """Paths present in both (the input of a state reached along several edges)."""
    if isinstance(a, dict) and isinstance(b, dict):
        return {k: _meet(a[k], b[k]) for k in a if k in b}
    return LEAF


class Flow:
    """A static walk of one scope of the machine, collecting paths that may be missing."""

    def __init__(self, problems: list[str], scope: str) -> None:
        self.problems = problems
        self.scope = scope

    def read(self, where: str, shape: Any, path: str, context: set[str]) -> Any:
        if path.startswith("$$"):
            if path not in context:
                self.problems.append(f"{self.scope}/{where}: context path {path} unknown")
            return LEAF
        try:
            return lookup(shape, path)
        except KeyError:
            self.problems.append(f"{self.scope}/{where}: reads {path}, which may be missing")
            return LEAF

    def template(self, where: str, template: Any, shape: Any, context: set[str]) -> Any:
        """Evaluate a Parameters / ResultSelector / ItemSelector template to a shape."""
        if isinstance(template, dict):
            out: Shape = {}
            for key, value in template.items():
                if key.endswith(".$"):
                    if value.startswith("States."):
                        for path in re.findall(r"\$\$?[.\w]*", value):
                            self.read(where, shape, path, context)
                        out[key[:-2]] = LEAF
                    else:
                        out[key[:-2]] = self.read(where, shape, value, context)
                else:
                    out[key] = self.template(where, value, shape, context)
            return out
        return LEAF

    def run(self, machine: dict[str, Any], start_shape: Shape, context: set[str]) -> None:
        states = machine["States"]
        inputs: dict[str, Any] = {machine["StartAt"]: start_shape}
        todo = [machine["StartAt"]]
        while todo:
            name = todo.pop()
            shape = inputs[name]
            for target, out in self.step(name, states[name], shape, context):
                known = inputs.get(target)
                merged = out if target not in inputs else _meet(known, out)
                if target not in inputs or merged != known:
                    inputs[target] = merged
                    todo.append(target)
        # Report each problem once (loops visit states several times).
        self.problems[:] = list(dict.fromkeys(self.problems))

    def step(
        self, name: str, state: dict[str, Any], shape: Shape, context: set[str]
    ) -> list[tuple[str, Any]]:
        kind = state["Type"]
        out: Any = shape
        edges: list[tuple[str, Any]] = []
        for key in ("SecondsPath", "TimeoutSecondsPath", "ItemsPath", "MaxConcurrencyPath"):
            if key in state:
                self.read(name, shape, state[key], context)
        if kind == "Task":
            params = state.get("Parameters", {})
            self.template(name, params.get("Payload", {}), shape, context)
            result = self._task_result(name, state, params.get("Payload", {}))
            if "ResultSelector" in state:
                result = self.template(name, state["ResultSelector"], result, set())
            out = _assign(shape, state.get("ResultPath", "$"), result)
        elif kind == "Pass":
            result = self.template(name, state.get("Parameters", {}), shape, context)
            if "Parameters" in state:
                out = _assign(shape, state.get("ResultPath", "$"), result)
        elif kind == "Map":
            item = self.template(name, state["ItemSelector"], shape, context | MAP_CONTEXT_PATHS)
            Flow(self.problems, f"{self.scope}/{name}").run(_processor(state), item, context)
            if state.get("ResultPath", "$") is not None:
                out = _assign(shape, state.get("ResultPath", "$"), LEAF)
        elif kind == "Choice":
            for choice in state["Choices"]:
                for rule in [choice, *choice.get("Or", []), *choice.get("And", [])]:
                    for key, value in rule.items():
                        if key == "Variable" or key.endswith("Path"):
                            self.read(name, shape, value, context)
                edges.append((choice["Next"], shape))
            edges.append((state["Default"], shape))
            return edges
        elif kind == "Succeed" and "OutputPath" in state:
            self.read(name, shape, state["OutputPath"], context)
        elif kind == "Fail" and "CausePath" in state:
            for path in re.findall(r"\$[.\w]*", state["CausePath"]):
                self.read(name, shape, path, context)
        for catch in state.get("Catch", []):
            failed = _assign(shape, catch.get("ResultPath", "$"), {"Error": LEAF, "Cause": LEAF})
            edges.append((catch["Next"], failed))
        if "Next" in state:
            edges.append((state["Next"], out))
        return edges

    def _task_result(self, name: str, state: dict[str, Any], payload: dict[str, Any]) -> Any:
        if state["Resource"].endswith(".waitForTaskToken"):
            return LEAF  # whatever SendTaskSuccess sends: nobody may read into it
        match = re.fullmatch(r"\$\{(\w+)FunctionArn\}", state["Parameters"]["FunctionName"])
        assert match, name
        function = match.group(1)
        action = payload.get("action")
        key = (function, None) if (function, None) in OUTPUTS else (function, action)
        if key not in OUTPUTS:
            self.problems.append(f"{self.scope}/{name}: no output model for {key}")
            return LEAF
        return {"Payload": OUTPUTS[key], "StatusCode": LEAF}


def path_problems(machine: dict[str, Any]) -> list[str]:
    problems: list[str] = []
    Flow(problems, "top").run(machine, CONSOLE_INPUT, CONTEXT_PATHS)
    return problems


def test_every_path_read_is_present_from_the_minimal_console_input_on() -> None:
    assert path_problems(_definition()) == []


def test_the_path_check_sees_what_the_console_input_lacks() -> None:
    # The definition before Validate normalised the input: its first state read
    # $.settings and $.target_options, which a console input may omit.
    machine = _definition()
    validate = machine["States"]["Validate input"]
    validate["Parameters"]["Payload"] = {"spec.$": "$.spec", "settings.$": "$.settings"}
    validate["ResultSelector"] = {"result.$": "$.Payload"}
    validate["ResultPath"] = "$.validation"
    problems = path_problems(machine)
    assert "top/Validate input: reads $.settings, which may be missing" in problems
    assert any("Wait for target: reads $.settings.poll_seconds" in p for p in problems)


def test_the_path_check_sees_a_field_the_handler_does_not_return() -> None:
    machine = _definition()
    loop = machine["States"]["Verify segments"]["ItemProcessor"]["States"]["Verify segment"]
    loop["ResultSelector"]["suspects.$"] = "$.Payload.suspect_keys"
    problems = path_problems(machine)
    assert problems == [
        "top/Verify segments/Verify segment: reads $.Payload.suspect_keys, which may be missing"
    ]


# --- output bounds ----------------------------------------------------------------------------

#: DynamoDB's largest keys: a 2,048-byte partition key and a 1,024-byte sort key, binary (base64
#: in event JSON is the largest encoding).
BIG_KEY = {
    "pk": {"B": base64.b64encode(b"\xff" * 2048).decode()},
    "sk": {"B": base64.b64encode(b"\xfe" * 1024).decode()},
}
#: "Well under" Step Functions' 256 KB state limit: a quarter of it.
BOUND = 64 * 1024


def _size(value: Any) -> int:
    if isinstance(value, BaseModel):
        value = value.model_dump(mode="json")
    return len(json.dumps(value).encode("utf-8"))


def _worst_verify() -> VerifyResult:
    return VerifyResult(
        migration_id="m" * 64,
        segment=9_999,
        total_segments=10_000,
        mode="merge",
        cursor=VerifyCursor(source_key=BIG_KEY, target_key=BIG_KEY),
        suspects=[Suspect(kind="differing", key=BIG_KEY)] * DEFAULT_MAX_SUSPECTS,
        suspects_dropped=10**9,
        missing=10**9,
    )


def _worst_readiness() -> ReadinessReport:
    checks = [
        CheckItem(name=f"check {i}", ok=False, detail="d" * 2_000, required=True) for i in range(12)
    ]
    return ReadinessReport(
        migration_id="m" * 64,
        source="s" * 255,
        target="t" * 255,
        generated_at=0.0,
        verdict="NOT READY",
        checks=checks,
    )


WORST_OUTPUTS = {
    "backfill_segment": lambda: SegmentResult(
        segment=9_999,
        total_segments=10_000,
        cursor=BIG_KEY,
        counters=dict.fromkeys(COUNTERS, 10**12),
    ),
    "verify_segment": lambda: steps.verify_output(_worst_verify()),
    "recheck": lambda: steps.recheck_output(
        RecheckResult(divergent=10**9, divergent_keys=[Suspect(kind="missing", key=BIG_KEY)] * 200)
    ),
    "readiness": lambda: steps.readiness_output(_worst_readiness()),
    "finish_backfill": lambda: steps.FinishResult(done=False, registered=10**9, removed=10**9),
    "plan_segments": lambda: steps.PlanResult(
        segments=list(range(10_000)),
        count=10_000,
        distributed=True,
        invocations=10**9,
        history_events=10**9,
    ),
    "export_files": lambda: steps.ExportFilesResult(
        files=list(range(10_000)), count=10_000, distributed=True, items=10**12
    ),
    "load_export_file": lambda: steps.ExportFileResult(
        cursor={"file": 9_999, "line": 10**12, "done": False}, done=False
    ),
    "replication_lag": lambda: LagStatus(
        caught_up=False, records_behind=10**12, age_seconds=86_400.0, detail="x" * 500
    ),
}


@pytest.mark.parametrize("step", sorted(WORST_OUTPUTS))
def test_lambda_outputs_stay_well_under_256_kb_whatever_the_key_size(step: str) -> None:
    size = _size(WORST_OUTPUTS[step]())
    assert size < BOUND, f"{step}: {size} bytes"


def test_the_bound_would_catch_keys_in_an_output() -> None:
    # What verify returned before: the whole result with its suspects' keys.
    assert _size(_worst_verify()) > 256 * 1024


def test_validate_adds_only_the_defaults_to_the_console_input() -> None:
    minimal = {"spec": {"source": {"name": "orders"}, "target": {"name": "orders-v2"}}}
    env = _env(migration_id="orders-v2", state_table="dynashift-state")
    normalised = steps.normalise_input(minimal, env).model_dump(mode="json")
    assert _size(normalised) < 4 * 1024


def _env(**values: Any) -> Any:
    from dynashift.settings import LambdaSettings

    base = dict(state_table=None, region="us-east-1", sns_topic_arn=None,
                replicator_function=None, endpoint_url=None)  # fmt: skip
    return LambdaSettings(**(base | values))
