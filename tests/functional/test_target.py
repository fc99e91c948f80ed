"""Create or verify the target on a moto server: mirroring, verify paths, refusals, replicas.

moto round-trips key schema, attribute definitions, GSIs, LSIs, billing and capacity, TTL, PITR,
tags, SSE and deletion protection: those are asserted on the created table. It does not return
TableClass and ignores ReplicaUpdates: those are asserted on the request dynashift sends (and
replica progress is simulated in DescribeTable responses at the botocore layer).
"""

from __future__ import annotations

import contextlib
import json
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from dynashift.aws import Side
from dynashift.errors import (
    BadInputError,
    IncompatibleSchemaError,
    RuntimeFailure,
    TableNotFoundError,
    UnsafeTargetError,
)
from dynashift.items import TOMBSTONE_ATTR
from dynashift.models import PROCESS_CLIENTS, TableLocation
from dynashift.state import StateStore, state_table_name
from dynashift.target import (
    TargetOptions,
    check_target,
    poll_target,
    prepare_target,
    start_prepare_target,
)
from tests.support.clock import ManualClock

REGION = "us-east-1"


# --- helpers shared with the stream and plan tests ---------------------------------------------


def location(endpoint: str, name: str, region: str | None = REGION) -> TableLocation:
    return TableLocation(name=name, side=Side(region=region, endpoint_url=endpoint))


@contextlib.contextmanager
def hooked(client: Any, event: str, handler: Callable[..., Any]) -> Iterator[None]:
    """Register a botocore event handler on `client` for the duration of the block."""
    unique_id = f"test-{uuid.uuid4().hex}"
    client.meta.events.register(event, handler, unique_id=unique_id)
    try:
        yield
    finally:
        client.meta.events.unregister(event, unique_id=unique_id)


@contextlib.contextmanager
def capture(client: Any, operation: str) -> Iterator[list[dict[str, Any]]]:
    """Record the API parameters of every `operation` call the client makes."""
    calls: list[dict[str, Any]] = []

    def record(params: dict[str, Any], **_: Any) -> None:
        calls.append(dict(params))

    with hooked(client, f"before-parameter-build.dynamodb.{operation}", record):
        yield calls


class FakeHttp:
    status_code = 200
    headers: dict[str, str] = {}
    content = b"{}"


def simple_table(ddb: Any, name: str, *, sort_key: bool = False, **extra: Any) -> None:
    keys = [{"AttributeName": "pk", "KeyType": "HASH"}]
    attrs = [{"AttributeName": "pk", "AttributeType": "S"}]
    if sort_key:
        keys.append({"AttributeName": "sk", "KeyType": "RANGE"})
        attrs.append({"AttributeName": "sk", "AttributeType": "N"})
    ddb.create_table(
        TableName=name,
        KeySchema=keys,
        AttributeDefinitions=attrs,
        BillingMode="PAY_PER_REQUEST",
        **extra,
    )


def rich_source(ddb: Any, name: str, *, kms_key: str | None = None) -> None:
    """2 GSIs (different projections), 1 LSI, TTL, PITR, tags, provisioned capacity, SSE."""
    ddb.create_table(
        TableName=name,
        KeySchema=[
            {"AttributeName": "pk", "KeyType": "HASH"},
            {"AttributeName": "sk", "KeyType": "RANGE"},
        ],
        AttributeDefinitions=[
            {"AttributeName": "pk", "AttributeType": "S"},
            {"AttributeName": "sk", "AttributeType": "N"},
            {"AttributeName": "email", "AttributeType": "S"},
            {"AttributeName": "status", "AttributeType": "S"},
            {"AttributeName": "created", "AttributeType": "N"},
        ],
        BillingMode="PROVISIONED",
        ProvisionedThroughput={"ReadCapacityUnits": 7, "WriteCapacityUnits": 3},
        GlobalSecondaryIndexes=[
            {
                "IndexName": "by-email",
                "KeySchema": [{"AttributeName": "email", "KeyType": "HASH"}],
                "Projection": {"ProjectionType": "ALL"},
                "ProvisionedThroughput": {"ReadCapacityUnits": 4, "WriteCapacityUnits": 2},
            },
            {
                "IndexName": "by-status",
                "KeySchema": [
                    {"AttributeName": "status", "KeyType": "HASH"},
                    {"AttributeName": "created", "KeyType": "RANGE"},
                ],
                "Projection": {"ProjectionType": "INCLUDE", "NonKeyAttributes": ["total", "n"]},
                "ProvisionedThroughput": {"ReadCapacityUnits": 5, "WriteCapacityUnits": 1},
            },
        ],
        LocalSecondaryIndexes=[
            {
                "IndexName": "by-created",
                "KeySchema": [
                    {"AttributeName": "pk", "KeyType": "HASH"},
                    {"AttributeName": "created", "KeyType": "RANGE"},
                ],
                "Projection": {"ProjectionType": "KEYS_ONLY"},
            }
        ],
        SSESpecification={
            "Enabled": True,
            "SSEType": "KMS",
            "KMSMasterKeyId": kms_key or "arn:aws:kms:us-east-1:123456789012:key/source-key",
        },
        DeletionProtectionEnabled=True,
        Tags=[{"Key": "team", "Value": "payments"}, {"Key": "env", "Value": "prod"}],
    )
    ddb.update_time_to_live(
        TableName=name, TimeToLiveSpecification={"Enabled": True, "AttributeName": "expires"}
    )
    ddb.update_continuous_backups(
        TableName=name, PointInTimeRecoverySpecification={"PointInTimeRecoveryEnabled": True}
    )


