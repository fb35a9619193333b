"""Load under faults: requests submitted with a bounded number in flight,
every reply timed, and the checks the fault cases share (one reply per
request, counters that add up, fds and threads back to their baseline)."""

from __future__ import annotations

import os
import re
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import http_async_client as hac

from .fds import FdBaseline

__all__ = ["Baseline", "Run", "Timed", "check_counters", "os_threads", "percentile", "run_paced",
           "summary", "wait_threads"]


@dataclass
class Timed:
    """A reply and how long it took from query() to being taken (s)."""

    handle: hac.QueryHandle
    sent: float
    reply: hac.Reply | None = None
    took: float = 0.0


@dataclass
class Run:
    """What run_paced() saw."""

    items: list[Timed] = field(default_factory=list)
    duplicates: list[int] = field(default_factory=list)  # ids replied twice
    elapsed: float = 0.0

    @property
    def replies(self) -> list[hac.Reply]:
        return [t.reply for t in self.items if t.reply is not None]

    @property
    def missing(self) -> list[Timed]:
        return [t for t in self.items if t.reply is None]


def run_paced(
    client: hac.Client, make: Callable[[int], hac.QueryHandle], n: int, window: int,
    limit_s: float,
) -> Run:
    """``make(i)`` for i in 0..n-1 with at most ``window`` in flight; every
    reply collected (those missing after ``limit_s`` stay None)."""
    run = Run()
    by_id: dict[int, Timed] = {}
    t0 = time.monotonic()
    deadline = t0 + limit_s
    nxt = 0
    inflight = 0
    while (nxt < n or inflight) and time.monotonic() < deadline:
        while nxt < n and inflight < window:
            sent = time.monotonic()
            h = make(nxt)
            t = Timed(h, sent)
            run.items.append(t)
            by_id[h.id] = t
            nxt += 1
            inflight += 1
        try:
            for batch in client.completions(timeout=max(0.01, deadline - time.monotonic()),
                                            batch=True):
                now = time.monotonic()
                for reply in batch:
                    t2 = by_id.get(reply.id)
                    if t2 is None:
                        continue
                    if t2.reply is not None:
                        run.duplicates.append(reply.id)
                        continue
                    t2.reply, t2.took = reply, now - t2.sent
                    inflight -= 1
                break  # top the window up
        except hac.WaitTimeout:
            break
    run.elapsed = time.monotonic() - t0
    return run


def percentile(values: Iterable[float], q: float) -> float:
    """The q-quantile (0..1) of values, nearest rank; 0.0 when empty."""
    xs = sorted(values)
    if not xs:
        return 0.0
    return xs[min(len(xs) - 1, max(0, round(q * len(xs) + 0.5) - 1))]


def summary(replies: Iterable[hac.Reply]) -> str:
    """``n failed: Counter of errors`` for assertion messages."""
    failed = [r for r in replies if not r.ok]
    kinds = Counter(re.sub(r"\d+", "N", r.err or "")[:120] for r in failed)
    return f"{len(failed)} failed: {dict(kinds.most_common(5))}"


def check_counters(client: hac.Client, total: int) -> dict[str, int]:
    """Every request finished and counted once: requests == total ==
    replies + errors + timeouts (+ cancelled), nothing in flight."""
    s = client.stats()
    got = s["replies"] + s["errors"] + s["timeouts"] + s["cancelled"]
    assert s["requests"] == total == got and s["inflight"] == 0, f"counters: {s}"
    return s


def os_threads() -> int:
    """Threads of this process (the core's workers are not Python threads)."""
    return len(os.listdir("/proc/self/task"))


def wait_threads(baseline: int, seconds: float = 5.0) -> int:
    """Threads now, polled until back to ``baseline`` (or ``seconds``)."""
    end = time.monotonic() + seconds
    now = os_threads()
    while now > baseline and time.monotonic() < end:
        time.sleep(0.02)
        now = os_threads()
    return now


class Baseline:
    """fds and threads before a case, checked after its client closed."""

    def __init__(self) -> None:
        self.fds = FdBaseline(collect=True)
        self.threads = os_threads()

    def check(self) -> None:
        self.fds.assert_back(what="after the client closed")
        now = wait_threads(self.threads)
        assert now <= self.threads, f"threads {self.threads} -> {now}"
