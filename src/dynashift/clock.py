"""The one source of time the engine is handed: wall time, monotonic time and sleep.

As s3transfer hands its `TransferManager` a client, OS utilities and time, the entry points
(CLI commands, handlers, the local runner) hand a `Clock` to the engine; tests hand a manual
clock (`tests/support/clock.py`) whose `sleep` only moves its time forward, so a wait is
instant and its deadline still holds. `SYSTEM_CLOCK` is the real one, the default wherever a
clock is optional.
"""

from __future__ import annotations

import threading
import time


class Clock:
    """Real time: `wall()` (epoch seconds), `monotonic()` (for deadlines) and `sleep(s)`."""

    def wall(self) -> float:
        return time.time()

    def monotonic(self) -> float:
        return time.monotonic()

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)

    def wait(self, stop: threading.Event, seconds: float) -> bool:
        """Sleep `seconds`, waking early when `stop` is set; True when it is set."""
        return stop.wait(seconds)


#: The process's real clock (stateless: one is enough).
SYSTEM_CLOCK = Clock()
