"""`dynashift sync` against a real moto server: counts, repair, multiple slaves, resume, faults."""

from __future__ import annotations

import copy
import json
import random
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

from dynashift.aws import Side
from dynashift.cli.main import main
from dynashift.errors import RuntimeFailure
from dynashift.items import TOMBSTONE_ATTR
from dynashift.models import TableLocation
from dynashift.sync import SyncEngine, SyncOptions
from tests.support.clock import ManualClock
from tests.support.reference import assert_identical, scan_all, snapshot, table_contents
from tests.support.tables import SK_NUMBER, create_table, fill

KEYS = ("pk", "sk")
IGNORED = "updated_at"


# --- fixtures and helpers (also imported by test_sync_bad_input.py) --------------------------


def varied_item(i: int, rng: random.Random) -> dict[str, Any]:
    """Every attribute type appears, one optional kind per item (i % 6) to keep moto fast."""
    item: dict[str, Any] = {
        "pk": {"S": f"user#{i % 97:03d}"},
        "sk": {"N": str(i)},
        "name": {"S": f"name {i} " + "x" * rng.randint(0, 20)},
        "score": {"N": str(i * 3)},
        IGNORED: {"N": str(1_700_000_000 + i)},
        "tags": {"SS": [f"t{i % 7}", f"u{i % 11}"]},
    }
    kind = i % 6
    if kind == 0:
        item["price"] = {"N": f"{i}.{i % 10}5"}
    elif kind == 1:
        item["nums"] = {"NS": [str(j * 1.5) for j in range(1, 3 + i % 3)]}
    elif kind == 2:
        item["blob"] = {"B": bytes([i % 256, (i * 7) % 256, 0, 255])}
    elif kind == 3:
        item["bins"] = {"BS": [b"\x01\x02", bytes([i % 256 or 3])]}
    elif kind == 4:
        item["active"] = {"BOOL": i % 2 == 0}
        item["nothing"] = {"NULL": True}
    else:
        item["nested"] = {
            "M": {
                "level": {"N": str(i % 5)},
                "list": {"L": [{"S": "a"}, {"N": str(i)}, {"M": {"deep": {"BOOL": True}}}]},
            }
        }
    return item


def sync_cli(endpoint: str, *args: str) -> int:
    return main(["sync", "--endpoint-url", endpoint, *args])


def key(item: dict[str, Any]) -> dict[str, Any]:
    return {k: item[k] for k in KEYS}


@pytest.fixture(scope="module")
def drifted(ddb: Any) -> dict[str, Any]:
    import uuid

    return make_drifted(ddb, uuid.uuid4().hex[:8])


def make_drifted(ddb: Any, suffix: str) -> dict[str, Any]:
    """A master of 1,000 varied items and two slaves seeded with known differences."""
    master, s1, s2 = (create_table(ddb, f"{p}-{suffix}", **SK_NUMBER) for p in ("m", "s1", "s2"))
    rng = random.Random(7)
    items = [varied_item(i, rng) for i in range(1000)]
    fill(ddb, master, items)

    def slave_copy(spec: dict[str, Any]) -> list[dict[str, Any]]:
        out = []
        for i, item in enumerate(items):
            if i in spec["missing"]:
                continue
            it = copy.deepcopy(item)
            if i in spec["changed"]:
                it["name"] = {"S": "drifted"}
            if i in spec["absent"]:
                del it["score"]
            if i in spec["nested"]:
                it["nested"]["M"]["list"]["L"][2]["M"]["deep"] = {"BOOL": False}
            if i in spec["ignored"]:
                it[IGNORED] = {"N": "1"}
            if i in spec["respelled"]:
                it["score"] = {"N": it["score"]["N"] + ".000"}
                if "price" in it:
                    it["price"] = {"N": "0" + it["price"]["N"] + "0"}
            if i in spec["reordered"]:
                it["tags"] = {"SS": list(reversed(it["tags"]["SS"]))}
                if "nums" in it:
                    it["nums"] = {"NS": list(reversed(it["nums"]["NS"]))}
            out.append(it)
        for j in spec["extra"]:
            out.append({"pk": {"S": "extra"}, "sk": {"N": str(j)}, "name": {"S": "only here"}})
        return out

    spec1 = {
        "missing": range(0, 50),
        "changed": range(100, 130),
        "absent": range(200, 222),
        "nested": range(0),
        "ignored": range(300, 315),
        "respelled": range(396, 408),  # covers kind 0 (price) twice
        "reordered": range(499, 511),  # covers kind 1 (nums) twice
        "extra": range(20),
    }
    spec2 = {
        "missing": range(900, 910),
        "changed": range(0),
        "absent": range(0),
        "nested": range(605, 635, 6),  # items of kind 5 carry the nested map
        "ignored": range(700, 702),
        "respelled": range(800, 803),
        "reordered": range(810, 813),
        "extra": range(3),
    }
    fill(ddb, s1, slave_copy(spec1))
    fill(ddb, s2, slave_copy(spec2))
    return {"master": master, "s1": s1, "s2": s2}


