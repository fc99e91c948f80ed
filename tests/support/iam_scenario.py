"""One small migration's worth of calls to every function of the stack, on the moto server, each
handler with the environment template.yaml gives its function — and every AWS call recorded.

`run_scenario(endpoint)` drives the handlers in functions/*/app.py in the workflow's order
(validate, prepare target start/poll, source stream enable/poll, replication start, plan,
backfill, the replicator with a Lambda-shaped stream batch, finish backfill, verify, lag, recheck,
readiness, approval, the approval decision, drain, stop, report), as the deployed stack would:
- the environment is the function's `Environment` after SAM's transform (Globals merged) with
  the intrinsics resolved against the stack parameters — no DYNASHIFT_ENDPOINT_URL: every client
  reaches the moto server through AWS_ENDPOINT_URL, as clients reach AWS when deployed;
- the context carries nothing but what Lambda passes (no local replication control), so the
  replication steps use the event source mapping path;
- the source table is encrypted with a customer managed KMS key (given in KmsKeyArns) and the
  target gets a replica region (ReplicaRegions), so those permissions are exercised too.
After the backfill, the steps a resumed or re-run migration repeats run again (Validate,
prepare target, stream enable, replication start, plan, a backfill call per segment; after the
export pass, the export's start, time check, manifest and one file's load): each finds what the
first run made (Validate describes the existing stream; Validate and prepare target scan the
existing, key-encrypted target), so calls made only on a resumed run are evaluated too.
The export strategy's functions run inside the same migration: Validate with the export input
(PITR, HeadBucket) after the first Validate, and after the scan backfill ExportSource's four
actions and LoadExportFile on each data file (its puts meet the items the backfill wrote:
conditional, skipped). The stack has an export bucket, prefix and SSE-KMS key
(ExportBucketName, ExportPrefix, ExportKmsKeyArn).
A second, smaller pass runs Validate and the replicator's cold start with a source and a target
role (SourceRoleArn / TargetRoleArn): the handlers then assume those roles.
"""

from __future__ import annotations

import importlib.util
import json
import os
import time
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import boto3

import dynashift.aws
import dynashift.models
from dynashift.aws import Side
from dynashift.models import ExportLocation, MigrationSpec, TableLocation
from dynashift.state import StateStore
from dynashift.workflow.migrate import migration_id_for, state_table_name
from tests.support import sam_template
from tests.support.functions import create_function
from tests.support.iam_calls import Deployment, Recorder
from tests.support.lambda_context import LambdaContext
from tests.support.sam_template import ACCOUNT, REGION, Resolver
from tests.support.tables import create_table

ROOT = Path(__file__).resolve().parents[2]
STACK = "dynashift-test"
REPLICA_REGION = "us-west-2"
EXPORT_PREFIX = "dynashift/exports"

#: Environment a Lambda function always has (the runtime's, not the template's).
LAMBDA_RUNTIME_ENV = {
    "AWS_REGION": REGION,
    "AWS_DEFAULT_REGION": REGION,
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
}


@dataclass
class Stack:
    """The translated template, its parameters and the physical names of its resources."""

    cfn: dict[str, Any]
    resolver: Resolver
    parameters: dict[str, str]
    names: dict[str, str]
    code_dirs: dict[str, Path] = field(default_factory=dict)

    @classmethod
    def build(
        cls, parameters: Mapping[str, str], names: Mapping[str, str], text: str | None = None
    ) -> Stack:
        doc = sam_template.load(text)
        cfn = sam_template.translate(doc, parameters)
        resolver = Resolver(cfn, dict(parameters), dict(names), stack_name=STACK)
        code_dirs = {
            logical: ROOT / str(res["Properties"]["CodeUri"])
            for logical, res in doc["Resources"].items()
            if res["Type"] == "AWS::Serverless::Function"
        }
        return cls(cfn, resolver, dict(parameters), dict(names), code_dirs)

    def functions(self) -> dict[str, dict[str, Any]]:
        return {
            k: v for k, v in self.cfn["Resources"].items() if v["Type"] == "AWS::Lambda::Function"
        }

    def environment(self, function: str) -> dict[str, str]:
        props = self.cfn["Resources"][function]["Properties"]
        variables = (props.get("Environment") or {}).get("Variables") or {}
        return {k: str(v) for k, v in self.resolver.resolve(variables).items()}

    def code_dir(self, function: str) -> Path:
        return self.code_dirs[function]


