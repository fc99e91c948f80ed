"""Lambda execution environments on this machine: one process per warm sandbox.

Each function of the stack gets a `FunctionPool`. An invocation takes an idle sandbox of that
function (a warm start) or starts a new one (a cold start, as Lambda does for concurrent
invocations). A sandbox is a process forked from a forkserver that has already imported the
heavy modules (`PRELOAD`), so it starts in tens of milliseconds; it then replaces its whole
environment with exactly the function's (template environment plus what the Lambda runtime
sets), loads `functions/<step>/app.py` by path and serves invocations one at a time. Module
state (cached clients, `functools.cache`) lives as long as the sandbox, and no sandbox sees
another function's settings or state.

An invocation that outlives the function's `Timeout` is killed and answered with Lambda's
`Sandbox.Timedout` error; a handler error comes back as Lambda's error payload
(`errorType`/`errorMessage`), with the `X-Amz-Function-Error` the Step Functions Retry/Catch
clauses match. The sandboxes' stdout and stderr (Powertools logs and metrics) go to one log
file per function, like CloudWatch Logs.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import logging
import multiprocessing
import os
import threading
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any

from dynashift.clock import SYSTEM_CLOCK

log = logging.getLogger("dynashift.workflow")

#: Imported once by the forkserver: every sandbox starts with them loaded.
PRELOAD = (
    "boto3",
    "botocore.session",
    "pydantic",
    "aws_lambda_powertools",
    "aws_lambda_powertools.utilities.batch",
    "aws_lambda_powertools.utilities.data_classes.dynamo_db_stream_event",
    "aws_lambda_powertools.metrics",
    "dynashift.workflow.steps",
    "dynashift.workflow.control",
    "dynashift.replicator",
    "dynashift.readiness",
    "dynashift.verify",
    "dynashift.backfill",
    "dynashift.workflow.sandbox",
    "dynashift.workflow.sandbox_preload",
)

#: Variables of the caller's environment handed to every sandbox as the runtime role's
#: credentials (nothing else of the caller's environment reaches a function).
CREDENTIAL_VARIABLES = (
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_PROFILE",
    "AWS_CONFIG_FILE",
    "AWS_SHARED_CREDENTIALS_FILE",
)

_context_lock = threading.Lock()
_mp_context: Any = None


def _context() -> Any:
    """The forkserver context (its server starts on first use, with `PRELOAD` imported)."""
    global _mp_context  # noqa: PLW0603 (one forkserver per process)
    with _context_lock:
        if _mp_context is None:
            ctx = multiprocessing.get_context("forkserver")
            ctx.set_forkserver_preload(list(PRELOAD))
            _mp_context = ctx
        return _mp_context


def start_forkserver() -> threading.Thread:
    """Start the forkserver (importing `PRELOAD`, most of a first sandbox's start-up) on a
    thread, while the caller creates the stack: the first invocation then finds it running.
    A sandbox started meanwhile waits for it (multiprocessing starts one forkserver, under a
    lock)."""

    def run() -> None:
        from multiprocessing import forkserver

        _context()
        try:
            with _without_main_path():
                forkserver.ensure_running()
        except Exception as exc:  # the first sandbox starts it then (and reports the error)
            log.debug("forkserver warm-up failed: %s", exc)

    thread = threading.Thread(target=run, name="forkserver-warm-up", daemon=True)
    thread.start()
    return thread


@dataclass
class FunctionSpec:
    """What a sandbox runs: the handler file, its environment, timeout and memory."""

    name: str
    arn: str
    handler_path: str
    handler_name: str
    environment: dict[str, str]
    timeout: float
    memory: int
    log_path: str


@dataclass
class LambdaContext:
    """The context object the Lambda runtime passes (the attributes handlers and Powertools
    read). Nothing else: no dependency travels through it."""

    function_name: str
    function_version: str
    invoked_function_arn: str
    memory_limit_in_mb: int
    aws_request_id: str
    log_group_name: str
    log_stream_name: str
    deadline: float

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self.deadline - SYSTEM_CLOCK.monotonic()) * 1000))


def runtime_environment(
    function_env: Mapping[str, str],
    *,
    function_name: str,
    memory: int,
    region: str,
    endpoints: Mapping[str, str],
    caller_env: Mapping[str, str] | None = None,
    profile: str | None = None,
) -> dict[str, str]:
    """A function's whole environment: the template's variables, what the Lambda runtime adds,
    the caller's credentials as the role's, and the private server's service endpoints.

    `profile`: the function's role is that named profile (the replicator of a run whose target
    is reached with `--target-profile`), not the caller's default credentials."""
    caller = dict(os.environ if caller_env is None else caller_env)
    if profile:
        for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
            caller.pop(name, None)  # environment credentials would win over the profile
        caller["AWS_PROFILE"] = profile
    env = {
        "AWS_REGION": region,
        "AWS_DEFAULT_REGION": region,
        "AWS_LAMBDA_FUNCTION_NAME": function_name,
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(memory),
        "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
        "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{function_name}",
        "AWS_EXECUTION_ENV": "AWS_Lambda_python3.12",
        "LAMBDA_TASK_ROOT": "/var/task",
    }
    env.update({k: caller[k] for k in CREDENTIAL_VARIABLES if caller.get(k)})
    env.update(endpoints)
    env.update(function_env)
    return env


