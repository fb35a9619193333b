"""Hand-written servers for RawServer (support.servers) that record every
request they read completely and misbehave on purpose: HTTP/1.1
keep-alive (:func:`h1_handler`) and HTTP/2 with prior knowledge through
the ``h2`` package (:func:`h2c_handler`).  Both answer 200, except
"victims" (:func:`is_victim`): read completely, then the connection is
reset before any response byte."""

from __future__ import annotations

import itertools
import socket
import struct
import threading
import time
from dataclasses import dataclass

import h2.events
from h2.config import H2Configuration
from h2.connection import H2Connection
from h2.errors import ErrorCodes

from .servers import RawHandler

__all__ = ["IDLE_S", "Ledger", "Sighting", "h1_handler", "h2c_handler", "is_victim", "read_h1_request", "reset"]

H2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
MAX_REQUESTS_PER_CONN = 1000  # bound of every raw server's per-connection loop
IDLE_S = 10.0  # a raw server gives up on a silent connection after this


@dataclass(frozen=True)
class Sighting:
    """One request as a raw server saw it (completely read)."""

    conn: int  # connection serial number, from 1
    nth: int  # position of the request on its connection, from 1
    proto: str  # "h1", "h2", or "h1-refused" (HTTP/1.1 sent to the h2c server)
    method: str
    path: str
    body: bytes


