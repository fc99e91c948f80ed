"""The local runner: executes `statemachine/migration.asl.json` as `sam deploy` deploys it.

Size: one module because the private server, the stack created on it and the dispatch of
invokes to the sandboxes share one lifecycle (start, stop, undo moto's patches).

It starts a private moto server in this process (Step Functions, Lambda, SQS, SNS and IAM only
— the data tables live wherever the spec says: real AWS or any endpoint) with moto's Amazon
States Language interpreter switched on, and creates on it what the template's stack holds: one
function per `AWS::Serverless::Function`, the replicator's dead-letter queue, the report topic
and the state machine, whose placeholders are filled from the template's
`DefinitionSubstitutions`. Every function runs in its own sandboxes
(`dynashift.workflow.sandbox`) with exactly the environment, timeout and memory the template
gives it (`dynashift.workflow.template`), resolved against the stack parameters of the run.
moto's Docker-free Lambda backend is patched so that an invoke goes to the function's sandbox
and returns its JSON or Lambda's error payload. Stream event source mappings created through
the Lambda API are only stored by moto and run by `dynashift.workflow.esm`.

The one local difference: each sandbox also gets `AWS_ENDPOINT_URL_LAMBDA`, `_SQS`, `_SNS` and
`_SFN`, pointing the functions' Lambda, SQS, SNS and Step Functions calls at the private server.

Only one runner can be active per process (moto's interpreter reaches Lambda through the
`MOTO_PORT` of the process).
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import re
import shutil
import tempfile
import threading
import uuid
import zipfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from dynashift.clock import SYSTEM_CLOCK, Clock
from dynashift.errors import RuntimeFailure
from dynashift.workflow import deployed
from dynashift.workflow.esm import EventSourceMappingEmulator, store_only_stream_mappings
from dynashift.workflow.sandbox import (
    FunctionPool,
    FunctionSpec,
    runtime_environment,
    start_forkserver,
)
from dynashift.workflow.template import TEMPLATE, Stack, load_template

log = logging.getLogger("dynashift.workflow")

REGION = "us-east-1"
ACCOUNT_ID = "123456789012"
PLACEHOLDER = re.compile(r"\$\{([A-Za-z0-9]+)\}")
STATE_MACHINE = "MigrationStateMachine"

#: Where the definition, the template and the handlers live: the repository root, or an
#: installed wheel's packaged copy (`dynashift.workflow.deployed`).
ROOT = deployed.ROOT
DEFINITION = deployed.DEFINITION
FUNCTIONS = deployed.FUNCTIONS

_active = threading.Lock()
#: The dispatcher of the active run (the patched moto backend looks it up here).
_current: dict[str, LocalLambda] = {}
#: Executions of the private server that have ended (their ARNs), and the condition a waiting
#: runner sleeps on: moto's interpreter notifies it the moment an execution ends.
_ended = threading.Condition()
_ended_arns: set[str] = set()
#: How often the private server's loop checks for shutdown (werkzeug's default is 0.5 s, which
#: every stop waited for).
SERVER_POLL_INTERVAL = 0.05

_import_lock = threading.Lock()


def import_interpreter() -> None:
    """Import moto's server and its Step Functions interpreter: most of a local run's start-up.

    The interpreter's task factory imports every service integration it knows, and its AWS Batch
    integration imports `moto.batch.utils`, whose package `__init__` loads moto's Batch and EC2
    backends (about 1.3 s on a laptop, more than the rest of the interpreter). The definition
    calls no Batch API: `moto.batch.utils` is loaded without its package's `__init__`, and the
    package is left unimported, so a later `import moto.batch` still runs in full. Idempotent and
    thread-safe; `warm_up` runs it on a thread while a command validates its input."""
    import sys

    with _import_lock:
        if "moto.stepfunctions.parser.models" in sys.modules:
            return
        import importlib.util
        import types

        if "moto.batch" not in sys.modules:
            spec = importlib.util.find_spec("moto.batch")
            if spec is not None and spec.submodule_search_locations is not None:
                package = types.ModuleType("moto.batch")
                package.__path__ = list(spec.submodule_search_locations)
                package.__spec__ = spec
                sys.modules["moto.batch"] = package
                try:
                    importlib.import_module("moto.batch.utils")
                finally:
                    if sys.modules.get("moto.batch") is package:
                        del sys.modules["moto.batch"]
        importlib.import_module("moto.server")
        importlib.import_module("moto.stepfunctions.parser.models")


def warm_up() -> threading.Thread:
    """Begin what every local run needs first, on a thread: the sandboxes' forkserver (its own
    process) and moto's interpreter (`import_interpreter`). A command calls it before it plans
    and validates, which mostly waits on the tables' endpoint."""

    def run() -> None:
        start_forkserver()
        try:
            import_interpreter()
        except Exception as exc:  # the stack's own start imports it again and reports it
            log.debug("interpreter warm-up failed: %s", exc)

    thread = threading.Thread(target=run, name="local-stack-warm-up", daemon=True)
    thread.start()
    return thread


