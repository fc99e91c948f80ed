"""The bad input matrix: every CLI command refuses bad values with exit 2 (3 for an unreachable
endpoint), ONE line on stderr naming the problem, no traceback, and nothing created or changed
(asserted by listing the tables and comparing their contents before and after)."""

from __future__ import annotations

import contextlib
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.cli import run_cli
from tests.support.moto_server import MotoServer, free_port
from tests.support.reference import nothing_written
from tests.support.tables import client, create_table, fill, varied_items

ARN = "arn:aws:states:us-east-1:000000000000:execution:dynashift:run-1"


@pytest.fixture(scope="module")
def world() -> Iterator[dict[str, str]]:
    """A moto server of its own (so "nothing created or changed" is checked on every table it
    has) with: {src} 20 items, {empty} compatible and empty, {full} compatible and non-empty,
    {numkey} a numeric partition key, {sorted} an extra sort key; {dead} a closed port."""
    server = MotoServer().start()
    try:
        yield _make_world(server.url)
    finally:
        server.stop()


def _make_world(ep: str) -> dict[str, str]:
    ddb = client(ep)
    names = {
        "src": "bi-src",
        "empty": "bi-empty",
        "full": "bi-full",
        "numkey": "bi-numkey",
        "sorted": "bi-sorted",
    }
    for key, name in names.items():
        with contextlib.suppress(ddb.exceptions.ResourceInUseException):
            if key == "numkey":
                create_table(ddb, name, types={"pk": "N"})
            elif key == "sorted":
                create_table(ddb, name, sort_key="sk")
            else:
                create_table(ddb, name, stream=key == "src")
    fill(ddb, names["src"], varied_items(20, seed=1))
    fill(ddb, names["full"], varied_items(3, seed=2, prefix="other"))
    return {**names, "ep": ep, "dead": f"http://127.0.0.1:{free_port()}", "arn": ARN}


# (id, argv template, expected exit code, regex the one line must match)
CASES: list[tuple[str, str, int, str]] = []


def case(cid: str, argv: str, code: int, expect: str) -> None:
    CASES.append((cid, argv, code, expect))


# --- sync ------------------------------------------------------------------------------------
S = "sync --endpoint-url {ep} "
case("sync-no-master", "sync --slave {empty} --endpoint-url {ep}", 2, "master")
case("sync-no-slave", S + "--master {src}", 2, "slave")
case("sync-same-table", S + "--master {src} --slave {src}", 2, "same")
case("sync-unknown-master", S + "--master nosuch-table --slave {empty}", 2, "nosuch-table")
case("sync-unknown-slave", S + "--master {src} --slave nosuch-slave", 2, "nosuch-slave")
case("sync-incompatible-keys", S + "--master {src} --slave {numkey}", 2, "key schema|bi-numkey")
case("sync-extra-sort-key", S + "--master {src} --slave {sorted}", 2, "key schema|bi-sorted")
case("sync-malformed-ref", S + "--master 'bad name!' --slave {empty}", 2, "bad name!")
case("sync-empty-table-ref", S + "--master us-east-1: --slave {empty}", 2, "us-east-1:")
case("sync-parallel-zero", S + "--master {src} --slave {empty} --parallel 0", 2, "parallel|0")
case("sync-parallel-text", S + "--master {src} --slave {empty} --parallel many", 2, "many")
case("sync-parallel-huge", S + "--master {src} --slave {empty} --parallel 100000", 2, "100000")
case("sync-batch-read-101", S + "--master {src} --slave {empty} --batch-read-limit 101", 2, "101")
case("sync-scan-limit-neg", S + "--master {src} --slave {empty} --scan-limit -5", 2, "-5")
case("sync-starting-key-json", S + "--master {src} --slave {empty} --starting-key '{{x'", 2, r"\{x")
case(
    "sync-starting-key-type",
    S + "--master {src} --slave {empty} --starting-key '{{\"pk\": 5}}'",
    2,
    "pk",
)
case("sync-role-arn", S + "--master {src} --slave {empty} --role-arn not-an-arn", 2, "not-an-arn")
case("sync-mfa-token", S + "--master {src} --slave {empty} --mfa-token abc", 2, "mfa")
case("sync-endpoint-url", "sync --master {src} --slave {empty} --endpoint-url ftp:/x", 2, "ftp:/x")
case("sync-unreachable", "sync --master {src} --slave {empty} --endpoint-url {dead}", 3, "reach")
case("sync-unknown-flag", S + "--master {src} --slave {empty} --frobnicate", 2, "frobnicate")

