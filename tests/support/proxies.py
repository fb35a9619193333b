"""Forward proxies on 127.0.0.1 for the transport-control tests (#13).

- :class:`HTTPProxy`: an HTTP/1.1 forward proxy (absolute-form requests
  relayed, ``CONNECT`` tunnelled), optionally requiring Basic proxy auth;
- :class:`Socks5Proxy`: a SOCKS5 server (RFC 1928, CONNECT only; IPv4,
  domain-name and IPv6 addresses), optionally with username/password
  auth (RFC 1929).

Both only ever connect to loopback: a target is allowed when it is
``127.0.0.1``, ``::1``, ``localhost`` (taken as 127.0.0.1, never looked
up) or a name of the ``hosts`` mapping given to the constructor (whose
addresses must be loopback addresses); anything else is refused and recorded.
"""

from __future__ import annotations

import base64
import binascii
import socket
import struct
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import urlsplit

from .servers import RequestLog
from .sockserve import (
    HOST,
    IO_TIMEOUT,
    ConnRecord,
    ProtocolError,
    SockReader,
    ThreadedListener,
    check_hosts,
    connect_loopback,
    first_header,
    loopback,
    parse_head,
    pump,
    tokens,
)

__all__ = ["PROXY_PASSWORD", "PROXY_USER", "TEST_HOSTS", "HTTPProxy", "Socks5Proxy"]

PROXY_USER = "proxyuser"
PROXY_PASSWORD = "proxypass"
# Names that resolve nowhere else, for proving a request went through a proxy.
TEST_HOSTS: Mapping[str, str] = {"api.example.test": "127.0.0.1"}

# Hop-by-hop headers (RFC 9110 7.6.1) and the proxy's own, never forwarded.
_HOP_BY_HOP = {
    "connection", "proxy-connection", "keep-alive", "proxy-authorization",
    "proxy-authenticate", "te", "trailer", "upgrade", "expect",
}
_REASONS = {
    200: "OK", 400: "Bad Request", 403: "Forbidden",
    407: "Proxy Authentication Required", 502: "Bad Gateway",
}


def _basic_credentials(value: str | None) -> tuple[str, str] | None:
    """(user, password) of a ``Basic`` credentials header value, or None."""
    scheme, _, token = (value or "").partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        user, sep, password = base64.b64decode(token.strip(), validate=True).decode(
            "latin-1"
        ).partition(":")
    except (binascii.Error, ValueError):
        return None
    return (user, password) if sep else None


def _split_authority(authority: str) -> tuple[str, int] | None:
    """``host:port`` (``[v6]:port`` too) of a CONNECT target, or None."""
    host, sep, port = authority.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        return None
    return host.strip("[]"), int(port)


def _head(status_line: str, headers: Iterable[tuple[str, str]]) -> bytes:
    lines = [status_line, *(f"{k}: {v}" for k, v in headers), "", ""]
    return "\r\n".join(lines).encode("latin-1")


# --------------------------------------------------------------------------
# HTTP proxy
# --------------------------------------------------------------------------


