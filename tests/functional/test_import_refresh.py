"""`dynashift copy --via-import` end to end through the CLI, against the moto server.

moto's export writes AWS's layout (`dynashift.emulator`); its ImportTable reads every object
under S3KeyPrefix (the export's data/ prefix) and ignores SSE, stream, tags, table class and
deletion protection — those are set after the import by dynashift, and the test compares them.
"""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from dynashift.cli.main import main
from dynashift.errors import RuntimeFailure
from dynashift.export import ExportManifest, ExportRequest
from dynashift.import_refresh import (
    ImportRefreshOptions,
    check_import_counts,
    cross_account_refusal,
    import_request,
    table_updates,
    watch_import,
)
from dynashift.progress import NullProgress
from dynashift.target import TableDescription, TargetOptions, build_target_spec
from tests.support.clock import ManualClock
from tests.support.export import enable_pitr
from tests.support.reference import assert_identical
from tests.support.tables import (
    ACCOUNT,
    client,
    create_table,
    fill,
    list_tables,
    provisioned_description,
    varied_items,
)

pytestmark = pytest.mark.usefixtures("moto_server")

GSI = {
    "IndexName": "by-g",
    "KeySchema": [{"AttributeName": "g", "KeyType": "HASH"}],
    "Projection": {"ProjectionType": "INCLUDE", "NonKeyAttributes": ["s"]},
}


def run_cli(endpoint: str, *args: str) -> int:
    return main(["copy", "--endpoint-url", endpoint, *args])


def one_line_error(capsys: Any, *needles: str) -> str:
    err = capsys.readouterr().err.strip()
    lines = [line for line in err.splitlines() if "dynashift: error:" in line]
    assert len(lines) == 1 and "Traceback" not in err, err
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


@pytest.fixture(scope="module")
def s3(endpoint: str) -> Any:
    return client(endpoint, "s3")


@pytest.fixture(scope="module")
def bucket(s3: Any) -> str:
    name = f"exports-{uuid.uuid4().hex[:10]}"
    s3.create_bucket(Bucket=name)
    return name


def make_source(
    ddb: Any,
    name: str,
    *,
    pitr: bool = True,
    attributes: dict[str, str] | None = None,
    **extra: Any,
) -> None:
    create_table(
        ddb,
        name,
        sort_key="sk",
        types={"sk": "N"},
        attributes={"g": "S", **(attributes or {})},
        GlobalSecondaryIndexes=[GSI],
        Tags=[{"Key": "team", "Value": "orders"}, {"Key": "env", "Value": "prod"}],
        **extra,
    )
    ddb.update_time_to_live(
        TableName=name, TimeToLiveSpecification={"Enabled": True, "AttributeName": "expires"}
    )
    if pitr:
        enable_pitr(ddb, name)


def items(n: int) -> list[dict[str, Any]]:
    out = []
    for i, item in enumerate(varied_items(n, seed=16)):
        item["sk"] = {"N": str(i % 5)}
        item["g"] = {"S": f"g{i % 4}"}
        item["expires"] = {"N": str(4_000_000_000 + i)}
        out.append(item)
    return out


def exports_of(ddb: Any, table: str) -> list[Any]:
    arn = ddb.describe_table(TableName=table)["Table"]["TableArn"]
    return list(ddb.list_exports(TableArn=arn).get("ExportSummaries", []))


