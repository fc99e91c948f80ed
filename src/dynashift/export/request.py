"""Where an export goes, built from loose values (a caller, a test): `ExportRequest`.

It is `dynashift.models.ExportLocation` (the one home of the bucket, prefix, bucket owner and
KMS key rules; `spec.export` of the workflow input) whose construction raises BadInputError
with a one-line message naming the field (exit 2) instead of pydantic's ValidationError.

The bucket may belong to another account (the target's): ExportTableToPointInTime then needs
`S3BucketOwner`, and a KMS key when the bucket's default encryption is SSE-KMS with a
customer-managed key.
"""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from dynashift.errors import BadInputError
from dynashift.models import PREFIX_MAX, ExportLocation, bucket_problem
from dynashift.validation import input_message

__all__ = ["PREFIX_MAX", "ExportRequest", "bucket_problem"]


class ExportRequest(ExportLocation):
    """An `ExportLocation` constructed from loose values: bad values raise BadInputError
    naming the field; inside a larger input model the usual ValidationError reaches
    `validation.parse_event`."""

    def __init__(self, **data: Any) -> None:
        try:
            super().__init__(**data)
        except ValidationError as exc:
            raise BadInputError(input_message(exc)) from None
