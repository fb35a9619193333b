"""Retries, hedges, rate limits and destination sets: their checks and
option-table rows, and the ``Client`` methods that define and show
destination sets.

Strategy: all of it runs in the C worker (retry.c, hedge.c, limit.c,
dest.c); Python checks the values once and hands them over as option-table
rows (``RESILIENCE_ROWS``, which ``_optable`` appends to its own) or, for
a destination set, with one call per definition.  Nothing here runs per
request.
"""

from __future__ import annotations

import re
from typing import Any, Iterable, Mapping, Sequence

from ._exceptions import InvalidOption, InvalidOptionType
from ._ffi import ffi, lib
from ._latency import origin_key
from ._optrow import Opt
from ._validate import DEST_NAMES, check_flag, check_nonneg, check_url, to_int

ALGORITHMS = {
    "round_robin": lib.HAC_ALG_ROUND_ROBIN,
    "weighted": lib.HAC_ALG_WEIGHTED,
    "failover": lib.HAC_ALG_FAILOVER,
    "hash": lib.HAC_ALG_HASH,
}
_STATES = {lib.HAC_DS_UP: "up", lib.HAC_DS_DOWN: "down", lib.HAC_DS_PROBING: "probing"}
_SET_NAME = re.compile(r"[A-Za-z0-9_.\-]{1,64}\Z")
_PCTL = re.compile(r"p(\d{1,2}(?:\.\d)?|99\d|100)\Z")
_ORIGIN = re.compile(r"(?i)(https?)://([^/?#@\s]+?)(?::(\d{1,5}))?/?\Z")
MAX_RETRIES = 1000



def check_retries(name: str, value: object) -> int:
    n = to_int(name, value)
    if not 0 <= n <= MAX_RETRIES:
        raise InvalidOption(f"{name} must be 0..{MAX_RETRIES}, got {n}")
    return n


def _statuses(name: str, value: object) -> frozenset[int]:
    if value is None:
        return frozenset()
    if isinstance(value, (str, bytes)) or not isinstance(value, Iterable):
        raise InvalidOptionType(
            f"{name} must be a set of HTTP status codes, not {type(value).__name__}"
        )
    out = set()
    for v in value:
        if isinstance(v, bool) or not isinstance(v, int) or not 100 <= v <= 599:
            raise InvalidOption(f"{name}: {v!r} is not an HTTP status code (100..599)")
        out.add(v)
    return frozenset(out)


def check_retry_statuses(name: str, value: object) -> frozenset[int]:
    """The client's: a frozenset of status codes."""
    return _statuses(name, value)


def query_retry_statuses(name: str, value: object) -> str:
    """One query's, as the core reads it: "502,503" ("" for none)."""
    return statuses_text(_statuses(name, value))


def statuses_text(codes: frozenset[int]) -> str:
    return ",".join(str(c) for c in sorted(codes))


def check_hedge_after(name: str, value: object) -> int | str | None:
    """ms (> 0), ``"pNN"`` (the origin's NNth percentile of time to first
    byte) or None (no hedging)."""
    if value is None:
        return None
    if isinstance(value, str):
        text = value.strip().lower()
        m = _PCTL.match(text)
        if m is None:
            raise InvalidOption(
                f'{name} must be ms or a percentile such as "p95", got {value!r}'
            )
        q = float(m.group(1)) if len(m.group(1)) < 3 else float(m.group(1)) / 10
        if not 0 < q < 100:
            raise InvalidOption(f"{name}: percentile must be between 0 and 100, got {value!r}")
        return text
    ms = to_int(name, value)
    if ms < 1:
        raise InvalidOption(f"{name} must be >= 1 ms (None: no hedging), got {ms}")
    return ms


def hedge_code(value: int | str | None) -> int:
    """The core's form: ms, 0 for none, -(percentile x 10) for "pNN"."""
    if value is None:
        return 0
    if isinstance(value, int):
        return value
    digits = value[1:]
    q = float(digits) if len(digits) < 3 else float(digits) / 10
    return -int(round(q * 10))


