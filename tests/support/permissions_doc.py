"""The permissions each function holds and why, from the same data the IAM test checks.

`analyse(endpoint)` runs the recorded scenario (tests/support/iam_scenario.py), evaluates every
call against the deployed policies with iam-simulate, and — for each statement each principal
holds — evaluates again without that statement: the calls then denied are what the statement
is needed for. `render(analysis)` turns that into docs/permissions.md.

    .venv/bin/python -m tests.support.permissions_doc     # rewrites docs/permissions.md
"""

from __future__ import annotations

import copy
import fnmatch
import json
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.support.iam_calls import Call, Recorder, distinct, implied_calls
from tests.support.iam_eval import Decision, NamedPolicy, evaluate, principal_policies
from tests.support.iam_scenario import Scenario, Stack, run_role_scenario, run_scenario

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "permissions.md"

#: Statements no call of the test run needs, and why they stay.
NOT_EXERCISED = {
    "AWSLambdaBasicExecutionRole": "the Lambda runtime writes the function's logs (not boto3)",
    "ChangeTheReplicatorsMappingsOnly": (
        "UpdateEventSourceMapping re-enables a disabled mapping on a resumed run; "
        "Get/Delete are scoped to the replicator's mappings by lambda:FunctionArn"
    ),
}


@dataclass(frozen=True)
class StatementRef:
    principal: str
    policy: str
    sid: str  # the statement's Sid, or "#<index>" for SAM-generated statements


@dataclass
class Analysis:
    scenario: Scenario
    role_recorder: Recorder
    role_stack: Stack
    calls: list[Call]
    role_calls: list[Call]
    decisions: list[Decision]
    policies: dict[str, list[NamedPolicy]]
    #: statement -> calls of its principal denied without it
    needed: dict[StatementRef, list[Call]] = field(default_factory=dict)


def statement_id(statement: Mapping[str, Any], index: int) -> str:
    return str(statement.get("Sid") or f"#{index}")


def _actions(statement: Mapping[str, Any]) -> list[str]:
    actions = statement.get("Action", [])
    return [actions] if isinstance(actions, str) else list(actions)


def without(
    policies: Mapping[str, list[NamedPolicy]], ref: StatementRef
) -> dict[str, list[NamedPolicy]]:
    """A copy of `policies` with one statement removed from one principal's policy."""
    out = dict(policies)
    changed = []
    for p in policies[ref.principal]:
        if p.name != ref.policy:
            changed.append(p)
            continue
        doc = copy.deepcopy(p.document)
        doc["Statement"] = [
            s for i, s in enumerate(doc["Statement"]) if statement_id(s, i) != ref.sid
        ]
        changed.append(NamedPolicy(p.principal, p.name, doc, p.description))
    out[ref.principal] = changed
    return out


def needed_by(
    calls: list[Call], policies: Mapping[str, list[NamedPolicy]]
) -> dict[StatementRef, list[Call]]:
    """For every statement of every principal: the calls denied once it is removed."""
    batch: list[Call] = []
    groups: list[tuple[StatementRef, int, int]] = []
    all_policies: list[dict[str, list[NamedPolicy]]] = []
    for principal, named in policies.items():
        for p in named:
            for i, st in enumerate(p.document.get("Statement", [])):
                ref = StatementRef(principal, p.name, statement_id(st, i))
                pats = [a.lower() for a in _actions(st)]
                mine = [
                    c
                    for c in calls
                    if c.principal == principal
                    and any(fnmatch.fnmatch(c.action.lower(), pat) for pat in pats)
                ]
                groups.append((ref, len(batch), len(mine)))
                batch.extend(mine)
                all_policies.extend([without(policies, ref)] * len(mine))
    decisions = _evaluate_each(batch, all_policies)
    out: dict[StatementRef, list[Call]] = {}
    for ref, start, n in groups:
        out[ref] = [d.call for d in decisions[start : start + n] if not d.allowed]
    return out


def _evaluate_each(
    calls: list[Call], policies: list[dict[str, list[NamedPolicy]]]
) -> list[Decision]:
    """Evaluate call i against policies[i] in one simulator run (principals renamed apart)."""
    renamed: list[Call] = []
    merged: dict[str, list[NamedPolicy]] = {}
    for i, (call, pol) in enumerate(zip(calls, policies, strict=True)):
        alias = f"{call.principal}~{i}"
        merged[alias] = pol[call.principal]
        renamed.append(
            Call(alias, call.action, call.resource, call.context, call.operation, False, "")
        )
    decisions = evaluate(renamed, merged)
    return [Decision(orig, d.decision, d.errors) for orig, d in zip(calls, decisions, strict=True)]


