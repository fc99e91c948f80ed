"""Benchmark: a dry-run `sync` diff of two 5,000-item tables against one raw parallel scan.

    .venv/bin/python -m bench.sync_diff [--items 5000] [--parallel 4] [--rounds 3]

Starts a moto server in its own process, fills a master and a slave (2% of the slave's items
changed, 1% missing), then times, alternately in each round:

- raw: one parallel scan (N segments, one thread each) of BOTH tables, items counted only;
- sync: `SyncEngine` dry run with N segments (master scan + BatchGetItem of every key on the
  slave + classification).

The figure is the ratio sync / raw, per round (the two runs of a round are back to back, so load
drift cancels out), reported as the median over the rounds: absolute times on moto depend on the
machine and its load.
"""

from __future__ import annotations

import argparse
import random
import statistics
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import boto3

from bench import emulator_credentials
from dynashift.aws import Side
from dynashift.models import TableLocation
from dynashift.sync import SyncEngine, SyncOptions
from tests.support.moto_server import MotoServer

REGION = "us-east-1"


def make_item(i: int, rng: random.Random) -> dict[str, Any]:
    return {
        "pk": {"S": f"order#{i:06d}"},
        "customer": {"S": f"c{rng.randint(1, 500)}"},
        "total": {"N": f"{rng.randint(1, 99999)}.{rng.randint(0, 99):02d}"},
        "lines": {"NS": [str(rng.randint(1, 9)) for _ in range(3)]},
        "status": {"S": rng.choice(["new", "paid", "shipped"])},
        "meta": {"M": {"v": {"N": "1"}, "src": {"S": "bench"}}},
    }


def create(ddb: Any, name: str, items: list[dict[str, Any]]) -> None:
    ddb.create_table(
        TableName=name,
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    for start in range(0, len(items), 25):
        chunk = [{"PutRequest": {"Item": i}} for i in items[start : start + 25]]
        ddb.batch_write_item(RequestItems={name: chunk})


def raw_parallel_scan(ddb: Any, tables: list[str], segments: int) -> int:
    def segment(args: tuple[str, int]) -> int:
        table, seg = args
        kwargs: dict[str, Any] = {"TableName": table, "Segment": seg, "TotalSegments": segments}
        n = 0
        while True:
            page = ddb.scan(**kwargs)
            n += len(page["Items"])
            if "LastEvaluatedKey" not in page:
                return n
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    work = [(t, s) for t in tables for s in range(segments)]
    with ThreadPoolExecutor(max_workers=len(work)) as pool:
        return sum(pool.map(segment, work))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=5000)
    parser.add_argument("--parallel", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)
    emulator_credentials()

    server = MotoServer().start()
    try:
        ddb = boto3.client("dynamodb", region_name=REGION, endpoint_url=server.url)
        rng = random.Random(42)
        master = [make_item(i, rng) for i in range(args.items)]
        slave = []
        for i, item in enumerate(master):
            if i % 100 == 0:
                continue  # 1% missing
            drift = {"status": {"S": "drifted"}} if i % 50 == 1 else {}  # 2% differing
            slave.append({**item, **drift})
        t0 = time.monotonic()
        create(ddb, "bench-master", master)
        create(ddb, "bench-slave", slave)
        print(f"loaded {len(master)} + {len(slave)} items in {time.monotonic() - t0:.1f}s")

        side = Side(region=REGION, endpoint_url=server.url)
        raw_times, sync_times = [], []
        for r in range(args.rounds):
            t0 = time.monotonic()
            n = raw_parallel_scan(ddb, ["bench-master", "bench-slave"], args.parallel)
            raw_times.append(time.monotonic() - t0)

            engine = SyncEngine(
                TableLocation(name="bench-master", side=side),
                [TableLocation(name="bench-slave", side=side)],
                SyncOptions(parallel=args.parallel, batch_read_limit=100),
            )
            t0 = time.monotonic()
            report = engine.run()
            sync_times.append(time.monotonic() - t0)
            s = report.slaves[f"{REGION}:bench-slave"]
            assert n == len(master) + len(slave), n
            assert (s.missing, s.differing) == (args.items // 100, len(range(1, args.items, 50)))
            print(
                f"round {r + 1}: raw scan of both {raw_times[-1]:.2f}s ({n} items), "
                f"sync dry run {sync_times[-1]:.2f}s (missing {s.missing}, differing "
                f"{s.differing}), ratio {sync_times[-1] / raw_times[-1]:.2f}"
            )
        # Each round's ratio compares two runs made back to back, so load drift cancels out.
        ratios = sorted(x / y for x, y in zip(sync_times, raw_times, strict=True))
        median = statistics.median(ratios)
        print(
            f"RESULT items={args.items} parallel={args.parallel}: sync dry run / raw parallel "
            f"scan of both tables = {median:.2f} (median of {len(ratios)} rounds, range "
            f"{ratios[0]:.2f}-{ratios[-1]:.2f}; fastest sync {min(sync_times):.2f}s = "
            f"{args.items / min(sync_times):,.0f} master items/s)"
        )
    finally:
        server.stop()


if __name__ == "__main__":
    main()