class Ledger:
    """Thread-safe record of every request the raw servers saw."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._items: list[Sighting] = []
        self._conns = itertools.count(1)
        # RawServer swallows handler exceptions: keep the unexpected ones so
        # a broken test server cannot pass for a client bug
        self.errors: list[BaseException] = []

    def new_conn(self) -> int:
        with self._lock:
            return next(self._conns)

    def add(self, item: Sighting) -> None:
        with self._lock:
            self._items.append(item)

    def guard(self, handler: RawHandler) -> RawHandler:
        """``handler`` with its unexpected exceptions recorded in ``errors``
        (socket errors are the client's doing and expected)."""

        def guarded(conn: socket.socket, first: bytes) -> None:
            try:
                handler(conn, first)
            except OSError:
                pass
            except Exception as exc:
                with self._lock:
                    self.errors.append(exc)

        return guarded

    def of(self, method: str, path: str) -> list[Sighting]:
        """Every time ``method path`` was sent to the server, in order."""
        with self._lock:
            return [s for s in self._items if (s.method, s.path) == (method, path)]


def reset(conn: socket.socket) -> None:
    """Abort the connection: SO_LINGER 0 makes close() send RST, not FIN."""
    conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    conn.close()


def is_victim(path: str, nth: int) -> bool:
    """The policy of both raw servers: a ``/victim/...`` request that is not
    the first on its connection is read completely, then the connection is
    reset before any response byte.  On a fresh connection it is answered,
    so a re-send on a new connection succeeds (as it did in the issue)."""
    return path.startswith("/victim/") and nth >= 2


def read_h1_request(
    conn: socket.socket, buf: bytes
) -> tuple[tuple[str, str, bytes] | None, bytes]:
    """(method, target, body) of the next HTTP/1.1 request (body framed by
    Content-Length) and the bytes after it; None at EOF or on silence."""
    try:
        for _ in range(10_000):
            if b"\r\n\r\n" in buf:
                break
            chunk = conn.recv(65536)
            if not chunk:
                return None, b""
            buf += chunk
        else:
            return None, b""
        head, _, rest = buf.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        method, target = (lines[0].split(" ") + ["", ""])[:2]
        length = 0
        for line in lines[1:]:
            name, _, value = line.partition(":")
            if name.strip().lower() == "content-length":
                length = int(value.strip())
        for _ in range(10_000):
            if len(rest) >= length:
                break
            chunk = conn.recv(65536)
            if not chunk:
                return None, b""
            rest += chunk
        return (method, target, rest[:length]), rest[length:]
    except (OSError, ValueError):
        return None, b""


def h1_handler(ledger: Ledger) -> RawHandler:
    """RawServer handler: HTTP/1.1 keep-alive, every request answered 200
    with Content-Length, except victims (see :func:`is_victim`)."""

    def handler(conn: socket.socket, first: bytes) -> None:
        cid = ledger.new_conn()
        conn.settimeout(IDLE_S)
        buf = first
        for nth in range(1, MAX_REQUESTS_PER_CONN + 1):
            request, buf = read_h1_request(conn, buf)
            if request is None:
                return
            method, path, body = request
            ledger.add(Sighting(cid, nth, "h1", method, path, body))
            if is_victim(path, nth):
                reset(conn)
                return
            payload = f"{method} {path} conn={cid}".encode()
            head = b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(payload)
            conn.sendall(head if method == "HEAD" else head + payload)

    return ledger.guard(handler)


def h2c_handler(ledger: Ledger) -> RawHandler:
    """RawServer handler: HTTP/2 with prior knowledge (the ``h2`` package),
    every request answered 200, except victims (see :func:`is_victim`) and
    ``/reset-after/...``, answered and then the idle connection reset.

    HTTP/1.1 (libcurl's ``Upgrade: h2c`` attempt) is recorded and refused
    the way nginx's h2c listener does: SETTINGS, GOAWAY, close."""

    def handler(conn: socket.socket, first: bytes) -> None:
        cid = ledger.new_conn()
        conn.settimeout(IDLE_S)
        # RawServer reads up to the first CRLFCRLF, which the preface holds
        if not first.startswith(H2_PREFACE):
            request, _ = read_h1_request(conn, first)
            if request is not None:
                ledger.add(Sighting(cid, 1, "h1-refused", *request))
            refusal = H2Connection(H2Configuration(client_side=False))
            refusal.initiate_connection()
            refusal.close_connection(ErrorCodes.PROTOCOL_ERROR)
            conn.sendall(refusal.data_to_send())
            return
        session = H2Connection(H2Configuration(client_side=False))
        session.initiate_connection()
        conn.sendall(session.data_to_send())
        streams: dict[int, tuple[str, str, bytearray]] = {}
        nth = 0
        data = first
        for _ in range(MAX_REQUESTS_PER_CONN * 10):
            for event in session.receive_data(data):
                if isinstance(event, h2.events.RequestReceived):
                    headers = {bytes(k): bytes(v) for k, v in event.headers or []}
                    streams[event.stream_id] = (
                        headers.get(b":method", b"").decode("latin-1"),
                        headers.get(b":path", b"").decode("latin-1"),
                        bytearray(),
                    )
                elif isinstance(event, h2.events.DataReceived):
                    if event.stream_id in streams:
                        streams[event.stream_id][2].extend(event.data or b"")
                    session.acknowledge_received_data(
                        event.flow_controlled_length, event.stream_id
                    )
                elif isinstance(event, h2.events.StreamReset):
                    streams.pop(event.stream_id, None)
                elif isinstance(event, h2.events.StreamEnded):
                    stream = streams.pop(event.stream_id, None)
                    if stream is None:
                        continue
                    method, path, body = stream
                    nth += 1
                    ledger.add(Sighting(cid, nth, "h2", method, path, bytes(body)))
                    if is_victim(path, nth):
                        reset(conn)
                        return
                    payload = f"{method} {path} conn={cid}".encode()
                    session.send_headers(
                        event.stream_id,
                        [(":status", "200"), ("content-length", str(len(payload)))],
                        end_stream=method == "HEAD",
                    )
                    if method != "HEAD":
                        session.send_data(event.stream_id, payload, end_stream=True)
                    if path.startswith("/reset-after/"):
                        conn.sendall(session.data_to_send())
                        time.sleep(0.05)  # the reply is read; the connection idles
                        reset(conn)
                        return
                elif isinstance(event, h2.events.ConnectionTerminated):
                    conn.sendall(session.data_to_send())
                    return
            out = session.data_to_send()
            if out:
                conn.sendall(out)
            try:
                data = conn.recv(65536)
            except OSError:
                return
            if not data:
                return

    return ledger.guard(handler)
