"""Benchmark: the backfill worker and `copy` against raw loops doing the same writes.

    .venv/bin/python -m bench.backfill [--sizes 5000 20000] [--segments 4] [--in-flight 8]
                                       [--rounds 2]

Starts a moto server in its own process (client and server each get a core), fills a source
table per size, then times, alternately in each round, each into a fresh empty target (engine
and raw loops share one client configuration):

- raw backfill: N threads each scanning one segment and writing every item with one conditional
  PutItem (`attribute_not_exists(pk)`), through a pool of the same number of in-flight requests;
- backfill: `backfill.backfill_all` (N segments, `run_segment` with the same in-flight bound,
  checkpoints committed to a state table after every page);
- raw copy: N threads each scanning one segment and writing BatchWriteItem of 25;
- copy: `copy.copy_table` with N segments (target already created, so both only write); the
  total includes checking the target (DescribeTable & co.), the copy phase alone is also shown.

Figures are ratios engine / raw (best round of each): absolute times on moto depend on the
machine and its load. The target is within 1.15x.
"""

from __future__ import annotations

import argparse
import random
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

from bench import emulator_credentials
from dynashift.aws import Side
from dynashift.backfill import backfill_all, total_counters
from dynashift.copy import CopyOptions, copy_table
from dynashift.models import MigrationSpec, TableLocation
from dynashift.state import StateStore, state_table_name
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


def create(ddb: Any, name: str) -> None:
    ddb.create_table(
        TableName=name,
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )


def fill(ddb: Any, name: str, n: int) -> None:
    rng = random.Random(n)
    items = [make_item(i, rng) for i in range(n)]
    for start in range(0, n, 25):
        chunk = [{"PutRequest": {"Item": i}} for i in items[start : start + 25]]
        ddb.batch_write_item(RequestItems={name: chunk})


def scan_segment(ddb: Any, table: str, segment: int, total: int) -> Any:
    kwargs: dict[str, Any] = {"TableName": table, "Segment": segment, "TotalSegments": total}
    while True:
        page = ddb.scan(**kwargs)
        yield page.get("Items", [])
        if "LastEvaluatedKey" not in page:
            return
        kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def raw_conditional(ddb: Any, source: str, target: str, segments: int, in_flight: int) -> int:
    def put(item: dict[str, Any]) -> int:
        try:
            ddb.put_item(
                TableName=target,
                Item=item,
                ConditionExpression="attribute_not_exists(#pk)",
                ExpressionAttributeNames={"#pk": "pk"},
            )
            return 1
        except ClientError:
            return 0

    def one(segment: int) -> int:
        written = 0
        with ThreadPoolExecutor(in_flight) as pool:
            for items in scan_segment(ddb, source, segment, segments):
                written += sum(pool.map(put, items))
        return written

    with ThreadPoolExecutor(segments) as pool:
        return sum(pool.map(one, range(segments)))


def raw_batch(ddb: Any, source: str, target: str, segments: int) -> int:
    def one(segment: int) -> int:
        written = 0
        for items in scan_segment(ddb, source, segment, segments):
            for start in range(0, len(items), 25):
                pending = [{"PutRequest": {"Item": i}} for i in items[start : start + 25]]
                while pending:
                    resp = ddb.batch_write_item(RequestItems={target: pending})
                    pending = resp.get("UnprocessedItems", {}).get(target, [])
                written += len(items[start : start + 25])
        return written

    with ThreadPoolExecutor(segments) as pool:
        return sum(pool.map(one, range(segments)))


