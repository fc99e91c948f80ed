"""`dynashift sync` argument parsing (no AWS): the seed tool's flags and their validation."""

from __future__ import annotations

import pytest

from dynashift.cli.main import build_parser


def parse(*argv: str):
    return build_parser().parse_args(["sync", *argv])


def test_seed_flags_and_defaults():
    args = parse(
        "-m", "us-east-1:master", "-s", "us-west-2:copy", "-s", "copy2",
        "--ignore-att", "a", "--ignore", "b", "--starting-key", '{"pk": "x", "n": 1.50}',
    )  # fmt: skip
    assert str(args.master) == "us-east-1:master"
    assert [str(s) for s in args.slave] == ["us-west-2:copy", "copy2"]
    assert args.ignore == ["a", "b"]
    assert args.batch_read_limit == 50 and args.parallel is None and args.scan_limit is None
    assert args.starting_key["pk"] == "x"
    assert str(args.starting_key["n"]) == "1.50", "numbers keep their spelling"
    assert not (args.write_missing or args.write_differing or args.delete_extra)


def test_starting_key_list_form():
    args = parse("-m", "mmm", "-s", "sss", "--starting-key", '[null, "done", {"pk": "a"}]')
    assert args.starting_key == [None, "done", {"pk": "a"}]


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["--batch-read-limit", "0"], "'0'"),
        (["--batch-read-limit", "101"], "between 1 and 100"),
        (["--parallel", "-2"], "'-2'"),
        (["--scan-limit", "x"], "'x'"),
        (["--starting-key", "nope"], "not valid JSON"),
        (["--starting-key", '"text"'], "not a JSON object or list"),
    ],
)
def test_bad_values_are_one_line_usage_errors(argv, needle, capsys):
    with pytest.raises(SystemExit) as exc:
        parse("-m", "mmm", "-s", "sss", *argv)
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and needle in err[0]
