"""A fault-injecting HTTP proxy between a boto3 client and the moto server (real sockets).

    with FaultProxy(endpoint, seed=1, rules={"BatchWriteItem": FaultRule(unprocessed=0.5),
                                             "*": FaultRule(throttle=0.1)}) as proxy:
        client = boto3.client("dynamodb", endpoint_url=proxy.url, ...)
        ...
    proxy.counts           # Counter({("BatchWriteItem", "unprocessed"): 12, ...})
    proxy.totals()         # {"throttle": 9, "unprocessed": 12, ...}

The proxy listens on 127.0.0.1 only and forwards only to a loopback upstream. The operation of
a request is the part of its `X-Amz-Target` header after the dot (`BatchWriteItem`,
`GetRecords`, ...); a rule for that name applies, else the rule for "*", else none (requests
without the header, such as STS or moto's own API, are always forwarded untouched).

Faults, decided per request from a per-operation random source derived from the seed (the
same seed and the same per-operation request order give the same faults):

- `throttle`: answer HTTP 400 with a ProvisionedThroughputExceededException body, without
  forwarding (nothing is written).
- `unprocessed` (BatchWriteItem / BatchGetItem): forward a reduced request and return the
  withheld requests / keys as UnprocessedItems / UnprocessedKeys, merged with whatever the
  upstream left unprocessed. At least one request is always forwarded, so a retry loop
  always makes progress; nothing is silently dropped.
- `reset_before`: close the connection with a TCP reset without forwarding.
- `reset_after`: forward (the write happens), then reset instead of answering.
- `slow`: wait `slow_seconds` (at most 10 s) before forwarding.
- `deny(op, body)` (not random): answer AccessDeniedException without forwarding;
  `before_forward(op, body)` runs before a request is forwarded.

`fault_filter(op, body)` narrows which requests may be faulted. Bounded: after
`max_consecutive` faulted requests of one operation the next one passes clean,
and `max_faults` caps the total; `enabled = False` pauses all faults.
"""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import ipaddress
import json
import random
import socket
import struct
import threading
import time
import zlib
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

BATCH_OPS = ("BatchWriteItem", "BatchGetItem")
DENY_BODY = {
    "__type": "com.amazon.coral.service#AccessDeniedException",
    "message": "injected by the test: not authorized",
}
FAULTS = ("throttle", "unprocessed", "reset_before", "reset_after", "slow")
HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-connection",
        "transfer-encoding",
        "te",
        "trailer",
        "upgrade",
        "content-length",
        "host",
    }
)
THROTTLE_BODY = {
    "__type": "com.amazonaws.dynamodb.v20120810#ProvisionedThroughputExceededException",
    "message": "The level of configured provisioned throughput for the table was exceeded "
    "(injected by FaultProxy)",
}
MAX_SLOW_SECONDS = 10.0


