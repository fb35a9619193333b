"""Per-origin latency histograms kept by the C workers: ``client.latency()``
and their Prometheus histograms.

Each worker records every transfer libcurl completed (any HTTP status) in
log-linear histograms of its origin (``"scheme://host:port"``, lowercased,
default port filled in): TCP connect and TLS handshake (new connections
only), time to first byte and total, in microseconds, within 1.6 % of the
exact value.  Reading merges the workers' histograms in one C call."""

from __future__ import annotations

from typing import Any, Iterable, Mapping, TypedDict, overload

from ._base import ClientBase
from ._exceptions import InvalidOption, InvalidOptionType
from ._ffi import ffi, lib
from ._prometheus import PREFIX, _escape, _label_text

PHASES = ("connect", "tls", "ttfb", "total")  # HAC_H_CONNECT .. HAC_H_TOTAL
QUANTILES = (("p50", 0.5), ("p90", 0.9), ("p99", 0.99), ("p999", 0.999))
OTHER = "other"  # past 1,024 origins per worker, the rest share this one

# Prometheus: family name, HELP text, per phase (HAC_H_* order)
FAMILIES = (
    ("connect_duration_seconds", "TCP connect time of new connections, by origin."),
    ("tls_duration_seconds", "TLS handshake time of new connections, by origin."),
    ("ttfb_seconds", "Time from the start of a transfer to its first response byte, by origin."),
    ("request_duration_seconds", "Total time of completed transfers (any HTTP status), by origin."),
)
# the `le` bounds, seconds (cumulative counts come from the fine buckets: a
# sample within 1.6 % of a bound may be counted on either side of it)
LE_SECONDS = (
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
    0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
)
_LE_US = [round(s * 1e6) for s in LE_SECONDS]
_NPH = len(PHASES)
_KEY_CAP = 320
_key_cache: dict[str, str] = {}


class PhaseLatency(TypedDict):
    """One phase of one origin: samples, their sum and mean, percentiles
    (µs; None without samples)."""

    count: int
    sum: int
    mean: float | None
    p50: int | None
    p90: int | None
    p99: int | None
    p999: int | None


class Latency(PhaseLatency):
    """``client.latency(origin)``: the total time's figures at the top,
    each phase's under its name."""

    origin: str
    connect: PhaseLatency
    tls: PhaseLatency
    ttfb: PhaseLatency


def origin_key(url: str) -> str:
    """The origin the histograms are kept under: ``"http://127.0.0.1:8080"``
    for ``"http://127.0.0.1:8080/x?y"`` (C's own normalization)."""
    if not isinstance(url, str):
        raise InvalidOptionType(f"origin must be a str, not {type(url).__name__}")
    key = _key_cache.get(url)
    if key is not None:
        return key
    if url == OTHER:
        return OTHER
    buf = ffi.new("char[]", _KEY_CAP)
    n = lib.hac_origin_key(url.encode("utf-8", "surrogateescape"), buf, _KEY_CAP)
    if not n:
        raise InvalidOption(f"origin {url!r} is not a URL (scheme://host[:port])")
    key = str(ffi.unpack(buf, n).decode("utf-8", "surrogateescape"))
    if len(_key_cache) < 4096:
        _key_cache[url] = key
    return key


def _phase(counts: Any, sums: Any, qout: Any, p: int) -> PhaseLatency:
    n = int(counts[p])
    nq = len(QUANTILES)
    vals = [int(qout[p * nq + j]) for j in range(nq)] if n else [None] * nq
    return PhaseLatency(
        count=n,
        sum=int(sums[p]),
        mean=int(sums[p]) / n if n else None,
        p50=vals[0],
        p90=vals[1],
        p99=vals[2],
        p999=vals[3],
    )


