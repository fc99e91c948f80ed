"""`--starting-key` and resume tokens: where each segment of the master scan starts, and the
token a stopped run logs so that the next one resumes there."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from decimal import Decimal, InvalidOperation
from typing import Any, Literal

from dynashift.errors import BadInputError
from dynashift.items import Item, from_event_json, to_event_json
from dynashift.tables import key_schema_text, table_keys

MAX_PARALLEL = 1000

#: A segment that finished, in a resume token.
DONE: Literal["done"] = "done"

SegmentStart = Item | None | Literal["done"]

_KEY_TYPES = ("S", "N", "B")


def _wire_key_value(name: str, value: Any, attr_type: str) -> Any:
    """One key attribute of a `--starting-key` (wire or plain JSON) in botocore wire format."""
    if isinstance(value, Mapping):
        if len(value) != 1 or next(iter(value)) not in _KEY_TYPES:
            raise BadInputError(
                f"--starting-key: attribute {name!r} has an invalid value {json.dumps(value)}"
            )
        ((given, raw),) = value.items()
        if given != attr_type:
            raise BadInputError(
                f"--starting-key: attribute {name!r} is {given} but the table defines it as "
                f"{attr_type}"
            )
        value = raw
    if attr_type == "S":
        if not isinstance(value, str):
            raise BadInputError(f"--starting-key: attribute {name!r} must be a string")
        return {"S": value}
    if attr_type == "N":
        if isinstance(value, bool) or not isinstance(value, int | float | str | Decimal):
            raise BadInputError(f"--starting-key: attribute {name!r} must be a number")
        try:
            number = Decimal(str(value))
        except InvalidOperation:
            raise BadInputError(
                f"--starting-key: attribute {name!r} value {value!r} is not a number"
            ) from None
        return {"N": str(value) if isinstance(value, str) else format(number, "f")}
    if not isinstance(value, str):
        raise BadInputError(f"--starting-key: attribute {name!r} must be base64 text")
    try:
        return from_event_json({name: {"B": value}})[name]
    except ValueError:
        raise BadInputError(
            f"--starting-key: attribute {name!r} value {value!r} is not valid base64"
        ) from None


def starting_key_to_wire(value: Mapping[str, Any], description: Mapping[str, Any]) -> Item:
    """A `--starting-key` object (wire format, or plain JSON values as the seed tool logs them)
    as a wire-format key of the table described by `description`."""
    names = table_keys(description)
    if set(value) != set(names):
        raise BadInputError(
            f"--starting-key: {json.dumps(to_event_json(dict(value)), default=str)} does not "
            f"match the key schema ({key_schema_text(description)})"
        )
    types = {a["AttributeName"]: a["AttributeType"] for a in description["AttributeDefinitions"]}
    return {n: _wire_key_value(n, value[n], types.get(n, "S")) for n in names}


def resolve_starting_key(
    value: Mapping[str, Any] | Sequence[Any] | None,
    description: Mapping[str, Any],
    parallel: int | None,
) -> list[SegmentStart]:
    """Where each master segment starts.

    - None: every segment from the beginning.
    - A key object (the seed tool's form): one serial scan resumes after that key. A key belongs
      to one segment of a parallel scan and DynamoDB does not say which, so with `--parallel`
      greater than 1 an object is refused (the seed passes it to every segment, which rescans
      or skips data).
    - A list (what dynashift logs for a parallel scan): one entry per segment, a key object
      (resume after it), null (start from the beginning) or "done". Its length is the
      parallelism; `--parallel`, if given, must agree.
    """
    if value is None:
        return [None] * (parallel or 1)
    if isinstance(value, Mapping):
        if parallel not in (None, 1):
            raise BadInputError(
                f"--starting-key: a single key resumes a serial scan only, not --parallel "
                f"{parallel}; give the list of per-segment keys that dynashift logged"
            )
        return [starting_key_to_wire(value, description)]
    if isinstance(value, str | bytes) or not isinstance(value, Sequence):
        raise BadInputError("--starting-key: expected a JSON object (a key) or a list of keys")
    if not value:
        raise BadInputError("--starting-key: the list of segment keys is empty")
    if len(value) > MAX_PARALLEL:
        raise BadInputError(f"--starting-key: more than {MAX_PARALLEL} segments")
    if parallel is not None and parallel != len(value):
        raise BadInputError(
            f"--starting-key: has {len(value)} segment keys but --parallel is {parallel}"
        )
    starts: list[SegmentStart] = []
    for i, entry in enumerate(value):
        if entry is None or entry == DONE:
            starts.append(entry)
        elif isinstance(entry, Mapping):
            starts.append(starting_key_to_wire(entry, description))
        else:
            raise BadInputError(
                f"--starting-key: segment {i} entry {json.dumps(entry, default=str)} is not a "
                f'key object, null or "{DONE}"'
            )
    return starts


def resume_token(cursors: Sequence[SegmentStart]) -> str:
    """The `--starting-key` JSON that resumes from `cursors` (key object when serial)."""

    def encode(c: SegmentStart) -> Any:
        return c if c is None or c == DONE else to_event_json(dict(c))  # type: ignore[arg-type]

    if len(cursors) == 1 and cursors[0] not in (None, DONE):
        return json.dumps(encode(cursors[0]), separators=(",", ":"))
    return json.dumps([encode(c) for c in cursors], separators=(",", ":"))
