"""Imported by the sandboxes' forkserver only (never by the runner's own process).

A Lambda execution environment pays for parsing botocore's JSON data (endpoint rules, service
models) on every cold start; on a laptop that is most of a sandbox's start-up (≈0.3 s each,
dozens per run). The forkserver parses it once: `JSONFileLoader.load_file` and the listing of
botocore's data directories are memoized and warmed for the services the functions use, and
every sandbox forked afterwards inherits them. botocore treats loaded data as shared already
(one loader serves every client of a session); the only in-place change it makes, merging a
service's `sdk-extras`, is idempotent.
"""

from __future__ import annotations

import functools
from typing import Any

import boto3
from botocore.loaders import JSONFileLoader, Loader

#: The services the functions call.
SERVICES = ("dynamodb", "dynamodbstreams", "lambda", "sqs", "sns", "sts", "stepfunctions")

_load_file = JSONFileLoader.load_file


@functools.lru_cache(maxsize=256)
def _cached(loader: JSONFileLoader, file_path: str) -> Any:
    return _load_file(loader, file_path)


def _load_file_cached(self: JSONFileLoader, file_path: str) -> Any:
    return _cached(self, file_path)


JSONFileLoader.load_file = _load_file_cached  # type: ignore[method-assign]
# JSONFileLoader has no state: hash every instance alike so all sessions share the cache.
JSONFileLoader.__hash__ = lambda self: 0  # type: ignore[method-assign,assignment]
JSONFileLoader.__eq__ = lambda self, other: isinstance(other, JSONFileLoader)  # type: ignore[method-assign,assignment]

_list_services = Loader.list_available_services
_services: dict[tuple[Any, ...], Any] = {}


def _list_available_services(self: Loader, type_name: str) -> Any:
    # The data directories do not change while sandboxes run: list them once.
    key = (tuple(self.search_paths), type_name)
    if key not in _services:
        _services[key] = _list_services(self, type_name)
    return list(_services[key])


Loader.list_available_services = _list_available_services  # type: ignore[method-assign]

_session = boto3.Session(
    region_name="us-east-1", aws_access_key_id="warm", aws_secret_access_key="warm"
)
for _service in SERVICES:
    _session.client(_service, endpoint_url="http://127.0.0.1:9")  # type: ignore[call-overload]
