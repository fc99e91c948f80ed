"""The export strategy (issue 16 item 1): the whole state machine on the local runner, the
backfill loaded from an export of the source to S3 while writers change the source.

The source side of the run goes through a recording proxy (`SourceReads`): every request of
every sandboxed function to the source passes it, so it sees each Scan / Query / GetItem /
BatchGetItem that names the SOURCE table, with the time it was made. The backfill phase is from
"Export source" to "Finish backfill (remove tombstones)" (the states' entry times, seen by the
runner's `on_state`): the export strategy reads nothing of the source there, while the
verification after it does (so the recorder sees reads). In-process, the read meter's botocore
hooks (`tests/support/read_meter.py`) sum ConsumedCapacity: zero for the export steps, not for
the scan backfill. The comparison at the end is the independent one
(`tests/support/reference.py`).
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from dynashift.export_backfill import file_progress
from dynashift.workflow.migrate import MigrationRunner
from dynashift.workflow.steps import WorkflowInput, state_store
from tests.support.cli import run_cli
from tests.support.export import enable_pitr, make_bucket
from tests.support.fault_proxy import FaultProxy
from tests.support.read_meter import ReadMeter
from tests.support.reference import assert_identical, nothing_written
from tests.support.tables import client, create_table, fill, varied_items
from tests.support.workflow import workflow_input
from tests.support.writer import ConcurrentWriter

#: Reads that consume a table's read capacity.
SOURCE_READS = ("Scan", "Query", "GetItem", "BatchGetItem")
ITEMS = 250  # several data files of the emulator's export (100 items a file)
BACKFILL_START, BACKFILL_END = "Export source", "Finish backfill (remove tombstones)"


class SourceReads:
    """Requests that read `table`, recorded on the wire as (monotonic time, operation)."""

    def __init__(self, table: str) -> None:
        self.table = table
        self.calls: list[tuple[float, str]] = []
        self._lock = threading.Lock()

    def __call__(self, op: str, body: bytes) -> None:
        if op not in SOURCE_READS:
            return
        request = json.loads(body or b"{}")
        tables = set(request.get("RequestItems", {})) | {request.get("TableName")}
        if self.table in tables:
            with self._lock:
                self.calls.append((time.monotonic(), op))

    def between(self, start: float, end: float) -> list[str]:
        with self._lock:
            return [op for at, op in self.calls if start <= at < end]


@contextmanager
def recorded(endpoint: str, table: str) -> Iterator[tuple[FaultProxy, SourceReads]]:
    reads = SourceReads(table)
    with FaultProxy(endpoint) as proxy:
        proxy.before_forward = reads
        yield proxy, reads


def _export_input(
    url: str, source: str, target: str, bucket: str, *, source_url: str | None = None, **spec: Any
) -> WorkflowInput:
    """The export strategy's input; `source_url`: the source (and its S3) reached there."""
    wf = workflow_input(url, source, target, segments=2, cutover=True, export_poll_seconds=0)
    fields = {"strategy": "export", "export": {"bucket": bucket, "prefix": "dynashift/run"}}
    data = wf.spec.model_dump() | fields | spec
    if source_url:
        data["source"]["side"]["endpoint_url"] = source_url
    return wf.model_copy(update={"spec": type(wf.spec).model_validate(data)})


def test_export_strategy_under_concurrent_writes_is_ready_identical_and_reads_no_source(
    ddb: Any, endpoint: str, table_name: Any
) -> None:
    source, target = table_name("ex-src"), table_name("ex-tgt")
    create_table(ddb, source)
    fill(ddb, source, varied_items(ITEMS, seed=16))
    enable_pitr(ddb, source)
    bucket = make_bucket(client(endpoint, "s3"))
    writer = ConcurrentWriter(
        ddb,
        source,
        ("pk",),
        seed=16,
        rate_per_s=30,
        key_space=ITEMS + ITEMS // 5,
        operations=("put", "update", "delete", "recreate"),
        max_seconds=120,
        max_ops=20_000,
    )
    marks: dict[str, float] = {}

    def on_state(state: str) -> None:
        marks.setdefault(state, time.monotonic())
        if state == "Check replication lag":
            writer.stop()

    with recorded(endpoint, source) as (proxy, reads):
        # 1.5 s budgets and a write cap: each file's loader hands back its cursor and resumes.
        wf = _export_input(
            endpoint,
            source,
            target,
            bucket,
            source_url=proxy.url,  # the target and the state store are reached directly
            worker_budget_seconds=1.5,
            max_write_rate=60.0,
        )
        with writer:
            assert writer.wait_for(10, timeout=20)
            run = MigrationRunner(wf, on_state=on_state, drain_timeout=120).run()
    assert run.exit_code == 0, (run.summary, run.report)
    assert run.summary == "READY"
    for state in (BACKFILL_START, "Check export time", "List export files", "Load export file"):
        assert state in marks, (state, sorted(marks))
    assert "Copy segment" not in marks and "Start replicator (replay strategy)" not in marks
    assert marks["Verify segment"] > marks[BACKFILL_END]
    # Writes landed while the export was loaded (the replicator ran throughout).
    during = [op for op in writer.ops if op.ok and op.started < marks[BACKFILL_END]]
    assert len(during) >= 20, writer.summary()
    assert writer.failures.total() == 0, writer.summary()
    state = state_store(wf.spec)
    meta = state.get_meta() or {}
    assert meta["export_files"] >= 2
    # Each file's cursor is in the state store, done; short budgets made loaders resume (I8).
    files = [file_progress(state, f) for f in range(meta["export_files"])]
    assert all(f["done"] for f in files), files
    assert sum(f["counters"]["invocations"] for f in files) > len(files), files
    assert sum(f["counters"]["scanned"] for f in files) == meta["export_items"]
    # No source read capacity during the backfill: not one read of the source table.
    assert reads.between(marks[BACKFILL_START], marks[BACKFILL_END]) == []
    # ... while the verification that follows does read it (the recorder sees source reads).
    assert reads.between(marks[BACKFILL_END], marks["Check replication lag"])
    assert_identical(ddb, source, ddb, target, ("pk",))


