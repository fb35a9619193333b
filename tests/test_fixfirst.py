"""Regression tests for the "fix first" issue.

1. A request that is not idempotent (POST, PATCH) is never sent twice: when
   a reused connection is reset after the server read the whole request and
   before any response byte, the reply fails with CONNECTION_LOST_AFTER_SEND;
   idempotent methods keep libcurl's automatic re-send (HTTP/1.1 and h2c).
2. HTTP/2 with prior knowledge (h2c): a deadline miss, a burst past the
   stream limit or a reset connection does not break the origin; an HTTP/2
   burst over TLS shares few connections.
3. ``close()`` closes the completion fd at once, wakes the threads waiting on
   the client, and ``stats()["requests"]`` counts every submitted request.

The servers that misbehave are raw TCP servers (tests/servers.py RawServer)
speaking HTTP/1.1 by hand or HTTP/2 through the ``h2`` package; the rest is
the private nginx (tests/nginx.py) and the Python test server.  Everything
listens on 127.0.0.1.
"""

from __future__ import annotations

import itertools
import os
import socket
import struct
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import h2.events
import pytest
from h2.config import H2Configuration
from h2.connection import H2Connection
from h2.errors import ErrorCodes

import http_async_client as hac
from support.certs import Certs
from support.fds import EVENTFD, FdBaseline
from support.nginx import Nginx
from support.ports import free_port
from support.servers import DIGEST_PASSWORD, DIGEST_USER, HTTPTestServer, RawHandler, RawServerFactory

WAIT = 10.0  # bound of every single wait for a reply, s
LOST = "CONNECTION_LOST_AFTER_SEND"
H1_TRIALS = 8  # the HTTP/1.1 figure was 8 of 8 POSTs executed twice
H2_TRIALS = 20  # and 19 of 20 over h2c
H2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
MAX_REQUESTS_PER_CONN = 1000  # bound of every raw server's per-connection loop
IDLE_S = 10.0  # a raw server gives up on a silent connection after this
FD_SETTLE_S = 3.0  # server-side sockets close asynchronously


# ============================================================ raw servers


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


def body_of(method: str, i: int) -> bytes | None:
    """A unique body for the methods that carry one."""
    if method not in ("POST", "PATCH", "PUT"):
        return None
    return f"{method}-body-{i}-{uuid.uuid4().hex}".encode()


def victim_trials(
    client: hac.Client, base: str, method: str, trials: int, **options: Any
) -> list[tuple[str, hac.Reply]]:
    """``trials`` times: a GET that opens (or reuses) a connection, then
    ``method /victim/...`` on that reused connection.  (path, reply) each."""
    out: list[tuple[str, hac.Reply]] = []
    for i in range(trials):
        warm = client.query(f"{base}/warm/{method}/{i}", **options).result(timeout=WAIT)
        assert warm.ok and warm.status == 200, f"warm-up {i}: {warm.err}"
        path = f"/victim/{method}/{i}"
        reply = client.query(
            base + path, body_of(method, i), method=method, **options
        ).result(timeout=WAIT)
        out.append((path, reply))
    return out


def check_preconditions(
    ledger: Ledger, method: str, outcomes: list[tuple[str, hac.Reply]], proto: str
) -> None:
    """Each victim's first sending was on a reused connection of ``proto``,
    completely read by the server: the scenario of the issue happened."""
    assert not ledger.errors, ledger.errors
    for path, _ in outcomes:
        seen = ledger.of(method, path)
        assert seen, f"the server never saw {method} {path}"
        first = seen[0]
        assert (first.proto, first.nth >= 2) == (proto, True), f"not on a reused connection: {first}"


# ===================================================== 1. no POST sent twice


