"""Describe the source, mirror it into a target specification, create or verify the target.

Four modules, one part each: `describe` (reading either side: `TableDescription`), `spec`
(the pure target spec, `TargetOptions` in `options`), `checks` (compatibility and the two-way
parity) and `prepare` (create, verify, converge). This package re-exports their public names.
The calls take each side's DynamoDB client (`source_client` / `target_client`; default: the
process factory's) and `prepare_target` a `dynashift.clock.Clock`, so a caller such as
`copy_table` hands in its own.

    describe_source(source)                       DescribeTable + TTL + PITR + tags
    build_target_spec(src, options)               the target the source calls for (pure)
    check_target(source, target, options, state)  read-only: "create" or "exists" + warnings
    start_prepare_target(...)                     non-blocking: create (or verify), first poll
    poll_target(...)                              non-blocking: one step towards ready
    prepare_target(...)                           blocking: start + poll with a deadline

Rules, each written once here:

- The key schema must match exactly (IncompatibleSchemaError names both). Every other
  difference of an existing target (GSIs, LSIs, billing, TTL, PITR, SSE, class, tags, stream,
  a warm throughput lower than the source's) is a warning: an existing target is never changed
  except for what the operator asked for explicitly (`--tag`, `--replica-region`, `--warm-*`).
- A new target is pre-warmed to the source's warm throughput (table and each GSI) where it is
  above what the new table serves anyway (`carried_warm_throughput`); resource-based policies
  are never copied (they name the source's ARN and principals).
- Source and target being the same table (same endpoint and table ARN, or the same name,
  region, endpoint and credentials) is refused, as is a non-empty target unless
  `allow_nonempty_target` or the state store's meta names this target (a resumed run).
  "Empty" means a Scan finds no item other than tombstones (ItemCount lags by hours).
- A KMS key in another account or region than the target must be given explicitly.
- Settings that need separate calls once the table is ACTIVE (a warm throughput ImportTable
  could not set, TTL, PITR, tags, a stream for replicas, replicas one at a time) are applied
  by `poll_target`, one mutating call per poll, each idempotent, so the state machine can call
  it in a Wait/Choice loop.
"""

from dynashift.target.checks import (
    TargetCheck,
    account_of_location,
    check_target,
    compare_target,
    same_table,
    target_has_items,
)
from dynashift.target.describe import (
    SourceDescription,
    TableDescription,
    describe_location,
    describe_source,
)
from dynashift.target.options import BillingMode, StreamViewType, TableClass, TargetOptions
from dynashift.target.prepare import (
    WAIT_REPLICA,
    WAIT_TABLE,
    PrepareResult,
    poll_target,
    prepare_target,
    recorded_target_options,
    start_prepare_target,
)
from dynashift.target.spec import (
    ON_DEMAND_INITIAL_RCU,
    ON_DEMAND_INITIAL_WCU,
    TargetSpec,
    build_target_spec,
    carried_warm_throughput,
    raised_warm_throughput,
)

__all__ = [
    "ON_DEMAND_INITIAL_RCU",
    "ON_DEMAND_INITIAL_WCU",
    "WAIT_REPLICA",
    "WAIT_TABLE",
    "BillingMode",
    "PrepareResult",
    "SourceDescription",
    "StreamViewType",
    "TableClass",
    "TableDescription",
    "TargetCheck",
    "TargetOptions",
    "TargetSpec",
    "account_of_location",
    "build_target_spec",
    "carried_warm_throughput",
    "check_target",
    "compare_target",
    "describe_location",
    "describe_source",
    "poll_target",
    "prepare_target",
    "raised_warm_throughput",
    "recorded_target_options",
    "same_table",
    "start_prepare_target",
    "target_has_items",
]
