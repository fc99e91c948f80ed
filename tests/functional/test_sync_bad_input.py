"""Bad input to `dynashift sync`: exit 2, one line naming the problem, no traceback, no change."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from dynashift.cli.main import main
from tests.support.reference import snapshot
from tests.support.tables import SK_NUMBER, create_table, fill


@pytest.fixture(scope="module")
def tables(ddb):
    import uuid

    suffix = uuid.uuid4().hex[:8]
    m = create_table(ddb, f"bad-m-{suffix}", **SK_NUMBER)
    s = create_table(ddb, f"bad-s-{suffix}", **SK_NUMBER)
    other = create_table(ddb, f"bad-o-{suffix}", sort_key="sk")  # same names, sk type differs
    hash_only = create_table(ddb, f"bad-h-{suffix}")
    fill(ddb, m, [{"pk": {"S": f"k{i}"}, "sk": {"N": str(i)}} for i in range(10)])
    fill(ddb, s, [{"pk": {"S": "extra"}, "sk": {"N": "1"}}])
    fill(ddb, other, [{"pk": {"S": "o"}, "sk": {"S": "1"}}])
    return {"m": m, "s": s, "other": other, "hash": hash_only}


WRITE_ALL = ["--write-missing", "--write-differing", "--delete-extra"]


def cases(t):
    m, s = t["m"], t["s"]
    return {
        "starting key not JSON": (
            ["-m", m, "-s", s, "--starting-key", "{pk: 1"],
            "--starting-key",
        ),
        "starting key not an object": (["-m", m, "-s", s, "--starting-key", "42"], "'42'"),
        "starting key off the schema": (
            ["-m", m, "-s", s, "--starting-key", '{"id": "x"}'],
            "key schema",
        ),
        "single key with parallel": (
            ["-m", m, "-s", s, "--parallel", "4", "--starting-key", '{"pk": "k1", "sk": 1}'],
            "--parallel 4",
        ),
        "parallel 0": (["-m", m, "-s", s, "--parallel", "0"], "--parallel"),
        "parallel not a number": (["-m", m, "-s", s, "--parallel", "many"], "'many'"),
        "no slave": (["-m", m], "--slave"),
        "no master": (["-s", s], "--master"),
        "master missing": (["-m", "nope-nope-nope", "-s", s], "'nope-nope-nope'"),
        "slave missing": (["-m", m, "-s", s, "-s", "no-such-slave"], "'no-such-slave'"),
        "key schema mismatch (type)": (["-m", m, "-s", s, "-s", t["other"]], "pk (S, HASH)"),
        "key schema mismatch (shape)": (["-m", m, "-s", t["hash"]], t["hash"]),
        "slave is the master": (["-m", m, "-s", m], "same table"),
        "batch read limit over 100": (["-m", m, "-s", s, "--batch-read-limit", "101"], "'101'"),
        "scan limit 0": (["-m", m, "-s", s, "--scan-limit", "0"], "--scan-limit"),
        "bad table ref": (["-m", "bad region:tbl", "-s", s], "invalid region"),
        "report folder missing": (
            ["-m", m, "-s", s, "--report", "/no/such/folder/r.json"],
            "--report",
        ),
        "bad role arn": (["-m", m, "-s", s, "--slave-role-arn", "not-an-arn"], "--slave-role-arn"),
        "mfa serial without token": (
            ["-m", m, "-s", s, "--mfa-serial", "arn:aws:iam::123456789012:mfa/me"],
            "MFA token",
        ),
    }


CASE_NAMES = list(cases({"m": "", "s": "", "other": "", "hash": ""}))


@pytest.mark.parametrize("case", CASE_NAMES)
def test_bad_input_exits_2_with_one_line_and_changes_nothing(case, tables, ddb, endpoint, capsys):
    argv, needle = cases(tables)[case]
    before = snapshot(ddb, tables["m"], tables["s"])
    try:
        code = main(["sync", "--endpoint-url", endpoint, *argv, *WRITE_ALL])
    except SystemExit as exc:  # argparse usage errors
        code = exc.code
    err = capsys.readouterr().err
    assert code == 2
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert needle in lines[0]
    assert "Traceback" not in err
    assert snapshot(ddb, tables["m"], tables["s"]) == before


@pytest.mark.parametrize("case", ["starting key not JSON", "key schema mismatch (type)"])
def test_bad_input_in_a_subprocess_has_no_traceback(case, tables, endpoint):
    argv, needle = cases(tables)[case]
    env = dict(os.environ, AWS_DEFAULT_REGION="us-east-1")
    proc = subprocess.run(
        [sys.executable, "-m", "dynashift.cli.main", "sync", "--endpoint-url", endpoint, *argv],
        capture_output=True,
        text=True,
        check=False,
        env=env,
        timeout=60,
    )
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1, proc.stderr
    assert needle in proc.stderr
    assert "Traceback" not in proc.stderr