def settings(ddb: Any, table: str) -> dict[str, Any]:
    """What moto holds of a table's settings, comparable between source and target."""
    desc = ddb.describe_table(TableName=table)["Table"]
    ttl = ddb.describe_time_to_live(TableName=table)["TimeToLiveDescription"]
    pitr = ddb.describe_continuous_backups(TableName=table)["ContinuousBackupsDescription"]
    tags = ddb.list_tags_of_resource(ResourceArn=desc["TableArn"])["Tags"]
    return {
        "keys": desc["KeySchema"],
        "attributes": sorted(desc["AttributeDefinitions"], key=lambda a: a["AttributeName"]),
        "billing": desc["BillingModeSummary"]["BillingMode"],
        "gsis": [
            (g["IndexName"], g["KeySchema"], g["Projection"])
            for g in desc.get("GlobalSecondaryIndexes", [])
        ],
        "lsis": desc.get("LocalSecondaryIndexes", []),
        "ttl": (ttl.get("TimeToLiveStatus"), ttl.get("AttributeName")),
        "pitr": pitr["PointInTimeRecoveryDescription"]["PointInTimeRecoveryStatus"],
        "tags": sorted((t["Key"], t["Value"]) for t in tags),
        "deletion_protection": desc.get("DeletionProtectionEnabled", False),
    }


def test_via_import_creates_an_identical_table_with_the_sources_settings(
    endpoint: str, ddb: Any, s3: Any, bucket: str, table_name: Any, capsys: Any
) -> None:
    src, dst = table_name("isrc"), table_name("idst")
    make_source(ddb, src, DeletionProtectionEnabled=True)
    fill(ddb, src, items(150))
    code = run_cli(
        endpoint,
        "--source",
        src,
        "--target",
        dst,
        "--via-import",
        "--export-bucket",
        bucket,
        "--export-prefix",
        f"refresh/{src}",
    )
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert "imported 150 of 150 items read, 0 errors" in captured.out, captured.out
    assert "the target's match the source's" in captured.out, captured.out
    assert_identical(ddb, src, ddb, dst, ("pk", "sk"))
    assert settings(ddb, dst) == settings(ddb, src)
    # The import read only the export's data files, in the prefix given.
    (export,) = exports_of(ddb, src)
    keys = [
        o["Key"] for o in s3.list_objects_v2(Bucket=bucket, Prefix=f"refresh/{src}/")["Contents"]
    ]
    assert any(k.endswith("manifest-summary.json") for k in keys)
    assert export["ExportStatus"] == "COMPLETED"


def refused(
    endpoint: str, ddb: Any, capsys: Any, src: str, dst: str, *args: str, needles: tuple[str, ...]
) -> str:
    before_tables = list_tables(ddb)
    before_exports = len(exports_of(ddb, src))
    code = run_cli(endpoint, "--source", src, "--target", dst, "--via-import", *args)
    line = one_line_error(capsys, *needles)
    assert code == 2, line
    assert list_tables(ddb) == before_tables, "a table was created"
    assert len(exports_of(ddb, src)) == before_exports, "an export was started"
    return line


def test_refusals_exit_2_and_start_nothing(
    endpoint: str, ddb: Any, bucket: str, table_name: Any, capsys: Any
) -> None:
    src = table_name("isrc")
    make_source(ddb, src)
    fill(ddb, src, items(10))
    existing = table_name("idst")
    make_source(ddb, existing, pitr=False)
    with_bucket = ("--export-bucket", bucket)
    refused(endpoint, ddb, capsys, src, existing, *with_bucket, needles=(existing, "exists"))
    dst = table_name("idst")
    refused(
        endpoint,
        ddb,
        capsys,
        existing,
        dst,
        *with_bucket,
        needles=("--source: point-in-time recovery is off for table", "copy without --via-import"),
    )
    refused(
        endpoint,
        ddb,
        capsys,
        src,
        dst,
        "--export-bucket",
        f"missing-{uuid.uuid4().hex[:8]}",
        needles=("--export-bucket", "does not exist"),
    )
    refused(endpoint, ddb, capsys, src, dst, needles=("--export-bucket", "required"))
    refused(
        endpoint,
        ddb,
        capsys,
        src,
        dst,
        "--export-bucket",
        "Not_A_Bucket",
        needles=("--export-bucket",),
    )
    for flag in (("--pk", "a"), ("--truncate-target",), ("--max-write-rate", "10")):
        refused(
            endpoint, ddb, capsys, src, dst, *with_bucket, *flag, needles=(flag[0], "--via-import")
        )
    lsi_src = table_name("isrc")
    make_source(
        ddb,
        lsi_src,
        attributes={"l": "S"},
        LocalSecondaryIndexes=[
            {
                "IndexName": "by-l",
                "KeySchema": [
                    {"AttributeName": "pk", "KeyType": "HASH"},
                    {"AttributeName": "l", "KeyType": "RANGE"},
                ],
                "Projection": {"ProjectionType": "ALL"},
            }
        ],
    )
    refused(endpoint, ddb, capsys, lsi_src, dst, *with_bucket, needles=("by-l", "local secondary"))


