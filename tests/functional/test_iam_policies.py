"""IAM that is both sufficient and least: every AWS call each function makes, evaluated against
that function's policies in template.yaml by a real IAM evaluator.

How (tests/support/):
- `iam_scenario.run_scenario` drives every handler in functions/*/app.py through one small
  migration on the moto server, each with the environment SAM's transform of template.yaml gives
  its function (Globals merged, intrinsics resolved) and nothing else; `iam_calls.Recorder`
  records each botocore call as (function, action, resource ARN, condition context), and
  `iam_calls.implied_calls` adds what AWS services do with a function's role (event source
  mapping, KMS through DynamoDB and SNS, replica creation, Step Functions tasks and Distributed
  Map children). The source table is encrypted with a customer managed key (KmsKeyArns) and the
  target gets a replica region (ReplicaRegions); a second pass sets SourceRoleArn/TargetRoleArn.
- `iam_eval.evaluate` runs @cloud-copilot/iam-simulate (npm, pinned in tools/iam-simulate): it
  implements AWS's policy evaluation logic with every condition operator, cross-account rules
  and KMS key-policy trust, and checks each action and resource type against the Service
  Authorization Reference data. Chosen over moto's IAMPolicy (StringEquals only, a failed
  condition on an Allow is treated as an explicit deny, case-sensitive actions, no resource
  types), policyuniverse (wildcard expansion, no request evaluation) and the linters parliament
  and cloudsplaining (they do not evaluate requests); see tests/support/iam_eval.py.

A denied call fails `test_every_call_is_allowed`. `test_removing_a_statement_denies_its_calls`
edits a copy of template.yaml and shows the evaluator then denies (the test can fail), and
`test_every_statement_is_needed` removes each statement in turn: a statement no call needs is
excess privilege. docs/permissions.md is generated from the same analysis.
"""

from __future__ import annotations

import re
from typing import Any

import pytest
import yaml

from tests.support import sam_template
from tests.support.iam_calls import WILDCARD_ONLY, Call
from tests.support.iam_eval import evaluate, principal_policies
from tests.support.iam_scenario import Stack
from tests.support.permissions_doc import (
    DOC,
    NOT_EXERCISED,
    Analysis,
    analyse,
    render,
    stream_resource_policy,
)

FUNCTIONS = {
    "ValidateFunction",
    "PrepareTargetFunction",
    "SourceStreamFunction",
    "ReplicationFunction",
    "PlanSegmentsFunction",
    "BackfillSegmentFunction",
    "FinishBackfillFunction",
    "VerifySegmentFunction",
    "RecheckFunction",
    "ReadinessFunction",
    "ApprovalFunction",
    "ApprovalDecisionFunction",
    "ReportFunction",
    "ReplicatorFunction",
    "ExportSourceFunction",
    "LoadExportFileFunction",
}


@pytest.fixture(scope="module")
def analysis(endpoint: str) -> Analysis:
    return analyse(endpoint)


def _denied(analysis: Analysis) -> list[str]:
    return [
        f"{d.call.principal}: {d.call.action} on {d.call.resource} {d.call.context_dict or ''}"
        f" -> {d.decision} {d.errors or ''} {d.call.implied_by}"
        for d in analysis.decisions
        if not d.allowed
    ]


def test_every_call_is_allowed(analysis: Analysis) -> None:
    assert not _denied(analysis), "\n".join(_denied(analysis))


def test_every_function_was_run_and_its_calls_recorded(analysis: Analysis) -> None:
    stack_functions = set(analysis.scenario.stack.functions())
    assert stack_functions == FUNCTIONS, "a new function: add it to the scenario"
    recorded = {c.principal for c in analysis.calls if not c.implied_by}
    assert recorded == FUNCTIONS
    assert len(analysis.decisions) == len(analysis.calls) + len(analysis.role_calls)


def _has(calls: list[Call], principal: str, action: str, pattern: str = "", **context: str) -> bool:
    return any(
        c.principal == principal
        and c.action == action
        and re.search(pattern, c.resource)
        and all(c.context_dict.get(k) == v for k, v in context.items())
        for c in calls
    )