def snapshot(ddb: Any, name: str) -> dict[str, Any]:
    """Everything that must stay unchanged when dynashift only looks at a table."""
    table = ddb.describe_table(TableName=name)["Table"]
    return {
        "table": {k: v for k, v in table.items() if k not in ("CreationDateTime",)},
        "ttl": ddb.describe_time_to_live(TableName=name)["TimeToLiveDescription"],
        "pitr": ddb.describe_continuous_backups(TableName=name)["ContinuousBackupsDescription"][
            "PointInTimeRecoveryDescription"
        ]["PointInTimeRecoveryStatus"],
        "tags": ddb.list_tags_of_resource(ResourceArn=table["TableArn"])["Tags"],
        "items": ddb.scan(TableName=name, Select="COUNT")["Count"],
    }


def _tags(ddb: Any, name: str) -> dict[str, str]:
    arn = ddb.describe_table(TableName=name)["Table"]["TableArn"]
    return {t["Key"]: t["Value"] for t in ddb.list_tags_of_resource(ResourceArn=arn)["Tags"]}


# --- creation ------------------------------------------------------------------------------------


def test_creation_mirrors_every_setting(endpoint: str, ddb: Any, table_name: Any) -> None:
    src, dst = table_name("rich"), table_name("rich-copy")
    rich_source(ddb, src)
    target = location(endpoint, dst)
    client = PROCESS_CLIENTS(target).dynamodb()
    with capture(client, "CreateTable") as creates:
        result = prepare_target(
            location(endpoint, src),
            target,
            TargetOptions(tags={"migrated-by": "dynashift"}),
            clock=ManualClock(),
        )
    assert result.ready and result.created and result.action == "create"
    assert len(creates) == 1
    t = ddb.describe_table(TableName=dst)["Table"]
    s = ddb.describe_table(TableName=src)["Table"]
    assert t["KeySchema"] == s["KeySchema"]
    assert sorted(t["AttributeDefinitions"], key=str) == sorted(s["AttributeDefinitions"], key=str)
    # provisioned capacity
    assert t["BillingModeSummary"]["BillingMode"] == "PROVISIONED"
    assert t["ProvisionedThroughput"]["ReadCapacityUnits"] == 7
    assert t["ProvisionedThroughput"]["WriteCapacityUnits"] == 3
    # 2 GSIs: keys, projections (ALL / INCLUDE with attributes), capacity each
    gsis = {g["IndexName"]: g for g in t["GlobalSecondaryIndexes"]}
    assert set(gsis) == {"by-email", "by-status"}
    assert gsis["by-email"]["KeySchema"] == [{"AttributeName": "email", "KeyType": "HASH"}]
    assert gsis["by-email"]["Projection"] == {"ProjectionType": "ALL"}
    assert gsis["by-email"]["ProvisionedThroughput"]["ReadCapacityUnits"] == 4
    assert gsis["by-email"]["ProvisionedThroughput"]["WriteCapacityUnits"] == 2
    assert gsis["by-status"]["KeySchema"] == [
        {"AttributeName": "status", "KeyType": "HASH"},
        {"AttributeName": "created", "KeyType": "RANGE"},
    ]
    assert gsis["by-status"]["Projection"] == {
        "ProjectionType": "INCLUDE",
        "NonKeyAttributes": ["total", "n"],
    }
    assert gsis["by-status"]["ProvisionedThroughput"]["ReadCapacityUnits"] == 5
    assert gsis["by-status"]["ProvisionedThroughput"]["WriteCapacityUnits"] == 1
    # LSI
    (lsi,) = t["LocalSecondaryIndexes"]
    assert lsi["IndexName"] == "by-created"
    assert lsi["KeySchema"] == s["LocalSecondaryIndexes"][0]["KeySchema"]
    assert lsi["Projection"] == {"ProjectionType": "KEYS_ONLY"}
    # TTL, PITR
    ttl = ddb.describe_time_to_live(TableName=dst)["TimeToLiveDescription"]
    assert ttl == {"TimeToLiveStatus": "ENABLED", "AttributeName": "expires"}
    pitr = ddb.describe_continuous_backups(TableName=dst)["ContinuousBackupsDescription"]
    assert pitr["PointInTimeRecoveryDescription"]["PointInTimeRecoveryStatus"] == "ENABLED"
    # tags: the source's plus the added one
    assert _tags(ddb, dst) == {"team": "payments", "env": "prod", "migrated-by": "dynashift"}
    # SSE with the same (same-account, same-region) key, deletion protection
    assert t["SSEDescription"]["SSEType"] == "KMS"
    assert t["SSEDescription"]["KMSMasterKeyArn"] == s["SSEDescription"]["KMSMasterKeyArn"]
    assert t["DeletionProtectionEnabled"] is True
    # no stream on the target unless asked for
    assert not (t.get("StreamSpecification") or {}).get("StreamEnabled")
    # the source is unchanged by all this
    assert ddb.describe_table(TableName=src)["Table"]["ItemCount"] == 0


