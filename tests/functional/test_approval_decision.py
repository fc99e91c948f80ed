"""Console approval: the notification and the ApprovalDecisionFunction, against a real waiting
task token.

A private in-process moto server runs a one-task state machine with moto's Step Functions
interpreter: the task is the workflow's approval step (`arn:aws:states:::lambda:invoke.
waitForTaskToken` with `$$.Task.Token` and `$$.Execution.Id`), dispatched to
functions/approval/app.py. The state table and the SNS topic live on the session's moto server
(`endpoint`). The decision function (functions/approval_decision/app.py) then answers with the
token it finds in the state table: the execution succeeds on approve and fails on reject.
"""

from __future__ import annotations

import json
import os
import re
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import boto3
import pytest

from dynashift.approval import ApprovalDecision, approval_message, parse_decision
from dynashift.errors import BadInputError
from dynashift.readiness import CheckItem, ReadinessReport, save_report
from dynashift.state import StateStore
from tests.support.functions import create_function
from tests.support.iam_scenario import handler_module
from tests.support.lambda_context import LambdaContext

ROOT = Path(__file__).resolve().parents[2]
REGION = "us-east-1"
APPROVAL_URL = "https://abc123.lambda-url.us-east-1.on.aws/"


def _report(migration_id: str) -> ReadinessReport:
    return ReadinessReport(
        migration_id=migration_id,
        source="us-east-1:orders",
        target="us-east-1:orders-v2",
        generated_at=time.time(),
        verdict="READY",
        checks=[
            CheckItem(name="backfill complete", ok=True, detail="2/2 segments"),
            CheckItem(name="divergent items", ok=True, detail="0 after recheck"),
        ],
    )


# --- the message --------------------------------------------------------------------------


def test_the_message_names_the_execution_and_every_way_to_answer() -> None:
    arn = "arn:aws:states:eu-west-1:123456789012:execution:stack-migration:run-1"
    subject, message = approval_message(
        "m-1",
        source="eu-west-1:orders",
        target="eu-west-1:orders-v2",
        execution_arn=arn,
        report=_report("m-1"),
        approval_function="stack-ApprovalDecisionFunction-XYZ",
        approval_url=APPROVAL_URL,
        region="eu-west-1",
    )
    assert "m-1" in subject and "READY" in subject and len(subject) <= 100
    assert f"Execution: {arn}" in message
    assert "divergent items" in message and "0 after recheck" in message  # the checklist
    assert f"dynashift approve --execution {arn}\n" in message
    assert f'dynashift approve --execution {arn} --reject --reason "why"' in message
    assert (
        "https://console.aws.amazon.com/lambda/home?region=eu-west-1"
        "#/functions/stack-ApprovalDecisionFunction-XYZ?tab=testing"
    ) in message
    # The console test events in the message are what the decision function accepts.
    events = re.findall(r"^  (approve|reject): +(\{.*\})$", message, re.M)
    assert [e[0] for e in events] == ["approve", "reject"]
    decisions = [parse_decision(json.loads(text)) for _, text in events]
    assert decisions == [
        ApprovalDecision(execution_arn=arn, decision="approve"),
        ApprovalDecision(execution_arn=arn, decision="reject", reason="why"),
    ]
    # So are the signed URL requests (query string of the function URL).
    urls = re.findall(r"^  (?:approve|reject): +(https://\S+)$", message, re.M)
    assert len(urls) == 2 and all(u.startswith(APPROVAL_URL + "?execution=arn%3A") for u in urls)
    query = dict(p.split("=", 1) for p in urls[1].split("?", 1)[1].split("&"))
    http_event = {
        "requestContext": {"http": {"method": "GET"}},
        "queryStringParameters": {k: _unquote(v) for k, v in query.items()},
    }
    assert parse_decision(http_event) == decisions[1]


def _unquote(text: str) -> str:
    from urllib.parse import unquote

    return unquote(text)


def test_without_an_execution_arn_or_a_console_function_the_message_still_says_what_to_do() -> None:
    _subject, message = approval_message(
        "m-2", source="s", target="t", execution_arn=None, report=None
    )
    assert "dynashift approve --execution <execution ARN" in message
    assert "no readiness report saved" in message
    assert "lambda/home" not in message


