"""A manual clock for tests: the engine's `Clock` whose time moves only when slept on."""

from __future__ import annotations

from dynashift.clock import Clock


class ManualClock(Clock):
    """A clock that moves only when slept on (or `advance`d): waits are instant in tests.

    `sleeps` records every requested sleep, so a test can assert that a wait happened.
    `min_step` makes each sleep move at least that far (a poll loop that sleeps 0 still ends).
    """

    def __init__(self, start: float = 0.0, *, wall_start: float = 1.7e9, min_step: float = 0.0):
        self.now = start
        self.wall_offset = wall_start - start
        self.min_step = min_step
        self.sleeps: list[float] = []

    def wall(self) -> float:
        return self.wall_offset + self.now

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.advance(max(seconds, self.min_step))

    def advance(self, seconds: float) -> None:
        self.now += seconds
