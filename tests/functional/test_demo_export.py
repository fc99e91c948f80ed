"""`dynashift demo --strategy export` (issue 16): the demo turns on point-in-time recovery on its
own sample source and creates a bucket, both in its embedded emulator, and runs the migration
with the export strategy to READY; its final comparison finds the tables identical."""

from __future__ import annotations

import io

from dynashift.cli.main import build_parser
from dynashift.demo import EXPORT_BUCKET, SOURCE, run_demo


def test_demo_with_the_export_strategy_ends_ready_and_identical() -> None:
    out, err = io.StringIO(), io.StringIO()
    code = run_demo(
        items=200, segments=2, write_rate=10, final_check=True, strategy="export", out=out, err=err
    )
    assert code == 0, err.getvalue()[-3000:] + out.getvalue()[-2000:]
    log = err.getvalue()
    assert f"point-in-time recovery enabled on the demo's own {SOURCE}" in log
    assert f"s3://{EXPORT_BUCKET}/" in log
    # The backfill went through the export's states, not the scan's.
    assert "Export source" in log and "Load export files" in log, log[-3000:]
    assert "Backfill segments" not in log
    assert "READY" in out.getvalue()
    assert "- identical" in out.getvalue()


def test_the_demo_command_takes_the_export_strategy() -> None:
    args = build_parser().parse_args(["demo", "--strategy", "export", "--items", "100"])
    assert (args.strategy, args.items) == ("export", 100)
