"""Real HTTP(S) and raw TCP servers on 127.0.0.1 for exercising the client.

Every server binds an OS-chosen port on 127.0.0.1, runs in background daemon
threads, exposes ``.url``/``.base_url``/``.port``/``.close()`` and works as a
context manager.  Nothing here ever connects anywhere itself.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import http.server
import json
import re
import secrets
import socket
import socketserver
import ssl
import sys
import threading
from collections.abc import Callable, Iterable, Iterator
from types import TracebackType
from typing import Any, Generic, TypeVar, overload
from urllib.parse import parse_qs, unquote, urlsplit

from .certs import Certs, make_expired_cert, server_context

__all__ = [
    "HOST",
    "HTTPSServers",
    "HTTPTestServer",
    "RawServer",
    "RawServerFactory",
    "RequestLog",
    "header",
    "pattern_bytes",
]

HOST = "127.0.0.1"

_PATTERN = bytes(range(256))

# Handshakes are done in the per-connection thread; bound them so a client
# that connects and never speaks TLS cannot pin a thread forever.
_TLS_HANDSHAKE_TIMEOUT = 10.0

# serve_forever() only notices shutdown() between polls, so this bounds close().
_POLL_INTERVAL = 0.05

# /auth/digest credentials and realm (RFC 7616, MD5, qop=auth)
DIGEST_USER = "user"
DIGEST_PASSWORD = "pass"
DIGEST_REALM = "digest-test"
_DIGEST_PARAM = re.compile(r'\s*([A-Za-z0-9_-]+)\s*=\s*("(?:[^"\\]|\\.)*"|[^,\s]*)\s*,?')

T = TypeVar("T")


def pattern_bytes(n: int) -> bytes:
    """Return ``bytes(i % 256 for i in range(n))`` without a per-byte loop."""
    full, rest = divmod(n, 256)
    return _PATTERN * full + _PATTERN[:rest]


def header(request: dict[str, Any], name: str) -> str | None:
    """The first header ``name`` (case-insensitive) of a request that
    HTTPTestServer recorded (an item of its ``requests``), or None."""
    for key, value in request["headers"]:
        if key.lower() == name.lower():
            return str(value)
    return None


class RequestLog(Generic[T]):
    """Thread-safe list of records that tests can index, iterate and wait on."""

    def __init__(self) -> None:
        self._items: list[T] = []
        self._cond = threading.Condition()

    def append(self, item: T) -> None:
        """Add a record and wake anyone waiting in :meth:`wait_for`."""
        with self._cond:
            self._items.append(item)
            self._cond.notify_all()

    def clear(self) -> None:
        """Forget all records."""
        with self._cond:
            self._items.clear()

    def snapshot(self) -> list[T]:
        """Return a copy of the records as a plain list."""
        with self._cond:
            return list(self._items)

    def wait_for(self, count: int, timeout: float = 5.0) -> bool:
        """Block until at least ``count`` records exist; False on timeout."""
        with self._cond:
            return self._cond.wait_for(lambda: len(self._items) >= count, timeout)

    def __len__(self) -> int:
        with self._cond:
            return len(self._items)

    @overload
    def __getitem__(self, index: int) -> T: ...

    @overload
    def __getitem__(self, index: slice) -> list[T]: ...

    def __getitem__(self, index: int | slice) -> T | list[T]:
        with self._cond:
            return self._items[index]

    def __iter__(self) -> Iterator[T]:
        # Iterate over a snapshot so concurrent appends cannot break the loop.
        return iter(self.snapshot())

    def __eq__(self, other: object) -> bool:
        if isinstance(other, RequestLog):
            return self.snapshot() == other.snapshot()
        if isinstance(other, list):
            return self.snapshot() == other
        return NotImplemented

    def __repr__(self) -> str:
        return f"RequestLog({self.snapshot()!r})"


class _Counter:
    """A lock-protected integer."""

    def __init__(self) -> None:
        self._value = 0
        self._lock = threading.Lock()

    def increment(self) -> None:
        with self._lock:
            self._value += 1

    def reset(self) -> None:
        with self._lock:
            self._value = 0

    @property
    def value(self) -> int:
        with self._lock:
            return self._value


class _ConnectionSet:
    """Open sockets, so close() can unblock threads idling on keep-alive reads."""

    def __init__(self) -> None:
        self._socks: set[socket.socket] = set()
        self._lock = threading.Lock()

    def add(self, sock: socket.socket) -> None:
        with self._lock:
            self._socks.add(sock)

    def discard(self, sock: socket.socket) -> None:
        with self._lock:
            self._socks.discard(sock)

    def abort_all(self) -> None:
        # Shut down while holding the lock: owners discard() under the same lock
        # before closing, so we can never hit a closed-and-reused descriptor.
        with self._lock:
            for sock in self._socks:
                try:
                    # socket.socket.shutdown directly: SSLSocket.shutdown would
                    # also drop its SSL object under the feet of the reader thread.
                    socket.socket.shutdown(sock, socket.SHUT_RDWR)
                except OSError:
                    pass


def _set_nodelay(sock: socket.socket) -> None:
    # Headers and body go out as separate writes; without this, Nagle plus
    # delayed ACKs can add ~40 ms stalls that would distort timing tests.
    try:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    except OSError:
        pass


# --------------------------------------------------------------------------
# HTTP/1.1 server
# --------------------------------------------------------------------------


class _LineTap:
    """File wrapper that remembers every line read through ``readline``."""

    def __init__(self, fp: Any) -> None:
        self._fp = fp
        self.lines: list[bytes] = []

    def readline(self, limit: int = -1) -> bytes:
        line: bytes = self._fp.readline(limit)
        self.lines.append(line)
        return line

    def __getattr__(self, name: str) -> Any:
        return getattr(self._fp, name)


def _parse_header_lines(lines: Iterable[bytes]) -> list[tuple[str, str]]:
    """Split raw header lines into (name, value) pairs, keeping order and case."""
    headers: list[tuple[str, str]] = []
    for raw in lines:
        line = raw.rstrip(b"\r\n")
        if not line:
            break  # blank line ends the header block
        text = line.decode("latin-1")
        if text[0] in " \t" and headers:
            # obs-fold continuation: belongs to the previous header's value.
            name, value = headers[-1]
            folded = text.strip(" \t")
            headers[-1] = (name, f"{value} {folded}" if value else folded)
            continue
        name, _, value = text.partition(":")
        headers.append((name, value.strip(" \t")))
    return headers


class _BadRequest(Exception):
    """The request body framing could not be parsed."""


class _Handler(http.server.BaseHTTPRequestHandler):
    """Routes every method to the test endpoints and records each request."""

    protocol_version = "HTTP/1.1"
    server_version = "HTTPTestServer/1.0"
    server: _ThreadingHTTPServer

    raw_headers: list[tuple[str, str]]
    raw_target: str

    def log_message(self, format: str, *args: Any) -> None:
        """Stay quiet: tests deliberately provoke errors and aborts."""

    def parse_request(self) -> bool:
        """Parse as the stdlib does, but also capture header lines verbatim."""
        # The stdlib only keeps an email.message.Message; tap the reads so the
        # exact names, order and duplicates are available to tests.
        real, tap = self.rfile, _LineTap(self.rfile)
        self.rfile = tap  # type: ignore[assignment]  # only readline() is used
        try:
            return super().parse_request()
        finally:
            self.rfile = real
            self.raw_headers = _parse_header_lines(tap.lines)
            # The stdlib rewrites a leading '//' in self.path; keep the original.
            words = self.requestline.split()
            self.raw_target = words[1] if len(words) >= 2 else ""

    def handle_one_request(self) -> None:
        """Like the stdlib version, but any method name reaches the router."""
        try:
            self.raw_requestline = self.rfile.readline(65537)
            if len(self.raw_requestline) > 65536:
                self.requestline = self.request_version = self.command = ""
                self.send_error(414)
                return
            if not self.raw_requestline:
                self.close_connection = True
                return
            if not self.parse_request():
                return
            self._handle()
            self.wfile.flush()
        except TimeoutError:
            self.close_connection = True

    # -- request body -----------------------------------------------------

    def _read_exact(self, n: int) -> bytes:
        data: bytes = self.rfile.read(n)
        if len(data) < n:
            raise ConnectionError("client closed the connection mid-body")
        return data

    def _read_chunked(self) -> bytes:
        chunks: list[bytes] = []
        while True:
            line = self.rfile.readline(65537)
            if not line:
                raise ConnectionError("client closed the connection mid-body")
            try:
                size = int(line.split(b";", 1)[0].strip(), 16)
            except ValueError:
                raise _BadRequest("bad chunk size") from None
            if size == 0:
                break
            chunks.append(self._read_exact(size))
            self.rfile.readline(65537)  # CRLF after the chunk data
        while True:  # trailer section, discarded
            line = self.rfile.readline(65537)
            if line in (b"\r\n", b"\n", b""):
                break
        return b"".join(chunks)

    def _read_body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            return self._read_chunked()
        length = self.headers.get("Content-Length")
        if length is None:
            return b""
        try:
            n = int(length)
        except ValueError:
            raise _BadRequest("bad Content-Length") from None
        if n < 0:
            raise _BadRequest("negative Content-Length")
        return self._read_exact(n)

    # -- response helpers -------------------------------------------------

    def _send(
        self,
        status: int,
        body: bytes = b"",
        headers: Iterable[tuple[str, str]] = (),
        reason: str | None = None,
    ) -> None:
        """Send a complete response; HEAD/1xx/204/304 get headers only."""
        self.send_response(status, reason)
        has_connection = False
        for name, value in headers:
            has_connection |= name.lower() == "connection"
            self.send_header(name, value)
        bodyless_status = status < 200 or status in (204, 304)
        if not bodyless_status:
            self.send_header("Content-Length", str(len(body)))
        if self.close_connection and not has_connection:
            # Tell the client explicitly so it does not try to reuse the socket.
            self.send_header("Connection", "close")
        self.end_headers()
        if body and not bodyless_status and self.command != "HEAD":
            self.wfile.write(body)

    # -- routing ----------------------------------------------------------

    def _handle(self) -> None:
        try:
            body = self._read_body()
        except _BadRequest:
            self.close_connection = True
            self._send(400, b"bad request")
            return
        self.server.requests.append(
            {
                "method": self.command,
                "path": self.raw_target,
                "headers": list(self.raw_headers),
                "body": body,
                "peer_port": self.client_address[1],
                "version": self.request_version,
            }
        )
        path, _, query = self.raw_target.partition("?")
        if "://" in path:
            # Absolute-form target (proxy style): route on its path part. Not
            # used for origin-form, where urlsplit would read "//x" as a host.
            url = urlsplit(self.raw_target)
            path, query = url.path, url.query
        route, _, arg = path.lstrip("/").partition("/")

        if route == "echo":
            self._echo(body)
        elif route == "status" and arg.isdigit():
            self._status(int(arg), query)
        elif route == "headers":
            self._send(
                200,
                b"ok",
                [
                    ("X-Multi", "one"),
                    ("X-Multi", "two"),
                    ("X-Multi", "three"),
                    ("Set-Cookie", "a=1"),
                    ("Set-Cookie", "b=2"),
                    ("X-Single", "value"),
                ],
            )
        elif route == "delay" and arg.isdigit():
            # Each connection has its own thread, so sleeping here only
            # delays this response.
            threading.Event().wait(int(arg) / 1000)
            self._send(200, b"delayed " + arg.encode())
        elif route in ("bytes", "large") and arg.isdigit():
            self._send(
                200,
                pattern_bytes(int(arg)),
                [("Content-Type", "application/octet-stream")],
            )
        elif route == "chunked" and not arg:
            self._chunked([b"hello, ", b"chunked ", b"world"])
        elif route == "redirect" and arg.isdigit():
            n = int(arg)
            if n <= 0:
                self._send(200, b"landed")
            else:
                self._send(302, b"redirecting", [("Location", f"/redirect/{n - 1}")])
        elif route == "auth" and arg == "basic":
            self._basic_auth()
        elif route == "auth" and arg == "digest":
            self._digest_auth()
        elif route == "redirect-to" and not arg:
            self._redirect_to(query)
        elif route == "close" and not arg:
            self.close_connection = True
            self._send(200, b"bye", [("Connection", "close")])
        else:
            self._send(404, b"not found")

    def _echo(self, body: bytes) -> None:
        payload = {
            "method": self.command,
            "path": self.raw_target,
            "headers": [[name, value] for name, value in self.raw_headers],
            "body": body.decode("latin-1"),
            "body_len": len(body),
            "version": self.request_version,
        }
        self._send(
            200,
            json.dumps(payload).encode(),
            [("Content-Type", "application/json")],
        )

    def _status(self, code: int, query: str) -> None:
        reason: str | None = None
        for pair in query.split("&"):
            key, sep, value = pair.partition("=")
            if key == "reason" and sep:
                # latin-1 maps every byte to one char, so arbitrary
                # percent-encoded bytes survive into the status line.
                reason = unquote(value, encoding="latin-1")
        self._send(code, f"status {code}".encode(), reason=reason)

    def _chunked(self, chunks: list[bytes]) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        if self.command == "HEAD":
            return
        for chunk in chunks:
            self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
        self.wfile.write(b"0\r\n\r\n")

    def _basic_auth(self) -> None:
        scheme, _, credentials = self.headers.get("Authorization", "").partition(" ")
        try:
            decoded = base64.b64decode(credentials.strip(), validate=True)
        except (binascii.Error, ValueError):
            decoded = b""
        if scheme.lower() == "basic" and decoded == b"user:pass":
            self._send(200, b"authenticated")
        else:
            self._send(
                401,
                b"unauthorized",
                [("WWW-Authenticate", 'Basic realm="test"')],
            )


    def _digest_auth(self) -> None:
        """HTTP Digest (RFC 7616): MD5, qop=auth, user/pass; 401 + challenge
        otherwise.  Nonces are issued by this server and remembered."""
        scheme, _, rest = self.headers.get("Authorization", "").partition(" ")
        if scheme.lower() == "digest" and self._digest_valid(_parse_digest(rest)):
            self._send(200, b"digest authenticated")
            return
        nonce = secrets.token_hex(16)
        self.server.digest_nonces.add(nonce)
        challenge = (
            f'Digest realm="{DIGEST_REALM}", qop="auth", algorithm=MD5, '
            f'nonce="{nonce}", opaque="0123abcd"'
        )
        self._send(401, b"unauthorized", [("WWW-Authenticate", challenge)])

    def _digest_valid(self, p: dict[str, str]) -> bool:
        if (
            p.get("username") != DIGEST_USER
            or p.get("realm") != DIGEST_REALM
            or p.get("nonce") not in self.server.digest_nonces
            or p.get("uri") != self.raw_target
            or p.get("qop") != "auth"
            or p.get("algorithm", "MD5").upper() != "MD5"
            or not p.get("nc")
            or not p.get("cnonce")
        ):
            return False

        def md5(text: str) -> str:
            return hashlib.md5(text.encode()).hexdigest()

        ha1 = md5(f"{DIGEST_USER}:{DIGEST_REALM}:{DIGEST_PASSWORD}")
        ha2 = md5(f"{self.command}:{p['uri']}")
        expected = md5(f"{ha1}:{p['nonce']}:{p['nc']}:{p['cnonce']}:auth:{ha2}")
        return secrets.compare_digest(expected, p.get("response", "").lower())

    def _redirect_to(self, query: str) -> None:
        """``/redirect-to?url=<percent-encoded>&status=302``: Location is that
        URL; without ``url`` the Location is this very request (a loop)."""
        params = parse_qs(query, keep_blank_values=True)
        location = params.get("url", [self.raw_target])[0]
        status_text = params.get("status", ["302"])[0]
        status = int(status_text) if status_text.isdigit() else 302
        self._send(status, b"redirecting", [("Location", location)])


def _parse_digest(text: str) -> dict[str, str]:
    """The name=value pairs of a Digest Authorization header, unquoted."""
    out: dict[str, str] = {}
    for m in _DIGEST_PARAM.finditer(text):
        value = m.group(2)
        if value.startswith('"') and value.endswith('"') and len(value) >= 2:
            value = re.sub(r"\\(.)", r"\1", value[1:-1])
        out[m.group(1).lower()] = value
    return out


class _ThreadingHTTPServer(socketserver.ThreadingTCPServer):
    """ThreadingTCPServer with optional TLS, request log and quiet errors."""

    allow_reuse_address = True
    daemon_threads = True
    request_queue_size = 1024
    # With block_on_close, server_close() would join idle keep-alive threads.
    block_on_close = False

    def __init__(self, tls_context: ssl.SSLContext | None) -> None:
        self.tls_context = tls_context
        self.requests: RequestLog[dict[str, Any]] = RequestLog()
        self.errors: RequestLog[BaseException] = RequestLog()
        self.connection_count = _Counter()
        self.open_connections = _ConnectionSet()
        self.digest_nonces: set[str] = set()
        super().__init__((HOST, 0), _Handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        # Counted in the accept thread so the number is final by the time
        # the client has its response.
        self.connection_count.increment()
        super().process_request(request, client_address)

    def finish_request(self, request: Any, client_address: Any) -> None:
        conn: socket.socket = request
        self.open_connections.add(conn)
        try:
            _set_nodelay(conn)
            if self.tls_context is not None:
                conn.settimeout(_TLS_HANDSHAKE_TIMEOUT)
                tls = self.tls_context.wrap_socket(
                    conn, server_side=True, do_handshake_on_connect=False
                )
                self.open_connections.discard(conn)
                conn = tls
                self.open_connections.add(conn)
                try:
                    tls.do_handshake()
                except OSError:
                    # Bad/missing client cert, untrusted server cert, plain
                    # HTTP on the TLS port...: just drop this connection.
                    return
                tls.settimeout(None)
            self.RequestHandlerClass(conn, client_address, self)  # type: ignore[arg-type]
        finally:
            self.open_connections.discard(conn)
            if conn is not request:
                # wrap_socket detached `request`; the TLS socket owns the fd
                # and shutdown_request() cannot close it for us.
                try:
                    socket.socket.shutdown(conn, socket.SHUT_WR)
                except OSError:
                    pass
                conn.close()

    def shutdown_request(self, request: Any) -> None:
        self.open_connections.discard(request)
        super().shutdown_request(request)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Record unexpected handler exceptions instead of printing them."""
        exc = sys.exc_info()[1]
        # Disconnects and TLS failures are the normal result of tests that
        # abort connections; only keep the rest for debugging.
        if exc is not None and not isinstance(
            exc, (ConnectionError, ssl.SSLError, TimeoutError)
        ):
            self.errors.append(exc)


