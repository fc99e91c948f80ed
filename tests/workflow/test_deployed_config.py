"""The local runner runs the deployed configuration (issue 11, item 1).

- Each function runs in its own sandbox with exactly the environment the template gives it (plus
  what the Lambda runtime adds and the private server's endpoints), its template Timeout, and its
  own module state; the context carries nothing AWS would not pass.
- The whole workflow reaches READY through the AWS control path: the replication step creates the
  replicator's event source mapping through the Lambda API of the private server, the emulator
  feeds the replicator handler Lambda-shaped batches, cutover deletes the mapping.
- A template with one environment variable removed fails at that function, naming it.
- The event source mapping emulator retries partial failures from the first failed record,
  retries a whole batch on a function error (bisected when configured), sends exhausted batches
  to the DLQ, and stops when its mapping is deleted.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from dynashift.errors import RuntimeFailure
from dynashift.workflow.esm import EventSourceMappingEmulator
from dynashift.workflow.migrate import MigrationRunner, local_stack
from dynashift.workflow.runner import LocalStepFunctions
from dynashift.workflow.sandbox import CREDENTIAL_VARIABLES
from dynashift.workflow.steps import state_store
from dynashift.workflow.template import TEMPLATE, Stack, load_template
from tests.support.reference import assert_identical
from tests.support.sam_template import load as load_template_yaml
from tests.support.tables import create_table, fill, varied_items
from tests.support.workflow import workflow_input
from tests.support.writer import ConcurrentWriter

RUNTIME_VARIABLES = {
    "AWS_REGION",
    "AWS_DEFAULT_REGION",
    "AWS_LAMBDA_FUNCTION_NAME",
    "AWS_LAMBDA_FUNCTION_MEMORY_SIZE",
    "AWS_LAMBDA_FUNCTION_VERSION",
    "AWS_LAMBDA_LOG_GROUP_NAME",
    "AWS_EXECUTION_ENV",
    "LAMBDA_TASK_ROOT",
}
ENDPOINT_VARIABLES = {f"AWS_ENDPOINT_URL_{s}" for s in ("LAMBDA", "SQS", "SNS", "SFN")}
RECORD_FIELDS = {
    "eventID",
    "eventName",
    "eventVersion",
    "eventSource",
    "awsRegion",
    "dynamodb",
    "eventSourceARN",
}
STREAM_FIELDS = {
    "ApproximateCreationDateTime",
    "Keys",
    "NewImage",
    "OldImage",
    "SequenceNumber",
    "SizeBytes",
    "StreamViewType",
}

PROBE = """
import os, time

CALLS = 0


def handler(event, context):
    global CALLS
    CALLS += 1
    if event.get("sleep"):
        time.sleep(event["sleep"])
    return {
        "env": dict(os.environ),
        "calls": CALLS,
        "pid": os.getpid(),
        "context": sorted(vars(context)),
        "memory": context.memory_limit_in_mb,
        "remaining_ms": context.get_remaining_time_in_millis(),
    }
