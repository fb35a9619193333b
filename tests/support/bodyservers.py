"""Servers for bodies larger than memory (#14): responses generated as a
deterministic pattern (never held whole: a gibibyte costs the server one
block) and a sink that hashes request bodies as they arrive.

``BodyServer`` (HTTP/1.1 on 127.0.0.1, one request per connection):

- ``GET /pattern/<n>``: ``n`` bytes of :func:`pattern_chunks` with a
  Content-Length.  ``?reset=<k>``: after ``k`` body bytes the connection is
  reset (RST).  ``?pause=<ms>``: that pause after every MiB sent.
- ``GET /redirect/<n>``: 302 to ``/pattern/<n>`` with a body of its own.
- ``POST|PUT /sink``: the body (Content-Length or chunked) is read and
  hashed as it arrives; the reply is JSON ``{"length", "sha256",
  "chunked"}``; ``.uploads`` records the same plus method, headers and the
  body itself when it is at most ``KEEP`` bytes.  ``?pause=<ms>``: that
  pause after every 64 KiB read (an upload that stalls).
  ``?redirect=307``: a 307 to ``/sink`` once the body is read (libcurl
  must send it again).
"""

from __future__ import annotations

import hashlib
import json
import socket
import struct
import threading
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs, urlsplit

from .servers import HOST, RequestLog

__all__ = ["BLOCK", "BodyServer", "KEEP", "pattern_chunks", "pattern_sha256"]