@pytest.mark.parametrize("method", ["POST", "PATCH"])
def test_non_idempotent_not_resent_after_reset_h1(
    raw_server_factory: RawServerFactory, method: str
) -> None:
    """HTTP/1.1: a POST/PATCH on a reused keep-alive connection, read by the
    server, then RST before any response byte: sent once, the reply fails
    with CONNECTION_LOST_AFTER_SEND and counts as an error."""
    ledger = Ledger()
    server = raw_server_factory(h1_handler(ledger))
    with hac.Client(workers=1, connection_timeout=5000) as client:
        outcomes = victim_trials(client, server.url, method, H1_TRIALS)
        stats = client.stats()
    check_preconditions(ledger, method, outcomes, "h1")
    twice = [p for p, _ in outcomes if len(ledger.of(method, p)) > 1]
    ok = [p for p, r in outcomes if r.ok]
    print(f"\nh1 {method}: sent more than once in {len(twice)} of {H1_TRIALS}, ok in {len(ok)}")
    assert not twice, f"{method} sent more than once in {len(twice)} of {H1_TRIALS} trials"
    for path, reply in outcomes:
        assert not reply.ok, f"{path}: ok although the connection was lost"
        assert reply.status == 0
        assert LOST in (reply.err or ""), reply.err
        assert not reply.timed_out
    # the warm-ups all succeeded; the victims are errors, not timeouts
    assert (stats["errors"], stats["timeouts"]) == (H1_TRIALS, 0)


@pytest.mark.parametrize("method", ["GET", "HEAD", "PUT", "DELETE", "OPTIONS"])
def test_idempotent_resent_after_reset_h1(raw_server_factory: RawServerFactory, method: str) -> None:
    """The same scenario for an idempotent method: libcurl's automatic
    re-send on a fresh connection is kept, every time (GET after GET reuses
    one easy handle: libcurl 7.88 never resets its retry count between
    transfers, curl issue 18926, so every 6th re-send used to fail)."""
    ledger = Ledger()
    server = raw_server_factory(h1_handler(ledger))
    with hac.Client(workers=1, connection_timeout=5000) as client:
        outcomes = victim_trials(client, server.url, method, H1_TRIALS)
        stats = client.stats()
    check_preconditions(ledger, method, outcomes, "h1")
    failed = [(p, r.err) for p, r in outcomes if not (r.ok and r.status == 200)]
    assert not failed, f"{method}: {len(failed)} of {H1_TRIALS} not re-sent: {failed[:3]}"
    for path, _ in outcomes:
        seen = ledger.of(method, path)
        assert len(seen) == 2, seen  # the reset one, then the re-send
        assert seen[1].nth == 1  # on a fresh connection
        assert seen[0].body == seen[1].body
    assert stats["errors"] == 0


def test_post_not_resent_after_reset_h2c(raw_server_factory: RawServerFactory) -> None:
    """h2c (prior knowledge): a POST on a reused HTTP/2 connection, read by
    the server, then RST: sent once (in any form: no HTTP/2 re-send, no
    HTTP/1.1 ``Upgrade: h2c`` attempt), CONNECTION_LOST_AFTER_SEND."""
    ledger = Ledger()
    server = raw_server_factory(h2c_handler(ledger))
    with hac.Client(workers=1, connection_timeout=5000) as client:
        outcomes = victim_trials(client, server.url, "POST", H2_TRIALS, http_version=2)
        stats = client.stats()
    check_preconditions(ledger, "POST", outcomes, "h2")
    twice = [p for p, _ in outcomes if len(ledger.of("POST", p)) > 1]
    executed_twice = [
        p for p, _ in outcomes if sum(s.proto == "h2" for s in ledger.of("POST", p)) > 1
    ]
    print(
        f"\nh2c POST: sent more than once in {len(twice)} of {H2_TRIALS}, "
        f"executed (HTTP/2) more than once in {len(executed_twice)}"
    )
    assert not twice, (
        f"POST sent more than once in {len(twice)} of {H2_TRIALS} trials "
        f"(executed twice in {len(executed_twice)}); e.g. {ledger.of('POST', twice[0])}"
    )
    for path, reply in outcomes:
        assert not reply.ok, f"{path}: ok although the connection was lost"
        assert LOST in (reply.err or ""), reply.err
    assert (stats["errors"], stats["timeouts"]) == (H2_TRIALS, 0)


def test_get_resent_after_reset_h2c(raw_server_factory: RawServerFactory) -> None:
    """Control for the h2c case: a GET in the same scenario is re-sent and
    succeeds over HTTP/2."""
    ledger = Ledger()
    server = raw_server_factory(h2c_handler(ledger))
    with hac.Client(workers=1, connection_timeout=5000) as client:
        outcomes = victim_trials(client, server.url, "GET", H1_TRIALS, http_version=2)
    check_preconditions(ledger, "GET", outcomes, "h2")
    for path, reply in outcomes:
        assert reply.ok and reply.status == 200, (path, reply.err)
        assert reply.http_version == "2"
        assert sum(s.proto == "h2" for s in ledger.of("GET", path)) == 2