def analyse(endpoint: str) -> Analysis:
    scenario = run_scenario(endpoint)
    role_recorder = run_role_scenario(endpoint, scenario)
    role_stack: Stack = scenario.outputs["roles"]["stack"]
    calls = distinct(scenario.recorder.own_calls()) + implied_calls(
        scenario.recorder, scenario.deployment
    )
    role_calls = distinct(role_recorder.own_calls())
    policies = principal_policies(scenario.stack.cfn, scenario.stack.resolver)
    role_policies = principal_policies(role_stack.cfn, role_stack.resolver)
    decisions = evaluate(calls, policies) + evaluate(role_calls, role_policies)
    analysis = Analysis(scenario, role_recorder, role_stack, calls, role_calls, decisions, policies)
    analysis.needed = needed_by(calls, policies)
    for ref, denied in needed_by(role_calls, role_policies).items():
        if denied:
            analysis.needed.setdefault(ref, []).extend(denied)
    return analysis


# --- the document ---------------------------------------------------------------------------


def render_expr(value: Any) -> str:
    """A template expression as text: Fn::Sub templates with their variables filled in,
    `${Ref}` / `${Res.Attr}` for Ref and GetAtt, `A or B` for Fn::If."""
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        return ", ".join(render_expr(v) for v in value)
    if isinstance(value, dict) and len(value) == 1:
        ((key, arg),) = value.items()
        if key == "Ref":
            return "${" + str(arg) + "}"
        if key == "Fn::GetAtt":
            return "${" + ".".join(arg if isinstance(arg, list) else [arg]) + "}"
        if key == "Fn::Sub":
            if isinstance(arg, list):
                text, variables = arg
                for name, expr in variables.items():
                    text = text.replace("${" + name + "}", render_expr(expr))
                return str(text)
            return str(arg)
        if key == "Fn::If":
            _cond, yes, no = arg
            no_text = render_expr(no)
            return (
                render_expr(yes)
                if no_text == "${AWS::NoValue}"
                else f"{render_expr(yes)} or {no_text}"
            )
    return json.dumps(value, sort_keys=True)


def render_condition(condition: Mapping[str, Any]) -> str:
    parts = []
    for operator, block in condition.items():
        for key, value in block.items():
            parts.append(f"{key} {operator} {render_expr(value)}")
    return " and ".join(parts)


