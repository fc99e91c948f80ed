"""Running the `dynashift` CLI in-process, as a script sees it: the exit code and stderr."""

from __future__ import annotations

from typing import Any

from dynashift.cli.main import main


def run_cli(argv: list[str], capsys: Any) -> tuple[int, list[str]]:
    """(exit code, the non-blank lines of stderr) of `dynashift ARGV` (argparse exits too)."""
    capsys.readouterr()
    try:
        code = main(argv)
    except SystemExit as exc:  # argparse
        code = exc.code if isinstance(exc.code, int) else 2
    err = capsys.readouterr().err
    return code, [line for line in err.splitlines() if line.strip()]
