"""Security review of the SAM template and the repository, as a test.

1. Every IAM statement in template.yaml (managed policies, inline role policies, SAM `Policies`
   with a `Statement`) names its actions — no `*` anywhere in an action — and its resources —
   no bare `*` and no whole-service wildcard like `table/*` — except for the actions listed in
   RESOURCE_STAR_REQUIRED, which AWS only authorizes on `Resource: "*"`.
2. SAM policy templates (`SQSSendMessagePolicy`, ...) are allowed only from a list of templates
   that are scoped to one named resource, and only with that resource given.
3. No partition hard-coded in the template or the state machine (`arn:aws:` breaks GovCloud and
   China), and no account id, bucket name or secret in any tracked file.
"""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support.sam_template import CfnLoader
from tests.support.sam_template import load as load_template_yaml

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "template.yaml"

#: Actions AWS authorizes only on Resource "*" (no resource-level permissions), and why.
RESOURCE_STAR_REQUIRED = {
    "cloudwatch:PutMetricData": "no resource types; scope with the cloudwatch:namespace key",
    "xray:PutTraceSegments": "X-Ray tracing has no resource types",
    "xray:PutTelemetryRecords": "X-Ray tracing has no resource types",
    "xray:GetSamplingRules": "X-Ray tracing has no resource types",
    "xray:GetSamplingTargets": "X-Ray tracing has no resource types",
    "states:SendTaskSuccess": "task tokens have no resource type",
    "states:SendTaskFailure": "task tokens have no resource type",
    "states:SendTaskHeartbeat": "task tokens have no resource type",
    "logs:CreateLogDelivery": "Step Functions logging to CloudWatch Logs requires *",
    "logs:GetLogDelivery": "Step Functions logging to CloudWatch Logs requires *",
    "logs:UpdateLogDelivery": "Step Functions logging to CloudWatch Logs requires *",
    "logs:DeleteLogDelivery": "Step Functions logging to CloudWatch Logs requires *",
    "logs:ListLogDeliveries": "Step Functions logging to CloudWatch Logs requires *",
    "logs:PutResourcePolicy": "Step Functions logging to CloudWatch Logs requires *",
    "logs:DescribeResourcePolicies": "Step Functions logging to CloudWatch Logs requires *",
    "logs:DescribeLogGroups": "Step Functions logging to CloudWatch Logs requires *",
    "dynamodb:ListTables": "ListTables has no resource type",
    "dynamodb:DescribeLimits": "account-level; Resource must be *",
    "lambda:ListEventSourceMappings": "List* on event source mappings has no resource type",
    "dynamodb:ListStreams": "ListStreams has no resource type (the event source mapping calls it)",
}

#: Actions whose resource cannot be named in advance (an event source mapping's ARN holds a
#: UUID AWS assigns) but which AWS lets a condition key pin down: allowed on a wildcard only
#: with that condition present.
CONDITION_SCOPED = {
    "lambda:CreateEventSourceMapping": "lambda:FunctionArn",
    "lambda:GetEventSourceMapping": "lambda:FunctionArn",
    "lambda:UpdateEventSourceMapping": "lambda:FunctionArn",
    "lambda:DeleteEventSourceMapping": "lambda:FunctionArn",
}

#: SAM policy templates that grant access to exactly one named resource, and the parameter
#: that names it (https://docs.aws.amazon.com/serverless-application-model/latest/developerguide/serverless-policy-template-list.html).
SCOPED_SAM_TEMPLATES = {
    "SQSSendMessagePolicy": "QueueName",
    "SQSPollerPolicy": "QueueName",
    "SNSPublishMessagePolicy": "TopicName",
    "LambdaInvokePolicy": "FunctionName",
    "DynamoDBReadPolicy": "TableName",
    "DynamoDBCrudPolicy": "TableName",
    "DynamoDBStreamReadPolicy": "TableName",
    "StepFunctionsExecutionPolicy": "StateMachineName",
    "KMSDecryptPolicy": "KeyId",
}