class HTTPProxy(ThreadedListener):
    """Forward HTTP/1.1 proxy on 127.0.0.1 (``url`` = ``http://127.0.0.1:PORT``).

    Absolute-form requests are relayed to their (loopback) target on a new
    upstream connection each, with ``Connection: close`` and without the
    hop-by-hop and Proxy-* headers; the response goes back by its framing
    (Content-Length, chunked, or until the upstream closes, the only case
    in which the client connection is closed), so client connections are
    kept alive.  ``Expect: 100-continue`` is answered by the proxy itself.
    ``CONNECT host:port`` is answered ``200 Connection established`` and
    tunnelled.  With ``auth=(user, password)`` every request without those
    Basic credentials gets ``407`` + ``Proxy-Authenticate: Basic
    realm="proxy"``.  Disallowed targets get 403, unreachable ones 502.

    ``requests`` records every request, before its answer is sent, as a dict:
    method, target (as sent: absolute URL or host:port), version, headers
    (list of (name, value) as received), proxy_authorization ((user,
    password) decoded from a Basic header, else None), allowed (target is
    loopback/``hosts``), status (what the proxy answered itself: 200 for an
    established tunnel, 400/403/407/502; None when the request went to the
    target, even if the proxy then answered 502 because the target closed
    without a response) and peer_port.  ``connections``/``conns`` count client connections.
    """

    def __init__(
        self,
        auth: tuple[str, str] | None = None,
        hosts: Mapping[str, str] | None = None,
        timeout: float = IO_TIMEOUT,
    ) -> None:
        self.auth = auth
        self.hosts = check_hosts(hosts)
        self.requests: RequestLog[dict[str, Any]] = RequestLog()
        sock = socket.create_server((HOST, 0), backlog=128)
        self.port: int = sock.getsockname()[1]
        super().__init__(sock, timeout)
        self.url = f"http://{HOST}:{self.port}"

    def __repr__(self) -> str:
        return f"<HTTPProxy {self.url}>"

    def handle(self, conn: socket.socket, record: ConnRecord) -> None:
        reader = SockReader(conn)
        while True:
            head = reader.read_head()
            if head is None:
                return
            self.conns.request_started(record)
            try:
                if not self._one(conn, reader, head, record):
                    return
            finally:
                self.conns.request_finished()

    def _answer(
        self, conn: socket.socket, status: int, close: bool,
        extra: Iterable[tuple[str, str]] = (),
    ) -> None:
        body = f"proxy: {status} {_REASONS[status]}\n".encode()
        headers = [*extra, ("Content-Type", "text/plain"), ("Content-Length", str(len(body)))]
        if close:
            headers.append(("Connection", "close"))
        conn.sendall(_head(f"HTTP/1.1 {status} {_REASONS[status]}", headers) + body)

    def _one(
        self, conn: socket.socket, reader: SockReader, head: bytes, record: ConnRecord
    ) -> bool:
        """Serve one request; True if the client connection stays usable."""
        start, headers = parse_head(head)
        if len(start) != 3 or not start[2].startswith("HTTP/1."):
            self._answer(conn, 400, close=True)
            return False
        method, target, version = start
        connection = tokens(headers, "Connection") | tokens(headers, "Proxy-Connection")
        keep = "close" not in connection and (version != "HTTP/1.0" or "keep-alive" in connection)
        has_body = "chunked" in tokens(headers, "Transfer-Encoding") or first_header(
            headers, "Content-Length"
        ) not in (None, "0")
        entry: dict[str, Any] = {
            "method": method,
            "target": target,
            "version": version,
            "headers": headers,
            "proxy_authorization": _basic_credentials(first_header(headers, "Proxy-Authorization")),
            "peer_port": record.peer_port,
        }

        if method == "CONNECT":
            where = _split_authority(target)
            url_path = ""
        else:
            url = urlsplit(target)
            try:
                where = None
                if url.scheme == "http" and url.hostname:
                    where = (url.hostname, url.port or 80)
            except ValueError:  # a port that is not a number
                where = None
            url_path = (url.path or "/") + (f"?{url.query}" if url.query else "")
        addr = loopback(where[0], self.hosts) if where else None
        entry["allowed"] = addr is not None

        status: int | None = None
        if where is None:
            status = 400  # origin-form, https:// or garbage sent to a proxy
        elif self.auth is not None and entry["proxy_authorization"] != self.auth:
            status = 407
        elif addr is None:
            status = 403
        upstream: socket.socket | None = None
        if status is None and addr is not None and where is not None:  # (for mypy)
            try:
                upstream = connect_loopback(addr, where[1], self.timeout)
            except OSError:
                status = 502
        if status is not None:
            entry["status"] = status
            self.requests.append(entry)
            # A body the client has not sent yet (Expect) is never read, so
            # the connection cannot stay in sync: close it.
            expect = "100-continue" in tokens(headers, "Expect")
            close = not keep or (has_body and expect) or status == 400
            if has_body and not close:
                reader.body(headers)  # consume it, to stay in sync
            extra = [("Proxy-Authenticate", 'Basic realm="proxy"')] if status == 407 else []
            self._answer(conn, status, close=close, extra=extra)
            return not close
        assert upstream is not None
        self.track(upstream)
        try:
            entry["status"] = 200 if method == "CONNECT" else None
            self.requests.append(entry)
            if method == "CONNECT":
                conn.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
                early = reader.take_buffered()  # bytes sent before our answer
                if early:
                    upstream.sendall(early)
                pump(conn, upstream, self.timeout)
                return False
            return self._relay(conn, reader, upstream, method, url_path, headers, keep)
        finally:
            self.untrack(upstream)
            upstream.close()

    def _relay(
        self, conn: socket.socket, reader: SockReader, upstream: socket.socket,
        method: str, path: str, headers: list[tuple[str, str]], keep: bool,
    ) -> bool:
        """Forward one request and its response; True if the client
        connection stays usable (``keep``: the client did not ask to close)."""
        named = tokens(headers, "Connection") | tokens(headers, "Proxy-Connection")
        forwarded = [
            (k, v) for k, v in headers if k.lower() not in _HOP_BY_HOP and k.lower() not in named
        ]
        if "100-continue" in tokens(headers, "Expect"):
            conn.sendall(b"HTTP/1.1 100 Continue\r\n\r\n")
        raw_body, _ = reader.body(headers)
        upstream.sendall(
            _head(f"{method} {path} HTTP/1.1", [*forwarded, ("Connection", "close")]) + raw_body
        )

        up = SockReader(upstream)
        while True:
            head = up.read_head()
            if head is None:  # the target closed without answering
                self._answer(conn, 502, close=True)
                return False
            start, rheaders = parse_head(head)
            code = int(start[1]) if len(start) >= 2 and start[1].isdigit() else 0
            if 100 <= code < 200 and code != 101:
                conn.sendall(head)  # interim response: relay, read the next one
                continue
            break
        named = tokens(rheaders, "Connection")
        kept = [(k, v) for k, v in rheaders
                if k.lower() not in ("connection", "keep-alive", "proxy-connection")
                and k.lower() not in named]
        length = first_header(rheaders, "Content-Length")
        if method == "HEAD" or code < 200 or code in (204, 304):
            framing = "none"
        elif "chunked" in tokens(rheaders, "Transfer-Encoding"):
            framing = "chunked"
        elif length is not None and length.strip().isdigit():
            framing = "length"
        else:
            framing = "close"  # delimited by the target's close: so must ours be
            keep = False
        close = [] if keep else [("Connection", "close")]
        conn.sendall(_head(" ".join(start), [*kept, *close]))
        if framing == "chunked":
            conn.sendall(up.chunks()[0])
        elif framing == "length":
            left = int(length or 0)
            while left > 0:
                data = up.read_some()
                if not data:
                    raise ProtocolError("upstream closed inside a body")
                conn.sendall(data[:left])
                left -= len(data)
        elif framing == "close":
            while data := up.read_some():
                conn.sendall(data)
        return keep


