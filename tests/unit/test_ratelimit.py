"""RateLimiter: token bucket, shared cap, AIMD — driven by a fake clock, never sleeping."""

from __future__ import annotations

import threading

import pytest

from dynashift.clock import Clock
from dynashift.ratelimit import RateLimiter, provisioned_wcu


class FakeTime(Clock):
    """A clock whose sleep advances it (so waits are measured, not slept)."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.slept: list[float] = []
        self._lock = threading.Lock()

    def monotonic(self) -> float:
        with self._lock:
            return self.now

    def sleep(self, seconds: float) -> None:
        with self._lock:
            self.slept.append(seconds)
            self.now += seconds

    def advance(self, seconds: float) -> None:
        with self._lock:
            self.now += seconds


def limiter(rate: float | None, t: FakeTime, **kwargs: object) -> RateLimiter:
    return RateLimiter(rate, clock=t, **kwargs)  # type: ignore[arg-type]


def test_caps_items_per_second() -> None:
    t = FakeTime()
    lim = limiter(100, t, increase=0)
    start = t.now
    for _ in range(1100):
        lim.acquire(1)
    # 100 burst tokens, then 1000 more at 100/s: about 10 s of (fake) time.
    assert t.now - start == pytest.approx(10.0, rel=0.02)


def test_batch_acquire_waits_for_the_whole_batch() -> None:
    t = FakeTime()
    lim = limiter(50, t, increase=0)
    assert lim.acquire(50) == 0.0
    assert lim.acquire(25) == pytest.approx(0.5)


def test_unlimited_never_waits() -> None:
    t = FakeTime()
    lim = limiter(None, t)
    for _ in range(10_000):
        assert lim.acquire(25) == 0.0
    assert lim.rate is None
    assert t.slept == []


def test_throttle_halves_rate_once_per_cooldown() -> None:
    t = FakeTime()
    lim = limiter(200, t, cooldown=1.0, increase=10)
    lim.on_throttle()
    assert lim.rate == pytest.approx(100)
    lim.on_throttle()  # same window: one signal
    assert lim.rate == pytest.approx(100)
    t.advance(1.0)
    lim.on_throttle()
    assert lim.rate == pytest.approx(50)
    assert lim.throttles == 3


def test_additive_increase_back_to_the_ceiling() -> None:
    t = FakeTime()
    lim = limiter(200, t, cooldown=1.0, increase=10)
    lim.on_throttle()
    assert lim.rate == pytest.approx(100)
    t.advance(1.0)  # cooldown passes
    t.advance(5.0)
    assert lim.rate == pytest.approx(150, abs=10.1)
    t.advance(100.0)
    assert lim.rate == pytest.approx(200)  # never above the ceiling


def test_rate_never_below_minimum() -> None:
    t = FakeTime()
    lim = limiter(4, t, min_rate=1.0, cooldown=0.0)
    for _ in range(10):
        lim.on_throttle()
    assert lim.rate == pytest.approx(1.0)


def test_unlimited_starts_from_half_the_measured_rate_after_a_throttle() -> None:
    t = FakeTime()
    lim = limiter(None, t)
    for _ in range(4):  # 4 s at 300 items/s
        for _ in range(30):
            lim.acquire(10)
        t.advance(1.0)
    lim.on_throttle()
    assert lim.rate is not None
    assert 100 <= lim.rate <= 200
    before = t.now
    for _ in range(100):
        lim.acquire(10)
    assert t.now > before  # now it limits


def test_shared_by_threads_holds_the_cap() -> None:
    t = FakeTime()
    lim = limiter(100, t, increase=0)

    def work() -> None:
        for _ in range(250):
            lim.acquire(1)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(10)
    # 1000 items at 100/s with a 100-item burst: at least 9 s of fake time were waited out.
    assert lim.waited >= 9.0 - 1e-6


def test_for_target_uses_max_rate_then_provisioned_share() -> None:
    t = FakeTime()
    provisioned = {
        "BillingModeSummary": {"BillingMode": "PROVISIONED"},
        "ProvisionedThroughput": {"WriteCapacityUnits": 1000},
    }
    on_demand = {
        "BillingModeSummary": {"BillingMode": "PAY_PER_REQUEST"},
        "ProvisionedThroughput": {"WriteCapacityUnits": 0},
    }
    kw = {"clock": t}
    assert RateLimiter.for_target(250, provisioned, **kw).rate == 250
    assert RateLimiter.for_target(None, provisioned, share=0.5, **kw).rate == 500
    assert RateLimiter.for_target(None, on_demand, **kw).rate is None
    assert provisioned_wcu(None) == 0
    assert provisioned_wcu(on_demand) == 0


def test_rejects_bad_parameters() -> None:
    with pytest.raises(ValueError, match="rate"):
        RateLimiter(0)
    with pytest.raises(ValueError, match="decrease"):
        RateLimiter(10, decrease=1.5)
