"""Where an export goes: `ExportRequest` (bucket, prefix, bucket owner, KMS key), validated.

The bucket may belong to another account (the target's): ExportTableToPointInTime then needs
`S3BucketOwner`, and a KMS key when the bucket's default encryption is SSE-KMS with a
customer-managed key. Bad values are refused before anything is started: BadInputError whose
one-line message names the field (exit 2).
"""

from __future__ import annotations

import ipaddress
import re
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from dynashift.errors import BadInputError
from dynashift.validation import input_message

#: S3's rules for a general purpose bucket name (S3 user guide, "Bucket naming rules").
_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
_BUCKET_BAD_PREFIXES = ("xn--", "sthree-", "amzn-s3-demo-")
_BUCKET_BAD_SUFFIXES = ("-s3alias", "--ol-s3", "--x-s3", ".mrap")

#: ExportTableToPointInTime's S3Prefix is at most 1,024 characters (API reference).
PREFIX_MAX = 1024


def bucket_problem(name: str) -> str | None:
    """Why `name` is not a valid S3 bucket name, or None."""
    if not _BUCKET.match(name):
        return (
            f"{name!r} is not a valid S3 bucket name (3-63 characters: lowercase letters, "
            "digits, dots and hyphens, starting and ending with a letter or digit)"
        )
    if ".." in name or ".-" in name or "-." in name:
        return f"{name!r} is not a valid S3 bucket name (adjacent dots or a dot beside a hyphen)"
    try:
        ipaddress.IPv4Address(name)
        return f"{name!r} is not a valid S3 bucket name (formatted as an IP address)"
    except ValueError:
        pass
    if name.startswith(_BUCKET_BAD_PREFIXES) or name.endswith(_BUCKET_BAD_SUFFIXES):
        return f"{name!r} is not a valid S3 bucket name (a prefix or suffix S3 reserves)"
    return None


class ExportRequest(BaseModel):
    """Where ExportTableToPointInTime writes: `bucket`, `prefix` (without a trailing slash),
    `bucket_owner` (12-digit account id, when the bucket is another account's) and
    `kms_key_id` (the export's objects are then SSE-KMS with that key).

    Constructing one with bad values raises BadInputError naming the field; inside a larger
    input model the usual ValidationError reaches `validation.parse_event`.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    bucket: str
    prefix: str = ""
    bucket_owner: str | None = Field(default=None, pattern=r"^\d{12}$")
    kms_key_id: str | None = Field(default=None, min_length=1, max_length=2048)

    def __init__(self, **data: Any) -> None:
        try:
            super().__init__(**data)
        except ValidationError as exc:
            raise BadInputError(input_message(exc)) from None

    @field_validator("bucket")
    @classmethod
    def _bucket(cls, value: str) -> str:
        problem = bucket_problem(value)
        if problem:
            raise ValueError(problem)
        return value

    @field_validator("prefix")
    @classmethod
    def _prefix(cls, value: str) -> str:
        value = value.rstrip("/")
        if len(value) > PREFIX_MAX:
            raise ValueError(f"an S3 prefix is at most {PREFIX_MAX} characters")
        if value.startswith("/") or "//" in value:
            raise ValueError(f"{value!r} has an empty path segment (a leading or double slash)")
        if any(ord(ch) < 32 or ord(ch) == 127 for ch in value):
            raise ValueError("an S3 prefix may not hold control characters")
        return value

    def api_kwargs(self) -> dict[str, Any]:
        """ExportTableToPointInTime's destination parameters for this request."""
        out: dict[str, Any] = {"S3Bucket": self.bucket}
        if self.prefix:
            out["S3Prefix"] = self.prefix
        if self.bucket_owner:
            out["S3BucketOwner"] = self.bucket_owner
        if self.kms_key_id:
            out["S3SseAlgorithm"] = "KMS"
            out["S3SseKmsKeyId"] = self.kms_key_id
        return out
