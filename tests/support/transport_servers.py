"""Servers for the transport-control tests (#13) other than the proxies.

- :class:`UnixHTTPServer`: HTTP/1.1 keep-alive on a Unix domain socket;
- :class:`DripServer`: a response whose body comes one byte (or ``chunk``)
  every ``interval`` seconds, or never (low_speed_limit/low_speed_time);
- :class:`FullBacklogListener`: a 127.0.0.1 port where connect() hangs
  instead of being refused (connect_timeout);
- :class:`CountingHTTPServer`: the :class:`~support.servers.HTTPTestServer`
  with per-connection accounting (max_host_connections, max_connection_age).
"""

from __future__ import annotations

import os
import select
import shutil
import socket
import struct
import tempfile
import threading
import time
from typing import Any, Literal, cast

from .servers import HTTPTestServer, RequestLog, _Handler, _ThreadingHTTPServer, pattern_bytes
from .conncount import ConnCounter, ConnRecord
from .sockserve import (
    HOST,
    IO_TIMEOUT,
    SockReader,
    ThreadedListener,
    first_header,
    parse_head,
    tokens,
)

__all__ = [
    "CountingHTTPServer",
    "DripServer",
    "FullBacklogListener",
    "UnixHTTPServer",
    "listen_overflows",
]


# --------------------------------------------------------------------------
# Unix domain socket
# --------------------------------------------------------------------------


class UnixHTTPServer(ThreadedListener):
    """HTTP/1.1 keep-alive server on a Unix domain socket.

    Listens on ``path`` (default: ``http.sock`` in a new temporary
    directory; both removed by ``close()``).  Every request is answered 200
    with the body ``unix:<METHOD> <target>`` (HEAD: headers only);
    ``Connection: close`` is honoured.  ``url`` is ``http://localhost``
    (what a client puts in the URL; the socket is ``path``); ``port`` is
    None.  ``requests`` records dicts: method, path (the target as sent),
    version, headers (list of (name, value)), host (the Host header or
    None), body (the payload, de-chunked).
    """

    def __init__(
        self, path: str | os.PathLike[str] | None = None, timeout: float = IO_TIMEOUT
    ) -> None:
        self._tmpdir: str | None = None
        if path is None:
            # Short on purpose: sun_path holds at most 107 bytes, and pytest's
            # tmp_path can be longer than that.
            self._tmpdir = tempfile.mkdtemp(prefix="hac-unix-")
            path = os.path.join(self._tmpdir, "http.sock")
        self.path = os.fspath(path)
        self.url = "http://localhost"
        self.port: None = None
        self.requests: RequestLog[dict[str, Any]] = RequestLog()
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.bind(self.path)
            sock.listen(128)
        except BaseException:
            sock.close()
            self._after_close()
            raise
        super().__init__(sock, timeout)

    def __repr__(self) -> str:
        return f"<UnixHTTPServer {self.path}>"

    def handle(self, conn: socket.socket, record: ConnRecord) -> None:
        reader = SockReader(conn)
        while (head := reader.read_head()) is not None:
            start, headers = parse_head(head)
            method, target = (start + ["", ""])[:2]
            version = start[2] if len(start) == 3 else ""
            if "100-continue" in tokens(headers, "Expect"):
                conn.sendall(b"HTTP/1.1 100 Continue\r\n\r\n")
            self.conns.request_started(record)
            try:
                _, body = reader.body(headers)
                self.requests.append({
                    "method": method, "path": target, "version": version,
                    "headers": headers, "host": first_header(headers, "Host"), "body": body,
                })
                connection = tokens(headers, "Connection")
                close = "close" in connection or (
                    version == "HTTP/1.0" and "keep-alive" not in connection
                )
                payload = f"unix:{method} {target}".encode("latin-1")
                lines = [
                    "HTTP/1.1 200 OK", "Content-Type: text/plain",
                    f"Content-Length: {len(payload)}",
                ]
                if close:
                    lines.append("Connection: close")
                out = ("\r\n".join(lines) + "\r\n\r\n").encode()
                conn.sendall(out if method == "HEAD" else out + payload)
            finally:
                self.conns.request_finished()
            if close:
                return

    def _after_close(self) -> None:
        try:
            os.unlink(self.path)
        except OSError:
            pass
        if self._tmpdir is not None:
            shutil.rmtree(self._tmpdir, ignore_errors=True)


# --------------------------------------------------------------------------
# Slow bodies
# --------------------------------------------------------------------------

DripMode = Literal["drip", "stall", "silent"]


