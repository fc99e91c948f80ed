"""Backoff with jitter and the rule for which AWS errors are worth retrying.

The clock, the sleep and the random source are injectable so tests never really sleep.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar

from botocore.exceptions import ClientError, ConnectionError, HTTPClientError, ReadTimeoutError

from dynashift.aws import error_code
from dynashift.clock import SYSTEM_CLOCK, Clock

T = TypeVar("T")

THROTTLE_CODES = frozenset(
    {
        "ProvisionedThroughputExceededException",
        "ThrottlingException",
        "RequestLimitExceeded",
        "TooManyRequestsException",
        "LimitExceededException",
    }
)
TRANSIENT_CODES = THROTTLE_CODES | {
    "InternalServerError",
    "InternalFailure",
    "ServiceUnavailable",
    "TransactionConflictException",
}


def is_throttle(exc: BaseException) -> bool:
    return error_code(exc) in THROTTLE_CODES


def is_transient(exc: BaseException) -> bool:
    # HTTPClientError covers ConnectionClosedError (a reset mid-response).
    if isinstance(exc, ConnectionError | HTTPClientError | ReadTimeoutError):
        return True
    if isinstance(exc, ClientError):
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
        return error_code(exc) in TRANSIENT_CODES or status >= 500
    return False


@dataclass
class Backoff:
    """Exponential backoff with full jitter: sleep U(0, min(cap, base * 2**attempt))."""

    base: float = 0.05
    cap: float = 5.0
    max_attempts: int = 12
    clock: Clock = SYSTEM_CLOCK
    rng: random.Random = field(default_factory=random.Random)

    def delay(self, attempt: int) -> float:
        return self.rng.uniform(0, min(self.cap, self.base * (2**attempt)))

    def wait(self, attempt: int) -> float:
        d = self.delay(attempt)
        self.clock.sleep(d)
        return d


def call_with_retry(
    fn: Callable[[], T],
    backoff: Backoff | None = None,
    is_retryable: Callable[[BaseException], bool] = is_transient,
    on_retry: Callable[[BaseException], None] | None = None,
) -> T:
    """Call `fn`, retrying retryable errors with backoff; re-raise after the last attempt."""
    backoff = backoff or Backoff()
    attempt = 0
    while True:
        try:
            return fn()
        except Exception as exc:
            if not is_retryable(exc) or attempt + 1 >= backoff.max_attempts:
                raise
            if on_retry is not None:
                on_retry(exc)
            backoff.wait(attempt)
            attempt += 1
