"""Entry point of the `dynashift` console script.

Each sub-command lives in its own module of this package exposing
`register(subparsers) -> None`; the parser it adds sets `func(args) -> int` (the exit code).
Errors from the engine's exception tree become one line on stderr and the exit code the
error carries (2 bad input, 3 runtime failure); nothing prints a traceback.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from typing import NoReturn

from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectionError,
    HTTPClientError,
    NoCredentialsError,
)

from dynashift import __version__
from dynashift.aws import error_code
from dynashift.cli import (
    approve_cmd,
    copy_cmd,
    demo_cmd,
    migrate_cmd,
    plan_cmd,
    status_cmd,
    sync_cmd,
)
from dynashift.errors import DynashiftError

#: Sub-command modules, in the order `--help` lists them (imported above: a missing or
#: misspelt module fails at import, never silently drops a command).
COMMAND_MODULES = (migrate_cmd, plan_cmd, copy_cmd, sync_cmd, approve_cmd, status_cmd, demo_cmd)

log = logging.getLogger("dynashift")


class OneLineParser(argparse.ArgumentParser):
    """argparse that reports a usage error as one line naming the bad value, exit 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(
        prog="dynashift",
        description="Move a live DynamoDB table without downtime, with proof nothing was lost.",
    )
    parser.add_argument("--version", action="version", version=f"dynashift {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=OneLineParser)
    sub.required = True
    for module in COMMAND_MODULES:
        module.register(sub)
    return parser


def configure_logging(verbose: bool) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(message)s",
        datefmt="%H:%M:%S",
        stream=sys.stderr,
    )
    for noisy in ("botocore", "boto3", "urllib3", "werkzeug", "moto"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    configure_logging(args.verbose)
    try:
        return int(args.func(args))
    except DynashiftError as exc:
        print(f"dynashift: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except NoCredentialsError:
        print(
            "dynashift: error: no AWS credentials found (give a --*profile, a --*role-arn, or "
            "configure the usual AWS credentials)",
            file=sys.stderr,
        )
        return 2
    except (ConnectionError, HTTPClientError) as exc:
        # Botocore already retried; the endpoint stayed unreachable.
        print(f"dynashift: error: cannot reach the endpoint: {exc}", file=sys.stderr)
        return 3
    except ClientError as exc:
        message = exc.response.get("Error", {}).get("Message", "")
        print(f"dynashift: error: AWS error {error_code(exc)}: {message}", file=sys.stderr)
        return 3
    except BotoCoreError as exc:
        print(f"dynashift: error: {exc}", file=sys.stderr)
        return 3
    except KeyboardInterrupt:
        print("dynashift: interrupted", file=sys.stderr)
        return 130


def exit_now(code: int) -> NoReturn:
    """End the process with `code` once the command is done: the exit handlers run and stdout
    and stderr are flushed, but the interpreter's teardown of every loaded module (moto's
    backends and interpreter after a local run: a second or more of garbage collection) is
    skipped. A non-daemon thread still running means work in flight: then a normal exit."""
    import atexit
    import os
    import threading

    main_thread = threading.main_thread()
    if any(t is not main_thread and not t.daemon and t.is_alive() for t in threading.enumerate()):
        sys.exit(code)
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            code = code or 1  # output lost (closed pipe): not a success
    os._exit(code)


def console_main() -> NoReturn:
    """The `dynashift` console script: `main`, then `exit_now`."""
    exit_now(main())


if __name__ == "__main__":  # pragma: no cover
    console_main()
