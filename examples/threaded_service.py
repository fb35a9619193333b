"""A threaded HTTP service whose backend calls go through the completion queue.

The service is a stdlib ``ThreadingHTTPServer`` (one thread per
connection).  ``GET /quote?sku=N`` asks two backends (price, stock) at once.
Handler threads never wait on sockets: they submit queries carrying a
``concurrent.futures.Future`` as ``xdata`` and wait on the futures; a
single consumer thread drains ``client.completions()`` and resolves each
future with its reply.  That is the seed's model: submit from any thread,
one place where replies come back.

Everything runs on 127.0.0.1 and stops by itself: two backends, the service,
then 8 client threads sending 40 requests through it.

    python examples/threaded_service.py
"""

from __future__ import annotations

import json
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import http_async_client as hac

BACKEND_DELAY_S = {"price": 0.02, "stock": 0.03}


class Consumer(threading.Thread):
    """The one thread that takes replies off the completion queue and hands
    each to whoever submitted it (the Future in ``xdata``)."""

    def __init__(self, client: hac.Client) -> None:
        super().__init__(name="completions", daemon=True)
        self.client = client
        self.work = threading.Event()  # set by submitters: something is in flight
        self.stopping = False
        self.delivered = 0

    def submit(self, url: str, timeout_ms: int) -> Future[hac.Reply]:
        fut: Future[hac.Reply] = Future()
        self.client.query(url, timeout=timeout_ms, xdata=fut)
        self.work.set()  # after query(): the consumer then sees it in flight
        return fut

    def run(self) -> None:
        while not self.stopping:
            self.work.clear()
            # completions() ends when nothing is in flight; then sleep until
            # the next submit instead of spinning
            for reply in self.client.completions():
                reply.xdata.set_result(reply)
                self.delivered += 1
            self.work.wait(0.2)


def make_handler(consumer: Consumer, backends: dict[str, str]) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:
            url = urlsplit(self.path)
            if url.path != "/quote":
                self.reply(404, {"error": "not found"})
                return
            sku = int(parse_qs(url.query).get("sku", ["0"])[0])
            # both backends at once; this thread only waits on the futures
            futures = {
                name: consumer.submit(f"{base}/{name}?sku={sku}", timeout_ms=500)
                for name, base in backends.items()
            }
            quote: dict[str, Any] = {"sku": sku}
            for name, fut in futures.items():
                reply = fut.result(timeout=5)
                quote[name] = reply.json()[name] if reply.ok and reply.status == 200 else None
            self.reply(200, quote)

        def reply(self, status: int, payload: Any) -> None:
            body = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass  # quiet

    return Handler


def backend_handler(name: str) -> type[BaseHTTPRequestHandler]:
    class Backend(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:
            sku = int(parse_qs(urlsplit(self.path).query).get("sku", ["0"])[0])
            time.sleep(BACKEND_DELAY_S[name])
            value = round(9.99 + sku, 2) if name == "price" else sku % 7
            body = json.dumps({name: value}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Backend


def start(server: ThreadingHTTPServer) -> str:
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    return f"http://127.0.0.1:{server.server_address[1]}"


def main() -> int:
    servers = [ThreadingHTTPServer(("127.0.0.1", 0), backend_handler(n)) for n in BACKEND_DELAY_S]
    backends = {name: start(srv) for name, srv in zip(BACKEND_DELAY_S, servers)}
    with hac.Client(connection_timeout=1000, workers=2) as client:
        consumer = Consumer(client)
        consumer.start()
        service = ThreadingHTTPServer(("127.0.0.1", 0), make_handler(consumer, backends))
        servers.append(service)
        url = start(service)
        print(f"service {url}/quote?sku=N -> {', '.join(backends)}")

        # callers: 8 threads, 40 requests, each blocking in result() on its
        # own client (result() claims the reply: the service's consumer
        # never sees these)
        with hac.Client(connection_timeout=5000) as callers:

            def call(sku: int) -> dict[str, Any]:
                reply = callers.query(f"{url}/quote?sku={sku}").result(timeout=10)
                result: dict[str, Any] = reply.raise_for_status().json()
                return result

            started = time.perf_counter()
            with ThreadPoolExecutor(max_workers=8) as pool:
                quotes = list(pool.map(call, range(40)))
            elapsed = time.perf_counter() - started

        ok = sum(1 for q in quotes if q["price"] is not None and q["stock"] is not None)
        print(f"40 quotes from 8 threads in {elapsed * 1000:.0f} ms: {ok} complete")
        print(f"sample: {json.dumps(quotes[3], sort_keys=True)}")
        consumer.stopping = True
        consumer.work.set()
        consumer.join(timeout=5)
        print(f"consumer thread delivered {consumer.delivered} backend replies")
        stats = client.stats()
        print(f"service client stats: requests={stats['requests']} replies={stats['replies']} "
              f"errors={stats['errors']} timeouts={stats['timeouts']}")
    for srv in servers:
        srv.shutdown()
        srv.server_close()
    return 0 if ok == 40 and consumer.delivered == 80 else 1


if __name__ == "__main__":
    raise SystemExit(main())