def test_bad_decisions_name_the_field() -> None:
    arn = "arn:aws:states:us-east-1:123456789012:execution:sm:run"
    with pytest.raises(BadInputError, match=r"^decision: "):
        parse_decision({"execution_arn": arn, "decision": "yes"})
    with pytest.raises(BadInputError, match=r"^execution_arn: "):
        parse_decision({"execution_arn": "run-1", "decision": "approve"})
    with pytest.raises(BadInputError, match=r"^execution_arn: "):
        parse_decision({"requestContext": {"http": {}}, "queryStringParameters": {}})


# --- against a waiting execution -------------------------------------------------------------


@contextmanager
def _env(**values: str) -> Iterator[None]:
    saved = dict(os.environ)
    try:
        for key in list(os.environ):
            if key.startswith(("DYNASHIFT_", "AWS_ENDPOINT_URL")):
                del os.environ[key]
        os.environ.update(values)
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


@contextmanager
def _step_functions(dispatch: Any) -> Iterator[str]:
    """An in-process moto server whose interpreter runs state machines; Lambda invokes go to
    `dispatch(payload) -> result`."""
    import socket

    from moto.awslambda_simple.models import LambdaSimpleBackend
    from moto.core.config import default_user_config
    from moto.server import ThreadedMotoServer

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])
    saved_port = os.environ.get("MOTO_PORT")
    saved = {k: dict(default_user_config.get(k, {})) for k in ("stepfunctions", "lambda")}
    saved_invoke = LambdaSimpleBackend.invoke

    def invoke(self: Any, function_name: str, qualifier: Any, body: Any, *args: Any) -> bytes:
        return json.dumps(dispatch(json.loads(body))).encode()

    import logging

    for noisy in ("werkzeug", "moto"):
        logging.getLogger(noisy).setLevel(logging.CRITICAL)
    os.environ["MOTO_PORT"] = str(port)
    default_user_config["stepfunctions"] = {"execute_state_machine": True}
    default_user_config["lambda"] = {"use_docker": False}
    LambdaSimpleBackend.invoke = invoke  # type: ignore[method-assign]
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()
        LambdaSimpleBackend.invoke = saved_invoke  # type: ignore[method-assign]
        for key, value in saved.items():
            default_user_config[key] = value  # type: ignore[literal-required]
        if saved_port is None:
            os.environ.pop("MOTO_PORT", None)
        else:
            os.environ["MOTO_PORT"] = saved_port


def _definition(function_arn: str) -> str:
    return json.dumps(
        {
            "StartAt": "Wait for operator approval",
            "States": {
                "Wait for operator approval": {
                    "Type": "Task",
                    "Resource": "arn:aws:states:::lambda:invoke.waitForTaskToken",
                    "Parameters": {
                        "FunctionName": function_arn,
                        "Payload": {
                            "spec.$": "$.spec",
                            "settings.$": "$.settings",
                            "task_token.$": "$$.Task.Token",
                            "execution_arn.$": "$$.Execution.Id",
                        },
                    },
                    "ResultPath": "$.approval",
                    "Catch": [{"ErrorEquals": ["dynashift.Rejected"], "Next": "Rejected"}],
                    "Next": "Cut over",
                },
                "Cut over": {"Type": "Pass", "End": True},
                "Rejected": {"Type": "Fail", "Error": "Rejected", "Cause": "cutover rejected"},
            },
        }
    )