def _load(path: str, name: str) -> Any:
    module_name, _, attr = name.rpartition(".")
    spec = importlib.util.spec_from_file_location(f"lambda_function_{module_name}", path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return getattr(module, attr)


def _serve(conn: Connection, spec: FunctionSpec) -> None:  # pragma: no cover (in a sandbox)
    """The sandbox process: set the environment, load the handler, serve invocations."""
    os.environ.clear()
    os.environ.update(spec.environment)
    fd = os.open(spec.log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.close(fd)
    from dynashift.errors import error_payload

    handler: Any = None
    init_error: dict[str, Any] | None = None
    try:
        handler = _load(spec.handler_path, spec.handler_name)
    except BaseException as exc:
        init_error = {"errorType": "Runtime.ImportModuleError", "errorMessage": str(exc)}
    while True:
        try:
            message = conn.recv()
        except (EOFError, OSError):
            return
        if message is None:
            return
        request_id, event_text = message
        if init_error is not None:
            conn.send(("error", json.dumps(init_error)))
            continue
        context = LambdaContext(
            function_name=spec.name,
            function_version="$LATEST",
            invoked_function_arn=spec.arn,
            memory_limit_in_mb=spec.memory,
            aws_request_id=request_id,
            log_group_name=f"/aws/lambda/{spec.name}",
            log_stream_name="local",
            deadline=SYSTEM_CLOCK.monotonic() + spec.timeout,
        )
        try:
            result = handler(json.loads(event_text or "{}"), context)
            reply = ("ok", json.dumps(result, default=str))
        except BaseException as exc:  # every error goes back to the caller, as in Lambda
            import traceback

            traceback.print_exc()
            reply = ("error", json.dumps(error_payload(exc)))
        sys_flush()
        conn.send(reply)


def sys_flush() -> None:  # pragma: no cover (in a sandbox)
    import sys

    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()


_main_lock = threading.Lock()


@contextlib.contextmanager
def _without_main_path() -> Any:
    """A sandbox must not re-run the caller's main script (multiprocessing imports it in a
    forkserver child when `__main__` has a `__file__`): a Lambda sandbox holds the function's
    code only, and a pytest or CLI main would cost a second per start."""
    import sys

    with _main_lock:
        main = sys.modules.get("__main__")
        saved = main.__dict__.pop("__file__", None) if main is not None else None
        try:
            yield
        finally:
            if main is not None and saved is not None:
                main.__dict__["__file__"] = saved


class Sandbox:
    """One execution environment (a process) of one function."""

    def __init__(self, spec: FunctionSpec) -> None:
        ctx = _context()
        self.spec = spec
        self.conn, child = ctx.Pipe()
        self.process = ctx.Process(
            target=_serve, args=(child, spec), name=f"sandbox-{spec.name}", daemon=True
        )
        with _without_main_path():
            self.process.start()
        child.close()

    @property
    def alive(self) -> bool:
        return bool(self.process.is_alive())

    def invoke(self, event_text: str) -> tuple[str, bool]:
        """(payload JSON, function error?) of one invocation."""
        request_id = str(uuid.uuid4())
        try:
            self.conn.send((request_id, event_text))
            if not self.conn.poll(self.spec.timeout):
                self.kill()
                return _error(
                    "Sandbox.Timedout",
                    f"RequestId: {request_id} Error: Task timed out after "
                    f"{self.spec.timeout:.2f} seconds",
                ), True
            kind, payload = self.conn.recv()
        except (EOFError, OSError, BrokenPipeError):
            self.kill()
            return _error(
                "Runtime.ExitError",
                f"RequestId: {request_id} Error: Runtime exited without providing a reason",
            ), True
        return str(payload), kind != "ok"

    def close(self) -> None:
        self.request_exit()
        self.join()

    def request_exit(self) -> None:
        """Ask the sandbox to exit after its current invocation (`join` waits for it)."""
        with contextlib.suppress(Exception):
            self.conn.send(None)

    def join(self, timeout: float = 2.0) -> None:
        self.process.join(timeout=timeout)
        if self.process.is_alive():
            self.kill()
        with contextlib.suppress(Exception):
            self.conn.close()

    def kill(self) -> None:
        with contextlib.suppress(Exception):
            self.process.kill()
        self.process.join(timeout=5)


def _error(error_type: str, message: str) -> str:
    return json.dumps({"errorType": error_type, "errorMessage": message})


class FunctionPool:
    """The sandboxes of one function: warm ones are reused, a busy pool grows."""

    def __init__(self, spec: FunctionSpec) -> None:
        self.spec = spec
        self._idle: list[Sandbox] = []
        self._all: list[Sandbox] = []
        self._lock = threading.Lock()
        self._closed = False
        self.cold_starts = 0

    def invoke(self, event_text: str) -> tuple[str, bool]:
        with self._lock:
            if self._closed:
                return _error("Lambda.ServiceException", "the local stack is shut down"), True
            sandbox = self._idle.pop() if self._idle else None
        if sandbox is None:
            sandbox = Sandbox(self.spec)
            with self._lock:
                self._all.append(sandbox)
                self.cold_starts += 1
        try:
            return sandbox.invoke(event_text)
        finally:
            with self._lock:
                if sandbox.alive and not self._closed:
                    self._idle.append(sandbox)
                elif not sandbox.alive:
                    self._all.remove(sandbox)

    def close(self) -> None:
        for sandbox in self.request_exit():
            sandbox.join()

    def request_exit(self) -> list[Sandbox]:
        """Close the pool and ask every sandbox to exit; the sandboxes, to `join`. (A stack's
        pools ask all their sandboxes first, then wait: they exit together, not one by one.)"""
        with self._lock:
            self._closed = True
            sandboxes, self._all, self._idle = list(self._all), [], []
        for sandbox in sandboxes:
            sandbox.request_exit()
        return sandboxes
