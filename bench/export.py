"""Benchmark: the export strategy's backfill (load an export from S3) against the scan backfill.

    .venv/bin/python -m bench.export [--items 5000] [--workers 4] [--in-flight 8] [--rounds 1]

Starts the emulator (moto with AWS's export layout) in its own process, fills a source table
with point-in-time recovery on, then, alternately in each round and on the same server, each
into a fresh empty target with the same workers and in-flight puts:

- scan backfill: `backfill.backfill_all` (parallel scan, conditional puts, checkpoints);
- export backfill: the export strategy's steps (`dynashift.export_backfill`: start the export,
  poll it, list its data files, load them with `workers` threads, each file's loader resuming
  from its checkpoint) — timed as the load alone and as export + load.

Reads of the source are metered with botocore hooks (`tests/support/read_meter.py`): the export
backfill must read nothing of the source. Figures are items/s and the ratio export load / scan
(best round of each): absolute times on moto depend on the machine and its load.
"""

from __future__ import annotations

import argparse
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import boto3
from botocore.config import Config

from bench import emulator_credentials
from bench.backfill import REGION, create, fill
from dynashift.aws import Side
from dynashift.backfill import backfill_all, total_counters
from dynashift.export_backfill import list_files, load_file, poll, start
from dynashift.models import ExportLocation, MigrationSpec, TableLocation
from dynashift.state import StateStore, state_table_name
from tests.support.moto_server import MotoServer
from tests.support.read_meter import ReadMeter


def _spec(server_url: str, source: str, target: str, workers: int, **fields: Any) -> Any:
    side = Side(region=REGION, endpoint_url=server_url)
    mid = f"bench-{uuid.uuid4().hex[:8]}"
    return MigrationSpec(
        migration_id=mid,
        source=TableLocation(name=source, side=side),
        target=TableLocation(name=target, side=side),
        state=TableLocation(name=state_table_name(mid), side=side),
        segments=workers,
        **fields,
    )


def export_backfill(
    spec: MigrationSpec, state: StateStore, ddb: Any, s3: Any, workers: int, in_flight: int
) -> tuple[float, float, int]:
    """(export + load seconds, load seconds, files) of the export strategy's backfill."""
    started = time.perf_counter()
    status = start(spec, state, ddb)
    while not status["done"]:
        time.sleep(0.05)
        status = poll(spec, state, ddb)
    files = list_files(spec, state, ddb, s3, max_concurrency=workers, threshold=10**9)
    loading = time.perf_counter()

    def one(file: int) -> None:
        while not load_file(
            spec, file, state=state, s3=s3, target_client=ddb, max_in_flight=in_flight
        )["done"]:
            pass

    with ThreadPoolExecutor(workers) as pool:
        list(pool.map(one, files["files"]))
    end = time.perf_counter()
    return end - started, end - loading, int(files["count"])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--items", type=int, default=5000)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--in-flight", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=1)
    args = parser.parse_args(argv)
    emulator_credentials(REGION)

    server = MotoServer().start()
    try:
        config = Config(
            max_pool_connections=args.workers * args.in_flight * 2,
            read_timeout=600,
            retries={"mode": "standard", "max_attempts": 1},
        )
        ddb = boto3.client("dynamodb", region_name=REGION, endpoint_url=server.url, config=config)
        s3 = boto3.client("s3", region_name=REGION, endpoint_url=server.url)
        source = f"bench-export-src-{args.items}"
        create(ddb, source)
        fill(ddb, source, args.items)
        ddb.update_continuous_backups(
            TableName=source,
            PointInTimeRecoverySpecification={"PointInTimeRecoveryEnabled": True},
        )
        bucket = f"bench-export-{uuid.uuid4().hex[:8]}"
        s3.create_bucket(Bucket=bucket)
        meter = ReadMeter(ddb, source).attach()
        best: dict[str, float] = {}
        reads: dict[str, tuple[int, float]] = {}
        files = 0
        for _ in range(args.rounds):
            tag = uuid.uuid4().hex[:6]
            target = f"scan-{tag}"
            create(ddb, target)
            spec = _spec(server.url, source, target, args.workers)
            StateStore.ensure_table(ddb, spec.state.name)
            state = StateStore(ddb, spec.state.name, spec.migration_id)
            with meter.during():
                started = time.perf_counter()
                results = backfill_all(
                    spec,
                    state=state,
                    source_client=ddb,
                    target_client=ddb,
                    max_in_flight=args.in_flight,
                    concurrency=args.workers,
                )
                seconds = time.perf_counter() - started
            assert total_counters(results)["written"] == args.items
            reads["scan"] = (sum(meter.calls.values()), meter.units)
            best["scan"] = min(best.get("scan", 1e9), seconds)

            target = f"export-{tag}"
            create(ddb, target)
            location = ExportLocation(bucket=bucket, prefix=f"bench/{tag}")
            spec = _spec(
                server.url, source, target, args.workers, strategy="export", export=location
            )
            StateStore.ensure_table(ddb, spec.state.name)
            state = StateStore(ddb, spec.state.name, spec.migration_id)
            with meter.during():
                total, load, files = export_backfill(
                    spec, state, ddb, s3, args.workers, args.in_flight
                )
            reads["export"] = (sum(meter.calls.values()), meter.units)
            assert reads["export"] == (0, 0.0), reads
            written = ddb.describe_table(TableName=target)["Table"].get("ItemCount")
            count = ddb.scan(TableName=target, Select="COUNT")["Count"]
            assert count == args.items, (count, written)
            best["export_total"] = min(best.get("export_total", 1e9), total)
            best["export_load"] = min(best.get("export_load", 1e9), load)
        n = args.items
        print(
            f"{n:>6} items | scan backfill {best['scan']:6.2f}s ({n / best['scan']:,.0f}/s, "
            f"{reads['scan'][0]} source reads, {reads['scan'][1]:g} RCU reported) | export load "
            f"{best['export_load']:6.2f}s ({n / best['export_load']:,.0f}/s, {files} files, "
            f"{reads['export'][0]} source reads) | export+load {best['export_total']:6.2f}s | "
            f"load/scan items/s ratio {best['scan'] / best['export_load']:.2f}",
            flush=True,
        )
    finally:
        server.stop()


if __name__ == "__main__":
    main()