def _until(predicate: Any, timeout: float = 20.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError("timed out")


def test_approve_and_reject_from_the_console_answer_the_waiting_execution(
    endpoint: str, ddb: Any, table_name: Any
) -> None:
    from tests.support.workflow import workflow_input

    wf = workflow_input(endpoint, table_name("appr-src"), table_name("appr-tgt"))
    spec = wf.spec
    StateStore.ensure_table(ddb, spec.state.name)
    state = StateStore(ddb, spec.state.name, spec.migration_id)
    save_report(state, _report(spec.migration_id))
    sns = boto3.client("sns", region_name=REGION, endpoint_url=endpoint)
    sqs = boto3.client("sqs", region_name=REGION, endpoint_url=endpoint)
    topic = sns.create_topic(Name=f"appr-{uuid.uuid4().hex[:8]}")["TopicArn"]
    queue = sqs.create_queue(QueueName=f"appr-{uuid.uuid4().hex[:8]}")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])
    sns.subscribe(
        TopicArn=topic,
        Protocol="sqs",
        Endpoint=queue_arn["Attributes"]["QueueArn"],
        Attributes={"RawMessageDelivery": "true"},
    )
    approval = handler_module(ROOT / "functions" / "approval")
    decision = handler_module(ROOT / "functions" / "approval_decision")
    payload = {"spec": spec.model_dump(mode="json"), "settings": wf.settings.model_dump()}

    def dispatch(event: dict[str, Any]) -> Any:
        return approval.handler(event, LambdaContext("approval"))

    with _step_functions(dispatch) as sfn_url:
        env = {
            "AWS_ENDPOINT_URL": endpoint,  # state table, SNS: "AWS"
            "AWS_ENDPOINT_URL_SFN": sfn_url,  # Step Functions: the interpreter
            "AWS_DEFAULT_REGION": REGION,
            "AWS_REGION": REGION,
            "DYNASHIFT_STATE_TABLE": spec.state.name,
            "DYNASHIFT_MIGRATION_ID": spec.migration_id,
            "DYNASHIFT_TOPIC_ARN": topic,
            "DYNASHIFT_APPROVAL_FUNCTION": "stack-ApprovalDecisionFunction-XYZ",
            "DYNASHIFT_APPROVAL_URL": APPROVAL_URL,
        }
        with _env(**env):
            sfn = boto3.client("stepfunctions", region_name=REGION)
            iam = boto3.client("iam", region_name=REGION, endpoint_url=sfn_url)
            role = iam.create_role(RoleName="approval-test", AssumeRolePolicyDocument="{}")
            fn = create_function(sfn_url, "approval")
            machine = sfn.create_state_machine(
                name="approval-test", definition=_definition(fn), roleArn=role["Role"]["Arn"]
            )["stateMachineArn"]

            def waiting(name: str) -> str:
                arn = sfn.start_execution(
                    stateMachineArn=machine, name=name, input=json.dumps(payload)
                )["executionArn"]
                _until(lambda: (state.get_meta() or {}).get("approval_execution") == arn)
                return str(arn)

            def answer(event: dict[str, Any]) -> Any:
                return decision.handler(event, LambdaContext("approval_decision"))

            def status(arn: str) -> str:
                return str(sfn.describe_execution(executionArn=arn)["status"])

            def finished(arn: str) -> str:
                return str(_until(lambda: status(arn) != "RUNNING" and status(arn)))

            # 1. The notification: execution ARN, checklist, console events, the command.
            first = waiting("approve-me")
            messages = _until(
                lambda: sqs.receive_message(QueueUrl=queue, WaitTimeSeconds=1).get("Messages")
            )
            body = messages[0]["Body"]
            assert f"Execution: {first}" in body
            assert "0 after recheck" in body
            assert f"dynashift approve --execution {first}" in body
            assert json.dumps({"execution_arn": first, "decision": "approve"}) in body

            # 2. A decision for another execution is refused; the execution keeps waiting.
            other = first.replace(":approve-me", ":some-other-run")
            with pytest.raises(BadInputError, match="not the execution waiting"):
                answer({"execution_arn": other, "decision": "approve"})
            refused = answer(
                {
                    "requestContext": {"http": {"method": "POST"}},
                    "queryStringParameters": {"execution": other, "decision": "approve"},
                }
            )
            assert refused["statusCode"] == 400
            assert "not the execution waiting" in json.loads(refused["body"])["error"]
            time.sleep(0.3)
            assert status(first) == "RUNNING"

            # 3. Approve through the function URL: the execution cuts over.
            ok = answer(
                {
                    "requestContext": {"http": {"method": "POST"}},
                    "queryStringParameters": {"execution": first, "decision": "approve"},
                }
            )
            assert ok["statusCode"] == 200, ok
            assert json.loads(ok["body"])["decision"] == "approve"
            assert finished(first) == "SUCCEEDED"
            output = json.loads(sfn.describe_execution(executionArn=first)["output"])
            assert output["approval"]["approved"] is True

            # 4. Reject from the console's test event: the execution fails.
            second = waiting("reject-me")
            result = answer({"execution_arn": second, "decision": "reject", "reason": "not now"})
            assert result["decision"] == "reject"
            assert finished(second) == "FAILED"

            # 5. Nothing waits any more: a repeated answer is refused with one line.
            with pytest.raises(BadInputError, match="not waiting for approval"):
                answer({"execution_arn": second, "decision": "approve"})