#: A resource that names nothing: `*`, `arn:...:<account>:*` (any resource of a service), or a
#: whole resource type (`table/*`, `execution:*`). `execution:<state machine>:*` names one state
#: machine's executions and is not broad.
BROAD_RESOURCE = re.compile(
    r"(^\*$)|(:(\$\{AWS::AccountId\}|\d{12}|\*)?:\*$)"
    r"|(:(table|role|policy|function|stateMachine|key|topic|queue|log-group|execution"
    r"|event-source-mapping)[/:]\*$)"
)


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    if not TEMPLATE.exists():
        pytest.fail("template.yaml is missing")
    doc = load_template_yaml(TEMPLATE.read_text())
    assert isinstance(doc, dict) and "Resources" in doc
    return doc


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _texts(value: Any) -> Iterator[str]:
    """Every string a resource expression can produce (Fn::Sub templates, Fn::If branches)."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, list):
        for v in value:
            yield from _texts(v)
    elif isinstance(value, dict):
        if "Fn::Sub" in value:
            sub = value["Fn::Sub"]
            yield sub[0] if isinstance(sub, list) else sub
        else:
            for v in value.values():
                yield from _texts(v)


def _statements(doc: Any, where: str) -> Iterator[tuple[str, dict[str, Any]]]:
    """(location, statement) for every statement, resolving Fn::If to both branches."""
    for i, st in enumerate(_as_list(doc.get("Statement", []))):
        if isinstance(st, dict) and "Fn::If" in st:
            _cond, yes, no = st["Fn::If"]
            for branch in (yes, no):
                if isinstance(branch, dict) and "Effect" in branch:
                    yield f"{where}.Statement[{i}]", branch
        elif isinstance(st, dict):
            yield f"{where}.Statement[{i}]", st


def all_statements(template: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    out: list[tuple[str, dict[str, Any]]] = []
    for name, res in template["Resources"].items():
        props = res.get("Properties", {}) or {}
        kind = res.get("Type", "")
        if kind in ("AWS::IAM::ManagedPolicy", "AWS::IAM::Policy"):
            out.extend(_statements(props["PolicyDocument"], name))
        if kind == "AWS::IAM::Role":
            for p in props.get("Policies", []):
                out.extend(_statements(p["PolicyDocument"], f"{name}.{p.get('PolicyName')}"))
        if kind in ("AWS::Serverless::Function", "AWS::Serverless::StateMachine"):
            for j, p in enumerate(_as_list(props.get("Policies", []))):
                if isinstance(p, dict) and "Statement" in p:
                    out.extend(_statements(p, f"{name}.Policies[{j}]"))
    return out


def _policy_entries(policies: Any) -> Iterator[Any]:
    """A function's `Policies`, with both branches of an `Fn::If` entry (AWS::NoValue dropped)."""
    for p in _as_list(policies):
        if isinstance(p, dict) and "Fn::If" in p:
            _cond, yes, no = p["Fn::If"]
            for branch in (yes, no):
                if branch != {"Ref": "AWS::NoValue"}:
                    yield branch
        else:
            yield p


def sam_policy_templates(template: dict[str, Any]) -> list[tuple[str, str, Any]]:
    out = []
    for name, res in template["Resources"].items():
        props = res.get("Properties", {}) or {}
        for p in _policy_entries(props.get("Policies", [])):
            if isinstance(p, dict) and "Statement" not in p and "Ref" not in p:
                for tmpl, params in p.items():
                    out.append((name, tmpl, params))
            if isinstance(p, str):
                out.append((name, p, None))  # a managed policy by name/ARN
    return out


def test_the_template_has_iam_statements(template: dict[str, Any]) -> None:
    assert len(all_statements(template)) >= 5


def test_every_action_is_named(template: dict[str, Any]) -> None:
    bad = [
        (where, action)
        for where, st in all_statements(template)
        for action in _as_list(st.get("Action", []))
        if "*" in str(action)
    ]
    assert not bad, f"wildcard actions: {bad}"
    assert not any("NotAction" in st for _w, st in all_statements(template))


def test_every_resource_is_named(template: dict[str, Any]) -> None:
    bad = []
    for where, st in all_statements(template):
        if st.get("Effect") != "Allow":
            continue
        assert "Resource" in st, f"{where}: no Resource"
        actions = {str(a) for a in _as_list(st.get("Action", []))}
        condition_keys = {k for block in (st.get("Condition") or {}).values() for k in block}
        allowed = set(RESOURCE_STAR_REQUIRED) | {
            a for a, key in CONDITION_SCOPED.items() if key in condition_keys
        }
        for text in _texts(st["Resource"]):
            if BROAD_RESOURCE.search(text) and not actions <= allowed:
                bad.append((where, text, sorted(actions - allowed)))
    assert not bad, f"resources that are not named: {bad}"


def test_key_policies_delegate_to_iam_and_name_what_services_may_do(
    template: dict[str, Any],
) -> None:
    """A KMS key policy may grant `kms:*` only to the account root (AWS's default statement,
    which delegates to IAM policies; without it the key cannot be administered); any other
    principal gets named actions."""
    keys = [r for r in template["Resources"].values() if r["Type"] == "AWS::KMS::Key"]
    assert keys, "the report topic's key"
    for key in keys:
        for st in key["Properties"]["KeyPolicy"]["Statement"]:
            principal = st["Principal"]
            actions = _as_list(st["Action"])
            if "kms:*" in actions:
                assert list(principal) == ["AWS"] and ":root" in str(principal["AWS"]), st
            else:
                assert all("*" not in a for a in actions), st


def test_sam_policy_templates_are_scoped(template: dict[str, Any]) -> None:
    for resource, tmpl, params in sam_policy_templates(template):
        assert tmpl in SCOPED_SAM_TEMPLATES, f"{resource}: policy {tmpl!r} is not a scoped one"
        param = SCOPED_SAM_TEMPLATES[tmpl]
        assert isinstance(params, dict) and params.get(param), f"{resource}: {tmpl} has no {param}"
        assert params[param] != "*", f"{resource}: {tmpl} {param} is *"