@contextmanager
def function_env(env: Mapping[str, str], endpoint: str) -> Iterator[None]:
    """The process environment of one deployed function (the runtime's plus the template's)."""
    saved = dict(os.environ)
    try:
        for key in list(os.environ):
            if key.startswith(("DYNASHIFT_", "POWERTOOLS_", "AWS_")):
                del os.environ[key]
        os.environ.update(LAMBDA_RUNTIME_ENV)
        os.environ["AWS_ENDPOINT_URL"] = endpoint  # "AWS" is the moto server
        os.environ.update(env)
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


_modules: dict[Path, ModuleType] = {}


def handler_module(code_dir: Path) -> ModuleType:
    path = code_dir / "app.py"
    if path not in _modules:
        spec = importlib.util.spec_from_file_location(f"iam_fn_{code_dir.name}", path)
        assert spec and spec.loader
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        _modules[path] = module
    return _modules[path]


@dataclass
class Scenario:
    endpoint: str
    recorder: Recorder
    stack: Stack
    deployment: Deployment
    spec: MigrationSpec
    outputs: dict[str, Any] = field(default_factory=dict)
    #: Drop cached sessions before each invocation (needed where roles are assumed).
    cold_start: bool = False

    def invoke(self, function: str, event: Mapping[str, Any]) -> Any:
        module = handler_module(self.stack.code_dir(function))
        # The replicator reads its settings at its cold start: one per invocation here.
        cache = getattr(getattr(module, "replicator", None), "cache_clear", None)
        if cache is not None:
            cache()
        if self.cold_start:
            # No session or client cached by another function's invocation (each function is
            # its own process in AWS): an assumed role is assumed again.
            dynashift.aws._session_cache.clear()
            dynashift.models._factories.clear()
        name = self.stack.resolver.physical(function)
        env = {"AWS_LAMBDA_FUNCTION_NAME": name, **self.stack.environment(function)}
        with function_env(env, self.endpoint), self.recorder.acting_as(function):
            return module.handler(json.loads(json.dumps(event)), LambdaContext(name))


def _client(service: str, endpoint: str, region: str = REGION) -> Any:
    return boto3.client(service, region_name=region, endpoint_url=endpoint)


def _lambda_function(endpoint: str, name: str) -> str:
    return create_function(endpoint, name)


def stack_names(suffix: str, spec: MigrationSpec) -> dict[str, str]:
    return {
        "StateTable": spec.state.name,
        "ReportTopic": f"{STACK}-ReportTopic-{suffix}",
        "ReplicatorDeadLetterQueue": f"{STACK}-dlq-{suffix}",
        "ReplicatorFunction": f"{STACK}-ReplicatorFunction-{suffix}",
        "MigrationStateMachine": f"{STACK}-migration",
        "ReportTopicKey": "0000aaaa-topic-key",
    }


def _lambda_batch(streams: Any, stream_arn: str, region: str = REGION) -> dict[str, Any]:
    """The records of the stream's shard as a DynamoDB-stream event source mapping delivers
    them to Lambda (no shard id, eventSourceARN, epoch-seconds creation time)."""
    desc = streams.describe_stream(StreamArn=stream_arn)["StreamDescription"]
    records = []
    for shard in desc["Shards"]:
        it = streams.get_shard_iterator(
            StreamArn=stream_arn, ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON"
        )["ShardIterator"]
        for r in streams.get_records(ShardIterator=it, Limit=100)["Records"]:
            ddb = dict(r["dynamodb"])
            created = ddb.get("ApproximateCreationDateTime")
            if hasattr(created, "timestamp"):
                ddb["ApproximateCreationDateTime"] = created.timestamp()
            records.append(
                {
                    "eventID": r["eventID"],
                    "eventName": r["eventName"],
                    "eventVersion": "1.1",
                    "eventSource": "aws:dynamodb",
                    "awsRegion": region,
                    "dynamodb": ddb,
                    "eventSourceARN": stream_arn,
                }
            )
    return {"Records": records}


