"""Run by test_locust.py in its own process: every CurlSession call once,
against the server at argv[1], with the ``request`` events it fired
printed as one JSON line (name, type, length, exception type, status)."""

from __future__ import annotations

import json
import sys
import time
from typing import Any

from http_async_client.contrib.locust import CurlUser

import gevent
from locust.env import Environment


class Calls(CurlUser):
    host = sys.argv[1]


def main() -> None:
    env = Environment(user_classes=[Calls])
    events: list[dict[str, Any]] = []

    def on_request(**kw: Any) -> None:
        exc = kw["exception"]
        events.append({"type": kw["request_type"], "name": kw["name"],
                       "length": kw["response_length"], "url": kw["url"],
                       "exception": type(exc).__name__ if exc else None,
                       "status": kw["response"].status_code, "time_ok": kw["response_time"] > 0,
                       "context": kw["context"]})

    env.events.request.add_listener(on_request)
    c = Calls(env).client
    out: dict[str, Any] = {}
    out["get_text"] = c.get("/echo", name="plain").status_code
    c.post("/echo", b"12345")
    c.put("/echo", "abc")
    c.patch("/echo", json={"a": 1})
    c.delete("/echo")
    c.head("/echo")
    c.options("/echo")
    c.query("/echo", b"xy", method="PUT", name="q")
    c.query(sys.argv[1] + "/echo", context={"k": "v"})
    c.get("/status/500")
    with c.get("/status/404", catch_response=True) as r:
        r.success()
    with c.get("/echo", catch_response=True) as r:
        r.failure("body not what I wanted")
    with c.get("/status/503", catch_response=True) as r:
        pass  # not marked: the status decides
    c.get(f"http://127.0.0.1:{sys.argv[2]}/", name="refused")
    # many users, one client: 50 greenlets at once
    t0 = time.perf_counter()
    jobs = [gevent.spawn(c.get, "/delay/200", name="many") for _ in range(50)]
    gevent.joinall(jobs, timeout=30)
    out["many_s"] = time.perf_counter() - t0
    out["events"] = events
    print(json.dumps(out))


if __name__ == "__main__":
    main()
