"""Static checks of the state machine definition against the handlers and the SAM template."""

from __future__ import annotations

import inspect
import json
import re
from pathlib import Path
from typing import Any

import pytest

from dynashift import errors
from dynashift.workflow.migrate import BAD_INPUT_ERRORS
from dynashift.workflow.runner import DEFINITION, FUNCTIONS, load_handler, placeholders, step_of

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "template.yaml"


def _definition() -> dict[str, Any]:
    return json.loads(DEFINITION.read_text())


def _states(definition: dict[str, Any], in_map: bool = False):
    for name, state in definition["States"].items():
        yield name, state, in_map
        processor = state.get("ItemProcessor") or state.get("Iterator")
        if processor:
            yield from _states(processor, True)


def _tasks():
    return [(n, s, m) for n, s, m in _states(_definition()) if s["Type"] == "Task"]


def test_every_task_maps_to_an_existing_handler() -> None:
    assert len(_tasks()) >= 12
    for name, state, _ in _tasks():
        assert state["Resource"].startswith("arn:aws:states:::lambda:invoke"), name
        function = state["Parameters"]["FunctionName"]
        match = re.fullmatch(r"\$\{([A-Za-z]+FunctionArn)\}", function)
        assert match, f"{name}: FunctionName {function!r} is not a placeholder"
        step = step_of(match.group(1))
        assert (FUNCTIONS / step / "app.py").is_file(), f"{name}: functions/{step}/app.py missing"
        handler = load_handler(step)
        assert list(inspect.signature(handler).parameters) == ["event", "context"], step


def test_every_placeholder_is_substituted_by_the_template() -> None:
    template = TEMPLATE.read_text()
    block = template.split("DefinitionSubstitutions:", 1)[1].split("Policies:", 1)[0]
    substituted = set(re.findall(r"^\s+([A-Za-z]+):", block, re.M))
    needed = set(placeholders(DEFINITION.read_text()))
    assert needed, "the definition has no placeholders"
    assert needed <= substituted, f"not substituted: {sorted(needed - substituted)}"
    for name in needed:
        logical = name.removesuffix("Arn")
        assert f"\n  {logical}:\n    Type: AWS::Serverless::Function" in template, logical
        step = step_of(name)
        assert f"CodeUri: functions/{step}/" in template, step


def test_definition_holds_placeholders_only() -> None:
    text = DEFINITION.read_text()
    assert not re.search(r"arn:aws:(lambda|dynamodb|sns|sqs|iam)", text)
    assert not re.search(r"\d{12}", text), "an account id in the definition"


def _error_names(module: Any, base: type) -> set[str]:
    return {
        name for name, obj in vars(module).items() if inspect.isclass(obj) and issubclass(obj, base)
    }


def test_bad_input_errors_are_routed_to_the_rejection_report() -> None:
    bad = _error_names(errors, errors.BadInputError)
    assert bad == set(BAD_INPUT_ERRORS)
    for name, state, in_map in _tasks():
        if in_map or not state.get("Catch"):
            continue
        routed = {
            e
            for c in state["Catch"]
            for e in c["ErrorEquals"]
            if c["Next"] == "Report rejected input"
        }
        if routed:
            assert routed == bad, name


def test_every_failure_path_reports() -> None:
    definition = _definition()
    for name, state, in_map in _states(definition):
        if state["Type"] == "Task" and not in_map:
            catches = state.get("Catch", [])
            assert any("States.ALL" in c["ErrorEquals"] for c in catches), f"{name}: no catch-all"
            for catch in catches:
                target = definition["States"][catch["Next"]]
                assert target["Type"] in ("Task", "Fail"), name
                if target["Type"] == "Task":
                    assert "Report" in catch["Next"], name
        if state["Type"] == "Map":
            assert "MaxConcurrency" in state or "MaxConcurrencyPath" in state, name
            assert any("States.ALL" in c["ErrorEquals"] for c in state.get("Catch", [])), name


def test_tasks_retry_lambda_and_transient_engine_errors() -> None:
    for name, state, _ in _tasks():
        retried = {e for r in state.get("Retry", []) for e in r["ErrorEquals"]}
        assert {"Lambda.ServiceException", "Lambda.TooManyRequestsException"} <= retried, name
        assert {"TransientError", "NotReadyYet"} <= retried, name


def test_waits_come_from_the_input() -> None:
    waits = [s for _, s, _ in _states(_definition()) if s["Type"] == "Wait"]
    assert waits
    for state in waits:
        assert "SecondsPath" in state and "Seconds" not in state


@pytest.mark.parametrize("path", ["samconfig.toml", "template.yaml"])
def test_no_account_ids_in_deploy_config(path: str) -> None:
    text = (ROOT / path).read_text()
    assert not re.search(r"(?<![\w${])\d{12}(?!\w)", text), path
    if path == "samconfig.toml":
        assert "resolve_s3 = true" in text


def test_iam_policies_name_their_actions() -> None:
    template = TEMPLATE.read_text()
    actions = re.findall(r"^\s+(?:- |Action: )([a-z0-9-]+:[A-Za-z*]+)\s*$", template, re.M)
    assert actions, "no IAM actions found"
    assert not [a for a in actions if "*" in a], "wildcard actions in template.yaml"
    assert not re.search(r"Action:\s*['\"]?\*", template)
