"""An asyncio web service that fans out to several backends per request.

``GET /dashboard?user=N`` on the gateway asks three backends at once
(profile, orders, recommendations), each with its own deadline, and
answers with whatever came back in time: one slow backend degrades the
page instead of stalling it.

Everything runs on 127.0.0.1 in this one process and stops by itself:
the three backends (tiny asyncio HTTP servers with a set delay), the
gateway, then a client that sends 30 dashboard requests at once.

    python examples/asyncio_fanout.py
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any
from urllib.parse import parse_qs, urlsplit

import http_async_client as hac

# backend name -> (its delay in ms, the gateway's deadline for it in ms)
BACKENDS = {"profile": (50, 500), "orders": (100, 500), "recommendations": (150, 350)}
SLOW_USER = 13  # recommendations takes 400 ms for this one: past its deadline


async def read_request(reader: asyncio.StreamReader) -> tuple[str, str] | None:
    """(method, target) of the next request on a keep-alive connection;
    None when the client closed it."""
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError:
        return None
    method, target, _ = head.split(b"\r\n", 1)[0].decode("latin-1").split(" ", 2)
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    if length:
        await reader.readexactly(length)
    return method, target


def response(status: int, payload: Any) -> bytes:
    body = json.dumps(payload).encode()
    reason = {200: "OK", 404: "Not Found"}.get(status, "OK")
    return (
        f"HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode() + body


def backend(name: str, delay_ms: int) -> Any:
    """A connection handler for one backend: JSON after ``delay_ms``."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while (req := await read_request(reader)) is not None:
            query = parse_qs(urlsplit(req[1]).query)
            user = int(query.get("user", ["0"])[0])
            slow = name == "recommendations" and user == SLOW_USER
            await asyncio.sleep((900 if slow else delay_ms) / 1000)
            writer.write(response(200, {"service": name, "user": user, "items": user % 5}))
            await writer.drain()

    return handle


class Gateway:
    """The service: one ``hac.Client`` shared by every incoming request."""

    def __init__(self, client: hac.Client, backends: dict[str, str]) -> None:
        self.client = client
        self.backends = backends

    async def dashboard(self, user: int) -> dict[str, Any]:
        # fan out: every backend at once, each with its own deadline;
        # awaiting handles never blocks the loop
        names = list(self.backends)
        replies = await asyncio.gather(
            *(
                self.client.query(f"{self.backends[n]}/{n}?user={user}", timeout=BACKENDS[n][1])
                for n in names
            )
        )
        page: dict[str, Any] = {"user": user}
        for name, reply in zip(names, replies):
            if reply.ok and reply.status == 200:
                page[name] = reply.json()
            else:  # degrade: this part of the page is missing, the rest is served
                page[name] = {"error": "timeout" if reply.timed_out else reply.err}
        return page

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while (req := await read_request(reader)) is not None:
            url = urlsplit(req[1])
            if url.path == "/dashboard":
                user = int(parse_qs(url.query).get("user", ["0"])[0])
                writer.write(response(200, await self.dashboard(user)))
            else:
                writer.write(response(404, {"error": "not found"}))
            await writer.drain()


class Servers:
    """The example's listening servers; ``close()`` also waits for their
    connection handlers, so the script ends without cancelled tasks."""

    def __init__(self) -> None:
        self.servers: list[asyncio.base_events.Server] = []
        self.tasks: set[asyncio.Task[None]] = set()

    async def start(self, handler: Any) -> str:
        async def tracked(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            task = asyncio.current_task()
            assert task is not None
            self.tasks.add(task)
            try:
                await handler(reader, writer)
            except ConnectionError:
                pass
            finally:
                self.tasks.discard(task)
                writer.close()

        server = await asyncio.start_server(tracked, "127.0.0.1", 0)
        self.servers.append(server)
        return f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"

    async def close(self) -> None:
        for server in self.servers:
            server.close()
        if self.tasks:  # clients are gone: each handler sees EOF and returns
            await asyncio.wait(self.tasks, timeout=2)
        for server in self.servers:
            await server.wait_closed()


async def main() -> int:
    servers = Servers()
    urls = {name: await servers.start(backend(name, delay)) for name, (delay, _) in BACKENDS.items()}
    # one client for the whole service: its C workers multiplex every
    # backend connection; the asyncio loop is woken once per batch of replies
    async with hac.Client(connection_timeout=1000) as client:
        gw_url = await servers.start(Gateway(client, urls).handle)
        print(f"gateway {gw_url}/dashboard?user=N -> {', '.join(BACKENDS)}")

        # the outside world: one dashboard, then 30 at once, through the gateway
        started = time.perf_counter()
        (await client.query(f"{gw_url}/dashboard?user=100")).raise_for_status()
        one_ms = (time.perf_counter() - started) * 1000
        delays = [d for d, _ in BACKENDS.values()]
        print(
            f"one dashboard: {one_ms:.0f} ms for backends of "
            f"{' + '.join(map(str, delays))} ms: fanned out, it waits for the slowest "
            f"({max(delays)} ms), not the sum ({sum(delays)} ms)"
        )
        started = time.perf_counter()
        users = list(range(1, 31))
        pages = await asyncio.gather(
            *(client.query(f"{gw_url}/dashboard?user={u}", timeout=2000) for u in users)
        )
        elapsed_ms = (time.perf_counter() - started) * 1000
        complete = degraded = 0
        for user, page_reply in zip(users, pages):
            page = page_reply.raise_for_status().json()
            missing = [n for n in BACKENDS if "error" in page[n]]
            if missing:
                degraded += 1
                print(f"user {user}: degraded, missing {', '.join(missing)} ({page[missing[0]]['error']})")
            else:
                complete += 1
        print(
            f"{len(users)} dashboards at once ({len(users) * len(BACKENDS)} backend queries) in "
            f"{elapsed_ms:.0f} ms: {complete} complete, {degraded} degraded"
        )
        print(f"sample: {json.dumps(pages[0].json(), sort_keys=True)}")
        stats = client.stats()
        print(f"client stats: requests={stats['requests']} replies={stats['replies']} "
              f"timeouts={stats['timeouts']}")
    await servers.close()
    return 0 if complete == len(users) - 1 and degraded == 1 else 1


if __name__ == "__main__":
    raise SystemExit(asyncio.run(main()))
