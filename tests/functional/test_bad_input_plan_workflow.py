"""Bad input for `dynashift plan` and for the state machine's input (the execution input models,
the runner, and the "Validate input" state of the ASL): refused before anything is created or
written, with the field or flag named. CLI cases: exit 2 (3 for an endpoint that does not
answer) and exactly one line on stderr, no traceback."""

from __future__ import annotations

import re
from typing import Any

import pytest
from pydantic import ValidationError

from dynashift.errors import BadInputError
from dynashift.workflow.migrate import MigrationRunner, failure_of, local_stack
from dynashift.workflow.steps import WorkflowInput
from tests.support.cli import run_cli
from tests.support.moto_server import free_port
from tests.support.reference import nothing_written
from tests.support.tables import create_table, fill, varied_items
from tests.support.workflow import workflow_input


@pytest.fixture(scope="module")
def world(ddb: Any, endpoint: str) -> dict[str, str]:
    suffix = free_port()
    names = {
        "src": f"bp-src-{suffix}",
        "empty": f"bp-empty-{suffix}",
        "full": f"bp-full-{suffix}",
        "numkey": f"bp-num-{suffix}",
    }
    create_table(ddb, names["src"])
    create_table(ddb, names["empty"])
    create_table(ddb, names["full"])
    create_table(ddb, names["numkey"], types={"pk": "N"})
    fill(ddb, names["src"], varied_items(10, seed=3))
    fill(ddb, names["full"], varied_items(2, seed=4, prefix="x"))
    return {**names, "ep": endpoint, "dead": f"http://127.0.0.1:{free_port()}"}


def unchanged(ddb: Any, world: dict[str, str]) -> Any:
    """No table created or deleted, no item or stream setting of the world's tables changed."""
    return nothing_written(ddb, [world[k] for k in ("src", "empty", "full", "numkey")])


P = "plan --endpoint-url {ep} --source {src} "
PLAN_CASES = [
    ("plan-no-source", "plan --endpoint-url {ep} --target new-p0", 2, "source"),
    # without --target, plan compares the paths for a new table (docs/paths.md): its flags
    ("plan-time-limit-zero", P + "--time-limit 0", 2, "time-limit|0"),
    ("plan-no-target-provisioned", P + "--billing-mode PROVISIONED", 2, "capacity"),
    (
        "plan-unknown-source",
        "plan --endpoint-url {ep} --source nosuch-p --target new-px",
        2,
        "nosuch-p",
    ),
    ("plan-same-table", P + "--target {src}", 2, "same"),
    ("plan-malformed-ref", P + "--target 'bad name!'", 2, "bad name!"),
    ("plan-region-only", P + "--target us-east-1:", 2, "us-east-1:"),
    ("plan-incompatible", P + "--target {numkey}", 2, "key|bp-num"),
    ("plan-nonempty", P + "--target {full}", 2, "empty|bp-full"),
    ("plan-write-rate-zero", P + "--target new-p1 --write-rate 0", 2, "write-rate|0"),
    ("plan-write-rate-text", P + "--target new-p2 --write-rate fast", 2, "fast"),
    ("plan-price-negative", P + "--target new-p3 --write-price -1", 2, "-1"),
    ("plan-price-text", P + "--target new-p4 --read-price cheap", 2, "cheap"),
    ("plan-billing-mode", P + "--target new-p5 --billing-mode FREE", 2, "FREE"),
    (
        "plan-capacity-on-demand",
        P + "--target new-p6 --billing-mode PAY_PER_REQUEST --write-capacity 5",
        2,
        "capacity",
    ),
    ("plan-capacity-text", P + "--target new-p7 --read-capacity lots", 2, "lots"),
    ("plan-tag", P + "--target new-p8 --tag novalue", 2, "novalue"),
    ("plan-replica-region", P + "--target new-p9 --replica-region mars", 2, "mars"),
    ("plan-role-arn", P + "--target new-pa --target-role-arn arn:nope", 2, "arn:nope"),
    ("plan-endpoint-url", "plan --endpoint-url ftp:/x --source {src} --target new-pz", 2, "ftp:/x"),
    ("plan-unknown-flag", P + "--target new-pb --frobnicate", 2, "frobnicate"),
    ("plan-unreachable", "plan --endpoint-url {dead} --source {src} --target new-py", 3, "reach"),
]


@pytest.mark.parametrize("case", [pytest.param(c[1:], id=c[0]) for c in PLAN_CASES])
def test_plan_refuses_bad_input(
    ddb: Any, world: dict[str, str], capsys: Any, case: tuple[str, int, str]
) -> None:
    argv, code, expect = case
    import shlex

    with unchanged(ddb, world):
        got, lines = run_cli(shlex.split(argv.format(**world)), capsys)
    assert got == code, f"exit {got}, stderr {lines}"
    assert len(lines) == 1, lines
    assert "Traceback" not in lines[0]
    assert re.search(expect, lines[0], re.IGNORECASE), f"{lines[0]!r} does not name {expect!r}"


# --- the state machine's input ------------------------------------------------------------------


def _input(world: dict[str, str], target: str = "new-w0") -> dict[str, Any]:
    wf = workflow_input(world["ep"], world["src"], target)
    return wf.model_dump(mode="json")