# --- the "done when" scenario ----------------------------------------------------------------


@pytest.mark.slow
def test_dry_run_reports_exact_counts_then_repair_converges(
    drifted, ddb, endpoint, tmp_path, capsys
):
    m, s1, s2 = drifted["master"], drifted["s1"], drifted["s2"]
    before = snapshot(ddb, m, s1, s2)
    report = tmp_path / "r.json"
    code = sync_cli(
        endpoint,
        "--master",
        f"us-east-1:{m}",
        "--slave",
        f"us-east-1:{s1}",
        "--slave",
        s2,
        "--scan-for-extra",
        "--ignore",
        IGNORED,
        "--parallel",
        "3",
        "--report",
        str(report),
    )
    assert code == 1
    assert snapshot(ddb, m, s1, s2) == before, "a dry run must not write"
    data = json.loads(report.read_text())
    assert data["master"] == f"us-east-1:{m}"
    assert data["scanned"] == 1000
    counts = {
        name: {
            k: v[k]
            for k in (
                "missing",
                "differing",
                "extra",
                "wrote_missing",
                "wrote_differing",
                "deleted_extra",
            )
        }
        for name, v in data["slaves"].items()
    }
    assert counts == {
        f"us-east-1:{s1}": {
            "missing": 50,
            "differing": 52,
            "extra": 20,
            "wrote_missing": 0,
            "wrote_differing": 0,
            "deleted_extra": 0,
        },
        f"us-east-1:{s2}": {
            "missing": 10,
            "differing": 5,
            "extra": 3,
            "wrote_missing": 0,
            "wrote_differing": 0,
            "deleted_extra": 0,
        },
    }
    out = capsys.readouterr().out
    assert f"us-east-1:{s1}: missing 50, differing 52, extra 20" in out

    # Repair (without --ignore: items that differ only in it are rewritten too).
    code = sync_cli(
        endpoint,
        "--master",
        m,
        "--slave",
        s1,
        "--slave",
        s2,
        "--write-missing",
        "--write-differing",
        "--delete-extra",
        "--batch-read-limit",
        "100",
        "--report",
        str(report),
    )
    assert code == 0
    data = json.loads(report.read_text())
    r1 = data["slaves"][f"us-east-1:{s1}"]
    assert (r1["missing"], r1["differing"], r1["extra"]) == (50, 52 + 15, 20)
    assert (r1["wrote_missing"], r1["wrote_differing"], r1["deleted_extra"]) == (50, 67, 20)
    r2 = data["slaves"][f"us-east-1:{s2}"]
    assert (r2["wrote_missing"], r2["wrote_differing"], r2["deleted_extra"]) == (10, 7, 3)
    expected = table_contents(ddb, m, KEYS)  # the independent reference, master scanned once
    for slave in (s1, s2):
        assert table_contents(ddb, slave, KEYS) == expected, slave


# --- write flags one at a time, multiple slaves, tombstones ----------------------------------


@pytest.fixture
def small(ddb, table_name):
    """master of 60 items; slave with 5 missing, 4 differing, 3 extra."""
    m, s = (
        create_table(ddb, table_name("m"), **SK_NUMBER),
        create_table(ddb, table_name("s"), **SK_NUMBER),
    )
    rng = random.Random(3)
    items = [varied_item(i, rng) for i in range(60)]
    fill(ddb, m, items)
    slave = [copy.deepcopy(i) for i in items[5:]]
    for it in slave[:4]:
        it["name"] = {"S": "changed"}
    slave += [{"pk": {"S": "x"}, "sk": {"N": str(j)}} for j in range(3)]
    fill(ddb, s, slave)
    return m, s