def test_options_override_billing_class_tags_protection(
    endpoint: str, ddb: Any, table_name: Any
) -> None:
    src, dst = table_name("ovr"), table_name("ovr-copy")
    rich_source(ddb, src)
    target = location(endpoint, dst)
    options = TargetOptions(
        billing_mode="PAY_PER_REQUEST",
        table_class="STANDARD_INFREQUENT_ACCESS",
        tags={"env": "staging"},
        deletion_protection=False,
        target_stream_view_type="NEW_IMAGE",
    )
    with capture(PROCESS_CLIENTS(target).dynamodb(), "CreateTable") as creates:
        prepare_target(location(endpoint, src), target, options, clock=ManualClock())
    (request,) = creates
    # moto does not report TableClass: assert the request
    assert request["TableClass"] == "STANDARD_INFREQUENT_ACCESS"
    assert "ProvisionedThroughput" not in request
    assert all("ProvisionedThroughput" not in g for g in request["GlobalSecondaryIndexes"])
    t = ddb.describe_table(TableName=dst)["Table"]
    assert t["BillingModeSummary"]["BillingMode"] == "PAY_PER_REQUEST"
    assert t["DeletionProtectionEnabled"] is False
    assert t["StreamSpecification"] == {"StreamEnabled": True, "StreamViewType": "NEW_IMAGE"}
    assert _tags(ddb, dst) == {"team": "payments", "env": "staging"}


def test_on_demand_source_to_provisioned_needs_capacity(
    endpoint: str, ddb: Any, table_name: Any
) -> None:
    src, dst = table_name("od"), table_name("od-copy")
    simple_table(ddb, src)
    with pytest.raises(BadInputError, match="--read-capacity"):
        check_target(
            location(endpoint, src),
            location(endpoint, dst),
            TargetOptions(billing_mode="PROVISIONED"),
        )
    prepare_target(
        location(endpoint, src),
        location(endpoint, dst),
        TargetOptions(billing_mode="PROVISIONED", read_capacity=11, write_capacity=13),
        clock=ManualClock(),
    )
    pt = ddb.describe_table(TableName=dst)["Table"]["ProvisionedThroughput"]
    assert (pt["ReadCapacityUnits"], pt["WriteCapacityUnits"]) == (11, 13)


# --- verifying an existing target --------------------------------------------------------------


def test_existing_compatible_target_reports_warnings_and_is_not_changed(
    endpoint: str, ddb: Any, table_name: Any
) -> None:
    src, dst = table_name("ver"), table_name("ver-existing")
    rich_source(ddb, src)
    # same keys, nothing else
    ddb.create_table(
        TableName=dst,
        KeySchema=[
            {"AttributeName": "pk", "KeyType": "HASH"},
            {"AttributeName": "sk", "KeyType": "RANGE"},
        ],
        AttributeDefinitions=[
            {"AttributeName": "pk", "AttributeType": "S"},
            {"AttributeName": "sk", "AttributeType": "N"},
        ],
        BillingMode="PAY_PER_REQUEST",
    )
    before = snapshot(ddb, dst)
    check = check_target(location(endpoint, src), location(endpoint, dst), TargetOptions())
    assert check.action == "exists" and not check.nonempty
    text = "\n".join(check.warnings)
    for expected in ("no GSI by-email", "no GSI by-status", "no LSI by-created", "TTL", "point-in"):
        assert expected in text, expected
    assert "PAY_PER_REQUEST" in text
    result = prepare_target(
        location(endpoint, src), location(endpoint, dst), TargetOptions(), clock=ManualClock()
    )
    assert result.ready and result.action == "exists" and not result.created
    assert result.warnings == check.warnings
    assert snapshot(ddb, dst) == before


def test_existing_target_gets_only_explicit_tags(endpoint: str, ddb: Any, table_name: Any) -> None:
    src, dst = table_name("tag"), table_name("tag-existing")
    simple_table(ddb, src, Tags=[{"Key": "team", "Value": "a"}])
    simple_table(ddb, dst)
    result = prepare_target(
        location(endpoint, src),
        location(endpoint, dst),
        TargetOptions(tags={"owner": "ops"}),
        clock=ManualClock(),
    )
    assert result.ready
    assert _tags(ddb, dst) == {"owner": "ops"}
    assert any("lacks the source's tags: team" in w for w in result.warnings)


