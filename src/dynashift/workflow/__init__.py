"""The migration workflow: the engine side of each state machine step and the local runner.

- `dynashift.workflow.steps` — one function per Task state of `statemachine/migration.asl.json`;
  the Lambda handlers in `functions/` parse their event and call exactly one of them.
- `dynashift.workflow.control` — starting, measuring and stopping the replicator: an event
  source mapping in AWS, a local stream follower (`dynashift.workflow.local`) on a laptop.
- `dynashift.workflow.runner` — executes the same ASL file locally with moto's Step Functions
  interpreter, dispatching Lambda tasks in-process to the handlers.
"""
