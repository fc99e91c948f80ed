"""Start a real moto server in its own process (functional tests and benchmarks talk HTTP to it).

The server is moto's own `moto.server.main`, started through this module so that one moto race
is closed first (`serial_stream_records`): moto numbers a stream record `len(shard.items) +
start` and appends it afterwards, without a lock, so two writes to one stream-enabled table
served at the same moment by two server threads can get the same sequence number. Its shard
iterator then never passes the second of them: every GetRecords from there on returns that one
record again (the intermittent 300 s hang of
`test_backfill.py::test_delete_during_backfill_is_not_resurrected`, whose two hooks write the
source concurrently: its stream applier re-applied one REMOVE thousands of times). DynamoDB
gives every record of a shard its own, increasing sequence number, so the lock only makes moto
closer to AWS.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def serial_stream_records() -> Callable[[], None]:
    """Number and append moto's stream records under one lock (see the module docstring).

    Returns the undo. A shard with Lambda event source mappings keeps moto's own `add`
    unlocked: moto invokes the function inside it, and that call may write the table again.
    """
    from moto.dynamodb.models.table import StreamShard

    original = StreamShard.add
    lock = threading.Lock()

    def add(self: Any, old: Any, new: Any) -> None:
        if self.table.lambda_event_source_mappings:
            original(self, old, new)
            return
        with lock:
            original(self, old, new)

    StreamShard.add = add  # type: ignore[method-assign]

    def undo() -> None:
        StreamShard.add = original  # type: ignore[method-assign]

    return undo


class MotoServer:
    """A moto server subprocess (with `serial_stream_records`) on a free loopback port."""

    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 30.0) -> MotoServer:
        cmd = [sys.executable, "-m", "tests.support.moto_server"]
        path = os.pathsep.join(p for p in (str(REPO_ROOT), os.environ.get("PYTHONPATH")) if p)
        env = dict(os.environ, MOTO_PORT=str(self.port), PYTHONPATH=path)
        self.proc = subprocess.Popen(
            [*cmd, "-H", "127.0.0.1", "-p", str(self.port)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env=env,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                urllib.request.urlopen(f"{self.url}/moto-api/", timeout=1).read()
                return self
            except OSError:
                if self.proc.poll() is not None:
                    raise RuntimeError("moto_server exited during start-up") from None
                time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"moto_server did not answer on {self.url} within {timeout}s")

    def reset(self) -> None:
        req = urllib.request.Request(f"{self.url}/moto-api/reset", method="POST")
        urllib.request.urlopen(req, timeout=10).read()

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        self.proc = None


def main(argv: list[str] | None = None) -> None:
    """`python -m tests.support.moto_server -H HOST -p PORT`: moto's server, race closed."""
    from moto.server import main as moto_main

    serial_stream_records()
    moto_main(argv)


if __name__ == "__main__":
    main()