def test_post_keepalive_normal_replies_sent_once(raw_server_factory: RawServerFactory) -> None:
    """POSTs on fresh and on reused connections that get normal replies are
    ok, each sent once, over one kept-alive connection."""
    ledger = Ledger()
    server = raw_server_factory(h1_handler(ledger))
    with hac.Client(workers=1, connection_timeout=5000) as client:
        replies = [
            client.query(f"{server.url}/post/{i}", body_of("POST", i)).result(timeout=WAIT)
            for i in range(5)
        ]
    assert not ledger.errors, ledger.errors
    for i, reply in enumerate(replies):
        assert reply.ok and reply.status == 200, reply.err
        seen = ledger.of("POST", f"/post/{i}")
        assert [(s.conn, s.nth) for s in seen] == [(1, i + 1)]
        assert reply.body == f"POST /post/{i} conn=1".encode()


def test_post_fresh_connection_ok(fresh_http_server: HTTPTestServer) -> None:
    """A POST on a fresh connection with a normal reply is ok."""
    with hac.Client(workers=1, connection_timeout=5000) as client:
        reply = client.query(f"{fresh_http_server.url}/echo", b"hello").result(timeout=WAIT)
    assert reply.ok and reply.status == 200, reply.err
    echoed = reply.json()
    assert (echoed["method"], echoed["body"]) == ("POST", "hello")
    assert len(fresh_http_server.requests) == 1


def test_post_follows_307_redirect(fresh_http_server: HTTPTestServer) -> None:
    """A POST answered 307 is sent again to the new location (a new
    request, allowed): ok, the target got the same method and body."""
    url = (
        f"{fresh_http_server.url}/redirect-to?url={quote('/echo', safe='')}&status=307"
    )
    with hac.Client(workers=1, connection_timeout=5000) as client:
        reply = client.query(url, b"moved body", follow_redirect=1).result(timeout=WAIT)
    assert reply.ok and reply.status == 200, reply.err
    echoed = reply.json()
    assert (echoed["method"], echoed["body"]) == ("POST", "moved body")
    seen = [(r["method"], r["path"].split("?")[0], r["body"]) for r in fresh_http_server.requests]
    assert seen == [("POST", "/redirect-to", b"moved body"), ("POST", "/echo", b"moved body")]


def test_post_digest_auth_challenge(fresh_http_server: HTTPTestServer) -> None:
    """Digest: the POST gets 401 with a challenge and is sent again with
    credentials (allowed): ok, 200."""
    with hac.Client(workers=1, connection_timeout=5000) as client:
        reply = client.query(
            f"{fresh_http_server.url}/auth/digest",
            b"secret body",
            authmethod=2,
            username=DIGEST_USER,
            password=DIGEST_PASSWORD,
        ).result(timeout=WAIT)
    assert reply.ok, reply.err
    assert (reply.status, reply.body) == (200, b"digest authenticated")
    methods = [r["method"] for r in fresh_http_server.requests]
    assert methods == ["POST", "POST"]
    assert fresh_http_server.requests[1]["body"] == b"secret body"


# ===================================================== 2. h2c keeps working


def test_h2c_deadline_miss_does_not_break_origin(nginx: Nginx) -> None:
    """One request that misses its deadline (300 ms against a 2 s answer)
    leaves the h2c origin usable: 6 sequential and 6 concurrent requests
    after it succeed over HTTP/2."""
    base = nginx.h2c_slow_url
    marker = uuid.uuid4().hex
    with hac.Client(workers=1, connection_timeout=5000) as client:
        # control: the slow location answers when given the time
        control = client.query(f"{base}/slow/50?m={marker}", http_version=2).result(timeout=WAIT)
        assert (control.ok, control.status, control.body) == (True, 200, b"slow"), control.err
        assert control.http_version == "2"
        missed = client.query(
            f"{base}/slow/2000?m={marker}", http_version=2, timeout=300
        ).result(timeout=WAIT)
        assert not missed.ok and missed.timed_out, missed.err
        later = [
            client.query(f"{base}/?m={marker}-later&i={i}", http_version=2).result(timeout=WAIT)
            for i in range(6)
        ]
        handles = [client.query(f"{base}/?m={marker}-later&j={i}", http_version=2) for i in range(6)]
        later += [h.result(timeout=WAIT) for h in handles]
    failed = [r.err for r in later if not r.ok]
    print(f"\nh2c after one deadline miss: {len(failed)} of {len(later)} later requests failed")
    assert not failed, f"{len(failed)} of {len(later)} failed after one deadline miss: {failed[0]}"
    for r in later:
        assert (r.status, r.body, r.http_version) == (200, b"ok", "2")
    lines = nginx.wait_log(f"{marker}-later", len(later))
    assert len(lines) == len(later)
    assert {ln.protocol for ln in lines} == {"HTTP/2.0"}