def test_export_strategy_without_pitr_is_refused_with_exit_2_and_nothing_created(
    ddb: Any, endpoint: str, table_name: Any, capsys: Any
) -> None:
    source, target = table_name("ex-nop"), table_name("ex-nopt")
    create_table(ddb, source)
    fill(ddb, source, varied_items(5, seed=1))
    bucket = make_bucket(client(endpoint, "s3"))
    argv = [
        "migrate",
        *("--source", f"us-east-1:{source}", "--target", f"us-east-1:{target}"),
        *("--endpoint-url", endpoint, "--yes", "--strategy", "export"),
        *("--export-bucket", bucket),
    ]
    with nothing_written(ddb, [source]):
        code, err = run_cli(argv, capsys)
    assert code == 2 and len(err) == 1, err
    assert "point-in-time recovery is off" in err[0] and "never turns it on" in err[0]
    desc = ddb.describe_continuous_backups(TableName=source)["ContinuousBackupsDescription"]
    assert desc["PointInTimeRecoveryDescription"]["PointInTimeRecoveryStatus"] == "DISABLED"


def test_export_strategy_with_a_missing_bucket_is_refused_with_exit_2_and_nothing_created(
    ddb: Any, endpoint: str, table_name: Any, capsys: Any
) -> None:
    source, target = table_name("ex-nob"), table_name("ex-nobt")
    create_table(ddb, source)
    enable_pitr(ddb, source)
    argv = [
        "migrate",
        *("--source", f"us-east-1:{source}", "--target", f"us-east-1:{target}"),
        *("--endpoint-url", endpoint, "--yes", "--strategy", "export"),
        *("--export-bucket", "no-such-bucket-for-dynashift"),
    ]
    with nothing_written(ddb, [source]):
        code, err = run_cli(argv, capsys)
    assert code == 2 and len(err) == 1, err
    assert "spec.export.bucket" in err[0] and "does not exist" in err[0]


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--strategy", "export"], "--export-bucket: required with --strategy export"),
        (["--export-bucket", "some-bucket"], "--export-bucket: only with --strategy export"),
        (["--strategy", "export", "--export-bucket", "Bad_Bucket"], "--export-bucket: "),
        (
            ["--strategy", "export", "--export-bucket", "b-1", "--export-bucket-owner", "12"],
            "--export-bucket-owner: ",
        ),
    ],
)
def test_export_flags_are_checked_before_anything_is_read(
    flags: list[str], message: str, capsys: Any
) -> None:
    argv = ["migrate", "--source", "us-east-1:aaa", "--target", "us-east-1:bbb", "--yes", *flags]
    argv += ["--endpoint-url", "http://127.0.0.1:9"]  # nothing listens: nothing may be called
    code, err = run_cli(argv, capsys)
    assert code == 2 and len(err) == 1 and message in err[0], err


