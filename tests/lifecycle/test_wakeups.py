"""No lost wake-up between the Python threads and the workers.

The worker wakes Python only when the completion queue goes from empty to
non-empty, and libev wakes the worker only when it is about to block; both
shortcuts lose a reply for good if their ordering is wrong.  Many threads
wait at once here while replies arrive: each wait must end within its
bound and every reply must be delivered once.
"""

from __future__ import annotations

import os
import threading
import time

import http_async_client as hac
from support.servers import HTTPTestServer

SCALE = float(os.environ.get("HAC_TEST_SCALE", "1"))
WAIT = 10.0  # bound of each wait for a reply, s
STALL = 2.0  # a local reply takes ms: longer means a wake-up went missing


def test_many_threads_waiting_on_results(http_server: HTTPTestServer) -> None:
    """Threads each submit and wait on ``result()`` in a loop: the queue is
    empty and refilled all the time, with several sleepers on its fd."""
    per_thread = max(20, int(150 * SCALE))
    errors: list[str] = []
    done = [0] * 8
    with hac.Client(connection_timeout=int(WAIT * 1000), workers=2) as c:

        def run(k: int) -> None:
            try:
                for i in range(per_thread):
                    t0 = time.monotonic()
                    r = c.query(f"{http_server.url}/echo?k={k}&i={i}").result(timeout=WAIT)
                    if not r.ok or r.status != 200:
                        errors.append(f"thread {k} request {i}: {r.err}")
                        return
                    if time.monotonic() - t0 > STALL:
                        errors.append(f"thread {k} request {i}: waited {time.monotonic() - t0:.1f} s")
                    done[k] += 1
            except Exception as exc:  # a WaitTimeout is a lost wake-up
                errors.append(f"thread {k}: {exc!r}")

        threads = [threading.Thread(target=run, args=(k,)) for k in range(len(done))]
        for t in threads:
            t.start()
        for t in threads:
            t.join(WAIT * 4)
        assert not any(t.is_alive() for t in threads), "a thread is still waiting"
        assert not errors, errors[:5]
        assert done == [per_thread] * len(done)
        assert c.stats()["replies"] == per_thread * len(done)


def test_completions_while_other_threads_submit(http_server: HTTPTestServer) -> None:
    """One thread drains ``completions()`` while others submit in bursts:
    the drain sees every reply once, and each wait for the next one ends
    (a reply pushed while the drainer goes to sleep must wake it)."""
    per_thread = max(20, int(200 * SCALE))
    submitters = 4
    ids: set[int] = set()
    lock = threading.Lock()
    with hac.Client(connection_timeout=int(WAIT * 1000), workers=2) as c:
        start = threading.Barrier(submitters + 1)

        def submit() -> None:
            start.wait(WAIT)
            for i in range(per_thread):
                h = c.query(f"{http_server.url}/echo?i={i}")
                with lock:
                    ids.add(h.id)
                if i % 16 == 15:
                    time.sleep(0.001)  # let the queue run dry now and then

        threads = [threading.Thread(target=submit) for _ in range(submitters)]
        for t in threads:
            t.start()
        start.wait(WAIT)
        seen: list[int] = []
        deadline = time.monotonic() + WAIT * 4
        while len(seen) < submitters * per_thread and time.monotonic() < deadline:
            for r in c.completions(timeout=STALL):
                assert r.ok, r.err
                seen.append(r.id)
            time.sleep(0.0005)  # completions() ended: nothing in flight for a moment
        for t in threads:
            t.join(WAIT)
        assert len(seen) == len(set(seen)), "a reply was delivered twice"
        assert set(seen) == ids
