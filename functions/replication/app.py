"""Start the replicator, measure its lag, drain it, or stop it (`action` in the event).

The replicator is the stack's replicator function behind an event source mapping, in AWS and
in the local runner (which runs the mapping it finds on its private server).
"""

from __future__ import annotations

from typing import Any

from dynashift.workflow.control import aws_control
from dynashift.workflow.steps import ReplicationEvent, parse_event, replication


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return replication(parse_event(ReplicationEvent, event), aws_control())
