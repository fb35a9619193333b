"""``Client.stats()`` as Prometheus text exposition (format 0.0.4).

The seed's four statistics keep their names under the
``http_async_client_`` prefix (``http_async_client_requests_total``, ...);
the rest of ``stats()`` follows as counters (``_total``) or gauges.  Only
the standard library: a scrape handler just returns this text.
"""

from __future__ import annotations

import re
from typing import Iterable, Mapping, Tuple

PREFIX = "http_async_client_"
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

# stats() key -> (metric name without prefix, type, help)
METRICS: tuple[tuple[str, str, str, str], ...] = (
    ("requests", "requests_total", "counter", "Requests submitted."),
    ("started", "started_total", "counter", "Requests handed to libcurl."),
    ("replies", "replies_total", "counter", "Transfers completed, any HTTP status."),
    ("errors", "errors_total", "counter", "Failed transfers, timeouts excluded."),
    ("timeouts", "timeouts_total", "counter", "Transfers that missed their deadline."),
    ("cancelled", "cancelled_total", "counter", "Requests cancelled or dropped by close()."),
    ("route_errors", "route_errors_total", "counter", "Routes that raised an exception."),
    ("dead_connections", "dead_connections_total", "counter",
     "Cached connections found dead (closed before any response)."),
    ("resent", "resent_total", "counter",
     "Requests the worker sent again on a new connection (idempotent only)."),
    ("log_dropped", "log_dropped_bytes_total", "counter",
     "curl_verbose trace bytes dropped because nobody drained them."),
    ("retries", "retries_total", "counter", "Attempts started again by retries=."),
    ("hedges", "hedges_total", "counter", "Hedge copies sent (hedge_after)."),
    ("hedge_wins", "hedge_wins_total", "counter", "Replies that were the hedge's."),
    ("shed", "shed_total", "counter",
     "Requests failed at once by max_queue_wait (load shedding)."),
    ("rate_delayed", "rate_delayed_total", "counter",
     "Requests held back by a rate_limit."),
    ("inflight", "inflight", "gauge", "Requests submitted and not finished."),
    ("queued", "queued", "gauge", "Requests not yet picked up by a worker."),
    ("completed_pending", "completed_pending", "gauge",
     "Requests finished in C and not yet drained by Python."),
    ("mem_in_use", "mem_in_use_bytes", "gauge",
     "Bytes in use in the accounted allocator (process-wide)."),
    ("mem_peak", "mem_peak_bytes", "gauge",
     "Peak bytes of the accounted allocator (process-wide)."),
)

_LABEL_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*\Z")

Labels = Mapping[str, str]
Sample = Tuple[Labels, Mapping[str, int]]


def _escape(value: str) -> str:
    # the three escapes the text format defines for label values
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _label_text(labels: Labels) -> str:
    if not labels:
        return ""
    parts = []
    for name, value in labels.items():
        if not isinstance(name, str) or not _LABEL_NAME.match(name) or name.startswith("__"):
            raise ValueError(f"invalid Prometheus label name {name!r}")
        parts.append(f'{name}="{_escape(str(value))}"')
    return "{" + ",".join(parts) + "}"


def prometheus_text(samples: Iterable[Sample]) -> str:
    """Exposition text for one or more ``(labels, client.stats())`` pairs:
    each metric family once (HELP, TYPE, then one line per pair), so
    several clients can share one scrape when their labels differ."""
    rows = [(_label_text(labels), stats) for labels, stats in samples]
    lines: list[str] = []
    for key, name, kind, help_text in METRICS:
        full = PREFIX + name
        lines.append(f"# HELP {full} {help_text}")
        lines.append(f"# TYPE {full} {kind}")
        for label_text, stats in rows:
            lines.append(f"{full}{label_text} {int(stats.get(key, 0))}")
    return "\n".join(lines) + "\n"
