"""`template.yaml` read the way CloudFormation and SAM read it, for the local runner.

The local runner executes the deployed configuration: each function gets exactly the
environment, timeout and memory the template gives it. This module parses the template
(CloudFormation's short-form tags included), merges `Globals.Function` into every
`AWS::Serverless::Function` the way SAM does (maps merged key by key, the function's value
winning; scalars replaced), and resolves the intrinsic functions the template uses —
`Ref`, `Fn::GetAtt`, `Fn::Sub` (both forms), `Fn::If`, `Fn::Equals`, `Fn::Not`, `Fn::And`,
`Fn::Or`, `Condition`, and the pseudo parameters `AWS::Region`, `AWS::AccountId`,
`AWS::StackName`, `AWS::Partition`, `AWS::NoValue` — against the stack parameters and the
physical ids of the resources the runner created. A reference the stack cannot resolve is an
error naming it, as CloudFormation would refuse the template.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from dynashift.errors import RuntimeFailure
from dynashift.workflow import deployed

#: The deployed template (next to statemachine/ and functions/: `dynashift.workflow.deployed`).
TEMPLATE = deployed.TEMPLATE

SERVERLESS_FUNCTION = "AWS::Serverless::Function"
#: What `Ref` of a resource or parameter resolves to when a value is dropped (`AWS::NoValue`).
NO_VALUE = object()
_SUB = re.compile(r"\$\{([^}!][^}]*)\}")


class TemplateError(RuntimeFailure):
    """The template cannot be resolved (unknown reference, bad intrinsic, missing parameter)."""


class _Loader(yaml.SafeLoader):
    """YAML with CloudFormation's short-form tags (`!Ref X` -> `{"Ref": "X"}`)."""


def _tag(loader: _Loader, suffix: str, node: yaml.Node) -> Any:
    name = "Ref" if suffix == "Ref" else f"Fn::{suffix}"
    if suffix == "Condition":
        name = "Condition"
    if isinstance(node, yaml.ScalarNode):
        value: Any = loader.construct_scalar(node)
        if suffix == "GetAtt":
            value = str(value).split(".", 1)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)  # type: ignore[arg-type]
    return {name: value}


_Loader.add_multi_constructor("!", _tag)


def load_template(path: Path = TEMPLATE) -> dict[str, Any]:
    try:
        data = yaml.load(path.read_text(encoding="utf-8"), Loader=_Loader)
    except (OSError, yaml.YAMLError) as exc:
        raise TemplateError(f"cannot read template {path}: {exc}") from exc
    if not isinstance(data, dict) or "Resources" not in data:
        raise TemplateError(f"{path}: not a CloudFormation template (no Resources)")
    data["Resources"].update(sam_generated_resources(data["Resources"]))
    return data


def sam_generated_resources(resources: dict[str, Any]) -> dict[str, Any]:
    """The resources the SAM transform adds that the template may refer to: a function's
    `<Id>Url` (AWS::Lambda::Url, from FunctionUrlConfig) and `<Id>Role` (its execution role)."""
    generated: dict[str, Any] = {}
    for logical_id, resource in resources.items():
        if resource.get("Type") != "AWS::Serverless::Function":
            continue
        properties = resource.get("Properties") or {}
        if properties.get("FunctionUrlConfig"):
            generated[f"{logical_id}Url"] = {"Type": "AWS::Lambda::Url", "Generated": True}
        if "Role" not in properties:
            generated[f"{logical_id}Role"] = {"Type": "AWS::IAM::Role", "Generated": True}
    return {k: v for k, v in generated.items() if k not in resources}


@dataclass(frozen=True)
class FunctionConfig:
    """What one deployed function is: code, handler, environment, timeout, memory."""

    logical_id: str
    code_uri: str
    handler: str
    timeout: int
    memory: int
    environment: dict[str, str]

    @property
    def step(self) -> str:
        """The `functions/<step>/` directory name (`functions/backfill_segment/`)."""
        return self.code_uri.rstrip("/").rsplit("/", 1)[-1]


