"""Record every AWS API call a function makes, as IAM sees it: (principal, action, resource ARN,
condition context).

`Recorder` wraps botocore's `BaseClient._make_api_call` — the one method every boto3 client
call goes through — for the duration of a `with` block; `recorder.acting_as("ValidateFunction")`
attributes the calls made meanwhile (from any thread) to that function. Calls made with other
credentials than the function's own (an assumed cross-account role) are recorded with
`assumed=True`: the role in the other account authorizes those, not the function's policies.

`implied_calls()` adds what AWS services do with a function's role or on its behalf, which no
botocore hook in our process can see: the event source mapping reading the source stream and
writing the on-failure destination with the replicator's role, DynamoDB calling KMS for tables
encrypted with a customer managed key (`kms:ViaService` = dynamodb.<region>.amazonaws.com), SNS
calling KMS when a function publishes to an encrypted topic, DynamoDB creating replicas of a
global table, and Step Functions invoking the Lambda tasks and the Distributed Map's child
executions with the state machine's role. Each rule cites the AWS documentation it follows.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlparse

from botocore.client import BaseClient
from botocore.exceptions import ClientError

from tests.support.sam_template import ACCOUNT, PARTITION


@dataclass(frozen=True)
class Call:
    """One authorization request."""

    principal: str  # logical id of the function / state machine (its role is `<id>Role`)
    action: str  # "dynamodb:PutItem"
    resource: str  # an ARN, or "*" for actions without resource types
    context: tuple[tuple[str, str], ...] = ()
    operation: str = ""  # the botocore operation (or the AWS service that made the call)
    assumed: bool = False  # made with an assumed role's credentials
    implied_by: str = ""  # "" for a recorded call; else the rule that implies it

    @property
    def context_dict(self) -> dict[str, str]:
        return dict(self.context)


#: IAM action prefix of a botocore service (its signing name, except where IAM differs).
PREFIX = {"dynamodbstreams": "dynamodb", "stepfunctions": "states"}

#: Actions AWS authorizes only on Resource "*" (no resource types in the Service Authorization
#: Reference; the evaluator refuses another resource for them).
WILDCARD_ONLY = {
    "dynamodb:ListTables",
    "dynamodb:DescribeLimits",
    "dynamodb:ListStreams",
    "lambda:ListEventSourceMappings",
    "lambda:CreateEventSourceMapping",
    "states:SendTaskSuccess",
    "states:SendTaskFailure",
    "states:SendTaskHeartbeat",
    "sts:GetCallerIdentity",
    "cloudwatch:GetMetricData",
    "cloudwatch:GetMetricStatistics",
    "cloudwatch:PutMetricData",
}

TRANSACT_PARTS = {
    "Put": "PutItem",
    "Update": "UpdateItem",
    "Delete": "DeleteItem",
    "ConditionCheck": "ConditionCheckItem",
    "Get": "GetItem",
}

DYNAMODB_READS = {"GetItem", "BatchGetItem", "Scan", "Query", "GetRecords"}
DYNAMODB_WRITES = {"PutItem", "UpdateItem", "DeleteItem", "BatchWriteItem"}


def _arn(service: str, region: str, resource: str, account: str = ACCOUNT) -> str:
    return f"arn:{PARTITION}:{service}:{region}:{account}:{resource}"


class Recorder:
    """Collects `Call`s from every botocore client in this process while active."""

    def __init__(self, own_access_key: str = "testing") -> None:
        self.calls: list[Call] = []
        self.own_access_key = own_access_key
        self._principal: str | None = None
        self._lock = threading.Lock()
        self._iterators: dict[str, str] = {}  # shard iterator -> stream ARN
        self._mappings: dict[str, str] = {}  # event source mapping UUID -> function ARN
        self.raw: list[tuple[str, str, str, dict[str, Any], dict[str, Any]]] = []

    @contextmanager
    def acting_as(self, principal: str) -> Iterator[None]:
        previous, self._principal = self._principal, principal
        try:
            yield
        finally:
            self._principal = previous

    @contextmanager
    def active(self) -> Iterator[Recorder]:
        original = BaseClient._make_api_call
        recorder = self

        def _make_api_call(client: Any, operation_name: str, api_params: Any) -> Any:
            principal = recorder._principal
            try:
                response = original(client, operation_name, api_params)
            except ClientError as exc:
                # AWS authorizes a call before it fails (a failed condition, a missing table):
                # the call needed the permission all the same.
                if principal is not None:
                    recorder._record(client, principal, operation_name, dict(api_params), {})
                raise exc from None
            if principal is not None:
                recorder._record(client, principal, operation_name, dict(api_params), response)
            return response

        BaseClient._make_api_call = _make_api_call  # type: ignore[method-assign]
        try:
            yield self
        finally:
            BaseClient._make_api_call = original  # type: ignore[method-assign]

    # --- one botocore call -> IAM requests ------------------------------------------------------

    def _record(
        self,
        client: Any,
        principal: str,
        operation: str,
        params: dict[str, Any],
        response: Mapping[str, Any],
    ) -> None:
        service = client.meta.service_model.service_name
        region = client.meta.region_name
        creds = client._request_signer._credentials
        key = creds.get_frozen_credentials().access_key if creds is not None else ""
        assumed = key != self.own_access_key
        with self._lock:
            self.raw.append((principal, service, operation, params, dict(response)))
            for it_key in ("ShardIterator", "NextShardIterator"):
                if response.get(it_key):
                    stream = params.get("StreamArn") or self._iterators.get(
                        params.get("ShardIterator", "")
                    )
                    if stream:
                        self._iterators[response[it_key]] = stream
            for mapping in [response, *response.get("EventSourceMappings", [])]:
                if mapping.get("UUID") and mapping.get("FunctionArn"):
                    self._mappings[mapping["UUID"]] = mapping["FunctionArn"]
            for action, resource, context in self.requests(service, region, operation, params):
                self.calls.append(
                    Call(
                        principal,
                        action,
                        resource,
                        tuple(sorted(context.items())),
                        operation,
                        assumed,
                    )
                )

    def requests(
        self, service: str, region: str, operation: str, params: Mapping[str, Any]
    ) -> list[tuple[str, str, dict[str, str]]]:
        """(action, resource, context) of one API call, as the Service Authorization Reference
        defines the action's resource types."""
        prefix = PREFIX.get(service, service)
        action = f"{prefix}:{operation}"
        if action in WILDCARD_ONLY:
            context: dict[str, str] = {}
            if operation == "CreateEventSourceMapping":
                context["lambda:FunctionArn"] = self._function_arn(params["FunctionName"], region)
            return [(action, "*", context)]
        if prefix == "dynamodb":
            if "RequestItems" in params:
                return [
                    (action, _arn("dynamodb", region, f"table/{t}"), {})
                    for t in params["RequestItems"]
                ]
            if "TransactItems" in params:
                # Transactions are authorized as their parts (PutItem, UpdateItem, ...).
                parts = {
                    (TRANSACT_PARTS[kind], op["TableName"])
                    for item in params["TransactItems"]
                    for kind, op in item.items()
                }
                return [
                    (f"dynamodb:{part}", _arn("dynamodb", region, f"table/{t}"), {})
                    for part, t in sorted(parts)
                ]
            if "StreamArn" in params:
                return [(action, params["StreamArn"], {})]
            for arn_key in ("TableArn", "ExportArn"):  # ExportTableToPointInTime, DescribeExport
                if arn_key in params:
                    return [(action, params[arn_key], {})]
            if "ShardIterator" in params:
                return [(action, self._iterators.get(params["ShardIterator"], "?"), {})]
            if "ResourceArn" in params:
                return [(action, params["ResourceArn"], {})]
            if "TableName" in params:
                name = params["TableName"]
                table = (
                    name if name.startswith("arn:") else _arn("dynamodb", region, f"table/{name}")
                )
                return [(action, table, {})]
        if prefix == "s3":
            # HeadBucket is authorized as s3:ListBucket on the bucket; GetObject on the object.
            bucket = f"arn:{PARTITION}:s3:::{params['Bucket']}"
            if operation == "HeadBucket":
                return [("s3:ListBucket", bucket, {})]
            if operation == "GetObject":
                return [(action, f"{bucket}/{params['Key']}", {})]
        if prefix == "sqs":
            if "QueueUrl" in params:
                parts = urlparse(params["QueueUrl"]).path.strip("/").split("/")
                return [(action, _arn("sqs", region, parts[-1], parts[-2]), {})]
            if "QueueName" in params:
                return [(action, _arn("sqs", region, params["QueueName"]), {})]
        if prefix == "sns" and "TopicArn" in params:
            return [(action, params["TopicArn"], {})]
        if prefix == "lambda":
            if "UUID" in params:
                fn = self._mappings.get(params["UUID"], "")
                esm = _arn("lambda", region, f"event-source-mapping:{params['UUID']}")
                return [(action, esm, {"lambda:FunctionArn": fn})]
            if "FunctionName" in params:
                return [(action, self._function_arn(params["FunctionName"], region), {})]
        if prefix == "states":
            for key in ("executionArn", "stateMachineArn"):
                if key in params:
                    return [(action, params[key], {})]
        if prefix == "sts" and "RoleArn" in params:
            return [(action, params["RoleArn"], {})]
        if prefix == "kms" and "KeyId" in params:
            key_id = params["KeyId"]
            return [
                (
                    action,
                    key_id if key_id.startswith("arn:") else _arn("kms", region, f"key/{key_id}"),
                    {},
                )
            ]
        raise AssertionError(f"no IAM resource mapping for {action} {sorted(params)}")

    @staticmethod
    def _function_arn(name: str, region: str) -> str:
        return name if name.startswith("arn:") else _arn("lambda", region, f"function:{name}")

    def own_calls(self) -> list[Call]:
        return [c for c in self.calls if not c.assumed]