def counts(report_path) -> dict[str, int]:
    data = json.loads(report_path.read_text())
    (slave,) = data["slaves"].values()
    return {k: v for k, v in slave.items() if isinstance(v, int) and not isinstance(v, bool)}


def test_write_missing_only_leaves_differences_and_exits_1(small, ddb, endpoint, tmp_path):
    m, s = small
    r = tmp_path / "r.json"
    assert sync_cli(endpoint, "-m", m, "-s", s, "--write-missing", "--report", str(r)) == 1
    c = counts(r)
    assert (c["missing"], c["wrote_missing"], c["differing"], c["wrote_differing"]) == (5, 5, 4, 0)
    assert json.loads(r.read_text())["slaves"][f"us-east-1:{s}"]["extra_scanned"] is False
    assert sync_cli(endpoint, "-m", m, "-s", s, "--report", str(r)) == 1
    assert (counts(r)["missing"], counts(r)["differing"]) == (0, 4)


def test_write_differing_only(small, endpoint, tmp_path):
    m, s = small
    r = tmp_path / "r.json"
    assert sync_cli(endpoint, "-m", m, "-s", s, "--write-differing", "--report", str(r)) == 1
    assert (counts(r)["wrote_differing"], counts(r)["wrote_missing"]) == (4, 0)
    assert sync_cli(endpoint, "-m", m, "-s", s, "--write-missing", "--report", str(r)) == 0
    assert counts(r)["differing"] == 0


def test_scan_for_extra_reports_and_delete_extra_alone_deletes(small, ddb, endpoint, tmp_path):
    m, s = small
    r = tmp_path / "r.json"
    assert sync_cli(endpoint, "-m", m, "-s", s, "--scan-for-extra", "--report", str(r)) == 1
    assert (counts(r)["extra"], counts(r)["deleted_extra"]) == (3, 0)
    assert len(scan_all(ddb, s)) == 58
    assert sync_cli(endpoint, "-m", m, "-s", s, "--delete-extra", "--report", str(r)) == 1
    assert (counts(r)["extra"], counts(r)["deleted_extra"], counts(r)["missing"]) == (3, 3, 5)
    assert len(scan_all(ddb, s)) == 55


def test_tombstones_are_absent_never_extra(ddb, endpoint, table_name, tmp_path):
    m, s = (
        create_table(ddb, table_name("m"), **SK_NUMBER),
        create_table(ddb, table_name("s"), **SK_NUMBER),
    )
    fill(ddb, m, [{"pk": {"S": "a"}, "sk": {"N": "1"}, "v": {"S": "1"}}])
    tomb = {TOMBSTONE_ATTR: {"N": "1"}}
    fill(
        ddb,
        s,
        [
            {"pk": {"S": "a"}, "sk": {"N": "1"}, **tomb},  # a master item: missing
            {"pk": {"S": "gone"}, "sk": {"N": "1"}, **tomb},  # no master item: not extra
        ],
    )
    r = tmp_path / "r.json"
    assert sync_cli(endpoint, "-m", m, "-s", s, "--scan-for-extra", "--report", str(r)) == 1
    assert (counts(r)["missing"], counts(r)["extra"]) == (1, 0)
    args = ("-m", m, "-s", s, "--write-missing", "--delete-extra", "--report", str(r))
    assert sync_cli(endpoint, *args) == 0
    left = {i["pk"]["S"]: i for i in scan_all(ddb, s)}
    assert left["a"] == {"pk": {"S": "a"}, "sk": {"N": "1"}, "v": {"S": "1"}}
    assert TOMBSTONE_ATTR in left["gone"], "sync never deletes a tombstone"


def test_progress_reports_every_scanned_item(small, endpoint):
    m, s = small
    seen: dict[str, Any] = {}

    from dynashift.progress import NullProgress

    def progress(label, total):
        seen[label] = p = NullProgress(label, total)
        return p

    side = Side(endpoint_url=endpoint, region="us-east-1")
    engine = SyncEngine(
        TableLocation(name=m, side=side),
        [TableLocation(name=s, side=side)],
        SyncOptions(scan_for_extra=True, parallel=2),
        progress=progress,
    )
    report = engine.run()
    assert report.exit_code == 1
    assert seen[f"scan us-east-1:{m}"].done == 60
    assert seen[f"scan us-east-1:{m}"].total == 60
    assert seen[f"scan us-east-1:{s} for extra"].done == 58


