"""`dynashift migrate --follow` with concurrent writers, stopped by SIGINT (a real process)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from tests.support.reference import assert_identical
from tests.support.tables import create_table, fill, varied_items
from tests.support.writer import ConcurrentWriter

ROOT = Path(__file__).resolve().parents[2]


def _cli() -> list[str]:
    exe = Path(sys.executable).with_name("dynashift")
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "dynashift.cli.main"]


def test_follow_keeps_replicating_and_drains_on_sigint(
    ddb: Any, endpoint: str, table_name: Any
) -> None:
    source, target = table_name("fl-src"), table_name("fl-tgt")
    create_table(ddb, source)
    n = 500
    fill(ddb, source, varied_items(n, seed=13))
    writer = ConcurrentWriter(
        ddb, source, ("pk",), seed=5, rate_per_s=10, key_space=n, max_seconds=300, max_ops=20_000
    )
    cmd = [
        *_cli(),
        "migrate",
        "--source",
        f"us-east-1:{source}",
        "--target",
        f"us-east-1:{target}",
        "--endpoint-url",
        endpoint,
        "--segments",
        "2",
        "--poll-seconds",
        "0",
        "--follow",
        "--yes",
    ]
    lines: list[str] = []
    following = threading.Event()
    with writer:
        writer.wait_for(20, timeout=20)
        proc = subprocess.Popen(
            cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=os.environ
        )

        def read_err() -> None:
            assert proc.stderr is not None
            for line in proc.stderr:
                lines.append(line)
                if "following the source stream" in line:
                    following.set()

        reader = threading.Thread(target=read_err, daemon=True)
        reader.start()
        try:
            assert following.wait(timeout=280), "".join(lines[-30:])
            # Writes keep coming while the migration follows the stream.
            before = writer.succeeded
            deadline = time.monotonic() + 20
            while writer.succeeded < before + 15 and time.monotonic() < deadline:
                time.sleep(0.2)
            assert writer.succeeded >= before + 15
        except BaseException:
            proc.kill()
            raise
    # The writers have stopped: every change they made was written before the signal.
    proc.send_signal(signal.SIGINT)
    try:
        out, _ = proc.communicate(timeout=180)
    except subprocess.TimeoutExpired:
        proc.kill()
        raise
    reader.join(timeout=10)
    assert proc.returncode == 0, "".join(lines[-30:])
    assert "READY" in out.strip().splitlines()[-1]
    assert any("drained" in line for line in lines)
    assert_identical(ddb, source, ddb, target, ("pk",))
