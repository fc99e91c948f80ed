"""Validate the execution input as operators type it and return it normalised (nothing is
written).

Thin adapter: the raw input (`{"input": $}`), the function's environment (the stack's migration
id, state table, target table and worker timeout, through `lambda_settings()`) in; out
`{"input": <the WorkflowInput with every default applied>, "validation": ...}`, which the state
machine makes the state every later step reads. A malformed input is a BadInputError naming the
field ("Input rejected").
"""

from __future__ import annotations

from typing import Any

from dynashift.settings import lambda_settings
from dynashift.workflow.steps import validate_execution_input


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return validate_execution_input(event, lambda_settings())