# --- what AWS services do with a function's role --------------------------------------------


@dataclass
class Deployment:
    """What the implied-call rules need to know about the deployed stack and its tables."""

    #: logical id of the function behind each function name/ARN
    functions: dict[str, str]
    #: table ARN -> customer managed KMS key ARN (tables and their streams encrypted with it)
    table_keys: dict[str, str] = field(default_factory=dict)
    #: topic ARN -> customer managed KMS key ARN
    topic_keys: dict[str, str] = field(default_factory=dict)
    #: state machine logical id and ARN, and its definition (parsed ASL)
    state_machine: str = "MigrationStateMachine"
    state_machine_arn: str = ""
    definition: dict[str, Any] = field(default_factory=dict)
    substitutions: dict[str, str] = field(default_factory=dict)
    #: bucket name -> the customer managed KMS key of the export objects written there
    export_keys: dict[str, str] = field(default_factory=dict)


def _table_of(resource: str) -> str:
    """The table ARN of a table, index or stream ARN."""
    head, _, rest = resource.partition(":table/")
    return f"{head}:table/{rest.split('/')[0]}" if rest else resource


def _region_of(arn: str) -> str:
    return arn.split(":")[3]


def implied_calls(recorder: Recorder, deployment: Deployment) -> list[Call]:
    out: list[Call] = []
    raw = list(recorder.raw)

    def add(principal: str, action: str, resource: str, rule: str, **context: str) -> None:
        out.append(
            Call(principal, action, resource, tuple(sorted(context.items())), rule, False, rule)
        )

    # 1. The event source mapping polls the stream and writes the on-failure destination with
    #    the replicator's execution role ("Lambda execution role permissions" for DynamoDB
    #    streams: DescribeStream, GetRecords, GetShardIterator, ListStreams; SQS destination:
    #    sqs:SendMessage).
    for _principal, service, operation, params, _resp in raw:
        if service == "lambda" and operation == "CreateEventSourceMapping":
            fn = deployment.functions[params["FunctionName"].split(":")[-1]]
            stream = params["EventSourceArn"]
            rule = "event source mapping"
            for action in ("DescribeStream", "GetShardIterator", "GetRecords"):
                add(fn, f"dynamodb:{action}", stream, rule)
            add(fn, "dynamodb:ListStreams", "*", rule)
            dest = ((params.get("DestinationConfig") or {}).get("OnFailure") or {}).get(
                "Destination"
            )
            if dest:
                add(fn, "sqs:SendMessage", dest, rule + " on-failure destination")
            # ... and reads the records, encrypted with the table's key.
            key = deployment.table_keys.get(_table_of(stream))
            if key:
                region = _region_of(stream)
                add(
                    fn,
                    "kms:Decrypt",
                    key,
                    rule,
                    **{"kms:ViaService": f"dynamodb.{region}.amazonaws.com"},
                )

    # 2. DynamoDB calls KMS with the caller's credentials for a table with a customer managed
    #    key (DynamoDB developer guide, "Key policy for a customer managed key": Encrypt,
    #    Decrypt, GenerateDataKey*, DescribeKey, CreateGrant with kms:ViaService).
    for call in list(recorder.calls):
        if call.assumed or not call.action.startswith("dynamodb:"):
            continue
        op = call.action.split(":", 1)[1]
        key = deployment.table_keys.get(_table_of(call.resource))
        if not key:
            continue
        via = {"kms:ViaService": f"dynamodb.{_region_of(call.resource)}.amazonaws.com"}
        rule = "DynamoDB encryption with a customer managed key"
        if op in DYNAMODB_READS | DYNAMODB_WRITES:
            add(call.principal, "kms:Decrypt", key, rule, **via)
        if op in DYNAMODB_WRITES:
            add(call.principal, "kms:Encrypt", key, rule, **via)
            add(call.principal, "kms:GenerateDataKey", key, rule, **via)
    for principal, service, operation, params, _resp in raw:
        if service == "dynamodb" and operation in ("CreateTable", "UpdateTable"):
            key = (params.get("SSESpecification") or {}).get("KMSMasterKeyId")
            if key:
                region = "us-east-1"
                via = {"kms:ViaService": f"dynamodb.{region}.amazonaws.com"}
                rule = "CreateTable with a customer managed key"
                add(principal, "kms:DescribeKey", key, rule, **via)
                add(
                    principal,
                    "kms:CreateGrant",
                    key,
                    rule,
                    **via,
                    **{"kms:GrantIsForAWSResource": "true"},
                )

    # 3. SNS calls KMS for the publisher of an encrypted topic (SNS developer guide, "Enable
    #    compatibility between event sources and encrypted topics": GenerateDataKey*, Decrypt).
    for call in list(recorder.calls):
        if call.action == "sns:Publish" and call.resource in deployment.topic_keys:
            key = deployment.topic_keys[call.resource]
            via = {"kms:ViaService": f"sns.{_region_of(call.resource)}.amazonaws.com"}
            rule = "publish to an encrypted topic"
            add(call.principal, "kms:GenerateDataKey", key, rule, **via)
            add(call.principal, "kms:Decrypt", key, rule, **via)

    # 4. Replicas of a global table (DynamoDB developer guide, "Using IAM with global tables"):
    #    CreateTableReplica plus the table actions in every region, and the service-linked role.
    for principal, service, operation, params, _resp in raw:
        if service != "dynamodb" or operation not in ("CreateTable", "UpdateTable"):
            continue
        regions = [
            u["Create"]["RegionName"] for u in params.get("ReplicaUpdates", []) if "Create" in u
        ]
        if not regions:
            continue
        home = "us-east-1"
        rule = "global table replica"
        for region in [home, *regions]:
            table = _arn("dynamodb", region, f"table/{params['TableName']}")
            for action in (
                "CreateTableReplica",
                "Scan",
                "Query",
                "UpdateItem",
                "PutItem",
                "GetItem",
                "DeleteItem",
                "BatchWriteItem",
            ):
                add(principal, f"dynamodb:{action}", table, rule)
        add(
            principal,
            "iam:CreateServiceLinkedRole",
            f"arn:{PARTITION}:iam::{ACCOUNT}:role/aws-service-role/replication.dynamodb.amazonaws.com/"
            "AWSServiceRoleForDynamoDBReplication",
            rule,
            **{"iam:AWSServiceName": "replication.dynamodb.amazonaws.com"},
        )

    # 6. DynamoDB writes an export's objects with the credentials of the principal that asked
    #    for it (developer guide, "Requesting a table export in DynamoDB": s3:AbortMultipartUpload,
    #    s3:PutObject, s3:PutObjectAcl on the destination), and with an SSE-KMS key S3 asks KMS
    #    for data keys with those credentials (S3 user guide, "Using SSE-KMS": GenerateDataKey,
    #    Decrypt for multipart uploads). Reading an SSE-KMS object: kms:Decrypt through S3.
    for principal, service, operation, params, resp in raw:
        if service == "dynamodb" and operation == "ExportTableToPointInTime":
            arn = str(resp.get("ExportDescription", {}).get("ExportArn", "x/x"))
            export_id = arn.rsplit("/", maxsplit=1)[-1]
            prefix = f"{params['S3Prefix']}/" if params.get("S3Prefix") else ""
            obj = f"arn:{PARTITION}:s3:::{params['S3Bucket']}/{prefix}AWSDynamoDB/{export_id}/"
            rule = "DynamoDB export to S3"
            for action in ("AbortMultipartUpload", "PutObject", "PutObjectAcl"):
                add(principal, f"s3:{action}", obj + "data/part.json.gz", rule)
            key = params.get("S3SseKmsKeyId")
            if key:
                via = {"kms:ViaService": "s3.us-east-1.amazonaws.com"}
                add(principal, "kms:GenerateDataKey", key, rule + " (SSE-KMS)", **via)
                add(principal, "kms:Decrypt", key, rule + " (SSE-KMS)", **via)
        encrypted = params.get("Bucket") in deployment.export_keys
        if service == "s3" and operation == "GetObject" and encrypted:
            via = {"kms:ViaService": "s3.us-east-1.amazonaws.com"}
            key = deployment.export_keys[params["Bucket"]]
            add(principal, "kms:Decrypt", key, "read an SSE-KMS export object", **via)

    # 5. Step Functions: lambda:InvokeFunction for every Lambda task, and for a Distributed Map
    #    StartExecution / DescribeExecution / StopExecution of its child executions and
    #    RedriveExecution of the map run (Step Functions developer guide, "IAM policies for
    #    using Distributed Map states").
    sm = deployment.state_machine
    for state in _all_states(deployment.definition.get("States", {})):
        if state.get("Type") == "Task" and "lambda:invoke" in str(state.get("Resource")):
            name = str((state.get("Parameters") or {}).get("FunctionName", ""))
            fn_arn = _substitute(name, deployment.substitutions)
            add(sm, "lambda:InvokeFunction", fn_arn, "Step Functions Lambda task")
        processor = state.get("ItemProcessor") or {}
        if (processor.get("ProcessorConfig") or {}).get("Mode") == "DISTRIBUTED":
            sm_arn = deployment.state_machine_arn
            name = sm_arn.split(":")[-1]
            execution = sm_arn.replace(":stateMachine:", ":execution:")
            parent = f"{execution}:{uuid.uuid4()}"
            child = f"{execution}/map-run-label:{uuid.uuid4()}"
            rule = f"Distributed Map {name}"
            add(sm, "states:StartExecution", sm_arn, rule)
            for target in (parent, child):
                add(sm, "states:DescribeExecution", target, rule)
                add(sm, "states:StopExecution", target, rule)
            add(sm, "states:RedriveExecution", child, rule)
    return _dedupe(out)


def _all_states(states: Mapping[str, Any]) -> Iterator[Mapping[str, Any]]:
    for state in states.values():
        yield state
        processor = state.get("ItemProcessor") or state.get("Iterator")
        if processor:
            yield from _all_states(processor.get("States", {}))
        for branch in state.get("Branches", []):
            yield from _all_states(branch.get("States", {}))


def _substitute(text: str, values: Mapping[str, str]) -> str:
    for key, value in values.items():
        text = text.replace("${" + key + "}", value)
    return text


def _dedupe(calls: Iterable[Call]) -> list[Call]:
    seen: dict[tuple[str, str, str, tuple[tuple[str, str], ...]], Call] = {}
    for c in calls:
        seen.setdefault((c.principal, c.action, c.resource, c.context), c)
    return list(seen.values())


def distinct(calls: Iterable[Call]) -> list[Call]:
    return _dedupe(calls)