# --- migrate ---------------------------------------------------------------------------------
M = "migrate --yes --endpoint-url {ep} --source {src} "
case("migrate-no-target", "migrate --yes --endpoint-url {ep} --source {src}", 2, "target")
case("migrate-same-table", M + "--target {src}", 2, "same")
case(
    "migrate-unknown-source",
    "migrate --yes --endpoint-url {ep} --source nosuch-src --target new-t1",
    2,
    "nosuch-src",
)
case("migrate-incompatible", M + "--target {numkey}", 2, "key|bi-numkey")
case("migrate-extra-sort-key", M + "--target {sorted}", 2, "key|bi-sorted")
case("migrate-nonempty", M + "--target {full}", 2, "empty|bi-full")
case("migrate-segments-zero", M + "--target {empty} --segments 0", 2, "segments|0")
case("migrate-segments-text", M + "--target {empty} --segments four", 2, "four")
case("migrate-segments-huge", M + "--target {empty} --segments 99999", 2, "99999")
case("migrate-rate-negative", M + "--target {empty} --max-write-rate -3", 2, "-3")
case("migrate-lag-zero", M + "--target {empty} --lag-threshold 0", 2, "lag")
# (with a non-empty target: if the budget is not refused the run stops at the target check)
case("migrate-budget-huge", M + "--target {full} --worker-budget 100000", 2, "budget|100000")
case("migrate-version-empty", M + "--target {empty} --version-attribute ''", 2, "version")
case("migrate-billing-mode", M + "--target new-t2 --billing-mode FREE", 2, "FREE")
case("migrate-capacity-text", M + "--target new-t3 --read-capacity lots", 2, "lots")
case(
    "migrate-capacity-on-demand",
    M + "--target new-t4 --billing-mode PAY_PER_REQUEST --read-capacity 5",
    2,
    "capacity",
)
case("migrate-tag", M + "--target new-t5 --tag novalue", 2, "novalue")
case("migrate-warm-zero", M + "--target new-t9 --warm-write-units 0", 2, "warm-write-units: '0'")
# under a new on-demand table's initial 4,000 write units/s: CreateTable would refuse it
case("migrate-warm-low", M + "--target new-t10 --warm-write-units 100", 2, "units 100: below")
case(
    "migrate-deletion-both",
    M + "--target new-t6 --deletion-protection --no-deletion-protection",
    2,
    "deletion",
)
case("migrate-verify-mode", M + "--target {empty} --verify-mode psychic", 2, "psychic")
case("migrate-verify-sample-zero", M + "--target {empty} --verify-sample 0", 2, "verify-sample")
case("migrate-verify-sample-over", M + "--target {empty} --verify-sample 1.5", 2, "verify-sample")
case("migrate-verify-sample-text", M + "--target {empty} --verify-sample all", 2, "verify-sample")
case(
    "migrate-bad-region",
    "migrate --yes --endpoint-url {ep} --source '??:{src}' --target new-t7",
    2,
    r"\?\?",
)
case("migrate-role-arn", M + "--target {empty} --target-role-arn arn:nope", 2, "arn:nope")
case(
    "migrate-unreachable",
    "migrate --yes --endpoint-url {dead} --source {src} --target new-t8",
    3,
    "reach",
)

# --- copy ------------------------------------------------------------------------------------
C = "copy --yes --endpoint-url {ep} --source {src} "
case("copy-same-table", C + "--target {src}", 2, "same")
case(
    "copy-unknown-source",
    "copy --yes --endpoint-url {ep} --source nosuch-c --target new-c1",
    2,
    "nosuch-c",
)
case("copy-incompatible", C + "--target {numkey}", 2, "key|bi-numkey")
case("copy-nonempty", C + "--target {full}", 2, "empty|bi-full")
case("copy-warm-low", C + "--target new-c4 --warm-read-units 50", 2, "read-units 50: below")
case("copy-segments-zero", C + "--target {empty} --segments 0", 2, "segments|0")
case("copy-page-size-zero", C + "--target {empty} --page-size 0", 2, "page")
case("copy-sk-without-pk", C + "--target {empty} --sk-begins-with ab", 2, "pk")
case(
    "copy-pk-wrong-type",
    "copy --yes --endpoint-url {ep} --source {numkey} --target new-c2 --pk notanumber",
    2,
    "notanumber",
)
case(
    "copy-unreachable",
    "copy --yes --endpoint-url {dead} --source {src} --target new-c3",
    3,
    "reach",
)

# --- approve / status ------------------------------------------------------------------------
case("approve-bad-arn", "approve --endpoint-url {ep} --execution not-an-arn", 2, "not-an-arn")
case("status-bad-arn", "status --endpoint-url {ep} --execution xyz", 2, "xyz")
case("status-unknown-execution", "status --endpoint-url {ep} --execution {arn}", 2, "execution")
case("no-command", "", 2, "command")
case("unknown-command", "teleport", 2, "teleport")


def _argv(template: str, world: dict[str, str]) -> list[str]:
    import shlex

    return shlex.split(template.format(**world))


KNOWN_BUGS: dict[str, str] = {}


def _params() -> list[Any]:
    out = []
    for cid, argv, code, expect in CASES:
        bug = KNOWN_BUGS.get(cid)
        marks = [pytest.mark.xfail(strict=True, reason=bug)] if bug else []
        out.append(pytest.param(argv, code, expect, id=cid, marks=marks))
    return out


@pytest.mark.parametrize(("argv", "code", "expect"), _params())
def test_bad_input_is_refused(
    world: dict[str, str], capsys: Any, argv: str, code: int, expect: str
) -> None:
    with nothing_written(client(world["ep"])):
        got, lines = run_cli(_argv(argv, world), capsys)
    assert got == code, f"exit {got}, stderr {lines}"
    assert len(lines) == 1, f"expected one line on stderr, got {lines}"
    assert "Traceback" not in lines[0]
    assert re.search(expect, lines[0], re.IGNORECASE), f"{lines[0]!r} does not name {expect!r}"


# --- a few through a real process: the installed entry point, stderr as a user sees it -------

SUBPROCESS_CASES = [
    ("sync-unknown-master", 2),
    ("migrate-same-table", 2),
    ("copy-nonempty", 2),
    ("sync-unreachable", 3),
]


@pytest.mark.parametrize(("cid", "code"), SUBPROCESS_CASES, ids=[c[0] for c in SUBPROCESS_CASES])
def test_bad_input_in_a_real_process(world: dict[str, str], cid: str, code: int) -> None:
    argv = next(c[1] for c in CASES if c[0] == cid)
    exe = Path(sys.executable).with_name("dynashift")
    with nothing_written(client(world["ep"])):
        proc = subprocess.run(
            [str(exe), *_argv(argv, world)],
            check=False,
            capture_output=True,
            text=True,
            timeout=120,
        )
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert proc.returncode == code, proc.stderr
    assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert lines[0].startswith("dynashift")
    assert proc.stdout == ""
