"""Shared setup of the workflow tests: sample tables and specs on the moto server fixture."""

from __future__ import annotations

import random
from typing import Any

from dynashift.aws import Side
from dynashift.demo import create_sample_source
from dynashift.models import MigrationSpec, TableLocation
from dynashift.workflow.migrate import migration_id_for, state_location
from dynashift.workflow.steps import WorkflowInput, WorkflowSettings
from tests.support.tables import REGION

KEYS = ("pk", "sk")


def make_source(ddb: Any, name: str, items: int, seed: int = 3) -> None:
    """The demo's sample table (pk+sk, a GSI, TTL, every attribute type)."""
    create_sample_source(ddb, name, items, seed=seed, threads=2)


def workflow_input(
    endpoint: str, source: str, target: str, *, segments: int = 2, **settings: Any
) -> WorkflowInput:
    side = Side(region=REGION, endpoint_url=endpoint)
    src = TableLocation(name=source, side=side)
    tgt = TableLocation(name=target, side=side)
    migration_id = migration_id_for(src, tgt)
    spec = MigrationSpec(
        migration_id=migration_id,
        source=src,
        target=tgt,
        state=state_location(migration_id, tgt),
        segments=segments,
        worker_budget_seconds=settings.pop("worker_budget_seconds", 20.0),
        lag_threshold_seconds=settings.pop("lag_threshold_seconds", 5.0),
    )
    values = {"poll_seconds": 0, "max_concurrency": 2} | settings
    return WorkflowInput(spec=spec, settings=WorkflowSettings(**values))


def random_writes(ddb: Any, table: str, n: int, items: int, seed: int = 11) -> None:
    """A burst of puts and deletes on existing keys (deterministic for a seed)."""
    rng = random.Random(seed)
    for _ in range(n):
        i = rng.randrange(items)
        key = {"pk": {"S": f"order#{i:06d}"}, "sk": {"S": f"v#{i % 3}"}}
        if rng.random() < 0.3:
            ddb.delete_item(TableName=table, Key=key)
        else:
            ddb.put_item(TableName=table, Item=key | {"n": {"N": str(rng.randrange(1000))}})
