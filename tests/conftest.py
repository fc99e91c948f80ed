"""Shared fixtures: a real moto server over HTTP, clients for it, unique table names."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from typing import Any

import boto3
import pytest

from tests.support.lambda_context import LambdaContext
from tests.support.moto_server import MotoServer
from tests.support.tables import REGION

# Fake credentials: functional tests never reach AWS.
os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
os.environ["AWS_DEFAULT_REGION"] = REGION
os.environ.pop("AWS_PROFILE", None)


@pytest.fixture(scope="session")
def moto_server() -> Iterator[MotoServer]:
    server = MotoServer().start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def endpoint(moto_server: MotoServer) -> str:
    return moto_server.url


@pytest.fixture(scope="session")
def ddb(endpoint: str) -> Any:
    """A low-level DynamoDB client on the moto server."""
    return boto3.client("dynamodb", region_name=REGION, endpoint_url=endpoint)


@pytest.fixture(scope="session")
def streams(endpoint: str) -> Any:
    return boto3.client("dynamodbstreams", region_name=REGION, endpoint_url=endpoint)


@pytest.fixture
def table_name() -> Any:
    """A factory of unique table names (tests share one server and never reset it)."""

    def make(prefix: str = "t") -> str:
        return f"{prefix}-{uuid.uuid4().hex[:10]}"

    return make


@pytest.fixture
def lambda_context() -> LambdaContext:
    """What Lambda passes a handler as its context (tests/support/lambda_context.py)."""
    return LambdaContext()
