"""Benchmark: the two verification lookup modes on 5,000 items (requests and read units).

    .venv/bin/python -m bench.verify_modes [--items 5000] [--segments 4] [--payload 0]

Starts a moto server in its own process and fills a source and a target (1% of the target's
items changed, 0.5% missing, 0.5% extra). Then, for each lookup mode, verifies every segment
(serially) and reports:

- requests made to each table (Scan pages + BatchGetItem calls);
- read units by DynamoDB's rounding rules (Scan: each page's total size rounded up to 4 KB;
  BatchGetItem: each item rounded up to 4 KB, at least one unit per key; eventually consistent
  reads cost half) — computed from item sizes, since moto reports a constant capacity;
- time as a ratio to a raw loop measured in the same run: one plain scan of each segment of
  both tables, items counted only.

Modes: batch, merge (default buffer of 5,000 unpaired items) and merge with a small buffer
(`--small-buffer`, default 200: pages of 100 items, so more requests for the same reads).

moto always scans in ascending key order, so the two tables' scans agree here (as two DynamoDB
tables do); the opposite order (a store that hashes differently) is exercised by
tests/functional/test_verify.py with a botocore hook.
"""

from __future__ import annotations

import argparse
import random
import time
from typing import Any

import boto3

from bench import emulator_credentials
from dynashift.aws import Side
from dynashift.items import item_size
from dynashift.models import MigrationSpec, TableLocation
from dynashift.verify import DEFAULT_MERGE_BUFFER, VerifyResult, verify_table
from tests.support.moto_server import MotoServer

REGION = "us-east-1"


def make_item(i: int, rng: random.Random, payload: int) -> dict[str, Any]:
    item = {
        "pk": {"S": f"order#{i:06d}"},
        "customer": {"S": f"c{rng.randint(1, 500)}"},
        "total": {"N": f"{rng.randint(1, 99999)}.{rng.randint(0, 99):02d}"},
        "lines": {"NS": [str(n) for n in rng.sample(range(1, 30), 3)]},
        "status": {"S": rng.choice(["new", "paid", "shipped"])},
        "meta": {"M": {"v": {"N": "1"}, "src": {"S": "bench"}}},
    }
    if payload:
        item["payload"] = {"S": "x" * payload}
    return item


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


def raw_scan(ddb: Any, tables: list[str], segments: int) -> int:
    n = 0
    for table in tables:
        for seg in range(segments):
            kwargs: dict[str, Any] = {"TableName": table, "Segment": seg, "TotalSegments": segments}
            while True:
                page = ddb.scan(**kwargs)
                n += len(page["Items"])
                if "LastEvaluatedKey" not in page:
                    break
                kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]
    return n


def summarize(results: list[VerifyResult]) -> dict[str, Any]:
    def total(attr: str) -> int:
        return sum(getattr(r, attr) for r in results)

    return {
        "source_requests": sum(r.source_reads.requests for r in results),
        "target_requests": sum(r.target_reads.requests for r in results),
        "read_units": sum(r.source_reads.read_units + r.target_reads.read_units for r in results),
        "spilled": total("spilled"),
        "counts": (total("missing"), total("differing"), total("extra")),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--items", type=int, default=5000)
    parser.add_argument("--segments", type=int, default=4)
    parser.add_argument("--payload", type=int, default=0, help="extra bytes per item")
    parser.add_argument(
        "--small-buffer", type=int, default=200, help="merge buffer of the third row (items)"
    )
    args = parser.parse_args(argv)

    server = MotoServer().start()
    try:
        ddb = boto3.client(
            "dynamodb",
            region_name=REGION,
            endpoint_url=server.url,
            aws_access_key_id="bench",
            aws_secret_access_key="bench",
        )
        rng = random.Random(7)
        items = [make_item(i, rng, args.payload) for i in range(args.items)]
        avg = sum(item_size(i) for i in items) / len(items)
        target_items = [dict(i) for i in items]
        n = len(items)
        for i in range(0, n, 100):  # 1% changed
            target_items[i] = {**target_items[i], "status": {"S": "changed"}}
        missing = set(range(50, n, 200))  # 0.5% missing
        target_items = [t for j, t in enumerate(target_items) if j not in missing]
        target_items += [make_item(n + j, rng, args.payload) for j in range(n // 200)]  # extra
        create(ddb, "src", items)
        create(ddb, "tgt-same", target_items)

        emulator_credentials()
        side = Side(region=REGION, endpoint_url=server.url)
        print(
            f"verify_modes: {n} source items (~{avg:.0f} B each), {args.segments} segments, "
            "moto server in its own process"
        )
        header = (
            f"{'target order':<14}{'mode':<11}{'src req':>9}{'tgt req':>9}{'read units':>12}"
            f"{'spilled':>9}{'time/raw':>10}  missing/differing/extra"
        )
        print(header)
        for layout in ("same",):
            target = f"tgt-{layout}"
            spec = MigrationSpec(
                migration_id="bench",
                source=TableLocation(name="src", side=side),
                target=TableLocation(name=target, side=side),
                state=TableLocation(name="dynashift-state-bench", side=side),
                segments=args.segments,
            )
            for label, mode, buffer in (
                ("batch", "batch", DEFAULT_MERGE_BUFFER),
                ("merge", "merge", DEFAULT_MERGE_BUFFER),
                (f"merge/{args.small_buffer}", "merge", args.small_buffer),
            ):
                t0 = time.perf_counter()
                raw_scan(ddb, ["src", target], args.segments)
                raw = time.perf_counter() - t0
                t0 = time.perf_counter()
                results = verify_table(spec, mode=mode, merge_buffer=buffer, checkpoint=False)
                took = time.perf_counter() - t0
                s = summarize(results)
                print(
                    f"{layout:<14}{label:<11}{s['source_requests']:>9}{s['target_requests']:>9}"
                    f"{s['read_units']:>12.1f}{s['spilled']:>9}{took / raw:>9.2f}x  "
                    + "/".join(str(c) for c in s["counts"])
                )
    finally:
        server.stop()


if __name__ == "__main__":
    main()
