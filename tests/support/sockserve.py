"""Building blocks of the servers in ``proxies`` and ``transport_servers``.

- :class:`ThreadedListener`: an accept loop in a daemon thread and one daemon
  thread per connection, every connection counted (``conncount``) and
  aborted by ``close()``;
- :func:`loopback` / :func:`connect_loopback`: the only targets the proxies
  may reach;
- :class:`SockReader` and :func:`parse_head`: HTTP/1.1 heads and bodies read
  from a socket, keeping the body's framing so it can be relayed verbatim;
- :func:`pump`: bytes copied both ways between two sockets (tunnels).

Nothing here connects anywhere by itself.
"""

from __future__ import annotations

import ipaddress
import selectors
import socket
import sys
import threading
import time
from collections.abc import Mapping
from types import TracebackType
from typing import TypeVar

from .conncount import ConnCounter, ConnRecord
from .servers import HOST, RequestLog

__all__ = [
    "HOST",
    "IO_TIMEOUT",
    "ConnCounter",
    "ConnRecord",
    "ProtocolError",
    "SockReader",
    "ThreadedListener",
    "check_hosts",
    "connect_loopback",
    "first_header",
    "loopback",
    "parse_head",
    "pump",
    "tokens",
]

# Every blocking read, write or connect on a served connection is bounded by
# this; close() ends them at once by shutting the sockets down.
IO_TIMEOUT = 10.0
# accept() wakes this often to notice close() (shutdown does not always wake it).
_ACCEPT_POLL = 0.5
_MAX_HEAD = 65536  # request/response head larger than this: refused
_CHUNK = 65536

_LOOPBACK = {"127.0.0.1": "127.0.0.1", "::1": "::1", "localhost": "127.0.0.1"}

_L = TypeVar("_L", bound="ThreadedListener")


class ProtocolError(Exception):
    """The peer sent bytes that are not the HTTP/1.1 (or SOCKS) expected."""


# --------------------------------------------------------------------------
# Accept loop
# --------------------------------------------------------------------------


class ThreadedListener:
    """Serves every connection of a listening socket in its own daemon thread.

    Subclasses implement :meth:`handle` (and set ``port``/``url``).  ``conns`` is the
    :class:`ConnCounter`, ``connections`` its total, ``errors`` records
    unexpected handler exceptions (socket errors are the normal end of
    connections that clients abort, and are not recorded).
    """

    def __init__(self, sock: socket.socket, timeout: float = IO_TIMEOUT) -> None:
        self._sock = sock
        self._sock.settimeout(_ACCEPT_POLL)
        self.timeout = timeout
        self.host = HOST
        self.conns = ConnCounter()
        self.errors: RequestLog[BaseException] = RequestLog()
        self._socks: set[socket.socket] = set()
        self._threads: set[threading.Thread] = set()
        self._lock = threading.Lock()
        self._stopped = threading.Event()
        self._thread = threading.Thread(
            target=self._accept_loop, name=type(self).__name__, daemon=True
        )
        self._thread.start()

    @property
    def connections(self) -> int:
        """Number of client connections accepted so far."""
        return self.conns.total

    def handle(self, conn: socket.socket, record: ConnRecord) -> None:
        """Serve one client connection (it is closed when this returns)."""
        raise NotImplementedError

    def track(self, sock: socket.socket) -> None:
        """Have close() shut ``sock`` down too (an upstream socket, say)."""
        with self._lock:
            self._socks.add(sock)

    def untrack(self, sock: socket.socket) -> None:
        # Under the lock close() holds while shutting down, so it never hits a
        # descriptor that was closed and reused meanwhile.
        with self._lock:
            self._socks.discard(sock)

    def _accept_loop(self) -> None:
        while not self._stopped.is_set():
            try:
                conn, addr = self._sock.accept()
            except TimeoutError:
                continue
            except OSError:
                break  # listening socket closed
            peer_port = addr[1] if isinstance(addr, tuple) else 0
            # Counted in the accept thread, so the count is final by the
            # time the client has its first response.
            record = self.conns.opened(peer_port)
            thread = threading.Thread(
                target=self._serve, args=(conn, record), name="conn", daemon=True
            )
            with self._lock:
                self._socks.add(conn)  # here, not in the thread: close() must see it
                self._threads = {t for t in self._threads if t.is_alive()}
                self._threads.add(thread)
            thread.start()

    def _serve(self, conn: socket.socket, record: ConnRecord) -> None:
        try:
            conn.settimeout(self.timeout)
            if conn.family != socket.AF_UNIX:
                # Heads and bodies go out as separate writes; Nagle plus
                # delayed ACKs would add ~40 ms stalls to timing tests.
                conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self.handle(conn, record)
        except (OSError, ProtocolError):
            pass  # aborted, reset, timed out or garbage: just drop it
        except Exception:
            self.errors.append(sys.exc_info()[1] or RuntimeError("?"))
        finally:
            self.untrack(conn)
            _close_gracefully(conn)
            self.conns.closed(record)

    def close(self) -> None:
        """Stop accepting, abort every connection still open and wait (at
        most 5 s) for their threads, so the logs are final."""
        if self._stopped.is_set():
            return
        self._stopped.set()
        try:
            self._sock.shutdown(socket.SHUT_RDWR)  # wakes accept() on Linux
        except OSError:
            pass
        self._sock.close()
        self._thread.join(timeout=5)  # no connection is added after this
        with self._lock:
            for sock in self._socks:
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
        # The handlers end at once on their shut-down sockets; waiting for
        # them means every log is final when close() returns.
        deadline = time.monotonic() + 5
        with self._lock:
            threads = list(self._threads)
        for thread in threads:
            thread.join(timeout=max(0.0, deadline - time.monotonic()))
        self._after_close()

    def _after_close(self) -> None:
        """Hook for subclasses (removing a Unix socket file, say)."""

    def __enter__(self: _L) -> _L:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def _close_gracefully(conn: socket.socket) -> None:
    # FIN first, then a short drain: closing with unread client data makes
    # the kernel send RST, which can destroy a reply still in flight.
    try:
        conn.shutdown(socket.SHUT_WR)
        conn.settimeout(0.5)
        while conn.recv(_CHUNK):
            pass
    except OSError:
        pass
    finally:
        conn.close()


