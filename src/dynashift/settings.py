"""The one place that reads the process environment.

Everything else receives its configuration as arguments. Lambda handlers call `lambda_settings()`
once per cold start; the CLI passes its parsed flags down explicitly.
"""

from __future__ import annotations

import os
from dataclasses import dataclass


@dataclass(frozen=True)
class LambdaSettings:
    """Configuration a deployed handler receives from its environment (set by template.yaml)."""

    state_table: str | None
    region: str | None
    sns_topic_arn: str | None
    replicator_function: str | None
    endpoint_url: str | None
    # --- replicator (functions/replicator) ---
    migration_id: str | None = None
    target_table: str | None = None
    target_region: str | None = None
    target_role_arn: str | None = None
    target_external_id: str | None = None
    target_endpoint_url: str | None = None
    version_attribute: str | None = None
    skip_ttl_deletes: bool = False
    # --- workflow (functions/* of the state machine) ---
    dlq_arn: str | None = None
    dlq_url: str | None = None
    #: The segment functions' timeout (the stack's WorkerTimeoutSeconds), checked by Validate.
    worker_timeout_seconds: float | None = None
    # --- approval (functions/approval) ---
    approval_function: str | None = None
    approval_url: str | None = None
    #: The export strategy's bucket and prefix the stack's policies allow (Validate checks).
    export_bucket: str | None = None
    export_prefix: str | None = None
    #: AWS_LAMBDA_FUNCTION_NAME (set by the Lambda runtime; names the function in errors).
    function_name: str | None = None

    def require(self, value: str | None, env_name: str) -> str:
        """`value`, or a RuntimeFailure naming the variable and the function that lacks it:
        a stack deployed without it is misconfigured (not bad input)."""
        if value:
            return value
        from dynashift.errors import RuntimeFailure

        where = f" of function {self.function_name}" if self.function_name else ""
        raise RuntimeFailure(f"{env_name} is not set in the environment{where}")


def lambda_settings() -> LambdaSettings:
    env = os.environ
    return LambdaSettings(
        state_table=env.get("DYNASHIFT_STATE_TABLE") or None,
        region=env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or None,
        sns_topic_arn=env.get("DYNASHIFT_TOPIC_ARN") or None,
        replicator_function=env.get("DYNASHIFT_REPLICATOR_FUNCTION") or None,
        endpoint_url=env.get("DYNASHIFT_ENDPOINT_URL") or None,
        migration_id=env.get("DYNASHIFT_MIGRATION_ID") or None,
        target_table=env.get("DYNASHIFT_TARGET_TABLE") or None,
        target_region=env.get("DYNASHIFT_TARGET_REGION") or None,
        target_role_arn=env.get("DYNASHIFT_TARGET_ROLE_ARN") or None,
        target_external_id=env.get("DYNASHIFT_TARGET_EXTERNAL_ID") or None,
        target_endpoint_url=env.get("DYNASHIFT_TARGET_ENDPOINT_URL") or None,
        version_attribute=env.get("DYNASHIFT_VERSION_ATTRIBUTE") or None,
        skip_ttl_deletes=_flag(env.get("DYNASHIFT_SKIP_TTL_DELETES")),
        dlq_arn=env.get("DYNASHIFT_DLQ_ARN") or None,
        dlq_url=env.get("DYNASHIFT_DLQ_URL") or None,
        worker_timeout_seconds=_number(env.get("DYNASHIFT_WORKER_TIMEOUT_SECONDS")),
        approval_function=env.get("DYNASHIFT_APPROVAL_FUNCTION") or None,
        approval_url=env.get("DYNASHIFT_APPROVAL_URL") or None,
        export_bucket=env.get("DYNASHIFT_EXPORT_BUCKET") or None,
        export_prefix=env.get("DYNASHIFT_EXPORT_PREFIX") or None,
        function_name=env.get("AWS_LAMBDA_FUNCTION_NAME") or None,
    )


def _number(value: str | None) -> float | None:
    try:
        return float(value) if value else None
    except ValueError:
        return None


def _flag(value: str | None) -> bool:
    return (value or "").strip().lower() in ("1", "true", "yes", "on")


def is_terminal_output() -> bool:
    """True when stderr is an interactive terminal (progress bars) rather than a log file."""
    import sys

    return sys.stderr.isatty() and os.environ.get("TERM") != "dumb"
