"""What Lambda passes a handler as its context: the one stand-in of the tests (the fixture
`lambda_context` in tests/conftest.py gives one; name it when the function's name matters)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field

from tests.support.tables import ACCOUNT, REGION


@dataclass
class LambdaContext:
    """The attributes and the one method a Lambda context has (what Powertools reads)."""

    function_name: str = "dynashift-test"
    function_version: str = "$LATEST"
    memory_limit_in_mb: int = 1024
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    log_stream_name: str = "stream"
    remaining_ms: int = 300_000

    @property
    def invoked_function_arn(self) -> str:
        return f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{self.function_name}"

    @property
    def log_group_name(self) -> str:
        return f"/aws/lambda/{self.function_name}"

    def get_remaining_time_in_millis(self) -> int:
        return self.remaining_ms
