"""A manual clock for tests: the engine's `Clock` whose time moves only when slept on."""

from __future__ import annotations

import threading
import time

from dynashift.clock import Clock


class ManualClock(Clock):
    """A clock that moves only when slept on (or `advance`d): waits are instant in tests.

    `monotonic()` starts at `start`. `wall()` is `wall_start` moved the same way, or — with no
    `wall_start` — the real wall time (leases in a shared state table stay comparable with the
    other workers'). `sleeps` records every requested sleep, so a test can assert a wait
    happened; `min_step` makes each sleep move at least that far.
    """

    def __init__(
        self, start: float = 0.0, *, wall_start: float | None = None, min_step: float = 0.0
    ) -> None:
        self.now = start
        self.wall_offset = None if wall_start is None else wall_start - start
        self.min_step = min_step
        self.sleeps: list[float] = []

    def wall(self) -> float:
        return time.time() if self.wall_offset is None else self.wall_offset + self.now

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.advance(max(seconds, self.min_step))

    def wait(self, stop: threading.Event, seconds: float) -> bool:
        self.sleep(seconds)
        return stop.is_set()

    def advance(self, seconds: float) -> None:
        self.now += seconds


class TickingClock(ManualClock):
    """Every wall-time read is `step` seconds after the previous one (budgets spent by reads)."""

    def __init__(self, step: float = 1.0) -> None:
        super().__init__(wall_start=0.0)
        self.step = step

    def wall(self) -> float:
        now = super().wall()
        self.advance(self.step)
        return now


class NoSleepClock(Clock):
    """Real time whose `sleep` returns at once (backoff and rate-limit waits are skipped)."""

    def sleep(self, seconds: float) -> None:
        return None
