"""Model-based search for races nobody listed (issue 13 item 8).

Hypothesis' stateful testing drives random interleavings of everything that happens during a
migration, against the real engine on the moto server (through `tests/model/engine.py`, the one
adapter that calls the engine):

* source writes: put, update, delete, re-create (delete then put at version 1), with or without
  a version attribute;
* backfill invocations of "Copy segment" paused page by page: read a page, then write it;
  deadlines that hand back a cursor; resumes from the returned cursor or from the state store's
  checkpoint; crashes (the Lambda dies where it is); retries while the first invocation still
  runs (the straggler keeps going, from its older cursor);
* the replicator applying the real stream in batches, and redelivering the last batch;
* "Finish backfill" once every segment reported done.

After every schedule (`settle`) the stream is applied, stragglers and segments run to their end,
"Finish backfill" runs (if the schedule did not), the stream is drained, and the target must
equal the source item for item, with no tombstone in the target nor in the registry.

Budget: `make test` runs the `model-ci` profile (4 variants x 50 = 200 schedules of 20 steps);
`make model-soak` runs many more (DYNASHIFT_MODEL_EXAMPLES, default 5000 per variant, shrunk).
Known counterexamples are replayed step by step at the end of this file.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, currently_in_test_context, settings, target
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    rule,
    run_state_machine_as_test,
)

from dynashift.errors import RuntimeFailure
from tests.model.engine import PK, VERSION, Env, Invocation, Killed, Migration

KEYS = tuple(f"k{i}" for i in range(6))
WRITES = ("put", "update", "delete", "recreate")
DISRUPTIONS = ("deadline", "crash", "retry")

#: One step of a schedule: (method of MigrationModel, its arguments...). The kind is drawn with
#: weights (repetitions); its arguments after it.
WEIGHTS = {"backfill": 5, "change": 4, "replicate": 3, "disrupt": 1, "finish": 1}
ARGUMENTS = {
    "backfill": st.tuples(st.just("backfill"), st.integers(0, 7)),
    "change": st.tuples(st.just("change"), st.sampled_from(WRITES), st.integers(0, len(KEYS) - 1)),
    "replicate": st.tuples(st.just("replicate"), st.integers(0, 3)),
    "disrupt": st.tuples(st.just("disrupt"), st.sampled_from(DISRUPTIONS), st.integers(0, 2)),
    "finish": st.tuples(st.just("finish")),
}
ACTIONS = st.sampled_from([kind for kind, n in WEIGHTS.items() for _ in range(n)]).flatmap(
    ARGUMENTS.__getitem__
)
MAX_STEPS = 25
#: Schedules per variant in `make test` (4 variants: 200 in all), of CI_STEPS steps.
CI_EXAMPLES = 50
CI_STEPS = 20

_examples = os.environ.get("DYNASHIFT_MODEL_EXAMPLES")
settings.register_profile(
    "model-ci",
    max_examples=CI_EXAMPLES,
    stateful_step_count=CI_STEPS,
    derandomize=True,
    database=None,
    deadline=None,
    # No shrinking in CI: a failure is reported as the (deterministic) schedule that found it;
    # `make model-soak` shrinks.
    phases=(Phase.explicit, Phase.generate, Phase.target),
    suppress_health_check=list(HealthCheck),
    print_blob=False,
)
settings.register_profile(
    "model-soak",
    max_examples=int(_examples or 5000),
    stateful_step_count=MAX_STEPS,
    derandomize=not os.environ.get("DYNASHIFT_MODEL_RANDOM"),
    print_blob=True,
    database=None,
    deadline=None,
    suppress_health_check=list(HealthCheck),
)
PROFILE = "model-soak" if _examples else "model-ci"


def item(key: str, version: int, payload: int) -> dict[str, Any]:
    return {PK: {"S": key}, VERSION: {"N": str(version)}, "p": {"S": f"write {payload}"}}


class MigrationModel(RuleBasedStateMachine):
    """One migration under random interleavings (see the module docstring)."""

    env: Env  # set by `machine()`
    versioned = False
    stragglers = False

    def __init__(self) -> None:
        super().__init__()
        self.mig: Migration | None = None
        self.versions: dict[str, int] = {}  # the source's current version of each live key
        self.writes = 0
        self.current: dict[int, Invocation | None] = {}
        self.next_cursor: dict[int, dict[str, Any] | None] = {}
        self.done: set[int] = set()
        self.straggling: list[Invocation] = []
        self.finished = False
        # Hazards, for Hypothesis' targeted search (they are not failures by themselves).
        self.step_no = 0
        self.changed_at: dict[str, int] = {}  # key -> step of its last source write
        self.replicated_at = -1  # step of the last batch applied
        self.finished_at: int | None = None
        self.read_at: dict[int, int] = {}  # invocation number -> step its page was read
        self.hazards = {"stale": 0, "late": 0}

    # --- setup -------------------------------------------------------------------------------

    @initialize(
        initial=st.dictionaries(
            st.sampled_from(KEYS), st.integers(1, 4), min_size=3, max_size=len(KEYS)
        ),
        segments=st.integers(1, 2),
        page_size=st.integers(1, 3),
    )
    def setup(self, initial: dict[str, int], segments: int, page_size: int) -> None:
        items = [self._image(k, v) for k, v in sorted(initial.items())]
        self.versions = dict(initial)
        self.mig = Migration.start(
            self.env, items, versioned=self.versioned, segments=segments, page_size=page_size
        )
        self.current = dict.fromkeys(range(segments))
        self.next_cursor = dict.fromkeys(range(segments))

    def _image(self, key: str, version: int) -> dict[str, Any]:
        self.writes += 1
        return item(key, version, self.writes)

    @property
    def m(self) -> Migration:
        assert self.mig is not None
        return self.mig

    # --- source writes -----------------------------------------------------------------------

    def key_for(self, which: int) -> str:
        """`which` 0 or 1: a key of a page that an invocation read and has not written yet
        (races live there), when there is one; otherwise, and for 2 and up, KEYS[which]."""
        hot = [key for inv in self._parked("write") for key in inv.page_keys]
        if hot and which < 2:
            return hot[which % len(hot)]
        return KEYS[which % len(KEYS)]

    def change(self, op: str, which: int) -> None:
        """A source write: PutItem (a new version, or a creation at version 1), UpdateItem of
        two attributes, DeleteItem, or a re-create (delete, then put: the version restarts).
        `which`: see `key_for`."""
        key = self.key_for(which)
        self.changed_at[key] = self.step_no
        if op == "delete":
            self.env.source_delete(key)
            self.versions.pop(key, None)
            return
        if op == "recreate":
            self.env.source_delete(key)
            self.versions.pop(key, None)
        version = self.versions.get(key, 0) + 1
        if op == "update":
            self.writes += 1
            self.env.source_update(
                key, {VERSION: {"N": str(version)}, "p": {"S": f"update {self.writes}"}}
            )
        else:
            self.env.source_put(self._image(key, version))
        self.versions[key] = version

    # --- backfill ----------------------------------------------------------------------------

    def _running(self) -> list[tuple[int, Invocation]]:
        return [(s, inv) for s, inv in sorted(self.current.items()) if inv is not None]

    def _live(self) -> list[Invocation]:
        """Every invocation still running: the current one of each segment, then stragglers."""
        return [inv for _s, inv in self._running()] + self.straggling

    def _parked(self, gate: str) -> list[Invocation]:
        return [inv for inv in self._live() if inv.parked == gate]

    def _idle(self) -> list[int]:
        """Segments the state machine may invoke: not running, not done, backfill not over."""
        if self.finished:
            return []
        return [s for s, inv in sorted(self.current.items()) if inv is None and s not in self.done]

    def _workers(self) -> list[Invocation | int]:
        """The state machine's own backfill work: idle segments, then running invocations."""
        return [*self._idle(), *(inv for _s, inv in self._running())]

    def _count_hazards(self, inv: Invocation) -> None:
        """Before `inv` passes its gate: note when it reads, count what its write risks."""
        if inv.parked == "scan":
            self.read_at[inv.number] = self.step_no
            return
        read = self.read_at.get(inv.number, -1)
        for key in inv.page_keys:
            changed = self.changed_at.get(key, -1)
            if read < changed < self.replicated_at:
                self.hazards["stale"] += 1
        if self.finished_at is not None and read < self.finished_at:
            self.hazards["late"] += 1

    def backfill(self, pick: int) -> None:
        """One step of backfill.

        With `pick >= 6` a straggler, if any, passes its next gate. Otherwise worker
        `pick % len(workers)` (idle segments, then running invocations) makes progress:
        - a running invocation passes its next gate: it reads a page (Scan, Limit = page size)
          and stops before writing it, or writes the page it read (the real conditional puts),
          commits its checkpoint and stops before reading the next page (or returns);
        - an idle segment: the state machine invokes "Copy segment" with the cursor the last
          invocation returned or, when `pick >= 4` (a restarted execution), with none: the
          worker resumes from the state store's checkpoint. It stops before reading a page.
        When every segment reported done, the state machine goes on: "Finish backfill".
        A straggler then only moves when nothing else is left to move.
        """
        workers = self._workers()
        worker: Invocation | int
        if self.straggling and (pick >= 6 or (not workers and self.finished)):
            worker = self.straggling[pick % len(self.straggling)]
        elif workers:
            worker = workers[pick % len(workers)]
        else:
            self.finish()
            return
        if isinstance(worker, int):
            cursor = None if pick >= 4 else self.next_cursor[worker]
            self.current[worker] = self.m.invoke(worker, cursor)
        else:
            self._count_hazards(worker)
            worker.step()
        self._reap()

    def disrupt(self, event: str, pick: int) -> None:
        """Something happens to a running invocation:
        - deadline: its budget runs out; it stops after the page in hand and returns a cursor;
        - crash: the Lambda dies where it is (nothing after that point happens);
        - retry: Step Functions retries "Copy segment" (Lambda.ServiceException) while the
          invocation still runs: a second one starts from the same, older cursor and the first
          keeps going as a straggler whose result nobody reads."""
        running = self._running()
        if event == "deadline" and self._live():
            live = self._live()
            live[pick % len(live)].expire()
            self._reap()
            return
        if not running:
            return
        segment, inv = running[pick % len(running)]
        if event == "crash":
            inv.kill()
            assert isinstance(inv.error, Killed | RuntimeFailure), inv.error
            self.current[segment] = None
        elif self.stragglers:
            self.straggling.append(inv)
            self.current[segment] = self.m.invoke(segment, inv.cursor)
            self._reap()

    def _reap(self) -> None:
        """Take the results of invocations that returned (the state machine's view)."""
        for segment, inv in list(self.current.items()):
            if inv is None or not inv.finished:
                continue
            if inv.error is not None:
                raise AssertionError(f"{inv!r} failed: {inv.error!r}") from inv.error
            assert inv.result is not None
            self.current[segment] = None
            self.next_cursor[segment] = inv.result.cursor
            if inv.result.done:
                self.done.add(segment)
        for inv in list(self.straggling):
            if inv.finished:
                # A straggler's result is dropped; refusing to go on (a fence) is fine.
                if inv.error is not None and not isinstance(inv.error, RuntimeFailure):
                    raise AssertionError(f"straggler {inv!r} failed: {inv.error!r}")
                self.straggling.remove(inv)

    def finish(self) -> None:
        """ "Finish backfill", once every segment reported done (stragglers may still run)."""
        if self.finished or len(self.done) < len(self.current):
            return
        self.m.finish(self._live())
        self.finished = True
        self.finished_at = self.step_no
        self._reap()

    # --- replication -------------------------------------------------------------------------

    def replicate(self, batch: int) -> None:
        """The replicator applies the next `batch` stream records; 0: the last batch is
        delivered again (its success was not recorded)."""
        if batch:
            if self.m.replicate(batch) is not None:
                self.replicated_at = self.step_no
        else:
            self.m.redeliver()

    # --- the schedule: one weighted rule -----------------------------------------------------

    @rule(action=ACTIONS)
    def act(self, action: tuple[Any, ...]) -> None:
        """Hypothesis picks rules about uniformly (and swarm testing switches whole rules off
        for an example), which left the backfill a few steps per schedule: one rule whose
        action is drawn with weights (`ACTIONS`) keeps page reads and writes frequent."""
        kind, *args = action
        self.step_no += 1
        getattr(self, kind)(*args)

    # --- the end of a schedule ---------------------------------------------------------------

    def settle(self) -> None:
        """The end of a schedule, in the order most hostile to stale backfill writes:
        1. the replicator catches up with the stream (every pending record applied);
        2. stragglers run to their end (after "Finish backfill" when the schedule did it);
        3. every segment runs to its end (invoked again as long as it returns a cursor);
        4. "Finish backfill", if the schedule did not; the stream is drained again."""
        self.m.drain()
        for inv in list(self.straggling):
            inv.run_out()
        self._reap()
        for segment in sorted(self.current):
            for _ in range(100):
                inv = self.current[segment]
                if inv is None:
                    if segment in self.done:
                        break
                    inv = self.current[segment] = self.m.invoke(segment, self.next_cursor[segment])
                inv.run_out()
                self._reap()
            assert segment in self.done, f"segment {segment} never finished"
        if not self.finished:
            self.m.finish(self._live())
            self.finished = True
        self.m.drain()

    def teardown(self) -> None:
        if self.mig is None:
            return
        # Targeted search: Hypothesis climbs towards schedules with more hazards (the replayed
        # regression schedules run outside a Hypothesis test).
        if currently_in_test_context():
            stale = float(self.hazards["stale"])
            target(stale, label="pages written over a newer replicated change")
            target(float(self.hazards["late"]), label="pages written after Finish backfill")
        try:
            self.settle()
            problems = self.m.differences()
            assert not problems, f"target does not converge to the source: {problems}"
        finally:
            for inv in self._live():
                if not inv.finished:
                    inv.kill()