@dataclass(frozen=True)
class FaultRule:
    """Probabilities (0..1) of each fault for one operation."""

    throttle: float = 0.0
    unprocessed: float = 0.0
    #: Share of a batch withheld when `unprocessed` fires (at least one entry is forwarded).
    unprocessed_share: float = 0.5
    reset_before: float = 0.0
    reset_after: float = 0.0
    slow: float = 0.0
    slow_seconds: float = 0.2

    def __post_init__(self) -> None:
        for name in (*FAULTS, "unprocessed_share"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"FaultRule.{name}={value} is not within 0..1")
        if not 0.0 <= self.slow_seconds <= MAX_SLOW_SECONDS:
            raise ValueError(f"slow_seconds must be within 0..{MAX_SLOW_SECONDS}")


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    proxy: FaultProxy


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    timeout = 300  # an idle kept-alive client connection is closed after this
    server: _Server
    _upstream: http.client.HTTPConnection | None = None

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        return

    # --- plumbing ---------------------------------------------------------------------------

    def _forward(self, body: bytes) -> tuple[int, list[tuple[str, str]], bytes]:
        proxy = self.server.proxy
        headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP}
        headers["Content-Length"] = str(len(body))
        headers["Host"] = proxy.upstream_netloc
        for attempt in (1, 2):  # a kept-alive upstream connection may have been closed
            if self._upstream is None:
                self._upstream = http.client.HTTPConnection(
                    proxy.upstream_host, proxy.upstream_port, timeout=proxy.upstream_timeout
                )
            try:
                self._upstream.request(self.command, self.path, body=body, headers=headers)
                resp = self._upstream.getresponse()
                data = resp.read()
                return resp.status, resp.getheaders(), data
            except (ConnectionError, http.client.HTTPException, OSError):
                self._upstream.close()
                self._upstream = None
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def _reply(self, status: int, headers: list[tuple[str, str]], body: bytes) -> None:
        self.send_response(status)
        for name, value in headers:
            lower = name.lower()
            if lower == "x-amz-crc32":  # botocore checks it: recompute for an altered body
                self.send_header(name, str(zlib.crc32(body) & 0xFFFFFFFF))
            elif lower not in HOP_BY_HOP and lower not in ("server", "date"):
                self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
        self.wfile.flush()

    def _reset(self) -> None:
        """Abort the client's connection with a TCP RST and answer nothing."""
        try:
            self.wfile.flush()
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.connection.close()
        except OSError:
            pass
        self.close_connection = True

    def setup(self) -> None:
        super().setup()
        # Headers and body go out in two writes: without this, Nagle + delayed ACK add ~40 ms.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def finish(self) -> None:
        with contextlib.suppress(OSError):
            super().finish()

    # --- request handling -------------------------------------------------------------------

    def _handle(self) -> None:
        proxy = self.server.proxy
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        target = self.headers.get("X-Amz-Target", "")
        op = target.rsplit(".", 1)[-1] if target else ""
        if op and proxy.deny is not None and proxy.deny(op, body):
            with proxy._lock:
                proxy.counts[(op, "deny")] += 1
            data = json.dumps(DENY_BODY).encode()
            self._reply(400, [("Content-Type", "application/x-amz-json-1.0")], data)
            return
        fault = proxy._decide(op, body) if op else None

        if fault == "throttle":
            data = json.dumps(THROTTLE_BODY).encode()
            self._reply(400, [("Content-Type", "application/x-amz-json-1.0")], data)
            return
        if fault == "reset_before":
            self._reset()
            return
        if fault == "slow":
            time.sleep(proxy.rule_for(op).slow_seconds)

        if op and proxy.before_forward is not None:
            proxy.before_forward(op, body)
        withheld: dict[str, Any] | None = None
        if fault == "unprocessed":
            body, withheld = proxy._withhold(op, body)

        try:
            status, headers, data = self._forward(body)
        except (ConnectionError, http.client.HTTPException, OSError):
            self._reply(502, [("Content-Type", "text/plain")], b"upstream unreachable")
            return
        if fault == "reset_after":
            self._reset()
            return
        if withheld and status == 200:
            data = _merge_unprocessed(op, data, withheld)
        self._reply(status, headers, data)

    def do_POST(self) -> None:
        self._handle()

    def do_GET(self) -> None:
        self._handle()

    def do_PUT(self) -> None:
        self._handle()

    def do_DELETE(self) -> None:
        self._handle()

    def do_HEAD(self) -> None:  # S3's HeadBucket / HeadObject (no body either way)
        self._handle()


def _merge_unprocessed(op: str, data: bytes, withheld: dict[str, Any]) -> bytes:
    doc = json.loads(data or b"{}")
    field = "UnprocessedItems" if op == "BatchWriteItem" else "UnprocessedKeys"
    merged = doc.get(field) or {}
    for table, entry in withheld.items():
        if op == "BatchWriteItem":
            merged[table] = [*entry, *merged.get(table, [])]
        else:
            current = merged.get(table)
            if current:
                current["Keys"] = [*entry["Keys"], *current["Keys"]]
            else:
                merged[table] = entry
    doc[field] = merged
    return json.dumps(doc).encode()


