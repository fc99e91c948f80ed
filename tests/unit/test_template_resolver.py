"""`dynashift.workflow.template`: what each function of template.yaml gets, resolved like SAM."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from dynashift.workflow.template import TEMPLATE, Stack, TemplateError, load_template

SMALL = """
Parameters:
  Name: {Type: String, AllowedPattern: "^[a-z]+$"}
  Extra: {Type: String, Default: ""}
Conditions:
  HasExtra: !Not [!Equals [!Ref Extra, ""]]
Globals:
  Function:
    Timeout: 120
    MemorySize: 1024
    Environment:
      Variables:
        A: !Ref Name
        B: global
Resources:
  Queue: {Type: AWS::SQS::Queue}
  Fn:
    Type: AWS::Serverless::Function
    Properties:
      CodeUri: functions/fn/
      Timeout: 30
      Environment:
        Variables:
          B: own
          C: !If [HasExtra, !Ref Extra, !Ref AWS::NoValue]
          D: !Sub "${Name}-${AWS::Region}-${Queue.QueueName}"
          E: !Sub ["${X}/${Name}", {X: !GetAtt Queue.Arn}]
          F: !Ref Queue
"""
QUEUE = {"Queue": {"Ref": "https://q", "Arn": "arn:q", "QueueName": "q"}}


def _stack(tmp_path: Path, text: str, **params: str) -> Stack:
    path = tmp_path / "t.yaml"
    path.write_text(text)
    return Stack(load_template(path), params, QUEUE, region="eu-west-1")


def test_globals_merge_and_intrinsics(tmp_path: Path) -> None:
    fn = _stack(tmp_path, SMALL, Name="orders").function("Fn")
    assert (fn.timeout, fn.memory, fn.step) == (30, 1024, "fn")
    assert fn.environment == {
        "A": "orders",
        "B": "own",
        "D": "orders-eu-west-1-q",
        "E": "arn:q/orders",
        "F": "https://q",
    }
    with_extra = _stack(tmp_path, SMALL, Name="orders", Extra="x").function("Fn")
    assert with_extra.environment["C"] == "x"


@pytest.mark.parametrize(
    ("params", "text_change", "message"),
    [
        ({}, None, "stack parameter Name has no value"),
        ({"Name": "Bad1"}, None, "does not match"),
        ({"Name": "ok", "Nope": "x"}, None, "not declared in the template: Nope"),
        ({"Name": "ok"}, ("!Ref Queue", "!Ref Missing"), "!Ref Missing"),
        ({"Name": "ok"}, ("Queue.Arn", "Queue.Url"), "Queue.Url"),
    ],
)
def test_unresolvable_references_are_named(
    tmp_path: Path, params: dict[str, str], text_change: Any, message: str
) -> None:
    text = SMALL.replace(*text_change) if text_change else SMALL
    with pytest.raises(TemplateError, match=message):
        _stack(tmp_path, text, **params).function("Fn")


def _real_stack(**params: str) -> Stack:
    template = load_template(TEMPLATE)
    resources: dict[str, dict[str, str]] = {
        lid: {
            "Ref": f"ref-{lid}",
            "Arn": f"arn-{lid}",
            "QueueName": f"q-{lid}",
            "FunctionUrl": f"url-{lid}",
        }
        for lid in template["Resources"]
    }
    base = {"MigrationId": "m", "SourceTableName": "src", "TargetTableName": "tgt"}
    return Stack(template, base | params, resources)


def test_every_function_of_the_template_resolves_and_the_lag_readers_know_the_replicator() -> None:
    stack = _real_stack()
    for function in stack.functions():
        config = stack.function(function)
        assert config.environment["DYNASHIFT_STATE_TABLE"] == "ref-StateTable", function
        assert config.environment["DYNASHIFT_MIGRATION_ID"] == "m"
    # Recheck and Readiness measure the replicator's lag and DLQ (issue 11).
    for function in ("ReplicationFunction", "RecheckFunction", "ReadinessFunction"):
        env = stack.function(function).environment
        assert env["DYNASHIFT_REPLICATOR_FUNCTION"] == "ref-ReplicatorFunction", function
        assert env["DYNASHIFT_DLQ_URL"] == "ref-ReplicatorDeadLetterQueue", function
    assert "DYNASHIFT_REPLICATOR_FUNCTION" not in stack.function("ReplicatorFunction").environment


def test_the_replicator_gets_the_spec_values_it_cannot_read_from_its_event() -> None:
    plain = _real_stack().function("ReplicatorFunction").environment
    assert plain["DYNASHIFT_SKIP_TTL_DELETES"] == "false"
    for name in (
        "DYNASHIFT_TARGET_EXTERNAL_ID",
        "DYNASHIFT_VERSION_ATTRIBUTE",
        "DYNASHIFT_TARGET_ENDPOINT_URL",
        "DYNASHIFT_ENDPOINT_URL",
        "DYNASHIFT_TARGET_ROLE_ARN",
    ):
        assert name not in plain
    env = (
        _real_stack(
            TargetExternalId="7f3c",
            VersionAttribute="ver",
            SkipTtlDeletes="true",
            TargetEndpointUrl="http://127.0.0.1:8000",
            StateEndpointUrl="http://127.0.0.1:8001",
            TargetRoleArn="arn:aws:iam::444455556666:role/migrate",
        )
        .function("ReplicatorFunction")
        .environment
    )
    assert env["DYNASHIFT_TARGET_EXTERNAL_ID"] == "7f3c"
    assert env["DYNASHIFT_VERSION_ATTRIBUTE"] == "ver"
    assert env["DYNASHIFT_SKIP_TTL_DELETES"] == "true"
    assert env["DYNASHIFT_TARGET_ENDPOINT_URL"] == "http://127.0.0.1:8000"
    assert env["DYNASHIFT_ENDPOINT_URL"] == "http://127.0.0.1:8001"
    assert env["DYNASHIFT_TARGET_ROLE_ARN"] == "arn:aws:iam::444455556666:role/migrate"


def test_definition_substitutions_come_from_the_template() -> None:
    subs = _real_stack().definition_substitutions("MigrationStateMachine")
    assert subs["ValidateFunctionArn"] == "arn-ValidateFunction"
    assert len(subs) >= 12


def test_a_role_profile_replaces_the_callers_environment_credentials() -> None:
    from dynashift.aws import Side
    from dynashift.models import MigrationSpec, TableLocation
    from dynashift.workflow.migrate import local_stack
    from dynashift.workflow.sandbox import runtime_environment

    caller = {"AWS_ACCESS_KEY_ID": "AKIDEXAMPLE", "AWS_SECRET_ACCESS_KEY": "s", "HOME": "/h"}
    common: dict[str, Any] = {"function_name": "f", "memory": 128, "region": "r", "endpoints": {}}
    plain = runtime_environment({}, caller_env=caller, **common)
    assert plain["AWS_ACCESS_KEY_ID"] == "AKIDEXAMPLE" and "AWS_PROFILE" not in plain
    as_role = runtime_environment({}, caller_env=caller, profile="target-acct", **common)
    assert as_role["AWS_PROFILE"] == "target-acct"
    assert not {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "HOME"} & set(as_role)

    # A run whose target is reached with --target-profile: the replicator's role is that profile.
    spec = MigrationSpec(
        migration_id="m",
        source=TableLocation(name="src", side=Side(region="us-east-1")),
        target=TableLocation(name="tgt", side=Side(region="us-east-1", profile="target-acct")),
        state=TableLocation(name="state", side=Side(region="us-east-1", profile="target-acct")),
    )
    assert local_stack(spec).role_profiles == {"ReplicatorFunction": "target-acct"}
