"""Hostile and broken servers on 127.0.0.1: every failure comes back as a
Reply with the right ``ok``/``err``, the right counter moves, nothing hangs
past its deadline, and no file descriptor outlives the client.

Each case takes a baseline of the process's open fds (``/proc/self/fd``)
after its servers exist and before its client, then checks, polling
briefly:

* after ``close()``: no socket beyond the baseline (every connection the
  client opened is closed, and so are the servers' ends);
* after the closed client is released: no fd of any kind beyond it.

``close()`` itself releases the sockets but keeps the client's eventfd and
each worker's loop fds until the object is collected;
``test_close_releases_every_fd`` asserts that ``close()`` alone releases
everything.

Error texts are matched on stable parts only: our prefixes (``TIMEOUT:``,
``CANCELLED:``, ``BODY_TOO_LARGE:``), the ``(curl error N)`` tail and a
keyword of libcurl 7.88's detail.
"""

from __future__ import annotations

import gc
import gzip
import re
import socket
import struct
import threading
import time
import weakref
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import pytest

import http_async_client as hac
from support.certs import Certs
from support.fds import FdBaseline
from support.servers import HTTPTestServer, RawServerFactory

CURL8 = int(hac.curl_version().split(".")[0]) >= 8

WAIT = 5.0  # seconds: upper bound of every wait on a reply in this file
DEADLINE_MS = 500  # the client's connection_timeout in most cases
FD_SETTLE = 3.0  # seconds allowed for fds to return to their baseline
CAP = 1000  # max_body_size of the body-cap cases

# --------------------------------------------------------------- fd audit


@contextmanager
def checked_client(**params: Any) -> Iterator[hac.Client]:
    """A Client (as a weak proxy) whose fds are audited on exit: sockets back
    to the baseline after ``close()``, every fd once the client is released.

    The body must not keep QueryHandles alive past the block (they hold the
    client): keep replies, ``del`` handles."""
    base = FdBaseline()
    client = hac.Client(**params)
    try:
        yield weakref.proxy(client)
    finally:
        client.close()
    base.assert_back("socket", "after close()", FD_SETTLE)
    ref = weakref.ref(client)
    del client
    gc.collect()
    assert ref() is None, "the closed Client is still referenced"
    base.assert_back(None, "after the closed client was released", FD_SETTLE)


# -------------------------------------------------------- reply checking


@dataclass(frozen=True)
class Expect:
    """What one query against a bad server must produce.

    ``outcome``: "ok" (transfer completed), "error" (counted in errors),
    "timeout" (counted in timeouts) or "cancelled".  ``err``: regex searched
    in ``reply.err``.  ``status``/``body``/``nheaders``: checked when set."""

    outcome: str
    err: str | None = None
    status: int | None = None
    body: bytes | None = None
    nheaders: int | None = None


def ok(status: int = 200, body: bytes | None = None, nheaders: int | None = None) -> Expect:
    return Expect("ok", None, status, body, nheaders)


def error(code: int | str, detail: str = "", status: int | None = None) -> Expect:
    """A failed transfer: ``detail`` (regex) somewhere before ``(curl error code)``."""
    tail = rf"\(curl error {code}\)$"
    return Expect("error", (detail + ".*" if detail else "") + tail, status)


def cap_error(code: int | str) -> Expect:
    return Expect(
        "error",
        rf"^BODY_TOO_LARGE: response body exceeds max_body_size of {CAP} bytes "
        rf"\(curl error {code}\)$",
        200,
    )


TIMEOUT = Expect("timeout", r"^TIMEOUT: Operation timed out after \d+ milliseconds.*\(curl error 28\)$")

_RAISES = {
    "error": hac.TransferError,
    "timeout": hac.TransferTimeout,
    "cancelled": hac.Cancelled,
}


def stats_delta(before: dict[str, int], after: dict[str, int]) -> dict[str, int]:
    keys = ("requests", "replies", "errors", "timeouts", "cancelled")
    return {k: after[k] - before[k] for k in keys}