def timed(fn: Any, *args: Any, **kwargs: Any) -> tuple[float, Any]:
    start = time.perf_counter()
    result = fn(*args, **kwargs)
    return time.perf_counter() - start, result


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[5000, 20000])
    parser.add_argument("--segments", type=int, default=4)
    parser.add_argument("--in-flight", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args(argv)
    emulator_credentials(REGION)

    server = MotoServer().start()
    try:
        pool = args.segments * args.in_flight * 2
        ddb = boto3.client(
            "dynamodb",
            region_name=REGION,
            endpoint_url=server.url,
            # Generous read timeout: moto's Scan of a 20k-item table is slow on a busy machine.
            # Retries are left to the engine (as its own target client does).
            config=Config(
                max_pool_connections=pool,
                read_timeout=600,
                retries={"mode": "standard", "max_attempts": 1},
            ),
        )
        side = Side(region=REGION, endpoint_url=server.url)
        rows = []
        for size in args.sizes:
            source = f"bench-src-{size}"
            create(ddb, source)
            fill(ddb, source, size)
            best: dict[str, float] = {}
            for _ in range(args.rounds):
                tag = uuid.uuid4().hex[:6]

                raw_t = f"raw-bf-{tag}"
                create(ddb, raw_t)
                seconds, n = timed(
                    raw_conditional, ddb, source, raw_t, args.segments, args.in_flight
                )
                assert n == size, (n, size)
                best["raw_backfill"] = min(best.get("raw_backfill", 1e9), seconds)

                eng_t = f"eng-bf-{tag}"
                create(ddb, eng_t)
                mid = f"bench-{tag}"
                spec = MigrationSpec(
                    migration_id=mid,
                    source=TableLocation(name=source, side=side),
                    target=TableLocation(name=eng_t, side=side),
                    state=TableLocation(name=state_table_name(mid), side=side),
                    segments=args.segments,
                )
                StateStore.ensure_table(ddb, spec.state.name)
                state = StateStore(ddb, spec.state.name, mid)
                seconds, results = timed(
                    backfill_all,
                    spec,
                    state=state,
                    source_client=ddb,
                    target_client=ddb,
                    max_in_flight=args.in_flight,
                    concurrency=args.segments,
                )
                assert total_counters(results)["written"] == size
                best["backfill"] = min(best.get("backfill", 1e9), seconds)

                raw_c = f"raw-cp-{tag}"
                create(ddb, raw_c)
                seconds, n = timed(raw_batch, ddb, source, raw_c, args.segments)
                assert n == size
                best["raw_copy"] = min(best.get("raw_copy", 1e9), seconds)

                eng_c = f"eng-cp-{tag}"
                create(ddb, eng_c)
                options = CopyOptions(segments=args.segments)
                seconds, summary = timed(
                    copy_table,
                    TableLocation(name=source, side=side),
                    TableLocation(name=eng_c, side=side),
                    options,
                    source_client=ddb,
                    target_client=ddb,
                )
                assert summary.written == size
                best["copy"] = min(best.get("copy", 1e9), seconds)
                best["copy_phase"] = min(best.get("copy_phase", 1e9), summary.copy_seconds)
            row = {
                "items": size,
                **{k: round(v, 2) for k, v in best.items()},
                "backfill_ratio": round(best["backfill"] / best["raw_backfill"], 3),
                "copy_ratio": round(best["copy"] / best["raw_copy"], 3),
                "copy_phase_ratio": round(best["copy_phase"] / best["raw_copy"], 3),
            }
            rows.append(row)
            print(
                f"{size:>6} items | raw backfill {best['raw_backfill']:6.2f}s "
                f"({size / best['raw_backfill']:,.0f}/s) | backfill {best['backfill']:6.2f}s | "
                f"ratio {row['backfill_ratio']:.3f} || raw copy {best['raw_copy']:6.2f}s "
                f"({size / best['raw_copy']:,.0f}/s) | copy {best['copy']:6.2f}s | "
                f"ratio {row['copy_ratio']:.3f} (copy phase alone {best['copy_phase']:.2f}s, "
                f"ratio {row['copy_phase_ratio']:.3f})",
                flush=True,
            )
    finally:
        server.stop()


if __name__ == "__main__":
    main()
