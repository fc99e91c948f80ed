"""The local runner's fixed costs (issue 14): what a run pays besides the workflow's own work.

- The runner waiting on an execution is woken by its end, not by the next tick of its polling
  interval.
- moto's interpreter is imported without moto's Batch and EC2 backends (which its AWS Batch
  integration pulls in through `moto.batch`'s package `__init__`), and `moto.batch` stays whole
  for whoever imports it later.
- The event source mapping emulator starts and stops pollers when a mapping is created or
  deleted, not at the next tick of its scan.
- The console script ends the process without the interpreter's teardown, after the exit
  handlers ran and the output was flushed.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from dynashift.clock import Clock
from dynashift.workflow import runner
from dynashift.workflow.esm import EventSourceMappingEmulator
from dynashift.workflow.migrate import local_stack
from tests.support.tables import create_table, wait_until
from tests.support.workflow import workflow_input

ROLE_ARN = "arn:aws:iam::123456789012:role/local"


class NeverSleeps(Clock):
    """Real time, but sleeping on it fails the test."""

    def sleep(self, seconds: float) -> None:
        raise AssertionError(f"the runner slept {seconds}s instead of waiting for the end")


def test_wait_is_woken_by_the_end_of_the_execution(tmp_path: Path) -> None:
    definition = {
        "StartAt": "Pause",
        "States": {
            "Pause": {"Type": "Wait", "Seconds": 1, "Next": "Done"},
            "Done": {"Type": "Succeed"},
        },
    }
    path = tmp_path / "pause.asl.json"
    path.write_text(json.dumps(definition))
    wf = workflow_input("http://127.0.0.1:9", "wake-src", "wake-tgt")
    seen: list[str] = []
    with local_stack(wf.spec, definition_path=path, clock=NeverSleeps()) as sfn:
        arn = sfn.start_execution({})
        # An interval far longer than the execution: only its end can end the wait in time.
        outcome = sfn.wait(
            arn, on_event=lambda e: seen.append(str(e["type"])), interval=600, timeout=120
        )
    assert outcome.status == "SUCCEEDED"
    assert seen[0] == "ExecutionStarted" and seen[-1] == "ExecutionSucceeded", seen


def _python(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        check=False,
        text=True,
        timeout=120,
    )


def test_the_interpreter_is_imported_without_moto_batch_and_ec2() -> None:
    done = _python(
        """
        import sys
        from dynashift.workflow.runner import import_interpreter
        import_interpreter()
        heavy = ("moto.batch", "moto.batch.models", "moto.ec2")
        loaded = sorted(m for m in heavy if m in sys.modules)
        print("loaded", loaded)
        import moto.batch  # still the whole package for a later importer
        from moto.batch.utils import JobStatus
        print("batch", hasattr(moto.batch, "batch_backends"), JobStatus.SUCCEEDED.value)
        """
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["loaded []", "batch True SUCCEEDED"], done.stdout


def test_exit_now_runs_the_exit_handlers_and_skips_the_teardown() -> None:
    done = _python(
        """
        import atexit, sys
        from dynashift.cli.main import exit_now

        class Teardown:
            def __del__(self):
                print("teardown", flush=True)

        kept = Teardown()  # collected by the interpreter's teardown, if it runs
        atexit.register(print, "exit handler")
        sys.stdout.write("buffered ")  # flushed by exit_now
        exit_now(3)
        """
    )
    assert done.returncode == 3, done.stderr
    assert done.stdout == "buffered exit handler\n", done.stdout


def test_exit_now_leaves_a_running_thread_to_a_normal_exit() -> None:
    done = _python(
        """
        import threading, time
        from dynashift.cli.main import exit_now

        def work():
            time.sleep(0.2)
            print("work finished", flush=True)

        threading.Thread(target=work).start()
        exit_now(0)
        """
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout == "work finished\n", done.stdout


def test_the_first_execution_runs_the_parse_made_when_the_machine_was_created(
    tmp_path: Path,
) -> None:
    definition = {"StartAt": "Done", "States": {"Done": {"Type": "Succeed"}}}
    path = tmp_path / "done.asl.json"
    path.write_text(json.dumps(definition))
    wf = workflow_input("http://127.0.0.1:9", "parse-src", "parse-tgt")
    with local_stack(wf.spec, definition_path=path) as sfn:
        spares = [len(v) for v in runner._spare_parses.values()]
        assert spares == [1], spares  # the definition's validation parse, kept
        first = sfn.wait(sfn.start_execution({}), timeout=60)
        assert [len(v) for v in runner._spare_parses.values()] == [0]  # taken by the first
        second = sfn.wait(sfn.start_execution({}), timeout=60)  # parses its own
        with pytest.raises(ClientError) as bad:  # a definition moto cannot parse: refused
            sfn.sfn.create_state_machine(
                name="broken", definition='{"StartAt": 1}', roleArn=ROLE_ARN
            )
        assert "ASLParserException" in str(bad.value)  # moto's InvalidDefinition message
    assert (first.status, second.status) == ("SUCCEEDED", "SUCCEEDED")
    assert runner._spare_parses == {}  # the stack's stop drops what is left


def test_the_history_read_in_process_is_the_api_history(tmp_path: Path) -> None:
    definition = {
        "StartAt": "Shape",
        "States": {
            "Shape": {"Type": "Pass", "Parameters": {"n.$": "$.n"}, "Next": "Pause"},
            "Pause": {"Type": "Wait", "Seconds": 0, "Next": "Done"},
            "Done": {"Type": "Succeed"},
        },
    }
    path = tmp_path / "shape.asl.json"
    path.write_text(json.dumps(definition))
    wf = workflow_input("http://127.0.0.1:9", "hist-src", "hist-tgt")

    def essentials(events: list[dict[str, object]]) -> str:
        return json.dumps(events, sort_keys=True, default=lambda t: t.timestamp())

    with local_stack(wf.spec, definition_path=path) as sfn:
        arn = sfn.start_execution({"n": 3})
        assert sfn.wait(arn, timeout=60).status == "SUCCEEDED"
        local = sfn.local_history(arn)
        assert local is not None
        assert essentials(local) == essentials(sfn.history(arn))
        assert essentials(sfn.local_history(arn, 4) or []) == essentials(sfn.history(arn, 4))
        assert {type(e["type"]) for e in local} == {str}
    entered = [e["stateEnteredEventDetails"] for e in local if "stateEnteredEventDetails" in e]
    assert [d["name"] for d in entered] == ["Shape", "Pause", "Done"]  # type: ignore[index]


def test_the_mapping_emulator_wakes_on_a_mapping_change(
    ddb: Any, streams: Any, endpoint: str, table_name: Any
) -> None:
    name = table_name("esm-wake")
    create_table(ddb, name)
    stream_arn = ddb.update_table(
        TableName=name,
        StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"},
    )["TableDescription"]["LatestStreamArn"]
    for i in range(3):
        ddb.put_item(TableName=name, Item={"pk": {"S": f"k{i}"}})
    delivered: list[int] = []

    def invoke(function: str, event: dict[str, Any]) -> tuple[str, bool]:
        delivered.append(len(event["Records"]))
        return "{}", False

    wf = workflow_input(endpoint, name, "esm-wake-tgt")
    with local_stack(wf.spec, streams_for=None) as sfn:  # no emulator of its own
        lam = sfn.client("lambda")
        assert sfn.stack is not None
        replicator = sfn.stack.resources["ReplicatorFunction"]["Arn"]
        emulator = EventSourceMappingEmulator(
            lam,
            invoke,
            lambda arn: streams,
            interval=600,  # its scan timer never fires during the test
            functions=lambda arn: arn == replicator,
        )
        with emulator:
            uuid = lam.create_event_source_mapping(
                EventSourceArn=stream_arn, FunctionName=replicator, StartingPosition="TRIM_HORIZON"
            )["UUID"]
            assert wait_until(lambda: emulator.seen == [uuid], timeout=30), emulator.seen
            assert wait_until(lambda: sum(delivered) == 3, timeout=30), delivered
            lam.delete_event_source_mapping(UUID=uuid)
            assert wait_until(lambda: emulator.deleted == [uuid], timeout=30), emulator.deleted
            assert not emulator.running
