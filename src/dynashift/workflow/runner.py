"""The local runner: executes `statemachine/migration.asl.json` itself, on this machine.

It starts a private moto server (Step Functions and Lambda only — the data tables live wherever
the spec says: real AWS or any endpoint) in this process, with moto's Amazon States Language
interpreter switched on. Every Lambda task is dispatched in-process to the handler of
`functions/<step>/app.py`: moto's Docker-free Lambda backend is patched so that an invoke calls
the handler and returns its JSON, or an error payload whose `errorType` is the exception's class
name — exactly what the Retry/Catch clauses match in AWS. The placeholders of the definition are
filled the way the template's DefinitionSubstitutions fill them, with the ARNs of dummy
functions created on the private server.

Only one runner can be active per process (moto's interpreter reaches Lambda through the
`MOTO_PORT` of the process).
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import json
import logging
import re
import threading
import time
import uuid
import zipfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

from dynashift.errors import RuntimeFailure
from dynashift.workflow.control import ReplicationControl
from dynashift.workflow.steps import error_payload

log = logging.getLogger("dynashift.workflow")

REGION = "us-east-1"
PLACEHOLDER = re.compile(r"\$\{([A-Za-z0-9]+)\}")

#: Where the definition and the handlers live (the repository / source tree root).
ROOT = Path(__file__).resolve().parents[3]
DEFINITION = ROOT / "statemachine" / "migration.asl.json"
FUNCTIONS = ROOT / "functions"

_active = threading.Lock()
#: The dispatcher of the active run (the patched moto backend looks it up here).
_current: dict[str, LocalLambda] = {}


def step_of(placeholder: str) -> str:
    """`BackfillSegmentFunctionArn` -> `backfill_segment` (the `functions/` directory)."""
    base = placeholder.removesuffix("FunctionArn")
    return re.sub(r"(?<!^)(?=[A-Z])", "_", base).lower()


def placeholders(definition_text: str) -> list[str]:
    return sorted(set(PLACEHOLDER.findall(definition_text)))


def load_handler(step: str, functions_dir: Path = FUNCTIONS) -> Callable[[Any, Any], Any]:
    """The `handler` of `functions/<step>/app.py`, loaded by path (no sys.path changes)."""
    path = functions_dir / step / "app.py"
    if not path.is_file():
        raise RuntimeFailure(f"no handler for step {step!r}: {path} is missing")
    name = f"dynashift_functions.{step}"
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise RuntimeFailure(f"cannot load {path}")
    module: ModuleType = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    handler: Callable[[Any, Any], Any] = module.handler
    return handler


@dataclass
class LocalContext:
    """The Lambda context a locally dispatched handler receives."""

    function_name: str
    replication_control: ReplicationControl | None
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    memory_limit_in_mb: int = 1024
    invoked_function_arn: str = ""
    deadline: float = field(default_factory=lambda: time.monotonic() + 900)

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self.deadline - time.monotonic()) * 1000))


class LocalLambda:
    """Dispatches invokes of the private server's functions to the handlers in-process."""

    def __init__(
        self,
        handlers: Mapping[str, Callable[[Any, Any], Any]],
        control: ReplicationControl | None,
        on_invoke: Callable[[str, dict[str, Any]], None] | None = None,
    ) -> None:
        self.handlers = dict(handlers)
        self.control = control
        self.on_invoke = on_invoke
        self.invocations: dict[str, int] = {}
        self.active = 0
        self._lock = threading.Lock()
        self._idle = threading.Condition(self._lock)

    def invoke(self, function_name: str, body: Any, response_headers: dict[str, Any]) -> bytes:
        # Function names are `dynashift-<run id>-<step>`.
        step = function_name.rsplit(":", 1)[-1].split("-", 2)[-1]
        handler = self.handlers.get(step)
        event = json.loads(body or b"{}")
        with self._lock:
            self.invocations[step] = self.invocations.get(step, 0) + 1
            self.active += 1
        try:
            return self._invoke(step, handler, event, response_headers)
        finally:
            with self._idle:
                self.active -= 1
                self._idle.notify_all()

    def wait_idle(self, timeout: float) -> bool:
        """Wait until no handler runs (a stopped execution's workers finish their call and
        commit their checkpoint, as a Lambda invocation would). False on timeout."""
        deadline = time.monotonic() + timeout
        with self._idle:
            while self.active:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._idle.wait(left)
            return True

    def _invoke(
        self,
        step: str,
        handler: Callable[[Any, Any], Any] | None,
        event: dict[str, Any],
        response_headers: dict[str, Any],
    ) -> bytes:
        if self.on_invoke:
            self.on_invoke(step, event)
        if handler is None:
            response_headers["x-amz-function-error"] = "Unhandled"
            return json.dumps(
                {"errorType": "Lambda.ResourceNotFoundException", "errorMessage": step}
            ).encode()
        context = LocalContext(function_name=step, replication_control=self.control)
        try:
            result = handler(event, context)
        except Exception as exc:  # every error goes back to the interpreter, like Lambda does
            log.debug("step %s failed: %s", step, exc, exc_info=True)
            response_headers["x-amz-function-error"] = "Unhandled"
            return json.dumps(error_payload(exc)).encode()
        return json.dumps(result, default=str).encode()