def _set(data: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    node = data
    *parents, last = path.split(".")
    for name in parents:
        node = node[name]
    node[last] = value
    return data


#: (id, dotted field, bad value, regex the validation message must match)
FIELD_CASES = [
    ("segments-zero", "spec.segments", 0, "segments"),
    ("segments-huge", "spec.segments", 10_001, "segments"),
    ("segments-text", "spec.segments", "four", "segments"),
    ("strategy", "spec.strategy", "yolo", "strategy"),
    ("budget-over-lambda", "spec.worker_budget_seconds", 900, "worker_budget_seconds"),
    ("budget-zero", "spec.worker_budget_seconds", 0, "worker_budget_seconds"),
    ("rate-negative", "spec.max_write_rate", -1, "max_write_rate"),
    ("lag-zero", "spec.lag_threshold_seconds", 0, "lag_threshold_seconds"),
    ("version-empty", "spec.version_attribute", "", "version_attribute"),
    ("migration-id", "spec.migration_id", "has spaces!", "migration_id"),
    ("table-name", "spec.source.name", "x", "name"),
    ("endpoint", "spec.target.side.endpoint_url", "ftp:/x", "endpoint_url"),
    ("role-arn", "spec.target.side.role_arn", "arn:nope", "role_arn"),
    ("max-attempts", "spec.source.side.max_attempts", 0, "max_attempts"),
    ("unknown-spec-field", "spec.colour", "blue", "colour"),
    ("poll-negative", "settings.poll_seconds", -1, "poll_seconds"),
    ("concurrency-zero", "settings.max_concurrency", 0, "max_concurrency"),
    ("verify-mode", "settings.verify_mode", "psychic", "verify_mode"),
    ("verify-sample-zero", "spec.verify_sample", 0, "verify_sample"),
    ("verify-sample-over", "spec.verify_sample", 1.5, "verify_sample"),
    ("catchup-zero", "settings.catchup_timeout_seconds", 0, "catchup_timeout_seconds"),
    ("unknown-setting", "settings.turbo", True, "turbo"),
    ("billing-mode", "target_options.billing_mode", "FREE", "billing_mode"),
    ("unknown-top-level", "extra", 1, "extra"),
]


@pytest.mark.parametrize(
    ("field", "value", "expect"), [pytest.param(*c[1:], id=c[0]) for c in FIELD_CASES]
)
def test_execution_input_fields_are_validated(
    ddb: Any, world: dict[str, str], field: str, value: Any, expect: str
) -> None:
    data = _set(_input(world), field, value)
    with unchanged(ddb, world), pytest.raises(ValidationError) as info:
        WorkflowInput.model_validate(data)
    assert re.search(expect, str(info.value)), str(info.value)


def test_target_equal_to_source_in_the_input_is_refused(ddb: Any, world: dict[str, str]) -> None:
    data = _set(_input(world), "spec.target.name", world["src"])
    with unchanged(ddb, world), pytest.raises(ValidationError, match="same table"):
        WorkflowInput.model_validate(data)


#: Inputs that parse but that the validate step refuses (checked against the tables).
RUNNER_CASES = [
    ("unknown-source", "spec.source.name", "nosuch-wf-source", "nosuch-wf-source"),
    ("incompatible-target", "spec.target.name", "{numkey}", "key"),
    ("nonempty-target", "spec.target.name", "{full}", "empty"),
]


def _bad_runner_input(world: dict[str, str], field: str, value: str) -> WorkflowInput:
    data = _set(_input(world), field, value.format(**world))
    return WorkflowInput.model_validate(data)


@pytest.mark.parametrize(
    ("field", "value", "expect"), [pytest.param(*c[1:], id=c[0]) for c in RUNNER_CASES]
)
def test_runner_refuses_before_creating_anything(
    ddb: Any, world: dict[str, str], field: str, value: str, expect: str
) -> None:
    wf = _bad_runner_input(world, field, value)
    with unchanged(ddb, world), pytest.raises(BadInputError) as info:
        MigrationRunner(wf).run()
    assert info.value.exit_code == 2
    assert re.search(expect, info.value.message, re.IGNORECASE), info.value.message
    assert "\n" not in info.value.message


@pytest.mark.parametrize(
    ("field", "value", "expect"), [pytest.param(*c[1:], id=c[0]) for c in RUNNER_CASES[:2]]
)
def test_validate_state_rejects_the_input_in_the_state_machine(
    ddb: Any, world: dict[str, str], field: str, value: str, expect: str
) -> None:
    """Started on the ASL directly (as the console would), the "Validate input" state routes the
    refusal to "Input rejected": the execution fails with the error named, nothing created."""
    wf = _bad_runner_input(world, field, value)
    with unchanged(ddb, world), local_stack(wf.spec) as sfn:
        arn = sfn.start_execution(wf.model_dump(mode="json"))
        outcome = sfn.wait(arn, timeout=120)
    assert outcome.status == "FAILED"
    assert outcome.error == "InputRejected", (outcome.error, outcome.cause)
    error, message = failure_of(outcome)
    assert error in ("TableNotFoundError", "IncompatibleSchemaError"), (error, message)
    assert re.search(expect, str(message), re.IGNORECASE), message