class LatencyMixin(ClientBase):
    """``client.latency()`` and the histogram part of ``stats_prometheus()``."""

    @overload
    def latency(self, origin: str) -> Latency: ...

    @overload
    def latency(self, origin: None = None) -> dict[str, Latency]: ...

    def latency(self, origin: str | None = None) -> Latency | dict[str, Latency]:
        """Latency percentiles of one origin, in µs, from the workers' C
        histograms (no Python cost per request): ``p50``, ``p90``,
        ``p99``, ``p999``, ``count``, ``sum``, ``mean`` of the total time,
        and the same under ``"connect"``, ``"tls"`` (new connections only)
        and ``"ttfb"``.  ``origin`` is ``"scheme://host[:port]"`` or any URL
        of it; an origin never seen gives counts of 0 and None percentiles.
        With no argument: every origin's, keyed by origin."""
        self._check_usable()
        if origin is None:
            return {key: self._latency_of(key) for key in self.latency_origins()}
        return self._latency_of(origin_key(origin))

    def latency_origins(self) -> list[str]:
        """The origins that have histograms (``"other"`` once a worker saw
        more than 1,024)."""
        self._check_usable()
        if self._c is None:
            return []
        cap = 4096
        while True:
            buf = ffi.new("char[]", cap)
            need = int(lib.hac_latency_origins(self._c, buf, cap))
            if need <= cap:
                break
            cap = need
        raw = ffi.unpack(buf, need).decode("utf-8", "surrogateescape")
        return sorted(set(k for k in raw.split("\0") if k))

    def _latency_of(self, key: str, q: Iterable[float] | None = None) -> Latency:
        qs = [v for _, v in QUANTILES] if q is None else list(q)
        qarr = ffi.new("double[]", qs)
        qout = ffi.new("int64_t[]", _NPH * len(qs))
        counts = ffi.new("uint64_t[]", _NPH)
        sums = ffi.new("uint64_t[]", _NPH)
        if self._c is not None:
            rc = lib.hac_latency(self._c, key.encode("utf-8", "surrogateescape"), qarr, len(qs),
                                 qout, ffi.NULL, 0, ffi.NULL, counts, sums)
            if rc < 0:
                raise MemoryError("http_async_client: out of memory merging histograms")
        total = _phase(counts, sums, qout, lib.HAC_H_TOTAL)
        return Latency(
            origin=key,
            count=total["count"],
            sum=total["sum"],
            mean=total["mean"],
            p50=total["p50"],
            p90=total["p90"],
            p99=total["p99"],
            p999=total["p999"],
            connect=_phase(counts, sums, qout, lib.HAC_H_CONNECT),
            tls=_phase(counts, sums, qout, lib.HAC_H_TLS),
            ttfb=_phase(counts, sums, qout, lib.HAC_H_TTFB),
        )

    def _latency_raw(self, key: str | None, qs: list[float], le_us: list[int]) -> tuple[
            list[list[int]], list[list[int]], list[int], list[int]]:
        """For the bench report and Prometheus: per phase, the quantiles
        ``qs`` and the cumulative counts at ``le_us``, the counts, the sums
        (key None: every origin merged)."""
        nq, nle = len(qs), len(le_us)
        qout = ffi.new("int64_t[]", max(1, _NPH * nq))
        cum = ffi.new("uint64_t[]", max(1, _NPH * nle))
        counts = ffi.new("uint64_t[]", _NPH)
        sums = ffi.new("uint64_t[]", _NPH)
        if self._c is not None:
            name = ffi.NULL if key is None else key.encode("utf-8", "surrogateescape")
            rc = lib.hac_latency(self._c, name, ffi.new("double[]", qs) if qs else ffi.NULL, nq,
                                 qout, ffi.new("int64_t[]", le_us) if le_us else ffi.NULL, nle,
                                 cum, counts, sums)
            if rc < 0:
                raise MemoryError("http_async_client: out of memory merging histograms")
        return (
            [[int(qout[p * nq + j]) for j in range(nq)] for p in range(_NPH)],
            [[int(cum[p * nle + j]) for j in range(nle)] for p in range(_NPH)],
            [int(counts[p]) for p in range(_NPH)],
            [int(sums[p]) for p in range(_NPH)],
        )

    def _latency_prometheus(self, labels: Mapping[str, str] | None) -> str:
        """The histograms as Prometheus histogram families (one series per
        origin, ``origin`` label added to ``labels``)."""
        base = _label_text(labels or {})
        inner = base[1:-1] + "," if base else ""
        rows = []
        for key in self.latency_origins():
            _, cum, counts, sums = self._latency_raw(key, [], _LE_US)
            rows.append((f'{inner}origin="{_escape(key)}"', cum, counts, sums))
        lines: list[str] = []
        for p, (name, help_text) in enumerate(FAMILIES):
            full = PREFIX + name
            lines.append(f"# HELP {full} {help_text}")
            lines.append(f"# TYPE {full} histogram")
            for lab, cum, counts, sums in rows:
                for le, c in zip(LE_SECONDS, cum[p]):
                    lines.append(f'{full}_bucket{{{lab},le="{le:g}"}} {c}')
                lines.append(f'{full}_bucket{{{lab},le="+Inf"}} {counts[p]}')
                lines.append(f"{full}_sum{{{lab}}} {sums[p] / 1e6:.6f}")
                lines.append(f"{full}_count{{{lab}}} {counts[p]}")
        return "\n".join(lines) + "\n"


__all__ = ["Latency", "LatencyMixin", "PhaseLatency", "origin_key"]