def _patched_invoke(  # noqa: PLR0917 (moto's signature)
    self: Any,
    function_name: str,
    qualifier: str | None,
    body: Any,
    headers: Any,
    response_headers: Any,
) -> bytes:
    dispatcher = _current.get("dispatcher")
    if dispatcher is None:
        response_headers["x-amz-function-error"] = "Unhandled"
        return b'{"errorType": "RuntimeFailure", "errorMessage": "no local runner active"}'
    return dispatcher.invoke(function_name, body, response_headers)


@dataclass
class ExecutionOutcome:
    arn: str
    status: str
    output: Any = None
    error: str | None = None
    cause: str | None = None


def _dummy_zip() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("app.py", "def handler(event, context):\n    return event\n")
    return buf.getvalue()


class LocalStepFunctions:
    """A private, in-process moto server running the migration state machine."""

    def __init__(
        self,
        control: ReplicationControl | None,
        *,
        definition_path: Path = DEFINITION,
        functions_dir: Path = FUNCTIONS,
        on_invoke: Callable[[str, dict[str, Any]], None] | None = None,
    ) -> None:
        self.definition_text = definition_path.read_text(encoding="utf-8")
        self.functions_dir = functions_dir
        self.control = control
        self.on_invoke = on_invoke
        self.server: Any = None
        self.sfn: Any = None
        self.state_machine_arn: str | None = None
        self.substitutions: dict[str, str] = {}
        self._saved_config: dict[str, Any] = {}
        self._saved_invoke: Any = None

    # --- lifecycle -----------------------------------------------------------------------------

    def __enter__(self) -> LocalStepFunctions:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> None:
        if not _active.acquire(timeout=30):
            raise RuntimeFailure("another local workflow run is active in this process")
        try:
            self._start()
        except BaseException:
            self._restore()
            _active.release()
            raise
        handlers = {
            step_of(p): load_handler(step_of(p), self.functions_dir)
            for p in placeholders(self.definition_text)
        }
        _current["dispatcher"] = LocalLambda(handlers, self.control, self.on_invoke)
        self._create_state_machine(handlers)

    def _start(self) -> None:
        import os
        import socket

        from moto.awslambda_simple.models import LambdaSimpleBackend
        from moto.core.config import default_user_config
        from moto.server import ThreadedMotoServer

        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = int(sock.getsockname()[1])
        # moto's interpreter calls Lambda on http://localhost:$MOTO_PORT.
        os.environ["MOTO_PORT"] = str(port)
        self._saved_config = {
            "stepfunctions": dict(default_user_config.get("stepfunctions", {})),
            "lambda": dict(default_user_config.get("lambda", {})),
        }
        default_user_config["stepfunctions"] = {"execute_state_machine": True}
        default_user_config["lambda"] = {"use_docker": False}
        self._saved_invoke = LambdaSimpleBackend.invoke
        LambdaSimpleBackend.invoke = _patched_invoke  # type: ignore[method-assign]
        for noisy in ("werkzeug", "moto"):
            logging.getLogger(noisy).setLevel(logging.CRITICAL)
        self.server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
        self.server.start()
        self.url = f"http://127.0.0.1:{port}"

    def client(self, service: str) -> Any:
        import boto3

        return boto3.client(
            service,  # type: ignore[call-overload]
            region_name=REGION,
            endpoint_url=self.url,
            aws_access_key_id="local",
            aws_secret_access_key="local",
        )

    def _create_state_machine(self, handlers: Mapping[str, Any]) -> None:
        # moto's backends live as long as the process: names are unique per run.
        run_id = uuid.uuid4().hex[:8]
        iam = self.client("iam")
        role = iam.create_role(
            RoleName=f"dynashift-{run_id}",
            AssumeRolePolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": []}),
        )["Role"]["Arn"]
        lam = self.client("lambda")
        code = _dummy_zip()
        for placeholder in placeholders(self.definition_text):
            step = step_of(placeholder)
            arn = lam.create_function(
                FunctionName=f"dynashift-{run_id}-{step}",
                Runtime="python3.12",
                Role=role,
                Handler="app.handler",
                Code={"ZipFile": code},
            )["FunctionArn"]
            self.substitutions[placeholder] = arn
        definition = substitute(self.definition_text, self.substitutions)
        self.sfn = self.client("stepfunctions")
        self.state_machine_arn = self.sfn.create_state_machine(
            name=f"dynashift-{run_id}", definition=definition, roleArn=role
        )["stateMachineArn"]

    def stop(self) -> None:
        try:
            if self.server is not None:
                self.server.stop()
        finally:
            self.server = None
            _current.pop("dispatcher", None)
            self._restore()
            if _active.locked():
                _active.release()

    def _restore(self) -> None:
        if self._saved_invoke is not None:
            from moto.awslambda_simple.models import LambdaSimpleBackend

            LambdaSimpleBackend.invoke = self._saved_invoke  # type: ignore[method-assign]
            self._saved_invoke = None
        if self._saved_config:
            from moto.core.config import default_user_config

            for key, value in self._saved_config.items():
                default_user_config[key] = value  # type: ignore[literal-required]
            self._saved_config = {}

    # --- executions ----------------------------------------------------------------------------

    def start_execution(self, payload: Mapping[str, Any], name: str | None = None) -> str:
        arn: str = self.sfn.start_execution(
            stateMachineArn=self.state_machine_arn,
            name=name or f"run-{uuid.uuid4().hex[:12]}",
            input=json.dumps(payload),
        )["executionArn"]
        return arn

    def history(self, execution_arn: str, after_id: int = 0) -> list[dict[str, Any]]:
        """History events with an id above `after_id`, oldest first.

        Asks for newest-first pages and stops at `after_id` (Step Functions honours
        `reverseOrder`; moto returns the whole history oldest-first, which works too).
        """
        kwargs: dict[str, Any] = {
            "executionArn": execution_arn,
            "maxResults": 1000,
            "reverseOrder": True,
        }
        new: list[dict[str, Any]] = []
        previous: int | None = None
        while True:
            page = self.sfn.get_execution_history(**kwargs)
            for event in page.get("events", []):
                event_id = int(event["id"])
                descending = previous is not None and event_id < previous
                previous = event_id
                if event_id > after_id:
                    new.append(event)
                elif descending:
                    return sorted(new, key=lambda e: int(e["id"]))
            token = page.get("nextToken")
            if not token:
                return sorted(new, key=lambda e: int(e["id"]))
            kwargs["nextToken"] = token

    def describe(self, execution_arn: str) -> dict[str, Any]:
        desc: dict[str, Any] = self.sfn.describe_execution(executionArn=execution_arn)
        return desc

    def wait(
        self,
        execution_arn: str,
        *,
        on_event: Callable[[dict[str, Any]], None] | None = None,
        on_poll: Callable[[], None] | None = None,
        timeout: float | None = None,
        interval: float = 0.5,
    ) -> ExecutionOutcome:
        """Poll until the execution ends, passing each new history event to `on_event`."""
        seen = 0  # id of the newest event passed on
        deadline = time.monotonic() + timeout if timeout else None
        while True:
            desc = self.describe(execution_arn)
            if on_event is not None:
                for event in self.history(execution_arn, seen):
                    on_event(event)
                    seen = max(seen, int(event["id"]))
            if desc["status"] != "RUNNING":
                return outcome_of(desc)
            if on_poll is not None:
                on_poll()
            if deadline is not None and time.monotonic() > deadline:
                raise RuntimeFailure(f"execution {execution_arn} still running after {timeout}s")
            time.sleep(interval)

    def stop_execution(
        self, execution_arn: str, cause: str = "interrupted", wait: float = 0.0
    ) -> bool:
        """Stop an execution; with `wait`, also let the handler calls in flight finish (so a
        resumed run never races a worker of the stopped one). True when they all finished."""
        with contextlib.suppress(Exception):
            self.sfn.stop_execution(executionArn=execution_arn, error="Interrupted", cause=cause)
        dispatcher = _current.get("dispatcher")
        return dispatcher.wait_idle(wait) if dispatcher is not None and wait > 0 else True

    def send_task_success(self, token: str, output: Mapping[str, Any]) -> None:
        self.sfn.send_task_success(taskToken=token, output=json.dumps(output))


def substitute(definition_text: str, values: Mapping[str, str]) -> str:
    """Fill `${Name}` placeholders; a placeholder without a value is an error."""

    def fill(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in values:
            raise RuntimeFailure(f"definition placeholder ${{{name}}} has no value")
        return values[name]

    return PLACEHOLDER.sub(fill, definition_text)


def outcome_of(desc: Mapping[str, Any]) -> ExecutionOutcome:
    output = desc.get("output")
    with contextlib.suppress(TypeError, ValueError):
        output = json.loads(output) if output else None
    return ExecutionOutcome(
        arn=str(desc["executionArn"]),
        status=str(desc["status"]),
        output=output,
        error=desc.get("error"),
        cause=desc.get("cause"),
    )
