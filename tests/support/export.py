"""Helpers for the export tests (issue 16): a bucket, PITR on, an export run to completion, and
an independent reader of an export's files.

`read_export_independently` does not use `dynashift.export`: it lists the objects under the
export's directory, parses the manifests and the gzip data files with the standard library, so
a bug in the engine's reader cannot hide itself.
"""

from __future__ import annotations

import base64
import gzip
import json
import time
import uuid
from typing import Any

from boto3.dynamodb.types import TypeDeserializer

_deser = TypeDeserializer()


def make_bucket(s3: Any, prefix: str = "exports") -> str:
    """A new bucket with a made-up, unique name."""
    name = f"{prefix}-{uuid.uuid4().hex[:12]}"
    s3.create_bucket(Bucket=name)
    return name


def enable_pitr(ddb: Any, table: str) -> str:
    """Point-in-time recovery on; returns the table ARN."""
    ddb.update_continuous_backups(
        TableName=table,
        PointInTimeRecoverySpecification={"PointInTimeRecoveryEnabled": True},
    )
    return str(ddb.describe_table(TableName=table)["Table"]["TableArn"])


def wait_described(ddb: Any, arn: str, timeout: float = 30.0) -> dict[str, Any]:
    """DescribeExport's ExportDescription once it is no longer IN_PROGRESS."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        description: dict[str, Any] = ddb.describe_export(ExportArn=arn)["ExportDescription"]
        if description["ExportStatus"] != "IN_PROGRESS":
            return description
        time.sleep(0.05)
    raise AssertionError(f"export {arn} still IN_PROGRESS after {timeout}s")


def get_bytes(s3: Any, bucket: str, key: str) -> bytes:
    return bytes(s3.get_object(Bucket=bucket, Key=key)["Body"].read())


def read_export_independently(s3: Any, bucket: str, summary_key: str) -> dict[str, Any]:
    """{"summary": dict, "files": [manifest-files entries], "items": [raw wire items as the
    files hold them (binary as base64 text)]}."""
    summary = json.loads(get_bytes(s3, bucket, summary_key))
    lines = get_bytes(s3, bucket, summary["manifestFilesS3Key"]).decode().splitlines()
    files = [json.loads(line) for line in lines if line.strip()]
    items = []
    for entry in files:
        text = gzip.decompress(get_bytes(s3, bucket, entry["dataFileS3Key"])).decode()
        items.extend(json.loads(line)["Item"] for line in text.splitlines() if line.strip())
    return {"summary": summary, "files": files, "items": items}


def plain(item: dict[str, Any]) -> dict[str, Any]:
    """Python values of a botocore wire-format item (binary as bytes), for == comparisons."""
    return {k: _deser.deserialize(v) for k, v in item.items()}


def _binary(value: Any) -> Any:
    ((kind, v),) = value.items()
    if kind == "B":
        return {"B": base64.b64decode(v)}
    if kind == "BS":
        return {"BS": [base64.b64decode(x) for x in v]}
    if kind == "L":
        return {"L": [_binary(x) for x in v]}
    if kind == "M":
        return {"M": {k: _binary(x) for k, x in v.items()}}
    return value


def exported_plain(item: dict[str, Any]) -> dict[str, Any]:
    """Python values of an item as an export file holds it (binary as base64 text)."""
    return plain({k: _binary(v) for k, v in item.items()})


def account_client(endpoint: str, account: str, service: str = "s3") -> Any:
    """A client acting in another (made-up) account of the moto server: moto's STS hands out
    credentials that its backends map to the account of the assumed role."""
    import boto3

    from tests.support.tables import REGION

    sts = boto3.client("sts", region_name=REGION, endpoint_url=endpoint)
    creds = sts.assume_role(
        RoleArn=f"arn:aws:iam::{account}:role/dynashift-test", RoleSessionName="dynashift-test"
    )["Credentials"]
    return boto3.client(
        service,
        region_name=REGION,
        endpoint_url=endpoint,
        aws_access_key_id=creds["AccessKeyId"],
        aws_secret_access_key=creds["SecretAccessKey"],
        aws_session_token=creds["SessionToken"],
    )