# --- credentials flags (moto's STS accepts any role in its default account) ------------------


def test_role_and_mfa_flags_for_both_sides(small, endpoint, tmp_path):
    m, s = small
    r = tmp_path / "r.json"
    role = "arn:aws:iam::123456789012:role/sync"
    code = sync_cli(
        endpoint,
        "-m",
        m,
        "-s",
        s,
        "--role-arn",
        role,
        "--mfa-serial",
        "arn:aws:iam::123456789012:mfa/me",
        "--mfa-token",
        "123456",
        "--slave-role-arn",
        role.replace("sync", "slave"),
        "--slave-mfa-serial",
        "arn:aws:iam::123456789012:mfa/me",
        "--slave-mfa-token",
        "654321",
        "--report",
        str(r),
    )
    assert code == 1
    assert (counts(r)["missing"], counts(r)["differing"]) == (5, 4)


# --- I/O details: scan limit, batch read limit, UnprocessedKeys ------------------------------


def engine_with_hooks(endpoint, m, slaves, options, hooks) -> SyncEngine:
    """A SyncEngine whose clients are fresh boto3 clients with botocore event hooks."""
    client = boto3.client("dynamodb", region_name="us-east-1", endpoint_url=endpoint)
    for event, fn in hooks:
        client.meta.events.register(event, fn)
    side = Side(endpoint_url=endpoint, region="us-east-1")
    return SyncEngine(
        TableLocation(name=m, side=side),
        [TableLocation(name=s, side=side) for s in slaves],
        options,
        client_for=lambda _loc: client,
        clock=ManualClock(),
    )


def test_scan_limit_and_batch_read_limit_shape_the_requests(small, endpoint):
    m, s = small
    scans: list[Any] = []
    gets: list[int] = []

    def on_scan(params, **_):
        scans.append(params.get("Limit"))

    def on_get(params, **_):
        gets.append(sum(len(v["Keys"]) for v in params["RequestItems"].values()))

    engine = engine_with_hooks(
        endpoint,
        m,
        [s],
        SyncOptions(scan_limit=7, batch_read_limit=3),
        [
            ("provide-client-params.dynamodb.Scan", on_scan),
            ("provide-client-params.dynamodb.BatchGetItem", on_get),
        ],
    )
    report = engine.run()
    assert report.scanned == 60
    assert set(scans) == {7} and len(scans) >= 9
    assert max(gets) == 3 and sum(gets) == 60