# --------------------------------------------------------------------------
# Loopback targets
# --------------------------------------------------------------------------


def check_hosts(hosts: Mapping[str, str] | None) -> dict[str, str]:
    """``hosts`` with lower-cased names; ValueError unless every address is loopback."""
    out: dict[str, str] = {}
    for name, addr in (hosts or {}).items():
        # Refuse at construction: the proxies must never reach off loopback.
        if not ipaddress.ip_address(addr).is_loopback:
            raise ValueError(f"hosts[{name!r}] = {addr!r} is not a loopback address")
        out[name.lower()] = addr
    return out


def loopback(host: str, hosts: Mapping[str, str]) -> str | None:
    """The loopback address to connect to for ``host``, or None (refused)."""
    name = host.lower().strip("[]")
    return hosts.get(name) or _LOOPBACK.get(name)


def connect_loopback(addr: str, port: int, timeout: float) -> socket.socket:
    """A TCP connection to ``addr`` (an address :func:`loopback` returned)."""
    family = socket.AF_INET6 if ":" in addr else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.settimeout(timeout)
        sock.connect((addr, port))
    except BaseException:
        sock.close()
        raise
    return sock



# --------------------------------------------------------------------------
# HTTP/1.1 reading
# --------------------------------------------------------------------------


def parse_head(head: bytes) -> tuple[list[str], list[tuple[str, str]]]:
    """Split a head into its start line's words (at most 3) and its header
    (name, value) pairs, in order, names as sent."""
    lines = head.decode("latin-1").split("\r\n")
    start = lines[0].split(" ", 2)
    headers: list[tuple[str, str]] = []
    for line in lines[1:]:
        if not line:
            break
        name, sep, value = line.partition(":")
        if not sep:
            raise ProtocolError(f"header line without a colon: {line!r}")
        headers.append((name, value.strip(" \t")))
    return start, headers


def first_header(headers: list[tuple[str, str]], name: str) -> str | None:
    """The first value of header ``name`` (case-insensitive), or None."""
    for key, value in headers:
        if key.lower() == name.lower():
            return value
    return None


def tokens(headers: list[tuple[str, str]], name: str) -> set[str]:
    """The lower-cased comma-separated tokens of every ``name`` header."""
    out: set[str] = set()
    for key, value in headers:
        if key.lower() == name.lower():
            out.update(t.strip().lower() for t in value.split(",") if t.strip())
    return out


