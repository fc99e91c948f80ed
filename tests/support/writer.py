"""A concurrent writer for tests: random puts, updates, deletes and re-creates at a chosen rate.

    with ConcurrentWriter(ddb, "src", ("pk",), seed=7, rate_per_s=200, key_space=300) as w:
        w.wait_for(50, timeout=10)      # let some writes land first
        ... run the migration ...
    # leaving the block stops the writer (and re-raises anything unexpected it hit)
    print(w.counts, w.failures)

The operation sequence (kind, key, contents, versions) is a pure function of the seed: `plan(n)`
returns the first n operations without touching any table. Timing may vary between runs.
Every operation is recorded (`ops`: kind, key, monotonic start time, ok, error); a failed
request is recorded, never raised. The writer is bounded by `max_ops` and `max_seconds` and
never runs forever.

Items carry every attribute type (S, N, B, BOOL, NULL, L, M, SS, NS, BS), with a random
subset of attributes per write so overwrites also remove attributes. With
`version_attribute`, every put / update / re-create writes a version one higher than the
previous write of that key (counters never go back, also across deletes).

The writer keeps a model of what the table should hold (`expected_items()`), exact as long
as every request succeeded (`uncertain_keys` lists keys whose last request failed). It is a
check of the writer itself; migration tests compare the source with the target instead.

Deliberately independent of the `dynashift` package.
"""

from __future__ import annotations

import random
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import islice
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

Item = dict[str, Any]
ItemFactory = Callable[[random.Random], Item]
OPERATIONS = ("put", "update", "delete", "recreate")
_WORDS = ("alpha", "bravo", "charlie", "delta", "echo", "fox", "golf", "hotel", "india", "juliet")


@dataclass(frozen=True)
class PlannedOp:
    """One operation of the seed's sequence, before it is executed."""

    seq: int
    op: str
    key_index: int
    key: Item
    #: put / recreate: the non-key attributes written; update: the attributes SET.
    attributes: Item = field(default_factory=dict)
    #: update: attribute names REMOVEd.
    remove: tuple[str, ...] = ()
    version: int | None = None


@dataclass
class WriteOp:
    """What the writer did: one record per executed operation."""

    seq: int
    op: str
    key: Item
    started: float
    ok: bool
    error: str | None = None
    version: int | None = None


def _resolve_keys(
    keys: Sequence[str] | Sequence[Mapping[str, str]] | Mapping[str, Any],
    key_types: Mapping[str, str] | None,
) -> tuple[tuple[str, ...], dict[str, str]]:
    """Key names (partition first) and their types from names, a KeySchema or a description."""
    types: dict[str, str] = {}
    if isinstance(keys, Mapping):
        schema = keys["KeySchema"]
        types = {a["AttributeName"]: a["AttributeType"] for a in keys["AttributeDefinitions"]}
    elif keys and isinstance(keys[0], Mapping):
        schema = keys
    else:
        schema = [
            {"AttributeName": str(n), "KeyType": "HASH" if i == 0 else "RANGE"}
            for i, n in enumerate(keys)
        ]
    ordered = sorted(schema, key=lambda k: k["KeyType"] != "HASH")  # type: ignore[index]
    names = tuple(str(k["AttributeName"]) for k in ordered)  # type: ignore[index]
    if not 1 <= len(names) <= 2:
        raise ValueError(f"a key has one or two attributes, not {names}")
    resolved = {n: (key_types or {}).get(n) or types.get(n, "S") for n in names}
    for name, kind in resolved.items():
        if kind not in ("S", "N", "B"):
            raise ValueError(f"key attribute {name!r}: type {kind!r} is not S, N or B")
    return names, resolved


def _key_value(n: int, kind: str) -> dict[str, Any]:
    if kind == "N":
        return {"N": str(n)}
    if kind == "B":
        return {"B": f"k{n:05d}".encode()}
    return {"S": f"k{n:05d}"}


def default_item(rng: random.Random, payload_bytes: int = 0) -> Item:
    """Non-key attributes covering every DynamoDB type; a random subset of them each time."""
    word = rng.choice(_WORDS)
    candidates: dict[str, Any] = {
        "s": {"S": f"{word}-{rng.randrange(10**6)}"},
        "n": {"N": rng.choice([str(rng.randint(-(10**6), 10**6)), f"{rng.randrange(10**4)}.25"])},
        "b": {"B": rng.randbytes(rng.randint(1, 16))},
        "flag": {"BOOL": rng.random() < 0.5},
        "nothing": {"NULL": True},
        "list": {
            "L": [
                {"S": word},
                {"N": str(rng.randrange(100))},
                {"M": {"inner": {"BOOL": True}, "blob": {"B": rng.randbytes(3)}}},
            ]
        },
        "map": {
            "M": {
                "name": {"S": word},
                "count": {"N": str(rng.randrange(1000))},
                "nested": {"L": [{"NULL": True}, {"SS": [word, word + "!"]}]},
            }
        },
        "tags": {"SS": sorted({rng.choice(_WORDS) for _ in range(rng.randint(1, 4))})},
        "nums": {"NS": sorted({str(rng.randrange(-50, 50)) for _ in range(rng.randint(1, 4))})},
        "blobs": {"BS": sorted({rng.randbytes(4) for _ in range(rng.randint(1, 3))})},
    }
    item = {name: value for name, value in candidates.items() if rng.random() < 0.7}
    item["s"] = candidates["s"]  # never an item with only its key
    if payload_bytes:
        item["payload"] = {"S": "x" * payload_bytes}
    return item