#: Parses of a definition made to validate it when the state machine was created, each handed
#: to one execution of it (definition text -> parsed program): moto parses a definition again
#: for every execution, a few tenths of a second on the path of a run's first state.
_spare_parses: dict[str, list[Any]] = {}
_spare_lock = threading.Lock()


def _patch_parser() -> Callable[[], None]:
    """Make moto's validation parse of a new state machine's definition serve its first
    execution (a parse is never shared: each is evaluated once). Returns the undo."""
    from moto.stepfunctions.parser.asl.parse.asl_parser import AmazonStateLanguageParser
    from moto.stepfunctions.parser.backend import execution_worker
    from moto.stepfunctions.parser.models import StepFunctionsParserBackend

    original_parse = AmazonStateLanguageParser.parse
    original_validate = StepFunctionsParserBackend._validate_definition
    original_entrypoint = execution_worker.ExecutionWorker._get_evaluation_entrypoint

    def validate(definition: str) -> None:
        try:
            parsed = original_parse(definition)[0]
        except Exception:
            original_validate(definition)  # raises moto's own InvalidDefinition
            raise
        with _spare_lock:
            _spare_parses.setdefault(definition, []).append(parsed)

    def entrypoint(worker: Any) -> Any:
        definition = worker._evaluation_details.state_machine_details.definition
        with _spare_lock:
            spares = _spare_parses.get(definition)
            if spares:
                return spares.pop()
        return original_entrypoint(worker)

    StepFunctionsParserBackend._validate_definition = staticmethod(validate)  # type: ignore[method-assign,assignment]
    execution_worker.ExecutionWorker._get_evaluation_entrypoint = entrypoint  # type: ignore[method-assign,assignment]

    def undo() -> None:
        StepFunctionsParserBackend._validate_definition = staticmethod(original_validate)  # type: ignore[method-assign]
        execution_worker.ExecutionWorker._get_evaluation_entrypoint = original_entrypoint  # type: ignore[method-assign]
        with _spare_lock:
            _spare_parses.clear()

    return undo


def _execution_ended(execution_arn: str) -> None:
    with _ended:
        _ended_arns.add(execution_arn)
        _ended.notify_all()


def step_of(placeholder: str) -> str:
    """`BackfillSegmentFunctionArn` -> `backfill_segment` (the `functions/` directory)."""
    base = placeholder.removesuffix("FunctionArn")
    return re.sub(r"(?<!^)(?=[A-Z])", "_", base).lower()


def placeholders(definition_text: str) -> list[str]:
    return sorted(set(PLACEHOLDER.findall(definition_text)))


