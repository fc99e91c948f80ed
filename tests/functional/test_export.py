"""The export engine (`dynashift.export`) against the moto server's AWS-layout exports: start
(idempotent), wait, manifests, streaming reads, the resumable loader on the backfill's
conditional puts (I4/I5/I8), and the refusals."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from dynashift.backfill import ConditionalWriter, Counters
from dynashift.errors import BadInputError, RuntimeFailure, TableNotFoundError, pitr_off_refusal
from dynashift.export import (
    ExportRequest,
    check_export_after_stream,
    data_prefix,
    describe_export,
    iter_items,
    load_file,
    pitr_enabled,
    read_manifest,
    start_export,
    stream_label_time,
    wait_export,
)
from dynashift.ratelimit import RateLimiter
from dynashift.state import PHASE_BACKFILL
from dynashift.tombstones import finish_backfill
from tests.support.backfill import StreamApplier, delete_and_change_in_flight, make_spec, make_state
from tests.support.clock import ManualClock
from tests.support.export import account_client, enable_pitr, make_bucket, plain
from tests.support.reference import assert_identical, scan_all
from tests.support.tables import (
    HASH_RANGE,
    client,
    create_table,
    enable_stream,
    fill,
    simple_items,
    varied_items,
)
from tests.support.writer import ConcurrentWriter


@pytest.fixture(scope="module")
def s3(endpoint: str) -> Any:
    return client(endpoint, "s3")


def token() -> str:
    return f"mig-{uuid.uuid4().hex[:12]}"


def exported(ddb: Any, s3: Any, table: str, prefix: str = "runs/one") -> Any:
    """Export `table` (PITR turned on here) with the engine and read its manifest."""
    arn = enable_pitr(ddb, table)
    bucket = make_bucket(s3)
    export_arn = start_export(
        ddb, arn, ExportRequest(bucket=bucket, prefix=prefix), client_token=token()
    )
    status = wait_export(ddb, export_arn, timeout=30, poll_seconds=0.05)
    assert status.manifest_key is not None
    return read_manifest(s3, bucket, status.manifest_key)


class _TickPerRead(ManualClock):
    """Monotonic time 0, 1, 2, ...: one tick per reading."""

    def monotonic(self) -> float:
        now = self.now
        self.advance(1.0)
        return now


def writer_for(ddb: Any, table: str, keys: tuple[str, ...], **kwargs: Any) -> ConditionalWriter:
    return ConditionalWriter(ddb, table, keys, Counters(), overwrite_older=False, **kwargs)


def test_start_is_idempotent_and_the_manifest_lists_every_item(
    ddb: Any, s3: Any, table_name: Any
) -> None:
    src = create_table(ddb, table_name("ex"))
    fill(ddb, src, varied_items(210))  # every attribute type, binary included
    arn = enable_pitr(ddb, src)
    assert pitr_enabled(ddb, src)
    bucket = make_bucket(s3)
    request = ExportRequest(bucket=bucket, prefix="runs/2026/")
    tok = token()
    first = start_export(ddb, arn, request, client_token=tok)
    assert start_export(ddb, arn, request, client_token=tok) == first  # a retried step
    assert len(ddb.list_exports(TableArn=arn)["ExportSummaries"]) == 1
    status = wait_export(ddb, first, timeout=30, poll_seconds=0.05)
    assert status.done and status.item_count == 210 and status.export_time is not None
    assert describe_export(ddb, first) == status

    manifest = read_manifest(s3, bucket, str(status.manifest_key))
    assert (manifest.export_arn, manifest.item_count) == (first, 210)
    assert manifest.export_time == status.export_time
    assert len(manifest.data_files) == 3
    assert sum(f.item_count for f in manifest.data_files) == 210
    prefix = data_prefix(manifest)
    assert prefix.startswith("runs/2026/AWSDynamoDB/") and prefix.endswith("/data/")
    assert all(f.key.startswith(prefix) for f in manifest.data_files)
    read = [item for f in manifest.data_files for _, item in iter_items(s3, bucket, f)]
    by_key = {i["pk"]["S"]: plain(i) for i in read}
    assert len(by_key) == 210
    assert by_key == {i["pk"]["S"]: plain(i) for i in scan_all(ddb, src)}


def test_iter_items_starts_at_a_line(ddb: Any, s3: Any, table_name: Any) -> None:
    src = create_table(ddb, table_name("ex-l"))
    fill(ddb, src, simple_items(60))
    manifest = exported(ddb, s3, src)
    (data_file,) = manifest.data_files
    whole = list(iter_items(s3, manifest.bucket, data_file))
    assert [n for n, _ in whole] == list(range(60))
    assert list(iter_items(s3, manifest.bucket, data_file.key, start_line=45)) == whole[45:]


def test_a_load_stopped_mid_file_resumes_from_its_line_and_writes_nothing_twice(
    ddb: Any, s3: Any, table_name: Any
) -> None:
    src, dst = create_table(ddb, table_name("ex-r")), create_table(ddb, table_name("ex-rd"))
    fill(ddb, src, simple_items(90))
    manifest = exported(ddb, s3, src)
    (data_file,) = manifest.data_files
    ticks = _TickPerRead()  # one tick per clock reading: the budget ends mid-file
    with writer_for(ddb, dst, ("pk",), max_in_flight=1, clock=ticks) as first:
        stopped = load_file(s3, first, manifest.bucket, data_file, stop_at=40, batch_size=16)
    assert not stopped.done and 0 < stopped.line < 90
    assert stopped.counters["written"] == stopped.line == stopped.counters["scanned"]
    assert len(scan_all(ddb, dst)) == stopped.line

    with writer_for(ddb, dst, ("pk",)) as second:
        finished = load_file(s3, second, manifest.bucket, data_file, stopped.line)
    assert finished.done and finished.line == 90
    assert finished.counters["written"] == 90 - stopped.line
    assert finished.counters["skipped_newer"] == 0  # nothing written twice
    assert_identical(ddb, src, ddb, dst, ("pk",))

    with writer_for(ddb, dst, ("pk",)) as again:  # a whole re-run changes nothing
        rerun = load_file(s3, again, manifest.bucket, data_file)
    assert (rerun.counters["written"], rerun.counters["skipped_newer"]) == (0, 90)


def test_a_load_stops_when_told_to_before_a_batch(ddb: Any, s3: Any, table_name: Any) -> None:
    """`keep_going` (a straggler's phase check) is asked before each batch."""
    src, dst = create_table(ddb, table_name("ex-k")), create_table(ddb, table_name("ex-kd"))
    fill(ddb, src, simple_items(30))
    manifest = exported(ddb, s3, src)
    answers = iter([True, False])  # before the first batch, before the second
    with writer_for(ddb, dst, ("pk",)) as writer:
        progress = load_file(
            s3,
            writer,
            manifest.bucket,
            manifest.data_files[0],
            batch_size=10,
            keep_going=lambda: next(answers),
        )
    assert (progress.done, progress.line, progress.counters["written"]) == (False, 10, 10)
    assert len(scan_all(ddb, dst)) == 10


def test_a_delete_and_an_update_during_the_load_win_over_the_export(
    endpoint: str, ddb: Any, s3: Any, table_name: Any
) -> None:
    """I4/I5 on the export path: the export holds k7 and k9; while the load runs, k7 is deleted
    (the replicator writes a tombstone) and k9 changed (the replicator writes it): the load's
    puts of both fail, and after the tombstones are removed the target equals the source."""
    src, dst = create_table(ddb, table_name("ex-d")), create_table(ddb, table_name("ex-dd"))
    fill(ddb, src, simple_items(30))
    enable_stream(ddb, src)
    manifest = exported(ddb, s3, src)
    state = make_state(ddb, make_spec(endpoint, src, dst, token(), segments=1))
    state.put_meta(phase=PHASE_BACKFILL)
    applier = StreamApplier(endpoint, src, dst, state)
    applier.poll()

    target = client(endpoint)
    fired = delete_and_change_in_flight(ddb, src, applier, target)
    with writer_for(target, dst, ("pk",)) as writer:
        progress = load_file(s3, writer, manifest.bucket, manifest.data_files[0])
    assert fired == ([1], [1]) and progress.done
    assert (progress.counters["tombstones_honoured"], progress.counters["skipped_newer"]) == (1, 1)
    assert progress.counters["written"] == 28
    finish_backfill(ddb, dst, state)
    assert_identical(ddb, src, ddb, dst, ("pk",))


def test_export_and_load_under_concurrent_writes_converge(
    endpoint: str, ddb: Any, s3: Any, table_name: Any
) -> None:
    """A writer changes, deletes and re-creates source items during the export and the load; a
    stream stand-in started before the export applies the changes: after it catches up and the
    tombstones are removed, the target equals the source."""
    src = create_table(ddb, table_name("ex-c"), HASH_RANGE)
    dst = create_table(ddb, table_name("ex-cd"), HASH_RANGE)
    seed = ConcurrentWriter(ddb, src, ("pk", "sk"), seed=1, key_space=300)
    fill(ddb, src, ({**seed.key_for(i), "v": {"N": str(i)}} for i in range(300)))
    arn = enable_pitr(ddb, src)
    enable_stream(ddb, src)
    enabled_at = stream_label_time(ddb.describe_table(TableName=src)["Table"]["LatestStreamLabel"])
    state = make_state(ddb, make_spec(endpoint, src, dst, token(), segments=1))
    state.put_meta(phase=PHASE_BACKFILL)  # before the replicator starts: deletes -> tombstones
    applier = StreamApplier(endpoint, src, dst, state).start()
    bucket = make_bucket(s3)
    writer = ConcurrentWriter(
        client(endpoint), src, ("pk", "sk"), seed=11, rate_per_s=150, key_space=300, max_seconds=30
    )
    counters = Counters()
    with writer:
        assert writer.wait_for(20, timeout=10)
        export_arn = start_export(ddb, arn, ExportRequest(bucket=bucket), client_token=token())
        status = wait_export(ddb, export_arn, timeout=30, poll_seconds=0.05)
        assert status.export_time is not None
        check_export_after_stream(status.export_time, enabled_at)
        manifest = read_manifest(s3, bucket, str(status.manifest_key))
        assert len(manifest.data_files) >= 3
        target = client(endpoint)
        with ConditionalWriter(
            target, dst, ("pk", "sk"), counters, limiter=RateLimiter(300), overwrite_older=False
        ) as puts:
            for data_file in manifest.data_files:
                assert load_file(s3, puts, bucket, data_file).done
    applier.stop()
    applier.poll()
    totals = counters.snapshot()
    assert writer.counts["delete"] + writer.counts["recreate"] > 0
    assert totals["scanned"] == manifest.item_count
    assert (
        totals["written"] + totals["skipped_newer"] + totals["tombstones_honoured"]
        == (totals["scanned"])
    )
    finish_backfill(ddb, dst, state)
    applier.poll()
    assert_identical(ddb, src, ddb, dst, ("pk", "sk"))
    assert list(state.tombstones()) == []


@pytest.mark.parametrize(
    ("fields", "named"),
    [
        ({"bucket": "Bad_Bucket"}, "bucket"),
        ({"bucket": "ab"}, "bucket"),
        ({"bucket": "192.168.1.2"}, "bucket"),
        ({"bucket": "ok-bucket", "prefix": "/abs"}, "prefix"),
        ({"bucket": "ok-bucket", "prefix": "a//b"}, "prefix"),
        ({"bucket": "ok-bucket", "prefix": "x" * 1025}, "prefix"),
        ({"bucket": "ok-bucket", "bucket_owner": "12345"}, "bucket_owner"),
        ({"bucket": "ok-bucket", "kms_key_id": ""}, "kms_key_id"),
    ],
)
def test_a_bad_destination_is_bad_input_naming_the_field(fields: Any, named: str) -> None:
    with pytest.raises(BadInputError) as exc:
        ExportRequest(**fields)
    assert str(exc.value).startswith(f"{named}:")
    assert "\n" not in str(exc.value)


def test_the_destination_parameters(ddb: Any) -> None:
    request = ExportRequest(
        bucket="target-acct-bucket", prefix="p/", bucket_owner="111122223333", kms_key_id="k-1"
    )
    assert request.api_kwargs() == {
        "S3Bucket": "target-acct-bucket",
        "S3Prefix": "p",
        "S3BucketOwner": "111122223333",
        "S3SseAlgorithm": "KMS",
        "S3SseKmsKeyId": "k-1",
    }


def test_an_export_to_another_account_s_bucket_with_a_kms_key(
    endpoint: str, ddb: Any, table_name: Any
) -> None:
    """The bucket belongs to the target's account: S3BucketOwner finds it there, and the
    export's objects are SSE-KMS with the given key (as far as moto's S3 records it)."""
    other = account_client(endpoint, "111122223333")
    bucket = make_bucket(other, "target-side")
    src = create_table(ddb, table_name("ex-x"))
    fill(ddb, src, simple_items(12))
    arn = enable_pitr(ddb, src)
    key = "arn:aws:kms:us-east-1:111122223333:key/made-up"
    request = ExportRequest(bucket=bucket, prefix="x", bucket_owner="111122223333", kms_key_id=key)
    export_arn = start_export(ddb, arn, request, client_token=token())
    status = wait_export(ddb, export_arn, timeout=30, poll_seconds=0.05)
    manifest = read_manifest(other, bucket, str(status.manifest_key))
    (data_file,) = manifest.data_files
    head = other.head_object(Bucket=bucket, Key=data_file.key)
    assert (head["ServerSideEncryption"], head["SSEKMSKeyId"]) == ("aws:kms", key)
    assert len(list(iter_items(other, bucket, data_file))) == 12


def test_refusals_start_nothing(ddb: Any, s3: Any, table_name: Any) -> None:
    src = create_table(ddb, table_name("ex-n"))
    arn = str(ddb.describe_table(TableName=src)["Table"]["TableArn"])
    request = ExportRequest(bucket=make_bucket(s3))
    assert not pitr_enabled(ddb, src)
    with pytest.raises(BadInputError) as refused:
        start_export(ddb, arn, request, client_token=token())
    assert str(refused.value) == f"source: {pitr_off_refusal(src)}"
    with pytest.raises(BadInputError, match="client_token"):
        start_export(ddb, arn, request, client_token="a$b")
    enable_pitr(ddb, src)
    with pytest.raises(BadInputError, match="export_time"):  # before PITR was enabled
        start_export(ddb, arn, request, client_token=token(), export_time=1_000_000_000.0)
    tok = token()
    start_export(ddb, arn, request, client_token=tok)
    with pytest.raises(BadInputError, match="client_token"):  # same token, other parameters
        start_export(ddb, arn, ExportRequest(bucket=request.bucket, prefix="x"), client_token=tok)
    assert len(ddb.list_exports(TableArn=arn)["ExportSummaries"]) == 1
    with pytest.raises(TableNotFoundError):
        pitr_enabled(ddb, table_name("ex-missing"))


def test_a_failed_export_is_a_runtime_failure_with_aws_reason(ddb: Any, table_name: Any) -> None:
    src = create_table(ddb, table_name("ex-f"))
    arn = enable_pitr(ddb, src)
    export_arn = start_export(
        ddb, arn, ExportRequest(bucket="no-such-bucket-0"), client_token=token()
    )
    with pytest.raises(RuntimeFailure, match="S3NoSuchBucket"):
        wait_export(ddb, export_arn, timeout=30, poll_seconds=0.05)


def test_waiting_gives_up_after_its_timeout(ddb: Any, table_name: Any) -> None:
    class Pending:
        def describe_export(self, **_: Any) -> Any:
            return {"ExportDescription": {"ExportArn": "arn", "ExportStatus": "IN_PROGRESS"}}

    clock = ManualClock()
    with pytest.raises(RuntimeFailure, match="did not finish within 60 s"):
        wait_export(Pending(), "arn", timeout=60, poll_seconds=10, clock=clock)
    assert sum(clock.sleeps) == 60


def test_an_export_without_aws_manifest_is_a_runtime_failure() -> None:
    """What plain moto answers (no ExportManifest, no ExportTime): refused by name, not a
    KeyError later in the loader."""

    class PlainMoto:
        def describe_export(self, **_: Any) -> Any:
            return {"ExportDescription": {"ExportArn": "arn", "ExportStatus": "COMPLETED"}}

    with pytest.raises(RuntimeFailure, match="does not export like AWS"):
        wait_export(PlainMoto(), "arn", timeout=1, poll_seconds=1, clock=ManualClock())


def test_the_export_time_must_not_precede_the_stream() -> None:
    enabled_at = stream_label_time("2026-12-03T01:00:00.000000")
    check_export_after_stream(enabled_at, enabled_at)
    check_export_after_stream(enabled_at + 1, enabled_at)
    with pytest.raises(RuntimeFailure, match="before the stream was enabled"):
        check_export_after_stream(enabled_at - 0.5, enabled_at)
