"""pydantic's ValidationError becomes a BadInputError here, and nowhere else.

Two renderings of the first error, both one line (exit 2, nothing written):
- an event or execution input names the field by its path: `spec.source.name: Value error,
  'x' is not a valid DynamoDB table name` (`parse_event`, `input_message`);
- a CLI option names the flag: `--read-capacity: 0 is invalid (Input should be greater than
  or equal to 1)` (`option_error`).
"""

from __future__ import annotations

from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from dynashift.errors import BadInputError

M = TypeVar("M", bound=BaseModel)


def input_message(exc: ValidationError) -> str:
    """`spec.source.name: Value error, 'x' is not a valid DynamoDB table name` (one line)."""
    errors = exc.errors(include_url=False)
    if not errors:
        return "input: invalid"
    first = errors[0]
    where = ".".join(str(part) for part in first["loc"]) or "input"
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    return " ".join(f"{where}: {first['msg']}{more}".split())


def parse_event(model: type[M], event: Any) -> M:
    """The one adapter from a raw event (execution input, Task payload) to its model, used by
    every handler: pydantic's ValidationError becomes a BadInputError (the "Input rejected"
    path) whose one-line message names the field."""
    try:
        return model.model_validate(event)
    except ValidationError as exc:
        raise BadInputError(input_message(exc)) from exc


def option_error(exc: ValidationError, prefix: str = "") -> BadInputError:
    """The error of a model built from CLI options, naming the flag of the first bad field
    (`--{prefix}{field}`; `--options` when the error is not a field's); `raise ... from None`
    keeps pydantic's multi-line text out of the one-line message."""
    errors = exc.errors(include_url=False)
    if not errors:
        return BadInputError(f"--{prefix}options: invalid")
    first = errors[0]
    field = str(first["loc"][0]).replace("_", "-") if first["loc"] else "options"
    message = f"--{prefix}{field}: {first.get('input')!r} is invalid ({first['msg']})"
    return BadInputError(" ".join(message.split()))
