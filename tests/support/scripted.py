"""A raw-socket HTTP/1.1 server on 127.0.0.1 whose every answer is chosen
by a script: reset the connection, answer a status after a delay, or
stop.  The resilience tests (retries, hedges, destination sets, rate
limits) use it to fail in exactly the way a case needs, and read back what
it saw: requests (method, path, time), connections opened and closed by
the peer.
"""

from __future__ import annotations

import socket
import struct
import threading
import time
from dataclasses import dataclass, field
from typing import Callable


@dataclass
class Seen:
    """One request as the server read it."""

    conn: int
    method: str
    path: str
    body: bytes
    at: float
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class Answer:
    """What to do with a request: ``reset`` (RST, no status line),
    ``close`` (FIN, no status line), else answer ``status`` after
    ``delay`` seconds with ``headers`` and ``body``."""

    status: int = 200
    delay: float = 0.0
    headers: tuple[tuple[str, str], ...] = ()
    body: bytes = b"ok"
    reset: bool = False
    close: bool = False


Script = Callable[[Seen, int], Answer]  # (request, its index from 0) -> Answer


def ok(seen: Seen, index: int) -> Answer:
    return Answer()


class ScriptedServer:
    """``ScriptedServer(script)``: ``url``, ``seen`` (list of Seen),
    ``closed_by_peer`` (connections the client closed while the server
    still owed or was writing an answer), ``stop()`` (listener and
    connections gone: the port refuses), ``start()`` again on the same
    port."""

    def __init__(self, script: Script = ok, port: int = 0) -> None:
        self.script = script
        self.seen: list[Seen] = []
        self.conns = 0
        self.closed_by_peer = 0
        self._lock = threading.Lock()
        self._socks: set[socket.socket] = set()
        self._stop = threading.Event()
        self._listener: socket.socket | None = None
        self.port = port
        self.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", self.port))
        s.listen(512)
        self.port = s.getsockname()[1]
        self._listener = s
        self._stop.clear()
        threading.Thread(target=self._accept, args=(s,), daemon=True).start()

    def stop(self) -> None:
        """The host is gone: no listener, every connection reset."""
        self._stop.set()
        if self._listener is not None:
            self._listener.close()
            self._listener = None
        with self._lock:
            socks = list(self._socks)
            self._socks.clear()
        for c in socks:
            # the serving thread closes it (with linger 0: a RST); closing
            # here would race its recv()
            try:
                c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                c.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    close = stop

    def count(self, method: str | None = None) -> int:
        with self._lock:
            return sum(1 for s in self.seen if method is None or s.method == method)

    def _accept(self, listener: socket.socket) -> None:
        while not self._stop.is_set():
            try:
                c, _ = listener.accept()
            except OSError:
                return
            with self._lock:
                n = self.conns
                self.conns += 1
                self._socks.add(c)
            threading.Thread(target=self._serve, args=(c, n), daemon=True).start()

    def _serve(self, c: socket.socket, n: int) -> None:
        c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        buf = b""
        try:
            while not self._stop.is_set():
                while b"\r\n\r\n" not in buf:
                    data = c.recv(65536)
                    if not data:
                        return
                    buf += data
                head, buf = buf.split(b"\r\n\r\n", 1)
                lines = head.decode("latin-1").split("\r\n")
                method, path = lines[0].split(" ")[:2]
                headers = {}
                for line in lines[1:]:
                    k, _, v = line.partition(":")
                    headers[k.strip().lower()] = v.strip()
                size = int(headers.get("content-length", "0"))
                while len(buf) < size:
                    data = c.recv(65536)
                    if not data:
                        return
                    buf += data
                body, buf = buf[:size], buf[size:]
                seen = Seen(n, method, path, body, time.monotonic(), headers)
                with self._lock:
                    index = len(self.seen)
                    self.seen.append(seen)
                a = self.script(seen, index)
                if a.reset:
                    _rst(c)
                    return
                if a.close:
                    return
                if a.delay and self._peer_closed(c, a.delay):
                    with self._lock:
                        self.closed_by_peer += 1
                    return
                extra = "".join(f"{k}: {v}\r\n" for k, v in a.headers)
                c.sendall(
                    f"HTTP/1.1 {a.status} X\r\nContent-Length: {len(a.body)}\r\n{extra}\r\n"
                    .encode("latin-1") + a.body
                )
        except OSError:
            return
        finally:
            with self._lock:
                self._socks.discard(c)
            try:
                c.close()
            except OSError:
                pass

    def _peer_closed(self, c: socket.socket, delay: float) -> bool:
        """Wait delay seconds; True when the client closed meanwhile."""
        end = time.monotonic() + delay
        while True:
            left = end - time.monotonic()
            if left <= 0:
                return False
            c.settimeout(min(left, 0.05))
            try:
                if c.recv(1, socket.MSG_PEEK) == b"":
                    return True
            except (socket.timeout, BlockingIOError):
                continue
            except OSError:
                return True
            finally:
                c.settimeout(None)


def _rst(c: socket.socket) -> None:
    try:
        c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        c.close()
    except OSError:
        pass
