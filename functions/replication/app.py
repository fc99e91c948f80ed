"""Start the replicator, measure its lag, drain it, or stop it (`action` in the event).

In AWS the replicator is the stack's replicator function behind an event source mapping; the
local runner passes its stream follower in the invocation context instead.
"""

from __future__ import annotations

from typing import Any

from dynashift.workflow.control import control_for
from dynashift.workflow.steps import ReplicationEvent, parse_event, replication


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return replication(parse_event(ReplicationEvent, event), control_for(context))