@dataclass
class Stack:
    """A template bound to parameter values and the physical ids of its resources.

    `resources` maps a logical id to its attributes: `Ref` (what `!Ref` gives) and any
    `Fn::GetAtt` attribute (`Arn`, `QueueName`, ...).
    """

    template: dict[str, Any]
    parameters: Mapping[str, str]
    resources: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    region: str = "us-east-1"
    account_id: str = "123456789012"
    stack_name: str = "dynashift"
    partition: str = "aws"

    # --- declarations ----------------------------------------------------------------------

    def parameter_values(self) -> dict[str, str]:
        """Every declared parameter's value: given, else its Default; missing ones refused."""
        declared: dict[str, Any] = self.template.get("Parameters") or {}
        unknown = sorted(set(self.parameters) - set(declared))
        if unknown:
            raise TemplateError(f"parameters not declared in the template: {', '.join(unknown)}")
        values: dict[str, str] = {}
        for name, decl in declared.items():
            if name in self.parameters:
                values[name] = str(self.parameters[name])
            elif "Default" in decl:
                values[name] = str(decl["Default"])
            else:
                raise TemplateError(f"stack parameter {name} has no value and no Default")
            pattern = decl.get("AllowedPattern")
            if pattern and not re.fullmatch(pattern, values[name]):
                raise TemplateError(
                    f"stack parameter {name}={values[name]!r} does not match {pattern}"
                )
        return values

    def functions(self) -> list[str]:
        return [
            lid
            for lid, res in self.template["Resources"].items()
            if res.get("Type") == SERVERLESS_FUNCTION
        ]

    def function(self, logical_id: str) -> FunctionConfig:
        """The function's properties with Globals merged and intrinsics resolved."""
        resource = self.template["Resources"].get(logical_id)
        if resource is None or resource.get("Type") != SERVERLESS_FUNCTION:
            raise TemplateError(f"{logical_id} is not an {SERVERLESS_FUNCTION} of the template")
        globals_ = ((self.template.get("Globals") or {}).get("Function")) or {}
        props = merge_globals(globals_, resource.get("Properties") or {})
        env = self.resolve((props.get("Environment") or {}).get("Variables") or {})
        return FunctionConfig(
            logical_id=logical_id,
            code_uri=str(self.resolve(props.get("CodeUri", ""))),
            handler=str(self.resolve(props.get("Handler", "app.handler"))),
            timeout=int(self.resolve(props.get("Timeout", 3))),
            memory=int(self.resolve(props.get("MemorySize", 128))),
            environment={k: _env_text(k, v) for k, v in env.items()},
        )

    def definition_substitutions(self, state_machine: str) -> dict[str, str]:
        resource = self.template["Resources"].get(state_machine) or {}
        subs = (resource.get("Properties") or {}).get("DefinitionSubstitutions") or {}
        return {k: str(v) for k, v in self.resolve(subs).items()}

    # --- intrinsic functions -----------------------------------------------------------------

    def resolve(self, value: Any) -> Any:
        """`value` with every intrinsic function evaluated; `AWS::NoValue` entries dropped."""
        out = self._resolve(value)
        return None if out is NO_VALUE else out

    def _resolve(self, value: Any) -> Any:
        if isinstance(value, list):
            items = [self._resolve(v) for v in value]
            return [v for v in items if v is not NO_VALUE]
        if not isinstance(value, dict):
            return value
        if len(value) == 1:
            ((key, arg),) = value.items()
            handler = _INTRINSICS.get(key)
            if handler is not None:
                return handler(self, arg)
        resolved = {k: self._resolve(v) for k, v in value.items()}
        return {k: v for k, v in resolved.items() if v is not NO_VALUE}

    def ref(self, name: str) -> Any:
        pseudo = {
            "AWS::Region": self.region,
            "AWS::AccountId": self.account_id,
            "AWS::StackName": self.stack_name,
            "AWS::Partition": self.partition,
            "AWS::URLSuffix": "amazonaws.com",
        }
        if name == "AWS::NoValue":
            return NO_VALUE
        if name in pseudo:
            return pseudo[name]
        if name in (self.template.get("Parameters") or {}):
            return self.parameter_values()[name]
        if name in self.template["Resources"]:
            attrs = self.resources.get(name)
            if attrs is None or "Ref" not in attrs:
                raise TemplateError(f"!Ref {name}: the local stack has no such resource")
            return attrs["Ref"]
        raise TemplateError(f"!Ref {name}: not a parameter or resource of the template")

    def get_att(self, logical_id: str, attribute: str) -> str:
        if logical_id not in self.template["Resources"]:
            raise TemplateError(f"!GetAtt {logical_id}.{attribute}: no such resource")
        attrs = self.resources.get(logical_id) or {}
        if attribute not in attrs:
            raise TemplateError(
                f"!GetAtt {logical_id}.{attribute}: the local stack does not provide it"
            )
        return attrs[attribute]

    def condition(self, name: str) -> bool:
        conditions = self.template.get("Conditions") or {}
        if name not in conditions:
            raise TemplateError(f"condition {name} is not defined")
        return bool(self._resolve(conditions[name]))

    def sub(self, arg: Any) -> str:
        if isinstance(arg, list):
            text, variables = arg[0], {k: self._resolve(v) for k, v in arg[1].items()}
        else:
            text, variables = arg, {}

        def fill(match: re.Match[str]) -> str:
            name = match.group(1)
            if name in variables:
                return str(variables[name])
            if "." in name and not name.startswith("AWS::"):
                lid, attribute = name.split(".", 1)
                return self.get_att(lid, attribute)
            value = self.ref(name)
            if value is NO_VALUE:
                raise TemplateError(f"!Sub ${{{name}}}: AWS::NoValue cannot be substituted")
            return str(value)

        return _SUB.sub(fill, str(text)).replace("${!", "${")