def test_h2c_burst_of_300(nginx: Nginx) -> None:
    """300 concurrent h2c requests (one client, one worker) all succeed over
    HTTP/2 and at most 3 connections (libcurl: 100 streams per connection);
    5 later requests succeed too."""
    n = 300
    marker = uuid.uuid4().hex
    with hac.Client(workers=1, connection_timeout=10000) as client:
        handles = [
            client.query(f"{nginx.h2c_url}/?m={marker}-burst&i={i}", http_version=2)
            for i in range(n)
        ]
        replies = [h.result(timeout=30) for h in handles]
        later = [
            client.query(f"{nginx.h2c_url}/?m={marker}-later&i={i}", http_version=2).result(
                timeout=WAIT
            )
            for i in range(5)
        ]
    failed = [r.err for r in replies if not r.ok]
    later_failed = [r.err for r in later if not r.ok]
    lines = nginx.wait_log(f"{marker}-burst", n - len(failed), timeout=5.0)
    conns = {ln.connection for ln in lines}
    print(
        f"\nh2c burst: {len(failed)} of {n} failed, {len(conns)} connection(s), "
        f"{len(later_failed)} of 5 later failed"
    )
    assert not failed, f"{len(failed)} of {n} failed: {Counter(failed).most_common(2)}"
    assert not later_failed, f"{len(later_failed)} of 5 later requests failed: {later_failed[0]}"
    for r in replies + later:
        assert (r.status, r.body, r.http_version) == (200, b"ok", "2")
    assert len(lines) == n  # nginx never logs libcurl's HTTP/1.1 Upgrade attempts
    assert Counter(ln.protocol for ln in lines) == Counter({"HTTP/2.0": n})
    assert len(conns) <= 3, f"{len(conns)} connections for {n} requests"


def test_h2c_origin_recovers_after_connection_reset(raw_server_factory: RawServerFactory) -> None:
    """After the h2c connection is reset while idle (RST), concurrent and
    sequential requests to the origin succeed over HTTP/2; so do they after
    a reset in the middle of a request (a GET: re-sent)."""
    ledger = Ledger()
    server = raw_server_factory(h2c_handler(ledger))
    with hac.Client(workers=1, connection_timeout=5000) as client:

        def get(path: str) -> hac.Reply:
            return client.query(server.url + path, http_version=2).result(timeout=WAIT)

        def together(prefix: str) -> list[hac.Reply]:
            handles = [client.query(f"{server.url}{prefix}{i}", http_version=2) for i in range(6)]
            return [h.result(timeout=WAIT) for h in handles]

        assert get("/first").ok
        assert get("/reset-after/1").ok  # answered, then the idle connection reset
        time.sleep(0.2)  # the RST has arrived before the next requests
        later = together("/after-idle/together/")
        later += [get(f"/after-idle/{i}") for i in range(6)]
        victim = get("/victim/GET/1")  # reset mid-request on a reused connection
        later += [get(f"/after-victim/{i}") for i in range(6)]
        later += together("/after-victim/together/")
    assert not ledger.errors, ledger.errors
    failed = [(r.url.split("/", 3)[-1], r.err) for r in later if not (r.ok and r.status == 200)]
    print(f"\nh2c after a reset: {len(failed)} of {len(later)} later requests failed")
    assert not failed, f"{len(failed)} of {len(later)} failed after a reset: {failed[:2]}"
    assert [r.http_version for r in later] == ["2"] * len(later)
    assert victim.ok and victim.status == 200, victim.err  # GET: re-sent