def query_hedge_after(name: str, value: object) -> int:
    v = check_hedge_after(name, value)
    return hedge_code(v)


def check_budget(name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InvalidOptionType(f"{name} must be a number, not {type(value).__name__}")
    v = float(value)
    if not 0.0 <= v <= 1.0:
        raise InvalidOption(f"{name} must be a share of requests, 0..1, got {value!r}")
    return v


def check_queue_wait(name: str, value: object) -> int | None:
    if value is None:
        return None
    ms = to_int(name, value)
    if ms < 1:
        raise InvalidOption(f"{name} must be >= 1 ms (None: the deadline alone), got {ms}")
    return ms


def query_queue_wait(name: str, value: object) -> int:
    v = check_queue_wait(name, value)
    return 0 if v is None else v


def rate_origin(name: str, url: str) -> str:
    """An http(s) origin, as the core names it (``origin_key``: lower
    case, the scheme's port filled in)."""
    m = _ORIGIN.match(url.strip()) if isinstance(url, str) else None
    if m is None or (m.group(3) is not None and not 0 < int(m.group(3)) < 65536):
        raise InvalidOption(f"{name}: {url!r} is not an origin (http[s]://host[:port])")
    return origin_key(url.strip())


def check_rate_limit(name: str, value: object) -> dict[str, float] | None:
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise InvalidOptionType(
            f"{name} must map origins to requests/s, not {type(value).__name__}"
        )
    out: dict[str, float] = {}
    for origin, rps in value.items():
        key = rate_origin(name, origin)
        if isinstance(rps, bool) or not isinstance(rps, (int, float)) or not rps > 0:
            raise InvalidOption(f"{name}: requests/s for {origin!r} must be > 0, got {rps!r}")
        if float(rps) > 1e7:
            raise InvalidOption(f"{name}: requests/s for {origin!r} must be <= 1e7")
        out[key] = float(rps)
    return out or None


def rate_limit_text(value: Mapping[str, float]) -> str:
    return "\n".join(f"{k} {v!r}" for k, v in value.items())


# The rows sit here, next to their checks; _optable appends them to its
# own, so their order is that of Client's keywords and docs/api.md's tables.
RESILIENCE_ROWS: tuple[Opt, ...] = (
    Opt("retries", "retries", 0, check_retries, check_retries, cfg="retries",
        key="HAC_O_RETRIES", since="ours",
        doc="attempts after the first, all inside the one deadline: a request that "
            "failed before any response byte (refused, reset, stale connection, "
            "connect timeout; a POST/PATCH only if it was not sent or `retry_unsafe`), "
            "and an idempotent one (or `retry_unsafe`) that failed later or got a "
            "status in `retry_statuses`; `Reply.attempts` counts them"),
    Opt("retry_statuses", "retry_statuses", frozenset(), check_retry_statuses,
        query_retry_statuses, cfg="retry_statuses", key="HAC_O_RETRY_STATUSES",
        since="ours",
        doc="HTTP statuses that are retried, e.g. `{502, 503, 504}`; a `Retry-After` "
            "(seconds or a date) is honoured when it fits in the deadline, else the "
            "reply stands"),
    Opt("retry_backoff", "retry_backoff", 50, check_nonneg, check_nonneg,
        cfg="retry_backoff", key="HAC_O_RETRY_BACKOFF", since="ours",
        doc="ms, base of the exponential backoff with full jitter between attempts "
            "(uniform in 0..min(1000, base x 2^n)); an attempt that would start after "
            "the deadline is not made: the reply is a timeout naming the last error"),
    Opt(None, "retry_unsafe", None, None, check_flag, key="HAC_O_RETRY_UNSAFE",
        since="ours",
        doc="True: retry a POST/PATCH as if it were idempotent (the server may "
            "then run it twice)"),
    Opt("hedge_after", "hedge_after", None, check_hedge_after, query_hedge_after,
        cfg="hedge_after", key="HAC_O_HEDGE_AFTER", since="ours",
        doc='ms, or `"p95"` (any `"pNN"`: that percentile of the origin\'s time to '
            "first byte, once known): an idempotent request with no response by then "
            "gets one copy (to the next destination of its set); the first complete "
            "reply wins, the other is cancelled; `Reply.hedged`"),
    Opt("hedge_budget", None, 0.1, check_budget, cfg="hedge_budget", since="ours",
        doc="hedges are at most this share of the client's requests (0..1)"),
    Opt("max_queue_wait", "max_queue_wait", None, check_queue_wait, query_queue_wait,
        cfg="max_queue_wait", key="HAC_O_MAX_QUEUE_WAIT", since="ours",
        doc="ms a request may wait for a connection slot (`max_connections`) or a "
            "`rate_limit` slot; past it it fails at once (`QUEUE_WAIT`/`RATE_LIMITED`: "
            "load shedding) instead of spending its deadline queued"),
    Opt("rate_limit", None, None, check_rate_limit, cfg="rate_limit", since="ours",
        doc='`{"http://host:port": requests_per_s}`: each origin sends at most that '
            "rate (no burst); waiting requests keep their deadline running and miss it "
            "with `err` naming the rate limit"),
)


class Destinations:
    """``Client.destinations()`` / ``destination_state()``, mixed into
    ``Client`` (``_c`` is its core, ``_dests`` its definitions, kept to be
    shown and replayed)."""

    _c: Any
    _closed: bool
    _dests: dict[str, dict[str, Any]]

    def destinations(
        self,
        name: str,
        urls: Sequence[str],
        algorithm: str = "round_robin",
        weights: Sequence[int] | None = None,
        max_failures: int = 3,
        down_for: float = 10,
        probe_path: str | None = None,
    ) -> None:
        """Define (or replace) the destination set ``name``: then
        ``query("dest://NAME/path?q")`` sends each attempt to one of
        ``urls`` (base URLs, each may end in a path prefix), picked in C by
        ``algorithm`` (``round_robin``, ``weighted`` by ``weights``,
        ``failover`` in order, ``hash`` of the path).  ``max_failures``
        consecutive failures (no response, or 5xx) mark a destination down
        for ``down_for`` s; then one real request probes it.  Retries and
        hedges go to the next destination."""
        if not isinstance(name, str) or not _SET_NAME.match(name):
            raise InvalidOption(f"destination set name must be 1-64 of [A-Za-z0-9_.-], got {name!r}")
        if isinstance(urls, (str, bytes)) or not isinstance(urls, Sequence) or not urls:
            raise InvalidOption("urls must be a non-empty list of http(s) URLs")
        texts = []
        for u in urls:
            if not isinstance(u, str) or u.lower().startswith("dest:"):
                raise InvalidOption(f"destination {u!r} must be an http(s) URL")
            check_url(u)
            if "?" in u or "#" in u:
                raise InvalidOption(f"destination {u!r} must not have a query or fragment")
            texts.append(u.rstrip("/"))
        if algorithm not in ALGORITHMS:
            raise InvalidOption(
                f"algorithm must be one of {', '.join(ALGORITHMS)}, got {algorithm!r}"
            )
        if weights is not None:
            if len(weights) != len(texts):
                raise InvalidOption(f"weights: {len(weights)} for {len(texts)} urls")
            for wt in weights:
                if isinstance(wt, bool) or not isinstance(wt, int) or not 1 <= wt <= 1_000_000:
                    raise InvalidOption(f"weights must be integers 1..1000000, got {wt!r}")
        failures = to_int("max_failures", max_failures)
        if failures < 1:
            raise InvalidOption(f"max_failures must be >= 1, got {failures}")
        if isinstance(down_for, bool) or not isinstance(down_for, (int, float)) or down_for < 0:
            raise InvalidOption(f"down_for must be seconds >= 0, got {down_for!r}")
        if probe_path is not None and (
            not isinstance(probe_path, str) or not probe_path.startswith("/")
            or any(c <= " " or c == "\x7f" for c in probe_path)
        ):
            raise InvalidOption(f"probe_path must be a path starting with '/', got {probe_path!r}")
        self._dest_define(name, {
            "urls": tuple(texts), "algorithm": algorithm,
            "weights": tuple(weights) if weights is not None else None,
            "max_failures": failures, "down_for": float(down_for), "probe_path": probe_path,
        })

    def _dest_define(self, name: str, d: Mapping[str, Any]) -> None:
        if self._closed:
            getattr(self, "_check_open")()  # raises, or rebuilds a forked child
        w = ffi.new("long[]", list(d["weights"])) if d["weights"] else ffi.NULL
        rc = lib.hac_dest_define(
            self._c, name.encode(), "\n".join(d["urls"]).encode(), w, len(d["urls"]),
            ALGORITHMS[d["algorithm"]], d["max_failures"], int(d["down_for"] * 1000),
            d["probe_path"].encode() if d["probe_path"] else ffi.NULL,
        )
        if rc != 0:
            raise MemoryError("out of memory defining a destination set")
        self._dests[name] = dict(d)
        DEST_NAMES.add(name)

    def _after_rebuild(self) -> None:
        """A forked child's new core gets the parent's destination sets."""
        getattr(super(), "_after_rebuild")()
        for name, d in list(self._dests.items()):
            self._dest_define(name, d)

    def destination_state(self, name: str) -> list[dict[str, Any]]:
        """One entry per destination of set ``name``, in order: ``url``,
        ``state`` (``"up"``, ``"down"`` or ``"probing"``), ``weight``,
        ``inflight``, ``requests`` (attempts sent), ``successes``,
        ``failures``, ``consecutive_failures``, ``latency_us`` (mean total
        time of its completed attempts), ``down_left_s``."""
        if self._closed:
            getattr(self, "_check_open")()
        return self._dest_state(name)

    def _dest_state(self, name: str) -> list[dict[str, Any]]:
        d = self._dests.get(name)
        if d is None or self._c is None:
            raise InvalidOption(f"no destination set named {name!r}")
        out = ffi.new("hac_dest_info[]", len(d["urls"]))
        n = lib.hac_dest_state(self._c, name.encode(), out, len(d["urls"]))
        if n < 0:
            raise InvalidOption(f"no destination set named {name!r}")
        weights = d["weights"] or (1,) * len(d["urls"])
        return [
            {
                "url": d["urls"][i],
                "state": _STATES.get(out[i].state, "up"),
                "weight": weights[i],
                "inflight": out[i].inflight,
                "requests": out[i].requests,
                "successes": out[i].successes,
                "failures": out[i].failures,
                "consecutive_failures": out[i].consecutive_failures,
                "latency_us": out[i].latency_us,
                "down_left_s": out[i].down_left_ms / 1000.0,
            }
            for i in range(min(n, len(d["urls"])))
        ]

    def _destination_stats(self) -> dict[str, list[dict[str, Any]]]:
        if self._c is None:
            return {}
        return {name: self._dest_state(name) for name in self._dests}


__all__ = [
    "ALGORITHMS",
    "DEST_NAMES",
    "Destinations",
    "RESILIENCE_ROWS",
    "check_budget",
    "check_hedge_after",
    "check_queue_wait",
    "check_rate_limit",
    "check_retries",
    "check_retry_statuses",
    "hedge_code",
    "rate_origin",
    "query_hedge_after",
    "query_queue_wait",
    "query_retry_statuses",
    "rate_limit_text",
    "statuses_text",
]
