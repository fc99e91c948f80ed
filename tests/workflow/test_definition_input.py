"""Console input as operators type it: every input example in the docs, executed exactly as
written through the local runner (the test substitutes only the table names and points the
default endpoint at the moto server), plus Validate's refusals and the event adapter.

The examples run on one private Step Functions server, one after the other, with the function
environment the stack gives (DYNASHIFT_MIGRATION_ID, DYNASHIFT_STATE_TABLE,
DYNASHIFT_TARGET_TABLE, DYNASHIFT_WORKER_TIMEOUT_SECONDS): the minimal console input names only
the two tables.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import pytest

from dynashift import models
from dynashift.aws import Side
from dynashift.errors import BadInputError
from dynashift.models import MigrationSpec, TableLocation
from dynashift.readiness import load_approval_token, send_approval
from dynashift.settings import lambda_settings
from dynashift.state import StateStore
from dynashift.workflow.migrate import failure_of, local_stack
from dynashift.workflow.runner import ROOT
from dynashift.workflow.steps import (
    ValidateEvent,
    WorkflowSettings,
    check_replicator_settings,
    normalise_input,
    parse_event,
    state_store,
    validate,
    validate_execution_input,
)
from tests.support.events import load_event
from tests.support.reference import assert_identical
from tests.support.tables import create_table, fill, varied_items

DOCS = [ROOT / "docs" / "workflow.md", ROOT / "docs" / "aws.md"]
EXAMPLE = re.compile(r"(?:<!-- example: (?P<marker>[^>]*?) -->\s*)?```json\n(?P<body>.*?)```", re.S)

#: The smallest input the console accepts (documented in docs/; tests/events/).
CONSOLE_INPUT = "console_minimal_input.json"


def minimal_input() -> dict[str, Any]:
    return load_event(CONSOLE_INPUT)


def doc_examples() -> list[tuple[str, str, dict[str, Any]]]:
    """(where, expectation, input) of every JSON block holding a `spec` in the docs.

    The expectation is the `<!-- example: ... -->` marker before the block: `ready` (also
    when there is no marker) or `rejected <the cause it must name>`."""
    found = []
    for path in DOCS:
        if not path.is_file():
            continue
        text = path.read_text(encoding="utf-8")
        for match in EXAMPLE.finditer(text):
            body = re.sub(r"^\s+", "", match.group("body"), flags=re.M)
            data = json.loads(body)
            if isinstance(data, dict) and "spec" in data:
                line = text[: match.start("body")].count("\n") + 1
                found.append((f"{path.name}:{line}", match.group("marker") or "ready", data))
    return found


def _with_tables(
    example: dict[str, Any], source: str, target: str, state: str, endpoint: str
) -> dict[str, Any]:
    """The example with the test's table names (source, target and, if named, state table) on
    the moto server (the only other change: each named table's endpoint)."""
    data = json.loads(json.dumps(example))
    spec = data["spec"]
    for side, name in (("source", source), ("target", target), ("state", state)):
        table = spec.get(side)
        if isinstance(table, dict):
            table["name"] = name
            table["side"] = {**table.get("side", {}), "endpoint_url": endpoint}
    return data


@pytest.fixture
def stack_env(
    monkeypatch: pytest.MonkeyPatch, endpoint: str, table_name: Any
) -> Iterator[pytest.MonkeyPatch]:
    """The deployed functions' environment, with the default DynamoDB endpoint on moto (the
    state table is named, not created: the tests that run the workflow create their own)."""
    monkeypatch.setenv("AWS_ENDPOINT_URL_DYNAMODB", endpoint)
    monkeypatch.setenv("AWS_ENDPOINT_URL_DYNAMODB_STREAMS", endpoint)
    monkeypatch.setenv("DYNASHIFT_ENDPOINT_URL", endpoint)
    monkeypatch.setenv("DYNASHIFT_STATE_TABLE", table_name("wf-state"))
    monkeypatch.setenv("DYNASHIFT_WORKER_TIMEOUT_SECONDS", "900")
    before = set(models._factories)
    yield monkeypatch
    # Client factories of the default side were made for this environment only.
    for key in set(models._factories) - before:
        models._factories.pop(key, None)


def test_the_docs_hold_the_minimal_and_a_rejected_example() -> None:
    examples = doc_examples()
    minimal = minimal_input()
    assert any(e[2] == minimal for e in examples), "the minimal console input is not documented"
    assert any(e[1].startswith("rejected ") for e in examples)


def test_every_doc_example_runs_as_written(ddb: Any, endpoint: str, table_name: Any) -> None:
    """Each example on the stack deployed for it (its own state table and migration id, as the
    stack's parameters), started with the example as the execution input."""
    examples = doc_examples()
    assert len(examples) >= 3
    for n, (where, expected, example) in enumerate(examples):
        source, target = table_name("wf-doc-src"), table_name("wf-doc-tgt")
        state_table = table_name("wf-doc-state")
        StateStore.ensure_table(ddb, state_table)
        migration_id = example["spec"].get("migration_id") or f"doc-{n}-{source[-6:]}"
        here = Side(endpoint_url=endpoint)
        stack_spec = MigrationSpec(
            migration_id=migration_id,
            source=TableLocation(name=source, side=here),
            target=TableLocation(name=target, side=here),
            state=TableLocation(name=state_table, side=here),
        )
        if expected == "ready":
            # With its stream already on (NEW_AND_OLD_IMAGES), so no Wait state of the
            # default 5 s runs while the stream is enabled (other tests cover that path).
            create_table(ddb, source, stream=True)
            fill(ddb, source, varied_items(40, seed=n))
        state = StateStore(ddb, state_table, migration_id)
        with local_stack(stack_spec) as sfn:

            def approve(state: StateStore = state, sfn: Any = sfn) -> None:
                if load_approval_token(state):
                    send_approval(sfn.sfn, state)

            arn = sfn.start_execution(_with_tables(example, source, target, state_table, endpoint))
            outcome = sfn.wait(arn, on_poll=approve, timeout=180, interval=0.2)
            replicator = sfn.function_environment("ReplicationFunction")
            mappings = sfn.client("lambda").list_event_source_mappings(
                FunctionName=replicator["DYNASHIFT_REPLICATOR_FUNCTION"]
            )["EventSourceMappings"]
        if expected == "ready":
            assert outcome.status == "SUCCEEDED", (where, failure_of(outcome))
            assert outcome.output["outcome"] == "READY", where
            assert outcome.output["migration_id"] == migration_id
            assert_identical(ddb, source, ddb, target, ("pk",))
            if example.get("settings", {}).get("approval"):
                assert not mappings, f"{where}: the cutover deletes the replicator's mapping"
        else:
            cause = expected.removeprefix("rejected ")
            assert outcome.status == "FAILED", where
            assert outcome.error == "InputRejected", (where, outcome.error, outcome.cause)
            assert cause in str(outcome.cause), (where, outcome.cause)
            assert "\n" not in str(outcome.cause)
            assert target not in _tables(ddb), f"{where}: a rejected input created the target"


def _tables(ddb: Any) -> list[str]:
    return list(ddb.list_tables()["TableNames"])


# --- Validate, without the state machine -----------------------------------------------------


def test_validate_applies_defaults_and_the_stack_environment(stack_env: pytest.MonkeyPatch) -> None:
    stack_env.setenv("DYNASHIFT_MIGRATION_ID", "orders-v2")
    raw = minimal_input()
    workflow = normalise_input(raw, lambda_settings())
    assert workflow.spec.migration_id == "orders-v2"
    assert workflow.spec.state.name == lambda_settings().state_table
    assert workflow.settings == WorkflowSettings()
    assert workflow.settings.approval_timeout_seconds == 7 * 24 * 3600
    with pytest.raises(BadInputError, match=r"^spec.migration_id: Field required \(and 1 more\)$"):
        normalise_input(raw, None)


def test_an_input_that_differs_from_the_replicators_stack_settings_is_refused(
    stack_env: pytest.MonkeyPatch,
) -> None:
    stack_env.setenv("DYNASHIFT_MIGRATION_ID", "orders-v2")
    raw: dict[str, Any] = minimal_input()
    env = lambda_settings()
    check_replicator_settings(normalise_input(raw, env).spec, env)  # as deployed: accepted
    versioned = normalise_input({"spec": {**raw["spec"], "version_attribute": "v"}}, env).spec
    with pytest.raises(BadInputError, match=r"^spec.version_attribute: 'v' is not this stack's"):
        check_replicator_settings(versioned, env)
    away = {"name": "orders-v2", "side": {"region": "eu-west-1"}}
    elsewhere = normalise_input({"spec": {**raw["spec"], "target": away}}, env).spec
    with pytest.raises(BadInputError, match=r"^spec.target.side.region: 'eu-west-1' is not"):
        check_replicator_settings(elsewhere, env)
    stack_env.setenv("DYNASHIFT_VERSION_ATTRIBUTE", "v")
    check_replicator_settings(versioned, lambda_settings())  # the stack agrees: accepted
    with pytest.raises(BadInputError, match=r"^spec.version_attribute: None is not this stack's"):
        validate_execution_input({"input": raw}, lambda_settings())


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"spec": {"source": {"name": "orders"}}}, r"^spec.target: Field required"),
        (
            {"spec": {"source": {"name": "o"}, "target": {"name": "orders-v2"}}},
            r"^spec.source.name: Value error, 'o' is not a valid DynamoDB table name$",
        ),
        (
            {
                "spec": {"source": {"name": "orders"}, "target": {"name": "t-2"}},
                "settings": {"poll_seconds": -1, "max_concurrency": 0},
            },
            r"^settings.poll_seconds: Input should be greater than or equal to 0 \(and 1 more\)$",
        ),
        ([], r"^input: the execution input must be a JSON object$"),
    ],
)
def test_malformed_input_is_one_bad_input_line_naming_the_field(
    stack_env: pytest.MonkeyPatch, raw: Any, message: str
) -> None:
    stack_env.setenv("DYNASHIFT_MIGRATION_ID", "m-1")
    with pytest.raises(BadInputError, match=message):
        validate_execution_input({"input": raw}, lambda_settings())