class HTTPTestServer:
    """Threaded HTTP/1.1 keep-alive server (HTTPS when given a TLS context).

    Endpoints: /echo, /status/<code>[?reason=..], /headers, /delay/<ms>,
    /bytes/<n>, /large/<n>, /chunked, /redirect/<n>, /auth/basic,
    /auth/digest, /redirect-to?url=..&status=.., /close; anything else is 404.  ``requests`` records every request as a dict with
    method, path, headers (list of (name, value) as received), body,
    peer_port and version; ``connections`` counts accepted TCP connections.
    """

    # What serves the connections; transport_servers.CountingHTTPServer
    # swaps in one that also keeps per-connection accounting.
    _server_class: type[_ThreadingHTTPServer] = _ThreadingHTTPServer

    def __init__(self, tls_context: ssl.SSLContext | None = None) -> None:
        self._server = self._server_class(tls_context)
        self.host = HOST
        self.port: int = self._server.server_address[1]
        self.scheme = "http" if tls_context is None else "https"
        self.base_url = f"{self.scheme}://{HOST}:{self.port}"
        self.url = self.base_url
        self.requests: RequestLog[dict[str, Any]] = self._server.requests
        self.errors: RequestLog[BaseException] = self._server.errors
        self._closed = False
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": _POLL_INTERVAL},
            name=f"HTTPTestServer:{self.port}",
            daemon=True,
        )
        self._thread.start()

    @property
    def connections(self) -> int:
        """Number of TCP connections accepted so far (since the last reset)."""
        return self._server.connection_count.value

    def reset(self) -> None:
        """Clear the request log, error log and connection count."""
        self.requests.clear()
        self.errors.clear()
        self._server.connection_count.reset()

    def close(self) -> None:
        """Stop accepting, drop open connections and stop the serving thread."""
        if self._closed:
            return
        self._closed = True
        self._server.shutdown()
        self._server.server_close()
        self._server.open_connections.abort_all()
        self._thread.join(timeout=5)

    def __enter__(self) -> HTTPTestServer:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<HTTPTestServer {self.base_url}>"