# --------------------------------------------------------------------------
# SOCKS5 proxy
# --------------------------------------------------------------------------

# RFC 1928 reply codes
SOCKS_OK = 0x00
SOCKS_FAILURE = 0x01
SOCKS_NOT_ALLOWED = 0x02
SOCKS_HOST_UNREACHABLE = 0x04
SOCKS_REFUSED = 0x05
SOCKS_BAD_COMMAND = 0x07
SOCKS_BAD_ADDRESS = 0x08

_ATYP = {1: "ipv4", 3: "domain", 4: "ipv6"}


class Socks5Proxy(ThreadedListener):
    """SOCKS5 server on 127.0.0.1 (``url`` = ``socks5://127.0.0.1:PORT``,
    ``url_h`` = ``socks5h://...``): CONNECT only, to loopback targets.

    Without ``auth`` it offers method 0 (no authentication); with
    ``auth=(user, password)`` only method 2 (RFC 1929), and wrong
    credentials end the connection after the failure status.  A domain
    name is resolved only when it is ``localhost`` or in ``hosts``; any
    other name or a non-loopback address gets reply 0x02 (not allowed).

    ``handshakes`` records each greeting as a dict: methods (offered),
    method (chosen, 0xFF = none acceptable), user, password (None without
    auth), auth_ok.  ``requests`` records each request, before the reply
    is sent: command, atyp ("ipv4", "domain", "ipv6"), host (as sent: the
    dotted/colon address or the domain name), port, user, allowed, reply
    (the RFC 1928 code sent) and peer_port.
    """

    def __init__(
        self,
        auth: tuple[str, str] | None = None,
        hosts: Mapping[str, str] | None = None,
        timeout: float = IO_TIMEOUT,
    ) -> None:
        self.auth = auth
        self.hosts = check_hosts(hosts)
        self.handshakes: RequestLog[dict[str, Any]] = RequestLog()
        self.requests: RequestLog[dict[str, Any]] = RequestLog()
        sock = socket.create_server((HOST, 0), backlog=128)
        self.port: int = sock.getsockname()[1]
        super().__init__(sock, timeout)
        self.url = f"socks5://{HOST}:{self.port}"
        self.url_h = f"socks5h://{HOST}:{self.port}"

    def __repr__(self) -> str:
        return f"<Socks5Proxy {self.url}>"

    @staticmethod
    def _reply(conn: socket.socket, code: int, bound: tuple[str, int] = ("0.0.0.0", 0)) -> None:
        family = socket.AF_INET6 if ":" in bound[0] else socket.AF_INET
        atyp = 4 if family == socket.AF_INET6 else 1
        conn.sendall(
            bytes([5, code, 0, atyp]) + socket.inet_pton(family, bound[0])
            + struct.pack("!H", bound[1])
        )

    def handle(self, conn: socket.socket, record: ConnRecord) -> None:
        reader = SockReader(conn)
        ver, nmethods = reader.read_exact(2)
        if ver != 5:
            raise ProtocolError(f"not SOCKS5 (version {ver})")
        methods = list(reader.read_exact(nmethods))
        want = 2 if self.auth is not None else 0
        shake: dict[str, Any] = {
            "methods": methods, "method": want if want in methods else 0xFF,
            "user": None, "password": None, "auth_ok": None,
        }
        if want not in methods:
            self.handshakes.append(shake)
            conn.sendall(b"\x05\xff")
            return
        conn.sendall(bytes([5, want]))
        if want == 2:
            ver, ulen = reader.read_exact(2)
            user = reader.read_exact(ulen).decode("latin-1")
            (plen,) = reader.read_exact(1)
            password = reader.read_exact(plen).decode("latin-1")
            shake.update(user=user, password=password, auth_ok=(user, password) == self.auth)
            self.handshakes.append(shake)
            conn.sendall(b"\x01\x00" if shake["auth_ok"] and ver == 1 else b"\x01\x01")
            if not shake["auth_ok"] or ver != 1:
                return
        else:
            self.handshakes.append(shake)
        self.conns.request_started(record)
        try:
            self._request(conn, reader, shake["user"], record)
        finally:
            self.conns.request_finished()

    def _request(
        self, conn: socket.socket, reader: SockReader, user: str | None, record: ConnRecord
    ) -> None:
        ver, cmd, _, atyp_code = reader.read_exact(4)
        if ver != 5:
            raise ProtocolError(f"not SOCKS5 (version {ver})")
        if atyp_code == 1:
            host = socket.inet_ntop(socket.AF_INET, reader.read_exact(4))
        elif atyp_code == 3:
            (n,) = reader.read_exact(1)
            host = reader.read_exact(n).decode("latin-1")
        elif atyp_code == 4:
            host = socket.inet_ntop(socket.AF_INET6, reader.read_exact(16))
        else:
            self._reply(conn, SOCKS_BAD_ADDRESS)
            return
        (port,) = struct.unpack("!H", reader.read_exact(2))
        addr = loopback(host, self.hosts)
        entry: dict[str, Any] = {
            "command": cmd, "atyp": _ATYP[atyp_code], "host": host, "port": port,
            "user": user, "allowed": addr is not None, "peer_port": record.peer_port,
        }
        upstream: socket.socket | None = None
        if cmd != 1:
            code = SOCKS_BAD_COMMAND
        elif addr is None:
            code = SOCKS_NOT_ALLOWED
        else:
            try:
                upstream = connect_loopback(addr, port, self.timeout)
                code = SOCKS_OK
            except ConnectionRefusedError:
                code = SOCKS_REFUSED
            except TimeoutError:
                code = SOCKS_HOST_UNREACHABLE
            except OSError:
                code = SOCKS_FAILURE
        entry["reply"] = code
        self.requests.append(entry)
        if upstream is None:
            self._reply(conn, code)
            return
        self.track(upstream)
        try:
            bound = upstream.getsockname()
            self._reply(conn, SOCKS_OK, (bound[0], bound[1]))
            early = reader.take_buffered()  # bytes sent before our reply
            if early:
                upstream.sendall(early)
            pump(conn, upstream, self.timeout)
        finally:
            self.untrack(upstream)
            upstream.close()
