"""The Lambda error shape is written and read in one place (`dynashift.errors`): what a handler
raises becomes `{"errorType", "errorMessage"}`, and the message comes back out of a caught
error's Cause the same way for the report step and for the local runner's failure line."""

from __future__ import annotations

import json

from dynashift.errors import BadInputError, cause_message, error_payload
from dynashift.workflow.runner import ExecutionOutcome


def test_a_lambda_error_round_trips_through_its_cause() -> None:
    payload = error_payload(BadInputError("spec.segments: must be at least 1"))
    assert payload == {
        "errorType": "BadInputError",
        "errorMessage": "spec.segments: must be at least 1",
    }
    assert cause_message(json.dumps(payload)) == "spec.segments: must be at least 1"
    assert error_payload(KeyError("x"))["errorMessage"] == "KeyError: 'x'"
    assert cause_message(payload) == "spec.segments: must be at least 1"  # already parsed


def test_other_causes_pass_through_as_text() -> None:
    assert cause_message(None) is None
    assert cause_message("The JSONPath '$.x' could not be found") == (
        "The JSONPath '$.x' could not be found"
    )
    assert cause_message("[1, 2]") == "[1, 2]"
    assert cause_message('{"other": 1}') == "{'other': 1}"


def test_the_runner_reads_a_failed_execution_with_the_same_parser() -> None:
    from dynashift.workflow.migrate import failure_of

    cause = json.dumps(error_payload(BadInputError("target: exists")))
    rejected = ExecutionOutcome(
        "arn", "FAILED", error="InputRejected", cause=f"BadInputError: {cause}"
    )
    assert failure_of(rejected) == ("BadInputError", "target: exists")
    plain = ExecutionOutcome("arn", "FAILED", error="States.Runtime", cause="no such path")
    assert failure_of(plain) == ("States.Runtime", "no such path")
    assert failure_of(ExecutionOutcome("arn", "TIMED_OUT")) == ("TIMED_OUT", None)
