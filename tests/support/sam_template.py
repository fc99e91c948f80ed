"""template.yaml as CloudFormation sees it after `sam deploy`: SAM's own translator, then a
minimal resolver of the intrinsic functions the IAM test needs.

`translate()` runs aws-sam-translator (the library `sam deploy` and CloudFormation's
AWS::Serverless transform use) on the template, so Globals are merged into each function and
SAM policy templates (SQSSendMessagePolicy, LambdaInvokePolicy, ...) are expanded by SAM itself
into each function's `AWS::IAM::Role`. `Resolver` then resolves Ref, Fn::Sub, Fn::GetAtt,
Fn::If / conditions, Fn::Join, Fn::Split, Fn::Select and AWS::NoValue against stack parameters
and the physical names a test gives each resource.

NOTE for the lead: wp/run writes a full template resolver (src/dynashift/workflow/template.py);
this one is deliberately minimal and can be swapped for it (same job: `resolve(value)`).
"""

from __future__ import annotations

import copy
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from tests.support.tables import ACCOUNT, REGION

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "template.yaml"

PARTITION = "aws"


class CfnLoader(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):  # type: ignore[misc]
    """A YAML loader that accepts CloudFormation's short-form tags (!Ref, !Sub, ...)."""


def _cfn_tag(loader: CfnLoader, tag_suffix: str, node: yaml.Node) -> Any:
    if isinstance(node, yaml.ScalarNode):
        value: Any = loader.construct_scalar(node)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)  # type: ignore[arg-type]
    if tag_suffix == "Ref":
        return {"Ref": value}
    if tag_suffix == "Condition":
        return {"Condition": value}
    if tag_suffix == "GetAtt" and isinstance(value, str):
        value = value.split(".", 1)
    return {f"Fn::{tag_suffix}": value}


CfnLoader.add_multi_constructor("!", _cfn_tag)


def load(text: str | None = None) -> dict[str, Any]:
    doc = yaml.load(TEMPLATE.read_text() if text is None else text, Loader=CfnLoader)
    assert isinstance(doc, dict)
    return doc


def translate(doc: Mapping[str, Any], parameters: Mapping[str, str]) -> dict[str, Any]:
    """The CloudFormation template SAM's transform makes of `doc` (local code paths replaced
    by S3 URIs, as `sam package` does)."""
    from samtranslator.translator.transform import transform

    doc = copy.deepcopy(dict(doc))
    for res in doc["Resources"].values():
        props = res.get("Properties") or {}
        for key in ("CodeUri", "DefinitionUri", "ContentUri"):
            if isinstance(props.get(key), str):
                props[key] = f"s3://packaged-artifacts/{key}"

    class _NoManagedPolicies:
        def load(self) -> dict[str, str]:
            return {}

    old = os.environ.get("AWS_DEFAULT_REGION")
    os.environ["AWS_DEFAULT_REGION"] = REGION
    try:
        return dict(transform(doc, dict(parameters), _NoManagedPolicies()))
    finally:
        if old is None:
            os.environ.pop("AWS_DEFAULT_REGION", None)
        else:
            os.environ["AWS_DEFAULT_REGION"] = old


NO_VALUE = object()


def arn(service: str, resource: str, *, region: str = REGION, account: str = ACCOUNT) -> str:
    return f"arn:{PARTITION}:{service}:{region}:{account}:{resource}"


