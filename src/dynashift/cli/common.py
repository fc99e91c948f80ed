"""Argument types and option groups shared by the sub-commands."""

from __future__ import annotations

import argparse
from typing import Any

from dynashift.aws import Side
from dynashift.errors import BadInputError
from dynashift.refs import TableRef, parse_table_ref
from dynashift.validation import option_error


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} must be at least 1")
    return value


def bounded_int(low: int, high: int) -> Any:
    def parse(text: str) -> int:
        value = positive_int(text) if low >= 1 else int(text)
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"{text!r} must be between {low} and {high}")
        return value

    return parse


def _number(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None


def positive_float(text: str) -> float:
    value = _number(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"{text!r} must be greater than 0")
    return value


def non_negative_float(text: str) -> float:
    value = _number(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text!r} must not be negative")
    return value


def positive_float_at_most(high: float, why: str = "") -> Any:
    """A float in (0, high]; `why` explains the bound in the one-line error."""

    def parse(text: str) -> float:
        value = positive_float(text)
        if value > high:
            reason = f" ({why})" if why else ""
            raise argparse.ArgumentTypeError(f"{text!r} must be at most {high:g}{reason}")
        return value

    return parse


def table_ref(text: str) -> TableRef:
    try:
        return parse_table_ref(text)
    except BadInputError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def add_side_options(
    parser: argparse.ArgumentParser, prefix: str, label: str, *, endpoint: bool = True
) -> None:
    """`--{prefix}profile`, `--{prefix}role-arn`, ... for one side (prefix '' or 'source-')."""
    group = parser.add_argument_group(f"{label} credentials")
    group.add_argument(f"--{prefix}profile", metavar="P", help=f"AWS profile for the {label}")
    group.add_argument(f"--{prefix}role-arn", metavar="ARN", help=f"role to assume for the {label}")
    group.add_argument(f"--{prefix}external-id", metavar="ID", help="external id for the role")
    group.add_argument(f"--{prefix}mfa-serial", metavar="S", help="MFA device serial / ARN")
    group.add_argument(f"--{prefix}mfa-token", metavar="T", help="current MFA code")
    if endpoint:
        group.add_argument(
            f"--{prefix}endpoint-url", metavar="URL", help=f"endpoint for the {label}'s clients"
        )


def side_from_args(
    args: argparse.Namespace,
    prefix: str,
    *,
    region: str | None = None,
    endpoint_url: str | None = None,
    retry_mode: str = "standard",
) -> Side:
    """Build a Side from the options `add_side_options(prefix)` added.

    `endpoint_url` is the fallback (the global `--endpoint-url`) when the side has none.
    """
    attr = prefix.replace("-", "_")

    def get(name: str) -> Any:
        return getattr(args, f"{attr}{name}", None)

    values = {
        "region": region,
        "profile": get("profile"),
        "role_arn": get("role_arn"),
        "external_id": get("external_id"),
        "mfa_serial": get("mfa_serial"),
        "mfa_token": get("mfa_token"),
        "endpoint_url": get("endpoint_url") or endpoint_url,
        "retry_mode": retry_mode,
    }
    from pydantic import ValidationError

    try:
        return Side(**values)
    except ValidationError as exc:
        raise option_error(exc, prefix) from None