def _get_att(stack: Stack, arg: Any) -> str:
    parts = arg if isinstance(arg, list) else str(arg).split(".", 1)
    return stack.get_att(str(parts[0]), str(parts[1]))


def _if(stack: Stack, arg: Any) -> Any:
    name, yes, no = arg
    return stack._resolve(yes if stack.condition(name) else no)


def _equals(stack: Stack, arg: Any) -> bool:
    left, right = (stack._resolve(v) for v in arg)
    return bool(str(left) == str(right))


_INTRINSICS: dict[str, Any] = {
    "Ref": lambda s, a: s.ref(str(a)),
    "Fn::GetAtt": _get_att,
    "Fn::Sub": lambda s, a: s.sub(a),
    "Fn::If": _if,
    "Fn::Equals": _equals,
    "Fn::Not": lambda s, a: not s._resolve(a[0]),
    "Fn::And": lambda s, a: all(s._resolve(v) for v in a),
    "Fn::Or": lambda s, a: any(s._resolve(v) for v in a),
    "Condition": lambda s, a: s.condition(str(a)),
    "Fn::Join": lambda s, a: str(a[0]).join(str(v) for v in s._resolve(a[1])),
}


def merge_globals(globals_: Mapping[str, Any], props: Mapping[str, Any]) -> dict[str, Any]:
    """SAM's Globals merge: maps merge recursively (the resource wins), lists and scalars of
    the resource replace the global value (SAM appends lists; none of ours is set twice)."""
    out: dict[str, Any] = dict(globals_)
    for key, value in props.items():
        current = out.get(key)
        if isinstance(current, dict) and isinstance(value, dict) and not _is_intrinsic(value):
            out[key] = merge_globals(current, value)
        elif isinstance(current, list) and isinstance(value, list):
            out[key] = [*current, *value]
        else:
            out[key] = value
    return out


def _is_intrinsic(value: Mapping[str, Any]) -> bool:
    return len(value) == 1 and next(iter(value)) in _INTRINSICS


def _env_text(name: str, value: Any) -> str:
    if isinstance(value, (dict, list)) or value is None:
        raise TemplateError(f"environment variable {name} did not resolve to a string: {value!r}")
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)