"""


def _declared_variables(text: str, function: str) -> tuple[set[str], set[str]]:
    """(variables always set, variables set only when their `!If` condition holds)."""
    doc = load_template_yaml(text)
    variables = dict(doc["Globals"]["Function"]["Environment"]["Variables"])
    props = doc["Resources"][function]["Properties"]
    variables.update((props.get("Environment") or {}).get("Variables") or {})
    conditional = {k for k, v in variables.items() if isinstance(v, dict) and "Fn::If" in v}
    return set(variables) - conditional, conditional


def _block_start(text: str, logical_id: str) -> int:
    return text.index(f"\n  {logical_id}:\n") + 1


def _invoke(sfn: LocalStepFunctions, logical_id: str, event: dict[str, Any]) -> dict[str, Any]:
    lam = sfn.client("lambda", read_timeout=120)
    name = f"{sfn.stack.stack_name}-{logical_id}" if sfn.stack else logical_id
    resp = lam.invoke(FunctionName=name, Payload=json.dumps(event).encode())
    payload = json.loads(resp["Payload"].read())
    return {"error": resp.get("FunctionError"), "payload": payload}


# --- sandboxes ---------------------------------------------------------------------------------


def test_each_function_runs_isolated_with_exactly_its_template_configuration(
    endpoint: str, tmp_path: Path
) -> None:
    probe = tmp_path / "probe"
    probe.mkdir()
    (probe / "app.py").write_text(PROBE)
    text = TEMPLATE.read_text()
    # Two functions get the probe's code; Validate also a 2 s Timeout of its own.
    for logical_id, extra in (("ValidateFunction", "      Timeout: 2\n"), ("ReportFunction", "")):
        start = _block_start(text, logical_id)
        old = text[start:].split("CodeUri: ", 1)[1].split("\n", 1)[0]
        head, tail = text[:start], text[start:]
        tail = tail.replace(f"CodeUri: {old}", f"CodeUri: {probe}/\n{extra}".rstrip("\n"), 1)
        text = head + tail
    copy = tmp_path / "template.yaml"
    copy.write_text(text)
    wf = workflow_input(endpoint, "probe-src", "probe-tgt")
    with local_stack(wf.spec, template_path=copy, streams_for=None) as sfn:
        first = _invoke(sfn, "ValidateFunction", {})
        second = _invoke(sfn, "ValidateFunction", {})
        other = _invoke(sfn, "ReportFunction", {})
        timed_out = _invoke(sfn, "ValidateFunction", {"sleep": 5})
        after = _invoke(sfn, "ValidateFunction", {})
        url = sfn.url
    assert first["error"] is None, first
    env = first["payload"]["env"]
    credentials = {k for k in CREDENTIAL_VARIABLES if os.environ.get(k)}
    always, conditional = _declared_variables(text, "ValidateFunction")
    expected = always | RUNTIME_VARIABLES | credentials | ENDPOINT_VARIABLES
    # Every variable the template always sets, nothing the template does not declare (the
    # conditional ones follow their conditions: tests/unit/test_template_resolver.py).
    assert expected <= set(env), expected - set(env)
    assert set(env) - expected <= conditional, set(env) - expected - conditional
    assert env["DYNASHIFT_STATE_TABLE"] == wf.spec.state.name
    assert env["DYNASHIFT_MIGRATION_ID"] == wf.spec.migration_id
    assert env["DYNASHIFT_TARGET_TABLE"] == "probe-tgt"
    assert env["DYNASHIFT_ENDPOINT_URL"] == endpoint  # StateEndpointUrl
    assert env["AWS_LAMBDA_FUNCTION_MEMORY_SIZE"] == "1024" == str(first["payload"]["memory"])
    assert env["AWS_ENDPOINT_URL_LAMBDA"] == url
    # Only the replication, recheck and readiness functions name the replicator.
    assert "DYNASHIFT_REPLICATOR_FUNCTION" not in env
    # The context is Lambda's, nothing more; the remaining time counts down from the Timeout.
    assert "replication_control" not in first["payload"]["context"]
    assert 0 < first["payload"]["remaining_ms"] <= 2000
    # A warm sandbox keeps its module state; another function has its own process and state.
    assert second["payload"]["pid"] == first["payload"]["pid"]
    assert second["payload"]["calls"] == 2
    assert other["payload"]["pid"] != first["payload"]["pid"]
    assert other["payload"]["calls"] == 1
    assert other["payload"]["env"]["AWS_LAMBDA_FUNCTION_NAME"].endswith("-ReportFunction")
    # Past its Timeout the invocation fails like Lambda's, and the next one starts cold.
    assert timed_out["error"] == "Unhandled"
    assert timed_out["payload"]["errorType"] == "Sandbox.Timedout"
    assert "timed out after 2.00 seconds" in timed_out["payload"]["errorMessage"]
    assert after["payload"]["calls"] == 1


# --- the whole workflow ------------------------------------------------------------------------


def test_whole_workflow_reaches_ready_through_the_aws_control_path(
    ddb: Any, endpoint: str, table_name: Any
) -> None:
    source, target = table_name("dc-src"), table_name("dc-tgt")
    create_table(ddb, source)
    n = 200
    fill(ddb, source, varied_items(n, seed=41))
    wf = workflow_input(endpoint, source, target, segments=2, cutover=True)
    batches: list[list[dict[str, Any]]] = []
    lock = threading.Lock()

    def on_invoke(step: str, event: dict[str, Any]) -> None:
        if step == "replicator":
            with lock:
                batches.append(event["Records"])

    writer = ConcurrentWriter(
        ddb, source, ("pk",), seed=43, rate_per_s=25, key_space=n + 20, max_seconds=200
    )

    def on_state(state: str) -> None:
        if state == "Check replication lag":  # see tests/workflow/test_chaos.py STOP_AT
            writer.stop()

    with writer:
        assert writer.wait_for(10, timeout=20)
        runner = MigrationRunner(wf, on_invoke=on_invoke, on_state=on_state, drain_timeout=120)
        run = runner.run()
    assert run.exit_code == 0, run.summary
    assert run.summary == "READY"
    # The replication step created one mapping through the Lambda API; cutover deleted it.
    assert len(run.mappings_created) == 1
    assert run.mappings_deleted == run.mappings_created
    # The replicator handler got Lambda-shaped batches of at most the mapping's BatchSize.
    assert batches and run.invocations["replicator"] == len(batches)
    records = [r for batch in batches for r in batch]
    for batch in batches:
        assert 1 <= len(batch) <= 100
        assert len({r["eventSourceARN"] for r in batch}) == 1
        sequences = [int(r["dynamodb"]["SequenceNumber"]) for r in batch]
        assert sequences == sorted(set(sequences))  # one shard, in order
    for record in records:
        assert set(record) - {"userIdentity"} == RECORD_FIELDS, set(record)
        assert record["eventVersion"] == "1.1" and record["eventSource"] == "aws:dynamodb"
        assert record["eventName"] in ("INSERT", "MODIFY", "REMOVE")
        assert set(record["dynamodb"]) <= STREAM_FIELDS, set(record["dynamodb"])
        assert isinstance(record["dynamodb"]["ApproximateCreationDateTime"], (int, float))
        names = [*record, *record["dynamodb"]]
        assert not any("shard" in name.lower() for name in names), names
    # Writes made while the workflow ran reached the replicator (not only the backfill).
    written = {r["dynamodb"]["Keys"]["pk"]["S"] for r in records}
    assert len(written) >= 10
    assert state_store(wf.spec).report() is not None
    assert_identical(ddb, source, ddb, target, ("pk",))


def test_a_variable_missing_from_one_function_fails_that_function(
    ddb: Any, endpoint: str, table_name: Any, tmp_path: Path
) -> None:
    text = TEMPLATE.read_text()
    line = "          DYNASHIFT_REPLICATOR_FUNCTION: !Ref ReplicatorFunction\n"
    start = _block_start(text, "ReplicationFunction")
    at = text.index(line, start)
    assert at < text.index("\n  PlanSegmentsFunction:\n"), "not in ReplicationFunction"
    broken = text[:at] + text[at + len(line) :]
    copy = tmp_path / "template.yaml"
    copy.write_text(broken)
    # The other functions are resolved to the very same configuration.
    params = {"MigrationId": "m", "SourceTableName": "src", "TargetTableName": "tgt"}
    resources = {"StateTable": {"Ref": "s"}, "ReportTopic": {"Ref": "t"}}
    resources |= {
        lid: {"Ref": lid, "Arn": f"arn:{lid}", "QueueName": lid, "FunctionUrl": f"url:{lid}"}
        for lid in load_template(copy)["Resources"]
        if lid not in resources
    }
    original = Stack(load_template(TEMPLATE), params, resources)
    changed = Stack(load_template(copy), params, resources)
    for function in original.functions():
        same = original.function(function) == changed.function(function)
        assert same == (function != "ReplicationFunction"), function

    source, target = table_name("mv-src"), table_name("mv-tgt")
    create_table(ddb, source)
    fill(ddb, source, varied_items(20, seed=3))
    wf = workflow_input(endpoint, source, target)
    err = io.StringIO()
    runner = MigrationRunner(wf, template_path=copy, err=err)
    with pytest.raises(RuntimeFailure) as failure:
        runner.run()
    # The failed function's log (its sandbox's stderr) is kept for the operator.
    logs = Path(err.getvalue().split("the functions' logs are in ", 1)[1].split("\n", 1)[0])
    try:
        log = (logs / "ReplicationFunction.log").read_text()
        assert "DYNASHIFT_REPLICATOR_FUNCTION is not set" in log
    finally:
        shutil.rmtree(logs, ignore_errors=True)
    message = str(failure.value)
    assert "\n" not in message
    assert "DYNASHIFT_REPLICATOR_FUNCTION is not set" in message, message
    assert "ReplicationFunction" in message, message
    meta = state_store(wf.spec).get_meta() or {}
    assert meta.get("outcome") == "FAILED"


# --- the event source mapping emulator ------------------------------------------------------------


@pytest.fixture(scope="module")
def stack(endpoint: str) -> Iterator[LocalStepFunctions]:
    """The private server with the stack (its own mappings are run by the test's emulator)."""
    wf = workflow_input(endpoint, "esm-src", "esm-tgt")
    with local_stack(wf.spec, streams_for=None) as sfn:
        yield sfn


class ScriptedFunction:
    """The test's Lambda function: records every batch, answers what `script` says."""

    def __init__(self, script: Any) -> None:
        self.script = script
        self.batches: list[list[str]] = []
        self.lock = threading.Lock()

    def __call__(self, function: str, event: dict[str, Any]) -> tuple[str, bool]:
        seqs = [r["dynamodb"]["SequenceNumber"] for r in event["Records"]]
        with self.lock:
            self.batches.append(seqs)
            answer = self.script(len(self.batches), seqs)
        if answer == "error":
            return json.dumps({"errorType": "Boom", "errorMessage": "scripted"}), True
        return json.dumps(answer or {}), False

    def delivered(self) -> set[str]:
        with self.lock:
            return {s for batch in self.batches for s in batch}


def _source_with_records(ddb: Any, streams: Any, name: str, n: int) -> tuple[str, list[str]]:
    create_table(ddb, name)
    arn = ddb.update_table(
        TableName=name,
        StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"},
    )["TableDescription"]["LatestStreamArn"]
    for i in range(n):
        ddb.put_item(TableName=name, Item={"pk": {"S": f"k{i:03d}"}, "n": {"N": str(i)}})
    shard = streams.describe_stream(StreamArn=arn)["StreamDescription"]["Shards"][0]["ShardId"]
    it = streams.get_shard_iterator(StreamArn=arn, ShardId=shard, ShardIteratorType="TRIM_HORIZON")[
        "ShardIterator"
    ]
    seqs = [
        r["dynamodb"]["SequenceNumber"] for r in streams.get_records(ShardIterator=it)["Records"]
    ]
    return arn, seqs


def _mapping(stack: LocalStepFunctions, arn: str, **extra: Any) -> str:
    lam = stack.client("lambda")
    mapping = lam.create_event_source_mapping(
        EventSourceArn=arn,
        FunctionName=f"{stack.stack.stack_name}-ReplicatorFunction" if stack.stack else "",
        StartingPosition="TRIM_HORIZON",
        **extra,
    )
    return str(mapping["UUID"])


def _emulator(stack: LocalStepFunctions, streams: Any, function: ScriptedFunction) -> Any:
    replicator = stack.stack.resources["ReplicatorFunction"]["Arn"] if stack.stack else ""
    return EventSourceMappingEmulator(
        stack.client("lambda"),
        function,
        lambda arn: streams,
        sqs_client=stack.client("sqs"),
        interval=0.05,
        functions=lambda arn: arn == replicator,  # other runs' mappings share moto's backend
    )


def _wait(condition: Any, timeout: float = 30.0) -> bool:
    from tests.support.tables import wait_until

    return bool(wait_until(condition, timeout=timeout, every=0.05))


def test_esm_partial_batch_failure_is_retried_from_the_first_failed_record(
    stack: LocalStepFunctions, ddb: Any, streams: Any, table_name: Any
) -> None:
    arn, seqs = _source_with_records(ddb, streams, table_name("esm-p"), 12)

    # The first batch reports records 4 and 6 failed: the retry starts at record 4.
    def script(call: int, batch: list[str]) -> Any:
        if call > 1:
            return None
        return {"batchItemFailures": [{"itemIdentifier": batch[6]}, {"itemIdentifier": batch[4]}]}

    function = ScriptedFunction(script)
    uuid = _mapping(stack, arn, BatchSize=10, FunctionResponseTypes=["ReportBatchItemFailures"])
    with _emulator(stack, streams, function) as esm:
        assert _wait(lambda: function.delivered() >= set(seqs))
        assert function.batches[0] == seqs[:10]
        assert function.batches[1][0] == seqs[4], function.batches
        # Records before the failure are not redelivered; order is kept.
        assert [s for b in function.batches[1:] for s in b] == seqs[4:]
        stack.client("lambda").delete_event_source_mapping(UUID=uuid)
        esm.sync()
        assert not esm.running and esm.deleted == [uuid]
        calls = len(function.batches)
        ddb.put_item(TableName=arn.split("/")[1], Item={"pk": {"S": "after-delete"}})
        esm.sync()
        assert not _wait(lambda: len(function.batches) > calls, timeout=1.0)


def test_esm_function_error_retries_the_whole_batch(
    stack: LocalStepFunctions, ddb: Any, streams: Any, table_name: Any
) -> None:
    arn, seqs = _source_with_records(ddb, streams, table_name("esm-e"), 8)
    function = ScriptedFunction(lambda call, batch: "error" if call <= 2 else None)
    uuid = _mapping(stack, arn, BatchSize=5, MaximumRetryAttempts=5)
    with _emulator(stack, streams, function):
        assert _wait(lambda: function.delivered() >= set(seqs) and len(function.batches) >= 4)
    stack.client("lambda").delete_event_source_mapping(UUID=uuid)
    # The same batch three times (two errors, then success), then the rest.
    assert function.batches[:3] == [seqs[:5]] * 3, function.batches
    assert function.batches[3] == seqs[5:]


def test_esm_exhausted_retries_go_to_the_dlq_and_the_shard_moves_on(
    stack: LocalStepFunctions, ddb: Any, streams: Any, table_name: Any
) -> None:
    arn, seqs = _source_with_records(ddb, streams, table_name("esm-d"), 6)
    poison = seqs[1]
    function = ScriptedFunction(lambda call, batch: "error" if poison in batch else None)
    sqs = stack.client("sqs")
    queue = stack.stack.resources["ReplicatorDeadLetterQueue"] if stack.stack else {}
    sqs.purge_queue(QueueUrl=queue["Ref"])
    uuid = _mapping(
        stack,
        arn,
        BatchSize=3,
        MaximumRetryAttempts=2,
        DestinationConfig={"OnFailure": {"Destination": queue["Arn"]}},
    )
    with _emulator(stack, streams, function):
        assert _wait(lambda: function.delivered() >= set(seqs[3:]))
    stack.client("lambda").delete_event_source_mapping(UUID=uuid)
    # One invocation and two retries of the poisoned batch, then the next batch.
    assert function.batches[:3] == [seqs[:3]] * 3, function.batches
    assert function.batches[3] == seqs[3:]
    messages = sqs.receive_message(QueueUrl=queue["Ref"], MaxNumberOfMessages=10)["Messages"]
    assert len(messages) == 1
    info = json.loads(messages[0]["Body"])
    assert info["requestContext"]["condition"] == "RetryAttemptsExhausted"
    assert info["requestContext"]["approximateInvokeCount"] == 3
    batch = info["DDBStreamBatchInfo"]
    assert (batch["startSequenceNumber"], batch["endSequenceNumber"]) == (seqs[0], seqs[2])
    assert batch["batchSize"] == 3 and batch["streamArn"] == arn


def test_esm_bisects_a_failing_batch_when_configured(
    stack: LocalStepFunctions, ddb: Any, streams: Any, table_name: Any
) -> None:
    arn, seqs = _source_with_records(ddb, streams, table_name("esm-b"), 6)
    poison = seqs[3]
    # The function fails any batch holding the poisoned record with another one.
    function = ScriptedFunction(
        lambda call, batch: "error" if poison in batch and len(batch) > 1 else None
    )
    uuid = _mapping(
        stack, arn, BatchSize=6, MaximumRetryAttempts=5, BisectBatchOnFunctionError=True
    )
    with _emulator(stack, streams, function):
        assert _wait(lambda: function.delivered() >= set(seqs) and len(function.batches) >= 5)
    stack.client("lambda").delete_event_source_mapping(UUID=uuid)
    assert function.batches[:5] == [seqs, seqs[:3], seqs[3:], seqs[3:4], seqs[4:]], function.batches