BLOCK = 1 << 20  # pattern block: its first 8 bytes are the block's index
KEEP = 4 << 20   # request bodies kept whole in .uploads up to this size
_BASE = b"".join(hashlib.sha256(b"%d" % i).digest() for i in range(BLOCK // 32))
_sha_cache: dict[int, str] = {}


def pattern_chunks(n: int) -> Iterator[memoryview]:
    """The first ``n`` bytes of the pattern, a block at a time (each block
    starts with its index, so reordered or repeated blocks change the
    hash)."""
    base = memoryview(_BASE)
    i = 0
    while n > 0:
        block = struct.pack("<Q", i) + base[8:].tobytes()
        view = memoryview(block)[: min(n, BLOCK)]
        yield view
        n -= len(view)
        i += 1


def pattern_sha256(n: int) -> str:
    if n not in _sha_cache:
        h = hashlib.sha256()
        for chunk in pattern_chunks(n):
            h.update(chunk)
        _sha_cache[n] = h.hexdigest()
    return _sha_cache[n]


class _Conn:
    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buf = b""

    def read_until(self, mark: bytes) -> bytes:
        while mark not in self.buf:
            data = self.sock.recv(65536)
            if not data:
                raise ConnectionError("closed before " + repr(mark))
            self.buf += data
        head, _, self.buf = self.buf.partition(mark)
        return head

    def read_some(self, limit: int) -> bytes:
        if self.buf:
            data, self.buf = self.buf[:limit], self.buf[limit:]
            return data
        data = self.sock.recv(min(limit, 1 << 20))
        if not data:
            raise ConnectionError("closed inside the body")
        return data


class BodyServer:
    """See the module docstring.  ``.url``, ``.uploads``, ``.errors``,
    ``.close()``; a context manager."""

    def __init__(self) -> None:
        self._sock = socket.create_server((HOST, 0), backlog=128)
        self._sock.settimeout(0.5)
        self.port: int = self._sock.getsockname()[1]
        self.url = f"http://{HOST}:{self.port}"
        self.uploads: RequestLog[dict[str, Any]] = RequestLog()
        self.errors: RequestLog[str] = RequestLog()
        self.sent: RequestLog[int] = RequestLog()  # body bytes sent per response
        self._stopped = threading.Event()
        self._conns: set[socket.socket] = set()
        self._lock = threading.Lock()
        threading.Thread(target=self._accept_loop, name=f"BodyServer:{self.port}",
                         daemon=True).start()

    def _accept_loop(self) -> None:
        while not self._stopped.is_set():
            try:
                sock, _ = self._sock.accept()
            except TimeoutError:
                continue
            except OSError:
                break
            with self._lock:
                self._conns.add(sock)
            threading.Thread(target=self._serve, args=(sock,), daemon=True).start()

    def _serve(self, sock: socket.socket) -> None:
        try:
            conn = _Conn(sock)
            head = conn.read_until(b"\r\n\r\n").decode("latin-1")
            line, *rest = head.split("\r\n")
            method, target, _ = line.split(" ", 2)
            headers = [tuple(x.strip() for x in h.split(":", 1)) for h in rest if ":" in h]
            url = urlsplit(target)
            query = {k: v[0] for k, v in parse_qs(url.query).items()}
            route, _, arg = url.path.lstrip("/").partition("/")
            if route == "pattern" and arg.isdigit():
                self._pattern(sock, int(arg), query)
            elif route == "redirect" and arg.isdigit():
                self._reply(sock, 302, b"this body is not the file's",
                            [("Location", f"/pattern/{arg}")])
            elif route == "sink":
                self._sink(conn, method, target, headers, query)
            else:
                self._reply(sock, 404, b"not found")
        except (ConnectionError, OSError):
            pass  # the client went away (cancel, timeout, reset tests)
        except Exception as exc:  # pragma: no cover - a bug of this server
            self.errors.append(repr(exc))
        finally:
            with self._lock:
                self._conns.discard(sock)
            try:
                sock.shutdown(socket.SHUT_WR)
            except OSError:
                pass
            sock.close()

    @staticmethod
    def _reply(sock: socket.socket, status: int, body: bytes,
               headers: list[tuple[str, str]] = []) -> None:
        lines = [f"HTTP/1.1 {status} X", f"Content-Length: {len(body)}", "Connection: close",
                 *(f"{k}: {v}" for k, v in headers)]
        sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body)

    def _pattern(self, sock: socket.socket, n: int, query: dict[str, str]) -> None:
        reset = int(query.get("reset", -1))
        pause = int(query.get("pause", 0)) / 1000
        sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n"
                     b"Connection: close\r\nContent-Length: %d\r\n\r\n" % n)
        sent = 0
        try:
            for chunk in pattern_chunks(n):
                if 0 <= reset < sent + len(chunk):
                    sock.sendall(chunk[: reset - sent])
                    sent = reset
                    # RST instead of FIN: the client sees a broken transfer
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                    struct.pack("ii", 1, 0))
                    sock.close()
                    return
                sock.sendall(chunk)
                sent += len(chunk)
                if pause:
                    time.sleep(pause)
        finally:
            self.sent.append(sent)

    def _sink(self, conn: _Conn, method: str, target: str, headers: list[Any],
              query: dict[str, str]) -> None:
        names = {k.lower(): v for k, v in headers}
        pause = int(query.get("pause", 0)) / 1000
        sha = hashlib.sha256()
        kept: list[bytes] = []
        length = 0

        def take(data: bytes) -> None:
            nonlocal length
            sha.update(data)
            length += len(data)
            if length <= KEEP:
                kept.append(data)
            if pause and length % (64 << 10) < len(data):
                time.sleep(pause)

        chunked = "chunked" in names.get("transfer-encoding", "").lower()
        if chunked:
            while True:
                size = int(conn.read_until(b"\r\n").split(b";")[0], 16)
                if not size:
                    conn.read_until(b"\r\n")  # no trailers from libcurl
                    break
                while size:
                    data = conn.read_some(min(size, 64 << 10))
                    take(data)
                    size -= len(data)
                conn.read_until(b"\r\n")
        else:
            left = int(names.get("content-length", "0"))
            while left:
                data = conn.read_some(min(left, 64 << 10))
                take(data)
                left -= len(data)
        record = {"method": method, "target": target, "headers": headers, "length": length,
                  "sha256": sha.hexdigest(), "chunked": chunked,
                  "body": b"".join(kept) if length <= KEEP else None}
        self.uploads.append(record)
        if query.get("redirect") == "307":
            self._reply(conn.sock, 307, b"again", [("Location", "/sink")])
            return
        self._reply(conn.sock, 200, json.dumps(
            {"length": length, "sha256": record["sha256"], "chunked": chunked}).encode())

    def close(self) -> None:
        self._stopped.set()
        self._sock.close()
        with self._lock:
            conns = list(self._conns)
        for sock in conns:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def __enter__(self) -> BodyServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
