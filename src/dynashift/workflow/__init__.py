"""The migration workflow: the engine side of each state machine step and the local runner.

- `dynashift.workflow.steps` — one function per Task state of `statemachine/migration.asl.json`;
  the Lambda handlers in `functions/` parse their event and call exactly one of them.
- `dynashift.workflow.control` — starting, measuring and stopping the replicator's event source
  mapping (the same code in AWS and locally).
- `dynashift.workflow.runner` — executes the same ASL file locally with moto's Step Functions
  interpreter, as the template deploys it: `template` resolves each function's configuration,
  `sandbox` runs each function in its own processes, `esm` runs the event source mappings.
"""