def test_a_target_in_another_account_needs_the_bucket_owner(
    endpoint: str, ddb: Any, bucket: str, table_name: Any, capsys: Any
) -> None:
    src, dst = table_name("isrc"), table_name("idst")
    make_source(ddb, src)
    role = "arn:aws:iam::111122223333:role/staging-importer"  # moto: that account's credentials
    line = refused(
        endpoint,
        ddb,
        capsys,
        src,
        dst,
        "--export-bucket",
        bucket,
        "--target-role-arn",
        role,
        needles=("--export-bucket-owner", ACCOUNT, "111122223333"),
    )
    assert bucket in line


def test_export_flags_need_via_import(endpoint: str, capsys: Any) -> None:
    code = run_cli(endpoint, "--source", "a-table", "--target", "b-table", "--export-bucket", "b")
    assert code == 2
    one_line_error(capsys, "--export-bucket", "--via-import")


def test_cross_account_needs_the_bucket_owner() -> None:
    request = ExportRequest(bucket="exports-bucket", prefix="p")
    other = "210987654321"
    assert "--export-bucket-owner" in (cross_account_refusal(ACCOUNT, other, request) or "")
    assert cross_account_refusal(ACCOUNT, ACCOUNT, request) is None
    assert cross_account_refusal(ACCOUNT, None, request) is None
    owned = ExportRequest(bucket="exports-bucket", prefix="p", bucket_owner=other)
    assert cross_account_refusal(ACCOUNT, other, owned) is None


# --- waiting and counts, against a stand-in for AWS's DescribeImport -----------------------------

ARN = f"arn:aws:dynamodb:us-east-1:{ACCOUNT}:table/staging/import/01234567890123456789012345"


class ImportInProgress:
    """DescribeImport of an import that is still running (AWS's answer, not dynashift's)."""

    def describe_import(self, ImportArn: str) -> dict[str, Any]:
        return {
            "ImportTableDescription": {
                "ImportArn": ImportArn,
                "ImportStatus": "IN_PROGRESS",
                "ProcessedItemCount": 7,
            }
        }


class CtrlCClock(ManualClock):
    def sleep(self, seconds: float) -> None:
        raise KeyboardInterrupt


def options(**kw: Any) -> ImportRefreshOptions:
    return ImportRefreshOptions(export=ExportRequest(bucket="exports-bucket"), **kw)


def test_ctrl_c_leaves_the_import_running_and_says_how_to_look_it_up(caplog: Any) -> None:
    with pytest.raises(KeyboardInterrupt):
        watch_import(ImportInProgress(), ARN, options(), CtrlCClock(), NullProgress())
    assert f"keeps running; look it up with: aws dynamodb describe-import --import-arn {ARN}" in (
        caplog.text
    )


def test_a_stuck_import_fails_at_the_timeout_with_its_lookup() -> None:
    clock = ManualClock()
    with pytest.raises(RuntimeFailure, match="describe-import --import-arn"):
        watch_import(ImportInProgress(), ARN, options(timeout_seconds=60), clock, NullProgress())
    assert 60 <= clock.now <= 71 and max(clock.sleeps) == 10.0  # backs off to poll_seconds


