"""The load generator behind ``http-async-client bench``: the loop, the
numbers it gathers and the report computed from them.

Strategy: the loop is the completion-queue path (``client.query()`` +
``client.completions()``) with the per-reply Python work cut to a clock
read, a dict pop, an array append and two counters; everything else
(percentiles, histogram, error kinds) is computed once at the end.  The
loop leaves ``completions()`` only at "wake" times (progress tick, next
rate token, end of the run), so progress and Ctrl-C cost nothing per
request.
"""

from __future__ import annotations

import math
import time
from array import array
from bisect import bisect_right
from dataclasses import dataclass, field
from typing import Any, Callable, Protocol

from ._client import Client
from ._handle import QueryHandle
from ._exceptions import WaitTimeout
from ._ffi import lib
from ._latency import origin_key
from ._reply import Reply

_R_OK = lib.HAC_R_OK
_NEVER = 1 << 62  # ns: "no bound"

PERCENTILES = (50.0, 90.0, 99.0, 99.9)
HISTOGRAM_BUCKETS = 12


@dataclass
class BenchConfig:
    """What to send and for how long.  ``requests``/``duration`` None
    means unbounded on that axis (at least one is set)."""

    url: str
    method: str | None = None
    headers: list[str] = field(default_factory=list)
    body: bytes | None = None
    requests: int | None = None
    duration: float | None = None
    concurrency: int = 64
    rate: float | None = None
    http_version: int | None = None


class StopFlag:
    """Set from the SIGINT handler: 1 = stop sending and drain what is in
    flight, 2 = stop waiting (abandon the rest)."""

    def __init__(self) -> None:
        self.count = 0

    def request(self) -> None:
        self.count += 1


class Progress(Protocol):
    """What the loop reports to while it runs (see ``_ui``)."""

    interval: float

    def update(self, snap: Snapshot) -> None: ...

    def stopping(self, inflight: int) -> None: ...

    def close(self) -> None: ...


@dataclass
class Snapshot:
    """The loop's counters at a progress tick."""

    elapsed: float
    done: int
    sent: int
    errors: int
    inflight: int
    fraction: float  # of the run, by count or by time, whichever is further


@dataclass
class BenchResult:
    """Raw outcome of a run; the report properties derive from it."""

    config: BenchConfig
    seconds: float
    sent: int
    latencies_ns: array[int]
    ok: int
    status: dict[int, int]
    error_kinds: dict[str, int]
    bytes_received: int
    body_bytes_received: int
    interrupted: bool = False
    abandoned: int = 0
    stats: dict[str, int] = field(default_factory=dict)
    # without --rate: the figures from the C histograms of the run's origin
    hist: HistSummary | None = None
    _sorted: list[int] | None = field(default=None, init=False, repr=False, compare=False)

    # ---- derived
    @property
    def completed(self) -> int:
        return len(self.latencies_ns)

    @property
    def failed(self) -> int:
        """Transfers that got no complete HTTP response."""
        return sum(self.error_kinds.values())

    @property
    def errors(self) -> int:
        """Failed transfers plus 4xx/5xx responses."""
        return self.completed - self.ok

    @property
    def rps(self) -> float:
        return self.completed / self.seconds if self.seconds > 0 else 0.0

    @property
    def sorted_ns(self) -> list[int]:
        if self._sorted is None:
            self._sorted = sorted(self.latencies_ns)
        return self._sorted

    def percentile_us(self, q: float) -> float:
        """Nearest-rank percentile of the latency, µs (0 with no data)."""
        s = self.sorted_ns
        if not s:
            return 0.0
        k = max(0, min(len(s) - 1, math.ceil(q / 100.0 * len(s)) - 1))
        return s[k] / 1000.0

    def latency_us(self) -> dict[str, float]:
        """min, mean, stdev, p50, p90, p99, p99.9 and max, µs."""
        if self.hist is not None:
            return dict(self.hist.latency)
        s = self.sorted_ns
        if not s:
            return {k: 0.0 for k in ("min", "mean", "stdev", "p50", "p90", "p99", "p99.9", "max")}
        n = len(s)
        mean = sum(s) / n
        var = sum((x - mean) ** 2 for x in s) / n if n > 1 else 0.0
        out = {"min": s[0] / 1000.0, "mean": mean / 1000.0, "stdev": math.sqrt(var) / 1000.0}
        for q in PERCENTILES:
            out[f"p{q:g}"] = self.percentile_us(q)
        out["max"] = s[-1] / 1000.0
        return out

    def histogram(self, buckets: int = HISTOGRAM_BUCKETS) -> list[tuple[float, float, int]]:
        """(from µs, to µs, count) over log-spaced buckets from the fastest
        to the slowest reply: latency spreads over orders of magnitude, so
        equal-width buckets would put nearly everything in the first."""
        if self.hist is not None:
            return list(self.hist.buckets)
        s = self.sorted_ns
        if not s:
            return []
        lo, hi = s[0], s[-1]
        if hi <= lo:
            return [(lo / 1000.0, hi / 1000.0, len(s))]
        ratio = (hi / lo) ** (1.0 / buckets)
        edges = [lo * ratio**i for i in range(buckets)] + [float(hi)]
        out: list[tuple[float, float, int]] = []
        prev = 0
        for i in range(buckets):
            upto = len(s) if i == buckets - 1 else bisect_right(s, edges[i + 1])
            out.append((edges[i] / 1000.0, edges[i + 1] / 1000.0, upto - prev))
            prev = upto
        return out

    def to_dict(self) -> dict[str, Any]:
        """The report as plain data (``--json``)."""
        cfg = self.config
        return {
            "target": {"url": cfg.url, "method": cfg.method or ("POST" if cfg.body is not None else "GET")},
            "config": {
                "requests": cfg.requests,
                "duration_s": cfg.duration,
                "concurrency": cfg.concurrency,
                "rate": cfg.rate,
                "http_version": cfg.http_version,
                "latency_from": latency_origin(cfg),
            },
            "interrupted": self.interrupted,
            "summary": {
                "sent": self.sent,
                "completed": self.completed,
                "abandoned": self.abandoned,
                "seconds": round(self.seconds, 6),
                "requests_per_s": round(self.rps, 1),
                "ok": self.ok,
                "errors": self.errors,
                "failed_transfers": self.failed,
            },
            "latency_us": {k: round(v, 1) for k, v in self.latency_us().items()},
            "histogram_us": [
                {"from": round(a, 1), "to": round(b, 1), "count": c} for a, b, c in self.histogram()
            ],
            "status_codes": {str(k): v for k, v in sorted(self.status.items())},
            "error_kinds": dict(sorted(self.error_kinds.items(), key=lambda kv: -kv[1])),
            "bytes": {
                "received": self.bytes_received,
                "received_body": self.body_bytes_received,
                "sent_body": self.sent * len(cfg.body or b""),
            },
            "stats": self.stats,
        }