# --------------------------------------------------------------------------
# Raw TCP server
# --------------------------------------------------------------------------

RawHandler = Callable[[socket.socket, bytes], None]


class RawServer:
    """TCP server whose handler writes arbitrary bytes with arbitrary timing.

    For every connection it reads until the end of the request headers
    (``b"\\r\\n\\r\\n"``, EOF or ``header_timeout``), records those bytes in
    ``requests`` and calls ``handler(conn, request_bytes)``.  Bytes of the
    body that arrived in the same reads are included; the handler may
    ``conn.recv`` the rest.  The connection is closed after the handler
    returns; handler exceptions are swallowed.
    """

    def __init__(self, handler: RawHandler, header_timeout: float = 2.0) -> None:
        self._handler = handler
        self._header_timeout = header_timeout
        self._sock = socket.create_server((HOST, 0), backlog=1024)
        # A timeout lets the accept loop notice close() even where shutting
        # down a listening socket does not wake accept().
        self._sock.settimeout(0.5)
        self.host = HOST
        self.port: int = self._sock.getsockname()[1]
        self.base_url = f"http://{HOST}:{self.port}"
        self.url = self.base_url
        self.requests: RequestLog[bytes] = RequestLog()
        self._count = _Counter()
        self._open = _ConnectionSet()
        self._stopped = threading.Event()
        self._thread = threading.Thread(
            target=self._accept_loop, name=f"RawServer:{self.port}", daemon=True
        )
        self._thread.start()

    @classmethod
    def reply(cls, data: bytes) -> RawServer:
        """Build a server that answers every connection with exactly ``data``."""

        def handler(conn: socket.socket, request: bytes) -> None:
            conn.sendall(data)

        return cls(handler)

    @property
    def connections(self) -> int:
        """Number of TCP connections accepted so far."""
        return self._count.value

    def _accept_loop(self) -> None:
        while not self._stopped.is_set():
            try:
                conn, _ = self._sock.accept()
            except TimeoutError:
                continue
            except OSError:
                break  # listening socket closed
            self._count.increment()
            threading.Thread(
                target=self._serve, args=(conn,), name="RawServer-conn", daemon=True
            ).start()

    def _read_request(self, conn: socket.socket) -> bytes:
        data = b""
        conn.settimeout(self._header_timeout)
        try:
            while b"\r\n\r\n" not in data:
                chunk = conn.recv(65536)
                if not chunk:
                    break
                data += chunk
        except OSError:
            pass  # timeout or reset: hand over whatever arrived
        return data

    def _serve(self, conn: socket.socket) -> None:
        self._open.add(conn)
        try:
            _set_nodelay(conn)
            request = self._read_request(conn)
            self.requests.append(request)
            try:
                conn.settimeout(None)
                self._handler(conn, request)
            except Exception:
                pass  # handlers may deliberately provoke socket errors
        finally:
            self._open.discard(conn)
            self._close_gracefully(conn)

    @staticmethod
    def _close_gracefully(conn: socket.socket) -> None:
        # Send FIN first and drain briefly: closing with unread client data
        # makes the kernel send RST, which can destroy the reply in flight.
        try:
            conn.shutdown(socket.SHUT_WR)
            conn.settimeout(1.0)
            while conn.recv(65536):
                pass
        except OSError:
            pass  # already closed by the handler, reset, or timed out
        finally:
            conn.close()

    def close(self) -> None:
        """Stop accepting and abort connections still being handled."""
        if self._stopped.is_set():
            return
        self._stopped.set()
        try:
            self._sock.shutdown(socket.SHUT_RDWR)  # wakes accept() on Linux
        except OSError:
            pass
        self._sock.close()
        self._open.abort_all()
        self._thread.join(timeout=5)

    def __enter__(self) -> RawServer:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<RawServer {self.base_url}>"


