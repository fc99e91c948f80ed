"""`dynashift approve` and `dynashift status` against executions on the moto server."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

import boto3
import pytest

from dynashift.aws import Side
from dynashift.cli.main import main
from dynashift.models import MigrationSpec, TableLocation
from dynashift.readiness import (
    load_approval_token,
    save_approval_token,
    save_report,
    send_approval,
)
from dynashift.state import PHASE_BACKFILL, SegmentState, StateStore, state_table_name
from dynashift.verify import VerifyResult, save_verify_result
from tests.conftest import REGION

DEFINITION = json.dumps({"StartAt": "Wait", "States": {"Wait": {"Type": "Pass", "End": True}}})


@pytest.fixture
def sfn(endpoint: str) -> Any:
    return boto3.client("stepfunctions", region_name=REGION, endpoint_url=endpoint)


@pytest.fixture
def run(sfn: Any, ddb: Any, endpoint: str, table_name: Any) -> tuple[str, MigrationSpec, Any]:
    """A RUNNING execution whose input is a migration, and that migration's state store."""
    side = Side(region=REGION, endpoint_url=endpoint)
    mid = table_name("m")
    spec = MigrationSpec(
        migration_id=mid,
        source=TableLocation(name=f"{mid}-src", side=side),
        target=TableLocation(name=f"{mid}-tgt", side=side),
        state=TableLocation(name=state_table_name(mid), side=side),
        segments=2,
    )
    machine = sfn.create_state_machine(
        name=f"sm-{mid}",
        definition=DEFINITION,
        roleArn="arn:aws:iam::123456789012:role/sfn",
    )["stateMachineArn"]
    arn = sfn.start_execution(
        stateMachineArn=machine,
        name=mid,
        input=json.dumps({"spec": spec.model_dump(mode="json"), "settings": {}}),
    )["executionArn"]
    StateStore.ensure_table(ddb, spec.state.name)
    state = StateStore(ddb, spec.state.name, spec.migration_id)
    return arn, spec, state


def test_send_approval_sends_the_stored_token(sfn: Any, run: Any) -> None:
    _, _, state = run
    sent: list[dict[str, Any]] = []
    sfn.meta.events.register(
        "provide-client-params.sfn.SendTaskSuccess", lambda params, **_: sent.append(dict(params))
    )
    save_approval_token(state, "token-123")
    assert load_approval_token(state) == "token-123"
    assert send_approval(sfn, state, reason="ok") == "token-123"
    assert sent[0]["taskToken"] == "token-123"
    assert json.loads(sent[0]["output"]) == {"approved": True, "reason": "ok"}
    assert load_approval_token(state) is None


def test_approve_command(run: Any, endpoint: str, capsys: Any) -> None:
    arn, spec, state = run
    save_approval_token(state, "token-xyz")
    assert main(["approve", "--execution", arn, "--endpoint-url", endpoint]) == 0
    assert f"approved the cutover of migration {spec.migration_id}" in capsys.readouterr().out
    assert load_approval_token(state) is None
    # Nothing pending any more: exit 2, one line.
    assert main(["approve", "--execution", arn, "--endpoint-url", endpoint]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "is not waiting for approval" in err[0]


def test_approve_bad_input_is_one_line_exit_2(endpoint: str, run: Any) -> None:
    arn, _, _ = run
    cases = [
        (["--execution", "not-an-arn"], "is not a Step Functions execution ARN"),
        ([f"--execution={arn}x-missing"], "does not exist"),
    ]
    for argv, message in cases:
        proc = subprocess.run(
            [
                sys.executable,
                "-m",
                "dynashift.cli.main",
                "approve",
                *argv,
                "--endpoint-url",
                endpoint,
            ],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        lines = proc.stderr.strip().splitlines()
        assert proc.returncode == 2, proc.stderr
        assert len(lines) == 1 and message in lines[0], proc.stderr
        assert "Traceback" not in proc.stderr


def test_status_command(run: Any, endpoint: str, capsys: Any) -> None:
    arn, spec, state = run
    state.put_meta(phase=PHASE_BACKFILL)
    state.save_segment(SegmentState(segment=0, done=True, counters={"written": 10}))
    state.save_segment(SegmentState(segment=1, cursor={"pk": {"S": "x"}}))
    save_verify_result(
        state,
        VerifyResult(
            migration_id=spec.migration_id,
            segment=0,
            total_segments=2,
            mode="merge",
            done=True,
            missing=2,
        ),
    )
    save_approval_token(state, "t")
    assert main(["status", "--execution", arn, "--endpoint-url", endpoint]) == 0
    out = capsys.readouterr().out
    assert "execution   RUNNING (step:" in out or "execution   RUNNING" in out
    assert "phase       BACKFILL" in out
    assert "backfill    1/2 segments done" in out
    assert "verified    1/2 segments" in out
    assert "segment    0: backfill done (written 10); verified, 2 suspects" in out
    assert "segment    1: backfill running; -" in out
    assert "waiting for approval" in out

    save_report(state, _report(spec))
    assert main(["status", "--execution", arn, "--endpoint-url", endpoint, "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["verdict"] == "NOT READY"
    assert [s["backfill_done"] for s in data["segments"]] == [True, False]


def _report(spec: MigrationSpec) -> Any:
    from dynashift.readiness import ReadinessInputs, evaluate

    return evaluate(
        ReadinessInputs(
            migration_id=spec.migration_id, source=spec.source.name, target=spec.target.name
        )
    )
