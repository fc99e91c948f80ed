"""Benchmark: the stream follower applying random writes to a copied table, vs a raw loop.

    .venv/bin/python -m bench.replicator [--items 5000] [--writes 2000] [--rounds 3]
                                         [--batch-size 1000] [--phase PLAIN|BACKFILL]

Starts a moto server in its own process, fills a source with N items and copies them to two
targets (the follower's and the raw loop's). Then it enables the source stream and a seeded
writer (tests/support/writer.py) makes W random puts, updates, deletes and re-creates as fast as
moto takes them. Each round then times, alternately:

- raw: a loop applying the stream's records (read beforehand, untimed) in order with one PutItem
  (NewImage) or DeleteItem (Keys) each — the least any replicator must do;
- follower: `StreamFollower.drain()` from TRIM_HORIZON (a fresh checkpoint each round) feeding a
  `Replicator` with a state store — stream reads, conversion to the Lambda event shape, the
  delete rule (phase read; tombstones with --phase BACKFILL), coalescing and checkpoints.

Re-applying the same records in later rounds does the same work (I3), so rounds are comparable.
Both targets are compared with the source at the end (tests/support/reference.py). The figure is the
ratio follower records/s ÷ raw records/s (best round of each): absolute rates on moto depend on
the machine and its load.
"""

from __future__ import annotations

import argparse
import time
from typing import Any

import boto3

from bench import emulator_credentials
from dynashift.aws import Side
from dynashift.follower import StreamFollower
from dynashift.models import TableLocation
from dynashift.replicator import Replicator
from dynashift.state import PHASE_BACKFILL, PHASE_PLAIN, StateStore
from dynashift.tombstones import finish_backfill
from tests.support.moto_server import MotoServer
from tests.support.reference import diff_tables
from tests.support.writer import ConcurrentWriter, default_item

REGION = "us-east-1"
KEY_SCHEMA = [{"AttributeName": "pk", "KeyType": "HASH"}]
ATTRIBUTES = [{"AttributeName": "pk", "AttributeType": "S"}]


def create(ddb: Any, name: str, **extra: Any) -> dict[str, Any]:
    desc: dict[str, Any] = ddb.create_table(
        TableName=name,
        KeySchema=KEY_SCHEMA,
        AttributeDefinitions=ATTRIBUTES,
        BillingMode="PAY_PER_REQUEST",
        **extra,
    )["TableDescription"]
    return desc


def fill(ddb: Any, tables: list[str], items: int) -> None:
    import random

    rng = random.Random(1)
    rows = [{"pk": {"S": f"k{i:05d}"}, **default_item(rng)} for i in range(items)]
    for table in tables:
        for start in range(0, len(rows), 25):
            chunk = [{"PutRequest": {"Item": r}} for r in rows[start : start + 25]]
            ddb.batch_write_item(RequestItems={table: chunk})


def read_stream(streams: Any, arn: str) -> list[dict[str, Any]]:
    shard = streams.describe_stream(StreamArn=arn)["StreamDescription"]["Shards"][0]["ShardId"]
    it = streams.get_shard_iterator(StreamArn=arn, ShardId=shard, ShardIteratorType="TRIM_HORIZON")
    iterator, records = it["ShardIterator"], []
    while True:
        resp = streams.get_records(ShardIterator=iterator, Limit=1000)
        if not resp["Records"]:
            return records
        records.extend(resp["Records"])
        iterator = resp["NextShardIterator"]


def raw_apply(ddb: Any, table: str, records: list[dict[str, Any]]) -> float:
    start = time.perf_counter()
    for r in records:
        body = r["dynamodb"]
        if r["eventName"] == "REMOVE":
            ddb.delete_item(TableName=table, Key=body["Keys"])
        else:
            ddb.put_item(TableName=table, Item=body["NewImage"])
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=5000)
    parser.add_argument("--writes", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=1000)
    parser.add_argument("--phase", choices=[PHASE_PLAIN, PHASE_BACKFILL], default=PHASE_PLAIN)
    args = parser.parse_args(argv)
    emulator_credentials()
    server = MotoServer().start()
    try:
        ddb = boto3.client("dynamodb", region_name=REGION, endpoint_url=server.url)
        streams = boto3.client("dynamodbstreams", region_name=REGION, endpoint_url=server.url)
        create(ddb, "source")
        create(ddb, "target-follow")
        create(ddb, "target-raw")
        t0 = time.perf_counter()
        fill(ddb, ["source", "target-follow", "target-raw"], args.items)
        print(
            f"filled source + 2 copies with {args.items} items in {time.perf_counter() - t0:.1f}s"
        )
        arn = ddb.update_table(
            TableName="source",
            StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"},
        )["TableDescription"]["LatestStreamArn"]
        writer = ConcurrentWriter(
            ddb,
            "source",
            ("pk",),
            seed=42,
            rate_per_s=100_000,
            key_space=args.items,
            max_ops=args.writes,
            max_seconds=600,
        ).start()
        writer.join(timeout=900)
        records = read_stream(streams, arn)
        print(f"writer: {writer.summary()}; stream records: {len(records)}")

        StateStore.ensure_table(ddb, "bench-state")
        side = Side(region=REGION, endpoint_url=server.url)
        replicator = Replicator(TableLocation(name="target-follow", side=side), ["pk"], state=None)
        raw_times: list[float] = []
        read_times: list[float] = []
        follow_times: list[float] = []
        coalesced = 0
        for round_no in range(args.rounds):
            start = time.perf_counter()
            assert len(read_stream(streams, arn)) == len(records)
            read_times.append(time.perf_counter() - start)
            raw_times.append(raw_apply(ddb, "target-raw", records))
            state = StateStore(ddb, "bench-state", f"round-{round_no}")
            state.put_meta(phase=args.phase)
            replicator.state = state
            follower = StreamFollower(arn, streams, replicator, state, batch_size=args.batch_size)
            start = time.perf_counter()
            follower.drain(timeout=900)
            follow_times.append(time.perf_counter() - start)
            coalesced = follower.totals.coalesced
            assert follower.applied == len(records), (follower.applied, len(records))
            if args.phase == PHASE_BACKFILL:
                finish_backfill(ddb, "target-follow", state)
            print(
                f"round {round_no + 1}: raw read {read_times[-1]:.2f}s"
                f" + apply {raw_times[-1]:.2f}s,"
                f" follower {follow_times[-1]:.2f}s"
                f" (tombstones {follower.totals.tombstones}, coalesced {coalesced})"
            )
        for target in ("target-raw", "target-follow"):
            diff = diff_tables(ddb, "source", ddb, target, ("pk",))
            counts = {k: len(v) for k, v in diff.items()}
            assert not any(diff.values()), f"{target} differs from the source: {counts}"
        n = len(records)
        raw_rate = n / min(raw_times)
        read_apply_rate = n / min(r + a for r, a in zip(read_times, raw_times, strict=True))
        follow_rate = n / min(follow_times)
        print(f"records: {n} ({coalesced} coalesced by the follower); best of {args.rounds}")
        print(f"raw apply loop:      {raw_rate:8.1f} records/s")
        print(f"raw read+apply loop: {read_apply_rate:8.1f} records/s")
        print(f"follower:            {follow_rate:8.1f} records/s (phase {args.phase})")
        print(f"ratio follower / raw apply:      {follow_rate / raw_rate:.2f}")
        print(f"ratio follower / raw read+apply: {follow_rate / read_apply_rate:.2f}")
        print("both targets equal the source")
    finally:
        server.stop()


if __name__ == "__main__":
    main()