def template_statements(cfn: Mapping[str, Any], policy: str) -> list[tuple[str, dict[str, Any]]]:
    """(condition or "", statement) of a managed policy or a role's inline policy, unresolved."""
    resources = cfn["Resources"]
    doc: Any = None
    if policy in resources:
        doc = resources[policy]["Properties"]["PolicyDocument"]
    else:
        for res in resources.values():
            if res["Type"] == "AWS::IAM::Role":
                for p in res["Properties"].get("Policies", []):
                    if p["PolicyName"] == policy:
                        doc = p["PolicyDocument"]
    if doc is None:
        return []
    out = []
    for st in doc["Statement"]:
        if isinstance(st, dict) and "Fn::If" in st:
            cond, yes, _no = st["Fn::If"]
            out.append((str(cond), yes))
        else:
            out.append(("", st))
    return out


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def render(analysis: Analysis) -> str:
    cfn = analysis.scenario.stack.cfn
    lines = [
        "# Permissions",
        "",
        "<!-- Generated by `.venv/bin/python -m tests.support.permissions_doc` from template.yaml",
        "     and the calls tests/functional/test_iam_policies.py records; do not edit. -->",
        "",
        "Every function of the stack has its own role (SAM: `<Function>Role`). The policies below",
        "are the deployed ones (SAM's transform of template.yaml). **Needed by** lists the AWS",
        "actions of the test run that an IAM evaluator (iam-simulate) denies once that statement",
        "is removed — what the statement is for. The run migrates a small table encrypted with a",
        "customer managed KMS key into a new global table with one replica region; it records",
        "each function's calls (botocore) and adds those AWS services make with the function's",
        "role: the event source mapping reading the stream and writing the DLQ, DynamoDB and SNS",
        "calling KMS, DynamoDB creating replicas, Step Functions invoking the tasks and the",
        "Distributed Map's child executions. `(when X)` marks a statement that exists only when",
        "the stack parameter behind condition X is set.",
        "",
        "Resource `*` appears only where AWS has no resource type for the action",
        "(dynamodb:ListStreams, lambda:ListEventSourceMappings, states:SendTaskSuccess/Failure) or",
        "where a condition key pins it down (lambda:CreateEventSourceMapping with",
        "lambda:FunctionArn).",
        "",
    ]
    principals = [p for p in cfn["Resources"] if analysis.policies.get(p)]
    for principal in principals:
        lines += [f"## {principal}", ""]
        lines += [
            "| policy | statement | actions | resources | needed by |",
            "|---|---|---|---|---|",
        ]
        for named in analysis.policies[principal]:
            if named.name == "AWSLambdaBasicExecutionRole":
                lines.append(
                    "| AWSLambdaBasicExecutionRole (AWS managed) | | logs:CreateLogGroup, "
                    "logs:CreateLogStream, logs:PutLogEvents | * | "
                    + NOT_EXERCISED["AWSLambdaBasicExecutionRole"]
                    + " |"
                )
                continue
            unresolved = {
                statement_id(st, i): (cond, st)
                for i, (cond, st) in enumerate(template_statements(cfn, named.name))
            }
            desc = named.description or named.name
            for i, st in enumerate(named.document.get("Statement", [])):
                sid = statement_id(st, i)
                cond, tmpl = unresolved.get(sid, ("", st))
                ref = StatementRef(principal, named.name, sid)
                needed = sorted({c.action for c in analysis.needed.get(ref, [])})
                why = (
                    ", ".join(needed) if needed else "— " + NOT_EXERCISED.get(sid, "not exercised")
                )
                condition = tmpl.get("Condition")
                resources = render_expr(tmpl.get("Resource"))
                if condition:
                    resources += " if " + render_condition(condition)
                label = sid if not sid.startswith("#") else ""
                if cond:
                    label += f" (when {cond})"
                policy = f"{named.name}: {desc}" if named.description else named.name
                lines.append(
                    "| "
                    + " | ".join(
                        _cell(x)
                        for x in (
                            policy,
                            label,
                            ", ".join(_actions(tmpl)),
                            resources,
                            why,
                        )
                    )
                    + " |"
                )
        lines.append("")
    lines += [
        "## A source stream in another account",
        "",
        "Set `SourceAccountId` (and `SourceRoleArn` for the table reads). The event source",
        "mapping cannot assume a role: it reads the stream with the replicator's own role, so the",
        "stream needs a resource-based policy in the source account (DynamoDB",
        "`PutResourcePolicy` on the stream ARN) such as:",
        "",
        "```json",
        json.dumps(
            stream_resource_policy(["<the stack's ReplicatorRoleArn output>"], "<stream ARN>"),
            indent=2,
        ),
        "```",
        "",
        "Unless `SourceRoleArn` is set, add the roles of the functions that read the stream",
        "directly: " + ", ".join(f"{p}Role" for p in _stream_readers(analysis)) + ".",
        "tests/functional/test_iam_policies.py evaluates the replicator's reads of a stream in",
        "another account with and without this policy.",
        "",
    ]
    return "\n".join(lines)


def _stream_readers(analysis: Analysis) -> list[str]:
    """The functions other than the replicator whose policies grant an action on the stream."""
    return sorted(
        principal
        for principal, named in analysis.policies.items()
        if principal.endswith("Function")
        and principal != "ReplicatorFunction"
        and any(
            "/stream/" in json.dumps(st.get("Resource"))
            for p in named
            for st in p.document.get("Statement", [])
        )
    )


def stream_resource_policy(role_arns: list[str], stream_arn: str) -> dict[str, Any]:
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "DynashiftReplicatorReadsTheStream",
                "Effect": "Allow",
                "Principal": {"AWS": role_arns},
                "Action": [
                    "dynamodb:DescribeStream",
                    "dynamodb:GetRecords",
                    "dynamodb:GetShardIterator",
                ],
                "Resource": stream_arn,
            }
        ],
    }


def main() -> int:
    import os

    from tests.support.moto_server import MotoServer

    os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
    os.environ["AWS_DEFAULT_REGION"] = "us-east-1"
    server = MotoServer().start()
    try:
        DOC.write_text(render(analyse(server.url)) + "\n")
    finally:
        server.stop()
    print(f"wrote {DOC.relative_to(ROOT)}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
