"""The locustfile of locust_compare.py: the same task on CurlUser and on
FastHttpUser (pick one by class name on locust's command line).  Once all
users are spawned it lets the run warm up for HAC_WARM_S, then samples the
process's CPU time (every thread: ours include the C worker) and the
request count over HAC_MEASURE_S, and writes them as JSON to HAC_SAMPLE."""

from __future__ import annotations

import json
import os
import time
from typing import Any

import gevent
from locust import constant, events, task
from locust.contrib.fasthttp import FastHttpUser

from http_async_client.contrib.locust import CurlUser


_env: list[Any] = []


@events.init.add_listener
def _remember(environment: Any, **_kw: Any) -> None:
    _env.append(environment)


@events.spawning_complete.add_listener
def _sample(user_count: int, **_kw: Any) -> None:
    gevent.spawn(_measure)


def _state() -> tuple[float, float, int, int]:
    total = _env[0].stats.total
    return time.perf_counter(), time.process_time(), total.num_requests, total.num_failures


def _measure() -> None:
    gevent.sleep(float(os.environ.get("HAC_WARM_S", "1")))
    a = _state()
    gevent.sleep(float(os.environ.get("HAC_MEASURE_S", "5")))
    b = _state()
    out = {"seconds": b[0] - a[0], "cpu_s": b[1] - a[1], "requests": b[2] - a[2],
           "failures": b[3] - a[3]}
    with open(os.environ["HAC_SAMPLE"], "w") as f:
        json.dump(out, f)


class CurlBench(CurlUser):
    wait_time = constant(0)

    @task
    def index(self) -> None:
        self.client.get("/")


class FastBench(FastHttpUser):
    wait_time = constant(0)

    @task
    def index(self) -> None:
        self.client.get("/")
