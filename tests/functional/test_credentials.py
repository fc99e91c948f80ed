"""Credentials per side: assumed roles refresh themselves, MFA rules, endpoint for every client."""

from __future__ import annotations

import json

import boto3
import pytest

from dynashift.aws import ClientFactory, Side, session_for
from dynashift.errors import BadInputError


@pytest.fixture(scope="module")
def role_arn(endpoint):
    iam = boto3.client("iam", region_name="us-east-1", endpoint_url=endpoint)
    doc = {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Principal": {"AWS": "*"}, "Action": "sts:AssumeRole"}],
    }
    role = iam.create_role(RoleName="dynashift-test", AssumeRolePolicyDocument=json.dumps(doc))
    return role["Role"]["Arn"]


def test_assumed_role_credentials_are_used_and_refreshable(endpoint, role_arn):
    side = Side(region="us-east-1", endpoint_url=endpoint, role_arn=role_arn, external_id="x1")
    session = session_for(side)
    creds = session.get_credentials()
    frozen = creds.get_frozen_credentials()
    assert frozen.access_key != "testing"  # came from AssumeRole, not the environment
    # DeferredRefreshableCredentials: botocore refreshes them before they expire.
    assert hasattr(creds, "refresh_needed")
    client = ClientFactory(side).dynamodb()
    assert "TableNames" in client.list_tables()
    assert session_for(side) is session  # cached per side


def test_mfa_serial_without_token_is_bad_input(endpoint):
    side = Side(region="us-east-1", endpoint_url=endpoint, mfa_serial="arn:aws:iam::1:mfa/x")
    with pytest.raises(BadInputError, match="MFA token"):
        session_for(side)


def test_unknown_profile_is_bad_input():
    with pytest.raises(BadInputError, match="no-such-profile"):
        session_for(Side(region="us-east-1", profile="no-such-profile"))


def test_endpoint_applies_to_every_client(endpoint):
    factory = ClientFactory(Side(region="us-east-1", endpoint_url=endpoint), parallelism=16)
    for service in ("dynamodb", "dynamodbstreams", "sts"):
        assert factory.client(service).meta.endpoint_url == endpoint
    assert factory.dynamodb().meta.config.max_pool_connections >= 32
    assert factory.dynamodb().meta.config.retries["mode"] == "standard"
