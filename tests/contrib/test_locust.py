"""contrib.locust: CurlUser under Locust's real runners.

Every run is a subprocess (importing locust monkey-patches the whole
process with gevent); the servers run here, on 127.0.0.1.
"""

from __future__ import annotations

import csv
import importlib.util
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from support.ports import free_port
from support.servers import HTTPTestServer, header

# not imported here: importing locust would monkey-patch this process
if importlib.util.find_spec("locust") is None:  # pragma: no cover - [test] has it
    pytest.skip("locust is in the [test] extra", allow_module_level=True)

HERE = Path(__file__).resolve().parent
_RUN_S = 11  # the distributed run's -t: 4 s of requests, then an idle tail
_BOUND_S = 90  # everything a run does, on a loaded CI machine


def _env() -> dict[str, str]:
    # LD_PRELOAD stays: under run.sh sanitize the children load the same
    # instrumented core, which needs the sanitizer runtime first
    return dict(os.environ)


def _stop(procs: list[subprocess.Popen[str]]) -> None:
    for p in procs:
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
    for p in procs:
        try:
            p.wait(timeout=10)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait(timeout=10)


def test_hub_never_stalls_while_a_request_is_held() -> None:
    """A request the server holds for 300 ms parks its greenlet only: a
    greenlet ticking every millisecond in the same process never waits
    more than 50 ms."""
    with HTTPTestServer() as server:
        out = subprocess.run(
            [sys.executable, str(HERE / "gevent_gap.py"), server.url, "300"],
            capture_output=True, text=True, timeout=_BOUND_S, env=_env(),
        )
    assert out.returncode == 0, out.stderr
    got = json.loads(out.stdout.strip().splitlines()[-1])
    assert got["requests"] == [
        {"name": "held", "time": pytest.approx(got["requests"][0]["time"]), "exception": None,
         "length": got["requests"][0]["length"]}
    ]
    assert got["requests"][0]["time"] >= 300  # the reported time covers the hold
    assert got["ticks"] >= 100  # it really ticked through the 300 ms
    assert got["max_gap_ms"] < 50, got


def _read_stats(path: Path) -> dict[str, dict[str, str]]:
    with path.open(newline="") as f:
        return {row["Name"]: row for row in csv.DictReader(f)}


def test_distributed_headless_run_counts_both_workers(tmp_path: Path) -> None:
    """A master and two workers, headless, against a server here: the
    master's CSV total is the sum of what each worker reported, both
    workers sent requests (the server saw each one's pid), no failures."""
    counts = tmp_path / "counts"
    counts.mkdir()
    env = _env()
    env["HAC_LOCUST_COUNTS"] = str(counts)
    env["HAC_LOCUST_SEND_S"] = "4"
    port = free_port()
    locustfile = str(HERE / "locustfile_dist.py")
    procs: list[subprocess.Popen[str]] = []
    with HTTPTestServer() as server:
        try:
            master = subprocess.Popen(
                [sys.executable, "-m", "locust", "-f", locustfile, "--headless", "--master",
                 "--master-bind-host", "127.0.0.1", "--master-bind-port", str(port),
                 "--expect-workers", "2", "-u", "8", "-r", "8", "-t", f"{_RUN_S}s",
                 "--host", server.url, "--csv", str(tmp_path / "run"), "--stop-timeout", "2",
                 "--only-summary"],
                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
            )
            procs.append(master)
            for _ in range(2):
                procs.append(subprocess.Popen(
                    [sys.executable, "-m", "locust", "-f", locustfile, "--worker",
                     "--master-host", "127.0.0.1", "--master-port", str(port)],
                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, text=True, env=env,
                ))
            log, _ = master.communicate(timeout=_BOUND_S)
            for w in procs[1:]:
                w.wait(timeout=30)  # the master tells them to quit
        finally:
            _stop(procs)
        seen: dict[str, int] = {}
        for request in server.requests:
            if request["path"] == "/echo":
                pid = header(request, "X-Locust-Worker") or "?"
                seen[pid] = seen.get(pid, 0) + 1
    assert master.returncode == 0, log
    stats = _read_stats(tmp_path / "run_stats.csv")
    total = stats["Aggregated"]
    per_worker = {p.stem: tuple(map(int, p.read_text().split())) for p in counts.iterdir()}
    assert len(per_worker) == 2, (per_worker, log)
    assert all(ok > 0 and failed == 0 for ok, failed in per_worker.values()), per_worker
    # the master's totals are exactly what the two workers reported
    assert int(total["Request Count"]) == sum(ok for ok, _ in per_worker.values()), (total, per_worker)
    assert int(total["Failure Count"]) == 0, log
    assert int(stats["echo"]["Request Count"]) > 0 and int(stats["missing"]["Request Count"]) > 0
    # and the server saw requests from both worker processes, no other
    assert set(seen) == set(per_worker), (seen, per_worker)
    assert all(n > 0 for n in seen.values())


def test_every_call_is_reported_like_fasthttpuser() -> None:
    """get/post/put/patch/delete/head/options/query each fire one
    ``request`` event; >= 400 fails unless caught; a refused connection
    fails with the library's exception; 50 greenlets share the client."""
    refused = free_port()  # nothing listens there
    with HTTPTestServer() as server:
        out = subprocess.run(
            [sys.executable, str(HERE / "locust_calls.py"), server.url, str(refused)],
            capture_output=True, text=True, timeout=_BOUND_S, env=_env(),
        )
        methods = [r["method"] for r in server.requests]
        bodies = {r["method"]: r["body"] for r in server.requests if r["path"] == "/echo"}
    assert out.returncode == 0, out.stderr
    got = json.loads(out.stdout.strip().splitlines()[-1])
    events = got["events"]
    # 50 requests held 200 ms each, at once: one after the other is 10 s
    assert got["many_s"] < 5, got["many_s"]
    head = [(e["type"], e["name"], e["exception"], e["status"]) for e in events[:14]]
    assert head == [
        ("GET", "plain", None, 200),
        ("POST", "/echo", None, 200),
        ("PUT", "/echo", None, 200),
        ("PATCH", "/echo", None, 200),
        ("DELETE", "/echo", None, 200),
        ("HEAD", "/echo", None, 200),
        ("OPTIONS", "/echo", None, 200),
        ("PUT", "q", None, 200),
        ("GET", server.url + "/echo", None, 200),
        ("GET", "/status/500", "HTTPStatusError", 500),
        ("GET", "/status/404", None, 404),
        ("GET", "/echo", "CatchResponseError", 200),
        ("GET", "/status/503", "HTTPStatusError", 503),
        ("GET", "refused", "TransferError", 0),
    ]
    assert events[8]["context"] == {"k": "v"}
    assert events[1]["url"] == server.url + "/echo"
    assert all(e["time_ok"] for e in events)
    assert events[0]["length"] > 0
    many = events[14:]
    assert len(many) == 50 and all(e["name"] == "many" and e["exception"] is None for e in many)
    assert methods.count("GET") >= 50 + 6
    assert bodies["POST"] == b"12345" and bodies["PATCH"] == b'{"a": 1}'
