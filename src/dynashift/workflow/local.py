"""The replicator of a local run: the stream follower in a thread, feeding the Replicator.

It stands in for the event source mapping of the deployed stack: `start` begins following the
source stream from TRIM_HORIZON (or the shard checkpoints of a resumed run), `lag` says whether
everything written before a moment has been applied and `drain` waits until everything written
before the drain began is applied — both read the replicator's own progress records in the
state store with the code the AWS control uses — and `stop` ends the thread.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any

from dynashift.errors import RuntimeFailure
from dynashift.follower import StreamFollower
from dynashift.models import MigrationSpec
from dynashift.replication_progress import ProgressChecker, ReadBudget
from dynashift.replicator import Replicator
from dynashift.tables import describe_table, table_keys
from dynashift.workflow.control import LagStatus, progress_drain, progress_lag
from dynashift.workflow.steps import state_store

log = logging.getLogger("dynashift.workflow")


class LocalReplication:
    """A `ReplicationControl` backed by a `StreamFollower` thread (thread-safe)."""

    def __init__(
        self,
        *,
        drain_timeout: float = 300.0,
        clock: Callable[[], float] = time.time,
        batch_size: int = 1000,
        check_interval: float = 0.5,
    ) -> None:
        self.drain_timeout = drain_timeout
        #: Stream reads of a lag/drain check; moto has no read limit, so checks may come sooner
        #: than in AWS (5 s), the per-check GetRecords budget is the same.
        self.budget = ReadBudget(min_interval=check_interval)
        self.clock = clock
        self.batch_size = batch_size
        self.follower: StreamFollower | None = None
        self.stream_arn: str | None = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._lock = threading.Lock()

    # --- ReplicationControl ----------------------------------------------------------------------

    def start(self, spec: MigrationSpec, stream_arn: str) -> dict[str, Any]:
        with self._lock:
            if self.running:
                return {"follower": "running", "created": False}
            state = state_store(spec)
            keys = table_keys(describe_table(spec.target.clients().dynamodb(), spec.target.name))
            replicator = Replicator.for_spec(spec, keys, state)
            self.follower = StreamFollower(
                stream_arn,
                spec.source.clients().streams(),
                replicator,
                state,
                batch_size=self.batch_size,
            )
            self.stream_arn = stream_arn
            self._stop.clear()
            self._thread = threading.Thread(
                target=self._run, name="dynashift-follower", daemon=True
            )
            self._thread.start()
            log.info("replicator following %s", stream_arn)
            return {"follower": "started", "created": True}

    def _run(self) -> None:
        follower = self.follower
        if follower is None:
            return
        try:
            follower.run(self._stop)
        except BaseException as exc:
            log.error("stream follower stopped: %s", exc)

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def _require(self) -> StreamFollower:
        if self.follower is None:
            raise RuntimeFailure("the local replicator was not started")
        if self.follower.error is not None:
            raise RuntimeFailure(f"the local replicator failed: {self.follower.error}")
        return self.follower

    def _checker(self, spec: MigrationSpec) -> ProgressChecker:
        if self.stream_arn is None:
            raise RuntimeFailure("the local replicator was not started")
        return ProgressChecker(
            spec.source.clients().streams(),
            state_store(spec),
            self.stream_arn,
            budget=self.budget,
            clock=self.clock,
        )

    def lag(self, spec: MigrationSpec, since: datetime | None = None) -> LagStatus:
        """From the replicator's progress records, exactly as in AWS (`progress_lag`).

        It does not go through the follower (whose lock its busy polling thread holds most of
        the time under a steady write load), so it answers promptly while writes continue.
        """
        self._require()
        return progress_lag(self._checker(spec), since, now=self.clock)

    def drain(self, spec: MigrationSpec, since: datetime | None = None) -> LagStatus:
        """Check the drain (`progress_drain`, as in AWS) until it is done, while the follower
        keeps applying; WorkerDeadlineError naming the shard behind after `drain_timeout`."""
        follower = self._require()
        checker = self._checker(spec)
        while True:
            status = progress_drain(checker, timeout=self.drain_timeout, clock=self.clock)
            if status.caught_up:
                log.info("replicator drained: %s", status.detail)
                return status
            self._require()  # the follower thread failed: say so rather than time out
            if self.running:
                time.sleep(self.budget.min_interval)
            else:
                follower.poll_once()  # no thread (a resumed run, or stopped): apply here

    def stop(self, spec: MigrationSpec | None = None) -> dict[str, Any]:
        self._stop.set()
        thread = self._thread
        if thread is not None:
            thread.join(timeout=60)
        return {"follower": "stopped"}

    # --- for the runner --------------------------------------------------------------------------

    def drain_and_stop(self, timeout: float | None = None) -> int:
        """Apply every record written so far, then stop (used after SIGINT with --follow)."""
        follower = self.follower
        applied = 0
        if follower is not None and follower.error is None and not follower.finished:
            applied = follower.drain(timeout or self.drain_timeout).applied
        self.stop()
        if follower is not None and follower.error is not None:
            raise RuntimeFailure(f"the local replicator failed: {follower.error}")
        return applied