def latency_origin(cfg: BenchConfig) -> str:
    """What the latencies are measured from: with ``--rate``, each
    request's scheduled start (coordinated-omission corrected, measured in
    Python: the C histograms cannot know when a request was due); without,
    the transfer (libcurl's total time, from the C histograms)."""
    return "scheduled start" if cfg.rate else "transfer"


@dataclass
class HistSummary:
    """The report's latency figures from the workers' histograms of one
    origin: ``latency_us()``'s keys and ``histogram()``'s buckets."""

    latency: dict[str, float]
    buckets: list[tuple[float, float, int]]


def hist_summary(client: Client, url: str, buckets: int = HISTOGRAM_BUCKETS) -> HistSummary | None:
    """Percentiles, mean, an estimated stdev (from 256 log-spaced bins) and
    log-spaced buckets of the total time of the completed transfers to
    url's origin (None when there are none)."""
    total = lib.HAC_H_TOTAL
    qs = [0.0] + [q / 100.0 for q in PERCENTILES] + [1.0]
    q, _, counts, sums = client._latency_raw(origin_key(url), qs, [])
    n = counts[total]
    if not n:
        return None
    lo, hi = q[total][0], q[total][-1]
    out = {"min": float(lo), "mean": sums[total] / n}
    for name, v in zip(PERCENTILES, q[total][1:-1]):
        out[f"p{name:g}"] = float(v)
    out["max"] = float(hi)
    fine = 256
    coarse_e = _log_edges(lo, hi, buckets)
    fine_e = _log_edges(lo, hi, fine)
    _, cum, _, _ = client._latency_raw(origin_key(url), [], [int(e) for e in coarse_e + fine_e])
    coarse, c = cum[total][: buckets + 1], cum[total][buckets + 1 :]
    mean = out["mean"]
    # samples at the lowest edge, in each fine bin (at its midpoint), above
    var = c[0] * (lo - mean) ** 2 + (n - c[fine]) * (hi - mean) ** 2
    for j in range(fine):
        var += (c[j + 1] - c[j]) * ((fine_e[j] + fine_e[j + 1]) / 2 - mean) ** 2
    out["stdev"] = math.sqrt(var / n)
    rows = []
    below = 0
    for i in range(buckets):
        upto = n if i == buckets - 1 else coarse[i + 1]
        rows.append((coarse_e[i], coarse_e[i + 1], upto - below))
        below = upto
    return HistSummary(out, rows)


def _log_edges(lo: int, hi: int, buckets: int) -> list[float]:
    """buckets + 1 log-spaced edges from lo to hi (µs)."""
    lo = max(1, lo)
    if hi <= lo:
        return [float(lo)] * (buckets + 1)
    ratio = (hi / lo) ** (1.0 / buckets)
    return [lo * ratio**i for i in range(buckets)] + [float(hi)]


def error_kind(reply: Reply) -> str:
    """A short, stable name for why a transfer failed: the error text
    without its per-request detail (ports, byte counts, ms)."""
    if reply.timed_out:
        return "timeout"
    if reply.cancelled:
        return "cancelled"
    err = reply.err or "failed"
    for prefix, name in (("BODY_TOO_LARGE", "body too large"), ("BAD_RESPONSE", "bad response")):
        if err.startswith(prefix):
            return f"{name} (curl error {reply.curl_code})"
    # "<curl_easy_strerror>: <detail> (curl error N)"
    what = err.split(": ", 1)[0].split(" (curl error", 1)[0]
    return f"{what} (curl error {reply.curl_code})"


