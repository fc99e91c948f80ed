"""Soak: `dynashift migrate --follow` under a steady concurrent writer, then SIGINT and compare.

    .venv/bin/python -m bench.soak [--items 20000] [--minutes 10] [--rate 100] [--seed 1]
                                   [--segments 4] [--lag-threshold 30]

Starts a moto server in its own process and fills a source with N items of every attribute
type. A raw loop first copies the source into a scratch table (one parallel Scan, BatchWriteItem
of 25, the least any backfill must do) to give the machine's baseline. Then a seeded
`ConcurrentWriter` (tests/support/writer.py: puts, updates, deletes, re-creates) writes to the
source at RATE writes/s for MINUTES, while `dynashift migrate --follow` (a real process) runs
the whole workflow and keeps replicating after READY. When the writer stops, the migrate
process gets SIGINT, drains every record written before it and exits; the independent
comparison (tests/support/reference.py) then counts divergent items (must be 0).

Printed: writes made / failed, the migrate exit code and verdict, divergence (missing, extra,
differing), the backfill rate from the readiness report's phase timeline and its ratio to the
raw copy loop measured in the same run (absolute rates on moto depend on the machine's load).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from tests.support.moto_server import MotoServer
from tests.support.reference import diff_tables
from tests.support.tables import client, create_table, fill, varied_items
from tests.support.writer import ConcurrentWriter

ROOT = Path(__file__).resolve().parents[1]
REGION = "us-east-1"


def raw_copy(ddb: Any, source: str, target: str, segments: int) -> float:
    """Items/s of a plain parallel Scan + BatchWriteItem copy (the baseline)."""

    def one(segment: int) -> int:
        n = 0
        kwargs: dict[str, Any] = {"TableName": source, "Segment": segment}
        kwargs["TotalSegments"] = segments
        while True:
            page = ddb.scan(**kwargs)
            fill(ddb, target, page.get("Items", []))
            n += len(page.get("Items", []))
            if "LastEvaluatedKey" not in page:
                return n
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    started = time.monotonic()
    with ThreadPoolExecutor(segments) as pool:
        total = sum(pool.map(one, range(segments)))
    return total / (time.monotonic() - started)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=20_000)
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--rate", type=float, default=100.0, help="writes per second")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--segments", type=int, default=4)
    parser.add_argument(
        "--lag-threshold",
        type=float,
        default=30.0,
        help="READY lag threshold in seconds: a steady writer keeps the stream a few seconds "
        "behind on moto, and a NOT READY run stops replicating (default 30)",
    )
    args = parser.parse_args(argv)
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
    os.environ.setdefault("AWS_DEFAULT_REGION", REGION)

    server = MotoServer().start()
    try:
        ddb = client(server.url)
        source, scratch, target = "soak-src", "soak-raw", "soak-tgt"
        create_table(ddb, source)
        create_table(ddb, scratch)
        t = time.monotonic()
        fill(ddb, source, varied_items(args.items, seed=args.seed))
        print(f"filled {args.items} items in {time.monotonic() - t:.1f} s", flush=True)
        raw_rate = raw_copy(ddb, source, scratch, args.segments)
        print(f"raw copy loop: {raw_rate:.0f} items/s", flush=True)
        ddb.delete_table(TableName=scratch)

        seconds = args.minutes * 60
        writer = ConcurrentWriter(
            ddb,
            source,
            ("pk",),
            seed=args.seed,
            rate_per_s=args.rate,
            key_space=args.items + args.items // 10,
            max_ops=int(args.rate * seconds * 1.2) + 10,
            max_seconds=seconds,
        )
        report = Path(tempfile.mkdtemp()) / "soak-report.json"
        exe = Path(sys.executable).with_name("dynashift")
        cmd = [
            str(exe),
            "migrate",
            "--source",
            f"{REGION}:{source}",
            "--target",
            f"{REGION}:{target}",
            "--endpoint-url",
            server.url,
            "--segments",
            str(args.segments),
            "--lag-threshold",
            str(args.lag_threshold),
            "--follow",
            "--report",
            str(report),
            "--yes",
        ]
        started = time.monotonic()
        with writer:
            proc = subprocess.Popen(
                cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
            )
            writer.join(timeout=seconds + 120)
        print(f"writer done: {writer.summary()}", flush=True)
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=1800)
        elapsed = time.monotonic() - started
        verdict = out.strip().splitlines()[-1] if out.strip() else "(no output)"
        diff = diff_tables(ddb, source, ddb, target, ("pk",))
        divergence = {k: len(v) for k, v in diff.items()}
        data = json.loads(report.read_text()) if report.exists() else {}
        backfill = next((p for p in data.get("phases", []) if p["name"] == "backfill"), None)
        rate = None
        if backfill and backfill["ended"] > backfill["started"]:
            rate = backfill["items"] / (backfill["ended"] - backfill["started"])
        result = {
            "items": args.items,
            "minutes": args.minutes,
            "write_rate": args.rate,
            "writes": writer.total,
            "writes_ok": writer.succeeded,
            "writes_failed": writer.total - writer.succeeded,
            "migrate_exit": proc.returncode,
            "verdict": verdict,
            "divergence": divergence,
            "divergent_total": sum(divergence.values()),
            "backfill_items_per_s": round(rate, 1) if rate else None,
            "raw_copy_items_per_s": round(raw_rate, 1),
            "backfill_vs_raw": round(rate / raw_rate, 2) if rate else None,
            "elapsed_s": round(elapsed, 1),
        }
        if proc.returncode != 0:
            print(err[-3000:], file=sys.stderr)
        print(json.dumps(result, indent=2))
        return 0 if proc.returncode == 0 and result["divergent_total"] == 0 else 1
    finally:
        server.stop()


if __name__ == "__main__":
    raise SystemExit(main())
