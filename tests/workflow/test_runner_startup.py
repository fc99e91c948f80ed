"""The local runner's start-up (issue 14): the private stack starts while the input is validated.

A background start is joined by `with` (its error raised in the caller's thread) or by `stop`
(bad input found meanwhile): nothing of the stack stays up, and the next run can start.
"""

from __future__ import annotations

import uuid

import pytest

from dynashift.errors import BadInputError
from dynashift.workflow import runner
from dynashift.workflow.migrate import MigrationRunner, local_stack
from dynashift.workflow.template import TemplateError
from tests.support.workflow import workflow_input


def _runner_free() -> bool:
    """No local stack holds the process's one runner slot."""
    if runner._active.acquire(blocking=False):
        runner._active.release()
        return True
    return False


def test_bad_input_found_while_the_stack_starts_stops_it(endpoint: str) -> None:
    started: list[runner.LocalStepFunctions] = []
    wf = workflow_input(endpoint, f"missing-{uuid.uuid4().hex[:6]}", "startup-tgt")

    class Watched(MigrationRunner):
        def stack(self) -> runner.LocalStepFunctions:
            sfn = super().stack()
            started.append(sfn)
            return sfn

    with pytest.raises(BadInputError, match="source"):
        Watched(wf).run()
    (sfn,) = started  # the stack was begun before validation answered...
    assert sfn.server is None and sfn.dispatcher is not None  # ...and stopped after it
    assert runner._current.get("dispatcher") is None
    assert _runner_free()


def test_a_failed_background_start_raises_in_the_caller(endpoint: str) -> None:
    wf = workflow_input(endpoint, "startup-src", "startup-tgt")
    sfn = local_stack(wf.spec)
    sfn.parameters["SourceTableName"] = "x"  # the template's pattern refuses it
    sfn.start_in_background()
    with pytest.raises(TemplateError, match="SourceTableName"), sfn:
        pass
    assert sfn.server is None and _runner_free()
    with local_stack(wf.spec) as again:  # the next run starts
        assert again.state_machine_arn