def test_a_source_resource_policy_is_reported_not_copied(
    endpoint: str, ddb: Any, table_name: Any
) -> None:
    src, plain, dst = table_name("pol"), table_name("pol-none"), table_name("pol-copy")
    simple_table(ddb, src)
    simple_table(ddb, plain)
    arn = ddb.describe_table(TableName=src)["Table"]["TableArn"]
    policy = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"AWS": "arn:aws:iam::111122223333:root"},
                "Action": "dynamodb:GetItem",
                "Resource": arn,
            }
        ],
    }
    ddb.put_resource_policy(ResourceArn=arn, Policy=json.dumps(policy))
    said = "source has a resource policy; not copied"
    none = check_target(location(endpoint, plain), location(endpoint, dst), TargetOptions())
    assert not [w for w in none.warnings if "resource policy" in w]
    result = prepare_target(
        location(endpoint, src), location(endpoint, dst), TargetOptions(), clock=ManualClock()
    )
    assert any(w.startswith(said) for w in result.warnings), result.warnings
    target_arn = ddb.describe_table(TableName=dst)["Table"]["TableArn"]
    with pytest.raises(ddb.exceptions.PolicyNotFoundException):
        ddb.get_resource_policy(ResourceArn=target_arn)


def test_incompatible_key_schema_names_both_schemas(
    endpoint: str, ddb: Any, table_name: Any
) -> None:
    src, dst = table_name("keys"), table_name("keys-other")
    simple_table(ddb, src, sort_key=True)
    simple_table(ddb, dst)
    before = snapshot(ddb, dst)
    with pytest.raises(IncompatibleSchemaError) as err:
        start_prepare_target(location(endpoint, src), location(endpoint, dst), TargetOptions())
    message = str(err.value)
    assert "pk (S, HASH), sk (N, RANGE)" in message
    assert "[pk (S, HASH)]" in message
    assert "\n" not in message
    assert snapshot(ddb, dst) == before


def test_nonempty_target_refused_unless_allowed_or_resumed(
    endpoint: str, ddb: Any, table_name: Any
) -> None:
    src, dst = table_name("ne"), table_name("ne-target")
    simple_table(ddb, src)
    simple_table(ddb, dst)
    # a target holding only tombstones counts as empty
    for i in range(3):
        ddb.put_item(TableName=dst, Item={"pk": {"S": f"dead{i}"}, TOMBSTONE_ATTR: {"BOOL": True}})
    assert check_target(location(endpoint, src), location(endpoint, dst), TargetOptions())
    ddb.put_item(TableName=dst, Item={"pk": {"S": "zz-live"}, "v": {"N": "1"}})
    before = snapshot(ddb, dst)
    with pytest.raises(UnsafeTargetError, match=r"not empty.*--allow-nonempty-target"):
        start_prepare_target(location(endpoint, src), location(endpoint, dst), TargetOptions())
    assert snapshot(ddb, dst) == before
    allowed = check_target(
        location(endpoint, src),
        location(endpoint, dst),
        TargetOptions(allow_nonempty_target=True),
    )
    assert allowed.nonempty and any("not empty (allowed)" in w for w in allowed.warnings)
    # a resumed run: the state store of this migration names the target
    migration = f"m{uuid.uuid4().hex[:8]}"
    StateStore.ensure_table(ddb, state_table_name(migration))
    state = StateStore(ddb, state_table_name(migration), migration)
    with pytest.raises(UnsafeTargetError):
        check_target(location(endpoint, src), location(endpoint, dst), TargetOptions(), state)
    state.put_meta(target=dst)
    resumed = check_target(location(endpoint, src), location(endpoint, dst), TargetOptions(), state)
    assert resumed.resumed and resumed.nonempty
    # another migration's state does not vouch for it
    other = StateStore(ddb, state_table_name(migration), "another")
    with pytest.raises(UnsafeTargetError):
        check_target(location(endpoint, src), location(endpoint, dst), TargetOptions(), other)


def test_created_target_is_recorded_and_resume_applies_settings(
    endpoint: str, ddb: Any, table_name: Any
) -> None:
    src, dst = table_name("res"), table_name("res-target")
    rich_source(ddb, src)
    migration = f"m{uuid.uuid4().hex[:8]}"
    StateStore.ensure_table(ddb, state_table_name(migration))
    state = StateStore(ddb, state_table_name(migration), migration)
    source, target = location(endpoint, src), location(endpoint, dst)
    first = start_prepare_target(source, target, TargetOptions(), state)
    assert first.created
    meta = state.get_meta() or {}
    assert meta["target"] == dst and meta["target_created"] is True
    ddb.put_item(TableName=dst, Item={"pk": {"S": "a"}, "sk": {"N": "1"}})
    # a crash and a resumed start: recognised as ours, settings still converge
    again = start_prepare_target(source, target, TargetOptions(), state)
    assert again.action == "exists" and again.created
    for _ in range(10):
        if again.ready:
            break
        again = poll_target(source, target, TargetOptions(), created=True)
    assert again.ready
    assert ddb.describe_time_to_live(TableName=dst)["TimeToLiveDescription"]["AttributeName"] == (
        "expires"
    )