class ConcurrentWriter:
    """Writes to one table from a background thread; see the module docstring."""

    def __init__(
        self,
        client: Any,
        table: str,
        keys: Sequence[str] | Sequence[Mapping[str, str]] | Mapping[str, Any],
        *,
        seed: int = 0,
        rate_per_s: float = 100.0,
        key_space: int = 200,
        operations: Sequence[str] = OPERATIONS,
        weights: Sequence[float] | None = None,
        item_factory: ItemFactory | None = None,
        version_attribute: str | None = None,
        key_types: Mapping[str, str] | None = None,
        max_ops: int = 5_000,
        max_seconds: float = 60.0,
        payload_bytes: int = 0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        unknown = set(operations) - set(OPERATIONS)
        if unknown or not operations:
            raise ValueError(f"operations must be a non-empty subset of {OPERATIONS}")
        if key_space < 1 or max_ops < 0 or max_seconds <= 0:
            raise ValueError("key_space >= 1, max_ops >= 0 and max_seconds > 0 are required")
        self.client = client
        self.table = table
        self.key_names, self.key_types = _resolve_keys(keys, key_types)
        self.seed = seed
        self.rate_per_s = rate_per_s
        self.key_space = key_space
        self.operations = tuple(operations)
        self.weights = tuple(weights) if weights else None
        self.item_factory: ItemFactory = item_factory or (
            lambda rng: default_item(rng, payload_bytes)
        )
        self.version_attribute = version_attribute
        self.max_ops = max_ops
        self.max_seconds = max_seconds
        self.clock = clock

        self.ops: list[WriteOp] = []
        self.counts: Counter[str] = Counter()
        self.failures: Counter[str] = Counter()
        self.uncertain_keys: set[int] = set()
        self._model: dict[int, Item] = {}
        self._lock = threading.Lock()
        self._done = threading.Condition(self._lock)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._crash: BaseException | None = None
        self.started_at: float | None = None
        self.stopped_at: float | None = None

    # --- the plan (pure function of the seed) -----------------------------------------------

    def key_for(self, index: int) -> Item:
        if len(self.key_names) == 1:
            name = self.key_names[0]
            return {name: _key_value(index, self.key_types[name])}
        pk, sk = self.key_names
        return {
            pk: _key_value(index // 4, self.key_types[pk]),
            sk: _key_value(index % 4, self.key_types[sk]),
        }

    def _specs(self) -> Iterator[PlannedOp]:
        rng = random.Random(self.seed)
        versions: dict[int, int] = {}
        seq = 0
        while True:
            op = rng.choices(self.operations, weights=self.weights)[0]
            index = rng.randrange(self.key_space)
            version: int | None = None
            attributes: Item = {}
            remove: tuple[str, ...] = ()
            if op != "delete":
                attributes = self.item_factory(rng)
                if op == "update":
                    names = sorted(attributes)
                    chosen = rng.sample(names, k=min(len(names), rng.randint(1, 3)))
                    attributes = {n: attributes[n] for n in chosen}
                    others = [n for n in ("b", "list", "tags", "nothing") if n not in attributes]
                    if others and rng.random() < 0.3:
                        remove = (rng.choice(others),)
                if self.version_attribute:
                    version = versions.get(index, 0) + 1
                    versions[index] = version
                    attributes[self.version_attribute] = {"N": str(version)}
            yield PlannedOp(seq, op, index, self.key_for(index), attributes, remove, version)
            seq += 1

    def plan(self, n: int) -> list[PlannedOp]:
        """The first `n` operations this writer performs for its seed (nothing is written)."""
        return list(islice(self._specs(), n))

    # --- execution --------------------------------------------------------------------------

    def _put(self, spec: PlannedOp) -> None:
        self.client.put_item(TableName=self.table, Item={**spec.attributes, **spec.key})

    def _delete(self, spec: PlannedOp) -> None:
        self.client.delete_item(TableName=self.table, Key=spec.key)

    def _update(self, spec: PlannedOp) -> None:
        names: dict[str, str] = {}
        values: dict[str, Any] = {}
        sets = []
        for i, (name, value) in enumerate(sorted(spec.attributes.items())):
            names[f"#s{i}"] = name
            values[f":s{i}"] = value
            sets.append(f"#s{i} = :s{i}")
        expression = "SET " + ", ".join(sets)
        if spec.remove:
            for i, name in enumerate(spec.remove):
                names[f"#r{i}"] = name
            expression += " REMOVE " + ", ".join(f"#r{i}" for i in range(len(spec.remove)))
        self.client.update_item(
            TableName=self.table,
            Key=spec.key,
            UpdateExpression=expression,
            ExpressionAttributeNames=names,
            ExpressionAttributeValues=values,
        )

    def _apply_model(self, spec: PlannedOp) -> None:
        if spec.op == "delete":
            self._model.pop(spec.key_index, None)
        elif spec.op in ("put", "recreate"):
            self._model[spec.key_index] = {**spec.attributes, **spec.key}
        else:
            item = dict(self._model.get(spec.key_index, spec.key))
            item.update(spec.attributes)
            for name in spec.remove:
                item.pop(name, None)
            self._model[spec.key_index] = item

    def execute(self, spec: PlannedOp) -> WriteOp:
        """Perform one planned operation now (also used by the background thread)."""
        started = self.clock()
        error: str | None = None
        try:
            if spec.op == "put":
                self._put(spec)
            elif spec.op == "update":
                self._update(spec)
            elif spec.op == "delete":
                self._delete(spec)
            else:
                self._delete(spec)
                self._put(spec)
        except (ClientError, BotoCoreError) as exc:
            error = f"{type(exc).__name__}: {exc}"
        record = WriteOp(spec.seq, spec.op, spec.key, started, error is None, error, spec.version)
        with self._done:
            self.ops.append(record)
            self.counts[spec.op] += 1
            if error is None:
                self._apply_model(spec)
                self.uncertain_keys.discard(spec.key_index)
            else:
                self.failures[spec.op] += 1
                self.uncertain_keys.add(spec.key_index)
            self._done.notify_all()
        return record

    def _run(self) -> None:
        try:
            start = self.clock()
            deadline = start + self.max_seconds
            for spec in self._specs():
                if spec.seq >= self.max_ops or self._stop.is_set() or self.clock() >= deadline:
                    break
                if self.rate_per_s > 0:
                    wait = start + spec.seq / self.rate_per_s - self.clock()
                    if wait > 0 and self._stop.wait(min(wait, deadline - self.clock())):
                        break
                self.execute(spec)
        except BaseException as exc:  # re-raised in the test's thread by stop()
            self._crash = exc
        finally:
            self.stopped_at = self.clock()
            with self._done:
                self._done.notify_all()

    def start(self) -> ConcurrentWriter:
        if self._thread is not None:
            raise RuntimeError("a ConcurrentWriter runs once")
        self.started_at = self.clock()
        self._thread = threading.Thread(target=self._run, name="concurrent-writer", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float = 30.0) -> ConcurrentWriter:
        """Stop and wait for the thread; re-raise anything unexpected it hit."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            if self._thread.is_alive():
                raise RuntimeError(f"writer thread did not stop within {timeout}s")
        if self._crash is not None:
            raise RuntimeError("the concurrent writer crashed") from self._crash
        return self

    def join(self, timeout: float) -> ConcurrentWriter:
        """Wait for the writer to finish on its own (max_ops or max_seconds reached)."""
        if self._thread is not None:
            self._thread.join(timeout)
            if self._thread.is_alive():
                raise TimeoutError(f"writer still running after {timeout}s")
        return self.stop()

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def wait_for(self, n: int, timeout: float) -> bool:
        """Block until at least `n` operations were executed (False on timeout or finish)."""
        deadline = self.clock() + timeout
        with self._done:
            while len(self.ops) < n:
                remaining = deadline - self.clock()
                if remaining <= 0 or (self._thread is not None and not self._thread.is_alive()):
                    return len(self.ops) >= n
                self._done.wait(min(remaining, 0.5))
            return True

    def __enter__(self) -> ConcurrentWriter:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- results ----------------------------------------------------------------------------

    @property
    def total(self) -> int:
        return len(self.ops)

    @property
    def succeeded(self) -> int:
        return sum(1 for op in self.ops if op.ok)

    def expected_items(self) -> list[Item]:
        """What the table holds after the writes, if it started empty (see uncertain_keys)."""
        with self._lock:
            return [dict(item) for _, item in sorted(self._model.items())]

    def touched_keys(self) -> list[Item]:
        """Every key the writer wrote or deleted, once each, in first-touch order."""
        seen: dict[str, Item] = {}
        for op in self.ops:
            seen.setdefault(repr(sorted(op.key.items())), op.key)
        return list(seen.values())

    def summary(self) -> dict[str, Any]:
        elapsed = (self.stopped_at or self.clock()) - (self.started_at or self.clock())
        return {
            "seed": self.seed,
            "ops": self.total,
            "ok": self.succeeded,
            "counts": dict(self.counts),
            "failures": dict(self.failures),
            "elapsed_s": round(elapsed, 3),
            "rate_per_s": round(self.total / elapsed, 1) if elapsed > 0 else None,
        }