def test_no_hard_coded_partition() -> None:
    """ARNs come from ${AWS::Partition} / DefinitionSubstitutions. The one exception: Step
    Functions service-integration resources (`arn:aws:states:::lambda:invoke`), which AWS
    spells that way in every partition's ASL."""
    for path in (TEMPLATE, ROOT / "statemachine" / "migration.asl.json"):
        if path.exists():
            text = re.sub(r"arn:aws:states:::[a-z:.-]+", "", path.read_text())
            assert "arn:aws:" not in text, f"{path.name}: use ${{AWS::Partition}}"


# --- the repository: account ids, bucket names, secrets ---------------------------------------

#: Example account ids that are not anyone's: moto's default and AWS documentation examples.
FAKE_ACCOUNTS = {"123456789012", "000000000000", "111122223333", "444455556666", "111111111111"}
ACCOUNT_IN_ARN = re.compile(r"arn:[a-z-]*:[a-z0-9-]*:[a-z0-9-]*:(\d{12}):")
ACCESS_KEY = re.compile(r"\b(AKIA|ASIA)[0-9A-Z]{16}\b")
SECRET = re.compile(r"(?i)aws_secret_access_key\s*[=:]\s*['\"]?([A-Za-z0-9/+=]{40})")
BUCKET = re.compile(r"(?m)^\s*s3_bucket\s*=|S3Bucket:\s*[a-z0-9][a-z0-9.-]{2,}|s3://[a-z0-9]")


def is_fake_account(account: str) -> bool:
    """Documentation / emulator examples, or one digit repeated (999999999999)."""
    return account in FAKE_ACCOUNTS or len(set(account)) == 1


def tracked_files() -> list[Path]:
    out = subprocess.run(
        ["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True
    ).stdout.decode()
    return [ROOT / p for p in out.split("\0") if p]


def test_no_secrets_account_ids_or_bucket_names_committed() -> None:
    problems = []
    for path in tracked_files():
        rel = path.relative_to(ROOT).as_posix()
        if not path.is_file() or path.suffix in (".png", ".jpg", ".zip", ".gz"):
            continue
        try:
            text = path.read_text()
        except UnicodeDecodeError:
            continue
        for m in ACCOUNT_IN_ARN.finditer(text):
            if not is_fake_account(m.group(1)):
                problems.append((rel, "account id", m.group(0)))
        for m in ACCESS_KEY.finditer(text):
            problems.append((rel, "access key id", m.group(0)[:8] + "..."))
        for m in SECRET.finditer(text):
            if m.group(1) != "testing":
                problems.append((rel, "secret access key", "..."))
        if rel in ("template.yaml", "samconfig.toml") or rel.endswith(".asl.json"):
            for m in BUCKET.finditer(text):
                problems.append((rel, "bucket name", m.group(0).strip()))
    assert not problems, problems


def test_the_checks_catch_what_they_look_for() -> None:
    """The patterns themselves: a test that cannot fail is no test."""
    doc = {"Statement": [{"Effect": "Allow", "Action": "dynamodb:*", "Resource": "*"}]}
    ((_w, st),) = _statements(doc, "x")
    assert "*" in st["Action"] and BROAD_RESOURCE.search(st["Resource"])
    table_wide = "arn:${AWS::Partition}:dynamodb:${AWS::Region}:${AWS::AccountId}:table/*"
    assert BROAD_RESOURCE.search(table_wide)
    assert BROAD_RESOURCE.search("arn:${AWS::Partition}:sqs:${AWS::Region}:${AWS::AccountId}:*")
    assert BROAD_RESOURCE.search("arn:aws:states:us-east-1:123456789012:execution:*")
    assert not BROAD_RESOURCE.search("arn:aws:states:r:a:execution:${AWS::StackName}-migration:*")
    stream = "arn:${AWS::Partition}:dynamodb:r:a:table/${SourceTableName}/stream/*"
    assert not BROAD_RESOURCE.search(stream)
    # (built from pieces so this file does not trip its own scan)
    real = ACCOUNT_IN_ARN.search("arn:aws:iam::" + "2109876" + "54321:role/x")
    assert real and not is_fake_account(real.group(1))
    assert ACCESS_KEY.search("key " + "AKIA" + "ABCDEFGHIJKLMNOP here")
    assert BUCKET.search('s3_bucket = "my-bucket"')
    loaded = yaml.load("a: !Sub 'x-${AWS::Region}'\nb: !GetAtt F.Arn\n", Loader=CfnLoader)
    assert loaded == {"a": {"Fn::Sub": "x-${AWS::Region}"}, "b": {"Fn::GetAtt": ["F", "Arn"]}}
    assert json.dumps(loaded)