def test_the_run_exercised_every_kind_of_permission(analysis: Analysis) -> None:
    """KMS keys, replica regions, Distributed Map children, cross-account roles, and the
    replicator's stream read and DLQ write are in the evaluated calls (not just granted)."""
    calls = analysis.calls
    via_ddb = {"kms:ViaService": "dynamodb.us-east-1.amazonaws.com"}
    assert _has(calls, "BackfillSegmentFunction", "kms:Decrypt", ":key/", **via_ddb)
    assert _has(calls, "BackfillSegmentFunction", "kms:GenerateDataKey", ":key/", **via_ddb)
    assert _has(calls, "PrepareTargetFunction", "kms:CreateGrant", ":key/")
    assert _has(
        calls,
        "ApprovalFunction",
        "kms:GenerateDataKey",
        ":key/",
        **{"kms:ViaService": "sns.us-east-1.amazonaws.com"},
    )
    assert _has(calls, "PrepareTargetFunction", "dynamodb:CreateTableReplica", ":us-west-2:")
    assert _has(
        calls,
        "PrepareTargetFunction",
        "iam:CreateServiceLinkedRole",
        "replication.dynamodb",
        **{"iam:AWSServiceName": "replication.dynamodb.amazonaws.com"},
    )
    assert _has(calls, "MigrationStateMachine", "states:StartExecution", ":stateMachine:")
    assert _has(
        calls, "MigrationStateMachine", "states:DescribeExecution", r"-migration:[0-9a-f-]+$"
    )
    assert _has(calls, "MigrationStateMachine", "states:RedriveExecution", r"-migration/")
    assert _has(calls, "ReplicatorFunction", "dynamodb:GetRecords", "/stream/")
    assert _has(calls, "ReplicatorFunction", "sqs:SendMessage", ":sqs:")
    assert _has(calls, "ReplicationFunction", "lambda:CreateEventSourceMapping", r"^\*$")
    # A resumed run's Validate finds the source's stream and describes it, and Validate and
    # PrepareTarget find the target (encrypted with the source's key) and scan it for items.
    assert _has(calls, "ValidateFunction", "dynamodb:DescribeStream", "/stream/")
    assert _has(calls, "ValidateFunction", "kms:Decrypt", ":key/", **via_ddb)
    assert _has(calls, "PrepareTargetFunction", "kms:Decrypt", ":key/", **via_ddb)
    assert _has(calls, "ApprovalDecisionFunction", "states:SendTaskSuccess", r"^\*$")
    # The export strategy: the export, its objects (written by DynamoDB with the caller's
    # permissions, SSE-KMS) and the loaders' reads of the export's prefix only.
    via_s3 = {"kms:ViaService": "s3.us-east-1.amazonaws.com"}
    assert _has(calls, "ValidateFunction", "s3:ListBucket", r":s3:::iam-export-")
    assert _has(calls, "ExportSourceFunction", "dynamodb:ExportTableToPointInTime", ":table/")
    assert _has(calls, "ExportSourceFunction", "dynamodb:DescribeExport", r"/export/")
    assert _has(calls, "ExportSourceFunction", "s3:PutObject", r"/dynashift/exports/AWSDynamoDB/")
    assert _has(calls, "ExportSourceFunction", "kms:GenerateDataKey", ":key/", **via_s3)
    assert _has(calls, "LoadExportFileFunction", "s3:GetObject", r"/dynashift/exports/.*\.gz$")
    assert _has(calls, "LoadExportFileFunction", "kms:Decrypt", ":key/", **via_s3)
    roles = analysis.scenario.outputs["roles"]
    assert _has(
        analysis.role_calls, "ValidateFunction", "sts:AssumeRole", re.escape(roles["source"])
    )
    assert _has(
        analysis.role_calls, "ValidateFunction", "sts:AssumeRole", re.escape(roles["target"])
    )
    assert _has(
        analysis.role_calls, "ReplicatorFunction", "sts:AssumeRole", re.escape(roles["target"])
    )
    # Calls made with the assumed roles are the other account's business, not these policies'.
    assert any(c.assumed for c in analysis.role_recorder.calls)


def test_removing_a_statement_denies_its_calls(analysis: Analysis) -> None:
    """The evaluator is not a rubber stamp: without DlqReadPolicy's statement (a copy of the
    template is edited, translated and resolved again) Readiness may not count the DLQ."""
    doc = sam_template.load()
    statements = doc["Resources"]["DlqReadPolicy"]["Properties"]["PolicyDocument"]["Statement"]
    assert [s["Sid"] for s in statements] == ["CountTheDeadLetters"]
    statements.clear()
    statements.append(
        {"Sid": "Unrelated", "Effect": "Allow", "Action": "sqs:GetQueueUrl", "Resource": "*"}
    )
    text = yaml.safe_dump(_plain(doc))
    stack = analysis.scenario.stack
    edited = Stack.build(stack.parameters, stack.names, text)
    policies = principal_policies(edited.cfn, edited.resolver)
    dlq_calls = [c for c in analysis.calls if c.action == "sqs:GetQueueAttributes"]
    assert {c.principal for c in dlq_calls} >= {"ReadinessFunction", "ReplicationFunction"}
    before = evaluate(dlq_calls, principal_policies(stack.cfn, stack.resolver))
    after = evaluate(dlq_calls, policies)
    assert all(d.allowed for d in before)
    assert [d.decision for d in after] == ["ImplicitlyDenied"] * len(dlq_calls)