def run_scenario(endpoint: str, *, items: int = 12) -> Scenario:
    suffix = uuid.uuid4().hex[:8]
    ddb = _client("dynamodb", endpoint)
    kms = _client("kms", endpoint)
    key_arn = str(kms.create_key(Description="source table key")["KeyMetadata"]["Arn"])
    export_key = str(kms.create_key(Description="export key")["KeyMetadata"]["Arn"])
    bucket = f"iam-export-{suffix}"
    _client("s3", endpoint).create_bucket(Bucket=bucket)
    source_name, target_name = f"iam-src-{suffix}", f"iam-tgt-{suffix}"
    create_table(
        ddb,
        source_name,
        SSESpecification={"Enabled": True, "SSEType": "KMS", "KMSMasterKeyId": key_arn},
    )
    for i in range(items):
        ddb.put_item(TableName=source_name, Item={"pk": {"S": f"k{i:03d}"}, "n": {"N": str(i)}})
    ddb.update_continuous_backups(
        TableName=source_name,
        PointInTimeRecoverySpecification={"PointInTimeRecoveryEnabled": True},
    )

    side = Side(region=REGION)  # no endpoint in the input: as deployed
    src = TableLocation(name=source_name, side=side)
    tgt = TableLocation(name=target_name, side=side)
    migration_id = migration_id_for(src, tgt)
    spec = MigrationSpec(
        migration_id=migration_id,
        source=src,
        target=tgt,
        state=TableLocation(name=state_table_name(migration_id), side=side),
        segments=2,
        worker_budget_seconds=20.0,
    )
    names = stack_names(suffix, spec)
    parameters = {
        "MigrationId": migration_id,
        "SourceTableName": source_name,
        "TargetTableName": target_name,
        "KmsKeyArns": key_arn,
        "ReplicaRegions": REPLICA_REGION,
        "ExportBucketName": bucket,
        "ExportPrefix": EXPORT_PREFIX,
        "ExportKmsKeyArn": export_key,
    }
    stack = Stack.build(parameters, names)

    # The stack's own resources, as CloudFormation would have created them.
    StateStore.ensure_table(ddb, spec.state.name)
    topic_arn = _client("sns", endpoint).create_topic(Name=names["ReportTopic"])["TopicArn"]
    sqs = _client("sqs", endpoint)
    sqs.create_queue(QueueName=names["ReplicatorDeadLetterQueue"])
    _lambda_function(endpoint, names["ReplicatorFunction"])
    sfn_arn = stack.resolver.ref("MigrationStateMachine")
    sm = stack.cfn["Resources"]["MigrationStateMachine"]["Properties"]
    definition = json.loads((ROOT / "statemachine" / "migration.asl.json").read_text())
    deployment = Deployment(
        functions={stack.resolver.physical(f): f for f in stack.functions()},
        table_keys={
            sam_template.arn("dynamodb", f"table/{source_name}"): key_arn,
            sam_template.arn("dynamodb", f"table/{target_name}"): key_arn,
        },
        topic_keys={topic_arn: stack.resolver.get_att("ReportTopicKey", "Arn")},
        export_keys={bucket: export_key},
        state_machine_arn=sfn_arn,
        definition=definition,
        substitutions={
            k: str(v)
            for k, v in stack.resolver.resolve(sm.get("DefinitionSubstitutions", {})).items()
        },
    )
    recorder = Recorder()
    scenario = Scenario(endpoint, recorder, stack, deployment, spec)
    wf = {
        "spec": spec.model_dump(mode="json"),
        "settings": {"poll_seconds": 0, "max_concurrency": 2, "approval": True},
        "target_options": {"replica_regions": [REPLICA_REGION]},
    }
    base = {"spec": wf["spec"], "settings": wf["settings"]}
    streams = _client("dynamodbstreams", endpoint)
    with recorder.active():
        out = scenario.outputs
        out["validate"] = scenario.invoke("ValidateFunction", {"input": wf})
        export = ExportLocation(bucket=bucket, prefix=EXPORT_PREFIX, kms_key_id=export_key)
        export_spec = spec.model_copy(update={"export": export, "strategy": "export"})
        export_input = {**wf, "spec": export_spec.model_dump(mode="json")}
        out["validate_export"] = scenario.invoke("ValidateFunction", {"input": export_input})
        prep = {**wf, "action": "start"}
        out["prepare"] = scenario.invoke("PrepareTargetFunction", prep)
        # One poll: it adds the replica (moto never reports it ACTIVE, so later polls repeat).
        out["prepare"] = scenario.invoke("PrepareTargetFunction", {**wf, "action": "poll"})
        stream = scenario.invoke("SourceStreamFunction", {**base, "action": "enable"})
        for _ in range(20):
            if stream.get("ready"):
                break
            time.sleep(0.05)
            stream = scenario.invoke("SourceStreamFunction", {**base, "action": "poll"})
        assert stream.get("ready"), stream
        stream_arn = stream["arn"]
        # Live writes, read as the Lambda batch the event source mapping will deliver (moto's
        # own mapping empties the shard on every later write, so the batch is read first).
        ddb.put_item(TableName=source_name, Item={"pk": {"S": "live"}, "n": {"N": "1"}})
        ddb.delete_item(TableName=source_name, Key={"pk": {"S": "k000"}})
        batch = _lambda_batch(streams, stream_arn)
        assert len(batch["Records"]) == 2, batch
        out["start"] = scenario.invoke(
            "ReplicationFunction", {**base, "action": "start", "stream_arn": stream_arn}
        )
        plan = scenario.invoke("PlanSegmentsFunction", base)
        for segment in plan["segments"]:
            result: dict[str, Any] = {"cursor": None, "done": False}
            for _ in range(20):
                event = {**base, "segment": segment, "cursor": result.get("cursor")}
                result = scenario.invoke("BackfillSegmentFunction", event)
                if result.get("done"):
                    break
        # A resumed (or re-run) migration validates again once the source's stream exists:
        # Validate then describes that stream (its status decides whether it is usable).
        out["validate_resumed"] = scenario.invoke("ValidateFunction", {"input": wf})
        # The other steps a resumed run repeats, each finding what the first run made.
        scenario.invoke("PrepareTargetFunction", {**wf, "action": "start"})
        scenario.invoke("SourceStreamFunction", {**base, "action": "enable"})
        scenario.invoke(
            "ReplicationFunction", {**base, "action": "start", "stream_arn": stream_arn}
        )
        scenario.invoke("PlanSegmentsFunction", base)
        for segment in plan["segments"]:
            scenario.invoke("BackfillSegmentFunction", {**base, "segment": segment, "cursor": None})
        out["export"] = _export_pass(scenario, wf, export_spec)
        out["batch"] = batch
        out["replicator"] = scenario.invoke("ReplicatorFunction", batch)
        for _ in range(20):
            out["finish"] = scenario.invoke("FinishBackfillFunction", base)
            if out["finish"].get("done"):
                break
        if out["start"].get("deferred"):
            scenario.invoke(
                "ReplicationFunction",
                {**base, "action": "start_after_backfill", "stream_arn": stream_arn},
            )
        for segment in plan["segments"]:
            result = {"cursor": None, "done": False}
            for _ in range(20):
                event = {**base, "segment": segment, "cursor": result.get("cursor")}
                result = scenario.invoke("VerifySegmentFunction", event)
                if result.get("done"):
                    break
        out["lag"] = scenario.invoke("ReplicationFunction", {**base, "action": "lag"})
        out["recheck"] = scenario.invoke("RecheckFunction", base)
        out["readiness"] = scenario.invoke("ReadinessFunction", base)
        execution_arn = sfn_arn.replace(":stateMachine:", ":execution:") + f":{uuid.uuid4()}"
        out["approval"] = scenario.invoke(
            "ApprovalFunction",
            {**base, "task_token": f"token-{suffix}", "execution_arn": execution_arn},
        )
        out["decision"] = _decide(scenario, execution_arn)
        out["drain"] = scenario.invoke("ReplicationFunction", {**base, "action": "drain"})
        out["stop"] = scenario.invoke("ReplicationFunction", {**base, "action": "stop"})
        out["report"] = scenario.invoke("ReportFunction", {**base, "outcome": "READY"})
    return scenario


