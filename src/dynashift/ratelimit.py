"""A write-rate limiter shared by every worker of a process, with AIMD on throttling.

`RateLimiter` is a token bucket measured in items per second. All segment workers of one
process (threads locally, one Lambda invocation in AWS) draw from the same instance, so the cap
holds for the process as a whole. The cap comes from `--max-write-rate ITEMS_PER_S` or from a
share of the target's provisioned write capacity (`for_target`).

Throttling makes it adapt: `on_throttle()` cuts the rate multiplicatively (at most once per
`cooldown` seconds, so a burst of throttled in-flight requests counts as one signal), and every
throttle-free second adds `increase` items/s back, up to the ceiling. Without a ceiling (an
on-demand target and no `--max-write-rate`) the limiter lets everything through until the first
throttle, then starts from half the rate it measured.

The `Clock` (monotonic time and sleep) is injectable: unit tests drive it with a fake clock and
never sleep.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Mapping
from typing import Any

from dynashift.clock import SYSTEM_CLOCK, Clock

#: Share of a provisioned target's WCU the backfill may use (the rest serves the replicator).
DEFAULT_CAPACITY_SHARE = 0.8


class RateLimiter:
    """Token bucket in items/s, thread-safe, additive-increase / multiplicative-decrease."""

    def __init__(
        self,
        rate: float | None,
        *,
        burst_seconds: float = 1.0,
        min_rate: float = 1.0,
        decrease: float = 0.5,
        increase: float | None = None,
        cooldown: float = 1.0,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        if rate is not None and rate <= 0:
            raise ValueError(f"rate must be positive, got {rate}")
        if not 0 < decrease < 1:
            raise ValueError(f"decrease must be in (0, 1), got {decrease}")
        #: The cap: the rate never goes above it (None: no cap).
        self.ceiling = rate
        #: The current allowed rate (None: unlimited until the first throttle).
        self._rate = rate
        self.burst_seconds = burst_seconds
        self.min_rate = min_rate
        self.decrease = decrease
        #: Items/s added per throttle-free second (default: 5 % of the ceiling, at least 1;
        #: without a ceiling, 5 % of the rate set at the first throttle).
        self._auto_increase = increase is None
        self.increase = increase if increase is not None else max(1.0, (rate or 0) * 0.05)
        self.cooldown = cooldown
        self.clock = clock
        self._lock = threading.Lock()
        now = clock.monotonic()
        self._tokens = self._capacity()
        self._last = now
        self._last_throttle = -math.inf
        #: Items granted since `_window_start` (to measure the achieved rate; the first
        #: window starts at the first acquire).
        self._window_start: float | None = None
        self._window_items = 0
        self._measured = 0.0
        self.throttles = 0
        self.waited = 0.0

    # --- construction --------------------------------------------------------------------------

    @classmethod
    def for_target(
        cls,
        max_write_rate: float | None,
        target_description: Mapping[str, Any] | None = None,
        *,
        share: float = DEFAULT_CAPACITY_SHARE,
        **kwargs: Any,
    ) -> RateLimiter:
        """The limiter for writing into a target.

        `max_write_rate` wins when given; otherwise a provisioned target is capped at `share` of
        its write capacity units (one item ~ one WCU); an on-demand target is uncapped (AIMD
        still reacts to throttling).
        """
        if max_write_rate is not None:
            return cls(max_write_rate, **kwargs)
        wcu = provisioned_wcu(target_description)
        if wcu:
            return cls(max(1.0, wcu * share), **kwargs)
        return cls(None, **kwargs)

    # --- state ---------------------------------------------------------------------------------

    @property
    def rate(self) -> float | None:
        """The rate currently allowed (items/s), None while unlimited."""
        with self._lock:
            self._advance(self.clock.monotonic())
            return self._rate

    def _capacity(self) -> float:
        if self._rate is None:
            return math.inf
        return max(1.0, self._rate * self.burst_seconds)

    def _advance(self, now: float) -> None:
        """Refill tokens and apply the additive increase for the time since the last call."""
        elapsed = max(0.0, now - self._last)
        self._last = now
        if self._window_start is not None and now - self._window_start >= 1.0:
            self._measured = self._window_items / (now - self._window_start)
            self._window_start, self._window_items = now, 0
        if self._rate is None:
            return
        growing = min(elapsed, now - (self._last_throttle + self.cooldown))
        if growing > 0:
            grown = self._rate + self.increase * growing
            self._rate = min(grown, self.ceiling) if self.ceiling is not None else grown
        self._tokens = min(self._capacity(), self._tokens + elapsed * self._rate)

    # --- the API the workers use ---------------------------------------------------------------

    def acquire(self, n: int = 1) -> float:
        """Block until `n` items may be written. Returns the seconds waited."""
        if n <= 0:
            return 0.0
        with self._lock:
            now = self.clock.monotonic()
            self._advance(now)
            if self._window_start is None:
                self._window_start = now
            self._window_items += n
            if self._rate is None:
                return 0.0
            self._tokens -= n
            wait = 0.0 if self._tokens >= 0 else -self._tokens / self._rate
            self.waited += wait
        if wait > 0:
            self.clock.sleep(wait)
        return wait

    def on_throttle(self) -> None:
        """The target throttled a request: cut the rate (once per cooldown window)."""
        with self._lock:
            now = self.clock.monotonic()
            self._advance(now)
            self.throttles += 1
            if now - self._last_throttle < self.cooldown:
                return
            self._last_throttle = now
            if self._rate is None:
                start = self._window_start if self._window_start is not None else now
                measured = max(self._measured, self._window_items / max(now - start, 0.1))
                self._rate = max(self.min_rate, measured * self.decrease)
                if self._auto_increase:
                    self.increase = max(1.0, self._rate * 0.05)
                self._tokens = 0.0
            else:
                self._rate = max(self.min_rate, self._rate * self.decrease)
                self._tokens = min(self._tokens, self._capacity())


def provisioned_wcu(description: Mapping[str, Any] | None) -> int:
    """Write capacity units of a PROVISIONED table (0 for on-demand or unknown)."""
    if not description:
        return 0
    mode = description.get("BillingModeSummary", {}).get("BillingMode", "PROVISIONED")
    if mode == "PAY_PER_REQUEST":
        return 0
    return int(description.get("ProvisionedThroughput", {}).get("WriteCapacityUnits", 0) or 0)