def check_reply(reply: hac.Reply, delta: dict[str, int], expect: Expect, n: int = 1) -> None:
    """``reply`` and the counters moved by ``n`` queries match ``expect``."""
    counted = {"ok": "replies", "error": "errors", "timeout": "timeouts", "cancelled": "cancelled"}
    want = {"requests": n, "replies": 0, "errors": 0, "timeouts": 0, "cancelled": 0}
    want[counted[expect.outcome]] = n
    assert delta == want, f"counters {delta} != {want}; err={reply.err!r}"
    if expect.outcome == "ok":
        assert reply.ok, reply.err
        assert reply.err is None
        assert not reply.timed_out and not reply.cancelled
        assert reply.times["total"] > 0
        assert reply.raise_for_error() is reply
    else:
        assert not reply.ok, f"unexpected success: {reply!r} body={reply.body[:80]!r}"
        assert reply.err, "a failed reply must say why"
        assert reply.timed_out == (expect.outcome == "timeout"), reply.err
        assert reply.cancelled == (expect.outcome == "cancelled"), reply.err
        assert set(reply.times.values()) == {0}
        with pytest.raises(_RAISES[expect.outcome]):
            reply.raise_for_error()
    if expect.err is not None:
        assert reply.err is not None and re.search(expect.err, reply.err), (
            f"err {reply.err!r} does not match {expect.err!r}"
        )
    if expect.status is not None:
        assert reply.status == expect.status, reply.err
    if expect.body is not None:
        assert reply.body == expect.body
    if expect.nheaders is not None:
        assert len(reply.headers) == expect.nheaders


def one_query(
    url: str,
    client_params: dict[str, Any] | None = None,
    query_params: dict[str, Any] | None = None,
) -> tuple[hac.Reply, dict[str, int], float]:
    """One query on a fresh, fd-audited client: (reply, counter deltas, seconds)."""
    params = {"connection_timeout": DEADLINE_MS, **(client_params or {})}
    with checked_client(**params) as client:
        before = client.stats()
        start = time.monotonic()
        reply = client.query(url, **(query_params or {})).result(timeout=WAIT)
        elapsed = time.monotonic() - start
        delta = stats_delta(before, client.stats())
        assert client.stats()["inflight"] == 0
    return reply, delta, elapsed


# ----------------------------------------------- "send these bytes, close"

OK2 = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
GZ_BODY = b"hello gzip " * 20
GZ = gzip.compress(GZ_BODY)


def _many_headers(n: int, value: bytes = b"v") -> bytes:
    return b"".join(b"X-H%d: %s\r\n" % (i, value) for i in range(n))


def _chunked(*chunks: bytes) -> bytes:
    return b"".join(b"%x\r\n%s\r\n" % (len(c), c) for c in chunks) + b"0\r\n\r\n"