# --- refusals ------------------------------------------------------------------------------------


def test_same_table_refused(endpoint: str, ddb: Any, table_name: Any) -> None:
    name = table_name("same")
    simple_table(ddb, name)
    before = snapshot(ddb, name)
    with pytest.raises(UnsafeTargetError, match="same table"):
        check_target(location(endpoint, name), location(endpoint, name), TargetOptions())
    # spelled differently (default region vs explicit): the ARNs match
    with pytest.raises(UnsafeTargetError, match="same table"):
        start_prepare_target(
            location(endpoint, name, region=None), location(endpoint, name), TargetOptions()
        )
    assert snapshot(ddb, name) == before


def test_missing_source_creates_nothing(endpoint: str, ddb: Any, table_name: Any) -> None:
    src, dst = table_name("missing"), table_name("never")
    with pytest.raises(TableNotFoundError, match=src):
        start_prepare_target(location(endpoint, src), location(endpoint, dst), TargetOptions())
    assert dst not in ddb.list_tables(ExclusiveStartTableName=dst[:-1])["TableNames"]


def test_kms_key_of_another_account_must_be_given(endpoint: str, ddb: Any, table_name: Any) -> None:
    src, dst = table_name("kms"), table_name("kms-copy")
    foreign = "arn:aws:kms:us-east-1:999999999999:key/theirs"
    rich_source(ddb, src, kms_key=foreign)
    with pytest.raises(BadInputError, match=r"another account.*--sse-kms-key-id"):
        start_prepare_target(location(endpoint, src), location(endpoint, dst), TargetOptions())
    assert not _exists(ddb, dst)
    mine = "arn:aws:kms:us-east-1:123456789012:key/mine"
    prepare_target(
        location(endpoint, src),
        location(endpoint, dst),
        TargetOptions(sse_kms_key_id=mine),
        clock=ManualClock(),
    )
    assert ddb.describe_table(TableName=dst)["Table"]["SSEDescription"]["KMSMasterKeyArn"] == mine


def _exists(ddb: Any, name: str) -> bool:
    try:
        ddb.describe_table(TableName=name)
        return True
    except ddb.exceptions.ResourceNotFoundException:
        return False


# --- replicas and waiting ------------------------------------------------------------------------


def test_pitr_waits_while_a_new_tables_backups_are_unavailable(
    endpoint: str, ddb: Any, table_name: Any
) -> None:
    """AWS answers UpdateContinuousBackups on a table created moments ago with
    ContinuousBackupsUnavailableException (moto does not): a wait, not a failure."""
    src, dst = table_name("bk"), table_name("bk-copy")
    simple_table(ddb, src)
    ddb.update_continuous_backups(
        TableName=src, PointInTimeRecoverySpecification={"PointInTimeRecoveryEnabled": True}
    )
    target = location(endpoint, dst)
    client = PROCESS_CLIENTS(target).dynamodb()
    refusals = [2]

    class Unavailable(FakeHttp):
        status_code = 400

    def on_update(**_: Any) -> Any:
        if refusals[0]:
            refusals[0] -= 1
            error = {"Code": "ContinuousBackupsUnavailableException", "Message": "enabling"}
            return Unavailable(), {"Error": error}
        return None

    with hooked(client, "before-call.dynamodb.UpdateContinuousBackups", on_update):
        result = prepare_target(
            location(endpoint, src), target, TargetOptions(), clock=ManualClock()
        )
    assert result.ready and refusals == [0]
    pitr = ddb.describe_continuous_backups(TableName=dst)["ContinuousBackupsDescription"]
    assert pitr["PointInTimeRecoveryDescription"]["PointInTimeRecoveryStatus"] == "ENABLED"