def test_the_export_load_consumes_no_source_read_capacity_where_the_scan_backfill_does(
    ddb: Any, endpoint: str, table_name: Any
) -> None:
    """In-process, with the read meter's botocore hooks on the source's client (every read of
    the source asks for ReturnConsumedCapacity): the export strategy's steps — start, poll,
    list, load every file — read nothing of the source; the scan backfill of the same table
    does (so the meter can see reads)."""
    from dynashift.backfill import backfill_all
    from dynashift.export_backfill import list_files, load_file, poll, start
    from dynashift.state import StateStore

    source = table_name("ex-cap")
    create_table(ddb, source)
    fill(ddb, source, varied_items(150, seed=4))
    enable_pitr(ddb, source)
    s3 = client(endpoint, "s3")
    bucket = make_bucket(s3)
    source_client = client(endpoint)
    meter = ReadMeter(source_client, source).attach()

    def spec_for(target: str, *, export: bool = False) -> Any:
        if export:
            spec = _export_input(endpoint, source, target, bucket).spec
        else:
            spec = workflow_input(endpoint, source, target, segments=2).spec
        StateStore.ensure_table(ddb, spec.state.name)
        return spec, StateStore(ddb, spec.state.name, spec.migration_id)

    target = create_table(ddb, table_name("ex-capt"))
    spec, state = spec_for(target, export=True)
    with meter.during():
        status = start(spec, state, source_client)
        for _ in range(200):
            if status["done"]:
                break
            time.sleep(0.05)
            status = poll(spec, state, source_client)
        files = list_files(spec, state, source_client, s3, max_concurrency=2, threshold=10_000)
        for file in files["files"]:
            while not load_file(spec, file, state=state, s3=s3, target_client=ddb)["done"]:
                pass
    assert files["count"] == 2 and not files["distributed"]
    # The load Map runs distributed when the loaders' turns would crowd the history.
    assert list_files(spec, state, source_client, s3, max_concurrency=2, threshold=1)["distributed"]
    assert meter.calls == {} and meter.units == 0
    assert_identical(ddb, source, ddb, target, ("pk",))

    scanned = create_table(ddb, table_name("ex-caps"))
    spec, state = spec_for(scanned)
    with meter.during():
        backfill_all(spec, state=state, source_client=source_client, target_client=ddb)
    assert meter.calls["Scan"] >= 2 and meter.units > 0, (meter.calls, meter.units)
    assert_identical(ddb, source, ddb, scanned, ("pk",))


def test_an_export_older_than_the_stream_fails_the_check_export_time_step(
    ddb: Any, endpoint: str, table_name: Any
) -> None:
    """I2: the export's point in time must follow the enabling of the stream the replicator
    reads; "Check export time" fails otherwise (and passes for the real order)."""
    from dynashift.errors import RuntimeFailure
    from dynashift.export_backfill import check_time, poll, start
    from dynashift.state import StateStore

    source = table_name("ex-time")
    create_table(ddb, source)
    fill(ddb, source, varied_items(3, seed=2))
    enable_pitr(ddb, source)
    bucket = make_bucket(client(endpoint, "s3"))
    spec = _export_input(endpoint, source, table_name("ex-timet"), bucket).spec
    StateStore.ensure_table(ddb, spec.state.name)
    state = StateStore(ddb, spec.state.name, spec.migration_id)
    table_arn = ddb.describe_table(TableName=source)["Table"]["TableArn"]
    state.put_meta(stream_arn=f"{table_arn}/stream/2000-01-01T00:00:00.000")
    status = start(spec, state, ddb)
    for _ in range(200):
        if status["done"]:
            break
        time.sleep(0.05)
        status = poll(spec, state, ddb)
    assert check_time(spec, state, ddb)["stream_enabled"].startswith("2000-01-01")
    state.put_meta(stream_arn=f"{table_arn}/stream/2999-01-01T00:00:00.000")
    with pytest.raises(RuntimeFailure, match="before the stream was enabled"):
        check_time(spec, state, ddb)


@pytest.mark.parametrize(
    ("stack", "export", "message"),
    [
        ({}, {"bucket": "b-one"}, "spec.export.bucket: this stack was deployed without"),
        ({"export_bucket": "b-one"}, {"bucket": "b-two"}, "spec.export.bucket: 'b-two' is not"),
        (
            {"export_bucket": "b-one", "export_prefix": "runs/a"},
            {"bucket": "b-one", "prefix": "runs/b"},
            "spec.export.prefix: 'runs/b' is not under this stack's 'runs/a'",
        ),
    ],
)
def test_validate_refuses_an_export_the_stack_may_not_write_before_reading_anything(
    stack: dict[str, str], export: dict[str, str], message: str
) -> None:
    from dynashift.errors import BadInputError
    from dynashift.settings import LambdaSettings
    from dynashift.workflow.steps import validate_execution_input

    env = LambdaSettings(
        state_table="dynashift-state",
        region="us-east-1",
        sns_topic_arn=None,
        replicator_function=None,
        endpoint_url="http://127.0.0.1:9",  # nothing listens: nothing may be called
        migration_id="orders-v2",
        **stack,
    )
    spec = {"source": {"name": "orders"}, "target": {"name": "orders-v2"}}
    raw = {"spec": spec | {"strategy": "export", "export": export}}
    with pytest.raises(BadInputError, match=re.escape(message)):
        validate_execution_input({"input": raw}, env)
