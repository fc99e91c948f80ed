"""Every helper the tests share lives here (the fixtures themselves: tests/conftest.py).

- `moto_server` — the moto server subprocess the functional tests talk HTTP to:
  `dynashift.emulator` (moto with the stream-numbering race closed and exports in AWS's layout).
- `export` — a bucket, PITR on, an export waited for, another account's client, and an
  independent reader of an export's manifests and data files.
- `tables` — clients, `create_table`, `fill`, `enable_stream`, item factories, `wait_until`.
- `reference` — the independent comparison (full scans, boto3's deserializer, ==), `snapshot`,
  `nothing_written`.
- `backfill` — specs and state stores for engine calls, botocore-hook fault injection, the
  stream applier that stands in for the replicator.
- `workflow` — workflow inputs and sample sources for the state-machine tests.
- `events` — `load_event(name)` of the event files in tests/events/.
- `lambda_context` — the one Lambda context stand-in (fixture `lambda_context`).
- `functions` — a placeholder Lambda function on the moto server (for mappings and Tasks).
- `fake_streams` — a fake DynamoDB Streams client (shards that split, close, expire, throttle).
- `cli` — `run_cli(argv, capsys)`: exit code and stderr lines of the CLI, in-process.
- `writer.ConcurrentWriter` — random puts / updates / deletes / re-creates at a chosen rate in
  a background thread, deterministic for a seed, recording every operation.
- `fault_proxy.FaultProxy` — a loopback HTTP proxy in front of the moto server that injects
  throttling, partial UnprocessedItems / UnprocessedKeys, connection resets and slow responses.
- `limits` — DynamoDB's key-size limits, which moto does not enforce.
- `sam_template`, `iam_calls`, `iam_eval`, `iam_scenario`, `permissions_doc` — the deployed
  template as CloudFormation sees it (the one CloudFormation YAML loader of the tests), and the
  IAM test built on it.
"""

from tests.support.fault_proxy import FaultProxy, FaultRule
from tests.support.writer import ConcurrentWriter, WriteOp

__all__ = ["ConcurrentWriter", "FaultProxy", "FaultRule", "WriteOp"]