@pytest.fixture(scope="module")
def model_env(endpoint: str) -> Iterator[Env]:
    yield Env.create(endpoint)


def machine(env: Env, *, versioned: bool, stragglers: bool) -> type[MigrationModel]:
    return type(
        "MigrationModel",
        (MigrationModel,),
        {"env": env, "versioned": versioned, "stragglers": stragglers},
    )


def run(env: Env, *, versioned: bool, stragglers: bool) -> None:
    run_state_machine_as_test(
        machine(env, versioned=versioned, stragglers=stragglers),
        settings=settings.get_profile(PROFILE),
    )


# --- the search: four variants ---------------------------------------------------------------


def test_schedules_plain(model_env: Env) -> None:
    """No version attribute, no straggling invocation."""
    run(model_env, versioned=False, stragglers=False)


def test_schedules_versioned(model_env: Env) -> None:
    """With a version attribute, no straggling invocation."""
    run(model_env, versioned=True, stragglers=False)


def test_schedules_plain_with_stragglers(model_env: Env) -> None:
    run(model_env, versioned=False, stragglers=True)


def test_schedules_versioned_with_stragglers(model_env: Env) -> None:
    run(model_env, versioned=True, stragglers=True)


# --- regressions: schedules the search found, replayed step by step --------------------------