BYTES_CASES: list[Any] = [
    # -- not HTTP at all
    pytest.param(b"SSH-2.0-OpenSSH_9.2p1 Debian-2\r\n", error(1, r"HTTP/0\.9 when not allowed", 0),
                 id="garbage-text-banner"),
    pytest.param(bytes(range(256)), error(1, r"HTTP/0\.9 when not allowed", 0),
                 id="garbage-binary"),
    pytest.param(b"<html>a body with no status line</html>\n",
                 error(1, r"HTTP/0\.9 when not allowed", 0), id="http09-no-status-line"),
    # -- status line
    pytest.param(b"HTTP/1.1 abc\r\n\r\n", error(1, "Unsupported", 0), id="status-not-a-number"),
    pytest.param(b"HTTP/1.1 20 OK\r\nContent-Length: 2\r\n\r\nok",
                 error(1, "(response code|Unsupported HTTP/1 subversion)", 0), id="status-two-digits"),
    pytest.param(b"HTTP/1.1 2000 OK\r\nContent-Length: 2\r\n\r\nok",
                 # libcurl 7.88 refuses it; 8.x reads "2000" as 200, so the core checks
                 Expect("error", r"(response code.*\(curl error 1\)|BAD_RESPONSE: the status "
                        r"code is not three digits \(curl error 23\))$", 0),
                 id="status-four-digits"),
    pytest.param(b"HTTP/1.1 999 Odd\r\nContent-Length: 2\r\n\r\nok", ok(999, b"ok"),
                 id="status-999-accepted"),
    # -- header section
    # libcurl 7.88 refuses one header line over 100 KB with CURLE_OUT_OF_MEMORY
    # and no detail (8.6+: CURLE_TOO_LARGE, 100)
    pytest.param(b"HTTP/1.1 200 OK\r\nX-Big: " + b"a" * 200_000 + b"\r\nContent-Length: 0\r\n\r\n",
                 error("(27|100)"), id="header-line-200k"),
    pytest.param(b"HTTP/1.1 200 OK\r\n" + _many_headers(10_000) + b"Content-Length: 2\r\n\r\nok",
                 # libcurl 8.x caps a response at 5,000 header lines (CURLE_TOO_LARGE)
                 ok(200, b"ok", 10_001) if not CURL8 else
                 error(100, "Too many response headers"), id="headers-10000"),
    pytest.param(b"HTTP/1.1 200 OK\r\n" + _many_headers(400, b"a" * 1000) + b"Content-Length: 0\r\n\r\n",
                 error(56, "Too large response headers"), id="header-section-400k"),
    pytest.param(b"HTTP/1.1 200 OK\r\nThis line has no colon\r\nContent-Length: 2\r\n\r\nok",
                 error(8, "Header without colon"), id="header-without-colon"),
    pytest.param(b"HTTP/1.1 200 OK\r\nX-A: a\x00b\r\nContent-Length: 2\r\n\r\nok",
                 error(8, "Nul byte in header"), id="nul-in-header-value"),
    pytest.param(b"HTTP/1.1 200 OK\r\nX-F: a\r\n b\r\nContent-Length: 2\r\n\r\nok",
                 ok(200, b"ok", 2), id="obs-fold-accepted"),
    # RFC 9112 s8: a response cut inside its header section is incomplete;
    # reporting it as a successful 200 with an empty body is wrong
    pytest.param(b"HTTP/1.1 200 OK\r\nContent-Le", error(r"\d+"), id="eof-inside-headers"),
    pytest.param(b"HTTP/1.1 100 Continue\r\n\r\n", error(52, "Empty reply"), id="1xx-then-close"),
    pytest.param(b"", error(52, "Empty reply", 0), id="close-without-a-byte"),
    # -- framing
    pytest.param(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n",
                 error(56, "(hexadecimal.*chunked|chunk hex-length char not a hex digit)"), id="chunk-size-not-hex"),
    pytest.param(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + b"f" * 20 + b"\r\nabc",
                 error(56, "(hexadecimal.*chunked|chunk hex-length longer than)"), id="chunk-size-overflow"),
    pytest.param(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n10\r\nabc",
                 error(18, "outstanding read data"), id="chunked-truncated"),
    pytest.param(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: foo\r\n\r\nok",
                 error(61), id="transfer-encoding-unknown"),
    pytest.param(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\nConnection: close\r\n\r\nabc",
                 error(18, "97 bytes (remaining|missing)"), id="content-length-longer-than-body"),
    pytest.param(b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\nok",
                 error(8, "Content-Length"), id="content-length-negative"),
    # RFC 9112 s6.3: differing Content-Length values make the framing
    # invalid; a user agent MUST treat it as an unrecoverable error
    pytest.param(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 5\r\n\r\nabcde",
                 error(r"\d+"), id="content-length-conflicting"),
    pytest.param(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\nok",
                 ok(200, b"ok"), id="content-length-repeated-same"),
    pytest.param(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\nTransfer-Encoding: chunked\r\n\r\n"
                 + _chunked(b"abc"), ok(200, b"abc"), id="chunked-overrides-content-length"),
    pytest.param(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nbody until close",
                 ok(200, b"body until close"), id="no-length-connection-close"),
]