def test_replicas_added_one_at_a_time_waiting_for_each(
    endpoint: str, ddb: Any, table_name: Any
) -> None:
    """moto ignores ReplicaUpdates: replicas are simulated in DescribeTable responses."""
    src, dst = table_name("glob"), table_name("glob-copy")
    simple_table(ddb, src)
    target = location(endpoint, dst)
    client = PROCESS_CLIENTS(target).dynamodb()
    replicas: dict[str, list[str]] = {}  # region -> statuses still to report

    def on_update(params: dict[str, Any], **_: Any) -> Any:
        body = json.loads(params["body"])  # the serialized request
        for update in body.get("ReplicaUpdates", []):
            region = update["Create"]["RegionName"]
            assert not [r for r, s in replicas.items() if s and s[0] != "ACTIVE"], (
                "a replica was added while another was still being created"
            )
            replicas[region] = ["CREATING", "CREATING", "ACTIVE"]
            return FakeHttp(), {"TableDescription": {}}
        return None

    def on_describe(parsed: dict[str, Any], **_: Any) -> None:
        table = parsed.get("Table")
        if table and table.get("TableName") == dst and replicas:
            table["Replicas"] = [
                {"RegionName": r, "ReplicaStatus": s.pop(0) if len(s) > 1 else s[0]}
                for r, s in replicas.items()
            ]

    steps: list[str] = []
    with (
        capture(client, "UpdateTable") as updates,
        hooked(client, "before-call.dynamodb.UpdateTable", on_update),
        hooked(client, "after-call.dynamodb.DescribeTable", on_describe),
    ):

        class Recorder:
            def advance(self, n: int = 1, note: str | None = None) -> None:
                steps.append(note or "")

        result = prepare_target(
            location(endpoint, src),
            target,
            TargetOptions(replica_regions=("eu-west-1", "ap-southeast-2")),
            clock=ManualClock(),
            timeout=60,
            progress=Recorder(),  # type: ignore[arg-type]
        )
    assert result.ready
    assert result.replicas == {"eu-west-1": "ACTIVE", "ap-southeast-2": "ACTIVE"}
    assert [u["ReplicaUpdates"] for u in updates if "ReplicaUpdates" in u] == [
        [{"Create": {"RegionName": "eu-west-1"}}],
        [{"Create": {"RegionName": "ap-southeast-2"}}],
    ]
    assert any("waiting for replica eu-west-1" in s for s in steps)
    assert any("waiting for replica ap-southeast-2" in s for s in steps)
    # a global table needs a NEW_AND_OLD_IMAGES stream: created with it
    spec = ddb.describe_table(TableName=dst)["Table"]["StreamSpecification"]
    assert spec == {"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"}


def test_replica_in_the_target_region_is_refused(endpoint: str, ddb: Any, table_name: Any) -> None:
    src, dst = table_name("rr"), table_name("rr-copy")
    simple_table(ddb, src)
    with pytest.raises(BadInputError, match="--replica-region us-east-1"):
        check_target(
            location(endpoint, src),
            location(endpoint, dst),
            TargetOptions(replica_regions=("us-east-1",)),
        )


def test_waiting_for_active_has_a_deadline(endpoint: str, ddb: Any, table_name: Any) -> None:
    src, dst = table_name("slow"), table_name("slow-copy")
    simple_table(ddb, src)
    target = location(endpoint, dst)
    client = PROCESS_CLIENTS(target).dynamodb()
    clock = ManualClock(min_step=1.0)

    def still_creating(parsed: dict[str, Any], **_: Any) -> None:
        table = parsed.get("Table")
        if table and table.get("TableName") == dst:
            table["TableStatus"] = "CREATING"

    with (
        hooked(client, "after-call.dynamodb.DescribeTable", still_creating),
        pytest.raises(RuntimeFailure, match="not ready after 30s: waiting for table CREATING"),
    ):
        prepare_target(location(endpoint, src), target, TargetOptions(), timeout=30, clock=clock)
    assert 30 <= clock.now <= 40 and clock.sleeps


# --- settings parity, both ways (issue 13 item 4) ------------------------------------------------
#
# Each setting is put on the source only, on the target only, and on both (equal): the first two
# must each be reported by the check that readiness and `check_target` share, the third not. A
# setting is (CreateTable extras, calls after creation, DescribeTable overrides for what moto
# does not round-trip: table class and replicas) — or, for what mirrors the options rather than
# the source (replicas, the target stream), the options themselves on the "source" side.

_ALL = {"ProjectionType": "ALL"}
_NEW_AND_OLD = "NEW_AND_OLD_IMAGES"


def _include(*names: str) -> dict[str, Any]:
    return {"ProjectionType": "INCLUDE", "NonKeyAttributes": list(names)}


def _gsi(projection: dict[str, Any], capacity: tuple[int, int] | None = None) -> dict[str, Any]:
    index: dict[str, Any] = {
        "IndexName": "gsi1",
        "KeySchema": [{"AttributeName": "email", "KeyType": "HASH"}],
        "Projection": projection,
    }
    if capacity:
        index["ProvisionedThroughput"] = {
            "ReadCapacityUnits": capacity[0],
            "WriteCapacityUnits": capacity[1],
        }
    return index


def _lsi(projection: dict[str, Any]) -> dict[str, Any]:
    return {
        "IndexName": "lsi1",
        "KeySchema": [
            {"AttributeName": "pk", "KeyType": "HASH"},
            {"AttributeName": "created", "KeyType": "RANGE"},
        ],
        "Projection": projection,
    }


def _provisioned(read: int, write: int) -> dict[str, Any]:
    return {
        "BillingMode": "PROVISIONED",
        "ProvisionedThroughput": {"ReadCapacityUnits": read, "WriteCapacityUnits": write},
    }


def _kms(key: str) -> dict[str, Any]:
    return {
        "SSESpecification": {
            "Enabled": True,
            "SSEType": "KMS",
            "KMSMasterKeyId": f"arn:aws:kms:us-east-1:123456789012:key/{key}",
        }
    }


