"""`SyncEngine`: the whole comparison of a master with its slaves, as `dynashift sync` runs it.

A parallel scan of the master, a BatchGetItem on each slave per page (`diff`), optional repair
(`repair`), then (with `scan_for_extra` / `delete_extra`) a parallel scan of each slave checking
the master for the keys it finds. It logs a resumable `--starting-key` (`starting_key`) as it
goes and returns a `SyncReport` (`report`).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    EndpointConnectionError,
    NoCredentialsError,
)

from dynashift.aws import error_code
from dynashift.clock import SYSTEM_CLOCK, Clock
from dynashift.errors import (
    BadInputError,
    DynashiftError,
    EndpointUnreachableError,
    IncompatibleSchemaError,
    RuntimeFailure,
)
from dynashift.items import TOMBSTONE_ATTR, Item, is_tombstone, key_id, key_of
from dynashift.models import PROCESS_CLIENTS, Clients, TableLocation
from dynashift.progress import NullProgress, Progress
from dynashift.retry import Backoff
from dynashift.sync.diff import ItemDiffer, PageDiff, diff_page, find_extra, lookup_keys
from dynashift.sync.options import SyncOptions
from dynashift.sync.repair import RepairOutcome, repair_keys
from dynashift.sync.report import SlaveReport, SyncReport
from dynashift.sync.starting_key import DONE, SegmentStart, resolve_starting_key, resume_token
from dynashift.tables import (
    BatchStats,
    describe_table,
    key_schema_text,
    same_key_schema,
    scan_pages,
    table_keys,
)

log = logging.getLogger("dynashift.sync")

#: How many keys per slave and kind are logged at INFO (the rest at DEBUG).
LOGGED_KEYS = 20
#: How many keys per slave and kind the report keeps as examples.
SAMPLE_KEYS = 10


ProgressFactory = Callable[[str, int | None], Progress]


def _null_progress(label: str, total: int | None) -> Progress:
    return NullProgress(label, total)


# --- the engine ------------------------------------------------------------------------------


@dataclass
class _Table:
    location: TableLocation
    client: Any
    display: str
    description: dict[str, Any]


class _Aborted(Exception):
    """Another segment failed: stop quietly."""


class SyncEngine:
    """Compares a master table with its slaves and optionally repairs them.

    `client_for(location)` returns the DynamoDB client of a table (default: from `clients`'
    factory of its side, pool sized to the parallelism); `progress(label, total)` makes
    a progress reporter; `clock` is injectable so tests never wait.
    """

    def __init__(
        self,
        master: TableLocation,
        slaves: Sequence[TableLocation],
        options: SyncOptions | None = None,
        *,
        differ: ItemDiffer | None = None,
        progress: ProgressFactory | None = None,
        client_for: Callable[[TableLocation], Any] | None = None,
        clients: Clients = PROCESS_CLIENTS,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        self.options = options or SyncOptions()
        self.master_location = master
        self.slave_locations = list(slaves)
        self.differ = differ or ItemDiffer(self.options.ignore, self.options.ignore_legacy)
        self.progress_factory = progress or _null_progress
        self.clock = clock
        self._client_for = client_for
        self._clients = clients
        self._lock = threading.Lock()
        self._abort = threading.Event()
        self._cursors: list[SegmentStart] = []
        self._last_resume_log = 0.0
        self._stats = BatchStats()
        self.master: _Table | None = None
        self.slaves: list[_Table] = []
        self.report: SyncReport | None = None

    # -- setup --

    def _client(self, location: TableLocation, pool: int) -> Any:
        if self._client_for is not None:
            return self._client_for(location)
        return self._clients(location, pool).dynamodb()

    def _backoff(self) -> Backoff:
        return Backoff(clock=self.clock)

    def prepare(self) -> SyncReport:
        """Validate everything before the first read of items or write: slaves given and
        distinct, every table exists, every slave shares the master's key schema, the starting
        key fits. Raises BadInputError subclasses (exit 2)."""
        if not self.slave_locations:
            raise BadInputError("--slave: at least one slave table is required")
        starting = self.options.starting_key
        pool = self.options.parallel or (len(starting) if isinstance(starting, list) else 1)
        self.master = self._describe(self.master_location, "master", pool)
        seen = {self._identity(self.master_location): "master"}
        for loc in self.slave_locations:
            ident = self._identity(loc)
            if ident in seen:
                raise BadInputError(
                    f"--slave: {loc.display()} is the same table as the {seen[ident]}"
                )
            seen[ident] = "slave"
        self.slaves = [self._describe(loc, "slave", pool) for loc in self.slave_locations]
        for slave in self.slaves:
            if not same_key_schema(self.master.description, slave.description):
                raise IncompatibleSchemaError(
                    f"slave {slave.display} key schema "
                    f"({key_schema_text(slave.description)}) differs from master "
                    f"{self.master.display} ({key_schema_text(self.master.description)})"
                )
        self._cursors = resolve_starting_key(
            self.options.starting_key, self.master.description, self.options.parallel
        )
        self.report = SyncReport(
            master=self.master.display,
            slaves={s.display: SlaveReport(extra_scanned=False) for s in self.slaves},
            dry_run=self.options.dry_run,
            parallel=len(self._cursors),
        )
        return self.report

    @staticmethod
    def _identity(loc: TableLocation) -> tuple[Any, ...]:
        side = loc.side
        return (loc.name, side.region, side.endpoint_url, side.profile, side.role_arn)

    def _describe(self, loc: TableLocation, what: str, pool: int) -> _Table:
        try:
            client = self._client(loc, pool)
            description = describe_table(client, loc.name, what)
        except ClientError as exc:
            raise RuntimeFailure(
                f"cannot describe {what} table {loc.name!r}: {error_code(exc) or exc}"
            ) from exc
        except NoCredentialsError as exc:
            raise BadInputError(
                f"no AWS credentials found for the {what} table {loc.name!r} (configure them, "
                "or give a profile / role)"
            ) from exc
        except BotoCoreError as exc:
            raise RuntimeFailure(f"cannot describe {what} table {loc.name!r}: {exc}") from exc
        region = loc.side.region or getattr(getattr(client, "meta", None), "region_name", None)
        display = f"{region}:{loc.name}" if region else loc.name
        return _Table(loc, client, display, description)

    # -- run --

    def run(self) -> SyncReport:
        """Prepare (if not done), compare, repair as asked; return the report.

        Bad input raises (exit 2) before anything is read or written. A runtime failure after
        retries raises RuntimeFailure with the resume key logged and kept in `self.report`.
        """
        report = self.report or self.prepare()
        assert self.master is not None
        if report.complete or report.error is not None:
            raise RuntimeError("a SyncEngine runs once; make a new one (with the resume key)")
        started = self.clock.monotonic()
        try:
            self._master_phase()
            if self.options.scan_slaves:
                for slave in self.slaves:
                    self._extra_phase(slave)
            report.complete = True
        except (KeyboardInterrupt, DynashiftError, ClientError, BotoCoreError) as exc:
            self._abort.set()
            report.resume = None if self._master_done() else resume_token(self._cursors)
            report.error = str(exc) or type(exc).__name__
            if report.resume:
                log.error(
                    "sync of %s stopped; resume the master scan with --parallel %d "
                    "--starting-key '%s'",
                    self.master.display,
                    len(self._cursors),
                    report.resume,
                )
            if isinstance(exc, EndpointConnectionError):
                raise EndpointUnreachableError(f"cannot reach an endpoint: {exc}") from exc
            if isinstance(exc, ClientError | BotoCoreError):
                raise RuntimeFailure(f"sync failed: {error_code(exc) or exc}") from exc
            raise
        finally:
            report.elapsed_seconds = self.clock.monotonic() - started
            report.unprocessed_keys = self._stats.unprocessed
        return report

    def _master_done(self) -> bool:
        return all(c == DONE for c in self._cursors)

    def _run_segments(self, count: int, work: Callable[[int], None]) -> None:
        if count == 1:
            work(0)
            return
        with ThreadPoolExecutor(max_workers=count, thread_name_prefix="sync") as pool:
            futures = [pool.submit(work, i) for i in range(count)]
            try:
                done, _ = wait(futures, return_when=FIRST_EXCEPTION)
            except BaseException:
                self._abort.set()
                raise
            for f in done:
                exc = f.exception()
                if exc is not None and not isinstance(exc, _Aborted):
                    self._abort.set()
                    raise exc
            for f in futures:
                exc = f.exception()  # waits for the rest
                if exc is not None and not isinstance(exc, _Aborted):
                    raise exc

    def _master_phase(self) -> None:
        assert self.master is not None and self.report is not None
        total = self.master.description.get("ItemCount")
        progress = self.progress_factory(f"scan {self.master.display}", total)
        todo = sum(1 for c in self._cursors if c != DONE)
        log.info(
            "comparing %s with %s (%d segment%s%s)",
            self.master.display,
            ", ".join(s.display for s in self.slaves),
            len(self._cursors),
            "s" if len(self._cursors) != 1 else "",
            f", {todo} to resume" if self.options.starting_key is not None else "",
        )
        try:
            self._run_segments(len(self._cursors), lambda i: self._master_segment(i, progress))
        finally:
            progress.close()

    def _master_segment(self, segment: int, progress: Progress) -> None:
        assert self.master is not None and self.report is not None
        start = self._cursors[segment]
        if start == DONE or isinstance(start, str):
            return
        names = table_keys(self.master.description)
        backoff = self._backoff()
        pages = scan_pages(
            self.master.client,
            self.master.location.name,
            segment=segment,
            total_segments=len(self._cursors),
            start_key=start,
            limit=self.options.scan_limit,
            backoff=backoff,
        )
        for page in pages:
            if self._abort.is_set():
                raise _Aborted
            if page.items:
                self._compare_page(page.items, names, backoff)
            with self._lock:
                self.report.scanned += len(page.items)
                cursor: SegmentStart = page.cursor if page.cursor else DONE
                self._cursors[segment] = cursor
            progress.advance(len(page.items))
            self._maybe_log_resume()
        if len(self._cursors) > 1:
            log.info("segment %d of %d finished", segment, len(self._cursors))

    def _compare_page(self, items: list[Item], names: Sequence[str], backoff: Backoff) -> None:
        by_id = {key_id(key_of(i, names)): i for i in items if not is_tombstone(i)}
        keys = [key_of(i, names) for i in by_id.values()]
        opts = self.options
        master = self.master
        assert master is not None
        for slave in self.slaves:
            stats = BatchStats()
            found = lookup_keys(
                slave.client,
                slave.location.name,
                keys,
                chunk=opts.batch_read_limit,
                consistent=opts.consistent_reads,
                stats=stats,
                backoff=backoff,
            )
            diff = diff_page(items, found, names, self.differ)
            to_write: list[Item] = []
            if opts.write_missing:
                to_write += diff.missing
            if opts.write_differing:
                to_write += diff.differing
            repaired = RepairOutcome()
            if to_write:
                found_by_id = {key_id(key_of(i, names)): i for i in found}
                repaired = repair_keys(
                    master.client,
                    master.location.name,
                    slave.client,
                    slave.location.name,
                    to_write,
                    names=names,
                    differ=self.differ,
                    seen={key_id(k): found_by_id.get(key_id(k)) for k in to_write},
                    chunk=opts.batch_read_limit,
                    stats=stats,
                    backoff=backoff,
                )
            self._record(
                slave,
                diff,
                stats,
                repaired,
                master_by_id=by_id,
                slave_items=found,
                names=names,
            )

    def _record(
        self,
        slave: _Table,
        diff: PageDiff,
        stats: BatchStats,
        repaired: RepairOutcome,
        *,
        master_by_id: Mapping[str, Item],
        slave_items: Sequence[Item],
        names: Sequence[str],
    ) -> None:
        assert self.report is not None
        with self._lock:
            rep = self.report.slaves[slave.display]
            self._stats.unprocessed += stats.unprocessed
            self._stats.retries += stats.retries
            for kind, keys in (("missing", diff.missing), ("differing", diff.differing)):
                for k in keys:
                    count = getattr(rep, kind)
                    level = logging.INFO if count < LOGGED_KEYS else logging.DEBUG
                    if count < SAMPLE_KEYS:
                        rep.samples[kind].append(k)
                    if log.isEnabledFor(level):
                        detail = ""
                        if kind == "differing":
                            detail = self._diff_detail(k, master_by_id, slave_items, names)
                        log.log(level, "%s %s: %s%s", kind, slave.display, key_id(k), detail)
                    setattr(rep, kind, count + 1)
            rep.same += diff.same
            written = {key_id(k) for k in repaired.written}
            rep.wrote_missing += sum(1 for k in diff.missing if key_id(k) in written)
            rep.wrote_differing += sum(1 for k in diff.differing if key_id(k) in written)
            self._count_skipped(slave, rep, repaired)

    @staticmethod
    def _count_skipped(slave: _Table, rep: SlaveReport, repaired: RepairOutcome) -> None:
        """Count (and log, by key only) repairs skipped because an item changed since read."""
        for k in repaired.skipped:
            level = logging.INFO if rep.skipped_changed < LOGGED_KEYS else logging.DEBUG
            log.log(level, "skipped (changed since read) %s: %s", slave.display, key_id(k))
            if rep.skipped_changed < SAMPLE_KEYS:
                rep.samples["skipped"].append(k)
            rep.skipped_changed += 1
        rep.unconditional += repaired.unconditional

    def _diff_detail(
        self,
        key: Item,
        master_by_id: Mapping[str, Item],
        slave_items: Sequence[Item],
        names: Sequence[str],
    ) -> str:
        """` (attributes: a, b)` — names only, never values."""
        kid = key_id(key)
        slave = next((s for s in slave_items if key_id(key_of(s, names)) == kid), None)
        if slave is None:
            return ""
        attrs = self.differ.differing_attributes(master_by_id[kid], slave)
        return f" (attributes: {', '.join(attrs)})" if attrs else ""

    def _maybe_log_resume(self) -> None:
        now = self.clock.monotonic()
        with self._lock:
            if now - self._last_resume_log < self.options.log_every or self._master_done():
                return
            self._last_resume_log = now
            token = resume_token(self._cursors)
        log.info("resumable: --parallel %d --starting-key '%s'", len(self._cursors), token)

    def _extra_phase(self, slave: _Table) -> None:
        assert self.master is not None and self.report is not None
        names = table_keys(self.master.description)
        segments = max(1, len(self._cursors))
        rep = self.report.slaves[slave.display]
        progress = self.progress_factory(
            f"scan {slave.display} for extra", slave.description.get("ItemCount")
        )
        projection = [*names, TOMBSTONE_ATTR]
        placeholders = {f"#k{i}": n for i, n in enumerate(projection)}
        scan_extra = {
            "ProjectionExpression": ", ".join(placeholders),
            "ExpressionAttributeNames": placeholders,
        }
        log.info("scanning %s for items absent from %s", slave.display, self.master.display)

        def work(segment: int) -> None:
            assert self.master is not None
            backoff = self._backoff()
            for page in scan_pages(
                slave.client,
                slave.location.name,
                segment=segment,
                total_segments=segments,
                limit=self.options.scan_limit,
                backoff=backoff,
                extra=scan_extra,
            ):
                if self._abort.is_set():
                    raise _Aborted
                keys = [key_of(i, names) for i in page.items if not is_tombstone(i)]
                stats = BatchStats()
                found = lookup_keys(
                    self.master.client,
                    self.master.location.name,
                    keys,
                    chunk=self.options.batch_read_limit,
                    consistent=True,
                    stats=stats,
                    projection=projection,
                    backoff=backoff,
                )
                extra = find_extra(keys, found, names)
                repaired = RepairOutcome()
                if extra and self.options.delete_extra:
                    repaired = repair_keys(
                        self.master.client,
                        self.master.location.name,
                        slave.client,
                        slave.location.name,
                        extra,
                        names=names,
                        differ=self.differ,
                        allow_put=False,
                        allow_delete=True,
                        chunk=self.options.batch_read_limit,
                        stats=stats,
                        backoff=backoff,
                    )
                with self._lock:
                    self._stats.unprocessed += stats.unprocessed
                    for k in extra:
                        level = logging.INFO if rep.extra < LOGGED_KEYS else logging.DEBUG
                        log.log(level, "extra %s: %s", slave.display, key_id(k))
                        if rep.extra < SAMPLE_KEYS:
                            rep.samples["extra"].append(k)
                        rep.extra += 1
                    rep.deleted_extra += len(repaired.deleted)
                    self._count_skipped(slave, rep, repaired)
                    rep.slave_scanned += len(page.items)
                progress.advance(len(page.items))

        try:
            self._run_segments(segments, work)
        finally:
            progress.close()
        rep.extra_scanned = True
