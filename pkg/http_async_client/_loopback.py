"""A small keep-alive HTTP/1.1 server for loopback demos and load runs.

Started by the CLI in a child process (``python -m
http_async_client._loopback``), so that it never competes with the client
for the GIL.  It answers every request with 200 and a short body;
``/bytes/N`` returns N bytes and ``/delay/MS`` waits first.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys

_HEAD = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: %d\r\n\r\n"


class _Conn(asyncio.Protocol):
    def __init__(self) -> None:
        self.buf = b""
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.buf += data
        while True:
            end = self.buf.find(b"\r\n\r\n")
            if end < 0:
                return
            head = self.buf[:end]
            length = 0
            for line in head.split(b"\r\n")[1:]:
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value.strip() or 0)
            if len(self.buf) < end + 4 + length:
                return
            self.buf = self.buf[end + 4 + length :]
            target = head.split(b" ", 2)[1] if head.count(b" ") >= 2 else b"/"
            self.respond(target)

    def respond(self, target: bytes) -> None:
        assert self.transport is not None
        body = b"ok"
        delay = 0.0
        if target.startswith(b"/bytes/"):
            body = b"x" * min(int(target[7:] or 0), 64 << 20)
        elif target.startswith(b"/delay/"):
            delay = int(target[7:] or 0) / 1000.0
        msg = (_HEAD % len(body)) + body
        if delay:
            asyncio.get_running_loop().call_later(delay, self.transport.write, msg)
        else:
            self.transport.write(msg)


async def _serve(port: int) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(_Conn, "127.0.0.1", port, backlog=1024)
    sock = server.sockets[0]
    print(sock.getsockname()[1], flush=True)
    # stop when the parent goes away (stdin closes)
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    await reader.read()
    server.close()


def main() -> None:
    # A terminal's Ctrl-C reaches the whole process group: the parent
    # handles it (partial bench report) and closes our stdin to stop us.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    port = int(sys.argv[1]) if len(sys.argv) > 1 else 0
    if len(sys.argv) > 2 and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {int(sys.argv[2])})
    asyncio.run(_serve(port))


if __name__ == "__main__":
    main()
