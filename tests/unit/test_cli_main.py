"""The console script's command set: every command module is registered, none is skipped."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import dynashift.cli
from dynashift.cli.main import build_parser


def _commands() -> list[str]:
    parser = build_parser()
    (sub,) = [a for a in parser._actions if a.dest == "command"]
    return list(sub.choices or {})


def test_every_command_module_of_the_cli_package_is_a_command() -> None:
    modules = {
        p.stem.removesuffix("_cmd") for p in Path(dynashift.cli.__file__).parent.glob("*_cmd.py")
    }
    assert sorted(_commands()) == sorted(modules)
    assert _commands()[:4] == ["migrate", "plan", "copy", "sync"]  # the order --help lists


def test_a_missing_command_module_fails_loudly_instead_of_dropping_the_command() -> None:
    # `status_cmd` cannot be imported (what a typo or a lost file gives): the CLI must not start
    # with one command fewer.
    code = (
        "import sys; sys.modules['dynashift.cli.status_cmd'] = None\n"
        "from dynashift.cli.main import build_parser\n"
        "parser = build_parser()\n"
        "print('started without status')\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert proc.returncode != 0, proc.stdout
    assert "started without status" not in proc.stdout
    assert "dynashift.cli.status_cmd" in proc.stderr
