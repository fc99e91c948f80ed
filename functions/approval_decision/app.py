"""Approve or reject a waiting cutover without a terminal.

Invoked from the Lambda console's Test tab (`{"execution_arn": ARN, "decision": "approve"}` or
`"reject"` with a `reason`) or through its function URL (AuthType AWS_IAM:
`?execution=ARN&decision=approve`). Reads the task token the approval step stored in the
stack's state table and sends SendTaskSuccess / SendTaskFailure (`dynashift.approval`).
"""

from __future__ import annotations

from typing import Any

import boto3

from dynashift.approval import handle_decision_event
from dynashift.errors import BadInputError
from dynashift.settings import lambda_settings
from dynashift.state import StateStore


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    settings = lambda_settings()
    if not settings.state_table or not settings.migration_id:
        raise BadInputError("DYNASHIFT_STATE_TABLE and DYNASHIFT_MIGRATION_ID must be set")
    # The state table may sit on a DynamoDB-compatible endpoint; Step Functions never does.
    ddb: dict[str, Any] = {"region_name": settings.region}
    if settings.endpoint_url:
        ddb["endpoint_url"] = settings.endpoint_url
    state = StateStore(boto3.client("dynamodb", **ddb), settings.state_table, settings.migration_id)
    sfn = boto3.client("stepfunctions", region_name=settings.region)
    return handle_decision_event(event, sfn, state)
