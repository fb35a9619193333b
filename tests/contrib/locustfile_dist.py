"""The locustfile of test_locust.py's distributed run: every request says
which worker process sent it (a header the test server records), and each
worker writes how many requests it reported when it quits (to the
directory in HAC_LOCUST_COUNTS).  Users send for HAC_LOCUST_SEND_S
seconds of the run and then idle: the master writes its CSV only 0.5 s
after telling the workers to quit, which a loaded worker's last report can
miss, while a periodic report (every 3 s) during the idle tail carries
every request (the test asserts equality, so it must)."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import gevent
from locust import constant, events, task

from http_async_client.contrib.locust import CurlUser

_reported = {"ok": 0, "failed": 0}
_SEND_S = float(os.environ.get("HAC_LOCUST_SEND_S", "4"))
_started: list[float] = []


@events.test_start.add_listener
def _start(**_kw: Any) -> None:
    _started.append(time.monotonic())


def _sending() -> bool:
    if _started and time.monotonic() - _started[0] < _SEND_S:
        return True
    gevent.sleep(0.1)
    return False


@events.request.add_listener
def _count(exception: BaseException | None = None, **_kw: Any) -> None:
    _reported["failed" if exception else "ok"] += 1


@events.quitting.add_listener
def _write(environment: Any, **_kw: Any) -> None:
    out = os.environ.get("HAC_LOCUST_COUNTS")
    if out and environment.runner is not None and type(environment.runner).__name__ == "WorkerRunner":
        Path(out, f"{os.getpid()}.txt").write_text(f"{_reported['ok']} {_reported['failed']}\n")


class Api(CurlUser):
    wait_time = constant(0.01)
    client_params = {"connection_timeout": 5000}

    @task
    def index(self) -> None:
        if _sending():
            self.client.get("/echo", headers={"X-Locust-Worker": str(os.getpid())}, name="echo")

    @task
    def status(self) -> None:
        if _sending():
            with self.client.get("/status/404", name="missing", catch_response=True) as r:
                if r.status_code == 404:
                    r.success()