class RawServerFactory:
    """Creates RawServers for one test and closes them all at teardown."""

    def __init__(self) -> None:
        self.servers: list[RawServer] = []

    def __call__(self, handler: RawHandler, header_timeout: float = 2.0) -> RawServer:
        """Start a RawServer running ``handler(conn, request_bytes)``."""
        return self._track(RawServer(handler, header_timeout=header_timeout))

    def reply(self, data: bytes) -> RawServer:
        """Start a RawServer that answers every connection with ``data``."""
        return self._track(RawServer.reply(data))

    def _track(self, server: RawServer) -> RawServer:
        self.servers.append(server)
        return server

    def close_all(self) -> None:
        """Close every server this factory started."""
        for server in self.servers:
            server.close()
        self.servers.clear()


# --------------------------------------------------------------------------
# HTTPS servers by kind of certificate
# --------------------------------------------------------------------------


def _https_context(certs: Certs, kind: str) -> ssl.SSLContext:
    if kind == "ca":  # CA-signed, for 127.0.0.1 and localhost
        return server_context(certs.server_cert, certs.server_key)
    if kind == "selfsigned":  # not issued by the test CA
        return server_context(certs.selfsigned_cert, certs.selfsigned_key)
    if kind == "wronghost":  # CA-signed, valid only for wrong.example
        return server_context(certs.wronghost_cert, certs.wronghost_key)
    if kind == "clientcert":  # the CA-signed one, requiring a client cert from the test CA
        return server_context(
            certs.server_cert, certs.server_key, require_client_cert_ca=certs.ca_cert
        )
    if kind == "expired":  # CA-signed, expired on 2020-01-02
        return server_context(*make_expired_cert(certs))
    raise ValueError(f"unknown kind of HTTPS server: {kind!r}")


class HTTPSServers:
    """HTTPS test servers by kind of certificate (of ``certs``), each started
    on first use and kept until :meth:`close`: ``servers["selfsigned"]``."""

    KINDS = ("ca", "selfsigned", "wronghost", "clientcert", "expired")

    def __init__(self, certs: Certs) -> None:
        self._certs = certs
        self._started: dict[str, HTTPTestServer] = {}

    def __getitem__(self, kind: str) -> HTTPTestServer:
        if kind not in self._started:
            self._started[kind] = HTTPTestServer(tls_context=_https_context(self._certs, kind))
        return self._started[kind]

    def close(self) -> None:
        for server in self._started.values():
            server.close()
        self._started.clear()