def test_unprocessed_keys_are_retried_until_done(ddb, endpoint, table_name):
    """Every BatchGetItem answer withholds half its items as UnprocessedKeys."""
    m, a, b = (create_table(ddb, table_name(p), **SK_NUMBER) for p in ("m", "a", "b"))
    rng = random.Random(5)
    items = [varied_item(i, rng) for i in range(200)]
    fill(ddb, m, items)
    drift = [copy.deepcopy(i) for i in items[10:]]
    for it in drift[:6]:
        it["name"] = {"S": "changed"}
    drift += [{"pk": {"S": "x"}, "sk": {"N": str(j)}} for j in range(4)]
    fill(ddb, a, drift)
    fill(ddb, b, items)
    withheld = {"n": 0}

    def partial(parsed, **_):
        for table, got in list(parsed.get("Responses", {}).items()):
            if len(got) < 2:
                continue
            keep, drop = got[: len(got) // 2], got[len(got) // 2 :]
            parsed["Responses"][table] = keep
            keys = [{n: i[n] for n in KEYS} for i in drop]
            parsed.setdefault("UnprocessedKeys", {})[table] = {"Keys": keys}
            withheld["n"] += len(keys)

    options = SyncOptions(scan_for_extra=True, parallel=2, batch_read_limit=20)
    engine = engine_with_hooks(
        endpoint, m, [a, b], options, [("after-call.dynamodb.BatchGetItem", partial)]
    )
    before = snapshot(ddb, a, b)
    report = engine.run()
    assert withheld["n"] > 200
    assert report.unprocessed_keys == withheld["n"]
    ra, rb = report.slaves[f"us-east-1:{a}"], report.slaves[f"us-east-1:{b}"]
    assert (ra.missing, ra.differing, ra.extra, ra.same) == (10, 6, 4, 184)
    assert (rb.missing, rb.differing, rb.extra, rb.same) == (0, 0, 0, 200)
    assert report.exit_code == 1
    assert snapshot(ddb, a, b) == before


# --- resume -----------------------------------------------------------------------------------


def failing_scan_after(pages: int):
    """A botocore hook that lets `pages` Scan calls through, then fails (not retryable)."""
    calls = {"n": 0}

    def hook(**_):
        calls["n"] += 1
        if calls["n"] > pages:
            raise ClientError(
                {"Error": {"Code": "AccessDeniedException", "Message": "injected"}}, "Scan"
            )

    return hook


@pytest.mark.parametrize("parallel", [1, 3])
def test_resume_from_the_logged_starting_key(ddb, endpoint, table_name, parallel, caplog):
    m, s = (
        create_table(ddb, table_name("m"), **SK_NUMBER),
        create_table(ddb, table_name("s"), **SK_NUMBER),
    )
    rng = random.Random(11)
    items = [varied_item(i, rng) for i in range(120)]
    fill(ddb, m, items)
    options = SyncOptions(write_missing=True, scan_limit=10, parallel=parallel, log_every=1e-9)
    engine = engine_with_hooks(
        endpoint, m, [s], options, [("before-call.dynamodb.Scan", failing_scan_after(5))]
    )
    with pytest.raises(RuntimeFailure, match="AccessDenied"):
        engine.run()
    first = engine.report
    assert first is not None and first.resume is not None
    assert 0 < first.scanned < 120
    assert first.resume in caplog.text, "the resume key is logged"
    assert len(scan_all(ddb, s)) == first.scanned

    args = ["-m", m, "-s", s, "--write-missing", "--starting-key", first.resume]
    if parallel > 1:
        args += ["--parallel", str(parallel)]
    assert sync_cli(endpoint, *args) == 0
    assert_identical(ddb, m, ddb, s, KEYS)


def test_seed_style_plain_starting_key_skips_what_was_before_it(ddb, endpoint, table_name):
    m, s = (
        create_table(ddb, table_name("m")),
        create_table(ddb, table_name("s")),
    )
    fill(ddb, m, [{"pk": {"S": f"k{i:03d}"}, "n": {"N": str(i)}} for i in range(40)])
    order = [i["pk"]["S"] for i in ddb.scan(TableName=m, Limit=40)["Items"]]
    start = order[9]
    code = sync_cli(
        endpoint, "-m", m, "-s", s, "--write-missing", "--starting-key", json.dumps({"pk": start})
    )
    assert code == 0
    assert sorted(i["pk"]["S"] for i in scan_all(ddb, s)) == sorted(order[10:])


# --- the remaining flags ---------------------------------------------------------------------


def test_profiles_for_master_and_slaves_and_scan_limit(
    small, endpoint, tmp_path, monkeypatch, capsys
):
    m, s = small
    creds = tmp_path / "credentials"
    tag = tmp_path.name[-12:]
    creds.write_text(
        f"[master-{tag}]\naws_access_key_id = a\naws_secret_access_key = a\n"
        f"[slave-{tag}]\naws_access_key_id = b\naws_secret_access_key = b\n"
    )
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(creds))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "config"))
    r = tmp_path / "r.json"
    common = ["-m", m, "-s", s, "--profile", f"master-{tag}", "--report", str(r)]
    code = sync_cli(endpoint, *common, "--slave-profile", f"slave-{tag}", "--scan-limit", "7")
    assert code == 1
    assert (counts(r)["missing"], counts(r)["differing"]) == (5, 4)
    assert json.loads(r.read_text())["scanned"] == 60

    assert sync_cli(endpoint, *common, "--slave-profile", f"nobody-{tag}") == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f"nobody-{tag}" in err[0]