@dataclass
class Resolver:
    """Resolves intrinsics of a translated template.

    `names`: logical id -> physical name (table name, function name, queue name, topic name,
    state machine name, key id) of the resources the test created on the moto server.
    """

    template: dict[str, Any]
    parameters: dict[str, str]
    names: dict[str, str]
    stack_name: str = "dynashift-test"
    region: str = REGION
    account: str = ACCOUNT
    _conditions: dict[str, bool] = field(default_factory=dict)

    def __post_init__(self) -> None:
        params = {}
        for name, decl in (self.template.get("Parameters") or {}).items():
            if name in self.parameters:
                params[name] = str(self.parameters[name])
            elif "Default" in decl:
                params[name] = str(decl["Default"])
        self.parameters = params

    # --- pseudo parameters, Ref and GetAtt --------------------------------------------------

    def pseudo(self, name: str) -> Any:
        return {
            "AWS::Region": self.region,
            "AWS::AccountId": self.account,
            "AWS::Partition": PARTITION,
            "AWS::StackName": self.stack_name,
            "AWS::URLSuffix": "amazonaws.com",
            "AWS::NoValue": NO_VALUE,
        }[name]

    def resource_type(self, logical: str) -> str:
        return str(self.template["Resources"][logical]["Type"])

    def physical(self, logical: str) -> str:
        return self.names.get(logical, f"{self.stack_name}-{logical}")

    def ref(self, name: str) -> Any:
        if name.startswith("AWS::"):
            return self.pseudo(name)
        if name in self.parameters:
            return self.parameters[name]
        kind = self.resource_type(name)
        phys = self.physical(name)
        if kind == "AWS::SQS::Queue":
            return f"https://sqs.{self.region}.amazonaws.com/{self.account}/{phys}"
        if kind == "AWS::SNS::Topic":
            return arn("sns", phys, region=self.region, account=self.account)
        if kind == "AWS::StepFunctions::StateMachine":
            return arn("states", f"stateMachine:{phys}", region=self.region, account=self.account)
        if kind == "AWS::IAM::ManagedPolicy":
            return f"arn:{PARTITION}:iam::{self.account}:policy/{name}"
        return phys

    def get_att(self, logical: str, attribute: str) -> Any:
        kind = self.resource_type(logical)
        phys = self.physical(logical)
        a = {"region": self.region, "account": self.account}
        if kind == "AWS::Lambda::Function" and attribute == "Arn":
            return arn("lambda", f"function:{phys}", **a)
        if kind == "AWS::DynamoDB::Table" and attribute == "Arn":
            return arn("dynamodb", f"table/{phys}", **a)
        if kind == "AWS::SQS::Queue":
            return {"Arn": arn("sqs", phys, **a), "QueueName": phys}[attribute]
        if kind == "AWS::SNS::Topic":
            return {"TopicArn": arn("sns", phys, **a), "TopicName": phys}[attribute]
        if kind == "AWS::StepFunctions::StateMachine":
            return {"Name": phys, "Arn": arn("states", f"stateMachine:{phys}", **a)}[attribute]
        if kind == "AWS::KMS::Key" and attribute in ("Arn", "KeyId"):
            return arn("kms", f"key/{phys}", **a) if attribute == "Arn" else phys
        if kind == "AWS::IAM::Role" and attribute == "Arn":
            return f"arn:{PARTITION}:iam::{self.account}:role/{phys}"
        if kind == "AWS::Lambda::Url" and attribute == "FunctionUrl":
            return f"https://{phys}.lambda-url.{self.region}.on.aws/"
        raise KeyError(f"GetAtt {logical}.{attribute} ({kind}) is not supported here")

    # --- conditions and functions -------------------------------------------------------------

    def condition(self, name: str) -> bool:
        if name not in self._conditions:
            self._conditions[name] = bool(self.resolve(self.template["Conditions"][name]))
        return self._conditions[name]

    def _sub(self, text: str, extra: Mapping[str, Any]) -> str:
        def repl(m: re.Match[str]) -> str:
            key = m.group(1)
            if key.startswith("!"):
                return "${" + key[1:] + "}"
            if key in extra:
                return str(extra[key])
            if "." in key:
                logical, attribute = key.split(".", 1)
                return str(self.get_att(logical, attribute))
            return str(self.ref(key))

        return re.sub(r"\$\{([^}]+)\}", repl, text)

    def resolve(self, value: Any) -> Any:
        """`value` with every intrinsic resolved; AWS::NoValue entries removed."""
        if isinstance(value, list):
            out = [self.resolve(v) for v in value]
            return [v for v in out if v is not NO_VALUE]
        if not isinstance(value, dict):
            return value
        if len(value) == 1:
            ((key, arg),) = value.items()
            if key == "Ref":
                return self.ref(arg)
            if key == "Fn::GetAtt":
                logical, attribute = arg if isinstance(arg, list) else arg.split(".", 1)
                return self.get_att(logical, attribute)
            if key == "Fn::Sub":
                if isinstance(arg, list):
                    text, variables = arg
                    extra = {k: self.resolve(v) for k, v in variables.items()}
                    return self._sub(text, extra)
                return self._sub(arg, {})
            if key == "Fn::If":
                cond, yes, no = arg
                return self.resolve(yes if self.condition(cond) else no)
            if key == "Fn::Equals":
                a, b = (self.resolve(v) for v in arg)
                return str(a) == str(b)
            if key == "Fn::Not":
                return not self.resolve(arg[0])
            if key == "Fn::And":
                return all(self.resolve(v) for v in arg)
            if key == "Fn::Or":
                return any(self.resolve(v) for v in arg)
            if key == "Condition":
                return self.condition(arg)
            if key == "Fn::Join":
                sep, items = arg
                return sep.join(str(v) for v in self.resolve(items))
            if key == "Fn::Split":
                sep, text = arg
                return str(self.resolve(text)).split(sep)
            if key == "Fn::Select":
                index, items = arg
                return self.resolve(items)[int(self.resolve(index))]
        out = {k: self.resolve(v) for k, v in value.items()}
        return {k: v for k, v in out.items() if v is not NO_VALUE}