class DripServer(ThreadedListener):
    """TCP server on 127.0.0.1 answering each request (one per connection)
    ``200`` with ``Content-Length: size`` and a slow body.

    ``mode="drip"``: ``chunk`` bytes of the body every ``interval`` seconds
    (the first ``interval`` seconds after the head); ``"stall"``: the head,
    then nothing; ``"silent"``: not even the head.  A stalled/silent
    connection is held until the client closes it (at most ``hold`` s).
    The body is ``pattern_bytes(size)``.

    ``requests`` records each request head (bytes).  ``outcomes`` records,
    when each connection's answer ends, a dict: sent (body bytes sent),
    sent_at (seconds after the request for each piece), elapsed (request to
    end), client_closed (the client closed or reset first), complete (the
    whole body went out).  ``url`` is ``http://127.0.0.1:PORT/``.
    """

    def __init__(
        self,
        size: int = 10,
        interval: float = 1.0,
        mode: DripMode = "drip",
        chunk: int = 1,
        hold: float = 30.0,
    ) -> None:
        if mode not in ("drip", "stall", "silent") or chunk < 1 or size < 0:
            raise ValueError("bad DripServer arguments")
        self.size, self.interval, self.mode = size, interval, mode
        self.chunk, self.hold = chunk, hold
        self.requests: RequestLog[bytes] = RequestLog()
        self.outcomes: RequestLog[dict[str, Any]] = RequestLog()
        sock = socket.create_server((HOST, 0), backlog=128)
        self.port: int = sock.getsockname()[1]
        super().__init__(sock, max(hold, IO_TIMEOUT))
        self.url = f"http://{HOST}:{self.port}/"

    def __repr__(self) -> str:
        return f"<DripServer {self.mode} {self.url}>"

    def _client_gone(self, conn: socket.socket, wait: float) -> bool:
        """Wait ``wait`` s; True as soon as the client closes or resets."""
        deadline = time.monotonic() + wait
        while (left := deadline - time.monotonic()) > 0:
            readable, _, _ = select.select([conn], [], [], left)
            if readable:
                try:
                    if not conn.recv(65536):
                        return True  # EOF (or close() shut us down)
                except OSError:
                    return True
                # Anything else (a pipelined request) is ignored.
        return False

    def handle(self, conn: socket.socket, record: ConnRecord) -> None:
        head = SockReader(conn).read_head()
        if head is None:
            return
        self.requests.append(head)
        self.conns.request_started(record)
        t0 = time.monotonic()
        sent_at: list[float] = []
        sent = 0
        gone = False
        try:
            if self.mode != "silent":
                conn.sendall(
                    b"HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n"
                    b"Content-Length: %d\r\nConnection: close\r\n\r\n" % self.size
                )
            if self.mode == "drip":
                body = pattern_bytes(self.size)
                while sent < self.size and not (gone := self._client_gone(conn, self.interval)):
                    conn.sendall(body[sent : sent + self.chunk])
                    sent = min(self.size, sent + self.chunk)
                    sent_at.append(time.monotonic() - t0)
            else:
                gone = self._client_gone(conn, self.hold)
        except OSError:
            gone = True  # EPIPE/ECONNRESET: the client went away mid-send
        finally:
            self.conns.request_finished()
            self.outcomes.append({
                "sent": sent, "sent_at": sent_at, "elapsed": time.monotonic() - t0,
                "client_closed": gone and not self._stopped.is_set(),
                "complete": self.mode == "drip" and sent == self.size,
            })


# --------------------------------------------------------------------------
# connect() that hangs
# --------------------------------------------------------------------------


def listen_overflows() -> int:
    """This network namespace's TcpExt ListenOverflows counter (SYNs dropped
    because an accept queue was full)."""
    with open("/proc/net/netstat") as f:
        lines = f.read().splitlines()
    for names, values in zip(lines[::2], lines[1::2]):
        if names.startswith("TcpExt:"):
            table = dict(zip(names.split()[1:], values.split()[1:]))
            return int(table["ListenOverflows"])
    raise RuntimeError("no TcpExt line in /proc/net/netstat")


def _accept_queue(sock: socket.socket) -> tuple[int, int]:
    # For a listening socket Linux reports (connections in the accept queue,
    # its limit) as tcpi_unacked/tcpi_sacked, at offsets 24/28 of tcp_info.
    info = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 104)
    unacked, sacked = struct.unpack_from("II", info, 24)
    return int(unacked), int(sacked)