def _export_pass(scenario: Scenario, wf: Mapping[str, Any], spec: MigrationSpec) -> Any:
    """The export strategy's calls after Validate, in the workflow's order (see the module
    docstring), in a migration whose scan backfill wrote the items already."""
    base = {"spec": spec.model_dump(mode="json"), "settings": wf["settings"]}
    out: dict[str, Any] = {}
    status = scenario.invoke("ExportSourceFunction", {**base, "action": "start"})
    for _ in range(100):
        if status["done"]:
            break
        time.sleep(0.05)
        status = scenario.invoke("ExportSourceFunction", {**base, "action": "poll"})
    assert status["done"], status
    scenario.invoke("ExportSourceFunction", {**base, "action": "check_time"})
    files = scenario.invoke("ExportSourceFunction", {**base, "action": "manifest"})
    assert files["count"] >= 1, files
    for file in files["files"]:
        result: dict[str, Any] = {"cursor": None, "done": False}
        for _ in range(20):
            event = {**base, "file": file, "cursor": result.get("cursor")}
            result = scenario.invoke("LoadExportFileFunction", event)
            if result.get("done"):
                break
        assert result["done"], result
    # A resumed run: the recorded export, its manifest and a loaded file again.
    scenario.invoke("ExportSourceFunction", {**base, "action": "start"})
    scenario.invoke("ExportSourceFunction", {**base, "action": "check_time"})
    scenario.invoke("ExportSourceFunction", {**base, "action": "manifest"})
    scenario.invoke("LoadExportFileFunction", {**base, "file": files["files"][0], "cursor": None})
    out["files"] = files
    return out