def test_replication_attributes_consistent_read_and_slave_endpoint(
    ddb, endpoint, table_name, tmp_path
):
    m, s = (
        create_table(ddb, table_name("m"), **SK_NUMBER),
        create_table(ddb, table_name("s"), **SK_NUMBER),
    )
    base = {"pk": {"S": "a"}, "sk": {"N": "1"}, "v": {"S": "x"}}
    fill(ddb, m, [{**base, "aws:rep:updatetime": {"N": "1"}}])
    fill(ddb, s, [{**base, "aws:rep:updatetime": {"N": "2"}}])
    args = ["-m", m, "-s", s, "--consistent-read", "--slave-endpoint-url", endpoint]
    assert sync_cli(endpoint, *args) == 0
    r = tmp_path / "r.json"
    code = sync_cli(endpoint, *args, "--compare-replication-attributes", "--report", str(r))
    assert code == 1
    assert counts(r)["differing"] == 1


def test_cli_runtime_failure_exits_3_with_resume_in_report(
    ddb, endpoint, table_name, tmp_path, capsys
):
    from dynashift.models import factory_for

    m, s = (
        create_table(ddb, table_name("m"), **SK_NUMBER),
        create_table(ddb, table_name("s"), **SK_NUMBER),
    )
    rng = random.Random(13)
    fill(ddb, m, [varied_item(i, rng) for i in range(50)])
    # The CLI's client for `us-east-1:<m>` on this endpoint is the process-wide one of this side.
    client = factory_for(Side(region="us-east-1", endpoint_url=endpoint), 1).dynamodb()
    fail = failing_scan_after(2)

    def only_this_table(params, **kwargs):
        if params.get("TableName") == m:
            fail(**kwargs)

    client.meta.events.register("provide-client-params.dynamodb.Scan", only_this_table)
    r = tmp_path / "r.json"
    args = ["-m", f"us-east-1:{m}", "-s", f"us-east-1:{s}", "--write-missing", "--scan-limit"]
    try:
        code = sync_cli(endpoint, *args, "10", "--report", str(r))
    finally:
        client.meta.events.unregister("provide-client-params.dynamodb.Scan", only_this_table)
    assert code == 3
    err = capsys.readouterr().err
    assert err.count("dynashift: error:") == 1 and "AccessDenied" in err
    assert "Traceback" not in err
    data = json.loads(r.read_text())
    assert data["complete"] is False and data["scanned"] == 20
    assert "AccessDenied" in data["error"]
    assert sync_cli(endpoint, *args, "10", "--starting-key", data["resume"]) == 0
    assert_identical(ddb, m, ddb, s, KEYS)


def test_numbers_differing_in_the_38th_digit_are_found_and_repaired(
    ddb, endpoint, table_name, tmp_path
):
    """DynamoDB keeps 38 significant digits; the comparison must too (issue 13, item 5)."""
    m, s = (
        create_table(ddb, table_name("m"), **SK_NUMBER),
        create_table(ddb, table_name("s"), **SK_NUMBER),
    )
    d37 = "1234567890123456789012345678901234567"
    base = {"pk": {"S": "n"}, "sk": {"N": "1"}}
    fill(ddb, m, [{**base, "n": {"N": d37 + "1"}, "m": {"M": {"l": {"NS": ["1", "2"]}}}}])
    fill(ddb, s, [{**base, "n": {"N": d37 + "2"}, "m": {"M": {"l": {"NS": ["1", "2"]}}}}])
    fill(ddb, m, [{**base, "sk": {"N": "2"}, "l": {"L": [{"NS": [d37 + "1", "7"]}]}}])
    fill(ddb, s, [{**base, "sk": {"N": "2"}, "l": {"L": [{"NS": ["7", d37 + "2"]}]}}])
    fill(ddb, m, [{**base, "sk": {"N": "3"}, "x": {"N": "1E+2"}}])
    fill(ddb, s, [{**base, "sk": {"N": "3"}, "x": {"N": "100"}}])
    r = tmp_path / "r.json"
    assert sync_cli(endpoint, "-m", m, "-s", s, "--report", str(r)) == 1
    assert (counts(r)["differing"], counts(r)["same"]) == (2, 1)
    assert sync_cli(endpoint, "-m", m, "-s", s, "--write-differing", "--report", str(r)) == 0
    assert counts(r)["wrote_differing"] == 2
    assert sync_cli(endpoint, "-m", m, "-s", s, "--report", str(r)) == 0
