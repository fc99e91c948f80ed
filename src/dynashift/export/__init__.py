"""Export-based backfill and import-based refresh: the engine side (issue 16).

- `request` — `ExportRequest`: `models.ExportLocation` (bucket, prefix, bucket owner, KMS key)
  built from loose values (a caller, a test), bad values raising BadInputError.
- `job` — `start_export` (idempotent by ClientToken), `describe_export`, `wait_export`,
  `pitr_enabled`, `bucket_access_problem` (HeadBucket), `stream_label_time`,
  `check_export_after_stream` (I2).
- `manifest` — `read_manifest` of AWS's manifest-summary.json / manifest-files.json,
  `data_prefix` (ImportTable's S3KeyPrefix).
- `loader` — `iter_items` (streaming gzip, by line) and `load_file` (the backfill's conditional
  puts and rate limiter; resumable by line, I4/I5/I8).
"""

from __future__ import annotations

from dynashift.export.job import (
    COMPLETED,
    FAILED,
    IN_PROGRESS,
    ExportStatus,
    bucket_access_problem,
    check_export_after_stream,
    describe_export,
    pitr_enabled,
    start_export,
    status_of,
    stream_label_time,
    wait_export,
)
from dynashift.export.loader import LOAD_BATCH, FileProgress, iter_items, load_file
from dynashift.export.manifest import DataFile, ExportManifest, data_prefix, read_manifest
from dynashift.export.request import ExportRequest, bucket_problem

__all__ = [
    "COMPLETED",
    "FAILED",
    "IN_PROGRESS",
    "LOAD_BATCH",
    "DataFile",
    "ExportManifest",
    "ExportRequest",
    "ExportStatus",
    "FileProgress",
    "bucket_access_problem",
    "bucket_problem",
    "check_export_after_stream",
    "data_prefix",
    "describe_export",
    "iter_items",
    "load_file",
    "pitr_enabled",
    "read_manifest",
    "start_export",
    "status_of",
    "stream_label_time",
    "wait_export",
]
