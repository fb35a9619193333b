"""The delay endpoint: an HTTP/1.1 keep-alive server on 127.0.0.1 that
answers every request with 200 "ok" DELAY_MS after reading it.

usage: slow_server.py PORT [DELAY_MS]

nginx-light has no echo module, hence this small asyncio server (uvloop when
importable, plain asyncio otherwise).  It is a Protocol, not streams, so
one core serves tens of thousands of delayed replies per second.  Responses
on one connection leave in request order.  It stops when its standard input
closes (the harness closes it) or on SIGTERM.
"""

from __future__ import annotations

import asyncio
import signal
import sys
import threading

_RESPONSE = (
    b"HTTP/1.1 200 OK\r\nServer: bench-slow\r\nContent-Type: text/plain\r\n"
    b"Content-Length: 2\r\n\r\nok"
)
_MAX_HEAD = 64 * 1024


class SlowHTTP(asyncio.Protocol):
    """One connection: parse request heads (and Content-Length bodies),
    schedule each reply ``delay`` seconds later."""

    def __init__(self, delay: float) -> None:
        self.delay = delay
        self.buf = b""
        self.transport: asyncio.Transport | None = None
        self.loop = asyncio.get_running_loop()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None

    def data_received(self, data: bytes) -> None:
        buf = self.buf + data if self.buf else data
        while True:
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                if len(buf) > _MAX_HEAD:
                    self._close()
                    return
                break
            head = buf[:end].lower()
            clen = 0
            pos = head.find(b"\r\ncontent-length:")
            if pos >= 0:
                stop = head.find(b"\r\n", pos + 2)
                value = head[pos + 17 : stop if stop >= 0 else len(head)]
                try:
                    clen = int(value.strip())
                except ValueError:
                    self._close()
                    return
            total = end + 4 + clen
            if len(buf) < total:
                break
            buf = buf[total:]
            close = b"\r\nconnection: close" in head
            self.loop.call_later(self.delay, self._reply, close)
        self.buf = buf

    def _reply(self, close: bool) -> None:
        t = self.transport
        if t is None or t.is_closing():
            return
        t.write(_RESPONSE)
        if close:
            t.close()

    def _close(self) -> None:
        if self.transport is not None:
            self.transport.close()


async def serve(port: int, delay: float) -> None:
    """Serve until stdin reaches EOF or SIGTERM arrives."""
    loop = asyncio.get_running_loop()
    stop = loop.create_future()

    def done() -> None:
        if not stop.done():
            stop.set_result(None)

    def watch_stdin() -> None:
        try:
            while sys.stdin.buffer.read(4096):
                pass
        except (OSError, ValueError):
            pass
        loop.call_soon_threadsafe(done)

    threading.Thread(target=watch_stdin, daemon=True).start()
    loop.add_signal_handler(signal.SIGTERM, done)
    server = await loop.create_server(
        lambda: SlowHTTP(delay), "127.0.0.1", port, backlog=4096, reuse_address=True
    )
    async with server:
        await stop


def main() -> None:
    port = int(sys.argv[1])
    delay = float(sys.argv[2]) / 1000.0 if len(sys.argv) > 2 else 0.010
    try:
        import uvloop

        runner = asyncio.Runner(loop_factory=uvloop.new_event_loop)
    except ImportError:
        runner = asyncio.Runner()
    with runner:
        runner.run(serve(port, delay))


if __name__ == "__main__":
    main()