def test_import_errors_and_missing_items_fail_naming_the_log_group() -> None:
    done = {"ImportArn": ARN, "ImportStatus": "COMPLETED", "ImportedItemCount": 10}
    check_import_counts(done, 10, "staging")
    with pytest.raises(
        RuntimeFailure, match=r"2 items could not be imported.*/aws-dynamodb/imports"
    ):
        check_import_counts({**done, "ErrorCount": 2, "ImportedItemCount": 8}, 10, "staging")
    group = f"arn:aws:logs:us-east-1:{ACCOUNT}:log-group:/custom/imports:*"
    with pytest.raises(RuntimeFailure, match=r"FAILED: S3NoSuchBucket.*log group /custom/imports"):
        check_import_counts(
            {
                **done,
                "ImportStatus": "FAILED",
                "FailureCode": "S3NoSuchBucket",
                "CloudWatchLogGroupArn": group,
            },
            10,
            "staging",
        )
    with pytest.raises(RuntimeFailure, match="9 items imported, the export holds 10"):
        check_import_counts({**done, "ImportedItemCount": 9}, 10, "staging")


def test_table_updates_are_what_create_table_would_have_set() -> None:
    imported = TableDescription(
        name="staging",
        table={
            "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"}],
            "AttributeDefinitions": [{"AttributeName": "pk", "AttributeType": "S"}],
        },
    )
    spec = build_target_spec(
        imported.model_copy(
            update={"table": {**imported.table, "DeletionProtectionEnabled": True}}
        ),
        TargetOptions(
            table_class="STANDARD_INFREQUENT_ACCESS", target_stream_view_type="NEW_IMAGE"
        ),
    )
    assert [kwargs for _, kwargs in table_updates(spec, imported)] == [
        {"TableClass": "STANDARD_INFREQUENT_ACCESS"},
        {"StreamSpecification": {"StreamEnabled": True, "StreamViewType": "NEW_IMAGE"}},
        {"DeletionProtectionEnabled": True},
    ]
    assert table_updates(build_target_spec(imported, TargetOptions()), imported) == []


def test_import_request_passes_what_import_table_accepts_and_names_the_owner() -> None:
    source = provisioned_description(
        (5, 7),
        [{**GSI, "KeySchema": [GSI["KeySchema"][0]]}],
        DeletionProtectionEnabled=True,
        tags={"team": "orders"},
    )
    key = f"arn:aws:kms:us-east-1:{ACCOUNT}:key/made-up"
    spec = build_target_spec(source, TargetOptions(sse_kms_key_id=key))
    manifest = ExportManifest(
        export_arn="arn:aws:dynamodb:us-east-1:111122223333:table/orders/export/1",
        export_time=0.0,
        bucket="exports-bucket",
        summary_key="refresh/AWSDynamoDB/1/manifest-summary.json",
        item_count=0,
        data_files=(),
    )
    owned = ExportRequest(bucket="exports-bucket", prefix="refresh", bucket_owner=ACCOUNT)
    request = import_request(spec, "staging", manifest, owned, client_token="t-1")
    assert request["S3BucketSource"] == {
        "S3Bucket": "exports-bucket",
        "S3KeyPrefix": "refresh/AWSDynamoDB/1/data/",
        "S3BucketOwner": ACCOUNT,
    }
    assert (request["InputFormat"], request["InputCompressionType"]) == ("DYNAMODB_JSON", "GZIP")
    params = request["TableCreationParameters"]
    assert params["TableName"] == "staging" and params["BillingMode"] == "PROVISIONED"
    assert params["ProvisionedThroughput"] == {"ReadCapacityUnits": 5, "WriteCapacityUnits": 7}
    assert params["SSESpecification"]["KMSMasterKeyId"] == key
    assert [g["IndexName"] for g in params["GlobalSecondaryIndexes"]] == ["by-g"]
    # Set after the import, not accepted by ImportTable:
    assert not {"Tags", "DeletionProtectionEnabled", "TableClass"} & set(params)
