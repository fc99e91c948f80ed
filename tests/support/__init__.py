"""Reusable test support: a concurrent source writer and a fault-injecting HTTP proxy.

- `tests.support.writer.ConcurrentWriter` — random puts / updates / deletes / re-creates at a
  chosen rate in a background thread, deterministic for a seed, recording every operation.
- `tests.support.fault_proxy.FaultProxy` — a loopback HTTP proxy in front of the moto server
  that injects throttling, partial UnprocessedItems / UnprocessedKeys, connection resets and
  slow responses per DynamoDB operation, deterministic for a seed, counting what it injected.
"""

from tests.support.fault_proxy import FaultProxy, FaultRule
from tests.support.writer import ConcurrentWriter, WriteOp

__all__ = ["ConcurrentWriter", "FaultProxy", "FaultRule", "WriteOp"]
