"""The approval task token of the cutover step: stored by the approval step (waitForTaskToken),
answered by `dynashift approve` and the decision function. One storage key for both sides."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from botocore.exceptions import ClientError

from dynashift.aws import error_code
from dynashift.errors import BadInputError
from dynashift.state import StateStore

#: The state-store record of the pending token.
APPROVAL_SK = "approval"


def save_approval_token(state: StateStore, token: str, now: float | None = None) -> None:
    """Stored by the approval step (waitForTaskToken) so `dynashift approve` can answer it."""
    state.put_record(
        APPROVAL_SK,
        token={"S": token},
        saved={"N": str(state.clock.wall() if now is None else now)},
    )


def load_approval_token(state: StateStore) -> str | None:
    item = state.get_record(APPROVAL_SK)
    if not item or "token" not in item:
        return None
    return str(item["token"]["S"])


def clear_approval_token(state: StateStore) -> None:
    state.delete_record(APPROVAL_SK)


def send_approval(
    sfn_client: Any,
    state: StateStore,
    *,
    approve: bool = True,
    reason: str = "",
    output: Mapping[str, Any] | None = None,
) -> str:
    """Answer the waiting approval step: SendTaskSuccess (or SendTaskFailure when `approve` is
    False). Returns the token used. BadInputError when no approval is pending."""
    token = load_approval_token(state)
    if token is None:
        raise BadInputError(
            f"migration {state.migration_id} is not waiting for approval (no task token stored)"
        )
    try:
        if approve:
            body = dict(output or {"approved": True, "reason": reason})
            sfn_client.send_task_success(taskToken=token, output=json.dumps(body))
        else:
            sfn_client.send_task_failure(
                taskToken=token, error="dynashift.Rejected", cause=reason or "rejected"
            )
    except ClientError as exc:
        if error_code(exc) in ("TaskDoesNotExist", "TaskTimedOut", "InvalidToken"):
            clear_approval_token(state)
            raise BadInputError(
                f"the approval of migration {state.migration_id} is no longer pending "
                f"({error_code(exc)})"
            ) from exc
        raise
    clear_approval_token(state)
    return token