def replay(env: Env, *, versioned: bool, stragglers: bool) -> MigrationModel:
    """A fresh machine whose rules the caller calls in order (then `teardown` checks)."""
    return machine(env, versioned=versioned, stragglers=stragglers)()


def test_recreated_item_is_not_replaced_by_a_stale_backfill_image(model_env: Env) -> None:
    state = replay(model_env, versioned=True, stragglers=False)
    state.setup(initial={"k0": 2}, segments=1, page_size=1)
    state.backfill(0)  # invoke "Copy segment"
    state.backfill(0)  # read the page: k0 at v2
    state.change("recreate", 0)  # delete k0, put k0 at v1
    state.replicate(2)  # REMOVE -> tombstone, INSERT v1 over the tombstone
    state.backfill(0)  # write it: v2 over v1 (1 < 2)
    state.teardown()


def test_straggler_after_finish_does_not_resurrect_a_delete(model_env: Env) -> None:
    state = replay(model_env, versioned=False, stragglers=True)
    state.setup(initial={"k0": 1}, segments=1, page_size=1)
    state.backfill(0)  # invoke "Copy segment"
    state.backfill(0)  # read the page: k0
    state.disrupt("retry", 0)  # Step Functions retries: the first invocation straggles
    state.backfill(0)  # the retry reads k0
    state.backfill(0)  # ... writes it: the segment is done
    state.finish()  # "Finish backfill": plain deletes from now on
    state.change("delete", 0)  # the source deletes k0
    state.replicate(1)  # the target deletes k0
    state.backfill(0)  # the straggler writes the page it read: k0 is back
    state.teardown()