def test_h2c_origin_recovers_after_server_closed_idle_connection(nginx: Nginx) -> None:
    """nginx closes the idle h2c connection (keepalive_timeout 1 s): 6
    concurrent then 6 sequential requests after it succeed over HTTP/2."""
    url = nginx.h2c_idle_url
    marker = uuid.uuid4().hex
    with hac.Client(workers=1, connection_timeout=5000) as client:
        first = client.query(f"{url}/?m={marker}-first", http_version=2).result(timeout=WAIT)
        assert first.ok and first.http_version == "2", first.err
        time.sleep(1.6)  # nginx closes the idle connection after 1 s
        handles = [client.query(f"{url}/?m={marker}-later&j={i}", http_version=2) for i in range(6)]
        later = [h.result(timeout=WAIT) for h in handles]
        later += [
            client.query(f"{url}/?m={marker}-later&i={i}", http_version=2).result(timeout=WAIT)
            for i in range(6)
        ]
    failed = [r.err for r in later if not r.ok]
    print(f"\nh2c after nginx closed the idle connection: {len(failed)} of {len(later)} failed")
    assert not failed, f"{len(failed)} of {len(later)} failed: {failed[0]}"
    for r in later:
        assert (r.status, r.body, r.http_version) == (200, b"ok", "2")
    lines = nginx.wait_log(f"{marker}-later", len(later))
    assert [ln.protocol for ln in lines] == ["HTTP/2.0"] * len(later)


def test_tls_h2_burst_of_200_shares_connections(nginx: Nginx, certs: Certs) -> None:
    """ASSERTS THE ISSUE'S ITEM 2(d): 200 concurrent HTTP/2-over-TLS requests
    (ALPN) to one origin share at most 3 connections (transfers started
    before the first handshake finished used to open one each)."""
    n = 200
    marker = uuid.uuid4().hex
    with hac.Client(workers=1, connection_timeout=10000, tls_ca_path=certs.capath) as client:
        handles = [client.query(f"{nginx.tls_url}/?m={marker}&i={i}") for i in range(n)]
        replies = [h.result(timeout=30) for h in handles]
    failed = [r.err for r in replies if not r.ok]
    lines = nginx.wait_log(marker, n - len(failed), timeout=5.0)
    conns = {ln.connection for ln in lines}
    print(f"\nTLS h2 burst: {n} requests, {len(failed)} failed, {len(conns)} connection(s)")
    assert not failed, f"{len(failed)} of {n} failed: {failed[0]}"
    assert {r.http_version for r in replies} == {"2"}
    assert len(lines) == n
    assert len(conns) <= 3, f"{len(conns)} TLS connections for {n} concurrent HTTP/2 requests"


# ============================================= 3. close() and stats() fixes


def test_close_closes_completion_fd_at_once(
    fresh_http_server: HTTPTestServer, open_fds: FdBaseline
) -> None:
    """After close() the client's completion eventfd is closed at once, while
    the client, one of its replies and a handle are still referenced."""
    client = hac.Client(workers=1, connection_timeout=5000)
    created = open_fds.excess()
    assert created[EVENTFD] >= 1, created  # the completion fd (and the worker's)
    reply = client.query(f"{fresh_http_server.url}/echo").result(timeout=WAIT)
    assert reply.ok, reply.err
    pending = client.query(f"{fresh_http_server.url}/delay/3000")
    client.close()
    right_after = open_fds.excess()
    extra = open_fds.settle(seconds=FD_SETTLE_S)
    assert pending.result(timeout=WAIT).cancelled
    assert right_after[EVENTFD] == 0, f"eventfds still open right after close(): {right_after}"
    assert not extra, f"fds still open after close(): {extra}"
    assert reply.ok and client.closed  # both still referenced here


def test_close_wakes_threads_blocked_on_the_client(fresh_http_server: HTTPTestServer) -> None:
    """A thread blocked in completions() and one in result() of a pending
    handle wake up when another thread calls close(): no hang, no crash,
    even when the freed fd number is reused at once."""
    for round_ in range(5):
        client = hac.Client(workers=1, connection_timeout=10000)
        slow = [client.query(f"{fresh_http_server.url}/delay/5000") for _ in range(2)]
        outcome: dict[str, object] = {}

        def in_completions() -> None:
            try:
                outcome["completions"] = [r.cancelled for r in client.completions(timeout=8)]
            except BaseException as exc:  # noqa: BLE001 - reported below
                outcome["completions"] = exc

        def in_result() -> None:
            try:
                outcome["result"] = slow[1].result(timeout=8)
            except BaseException as exc:  # noqa: BLE001 - reported below
                outcome["result"] = exc

        threads = [threading.Thread(target=f, daemon=True) for f in (in_completions, in_result)]
        for t in threads:
            t.start()
        time.sleep(0.3)  # both are blocked waiting on the client by now
        t0 = time.monotonic()
        client.close()
        # take the freed fd numbers: a waiter still polling the old number
        # would now poll this pipe, which never becomes readable
        r_fd, w_fd = os.pipe()
        try:
            for t in threads:
                t.join(timeout=5)
            woke = time.monotonic() - t0
        finally:
            os.close(r_fd)
            os.close(w_fd)
        hung = [f.__name__ for f, t in zip((in_completions, in_result), threads) if t.is_alive()]
        assert not hung, f"round {round_}: {hung} still waiting 5 s after close(); {outcome}"
        assert woke < 3.0, f"round {round_}: waiters woke {woke:.1f} s after close()"
        got = outcome["completions"]
        assert isinstance(got, list | hac.ClientClosed), f"completions(): {got!r}"
        assert isinstance(got, hac.ClientClosed) or all(got), got  # only cancelled replies
        res = outcome["result"]
        assert isinstance(res, hac.ClientClosed) or (isinstance(res, hac.Reply) and res.cancelled), (
            f"result(): {res!r}"
        )


