"""Run by test_locust.py in its own process (importing locust monkey-patches
the process): one CurlUser request the server holds for ``delay_ms``
while a greenlet ticks every millisecond.  Prints one JSON line: the
largest gap between ticks, the tick count, the request's reported time and
outcome."""

from __future__ import annotations

import json
import sys
import time

from http_async_client.contrib.locust import CurlUser  # before gevent: locust patches first

import gevent
from locust.env import Environment


class Held(CurlUser):
    host = sys.argv[1]


def main() -> None:
    delay_ms = int(sys.argv[2])
    env = Environment(user_classes=[Held])
    seen: list[dict[str, object]] = []

    def on_request(**kw: object) -> None:
        seen.append({"name": kw["name"], "time": kw["response_time"],
                     "exception": repr(kw["exception"]) if kw["exception"] else None,
                     "length": kw["response_length"]})

    env.events.request.add_listener(on_request)
    user = Held(env)
    done = False
    gaps: list[float] = []

    def ticker() -> None:
        last = time.perf_counter()
        while not done:
            gevent.sleep(0.001)
            now = time.perf_counter()
            gaps.append(now - last)
            last = now

    def fetch() -> None:
        nonlocal done
        try:
            user.client.get(f"/delay/{delay_ms}", name="held")
        finally:
            done = True

    t = gevent.spawn(ticker)
    # the ticker runs a while before and after the request, so a stall at
    # send or at delivery counts too
    gevent.sleep(0.05)
    f = gevent.spawn(fetch)
    f.join(timeout=30)
    t.join(timeout=5)
    print(json.dumps({"max_gap_ms": max(gaps) * 1000, "ticks": len(gaps), "requests": seen}))


if __name__ == "__main__":
    main()
