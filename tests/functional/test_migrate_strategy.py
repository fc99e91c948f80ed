"""`migrate --strategy` and the planned concurrency, from the flags to the execution input and
through the deployed Validate step, on the moto server (read-only: no migration is run)."""

from __future__ import annotations

from typing import Any

from dynashift.cli.main import build_parser, main
from dynashift.cli.migrate_cmd import build_workflow_input
from dynashift.settings import LambdaSettings
from dynashift.state import StateStore
from dynashift.workflow.migrate import execution_input
from dynashift.workflow.steps import state_store, validate_execution_input
from tests.support.tables import create_table, list_tables

ITEMS = 60


def _source(ddb: Any, name: str) -> str:
    create_table(ddb, name)
    for start in range(0, ITEMS, 25):
        rows = [
            {"PutRequest": {"Item": {"pk": {"S": f"k{i:03d}"}, "d": {"S": "x" * 100}}}}
            for i in range(start, min(start + 25, ITEMS))
        ]
        ddb.batch_write_item(RequestItems={name: rows})
    return name


def _env(endpoint: str, state_table: str | None = None, migration_id: str | None = None) -> Any:
    """The Validate function's environment for a stack deployed on the moto server."""
    return LambdaSettings(
        state_table=state_table,
        region="us-east-1",
        sns_topic_arn=None,
        replicator_function=None,
        endpoint_url=endpoint,
        migration_id=migration_id,
        target_endpoint_url=endpoint,
    )


def _argv(source: str, target: str, endpoint: str, *more: str) -> list[str]:
    return ["migrate", "--source", source, "--target", target, "--endpoint-url", endpoint, *more]


def test_strategy_replay_reaches_the_execution_input_and_validate(
    ddb: Any, endpoint: str, table_name: Any
) -> None:
    source = _source(ddb, table_name("st-src"))
    target = table_name("st-dst")
    before = list_tables(ddb)
    args = build_parser().parse_args(_argv(source, target, endpoint, "--strategy", "replay"))
    workflow, planned = build_workflow_input(args)
    data = execution_input(workflow)
    assert data["spec"]["strategy"] == "replay"
    # the run's planned concurrency travels with it (a local emulator on this machine)
    assert data["spec"]["segments"] == planned.segments >= 4
    assert data["settings"]["max_concurrency"] == planned.workers
    assert data["settings"]["max_in_flight"] == planned.in_flight
    # the deployed Validate step keeps all of it (it plans only what an input leaves out)
    normalised = validate_execution_input({"input": data}, _env(endpoint))["input"]
    assert normalised["spec"]["strategy"] == "replay"
    assert normalised["spec"]["segments"] == planned.segments
    assert normalised["settings"]["max_concurrency"] == planned.workers
    assert normalised["settings"]["max_in_flight"] == planned.in_flight
    assert list_tables(ddb) == before  # read-only so far
    # without the flag: the default is concurrent
    default, _ = build_workflow_input(build_parser().parse_args(_argv(source, target, endpoint)))
    assert default.spec.strategy == "concurrent"


def test_bad_strategy_exits_2_one_line_and_creates_nothing(
    ddb: Any, endpoint: str, table_name: Any, capsys: Any
) -> None:
    source = _source(ddb, table_name("st-src"))
    target = table_name("st-dst")
    before = list_tables(ddb)
    try:
        code = main(_argv(source, target, endpoint, "--strategy", "bogus", "--yes"))
    except SystemExit as exc:
        code = int(exc.code or 0)
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert len(err) == 1 and "--strategy" in err[0] and "bogus" in err[0], err
    assert list_tables(ddb) == before


def test_replay_too_slow_for_the_stream_window_is_refused_before_anything(
    ddb: Any, endpoint: str, table_name: Any, capsys: Any
) -> None:
    source = _source(ddb, table_name("st-src"))
    target = table_name("st-dst")
    before = list_tables(ddb)
    # 60 items at 0.001 items/s: 60,000 s, more than half the 24 h retention
    argv = _argv(source, target, endpoint, "--strategy", "replay", "--max-write-rate", "0.001")
    code = main([*argv, "--yes"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert len(err) == 1 and "--strategy replay" in err[0] and "16.7 h" in err[0], err
    assert list_tables(ddb) == before
    assert not ddb.describe_table(TableName=source)["Table"].get("LatestStreamArn")


def test_validate_plans_what_the_input_leaves_out(
    ddb: Any, endpoint: str, table_name: Any, monkeypatch: Any
) -> None:
    monkeypatch.setattr("os.cpu_count", lambda: 2)
    source = _source(ddb, table_name("st-src"))
    state_table = table_name("st-state")
    env = _env(endpoint, state_table=state_table, migration_id="m-plan")
    side = {"endpoint_url": endpoint, "region": "us-east-1"}
    raw: dict[str, Any] = {
        "spec": {
            "source": {"name": source, "side": side},
            "target": {"name": "st-new", "side": side},
        }
    }
    planned = validate_execution_input({"input": raw}, env)["input"]
    # a target on this machine's loopback (moto under the local runner), 2 CPUs: 2 workers,
    # max(2 x 2, 4) = 4 segments, the emulator's 16 requests in flight shared: 8 each
    assert planned["spec"]["segments"] == 4
    assert planned["settings"]["max_concurrency"] == 2
    assert planned["settings"]["max_in_flight"] == 8
    # given values win; the others are planned with them: 3 workers -> max(2 x 3, 4) = 6
    # segments, ceil(16 / 3) = 6 in flight
    given = {**raw, "settings": {"max_concurrency": 3}}
    planned = validate_execution_input({"input": given}, env)["input"]
    assert planned["settings"]["max_concurrency"] == 3
    assert planned["spec"]["segments"] == 6 and planned["settings"]["max_in_flight"] == 6
    # a resumed migration keeps its recorded segment count, and never gets more workers
    StateStore.ensure_table(ddb, state_table)
    spec = validate_execution_input({"input": raw}, env)["input"]["spec"]
    from dynashift.models import MigrationSpec

    state_store(MigrationSpec.model_validate(spec)).put_meta(segments=1)
    resumed = validate_execution_input({"input": raw}, env)["input"]
    assert resumed["spec"]["segments"] == 1
    assert resumed["settings"]["max_concurrency"] == 1
    assert resumed["settings"]["max_in_flight"] == 16


def test_more_workers_than_an_inline_map_runs_make_the_maps_distributed(
    ddb: Any, endpoint: str, table_name: Any
) -> None:
    from dynashift.aws import Side
    from dynashift.models import MigrationSpec, TableLocation
    from dynashift.workflow.steps import StepEvent, WorkflowSettings, plan_segments

    side = Side(region="us-east-1", endpoint_url=endpoint)
    source = _source(ddb, table_name("st-src"))
    state = TableLocation(name=table_name("st-state"), side=side)
    StateStore.ensure_table(ddb, state.name)
    spec = MigrationSpec(
        migration_id="m-wide",
        source=TableLocation(name=source, side=side),
        target=TableLocation(name=table_name("st-dst"), side=side),
        state=state,
        segments=128,
    )
    # 60 items: the history estimate alone keeps the Maps inline; 64 workers (a 40,000 WCU
    # target's plan) need more than the inline Map's 40 concurrent iterations
    inline = plan_segments(StepEvent(spec=spec, settings=WorkflowSettings(max_concurrency=40)))
    wide = plan_segments(StepEvent(spec=spec, settings=WorkflowSettings(max_concurrency=64)))
    assert inline.distributed is False and wide.distributed is True
