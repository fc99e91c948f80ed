"""An export's manifests, in AWS's documented layout ("DynamoDB table export output format").

`<prefix>/AWSDynamoDB/<ExportId>/manifest-summary.json` names the export (exportArn, exportTime,
itemCount, outputFormat, ...) and `manifestFilesS3Key`; that file holds one JSON object a line
per data file: `{"itemCount", "md5Checksum", "etag", "dataFileS3Key"}`. `read_manifest` reads
both into an `ExportManifest`; `data_prefix` is the `.../data/` prefix ImportTable reads.
"""

from __future__ import annotations

import json
import posixpath
from typing import Any

from botocore.exceptions import ClientError
from pydantic import BaseModel, ConfigDict

from dynashift.aws import error_code
from dynashift.errors import RuntimeFailure
from dynashift.export.job import epoch
from dynashift.retry import call_with_retry


class DataFile(BaseModel):
    """One data file of an export: its S3 key and how many items (lines) it holds."""

    model_config = ConfigDict(frozen=True)

    key: str
    item_count: int


class ExportManifest(BaseModel):
    """What the loader needs from an export's manifests (JSON-serialisable)."""

    model_config = ConfigDict(frozen=True)

    export_arn: str
    export_time: float
    bucket: str
    summary_key: str
    item_count: int
    data_files: tuple[DataFile, ...]


def _get_text(s3: Any, bucket: str, key: str) -> str:
    try:
        resp = call_with_retry(lambda: s3.get_object(Bucket=bucket, Key=key))
        return str(resp["Body"].read().decode("utf-8"))
    except ClientError as exc:
        code = error_code(exc) or type(exc).__name__
        raise RuntimeFailure(f"cannot read s3://{bucket}/{key}: {code}") from exc


def read_manifest(s3: Any, bucket: str, manifest_summary_key: str) -> ExportManifest:
    """Read manifest-summary.json and the manifest-files.json it names (RuntimeFailure when
    either is missing or malformed, or the export is not DYNAMODB_JSON)."""
    where = f"s3://{bucket}/{manifest_summary_key}"
    try:
        summary = json.loads(_get_text(s3, bucket, manifest_summary_key))
        if summary.get("outputFormat", "DYNAMODB_JSON") != "DYNAMODB_JSON":
            raise RuntimeFailure(f"{where}: outputFormat {summary['outputFormat']!r} is not read")
        files_key = str(summary["manifestFilesS3Key"])
        files = []
        for number, line in enumerate(_get_text(s3, bucket, files_key).splitlines()):
            if not line.strip():
                continue
            try:
                entry = json.loads(line)
                files.append(DataFile(key=entry["dataFileS3Key"], item_count=entry["itemCount"]))
            except (ValueError, KeyError, TypeError) as exc:
                raise RuntimeFailure(f"s3://{bucket}/{files_key} line {number}: {exc}") from exc
        export_time = epoch(summary["exportTime"])
        return ExportManifest(
            export_arn=str(summary["exportArn"]),
            export_time=export_time if export_time is not None else 0.0,
            bucket=bucket,
            summary_key=manifest_summary_key,
            item_count=int(summary.get("itemCount", sum(f.item_count for f in files))),
            data_files=tuple(files),
        )
    except (ValueError, KeyError, TypeError) as exc:
        raise RuntimeFailure(f"{where}: not an export manifest summary ({exc})") from exc


def data_prefix(manifest: ExportManifest) -> str:
    """The export's `<prefix>/AWSDynamoDB/<ExportId>/data/` (ImportTable's S3KeyPrefix)."""
    return posixpath.join(posixpath.dirname(manifest.summary_key), "data") + "/"
