"""The emulator's exports (`dynashift.emulator.aws_export_layout`) in AWS's documented layout,
read back without dynashift's reader, and safe under concurrent writes."""

from __future__ import annotations

import datetime as dt
import time
from typing import Any

import pytest
from botocore.exceptions import ClientError

from dynashift.emulator import EXPORT_ITEMS_PER_FILE
from tests.support.export import (
    enable_pitr,
    exported_plain,
    make_bucket,
    plain,
    read_export_independently,
    wait_described,
)
from tests.support.reference import scan_all
from tests.support.tables import HASH_RANGE, client, create_table, fill, varied_items
from tests.support.writer import ConcurrentWriter

#: manifest-summary.json's fields (DynamoDB developer guide, "DynamoDB table export output
#: format").
SUMMARY_FIELDS = {
    "version",
    "exportArn",
    "startTime",
    "endTime",
    "tableArn",
    "tableId",
    "exportTime",
    "s3Bucket",
    "s3Prefix",
    "s3SseAlgorithm",
    "s3SseKmsKeyId",
    "manifestFilesS3Key",
    "billedSizeBytes",
    "itemCount",
    "outputFormat",
    "exportType",
}


@pytest.fixture(scope="module")
def s3(endpoint: str) -> Any:
    return client(endpoint, "s3")


def keyed(items: list[dict[str, Any]], keys: tuple[str, ...]) -> dict[tuple[Any, ...], Any]:
    """Items by their (string) key values."""
    return {tuple(item[k]["S"] for k in keys): item for item in items}