def _plain(value: Any) -> Any:
    """The loaded template as plain YAML (intrinsics in their long form)."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def test_every_statement_is_needed(analysis: Analysis) -> None:
    """Least privilege: each statement of the stack's own policies is needed by at least one
    call of the run (removing it denies that call), except those listed in NOT_EXERCISED."""
    needed: dict[tuple[str, str], bool] = {}
    for ref, denied in analysis.needed.items():
        if ref.policy == "AWSLambdaBasicExecutionRole":
            continue
        key = (ref.policy, ref.sid)
        needed[key] = needed.get(key, False) or bool(denied)
    unneeded = sorted(
        f"{policy}.{sid}"
        for (policy, sid), used in needed.items()
        if not used and sid not in NOT_EXERCISED
    )
    assert len(needed) >= 25
    assert not unneeded, f"statements no call needs (excess privilege): {unneeded}"


def test_no_wildcard_actions_or_unscoped_resources(analysis: Analysis) -> None:
    """In the deployed policies (SAM templates expanded): no `*` in an action, and Resource
    `*` only for actions AWS authorizes on `*` alone, or with a condition key that scopes it."""
    problems = []
    for principal, named in analysis.policies.items():
        for p in named:
            if p.name == "AWSLambdaBasicExecutionRole":
                continue
            for st in p.document["Statement"]:
                actions = st["Action"] if isinstance(st["Action"], list) else [st["Action"]]
                resources = st["Resource"] if isinstance(st["Resource"], list) else [st["Resource"]]
                problems += [(principal, p.name, a) for a in actions if "*" in a]
                if "*" in resources and not (set(actions) <= WILDCARD_ONLY):
                    problems.append((principal, p.name, "Resource *", actions))
                if "*" in resources and "lambda:CreateEventSourceMapping" in actions:
                    assert "lambda:FunctionArn" in str(st.get("Condition")), st
    assert not problems, problems


def test_a_stream_in_another_account_needs_the_documented_resource_policy(
    analysis: Analysis,
) -> None:
    """SourceAccountId points the stream statements at the source account; the event source
    mapping reads that stream with the replicator's role, which the stream's resource policy
    (docs/permissions.md) must also allow."""
    other = "444455556666"
    stack = analysis.scenario.stack
    reads = [
        c
        for c in analysis.calls
        if c.principal == "ReplicatorFunction" and "/stream/" in c.resource
    ]
    assert reads
    foreign = [
        Call(c.principal, c.action, c.resource.replace(":123456789012:", f":{other}:"))
        for c in reads
    ]
    own = principal_policies(stack.cfn, stack.resolver)
    cross = Stack.build(dict(stack.parameters, SourceAccountId=other), stack.names)
    cross_policies = principal_policies(cross.cfn, cross.resolver)
    role = "arn:aws:iam::123456789012:role/ReplicatorFunctionRole"
    policies = {c.resource: stream_resource_policy([role], c.resource) for c in foreign}
    assert not any(d.allowed for d in evaluate(foreign, own, resource_policies=policies))
    assert not any(d.allowed for d in evaluate(foreign, cross_policies))
    assert all(d.allowed for d in evaluate(foreign, cross_policies, resource_policies=policies))


def test_cloudwatch_alarms_may_publish_to_the_encrypted_topic(analysis: Analysis) -> None:
    """The topic's key is a customer managed one whose key policy lets CloudWatch use it (an
    alarm cannot publish to a topic encrypted with alias/aws/sns)."""
    from tests.support.iam_eval import run_simulator

    cfn = analysis.scenario.stack.cfn
    resolver = analysis.scenario.stack.resolver
    topic = cfn["Resources"]["ReportTopic"]["Properties"]
    assert topic["KmsMasterKeyId"] == {"Ref": "ReportTopicKey"}
    key_policy = resolver.resolve(cfn["Resources"]["ReportTopicKey"]["Properties"]["KeyPolicy"])
    key_arn = resolver.get_att("ReportTopicKey", "Arn")
    cases = [
        {
            "id": action,
            "principal": "cloudwatch.amazonaws.com",
            "action": action,
            "resource": key_arn,
            "accountId": "123456789012",
            "context": {},
            "policies": [],
            "resourcePolicy": key_policy,
        }
        for action in ("kms:GenerateDataKey", "kms:Decrypt", "kms:ScheduleKeyDeletion")
    ]
    results = {r["id"]: r["decision"] for r in run_simulator(cases)}
    assert results["kms:GenerateDataKey"] == results["kms:Decrypt"] == "Allowed"
    assert results["kms:ScheduleKeyDeletion"] != "Allowed"


def test_the_permissions_doc_is_generated_from_this_analysis(analysis: Analysis) -> None:
    expected = render(analysis) + "\n"
    assert DOC.read_text() == expected, (
        "docs/permissions.md is stale: run .venv/bin/python -m tests.support.permissions_doc"
    )
