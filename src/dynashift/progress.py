"""Progress reporting for long work: a bar on a terminal, periodic log lines otherwise.

The engine reports through a `Progress` it is given (subscriber style, like s3transfer); it
never prints. `NullProgress` is the default for library use and Lambda.
"""

from __future__ import annotations

import logging
import sys
import threading
from typing import TextIO

from dynashift.clock import SYSTEM_CLOCK, Clock

log = logging.getLogger("dynashift")


class Progress:
    """Counts work done against an (approximate) total; thread-safe."""

    def __init__(
        self,
        label: str,
        total: int | None = None,
        *,
        tty: bool | None = None,
        stream: TextIO | None = None,
        log_every: float = 10.0,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        self.label = label
        self.total = total
        self.done = 0
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty() if tty is None else tty
        self.log_every = log_every
        self.clock = clock
        self.started = clock.monotonic()
        self._last_emit = 0.0
        self._lock = threading.Lock()
        self.note = ""

    def advance(self, n: int = 1, note: str | None = None) -> None:
        with self._lock:
            self.done += n
            if note is not None:
                self.note = note
            now = self.clock.monotonic()
            interval = 0.2 if self.tty else self.log_every
            if now - self._last_emit >= interval:
                self._last_emit = now
                self._emit(now)

    def rate(self) -> float:
        elapsed = max(self.clock.monotonic() - self.started, 1e-9)
        return self.done / elapsed

    def _emit(self, now: float) -> None:
        rate = self.rate()
        if self.tty:
            if self.total:
                frac = min(self.done / self.total, 1.0)
                bar = "#" * int(frac * 30)
                text = f"\r{self.label} [{bar:<30}] {self.done}/~{self.total} {rate:,.0f}/s"
            else:
                text = f"\r{self.label} {self.done} {rate:,.0f}/s"
            self.stream.write(f"{text} {self.note}"[:160])
            self.stream.flush()
        else:
            total = f"/~{self.total}" if self.total else ""
            extra = f" ({self.note})" if self.note else ""
            log.info("%s: %d%s done, %.0f/s%s", self.label, self.done, total, rate, extra)

    def close(self) -> None:
        with self._lock:
            self._emit(self.clock.monotonic())
            if self.tty:
                self.stream.write("\n")
                self.stream.flush()


class NullProgress(Progress):
    """Counts, shows nothing."""

    def __init__(self, label: str = "", total: int | None = None) -> None:
        super().__init__(label, total, tty=False)

    def _emit(self, now: float) -> None:
        return None
