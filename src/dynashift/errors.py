"""The one exception tree of dynashift.

Exception class names are the contract with Step Functions: the state machine retries the
transient ones by name and routes the fatal ones to a reporting state. Every error carries the
CLI exit code it maps to (2: bad input, refused before anything is written; 3: runtime failure
after retries).

`pitr_off` / `pitr_off_refusal` are the one wording of a refusal several layers raise: an
export needs point-in-time recovery and dynashift never turns it on (`plan`, Validate, `copy
--via-import` and ExportTableToPointInTime's error; those modules cannot import each other).
"""

from __future__ import annotations

import json
from typing import Any


class DynashiftError(Exception):
    """Base class of every error dynashift raises on purpose."""

    exit_code = 3

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


# --- bad input: exit 2, nothing created or written -------------------------------------------


class BadInputError(DynashiftError):
    """The operator asked for something invalid (a value, a flag combination)."""

    exit_code = 2


class InvalidTableRefError(BadInputError):
    """A `[REGION:]TABLE` reference could not be parsed."""


class TableNotFoundError(BadInputError):
    """A table named on the command line or in the input does not exist."""


class IncompatibleSchemaError(BadInputError):
    """Two tables that must share a key schema do not."""


class UnsafeTargetError(BadInputError):
    """The target is not safe to write: same as the source, or non-empty."""


class StreamUnavailableError(BadInputError):
    """The source stream cannot feed a replicator (KEYS_ONLY / OLD_IMAGE without replace)."""


# --- runtime failures: exit 3 ----------------------------------------------------------------


class RuntimeFailure(DynashiftError):
    """Something failed at run time after the retries were exhausted."""

    exit_code = 3


class EndpointUnreachableError(RuntimeFailure):
    """An endpoint could not be reached."""


class TransientError(RuntimeFailure):
    """A failure worth retrying (throttling, a table not ACTIVE yet); the ASL retries it."""


class NotReadyYet(TransientError):
    """A resource is not in the wanted state yet (the state machine waits and polls)."""


class WorkerDeadlineError(RuntimeFailure):
    """A worker could not make progress before its deadline."""


# --- the Lambda error shape (what Step Functions' Retry/Catch match) --------------------------


def pitr_off(table: str) -> str:
    """The one wording of "point-in-time recovery is off on `table`" where an export is
    considered: `plan`'s PITR line and its paths comparison use it as is."""
    return (
        f"point-in-time recovery is off for table {table}: an export needs it and dynashift "
        "never turns it on"
    )


def pitr_off_refusal(table: str, instead: str | None = None) -> str:
    """The refusal of an export of `table` with PITR off (`pitr_off`, then how to go on):
    Validate, `copy --via-import` and ExportTableToPointInTime's error. `instead`: the way
    around it that the caller offers ("choose another strategy"); the caller prefixes the
    field it names."""
    text = (
        f"{pitr_off(table)}; enable it (aws dynamodb update-continuous-backups "
        "--point-in-time-recovery-specification PointInTimeRecoveryEnabled=true)"
    )
    return f"{text} or {instead}" if instead else text


def error_payload(exc: BaseException) -> dict[str, Any]:
    """The Lambda error shape for an exception (errorType is what the ASL matches)."""
    message = exc.message if isinstance(exc, DynashiftError) else f"{type(exc).__name__}: {exc}"
    return {"errorType": type(exc).__name__, "errorMessage": message}


def cause_message(cause: Any) -> str | None:
    """The message of a caught error's Cause: a Lambda error's Cause is JSON text with
    `errorMessage` (keep the message only); any other cause is returned as text."""
    if cause is None:
        return None
    try:
        parsed = json.loads(cause) if isinstance(cause, str) else cause
    except ValueError:
        return str(cause)
    if isinstance(parsed, dict):
        return str(parsed.get("errorMessage") or parsed)
    return str(parsed)
