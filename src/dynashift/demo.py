"""`dynashift demo`: a whole migration on this machine, no AWS account needed.

Starts the emulator (`dynashift.emulator`: moto in its own process) holding the data tables,
creates a sample source — varied items of every DynamoDB type, a GSI, TTL — keeps random live
writes going while the workflow runs, executes the state machine locally, prints the readiness
checklist and finally compares both tables once the writes have stopped and the stream was drained.
With the export strategy it first turns on point-in-time recovery on its own sample source and
creates a bucket, both in the emulator (`prepare_export`), for the export the workflow loads.
"""

from __future__ import annotations

import base64
import logging
import os
import random
import sys
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, TextIO

import boto3
from botocore.exceptions import ClientError

from dynashift.clock import SYSTEM_CLOCK, Clock
from dynashift.emulator import Emulator
from dynashift.models import Strategy

log = logging.getLogger("dynashift.demo")

REGION = "us-east-1"
SOURCE = "demo-orders"
TARGET = "demo-orders-v2"
#: The export strategy's bucket and prefix, in the embedded emulator only.
EXPORT_BUCKET = "demo-exports"
EXPORT_PREFIX = "dynashift/demo"
GSI = "by-customer"
TTL_ATTRIBUTE = "expires_at"
_STATUSES = ("NEW", "PAID", "SHIPPED", "DELIVERED", "RETURNED")


# --- the embedded data server (dynashift.emulator) -------------------------------------------


def data_client(url: str) -> Any:
    return boto3.client(
        "dynamodb",
        region_name=REGION,
        endpoint_url=url,
        aws_access_key_id="demo",
        aws_secret_access_key="demo",
    )


# --- the sample table -------------------------------------------------------------------------


def sample_item(rng: random.Random, index: int, now: float) -> dict[str, Any]:
    """One order, wire format, with a varied subset of every DynamoDB attribute type; `now`
    (epoch seconds) places the TTL times in the future."""
    item: dict[str, Any] = {
        "pk": {"S": f"order#{index:06d}"},
        "sk": {"S": f"v#{rng.randrange(3)}"},
        "customer": {"S": f"customer#{rng.randrange(2000):05d}"},
        "status": {"S": rng.choice(_STATUSES)},
        "total": {"N": f"{rng.uniform(1, 2000):.2f}"},
        "quantity": {"N": str(rng.randrange(1, 50))},
    }
    if rng.random() < 0.3:
        item[TTL_ATTRIBUTE] = {"N": str(int(now) + rng.randrange(86_400, 30 * 86_400))}
    if rng.random() < 0.5:
        item["gift"] = {"BOOL": rng.random() < 0.5}
    if rng.random() < 0.2:
        item["note"] = {"NULL": True}
    if rng.random() < 0.4:
        item["tags"] = {"SS": sorted({rng.choice(("a", "b", "c", "d", "e")) for _ in range(3)})}
    if rng.random() < 0.3:
        item["scores"] = {"NS": sorted({str(rng.randrange(100)) for _ in range(3)})}
    if rng.random() < 0.2:
        item["blob"] = {"B": rng.randbytes(rng.randrange(1, 64))}
    if rng.random() < 0.1:
        item["thumbs"] = {"BS": [rng.randbytes(8), rng.randbytes(9)]}
    if rng.random() < 0.4:
        item["lines"] = {
            "L": [
                {
                    "M": {
                        "sku": {"S": f"sku-{rng.randrange(500)}"},
                        "n": {"N": str(rng.randrange(9))},
                    }
                }
                for _ in range(rng.randrange(1, 4))
            ]
        }
    if rng.random() < 0.3:
        item["address"] = {
            "M": {
                "city": {"S": rng.choice(("Lyon", "Oslo", "Lima", "Pune"))},
                "zip": {"S": f"{rng.randrange(10000, 99999)}"},
                "geo": {"L": [{"N": f"{rng.uniform(-90, 90):.4f}"}, {"N": "1"}]},
            }
        }
    if rng.random() < 0.05:
        item["payload"] = {"S": base64.b64encode(rng.randbytes(3000)).decode()}
    return item


def prepare_export(url: str, table: str) -> Any:
    """What `--strategy export` needs, in the emulator: point-in-time recovery on the demo's
    own sample source (dynashift never turns it on for a user's table: the export strategy
    requires it) and a bucket for the export. Returns the spec's `ExportLocation`."""
    from dynashift.models import ExportLocation

    data_client(url).update_continuous_backups(
        TableName=table,
        PointInTimeRecoverySpecification={"PointInTimeRecoveryEnabled": True},
    )
    boto3.client(
        "s3",
        region_name=REGION,
        endpoint_url=url,
        aws_access_key_id="demo",
        aws_secret_access_key="demo",
    ).create_bucket(Bucket=EXPORT_BUCKET)
    return ExportLocation(bucket=EXPORT_BUCKET, prefix=EXPORT_PREFIX)