def _ttl(attr: str) -> Callable[[Any, str], None]:
    return lambda ddb, name: ddb.update_time_to_live(
        TableName=name, TimeToLiveSpecification={"Enabled": True, "AttributeName": attr}
    )


def _pitr(ddb: Any, name: str) -> None:
    ddb.update_continuous_backups(
        TableName=name, PointInTimeRecoverySpecification={"PointInTimeRecoveryEnabled": True}
    )


def _tag(key: str, value: str) -> dict[str, Any]:
    return {"Tags": [{"Key": key, "Value": value}]}


class Setting:
    """One side's share of a setting: CreateTable extras, calls after, DescribeTable overrides."""

    def __init__(
        self,
        create: dict[str, Any] | None = None,
        after: Callable[[Any, str], None] | None = None,
        described: dict[str, Any] | None = None,
        options: dict[str, Any] | None = None,
    ) -> None:
        self.create = create or {}
        self.after = after
        self.described = described or {}
        self.options = options or {}


PLAIN = Setting()


class Parity:
    """A setting: its value on the source side and the target side that match each other, and
    another value of each (default: the setting absent). The source side of what mirrors the
    options rather than the source (replicas, the target stream) is the options."""

    def __init__(
        self,
        words: str,
        source: Setting,
        target: Setting | None = None,
        *,
        other_source: Setting = PLAIN,
        other_target: Setting | None = None,
        target_extra_reported: bool = True,
    ) -> None:
        self.words = words
        self.source = source
        self.target = target or source
        self.other_source = other_source
        self.other_target = other_target or (other_source if other_source is not PLAIN else PLAIN)
        self.target_extra_reported = target_extra_reported


PARITY = {
    "GSI": Parity("GSI gsi1", Setting({"GlobalSecondaryIndexes": [_gsi(_ALL)]})),
    "GSI projection": Parity(
        "GSI gsi1 differs",
        Setting({"GlobalSecondaryIndexes": [_gsi(_include("b", "a"))]}),
        Setting({"GlobalSecondaryIndexes": [_gsi(_include("a", "b"))]}),
        other_source=Setting({"GlobalSecondaryIndexes": [_gsi(_include("a"))]}),
    ),
    "GSI capacity": Parity(
        "GSI gsi1 capacity",
        Setting({**_provisioned(5, 5), "GlobalSecondaryIndexes": [_gsi(_ALL, (4, 2))]}),
        other_source=Setting(
            {**_provisioned(5, 5), "GlobalSecondaryIndexes": [_gsi(_ALL, (4, 3))]}
        ),
    ),
    "LSI": Parity("LSI lsi1", Setting({"LocalSecondaryIndexes": [_lsi(_ALL)]})),
    "LSI projection": Parity(
        "LSI lsi1 differs",
        Setting({"LocalSecondaryIndexes": [_lsi(_ALL)]}),
        other_source=Setting({"LocalSecondaryIndexes": [_lsi({"ProjectionType": "KEYS_ONLY"})]}),
    ),
    "billing": Parity("PROVISIONED", Setting(_provisioned(5, 5))),
    "capacity": Parity(
        "capacity", Setting(_provisioned(5, 5)), other_source=Setting(_provisioned(5, 6))
    ),
    # Reported one way only: a target warmer than the source is no difference.
    "warm throughput": Parity(
        "warm throughput",
        Setting({"WarmThroughput": {"ReadUnitsPerSecond": 20000, "WriteUnitsPerSecond": 9000}}),
        target_extra_reported=False,
    ),
    "TTL": Parity("TTL", Setting(after=_ttl("expires"))),
    "TTL attribute": Parity(
        "TTL", Setting(after=_ttl("expires")), other_source=Setting(after=_ttl("ttl"))
    ),
    "PITR": Parity("point-in-time recovery", Setting(after=_pitr)),
    "SSE": Parity("KMS", Setting(_kms("k1"))),
    "SSE key": Parity("KMS key", Setting(_kms("k1")), other_source=Setting(_kms("k2"))),
    "table class": Parity(
        "table class",
        Setting(described={"TableClassSummary": {"TableClass": "STANDARD_INFREQUENT_ACCESS"}}),
    ),
    "deletion protection": Parity(
        "deletion protection", Setting({"DeletionProtectionEnabled": True})
    ),
    "tags": Parity("tags", Setting(_tag("team", "a"))),
    "tag value": Parity(
        "tags", Setting(_tag("team", "a")), other_source=Setting(_tag("team", "b"))
    ),
    "replicas": Parity(
        "replicas",
        Setting(options={"replica_regions": ("eu-west-1",)}),
        Setting(
            {"StreamSpecification": {"StreamEnabled": True, "StreamViewType": _NEW_AND_OLD}},
            described={"Replicas": [{"RegionName": "eu-west-1", "ReplicaStatus": "ACTIVE"}]},
        ),
    ),
    # The target's stream follows the options only: an unasked-for stream on the target changes
    # no data (the source's stream is the migration's), so it is not a difference.
    "target stream": Parity(
        "stream",
        Setting(options={"target_stream_view_type": "NEW_IMAGE"}),
        Setting({"StreamSpecification": {"StreamEnabled": True, "StreamViewType": "NEW_IMAGE"}}),
        target_extra_reported=False,
    ),
}