BYTES_CASES_WITH_PARAMS: list[Any] = [
    # (data, expect, client params, query params)
    pytest.param(b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: 10\r\n\r\n0123456789",
                 error(61, "unencoding"), {}, {"headers": ["Accept-Encoding: gzip"]},
                 id="gzip-invalid-body"),
    pytest.param(b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: %d\r\n\r\n" % len(GZ)
                 + GZ, ok(200, GZ_BODY), {}, {"headers": ["Accept-Encoding: gzip"]},
                 id="gzip-valid-body-decoded"),
    # Connection: close, since this server closes after each reply: libcurl
    # must not race to reuse the dying connection (curl error 55 under ASan)
    pytest.param(b"HTTP/1.1 302 Found\r\nLocation: /\r\nContent-Length: 0\r\n"
                 b"Connection: close\r\n\r\n",
                 error(47, r"Maximum \(10\) redirects", 302), {"curl_follow_redirect": 1}, {},
                 id="redirect-loop"),
    pytest.param(b"HTTP/1.1 302 Found\r\nLocation: file:///etc/passwd\r\nContent-Length: 0\r\n\r\n",
                 error(1, 'Protocol "file" (not supported|(is )?disabled)', 302), {"curl_follow_redirect": 1}, {},
                 id="redirect-to-file-url"),
    pytest.param(b"HTTP/1.1 302 Found\r\nLocation: dict://127.0.0.1:1/x\r\nContent-Length: 0\r\n\r\n",
                 error(1, 'Protocol "dict" (not supported|(is )?disabled)', 302), {"curl_follow_redirect": 1}, {},
                 id="redirect-to-dict-url"),
    pytest.param(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % (CAP + 1) + b"x" * (CAP + 1),
                 cap_error(63), {"max_body_size": CAP}, {}, id="body-cap-content-length"),
    pytest.param(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                 + _chunked(b"x" * 600, b"x" * 600), cap_error("(23|63)"), {"max_body_size": CAP}, {},
                 id="body-cap-chunked"),
    pytest.param(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n" + b"x" * (CAP + 1),
                 cap_error("(23|63)"), {"max_body_size": CAP}, {}, id="body-cap-until-close"),
    pytest.param(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + _chunked(b"x" * CAP),
                 ok(200, b"x" * CAP), {"max_body_size": CAP}, {}, id="body-cap-exactly-at-cap"),
]


@pytest.mark.parametrize(("data", "expect"), BYTES_CASES)
def test_server_sends_bytes_then_closes(
    raw_server_factory: RawServerFactory, data: bytes, expect: Expect
) -> None:
    """The server reads the request, writes ``data``, closes (FIN)."""
    server = raw_server_factory.reply(data)
    reply, delta, _ = one_query(f"{server.url}/case")
    assert server.requests.wait_for(1, timeout=WAIT)
    check_reply(reply, delta, expect)


@pytest.mark.parametrize(("data", "expect", "client_params", "query_params"), BYTES_CASES_WITH_PARAMS)
def test_server_sends_bytes_with_options(
    raw_server_factory: RawServerFactory,
    data: bytes,
    expect: Expect,
    client_params: dict[str, Any],
    query_params: dict[str, Any],
) -> None:
    """As above, with client or query options (decoding, redirects, body cap)."""
    server = raw_server_factory.reply(data)
    reply, delta, _ = one_query(f"{server.url}/case", client_params, query_params)
    check_reply(reply, delta, expect)


# ------------------------------------------------ timing and TCP behaviour


def _reset(conn: socket.socket) -> None:
    """Close with SO_LINGER 0: the peer gets an RST, not a FIN."""
    conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    conn.close()


def _wait_peer_close(conn: socket.socket, limit: float = WAIT) -> None:
    """Read and discard until the client closes (or ``limit`` s pass)."""
    conn.settimeout(limit)
    try:
        while conn.recv(65536):
            pass
    except OSError:
        pass


def _send_then_reset(data: bytes) -> Callable[[socket.socket, bytes], None]:
    def handler(conn: socket.socket, request: bytes) -> None:
        if data:
            conn.sendall(data)
            time.sleep(0.05)  # let the client read it before the RST
        _reset(conn)

    return handler


def _never_answer(conn: socket.socket, request: bytes) -> None:
    _wait_peer_close(conn)


def _drip(prefix: bytes, drip: bytes) -> Callable[[socket.socket, bytes], None]:
    """Send ``prefix`` then one byte of ``drip`` every 100 ms."""

    def handler(conn: socket.socket, request: bytes) -> None:
        conn.sendall(prefix)
        for i in range(len(drip)):
            conn.sendall(drip[i : i + 1])  # raises once the client is gone
            time.sleep(0.1)

    return handler


def _half_close(data: bytes) -> Callable[[socket.socket, bytes], None]:
    """Send ``data``, shutdown(SHUT_WR), keep the socket open for reading."""

    def handler(conn: socket.socket, request: bytes) -> None:
        conn.sendall(data)
        conn.shutdown(socket.SHUT_WR)
        _wait_peer_close(conn)

    return handler