def create_sample_source(
    client: Any,
    name: str,
    items: int,
    *,
    seed: int = 1,
    threads: int = 4,
    progress: Callable[[int], None] | None = None,
    clock: Clock = SYSTEM_CLOCK,
) -> None:
    """Create `name` (pk+sk, a GSI, TTL on `expires_at`) holding `items` sample items."""
    client.create_table(
        TableName=name,
        KeySchema=[
            {"AttributeName": "pk", "KeyType": "HASH"},
            {"AttributeName": "sk", "KeyType": "RANGE"},
        ],
        AttributeDefinitions=[
            {"AttributeName": "pk", "AttributeType": "S"},
            {"AttributeName": "sk", "AttributeType": "S"},
            {"AttributeName": "customer", "AttributeType": "S"},
        ],
        GlobalSecondaryIndexes=[
            {
                "IndexName": GSI,
                "KeySchema": [{"AttributeName": "customer", "KeyType": "HASH"}],
                "Projection": {"ProjectionType": "ALL"},
            }
        ],
        BillingMode="PAY_PER_REQUEST",
    )
    client.get_waiter("table_exists").wait(TableName=name, WaiterConfig={"Delay": 1})
    client.update_time_to_live(
        TableName=name,
        TimeToLiveSpecification={"Enabled": True, "AttributeName": TTL_ATTRIBUTE},
    )
    now = clock.wall()

    def chunk(start: int) -> int:
        rng = random.Random(seed * 1_000_003 + start)
        batch = [
            {"PutRequest": {"Item": sample_item(rng, i, now)}}
            for i in range(start, min(start + 25, items))
        ]
        requests: dict[str, Any] = {name: batch}
        for _ in range(20):
            resp = client.batch_write_item(RequestItems=requests)
            requests = resp.get("UnprocessedItems") or {}
            if not requests:
                break
            clock.sleep(0.05)
        return len(batch)

    with ThreadPoolExecutor(threads) as pool:
        for n in pool.map(chunk, range(0, items, 25)):
            if progress:
                progress(n)


# --- live writes ---------------------------------------------------------------------------------


@dataclass
class LiveWriter:
    """Random puts, updates, deletes and re-creates on the source while the migration runs."""

    client: Any
    table: str
    items: int
    rate_per_s: float = 40.0
    seed: int = 7
    clock: Clock = SYSTEM_CLOCK
    counts: dict[str, int] = field(default_factory=dict)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> LiveWriter:
        self._thread = threading.Thread(target=self._run, name="demo-writer", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)

    def _count(self, what: str) -> None:
        self.counts[what] = self.counts.get(what, 0) + 1

    def _run(self) -> None:
        rng = random.Random(self.seed)
        interval = 1.0 / self.rate_per_s
        deleted: list[dict[str, Any]] = []
        deadline = self.clock.monotonic() + 3600
        while not self.clock.wait(self._stop, interval) and self.clock.monotonic() < deadline:
            index = rng.randrange(self.items)
            key = {"pk": {"S": f"order#{index:06d}"}, "sk": {"S": f"v#{index % 3}"}}
            roll = rng.random()
            try:
                if roll < 0.4:
                    item = sample_item(rng, index, self.clock.wall())
                    self.client.put_item(TableName=self.table, Item=item)
                    self._count("put")
                elif roll < 0.7:
                    self.client.update_item(
                        TableName=self.table,
                        Key={"pk": {"S": f"order#{index:06d}"}, "sk": {"S": "v#0"}},
                        UpdateExpression="SET #s = :s ADD quantity :one",
                        ExpressionAttributeNames={"#s": "status"},
                        ExpressionAttributeValues={
                            ":s": {"S": rng.choice(_STATUSES)},
                            ":one": {"N": "1"},
                        },
                    )
                    self._count("update")
                elif roll < 0.9 or not deleted:
                    self.client.delete_item(TableName=self.table, Key=key)
                    deleted.append(key)
                    self._count("delete")
                else:
                    gone = deleted.pop(rng.randrange(len(deleted)))
                    index = int(gone["pk"]["S"].split("#")[1])
                    item = sample_item(rng, index, self.clock.wall()) | gone
                    self.client.put_item(TableName=self.table, Item=item)
                    self._count("recreate")
            except ClientError as exc:
                log.debug("demo write failed: %s", exc)
                self._count("failed")


# --- the demo --------------------------------------------------------------------------------


