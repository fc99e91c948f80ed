"""The single place that builds botocore sessions and clients.

A `Side` describes how to reach one table: region, profile, role to assume (credentials that
refresh themselves for runs longer than the role session), MFA, external id and endpoint. A
`ClientFactory` turns a Side into clients, one botocore config per client: standard or adaptive
retries and a connection pool sized to the parallelism. Sessions are cached per Side within a
process, so an MFA token is used once and the assumed credentials are shared by every worker.
"""

from __future__ import annotations

import threading
from typing import Any, Literal

import boto3
import botocore.session
from botocore.config import Config
from botocore.credentials import AssumeRoleCredentialFetcher, DeferredRefreshableCredentials
from botocore.exceptions import ClientError, NoRegionError
from pydantic import BaseModel, ConfigDict, Field

from dynashift.errors import BadInputError

RetryMode = Literal["standard", "adaptive"]

ROLE_SESSION_NAME = "dynashift"


class Side(BaseModel):
    """How to reach the tables of one side (source, target, master, slave).

    Serializable: it travels in the Step Functions input. `mfa_token` is excluded from dumps,
    since a one-time code is useless anywhere but in the process that was given it.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    region: str | None = None
    profile: str | None = None
    role_arn: str | None = Field(default=None, pattern=r"^arn:[a-z-]+:iam::\d{12}:role/.+$")
    external_id: str | None = None
    mfa_serial: str | None = None
    mfa_token: str | None = Field(default=None, exclude=True, pattern=r"^\d{6}$")
    endpoint_url: str | None = Field(default=None, pattern=r"^https?://.+")
    retry_mode: RetryMode = "standard"
    max_attempts: int = Field(default=10, ge=1, le=50)

    def with_region(self, region: str | None) -> Side:
        """The same side, in `region` when one is given."""
        return self.model_copy(update={"region": region}) if region else self


_session_cache: dict[tuple[Any, ...], boto3.Session] = {}
_session_lock = threading.Lock()


def _cache_key(side: Side) -> tuple[Any, ...]:
    return (
        side.region,
        side.profile,
        side.role_arn,
        side.external_id,
        side.mfa_serial,
        side.endpoint_url,
    )


def _base_session(side: Side) -> boto3.Session:
    try:
        return boto3.Session(profile_name=side.profile, region_name=side.region)
    except botocore.exceptions.ProfileNotFound as exc:
        raise BadInputError(f"AWS profile {side.profile!r} is not configured") from exc


def _session_for(side: Side) -> boto3.Session:
    base = _base_session(side)
    if not side.role_arn and not side.mfa_serial:
        return base
    if side.mfa_serial and not side.mfa_token:
        raise BadInputError(f"--mfa-serial {side.mfa_serial}: an MFA token is required with it")
    sts = base.client("sts", endpoint_url=side.endpoint_url)
    bc_session = botocore.session.Session()
    if side.region or base.region_name:
        bc_session.set_config_variable("region", side.region or base.region_name)
    if side.role_arn:
        extra: dict[str, Any] = {"RoleSessionName": ROLE_SESSION_NAME}
        if side.external_id:
            extra["ExternalId"] = side.external_id
        if side.mfa_serial:
            # A one-time code cannot refresh: assume once for the longest session allowed.
            extra.update(SerialNumber=side.mfa_serial, TokenCode=side.mfa_token)

        def create_sts(_service: str, **_kwargs: Any) -> Any:
            return sts

        source_credentials = base.get_credentials()
        if source_credentials is None:
            raise BadInputError("no AWS credentials found to assume --role-arn with")
        fetcher = AssumeRoleCredentialFetcher(
            client_creator=create_sts,
            source_credentials=source_credentials,
            role_arn=side.role_arn,
            extra_args=extra,
            # botocore asks for the code on stdin when SerialNumber is set: answer with ours.
            mfa_prompter=lambda _prompt: str(side.mfa_token),
        )
        creds = DeferredRefreshableCredentials(
            refresh_using=fetcher.fetch_credentials, method="assume-role"
        )
    else:
        resp = sts.get_session_token(
            SerialNumber=str(side.mfa_serial), TokenCode=str(side.mfa_token)
        )
        c = resp["Credentials"]
        return boto3.Session(
            aws_access_key_id=c["AccessKeyId"],
            aws_secret_access_key=c["SecretAccessKey"],
            aws_session_token=c["SessionToken"],
            region_name=side.region or base.region_name,
        )
    bc_session._credentials = creds  # type: ignore[attr-defined]
    return boto3.Session(botocore_session=bc_session)


def session_for(side: Side) -> boto3.Session:
    """The cached boto3 session for `side` (created on first use)."""
    key = _cache_key(side)
    with _session_lock:
        session = _session_cache.get(key)
        if session is None:
            session = _session_for(side)
            _session_cache[key] = session
        return session


def client_config(max_pool: int, retry_mode: RetryMode = "standard", attempts: int = 10) -> Config:
    return Config(
        # total_max_attempts counts the first call too (max_attempts would count retries only).
        retries={"mode": retry_mode, "total_max_attempts": attempts},
        max_pool_connections=max(10, max_pool),
        connect_timeout=10,
        read_timeout=60,
        tcp_keepalive=True,
    )


class ClientFactory:
    """Clients for one Side, with a connection pool sized to `parallelism`."""

    def __init__(self, side: Side, parallelism: int = 10) -> None:
        self.side = side
        self.parallelism = parallelism
        self._clients: dict[str, Any] = {}
        self._lock = threading.Lock()

    @property
    def region(self) -> str | None:
        return self.side.region or session_for(self.side).region_name

    def client(self, service: str) -> Any:
        with self._lock:
            client = self._clients.get(service)
            if client is None:
                session = session_for(self.side)
                try:
                    client = session.client(
                        service,  # type: ignore[call-overload]
                        region_name=self.side.region or session.region_name,
                        endpoint_url=self.side.endpoint_url,
                        config=client_config(
                            self.parallelism * 2, self.side.retry_mode, self.side.max_attempts
                        ),
                    )
                except NoRegionError as exc:
                    raise BadInputError(
                        "no region: give it in the table reference (REGION:TABLE) or configure "
                        "AWS_DEFAULT_REGION / a profile region"
                    ) from exc
                self._clients[service] = client
            return client

    def dynamodb(self) -> Any:
        return self.client("dynamodb")

    def streams(self) -> Any:
        return self.client("dynamodbstreams")


def error_code(exc: BaseException) -> str:
    """The AWS error code of a ClientError ('' for anything else)."""
    if isinstance(exc, ClientError):
        return str(exc.response.get("Error", {}).get("Code", ""))
    return ""