def _submitter(client: Client, cfg: BenchConfig) -> Callable[[], QueryHandle]:
    """The cheapest call that sends one request of the run."""
    query = client.query
    url = cfg.url
    kw: dict[str, Any] = {}
    if cfg.method:
        kw["method"] = cfg.method
    if cfg.headers:
        kw["headers"] = cfg.headers
    if cfg.http_version is not None:
        kw["http_version"] = cfg.http_version
    body = cfg.body
    if not kw and body is None:
        return lambda: query(url)
    return lambda: query(url, body, **kw)


def run_load(client: Client, cfg: BenchConfig, progress: Progress, stop: StopFlag) -> BenchResult:
    """Keep ``concurrency`` requests in flight (at most ``rate`` per second
    on a fixed token schedule) until ``requests`` were sent, ``duration``
    passed or ``stop`` was requested; then wait for what is in flight.
    Latency is submit-to-reply as the application sees it, or with a rate
    scheduled-start-to-reply (see latency_origin)."""
    perf = time.perf_counter_ns
    submit = _submitter(client, cfg)
    completions = client.completions
    total = cfg.requests if cfg.requests is not None else _NEVER
    conc = max(1, cfg.concurrency)
    interval = int(1e9 / cfg.rate) if cfg.rate else 0
    tick = max(1, int(progress.interval * 1e9))
    # how often the loop looks up from completions() (Ctrl-C, progress);
    # one generator per wake, so this costs nothing per request
    poll = min(tick, 100_000_000)

    starts: dict[int, int] = {}
    pop = starts.pop
    lat: array[int] = array("q")
    lat_append = lat.append
    status: dict[int, int] = {}
    status_get = status.get
    kinds: dict[str, int] = {}
    ok = sent = rx = rx_body = 0
    told_stopping = False

    t0 = perf()
    end = t0 + int(cfg.duration * 1e9) if cfg.duration is not None else _NEVER
    next_due = t0
    next_tick = t0 + tick
    next_poll = t0 + poll
    sending = True
    while True:
        now = perf()
        if sending and (sent >= total or now >= end or stop.count):
            sending = False
        if sending:
            while len(starts) < conc and sent < total:
                if interval:
                    if next_due > now:
                        break
                    next_due += interval
                h = submit()
                # with a rate, latency runs from the request's scheduled
                # start (next_due - interval), not from when the loop got
                # to it: a stalled server then shows its stall in every
                # request it held back (coordinated omission, as wrk2)
                starts[h.id] = next_due - interval if interval else now
                sent += 1
                now = perf()
        if stop.count and not told_stopping:
            told_stopping = True
            progress.stopping(len(starts))
        if not starts:
            if not sending:
                break
            # rate-limited and idle: sleep to the next token (or tick)
            time.sleep(max(0, min(next_due, next_poll, end) - now) / 1e9)
        else:
            wake = next_poll
            if sending:
                wake = min(wake, end)
                if interval and len(starts) < conc:
                    wake = min(wake, next_due)
            try:
                for reply in completions(max(0, wake - now) / 1e9):
                    now = perf()
                    lat_append(now - pop(reply.id))
                    if reply.flags & _R_OK:
                        code = reply.status
                        status[code] = status_get(code, 0) + 1
                        if code < 400:
                            ok += 1
                        rx += reply.ml  # no copy of a large reply held in C
                        rx_body += reply.bs
                    else:
                        kind = error_kind(reply)
                        kinds[kind] = kinds.get(kind, 0) + 1
                    # one in, one out: the common case never leaves the loop
                    if sent < total and now < end and not stop.count:
                        if not interval:
                            starts[submit().id] = now
                            sent += 1
                        elif next_due <= now:
                            starts[submit().id] = next_due
                            next_due += interval
                            sent += 1
                    if now >= wake:
                        break
            except WaitTimeout:
                pass
        now = perf()
        if now >= next_poll:
            next_poll = now + poll
        if now >= next_tick:
            next_tick = now + tick
            frac = sent / total if cfg.requests else 0.0
            if cfg.duration:
                frac = max(frac, (now - t0) / (end - t0))
            done = len(lat)
            progress.update(
                Snapshot((now - t0) / 1e9, done, sent, done - ok, len(starts), min(1.0, frac))
            )
        if stop.count >= 2:
            break
    finished = perf()
    hist = None if interval else hist_summary(client, cfg.url)
    done = len(lat)
    frac = 1.0 if not stop.count else done / max(1, sent)
    progress.update(Snapshot((finished - t0) / 1e9, done, sent, done - ok, len(starts), frac))
    return BenchResult(
        config=cfg,
        seconds=(finished - t0) / 1e9,
        sent=sent,
        latencies_ns=lat,
        ok=ok,
        status=status,
        error_kinds=kinds,
        bytes_received=rx,
        body_bytes_received=rx_body,
        interrupted=bool(stop.count),
        abandoned=len(starts),
        hist=hist,
    )