HANDLER_CASES: list[Any] = [
    pytest.param(_send_then_reset(b""), error(56, "reset by peer", 0), (0, 1),
                 id="reset-before-any-byte"),
    pytest.param(_send_then_reset(b"HTTP/1.1 200 OK\r\nContent-Le"),
                 error(56, "reset by peer"), (0, 1), id="reset-inside-headers"),
    pytest.param(_send_then_reset(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nabc"),
                 error(56, "reset by peer", 200), (0, 1), id="reset-inside-body"),
    pytest.param(_never_answer, Expect("timeout", TIMEOUT.err, 0, b""), (0.4, 1.5),
                 id="accepts-never-answers"),
    pytest.param(_drip(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n", b"x" * 100),
                 Expect("timeout", TIMEOUT.err, 200), (0.4, 1.5), id="drip-body-byte-per-100ms"),
    pytest.param(_drip(b"", b"HTTP/1.1 200 OK\r\n" + b"X-Slow: " + b"s" * 100),
                 TIMEOUT, (0.4, 1.5), id="drip-headers-byte-per-100ms"),
    pytest.param(_half_close(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nabc"),
                 error(18, "97 bytes (remaining|missing)", 200), (0, 1), id="half-close-inside-body"),
    pytest.param(_half_close(b"HTTP/1.0 200 OK\r\n\r\nuntil half-close"),
                 ok(200, b"until half-close"), (0, 1), id="half-close-ends-unframed-body"),
]


@pytest.mark.parametrize(("handler", "expect", "seconds"), HANDLER_CASES)
def test_server_misbehaves_over_time(
    raw_server_factory: RawServerFactory,
    handler: Callable[[socket.socket, bytes], None],
    expect: Expect,
    seconds: tuple[float, float],
) -> None:
    """Resets, silence, slow drips and half-closes end at the right moment
    (a 500 ms deadline ends a drip at ~0.5 s, not when the drip ends)."""
    server = raw_server_factory(handler)
    reply, delta, elapsed = one_query(f"{server.url}/case")
    check_reply(reply, delta, expect)
    low, high = seconds
    assert low <= elapsed <= high, f"took {elapsed:.2f} s, expected {low}..{high}"
    if expect.outcome == "timeout":
        found = re.search(r"after (\d+) milliseconds", reply.err or "")
        assert found and DEADLINE_MS <= int(found.group(1)) < DEADLINE_MS + 500, reply.err


def test_connection_refused() -> None:
    """A port with a bound socket that does not listen refuses at once."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))  # bound, never listening: RST to SYN
        port = sock.getsockname()[1]
        reply, delta, elapsed = one_query(f"http://127.0.0.1:{port}/")
    check_reply(reply, delta, error(7, "Could(n't| not) connect to server", 0))
    assert elapsed < 1.0


# -------------------------------------------------------------------- TLS


@pytest.mark.parametrize(
    ("https_server", "detail"),
    [
        ("expired", "certificate has expired"),
        ("wronghost", "subject name .*target (host name|ipv4 address|IPv4 address) '127.0.0.1'"),
        ("selfsigned", "self-signed certificate"),
    ],
    indirect=["https_server"],
)
def test_tls_bad_server_certificate(https_server: HTTPTestServer, certs: Certs, detail: str) -> None:
    """Expired, wrong-host and self-signed certificates fail verification
    (curl error 60, the reason in the text), trusting the test CA."""
    reply, delta, _ = one_query(
        f"{https_server.url}/echo", {"tls_ca_path": certs.capath, "connection_timeout": 3000}
    )
    check_reply(reply, delta, error(60, detail, 0))


def test_tls_good_certificate_control(https_server: HTTPTestServer, certs: Certs) -> None:
    """Positive control for the TLS cases: the CA-signed server works."""
    reply, delta, _ = one_query(
        f"{https_server.url}/echo", {"tls_ca_path": certs.capath, "connection_timeout": 3000}
    )
    check_reply(reply, delta, ok(200))


def test_tls_client_cert_path_missing(https_server: HTTPTestServer, certs: Certs) -> None:
    """A client certificate path that does not exist: curl error 58 naming it."""
    missing = certs.directory / "no-such-client-cert.pem"
    reply, delta, _ = one_query(
        f"{https_server.url}/echo",
        {"tls_ca_path": certs.capath, "connection_timeout": 3000},
        {"tls_client_cert": missing, "tls_client_key": certs.client_key},
    )
    check_reply(reply, delta, error(58, re.escape(str(missing)), 0))


# ------------------------------------------------ connection reuse hazards


def _read_request(conn: socket.socket, limit: float = 2.0) -> bytes:
    """The next request head on ``conn`` (b"" when the client closes)."""
    data = b""
    conn.settimeout(limit)
    try:
        while b"\r\n\r\n" not in data:
            chunk = conn.recv(65536)
            if not chunk:
                return b""
            data += chunk
    except OSError:
        return b""
    return data


class _ConnCounter:
    """Numbers the connections a handler sees (1, 2, ...)."""

    def __init__(self) -> None:
        self._n = 0
        self._lock = threading.Lock()

    def next(self) -> int:
        with self._lock:
            self._n += 1
            return self._n


def test_keepalive_closed_by_server_between_requests(raw_server_factory: RawServerFactory) -> None:
    """The server answers one request per connection and closes (FIN) without
    saying so: the second request goes over a new connection and succeeds."""
    counter = _ConnCounter()

    def handler(conn: socket.socket, request: bytes) -> None:
        body = b"conn%d" % counter.next()
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))

    server = raw_server_factory(handler)
    with checked_client(connection_timeout=DEADLINE_MS) as client:
        first = client.query(f"{server.url}/1").result(timeout=WAIT)
        time.sleep(0.1)  # the FIN arrives while the connection idles in the pool
        second = client.query(f"{server.url}/2").result(timeout=WAIT)
        stats = client.stats()
    assert (first.ok, first.body) == (True, b"conn1"), first.err
    assert (second.ok, second.body) == (True, b"conn2"), second.err
    assert server.connections == 2
    assert (stats["requests"], stats["replies"], stats["errors"]) == (2, 2, 0)


def test_stale_keepalive_connection_is_retried(raw_server_factory: RawServerFactory) -> None:
    """The server reads the second request on a kept-alive connection and
    closes without a byte: the query is retried on a new connection, counted
    once, and succeeds."""
    counter = _ConnCounter()

    def handler(conn: socket.socket, request: bytes) -> None:
        body = b"conn%d" % counter.next()
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
        _read_request(conn)  # the next request on this connection: dropped

    server = raw_server_factory(handler)
    with checked_client(connection_timeout=2000) as client:
        first = client.query(f"{server.url}/1").result(timeout=WAIT)
        second = client.query(f"{server.url}/2").result(timeout=WAIT)
        stats = client.stats()
    assert (first.ok, first.body) == (True, b"conn1"), first.err
    assert (second.ok, second.body) == (True, b"conn2"), second.err
    assert (stats["requests"], stats["replies"], stats["errors"]) == (2, 2, 0)


def test_content_length_shorter_than_body_no_second_response(
    raw_server_factory: RawServerFactory,
) -> None:
    """``Content-Length: 3`` followed by "abc" and a whole fake response: the
    reply is the first 3 bytes, and the extra bytes never become the reply
    of the next query (the connection is not reused)."""
    counter = _ConnCounter()
    smuggled = b"HTTP/1.1 200 OK\r\nContent-Length: 8\r\n\r\nSMUGGLED"

    def handler(conn: socket.socket, request: bytes) -> None:
        if counter.next() == 1:
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabc" + smuggled)
            if _read_request(conn):  # reused: answer so the test can tell
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nreused")
        else:
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nfresh")

    server = raw_server_factory(handler)
    with checked_client(connection_timeout=2000) as client:
        first = client.query(f"{server.url}/1").result(timeout=WAIT)
        second = client.query(f"{server.url}/2").result(timeout=WAIT)
        stats = client.stats()
    assert (first.ok, first.status, first.body) == (True, 200, b"abc"), first.err
    assert second.ok, second.err
    assert second.body == b"fresh", f"second reply came from the stale bytes: {second.body!r}"
    assert (stats["requests"], stats["replies"], stats["errors"]) == (2, 2, 0)
    assert server.connections == 2


# ------------------------------------------------------- cancel and close


def test_cancel_while_server_is_silent(raw_server_factory: RawServerFactory) -> None:
    """cancel() ends a query the server never answers: "CANCELLED: ",
    counted in cancelled, not in errors or timeouts, well before the deadline."""
    server = raw_server_factory(_never_answer)
    with checked_client(connection_timeout=5000) as client:
        handle = client.query(f"{server.url}/silent")
        assert server.requests.wait_for(1, timeout=WAIT)
        start = time.monotonic()
        assert handle.cancel() is True
        reply = handle.result(timeout=WAIT)
        elapsed = time.monotonic() - start
        assert handle.cancel() is False  # already finished
        del handle
        stats = client.stats()
    check_reply(reply, stats_delta(dict.fromkeys(stats, 0), stats), Expect("cancelled", r"^CANCELLED: "))
    assert elapsed < 1.0


def test_close_with_request_in_flight(raw_server_factory: RawServerFactory) -> None:
    """close() while the server is silent: the reply says "CANCELLED: client
    closed", and close() does not wait for the deadline."""
    server = raw_server_factory(_never_answer)
    with checked_client(connection_timeout=5000) as client:
        handle = client.query(f"{server.url}/silent")
        assert server.requests.wait_for(1, timeout=WAIT)
        start = time.monotonic()
        client.close()
        assert time.monotonic() - start < 1.0
        reply = handle.result(timeout=WAIT)
        del handle
        stats = client.stats()
    check_reply(reply, stats_delta(dict.fromkeys(stats, 0), stats),
                Expect("cancelled", r"^CANCELLED: client closed"))


def test_many_bad_servers_at_once(raw_server_factory: RawServerFactory) -> None:
    """One client, two workers, 40 concurrent queries to good, resetting,
    silent, garbage and refusing servers: every reply has the outcome of its
    server and the counters add up."""
    good = raw_server_factory.reply(OK2)
    reset = raw_server_factory(_send_then_reset(b""))
    silent = raw_server_factory(_never_answer)
    garbage = raw_server_factory.reply(b"\x00\x01garbage\r\n\r\n")
    refusing = socket.socket()
    refusing.bind(("127.0.0.1", 0))
    refused_url = f"http://127.0.0.1:{refusing.getsockname()[1]}/"
    want = {
        f"{good.url}/": "ok",
        f"{reset.url}/": "error",
        f"{silent.url}/": "timeout",
        f"{garbage.url}/": "error",
        refused_url: "error",
    }
    try:
        with checked_client(workers=2, connection_timeout=DEADLINE_MS) as client:
            for _ in range(8):
                for url in want:
                    client.query(url)
            replies = list(client.completions(timeout=WAIT))
            stats = client.stats()
    finally:
        refusing.close()
    assert len(replies) == 40
    outcomes = Counter(
        (r.url, "ok" if r.ok else "timeout" if r.timed_out else "error") for r in replies
    )
    assert outcomes == Counter({(url, kind): 8 for url, kind in want.items()})
    assert stats["requests"] == 40 and stats["inflight"] == 0
    assert (stats["replies"], stats["errors"], stats["timeouts"]) == (8, 24, 8)


def test_close_releases_every_fd(fresh_http_server: HTTPTestServer, open_fds: FdBaseline) -> None:
    """close() (not garbage collection) releases every fd the client opened
    (connections, each worker's loop and wake-up fds, and its completion
    eventfd), even while a reply of that client is still held."""
    client = hac.Client(workers=2, connection_timeout=DEADLINE_MS)
    try:
        reply = client.query(f"{fresh_http_server.url}/echo").result(timeout=WAIT)
        assert reply.ok, reply.err
    finally:
        client.close()
    open_fds.assert_back(None, "after close(), a reply still held", FD_SETTLE)
    assert reply.ok
    del client
    open_fds.assert_back(None, "after the closed client was dropped", FD_SETTLE)


@pytest.mark.parametrize("head", [b"http/\n\n", b"HTTP/2 404\r\n\r\n",
                                  b"HTTP/1.1 100 C\r\n\r\nhttp/x\r\n\r\n", b"HTTP/2 000\n\n",
                                  b"HTTP/1.1 000 X\r\n\r\n"])
def test_a_status_line_libcurl_would_read_as_200_is_refused(
    raw_server_factory: RawServerFactory, head: bytes
) -> None:
    # found by tests/input/test_response_property.py: libcurl takes these
    # for "HTTP/1.0 200"; the reply must not be ok with a status never sent
    srv = raw_server_factory.reply(head)
    with hac.Client(connection_timeout=3000) as c:
        r = c.query(srv.url + "/").result()
        if not CURL8 and head.startswith(b"HTTP/2 404"):
            # libcurl 7.88 reads it as an HTTP/2-style status line: the 404 sent
            assert r.ok and r.status == 404, (r.status, r.err)
            return
        assert not r.ok and r.status == 0, (r.status, r.err)
        assert r.err and c.stats()["errors"] == 1, r.err
        if CURL8:  # (7.88 refuses some of them itself)
            assert "BAD_RESPONSE" in r.err, r.err