class FaultProxy:
    """A threaded loopback proxy in front of `upstream_url`; see the module docstring."""

    def __init__(
        self,
        upstream_url: str,
        *,
        seed: int = 0,
        rules: Mapping[str, FaultRule] | None = None,
        max_consecutive: int = 3,
        max_faults: int = 100_000,
        upstream_timeout: float = 60.0,
    ) -> None:
        parts = urlsplit(upstream_url)
        if parts.scheme != "http" or not parts.hostname or not _is_loopback(parts.hostname):
            raise ValueError(f"FaultProxy only forwards to a loopback http URL, not {upstream_url}")
        self.upstream_host = parts.hostname
        self.upstream_port = parts.port or 80
        self.upstream_netloc = parts.netloc
        self.upstream_timeout = upstream_timeout
        self.seed = seed
        self.rules: dict[str, FaultRule] = dict(rules or {})
        self.max_consecutive = max_consecutive
        self.max_faults = max_faults
        self.enabled = True
        #: Optional `(operation, request body) -> bool`: only requests it accepts may be faulted
        #: (e.g. only the DescribeTable calls that name one table).
        self.fault_filter: Callable[[str, bytes], bool] | None = None
        #: Optional `(operation, request body) -> bool`: requests it accepts are answered with
        #: AccessDeniedException without forwarding (not random: a missing permission).
        self.deny: Callable[[str, bytes], bool] | None = None
        #: Optional `(operation, request body) -> None` called before a request is forwarded
        #: (to interleave another client's write deterministically).
        self.before_forward: Callable[[str, bytes], None] | None = None
        #: (operation, fault) -> count of faults injected.
        self.counts: Counter[tuple[str, str]] = Counter()
        #: operation -> requests seen (faulted or not).
        self.requests: Counter[str] = Counter()
        #: (operation, "items"|"keys") -> entries withheld as unprocessed.
        self.withheld: Counter[tuple[str, str]] = Counter()
        self._rngs: dict[str, random.Random] = {}
        self._consecutive: Counter[str] = Counter()
        self._lock = threading.Lock()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    # --- configuration ----------------------------------------------------------------------

    def rule_for(self, op: str) -> FaultRule:
        return self.rules.get(op) or self.rules.get("*") or FaultRule()

    def set_rules(self, rules: Mapping[str, FaultRule]) -> None:
        with self._lock:
            self.rules = dict(rules)

    def _rng(self, op: str) -> random.Random:
        rng = self._rngs.get(op)
        if rng is None:
            digest = hashlib.sha256(f"{self.seed}:{op}".encode()).digest()
            rng = self._rngs[op] = random.Random(int.from_bytes(digest[:8], "big"))
        return rng

    def _decide(self, op: str, body: bytes = b"") -> str | None:
        with self._lock:
            self.requests[op] += 1
            if self.fault_filter is not None and not self.fault_filter(op, body):
                return None
            rule = self.rule_for(op)
            rng = self._rng(op)
            # Always draw the same numbers per request, so decisions stay aligned to the seed.
            draws = [rng.random() for _ in FAULTS]
            fault: str | None = None
            if (
                self.enabled
                and sum(self.counts.values()) < self.max_faults
                and self._consecutive[op] < self.max_consecutive
            ):
                for name, draw in zip(FAULTS, draws, strict=True):
                    applicable = name != "unprocessed" or op in BATCH_OPS
                    if applicable and draw < getattr(rule, name):
                        fault = name
                        break
            if fault is None:
                self._consecutive[op] = 0
            else:
                self._consecutive[op] += 1
                if fault != "unprocessed":  # counted once something was actually withheld
                    self.counts[(op, fault)] += 1
            return fault

    def _withhold(self, op: str, body: bytes) -> tuple[bytes, dict[str, Any] | None]:
        """Split a batch request: (reduced body to forward, withheld part by table)."""
        doc = json.loads(body)
        request_items: dict[str, Any] = doc.get("RequestItems") or {}
        entries: list[tuple[str, int]] = []
        for table, entry in request_items.items():
            count = len(entry) if op == "BatchWriteItem" else len(entry.get("Keys", []))
            entries.extend((table, i) for i in range(count))
        with self._lock:
            share = self.rule_for(op).unprocessed_share
            rng = self._rng(op + "#withhold")
            n = min(len(entries) - 1, round(len(entries) * share))
            chosen = set(rng.sample(entries, n)) if n > 0 else set()
            if chosen:
                self.counts[(op, "unprocessed")] += 1
                self.withheld[(op, "items" if op == "BatchWriteItem" else "keys")] += len(chosen)
        if not chosen:
            return body, None
        forwarded: dict[str, Any] = {}
        withheld: dict[str, Any] = {}
        for table, entry in request_items.items():
            if op == "BatchWriteItem":
                keep = [r for i, r in enumerate(entry) if (table, i) not in chosen]
                held = [r for i, r in enumerate(entry) if (table, i) in chosen]
                if keep:
                    forwarded[table] = keep
                if held:
                    withheld[table] = held
            else:
                keys = entry.get("Keys", [])
                keep = [k for i, k in enumerate(keys) if (table, i) not in chosen]
                held = [k for i, k in enumerate(keys) if (table, i) in chosen]
                if keep:
                    forwarded[table] = {**entry, "Keys": keep}
                if held:
                    withheld[table] = {**entry, "Keys": held}
        doc["RequestItems"] = forwarded
        return json.dumps(doc).encode(), withheld

    # --- results ----------------------------------------------------------------------------

    def totals(self) -> dict[str, int]:
        """Faults injected, by kind (all operations)."""
        out = dict.fromkeys(FAULTS, 0)
        for (_op, fault), n in self.counts.items():
            out[fault] += n
        return out

    @property
    def faults_injected(self) -> int:
        return sum(self.counts.values())

    def reset_counts(self) -> None:
        with self._lock:
            self.counts.clear()
            self.requests.clear()
            self.withheld.clear()

    # --- lifecycle --------------------------------------------------------------------------

    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError("the proxy is not started")
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> FaultProxy:
        if self._server is not None:
            raise RuntimeError("the proxy is already started")
        server = _Server(("127.0.0.1", 0), _Handler)
        server.proxy = self
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(10)
            self._thread = None

    def __enter__(self) -> FaultProxy:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