def _decide(scenario: Scenario, execution_arn: str) -> Any:
    """The decision function answers the stored token. No execution waits on it here (moto's
    Step Functions without its interpreter accepts any token; tests/functional/
    test_approval_decision.py answers a really waiting one): what matters is the recorded
    SendTaskSuccess and the state table calls around it. A refusal would be a BadInputError."""
    from dynashift.errors import BadInputError

    try:
        return scenario.invoke(
            "ApprovalDecisionFunction", {"execution_arn": execution_arn, "decision": "approve"}
        )
    except BadInputError as exc:
        return {"error": exc.message}


def run_role_scenario(endpoint: str, base: Scenario) -> Recorder:
    """Validate and the replicator's cold start with a source and a target role to assume (in
    this account on moto; in AWS usually another account's)."""
    source_role = f"arn:aws:iam::{ACCOUNT}:role/dynashift-source-{uuid.uuid4().hex[:6]}"
    target_role = f"arn:aws:iam::{ACCOUNT}:role/dynashift-target-{uuid.uuid4().hex[:6]}"
    spec = base.spec
    src = spec.source.model_copy(update={"side": Side(region=REGION, role_arn=source_role)})
    tgt = spec.target.model_copy(update={"side": Side(region=REGION, role_arn=target_role)})
    role_spec = spec.model_copy(update={"source": src, "target": tgt})
    parameters = dict(base.stack.parameters, SourceRoleArn=source_role, TargetRoleArn=target_role)
    stack = Stack.build(parameters, base.stack.names)
    recorder = Recorder()
    scenario = Scenario(endpoint, recorder, stack, base.deployment, role_spec, cold_start=True)
    event = {"spec": role_spec.model_dump(mode="json"), "settings": {"poll_seconds": 0}}
    with recorder.active():
        scenario.invoke("ValidateFunction", {"input": event})
        scenario.invoke("ReplicatorFunction", base.outputs["batch"])
    base.outputs["roles"] = {"source": source_role, "target": target_role, "stack": stack}
    return recorder