def test_50_closed_clients_leak_no_fds(
    fresh_http_server: HTTPTestServer, open_fds: FdBaseline
) -> None:
    """Creating and closing 50 clients while holding each client and one
    reply of each leaves no fd open."""
    held: list[tuple[hac.Client, hac.Reply]] = []
    for _ in range(50):
        client = hac.Client(workers=1, connection_timeout=5000)
        reply = client.query(f"{fresh_http_server.url}/echo").result(timeout=WAIT)
        client.close()
        held.append((client, reply))
    extra = open_fds.settle(seconds=FD_SETTLE_S)
    assert all(r.ok for _, r in held)
    assert not extra, f"after 50 closed clients: {extra}"


def check_accounting(stats: dict[str, int], submitted: int) -> None:
    """Every submitted request counted once, and each finished one in
    exactly one outcome."""
    assert stats["requests"] == submitted, stats
    assert (stats["inflight"], stats["queued"]) == (0, 0), stats
    outcomes = stats["replies"] + stats["errors"] + stats["timeouts"] + stats["cancelled"]
    assert outcomes == stats["requests"], stats
    if "started" in stats:  # requests handed to libcurl, restarts once
        assert 0 < stats["started"] <= stats["requests"], stats


def test_stats_requests_counts_admission_queue_timeouts(fresh_http_server: HTTPTestServer) -> None:
    """50 requests, 2 connection slots, a deadline shorter than the server's
    answer: most miss it in the admission queue, and all 50 are counted."""
    n = 50
    with hac.Client(workers=1, max_connections=2, connection_timeout=5000) as client:
        handles = [client.query(f"{fresh_http_server.url}/delay/1000", timeout=300) for _ in range(n)]
        replies = [h.result(timeout=WAIT) for h in handles]
        stats = client.stats()
    assert all(r.timed_out for r in replies), Counter(r.err for r in replies)
    print(f"\nadmission queue: requests={stats['requests']} of {n}, timeouts={stats['timeouts']}")
    assert stats["timeouts"] == n
    check_accounting(stats, n)


def test_stats_accounting_mixed_outcomes(fresh_http_server: HTTPTestServer) -> None:
    """ok, failed, timed-out (in libcurl and in the queue) and cancelled
    requests: requests == replies + errors + timeouts + cancelled."""
    refused = f"http://127.0.0.1:{free_port()}/"
    url = fresh_http_server.url
    with hac.Client(workers=1, max_connections=2, connection_timeout=5000) as client:
        handles = [client.query(f"{url}/delay/800", timeout=200) for _ in range(6)]
        handles += [client.query(f"{url}/echo") for _ in range(5)]
        handles += [client.query(refused) for _ in range(3)]
        doomed = [client.query(f"{url}/delay/800") for _ in range(4)]
        for h in doomed:
            h.cancel()
        replies = [h.result(timeout=WAIT) for h in handles + doomed]
        stats = client.stats()
    kinds = Counter(
        "cancelled" if r.cancelled else "timeout" if r.timed_out else "ok" if r.ok else "error"
        for r in replies
    )
    assert kinds["ok"] >= 5 and kinds["cancelled"] >= 1, kinds
    assert stats["cancelled"] == kinds["cancelled"], (stats, kinds)
    assert stats["timeouts"] == kinds["timeout"], (stats, kinds)
    check_accounting(stats, len(replies))