class SockReader:
    """Buffered reads from a socket; every read is bounded by its timeout."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self._buf = bytearray()

    def _fill(self) -> bool:
        data = self.sock.recv(_CHUNK)
        self._buf += data
        return bool(data)

    def read_head(self) -> bytes | None:
        """The next head (up to and including its blank line); None on a
        clean EOF before any byte of it."""
        while True:
            # Empty lines before a request line are to be ignored (RFC 9112 2.2).
            while self._buf[:2] == b"\r\n":
                del self._buf[:2]
            end = self._buf.find(b"\r\n\r\n")
            if end >= 0:
                head = bytes(self._buf[: end + 4])
                del self._buf[: end + 4]
                return head
            if len(self._buf) > _MAX_HEAD:
                raise ProtocolError("head too large")
            if not self._fill():
                if self._buf:
                    raise ProtocolError("EOF inside a head")
                return None

    def read_exact(self, n: int) -> bytes:
        """Exactly ``n`` bytes; ProtocolError on EOF first."""
        while len(self._buf) < n:
            if not self._fill():
                raise ProtocolError("EOF inside a body")
        data = bytes(self._buf[:n])
        del self._buf[:n]
        return data

    def read_line(self) -> bytes:
        """One CRLF-terminated line, CRLF included."""
        while (end := self._buf.find(b"\r\n")) < 0:
            if len(self._buf) > _MAX_HEAD or not self._fill():
                raise ProtocolError("bad or unterminated line")
        line = bytes(self._buf[: end + 2])
        del self._buf[: end + 2]
        return line

    def read_some(self) -> bytes:
        """What is buffered, else one recv (b"" at EOF)."""
        if not self._buf:
            self._fill()
        data = bytes(self._buf)
        self._buf.clear()
        return data

    def take_buffered(self) -> bytes:
        """Bytes read from the socket but not consumed yet (and forget them)."""
        data = bytes(self._buf)
        self._buf.clear()
        return data

    def chunks(self) -> tuple[bytes, bytes]:
        """A chunked body: (the raw bytes with their framing, the payload)."""
        raw, payload = bytearray(), bytearray()
        while True:
            line = self.read_line()
            raw += line
            try:
                size = int(line.split(b";", 1)[0].strip(), 16)
            except ValueError:
                raise ProtocolError(f"bad chunk size line {line!r}") from None
            if size == 0:
                break
            data = self.read_exact(size + 2)  # the chunk and its CRLF
            raw += data
            payload += data[:-2]
        while True:  # trailer section, up to its empty line
            line = self.read_line()
            raw += line
            if line == b"\r\n":
                return bytes(raw), bytes(payload)

    def body(self, headers: list[tuple[str, str]]) -> tuple[bytes, bytes]:
        """A request body by its framing: (raw bytes, payload)."""
        if "chunked" in tokens(headers, "Transfer-Encoding"):
            return self.chunks()
        length = first_header(headers, "Content-Length")
        if length is None:
            return b"", b""
        if not length.strip().isdigit():
            raise ProtocolError(f"bad Content-Length {length!r}")
        data = self.read_exact(int(length))
        return data, data


# --------------------------------------------------------------------------
# Tunnels
# --------------------------------------------------------------------------


def pump(a: socket.socket, b: socket.socket, idle_timeout: float) -> int:
    """Copy bytes both ways until both directions have ended (an EOF is
    passed on as a half-close), a socket fails, or nothing moved for
    ``idle_timeout`` seconds.  Returns the number of bytes copied."""
    peer = {a: b, b: a}
    moved = 0
    with selectors.DefaultSelector() as sel:
        sel.register(a, selectors.EVENT_READ)
        sel.register(b, selectors.EVENT_READ)
        live = 2
        while live:
            events = sel.select(idle_timeout)
            if not events:
                return moved  # idle for too long
            for key, _ in events:
                src: socket.socket = key.fileobj  # type: ignore[assignment]
                dst = peer[src]
                try:
                    data = src.recv(_CHUNK)
                    if data:
                        dst.sendall(data)
                        moved += len(data)
                        continue
                    sel.unregister(src)
                    live -= 1
                    dst.shutdown(socket.SHUT_WR)
                except OSError:
                    return moved  # reset or aborted by close()
    return moved