def load_handler(step: str, functions_dir: Path = FUNCTIONS) -> Callable[[Any, Any], Any]:
    """The `handler` of `functions/<step>/app.py`, loaded by path (no sys.path changes; for
    checks of the handlers — the runner itself loads them inside their sandboxes)."""
    import importlib.util

    path = functions_dir / step / "app.py"
    if not path.is_file():
        raise RuntimeFailure(f"no handler for step {step!r}: {path} is missing")
    spec = importlib.util.spec_from_file_location(f"dynashift_functions.{step}", path)
    if spec is None or spec.loader is None:
        raise RuntimeFailure(f"cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    handler: Callable[[Any, Any], Any] = module.handler
    return handler


#: The service endpoints a sandbox's botocore clients use (botocore's
#: AWS_ENDPOINT_URL_<SERVICE ID>): the stack's own services on the private server.
ENDPOINT_SERVICES = ("LAMBDA", "SQS", "SNS", "SFN")


@dataclass
class LocalFunction:
    logical_id: str
    step: str
    name: str
    arn: str
    pool: FunctionPool


class LocalLambda:
    """Dispatches invokes of the private server's functions to their sandboxes."""

    def __init__(
        self,
        functions: list[LocalFunction],
        on_invoke: Callable[[str, dict[str, Any]], None] | None = None,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        self.functions = {f.name: f for f in functions} | {f.arn: f for f in functions}
        self.on_invoke = on_invoke
        self.clock = clock
        self.invocations: dict[str, int] = {}
        self.active = 0
        self._lock = threading.Lock()
        self._idle = threading.Condition(self._lock)

    def lookup(self, function_name: str) -> LocalFunction | None:
        name = function_name
        if name.endswith(":$LATEST"):
            name = name.removesuffix(":$LATEST")
        return self.functions.get(name)

    def invoke(self, function_name: str, body: Any, response_headers: dict[str, Any]) -> bytes:
        text = body.decode() if isinstance(body, bytes) else str(body or "{}")
        payload, error = self.invoke_text(function_name, text or "{}")
        if error:
            response_headers["x-amz-function-error"] = "Unhandled"
        return payload.encode()

    def invoke_json(self, function_name: str, event: dict[str, Any]) -> tuple[str, bool]:
        """(payload JSON, function error?) — what the event source mapping emulator calls."""
        return self.invoke_text(function_name, json.dumps(event))

    def invoke_text(self, function_name: str, text: str) -> tuple[str, bool]:
        function = self.lookup(function_name)
        if function is None:
            return json.dumps(
                {
                    "errorType": "Lambda.ResourceNotFoundException",
                    "errorMessage": f"Function not found: {function_name}",
                }
            ), True
        with self._lock:
            self.invocations[function.step] = self.invocations.get(function.step, 0) + 1
            self.active += 1
        try:
            if self.on_invoke:
                self.on_invoke(function.step, json.loads(text))
            return function.pool.invoke(text)
        finally:
            with self._idle:
                self.active -= 1
                self._idle.notify_all()

    def wait_idle(self, timeout: float) -> bool:
        """Wait until no handler runs (a stopped execution's workers finish their call and
        commit their checkpoint, as a Lambda invocation would). False on timeout."""
        deadline = self.clock.monotonic() + timeout
        with self._idle:
            while self.active:
                left = deadline - self.clock.monotonic()
                if left <= 0:
                    return False
                self._idle.wait(left)
            return True

    def close(self) -> None:
        seen: set[int] = set()
        exiting = []
        for function in self.functions.values():
            if id(function) not in seen:
                seen.add(id(function))
                exiting.extend(function.pool.request_exit())
        for sandbox in exiting:  # every sandbox was asked first: they exit together
            sandbox.join()


def _patched_invoke(
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
    """A private, in-process moto server running the template's stack (see module docstring).

    `parameters` are the stack parameters (`MigrationId`, `SourceTableName`, ...); `resources`
    gives the physical ids of resources the run brings itself (the state table, created next
    to the target). `streams_for(stream_arn)` returns the DynamoDB Streams client the event
    source mapping emulator reads a source stream with; without it, mappings are not run.
    """

    def __init__(
        self,
        parameters: Mapping[str, str],
        *,
        resources: Mapping[str, Mapping[str, str]] | None = None,
        template_path: Path = TEMPLATE,
        definition_path: Path = DEFINITION,
        root: Path = ROOT,
        region: str = REGION,
        on_invoke: Callable[[str, dict[str, Any]], None] | None = None,
        streams_for: Callable[[str], Any] | None = None,
        on_checkpoint: Callable[[str, str, str], None] | None = None,
        keep_batches: int = 0,
        role_profiles: Mapping[str, str] | None = None,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        self.parameters = dict(parameters)
        self.clock = clock
        self.extra_resources = {k: dict(v) for k, v in (resources or {}).items()}
        self.template = load_template(template_path)
        self.definition_text = definition_path.read_text(encoding="utf-8")
        self.root = root
        self.region = region
        self.on_invoke = on_invoke
        self.streams_for = streams_for
        self.on_checkpoint = on_checkpoint
        self.keep_batches = keep_batches
        #: Functions whose execution role is a named profile (logical id -> profile).
        self.role_profiles = dict(role_profiles or {})
        self.server: Any = None
        self.sfn: Any = None
        self.url = ""
        self.state_machine_arn: str | None = None
        self.substitutions: dict[str, str] = {}
        self.stack: Stack | None = None
        self.dispatcher: LocalLambda | None = None
        self.esm: EventSourceMappingEmulator | None = None
        #: One log file per function (the sandboxes' stdout and stderr), removed at `stop`
        #: unless `keep_logs` is set (a failed run keeps them for the operator).
        self.log_dir: Path | None = None
        self.keep_logs = False
        self._saved_config: dict[str, Any] = {}
        self._saved_invoke: Any = None
        self._saved_terminated: Any = None
        self._undo_parser: Callable[[], None] | None = None
        self._undo_esm: Callable[[], None] | None = None
        self._owns_lock = False
        self._starting: threading.Thread | None = None
        self._start_error: BaseException | None = None

    # --- lifecycle -----------------------------------------------------------------------------

    def __enter__(self) -> LocalStepFunctions:
        if not self._wait_started():
            self.start()
        return self

    def start_in_background(self) -> LocalStepFunctions:
        """Start on a thread while the caller does other work (a local run validates its input
        meanwhile: parsing the definition is most of the start-up, and validation mostly waits
        on the tables' endpoint). `with` waits for it and raises what starting raised; `stop`
        waits for it too."""

        def run() -> None:
            try:
                self.start()
            except BaseException as exc:  # re-raised by `with`, in the caller's thread
                self._start_error = exc

        self._starting = threading.Thread(target=run, name="local-stack-start", daemon=True)
        self._starting.start()
        return self

    def _wait_started(self) -> bool:
        """Join a background start (raising its error); False when none was begun."""
        thread, self._starting = self._starting, None
        if thread is None or thread is threading.current_thread():
            return False
        thread.join()
        error, self._start_error = self._start_error, None
        if error is not None:
            raise error
        return True

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> None:
        if not _active.acquire(timeout=30):
            raise RuntimeFailure("another local workflow run is active in this process")
        self._owns_lock = True
        try:
            self._start()
            self._create_stack()
        except BaseException:
            self.stop()
            raise

    def _start(self) -> None:
        import os
        import socket

        # The sandboxes' forkserver imports their modules in its own process meanwhile.
        start_forkserver()
        import_interpreter()
        from moto.awslambda_simple.models import LambdaSimpleBackend
        from moto.core.config import default_user_config
        from moto.stepfunctions.parser.backend.execution import (
            BaseExecutionWorkerCommunication,
        )

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
        self._undo_esm = store_only_stream_mappings()
        self._undo_parser = _patch_parser()
        self._saved_terminated = BaseExecutionWorkerCommunication.terminated

        def terminated(comm: Any, _original: Any = self._saved_terminated) -> None:
            try:
                _original(comm)
            finally:
                _execution_ended(str(comm.execution.exec_arn))

        BaseExecutionWorkerCommunication.terminated = terminated  # type: ignore[method-assign,assignment]
        for noisy in ("werkzeug", "moto"):
            logging.getLogger(noisy).setLevel(logging.CRITICAL)
        self.server = _server(port)
        self.server.start()
        self.url = f"http://127.0.0.1:{port}"

    def client(self, service: str, **config: Any) -> Any:
        import boto3
        from botocore.config import Config

        return boto3.client(
            service,  # type: ignore[call-overload]
            region_name=self.region,
            endpoint_url=self.url,
            aws_access_key_id="local",
            aws_secret_access_key="local",
            config=Config(**config) if config else None,
        )

    def _create_stack(self) -> None:
        """Create the stack's resources on the private server and the functions' sandboxes."""
        # moto's backends live as long as the process: names are unique per run.
        run_id = uuid.uuid4().hex[:8]
        stack_name = f"dynashift-{run_id}"
        iam = self.client("iam")
        role = iam.create_role(
            RoleName=stack_name,
            AssumeRolePolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": []}),
        )["Role"]["Arn"]
        resources: dict[str, dict[str, str]] = {}
        sqs = self.client("sqs")
        queue_name = f"{stack_name}-ReplicatorDeadLetterQueue"
        queue_url = sqs.create_queue(QueueName=queue_name)["QueueUrl"]
        queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])[
            "Attributes"
        ]["QueueArn"]
        resources["ReplicatorDeadLetterQueue"] = {
            "Ref": queue_url,
            "Arn": queue_arn,
            "QueueName": queue_name,
        }
        topic = self.client("sns").create_topic(Name=f"{stack_name}-ReportTopic")["TopicArn"]
        resources["ReportTopic"] = {"Ref": topic, "TopicName": topic.rsplit(":", 1)[-1]}
        resources["EngineLayer"] = {
            "Ref": f"arn:aws:lambda:{self.region}:{ACCOUNT_ID}:layer:{stack_name}-engine:1"
        }
        machine_name = f"{stack_name}-migration"
        machine_arn = f"arn:aws:states:{self.region}:{ACCOUNT_ID}:stateMachine:{machine_name}"
        resources[STATE_MACHINE] = {"Ref": machine_arn, "Name": machine_name}
        stack = Stack(
            self.template,
            self.parameters,
            resources,
            region=self.region,
            account_id=ACCOUNT_ID,
            stack_name=stack_name,
        )
        stack.parameter_values()  # refuse unknown or missing parameters before anything runs
        lam = self.client("lambda")
        code = _dummy_zip()
        names: dict[str, tuple[str, str]] = {}
        for logical_id in stack.functions():
            name = f"{stack_name}-{logical_id}"[:64]
            arn = lam.create_function(
                FunctionName=name,
                Runtime="python3.12",
                Role=role,
                Handler="app.handler",
                Code={"ZipFile": code},
            )["FunctionArn"]
            resources[logical_id] = {"Ref": name, "Arn": arn}
            # What SAM generates beside the function (its URL's address as AWS formats it;
            # nothing serves it locally: the local run approves through the state table).
            resources[f"{logical_id}Url"] = {
                "FunctionUrl": f"https://{name.lower()}.lambda-url.{self.region}.on.aws/"
            }
            resources[f"{logical_id}Role"] = {"Ref": name, "Arn": role}
            names[logical_id] = (name, arn)
        resources.update(self.extra_resources)
        self.stack = stack
        self.log_dir = Path(tempfile.mkdtemp(prefix="dynashift-lambda-logs-"))
        endpoints = {f"AWS_ENDPOINT_URL_{s}": self.url for s in ENDPOINT_SERVICES}
        functions = []
        for logical_id, (name, arn) in names.items():
            config = stack.function(logical_id)
            module, _, _ = config.handler.rpartition(".")
            path = (self.root / config.code_uri / f"{module.replace('.', '/')}.py").resolve()
            env = runtime_environment(
                config.environment,
                function_name=name,
                memory=config.memory,
                region=self.region,
                endpoints=endpoints,
                profile=self.role_profiles.get(logical_id),
            )
            spec = FunctionSpec(
                name=name,
                arn=arn,
                handler_path=str(path),
                handler_name=config.handler,
                environment=env,
                timeout=float(config.timeout),
                memory=config.memory,
                log_path=str(self.log_dir / f"{logical_id}.log"),
            )
            functions.append(LocalFunction(logical_id, config.step, name, arn, FunctionPool(spec)))
        self.dispatcher = LocalLambda(functions, self.on_invoke, self.clock)
        _current["dispatcher"] = self.dispatcher
        self.substitutions = stack.definition_substitutions(STATE_MACHINE)
        definition = substitute(self.definition_text, self.substitutions)
        self.sfn = self.client("stepfunctions")
        self.state_machine_arn = self.sfn.create_state_machine(
            name=machine_name, definition=definition, roleArn=role
        )["stateMachineArn"]
        if self.streams_for is not None:
            self.esm = EventSourceMappingEmulator(
                lam,
                self.dispatcher.invoke_json,
                self.streams_for,
                sqs_client=sqs,
                on_checkpoint=self.on_checkpoint,
                keep_batches=self.keep_batches,
                functions=lambda arn: (
                    self.dispatcher is not None and self.dispatcher.lookup(arn) is not None
                ),
            ).start()

    def function_environment(self, logical_id: str) -> dict[str, str]:
        """The whole environment a function's sandboxes get."""
        if self.dispatcher is None:
            raise RuntimeFailure("the local stack is not started")
        for function in self.dispatcher.functions.values():
            if function.logical_id == logical_id:
                return dict(function.pool.spec.environment)
        raise RuntimeFailure(f"no function {logical_id} in the local stack")

    def stop(self) -> None:
        if self._starting is not None and self._starting is not threading.current_thread():
            self._starting.join()  # its own failure stopped it; otherwise stop it below
            self._starting, self._start_error = None, None
        try:
            if self.esm is not None:
                self.esm.stop()
            if self.dispatcher is not None:
                self.dispatcher.close()
            if self.server is not None:
                self.server.stop()
        finally:
            self.server = None
            _current.pop("dispatcher", None)
            with _ended:
                _ended_arns.clear()
            self._restore()
            if self.log_dir is not None and not self.keep_logs:
                shutil.rmtree(self.log_dir, ignore_errors=True)
                self.log_dir = None
            if self._owns_lock:
                self._owns_lock = False
                _active.release()

    def _restore(self) -> None:
        if self._saved_invoke is not None:
            from moto.awslambda_simple.models import LambdaSimpleBackend

            LambdaSimpleBackend.invoke = self._saved_invoke  # type: ignore[method-assign]
            self._saved_invoke = None
        if self._saved_terminated is not None:
            from moto.stepfunctions.parser.backend.execution import (
                BaseExecutionWorkerCommunication,
            )

            BaseExecutionWorkerCommunication.terminated = self._saved_terminated  # type: ignore[method-assign]
            self._saved_terminated = None
        if self._undo_parser is not None:
            self._undo_parser()
            self._undo_parser = None
        if self._undo_esm is not None:
            self._undo_esm()
            self._undo_esm = None
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

    def local_history(self, execution_arn: str, after_id: int = 0) -> list[dict[str, Any]] | None:
        """History events with an id above `after_id`, oldest first, read from the private
        server's interpreter in this process: the events `history` returns, without moto
        serializing the whole history at every poll (it has no paging from an event id; one
        poll of a few hundred events cost this process, which also runs the interpreter and
        the functions' dispatch, 0.15-0.25 s of CPU). None when moto's interpreter does not
        hold them as expected (`history` then reads them through the API)."""
        try:
            from moto.stepfunctions.parser.models import stepfunctions_parser_backends

            backend = stepfunctions_parser_backends[ACCOUNT_ID][self.region]
            execution: Any = backend.describe_execution(execution_arn)
            worker = execution.exec_worker
            env = worker.env if worker is not None else None
            if env is None:
                return []  # not started yet: no events
            manager = env.event_manager
            with manager._mutex:
                events = manager._history_event_list
                start = len(events)
                while start > 0 and int(events[start - 1]["id"]) > after_id:
                    start -= 1
                new = events[start:]
            # Plain JSON values, as the API gives them (moto keeps enums: `type` and others),
            # and timestamps as the datetimes botocore parses (moto keeps ISO strings).
            new = json.loads(json.dumps(new, default=_plain))
            for event in new:
                stamp = event.get("timestamp")
                if isinstance(stamp, str):
                    event["timestamp"] = datetime.fromisoformat(stamp.replace("Z", "+00:00"))
        except Exception as exc:  # the API answers instead (and raises what it raises)
            log.debug("reading the history in process failed (%s); using the API", exc)
            return None
        return sorted(new, key=lambda e: int(e["id"]))

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
        """Poll until the execution ends, passing each new history event to `on_event`.

        Between polls it sleeps `interval` at most: the end of the execution wakes it at once
        (moto's interpreter notifies `_ended`), so a run is not held up to an interval after
        its last state."""
        seen = 0  # id of the newest event passed on
        deadline = self.clock.monotonic() + timeout if timeout else None
        while True:
            desc = self.describe(execution_arn)
            if on_event is not None:
                events = self.local_history(execution_arn, seen)
                if events is None:
                    events = self.history(execution_arn, seen)
                for event in events:
                    on_event(event)
                    seen = max(seen, int(event["id"]))
            if desc["status"] != "RUNNING":
                return outcome_of(desc)
            if on_poll is not None:
                on_poll()
            if deadline is not None and self.clock.monotonic() > deadline:
                raise RuntimeFailure(f"execution {execution_arn} still running after {timeout}s")
            with _ended:
                _ended.wait_for(lambda: execution_arn in _ended_arns, timeout=interval)

    def stop_execution(
        self, execution_arn: str, cause: str = "interrupted", wait: float = 0.0
    ) -> bool:
        """Stop an execution; with `wait`, also let the handler calls in flight finish (so a
        resumed run never races a worker of the stopped one). True when they all finished."""
        with contextlib.suppress(Exception):
            self.sfn.stop_execution(executionArn=execution_arn, error="Interrupted", cause=cause)
        dispatcher = self.dispatcher
        return dispatcher.wait_idle(wait) if dispatcher is not None and wait > 0 else True

    def send_task_success(self, token: str, output: Mapping[str, Any]) -> None:
        self.sfn.send_task_success(taskToken=token, output=json.dumps(output))


def _plain(value: Any) -> Any:
    """A value moto keeps in a history event as JSON would carry it."""
    enum_value = getattr(value, "value", None)
    return enum_value if enum_value is not None else str(value)


def _server(port: int) -> Any:
    """moto's threaded server on `port`, whose loop notices a shutdown within
    `SERVER_POLL_INTERVAL`."""
    from moto.moto_server.threaded_moto_server import ThreadedMotoServer
    from moto.moto_server.werkzeug_app import (
        DomainDispatcherApplication,
        MotoRequestHandler,
        create_backend_app,
    )
    from werkzeug.serving import make_server

    class Server(ThreadedMotoServer):
        def _server_entry(self) -> None:
            app = DomainDispatcherApplication(create_backend_app)
            self._server = make_server(
                self._ip_address, self._port, app, True, request_handler=MotoRequestHandler
            )
            self._server_ready_event.set()
            self._server.serve_forever(poll_interval=SERVER_POLL_INTERVAL)

    return Server(ip_address="127.0.0.1", port=port, verbose=False)


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
