"""A placeholder Lambda function on a moto server, for event source mappings, Task states and
IAM scenarios to name (moto needs the function to exist; its code only echoes the event)."""

from __future__ import annotations

import io
import zipfile

from tests.support.tables import client


def create_function(endpoint: str, name: str) -> str:
    """Create function `name` (with its own role) on the server at `endpoint` -> its ARN."""
    role = client(endpoint, "iam").create_role(
        RoleName=f"r-{name}"[:64], AssumeRolePolicyDocument="{}"
    )["Role"]["Arn"]
    code = io.BytesIO()
    with zipfile.ZipFile(code, "w") as zf:
        zf.writestr("app.py", "def handler(event, context):\n    return event\n")
    created = client(endpoint, "lambda").create_function(
        FunctionName=name,
        Runtime="python3.12",
        Role=role,
        Handler="app.handler",
        Code={"ZipFile": code.getvalue()},
    )
    return str(created["FunctionArn"])