def _parity_table(ddb: Any, name: str, setting: Setting) -> None:
    create = dict(setting.create)
    # Every parity table has the same (pk, sk) key schema, so an LSI is possible on either.
    keys = [
        {"AttributeName": "pk", "KeyType": "HASH"},
        {"AttributeName": "sk", "KeyType": "RANGE"},
    ]
    attrs = [
        {"AttributeName": "pk", "AttributeType": "S"},
        {"AttributeName": "sk", "AttributeType": "N"},
    ]
    if "GlobalSecondaryIndexes" in create:
        attrs.append({"AttributeName": "email", "AttributeType": "S"})
    if "LocalSecondaryIndexes" in create:
        attrs.append({"AttributeName": "created", "AttributeType": "N"})
    create.setdefault("BillingMode", "PAY_PER_REQUEST")
    ddb.create_table(TableName=name, KeySchema=keys, AttributeDefinitions=attrs, **create)
    if setting.after:
        setting.after(ddb, name)


def _settings_differences(
    endpoint: str, src: str, dst: str, described: dict[str, dict[str, Any]], options: Any
) -> list[str]:
    """The settings differences as readiness computes them (check_target reports them too)."""
    from dynashift.target import build_target_spec, compare_target, describe_location

    def override(parsed: dict[str, Any], **_: Any) -> None:
        table = parsed.get("Table")
        if table and table.get("TableName") in described:
            table.update(described[table["TableName"]])

    client = PROCESS_CLIENTS(location(endpoint, src)).dynamodb()
    with hooked(client, "after-call.dynamodb.DescribeTable", override):
        source = describe_location(location(endpoint, src), "source")
        target = describe_location(location(endpoint, dst), "target")
        differences = compare_target(build_target_spec(source, options), target, options)
        check = check_target(location(endpoint, src), location(endpoint, dst), options)
    assert set(differences) <= set(check.warnings)
    return differences


@pytest.mark.parametrize("case", ["source has it", "target has it", "both have it"])
@pytest.mark.parametrize("setting", sorted(PARITY))
def test_settings_parity_is_checked_both_ways(
    endpoint: str, table_name: Any, ddb: Any, setting: str, case: str
) -> None:
    parity = PARITY[setting]
    on_source, on_target = {
        "source has it": (parity.source, parity.other_target),
        "target has it": (parity.other_source, parity.target),
        "both have it": (parity.source, parity.target),
    }[case]
    src, dst = table_name("par"), table_name("par-t")
    _parity_table(ddb, src, on_source)
    _parity_table(ddb, dst, on_target)
    described = {src: on_source.described, dst: on_target.described}
    differences = _settings_differences(
        endpoint, src, dst, described, TargetOptions(**on_source.options)
    )
    if case == "both have it" or (case == "target has it" and not parity.target_extra_reported):
        assert differences == [], differences
    else:
        assert differences, f"{setting}: {case} not reported"
        assert all(parity.words in d for d in differences), differences


def test_readiness_compares_with_the_options_the_target_was_prepared_with(
    endpoint: str, ddb: Any, table_name: Any
) -> None:
    """The workflow's readiness step gets no options: they come from the state store's meta."""
    from dynashift.models import MigrationSpec
    from dynashift.readiness import TARGET_SETTINGS, VerificationSummary, gather_readiness

    src, dst = table_name("opt"), table_name("opt-t")
    simple_table(ddb, src, Tags=[{"Key": "team", "Value": "a"}])
    mid = src[-12:]
    StateStore.ensure_table(ddb, state_table_name(mid))
    state = StateStore(ddb, state_table_name(mid), mid)
    options = TargetOptions(
        tags={"owner": "ops"}, billing_mode="PROVISIONED", read_capacity=3, write_capacity=2
    )
    prepare_target(
        location(endpoint, src), location(endpoint, dst), options, state, clock=ManualClock()
    )
    spec = MigrationSpec(
        migration_id=mid,
        source=location(endpoint, src),
        target=location(endpoint, dst),
        state=location(endpoint, state_table_name(mid)),
        segments=1,
    )
    summary = VerificationSummary(segments_total=1, segments_verified=1)
    report = gather_readiness(spec, verification=summary, lag_seconds=0.0, state=state)
    settings = next(c for c in report.checks if c.name == TARGET_SETTINGS)
    assert settings.ok, settings.detail
    # and a change behind the migration's back is still seen
    ddb.tag_resource(
        ResourceArn=ddb.describe_table(TableName=dst)["Table"]["TableArn"],
        Tags=[{"Key": "stray", "Value": "x"}],
    )
    report = gather_readiness(spec, verification=summary, lag_seconds=0.0, state=state)
    settings = next(c for c in report.checks if c.name == TARGET_SETTINGS)
    assert not settings.ok and "stray" in settings.detail