def test_an_export_is_written_in_aws_layout_and_reads_back_equal_to_the_table(
    ddb: Any, s3: Any, table_name: Any
) -> None:
    src = create_table(ddb, table_name("exp"), HASH_RANGE)
    items = [{**item, "sk": {"S": f"s{i % 3}"}} for i, item in enumerate(varied_items(300))]
    fill(ddb, src, items)
    arn = enable_pitr(ddb, src)
    bucket = make_bucket(s3)
    time.sleep(0.01)
    asked = dt.datetime.fromtimestamp(int(time.time() * 1000) / 1000, dt.UTC)
    with pytest.raises(ClientError) as future:  # inside the PITR window only
        ddb.export_table_to_point_in_time(
            TableArn=arn, S3Bucket=bucket, ExportTime=asked + dt.timedelta(hours=1)
        )
    assert future.value.response["Error"]["Code"] == "InvalidExportTimeException"
    started = ddb.export_table_to_point_in_time(
        TableArn=arn, S3Bucket=bucket, S3Prefix="team/orders", ExportTime=asked
    )["ExportDescription"]
    assert started["ExportArn"].startswith(f"{arn}/export/")
    description = wait_described(ddb, started["ExportArn"])

    assert description["ExportStatus"] == "COMPLETED"
    assert description["ExportTime"] == asked
    assert description["StartTime"] <= description["EndTime"]
    export_id = started["ExportArn"].rsplit("/", 1)[-1]
    root = f"team/orders/AWSDynamoDB/{export_id}"
    assert description["ExportManifest"] == f"{root}/manifest-summary.json"
    keys = {o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"]}
    for name in ("_started", "manifest-files.json", "manifest-summary.md5", "manifest-files.md5"):
        assert f"{root}/{name}" in keys

    export = read_export_independently(s3, bucket, description["ExportManifest"])
    summary = export["summary"]
    assert set(summary) == SUMMARY_FIELDS
    assert summary["exportArn"] == started["ExportArn"]
    assert summary["itemCount"] == description["ItemCount"] == 300
    assert summary["outputFormat"] == "DYNAMODB_JSON"
    assert summary["exportTime"] == asked.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
    assert len(export["files"]) == -(-300 // EXPORT_ITEMS_PER_FILE) >= 3
    for entry in export["files"]:
        assert set(entry) == {"itemCount", "md5Checksum", "etag", "dataFileS3Key"}
        assert entry["dataFileS3Key"].startswith(f"{root}/data/")
        assert entry["dataFileS3Key"].endswith(".json.gz")
    assert sum(entry["itemCount"] for entry in export["files"]) == 300
    exported = {k: exported_plain(v) for k, v in keyed(export["items"], ("pk", "sk")).items()}
    table = {k: plain(v) for k, v in keyed(scan_all(ddb, src), ("pk", "sk")).items()}
    assert len(exported) == len(export["items"])  # no item twice
    assert exported == table


def test_exports_complete_while_a_writer_changes_the_table(
    endpoint: str, ddb: Any, s3: Any, table_name: Any
) -> None:
    """moto's own export iterated the live table and could fail ("dictionary changed size")
    under a concurrent write; the items no writer touches read back exactly."""
    src = create_table(ddb, table_name("exp-w"))
    fill(ddb, src, varied_items(300, prefix="base"))
    arn = enable_pitr(ddb, src)
    bucket = make_bucket(s3)
    writer = ConcurrentWriter(
        client(endpoint), src, ("pk",), seed=3, rate_per_s=300, key_space=300, max_seconds=30
    )
    descriptions = []
    with writer:
        assert writer.wait_for(20, timeout=10)
        for n in range(3):
            started = ddb.export_table_to_point_in_time(
                TableArn=arn, S3Bucket=bucket, S3Prefix=f"run{n}"
            )["ExportDescription"]
            descriptions.append(wait_described(ddb, started["ExportArn"]))
            time.sleep(0.05)
    assert sum(writer.counts.values()) > 20
    assert [d["ExportStatus"] for d in descriptions] == ["COMPLETED"] * 3, descriptions
    base = {k: v for k, v in keyed(scan_all(ddb, src), ("pk",)).items() if k[0].startswith("base")}
    for description in descriptions:
        export = read_export_independently(s3, bucket, description["ExportManifest"])
        got = keyed(export["items"], ("pk",))
        assert len(got) == len(export["items"]) == description["ItemCount"]
        base_got = {k: exported_plain(v) for k, v in got.items() if k[0].startswith("base")}
        assert base_got == {k: plain(v) for k, v in base.items()}


def test_a_client_token_starts_one_export_and_conflicts_with_other_parameters(
    ddb: Any, s3: Any, table_name: Any
) -> None:
    src = create_table(ddb, table_name("exp-t"))
    fill(ddb, src, varied_items(5))
    arn = enable_pitr(ddb, src)
    bucket = make_bucket(s3)
    request = {"TableArn": arn, "S3Bucket": bucket, "S3Prefix": "p", "ClientToken": "run-1"}
    first = ddb.export_table_to_point_in_time(**request)["ExportDescription"]
    again = ddb.export_table_to_point_in_time(**request)["ExportDescription"]
    assert again["ExportArn"] == first["ExportArn"]
    assert [e["ExportArn"] for e in ddb.list_exports(TableArn=arn)["ExportSummaries"]] == [
        first["ExportArn"]
    ]
    with pytest.raises(ClientError) as conflict:
        ddb.export_table_to_point_in_time(**{**request, "S3Prefix": "other"})
    assert conflict.value.response["Error"]["Code"] == "ExportConflictException"


def test_a_missing_bucket_fails_the_export_and_an_unknown_arn_is_not_found(
    ddb: Any, table_name: Any
) -> None:
    src = create_table(ddb, table_name("exp-f"))
    arn = enable_pitr(ddb, src)
    started = ddb.export_table_to_point_in_time(TableArn=arn, S3Bucket="no-such-bucket-here")
    description = wait_described(ddb, started["ExportDescription"]["ExportArn"])
    assert (description["ExportStatus"], description["FailureCode"]) == (
        "FAILED",
        "S3NoSuchBucket",
    )
    with pytest.raises(ClientError) as missing:
        ddb.describe_export(ExportArn=f"{arn}/export/01234567890123-abcdef01")
    assert missing.value.response["Error"]["Code"] == "ExportNotFoundException"