class FullBacklogListener:
    """A 127.0.0.1 port whose accept queue is full, so a new connect() hangs
    (its SYNs are dropped) instead of being refused: for connect_timeout.

    The socket listens with backlog 0 (Linux queues one connection) and is
    never accept()ed; filler connections are made until the kernel reports
    the queue full (``tcp_info`` of the listener).  Linux then drops every
    further SYN before any syncookie logic (``tcp_conn_request``: counted as
    ListenOverflows), whatever ``tcp_abort_on_overflow`` says (that one only
    concerns the handshake's last ACK).  ``fillers`` is how many it took.
    Use the IPv4 address, not ``localhost`` (nothing listens on ``::1``).
    """

    def __init__(self, max_fillers: int = 8) -> None:
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._fillers: list[socket.socket] = []
        try:
            self._sock.bind((HOST, 0))
            self._sock.listen(0)
            self.host = HOST
            self.port: int = self._sock.getsockname()[1]
            self.url = f"http://{HOST}:{self.port}/"
            self._fill(max_fillers)
        except BaseException:
            self.close()
            raise
        self.fillers = len(self._fillers)

    def _fill(self, max_fillers: int) -> None:
        while True:
            queued, limit = _accept_queue(self._sock)
            if queued > limit:
                return
            if len(self._fillers) >= max_fillers:
                raise RuntimeError(f"accept queue not full after {max_fillers} connections")
            s = socket.create_connection((HOST, self.port), timeout=2.0)
            self._fillers.append(s)
            # The server side joins the queue a moment after connect() returns.
            deadline = time.monotonic() + 2.0
            while _accept_queue(self._sock)[0] < len(self._fillers):
                if time.monotonic() > deadline:
                    raise RuntimeError("a filler connection never reached the accept queue")
                time.sleep(0.001)

    def connect_hangs(self, timeout: float = 1.0) -> bool:
        """True if a non-blocking connect() to the port has not completed
        (nor failed) after ``timeout`` s: the property the tests rely on."""
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.setblocking(False)
            s.connect_ex((HOST, self.port))
            _, writable, _ = select.select([], [s], [], timeout)
            return not writable

    def close(self) -> None:
        """Close the fillers and the listener (pending connects are then refused)."""
        for s in self._fillers:
            s.close()
        self._fillers.clear()
        self._sock.close()

    def __enter__(self) -> FullBacklogListener:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<FullBacklogListener {HOST}:{self.port}>"


# --------------------------------------------------------------------------
# HTTPTestServer with per-connection accounting
# --------------------------------------------------------------------------


class _CountingServer(_ThreadingHTTPServer):
    def __init__(self, tls_context: Any) -> None:
        self.conn_counter = ConnCounter()
        self._records: dict[socket.socket, ConnRecord] = {}
        self._by_port: dict[int, ConnRecord] = {}
        self._records_lock = threading.Lock()
        super().__init__(tls_context)
        self.RequestHandlerClass = _CountingHandler

    def process_request(self, request: Any, client_address: Any) -> None:
        # In the accept thread, as the base class counts: final by the time
        # the client has its response.
        record = self.conn_counter.opened(client_address[1])
        with self._records_lock:
            self._records[request] = record
            self._by_port[client_address[1]] = record
        super().process_request(request, client_address)

    def record_of(self, peer_port: int) -> ConnRecord | None:
        with self._records_lock:
            return self._by_port.get(peer_port)

    def shutdown_request(self, request: Any) -> None:
        super().shutdown_request(request)
        with self._records_lock:
            record = self._records.pop(request, None)
            if record is not None and self._by_port.get(record.peer_port) is record:
                del self._by_port[record.peer_port]
        if record is not None:
            self.conn_counter.closed(record)


class _CountingHandler(_Handler):
    server: _CountingServer

    def _handle(self) -> None:
        record = self.server.record_of(self.client_address[1])
        if record is None:  # cannot happen: process_request registered it
            super()._handle()
            return
        self.server.conn_counter.request_started(record)
        try:
            super()._handle()
        finally:
            self.server.conn_counter.request_finished()


class CountingHTTPServer(HTTPTestServer):
    """:class:`HTTPTestServer` (same endpoints, logs, TLS option) whose
    ``conns`` (:class:`~support.conncount.ConnCounter`) tracks each
    connection: accept/close times, requests served, most open at once
    (``max_open``) and most requests in flight at once (``max_active``).
    Map a request to its connection by ``peer_port``."""

    _server_class = _CountingServer

    @property
    def conns(self) -> ConnCounter:
        """Per-connection accounting (see the class docstring)."""
        return cast(_CountingServer, self._server).conn_counter

    def reset(self) -> None:
        """Clear the logs, the connection count and the accounting."""
        super().reset()
        self.conns.reset()

    def __enter__(self) -> CountingHTTPServer:
        return self

    def __repr__(self) -> str:
        return f"<CountingHTTPServer {self.base_url}>"