def test_every_handler_turns_a_validation_error_into_bad_input() -> None:
    from dynashift.workflow.runner import FUNCTIONS, load_handler

    for app in sorted(FUNCTIONS.glob("*/app.py")):
        step = app.parent.name
        if step in ("replicator", "approval_decision"):  # a stream batch / an operator's
            continue  # decision, not a workflow event (each validates its own shape)
        assert "parse_event(" in app.read_text() or "validate_execution_input(" in app.read_text()
        with pytest.raises(BadInputError):
            load_handler(step)({"spec": {"migration_id": "no spaces allowed"}}, None)


def test_worker_budget_must_fit_the_function_timeout(stack_env: pytest.MonkeyPatch) -> None:
    stack_env.setenv("DYNASHIFT_MIGRATION_ID", "m-1")
    stack_env.setenv("DYNASHIFT_WORKER_TIMEOUT_SECONDS", "300")
    raw = minimal_input()
    with pytest.raises(BadInputError, match=r"^spec.worker_budget_seconds: 600 s .* at most 240$"):
        validate_execution_input({"input": raw}, lambda_settings())


def test_replicas_refused_on_a_provisioned_target_unless_on_demand(
    stack_env: pytest.MonkeyPatch, ddb: Any, table_name: Any
) -> None:
    source = table_name("wf-prov")
    create_table(
        ddb,
        source,
        BillingMode="PROVISIONED",
        ProvisionedThroughput={"ReadCapacityUnits": 5, "WriteCapacityUnits": 5},
    )
    raw = {
        "spec": {"migration_id": "m-2", "source": {"name": source}, "target": {"name": "t-new"}},
        "target_options": {"replica_regions": ["eu-west-1"]},
    }
    workflow = normalise_input(raw, lambda_settings())
    event = ValidateEvent(spec=workflow.spec, target_options=workflow.target_options)
    with pytest.raises(BadInputError, match=r"^target_options.replica_regions: .*PAY_PER_REQUEST"):
        validate(event)
    on_demand = workflow.target_options.model_copy(update={"billing_mode": "PAY_PER_REQUEST"})
    validate(event.model_copy(update={"target_options": on_demand}))
    assert not StateStore.table_exists(ddb, "t-new")


def test_parse_event_keeps_the_one_line_contract() -> None:
    with pytest.raises(BadInputError) as info:
        parse_event(ValidateEvent, {"spec": {"source": {"name": "x\ny"}}})
    assert "\n" not in str(info.value) and str(info.value).startswith("spec.")


def test_state_store_of_the_normalised_spec_is_the_stacks(stack_env: pytest.MonkeyPatch) -> None:
    stack_env.setenv("DYNASHIFT_MIGRATION_ID", "m-3")
    raw = minimal_input()
    spec = normalise_input(raw, lambda_settings()).spec
    assert state_store(spec).table == lambda_settings().state_table
