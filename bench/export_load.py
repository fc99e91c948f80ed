"""Benchmark: the export load (`dynashift.export.load_file`) against the scan backfill, same run.

    .venv/bin/python -m bench.export_load [--sizes 5000 20000] [--workers 4] [--in-flight 8]
                                          [--rounds 2]

Starts the emulator (moto with AWS's export layout) in its own process, fills a source table per
size, turns point-in-time recovery on, then times in each round, each into a fresh empty target:

- backfill: `backfill.backfill_all` (N segments scanning the source, conditional puts with the
  given in-flight bound, checkpoints in a state table);
- export: ExportTableToPointInTime until COMPLETED (`start_export`, `wait_export`), then the
  load: N workers over the export's data files, each `load_file` through one
  `ConditionalWriter` with the same in-flight bound (the same conditional puts).

Printed per size (best round of each): seconds, the ratio load / backfill and
(export + load) / backfill, and the data-plane read requests (Scan, Query, GetItem,
BatchGetItem) each path sent to the source table during the backfill: the export path sends
none (it reads S3). moto exports in milliseconds; AWS takes minutes for any size, so on AWS the
export's own time is a fixed cost the load then has to win back.
"""

from __future__ import annotations

import argparse
import os
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import boto3
from botocore.config import Config

from bench.backfill import create, fill
from dynashift.aws import Side
from dynashift.backfill import ConditionalWriter, Counters, backfill_all, total_counters
from dynashift.export import ExportRequest, load_file, read_manifest, start_export, wait_export
from dynashift.models import MigrationSpec, TableLocation
from dynashift.state import StateStore, state_table_name
from tests.support.moto_server import MotoServer

REGION = "us-east-1"
READS = ("Scan", "Query", "GetItem", "BatchGetItem")


class ReadCounter:
    """Counts data-plane read requests a client sends to one table."""

    def __init__(self, client: Any, table: str) -> None:
        self.table = table
        self.count = 0
        for op in READS:
            client.meta.events.register(f"provide-client-params.dynamodb.{op}", self._seen)

    def _seen(self, params: dict[str, Any], **_: Any) -> None:
        if self.table in {params.get("TableName"), *params.get("RequestItems", {})}:
            self.count += 1


def export_load(
    ddb: Any, s3: Any, table_arn: str, bucket: str, target: str, workers: int, in_flight: int
) -> tuple[float, float, int]:
    """(export seconds, load seconds, items written)."""
    start = time.perf_counter()
    arn = start_export(ddb, table_arn, ExportRequest(bucket=bucket), client_token=uuid.uuid4().hex)
    status = wait_export(ddb, arn, timeout=600, poll_seconds=0.05)
    manifest = read_manifest(s3, bucket, str(status.manifest_key))
    exported = time.perf_counter()
    shares = [manifest.data_files[i::workers] for i in range(workers)]
    counters = Counters()

    def one(files: Any) -> None:
        with ConditionalWriter(
            ddb, target, ("pk",), counters, max_in_flight=in_flight, overwrite_older=False
        ) as writer:
            for data_file in files:
                assert load_file(s3, writer, bucket, data_file).done

    with ThreadPoolExecutor(workers) as pool:
        list(pool.map(one, shares))
    return exported - start, time.perf_counter() - exported, counters["written"]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[5000, 20000])
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--in-flight", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args(argv)
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "bench")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "bench")
    os.environ["AWS_DEFAULT_REGION"] = REGION

    server = MotoServer().start()
    try:
        config = Config(
            max_pool_connections=args.workers * args.in_flight * 2,
            read_timeout=600,
            retries={"mode": "standard", "max_attempts": 1},
        )
        ddb = boto3.client("dynamodb", region_name=REGION, endpoint_url=server.url, config=config)
        s3 = boto3.client("s3", region_name=REGION, endpoint_url=server.url, config=config)
        side = Side(region=REGION, endpoint_url=server.url)
        bucket = f"bench-exports-{uuid.uuid4().hex[:8]}"
        s3.create_bucket(Bucket=bucket)
        for size in args.sizes:
            source = f"bench-src-{size}-{uuid.uuid4().hex[:4]}"
            create(ddb, source)
            fill(ddb, source, size)
            ddb.update_continuous_backups(
                TableName=source,
                PointInTimeRecoverySpecification={"PointInTimeRecoveryEnabled": True},
            )
            table_arn = ddb.describe_table(TableName=source)["Table"]["TableArn"]
            best: dict[str, float] = {}
            reads: dict[str, int] = {}
            for _ in range(args.rounds):
                tag = uuid.uuid4().hex[:6]
                scan_client = boto3.client(
                    "dynamodb", region_name=REGION, endpoint_url=server.url, config=config
                )
                counter = ReadCounter(scan_client, source)
                target = f"eng-bf-{tag}"
                create(ddb, target)
                spec = MigrationSpec(
                    migration_id=f"bench-{tag}",
                    source=TableLocation(name=source, side=side),
                    target=TableLocation(name=target, side=side),
                    state=TableLocation(name=state_table_name(f"bench-{tag}"), side=side),
                    segments=args.workers,
                )
                StateStore.ensure_table(ddb, spec.state.name)
                state = StateStore(ddb, spec.state.name, spec.migration_id)
                start = time.perf_counter()
                results = backfill_all(
                    spec,
                    state=state,
                    source_client=scan_client,
                    target_client=ddb,
                    max_in_flight=args.in_flight,
                    concurrency=args.workers,
                )
                seconds = time.perf_counter() - start
                assert total_counters(results)["written"] == size
                best["backfill"] = min(best.get("backfill", 1e9), seconds)
                reads["backfill"] = counter.count

                export_client = boto3.client(
                    "dynamodb", region_name=REGION, endpoint_url=server.url, config=config
                )
                counter = ReadCounter(export_client, source)
                target = f"eng-ex-{tag}"
                create(ddb, target)
                exported, loaded, written = export_load(
                    export_client, s3, table_arn, bucket, target, args.workers, args.in_flight
                )
                assert written == size, (written, size)
                best["export"] = min(best.get("export", 1e9), exported)
                best["load"] = min(best.get("load", 1e9), loaded)
                reads["export"] = counter.count
            print(
                f"{size:>7} items  backfill {best['backfill']:7.2f} s "
                f"({reads['backfill']} source reads)  export {best['export']:6.2f} s  "
                f"load {best['load']:7.2f} s ({reads['export']} source reads)  "
                f"load/backfill {best['load'] / best['backfill']:.2f}  "
                f"(export+load)/backfill {(best['export'] + best['load']) / best['backfill']:.2f}"
            )
    finally:
        server.stop()


if __name__ == "__main__":
    main()
