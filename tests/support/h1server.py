"""A keep-alive HTTP/1.1 server run as a script inside a rig namespace.

    python h1server.py BIND_ADDRESS PORT LOGFILE

Prints ``READY`` on stdout once it listens.  One thread per connection, so
any number of connections stay open across requests.  Every request gets
``200`` with a small body, Content-Length and keep-alive; ``?delay=MS``
sleeps that long before answering; ``?size=N`` answers N body bytes
(a pattern, written in 64 KiB pieces) and ``?hdrpad=N`` adds an ``X-Pad``
header of N bytes (faults injected inside a long header block or body);
``?gather=N`` holds the answer until N
requests with that query are waiting (at most 10 s), which forces a client
to open N connections however loaded the machine is.  LOGFILE (appended, flushed per line,
before the reply goes out) gets one line per event::

    C <conn> <peer>             a connection was accepted
    R <conn> <METHOD> <target>  a request (and its body) was read

``<conn>`` is ``<pid>.<n>``: unique across restarts of the server.
Accepted sockets have SO_LINGER 0, so a kill -9 aborts them (RST) instead of
leaving orphans that would send a FIN later.
"""

from __future__ import annotations

import os
import socket
import struct
import sys
import threading
import time
from collections.abc import Callable
from urllib.parse import parse_qs, urlsplit

_MAX_HEAD = 64 * 1024
_ABORT = struct.pack("ii", 1, 0)
_GRACEFUL = struct.pack("ii", 0, 0)


def _read_request(
    conn: socket.socket, buf: bytearray
) -> tuple[str, str, dict[str, str], bytes] | None:
    """Next request on ``conn`` (buffered in ``buf``), or None at EOF."""
    while b"\r\n\r\n" not in buf:
        if len(buf) > _MAX_HEAD:
            return None
        chunk = conn.recv(65536)
        if not chunk:
            return None
        buf += chunk
    end = buf.index(b"\r\n\r\n")
    head = bytes(buf[:end]).decode("latin-1").split("\r\n")
    del buf[: end + 4]
    method, target, _version = (head[0].split(" ") + ["", ""])[:3]
    headers: dict[str, str] = {}
    for line in head[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    if headers.get("expect", "").lower() == "100-continue":
        conn.sendall(b"HTTP/1.1 100 Continue\r\n\r\n")
    length = int(headers.get("content-length", "0") or 0)
    while len(buf) < length:
        chunk = conn.recv(65536)
        if not chunk:
            return None
        buf += chunk
    body = bytes(buf[:length])
    del buf[:length]
    return method, target, headers, body


_PATTERN = bytes(range(256)) * 256  # 64 KiB


def _send_pattern(conn: socket.socket, length: int) -> None:
    """``length`` bytes of the repeating 0..255 pattern."""
    while length > 0:
        piece = _PATTERN[: min(length, len(_PATTERN))]
        conn.sendall(piece)
        length -= len(piece)


class _Gather:
    """Barriers keyed by the ``gather`` value."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._arrived: dict[str, int] = {}

    def wait(self, key: str, timeout: float = 10.0) -> None:
        with self._cond:
            self._arrived[key] = self._arrived.get(key, 0) + 1
            self._cond.notify_all()
            self._cond.wait_for(lambda: self._arrived[key] >= int(key), timeout=timeout)


_gather = _Gather()


def _serve(conn: socket.socket, cid: str, note: Callable[[str], None]) -> None:
    buf = bytearray()
    try:
        while True:
            req = _read_request(conn, buf)
            if req is None:
                break
            method, target, headers, body = req
            note(f"R {cid} {method} {target}")
            query = parse_qs(urlsplit(target).query)
            gather = query.get("gather", [""])[0]
            if gather.isdigit():
                _gather.wait(gather)
            delay = query.get("delay", ["0"])[0]
            if delay.isdigit():
                time.sleep(int(delay) / 1000)
            payload = b"posted" if method == "POST" else b"ok"
            size = query.get("size", [""])[0]
            length = int(size) if size.isdigit() else len(payload)
            pad = query.get("hdrpad", [""])[0]
            close = headers.get("connection", "").lower() == "close"
            conn.sendall(
                b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
                + (b"X-Pad: " + b"p" * int(pad) + b"\r\n" if pad.isdigit() else b"")
                + f"Content-Length: {length}\r\n".encode()
                + (b"Connection: close\r\n" if close else b"Connection: keep-alive\r\n")
                + b"\r\n" + (b"" if method == "HEAD" or size.isdigit() else payload)
            )
            if size.isdigit() and method != "HEAD":
                _send_pattern(conn, length)
            if close:
                # a clean close: FIN after the reply, not an aborting RST
                conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _GRACEFUL)
                conn.shutdown(socket.SHUT_WR)
                break
    except OSError:
        pass
    finally:
        conn.close()


def main(argv: list[str]) -> int:
    bind, port, log_path = argv[1], int(argv[2]), argv[3]
    log = open(log_path, "a", buffering=1, encoding="utf-8")
    lock = threading.Lock()

    def note(line: str) -> None:
        with lock:
            log.write(line + "\n")
            log.flush()

    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind((bind, port))
    listener.listen(1024)
    print("READY", flush=True)
    n = 0
    while True:
        conn, peer = listener.accept()
        n += 1
        cid = f"{os.getpid()}.{n}"
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _ABORT)
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        note(f"C {cid} {peer[0]}:{peer[1]}")
        threading.Thread(target=_serve, args=(conn, cid, note), daemon=True).start()


if __name__ == "__main__":
    sys.exit(main(sys.argv))