def run_demo(
    *,
    items: int = 20_000,
    segments: int = 4,
    write_rate: float = 40.0,
    final_check: bool = False,
    strategy: Strategy = "replay",
    out: TextIO | None = None,
    err: TextIO | None = None,
    clock: Clock = SYSTEM_CLOCK,
) -> int:
    """The whole demo; returns the exit code: 0 when READY (and, with `final_check`, when an
    whole-table comparison after the cutover finds the tables identical)."""
    from dynashift.aws import Side
    from dynashift.models import MigrationSpec, TableLocation
    from dynashift.progress import Progress
    from dynashift.workflow.migrate import (
        MigrationRunner,
        migration_id_for,
        state_location,
        write_outputs,
    )
    from dynashift.workflow.steps import WorkflowInput, WorkflowSettings

    out = out or sys.stdout
    err = err or sys.stderr
    started = clock.monotonic()
    _local_credentials()
    with Emulator() as server:
        print(f"embedded moto server at {server.url}", file=err)
        client = data_client(server.url)
        bar = Progress("sample data", items, stream=err)
        create_sample_source(client, SOURCE, items, progress=bar.advance, clock=clock)
        bar.close()
        side = Side(region=REGION, endpoint_url=server.url)
        source = TableLocation(name=SOURCE, side=side)
        target = TableLocation(name=TARGET, side=side)
        migration_id = migration_id_for(source, target)
        export = prepare_export(server.url, SOURCE) if strategy == "export" else None
        if export is not None:
            print(
                f"export strategy: point-in-time recovery enabled on the demo's own {SOURCE}, "
                f"export to s3://{EXPORT_BUCKET}/{EXPORT_PREFIX} (both in the embedded server)",
                file=err,
            )
        spec = MigrationSpec(
            migration_id=migration_id,
            source=source,
            target=target,
            state=state_location(migration_id, target),
            segments=segments,
            strategy=strategy,
            export=export,
            worker_budget_seconds=240,
        )
        settings = WorkflowSettings(
            poll_seconds=1, export_poll_seconds=1, max_concurrency=segments, approval=True
        )
        workflow_input = WorkflowInput(spec=spec, settings=settings)
        writer = LiveWriter(client, SOURCE, items, rate_per_s=write_rate, clock=clock).start()
        print(f"live writes: about {write_rate:g}/s on {SOURCE} during the migration", file=err)

        def approve() -> bool:
            # The operator's cutover: writes stop, then the approval lets the workflow drain
            # the stream (everything written before the drain) and stop the replicator.
            writer.stop()
            print(f"READY - live writes stopped {writer.counts}; cutover approved", file=err)
            return True

        runner = MigrationRunner(workflow_input, err=err, out=out, approve=approve, clock=clock)
        try:
            run = runner.run()
        finally:
            writer.stop()
        write_outputs(run, out=out)
        identical = _final_comparison(spec, out) if final_check else True
        elapsed = clock.monotonic() - started
        print(f"demo finished in {elapsed:.0f} s", file=err)
        return run.exit_code if identical else 1


def _local_credentials() -> None:
    """The demo talks only to its embedded server: give this process dummy credentials so no
    AWS account (or configured profile) is needed or used."""
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN"):
        os.environ.pop(name, None)
    os.environ["AWS_ACCESS_KEY_ID"] = "demo"
    os.environ["AWS_SECRET_ACCESS_KEY"] = "demo"
    os.environ["AWS_DEFAULT_REGION"] = REGION


def _final_comparison(spec: Any, out: TextIO) -> bool:
    """After cutover: the whole tables compared once more, outside the workflow but with the
    same diff engine as its verification (merge mode: one scan of each table per segment,
    segments in parallel, nothing checkpointed). A fresh pass after the writes stopped and the
    stream drained, not an independent check of that engine (the tests compare with their own
    reference, `tests/support/reference.py`)."""
    from dynashift.verify import VerifyConfig, verify_segment

    config = VerifyConfig(mode="merge", checkpoint=False)

    def one(segment: int) -> Any:
        result = verify_segment(spec, segment, None, config)
        while not result.done:
            result = verify_segment(spec, segment, result, config)
        return result

    with ThreadPoolExecutor(spec.segments) as pool:
        results = list(pool.map(one, range(spec.segments)))
    missing = sum(r.missing for r in results)
    differing = sum(r.differing for r in results)
    extra = sum(r.extra for r in results)
    scanned = sum(r.scanned_source for r in results)
    clean = not (missing or differing or extra)
    print(
        f"after cutover: {scanned} source items compared with the target: "
        f"{missing} missing, {differing} differing, {extra} extra"
        + (" - identical" if clean else ""),
        file=out,
    )
    return clean
