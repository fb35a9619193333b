"""OpenTelemetry client spans (``pip install http_async_client[otel]``).

    from http_async_client.contrib.otel import instrument
    instrument(client)          # every query from now on: one CLIENT span

Each query gets one span named after its method, with the stable HTTP
semantic conventions' attributes (``http.request.method``, ``url.full``
without credentials, ``server.address``, ``server.port``,
``http.response.status_code``, ``network.protocol.version``,
``error.type``), and carries the current context to the server in
``traceparent`` (the global propagator's headers).  The span starts when
the query is sent and lasts libcurl's total time of the transfer
(``Reply.times["total"]``), so the delay before Python drains the reply is
not in it; a failed transfer, which has no times, ends when its reply is
drained.  Whoever takes the reply (``result()``, ``completions()``, an
``await``, a route), the span has ended before it is delivered.

Strategy: ``instrument()`` shadows two of the client's methods with
attributes of the instance: ``_submit``, which every ``query()`` and seed
function goes through, and ``_settle``, which every drained reply goes
through on its way to its claimer; ``query_many`` is shadowed too.  A
client that is not instrumented has no such attribute: its per-request
path is not even a None check longer.  ``stream=True`` queries are not
traced.
"""

from __future__ import annotations

import threading
import time
from typing import Any, Iterable, Mapping
from urllib.parse import urlsplit

from opentelemetry import propagate, trace
from opentelemetry.trace import Span, SpanKind, Status, StatusCode, TracerProvider

from .._bodies import BodyArg
from .._client import Client
from .._delivery import Delivery, QueryHandle
from .._encode import QueryItem
from .._exceptions import InvalidOption, InvalidOptionType
from .._nextquery import NextQuery
from .._reply import Reply
from .._transport import redact_url
from .._validate import HeadersArg, headers_lines
from .._version import __version__
from .._wire import METHOD_CODES

__all__ = ["instrument", "is_instrumented", "uninstrument"]

_NAMES = {code: name for name, code in METHOD_CODES.items()}
_PORTS = {"http": 80, "https": 443}
_SHADOWED = ("_submit", "_settle", "query_many")

# libcurl's CURLcode names for the failures a client meets (error.type);
# anything else is the exception class raise_for_error() would raise
_CURL_ERRORS = {
    1: "CURLE_UNSUPPORTED_PROTOCOL", 5: "CURLE_COULDNT_RESOLVE_PROXY",
    6: "CURLE_COULDNT_RESOLVE_HOST", 7: "CURLE_COULDNT_CONNECT", 8: "CURLE_WEIRD_SERVER_REPLY",
    16: "CURLE_HTTP2", 18: "CURLE_PARTIAL_FILE", 23: "CURLE_WRITE_ERROR",
    28: "CURLE_OPERATION_TIMEDOUT", 35: "CURLE_SSL_CONNECT_ERROR", 47: "CURLE_TOO_MANY_REDIRECTS",
    52: "CURLE_GOT_NOTHING", 55: "CURLE_SEND_ERROR", 56: "CURLE_RECV_ERROR",
    60: "CURLE_PEER_FAILED_VERIFICATION", 63: "CURLE_FILESIZE_EXCEEDED",
    90: "CURLE_SSL_PINNEDPUBKEYNOTMATCH", 92: "CURLE_HTTP2_STREAM",
}


def instrument(client: Client, tracer_provider: TracerProvider | None = None) -> None:
    """Trace every query ``client`` sends from now on (idempotent)."""
    if not isinstance(client, Client):
        raise InvalidOption(f"instrument() takes a Client, not {type(client).__name__}")
    if is_instrumented(client):
        return
    tracer = trace.get_tracer("http_async_client.contrib.otel", __version__, tracer_provider)
    _Tracing(client, tracer).install()


def uninstrument(client: Client) -> None:
    """Stop tracing ``client``'s queries; spans still in flight end now."""
    tracing = vars(client).get("_otel")
    if not isinstance(tracing, _Tracing):
        return
    tracing.remove()


def is_instrumented(client: Client) -> bool:
    return isinstance(vars(client).get("_otel"), _Tracing)


class _Tracing:
    """The spans of one client's queries in flight, by request id."""

    def __init__(self, client: Client, tracer: trace.Tracer) -> None:
        self.client = client
        self.tracer = tracer
        self.lock = threading.Lock()
        self.spans: dict[int, tuple[Span, int]] = {}  # id -> (span, start ns)
        # replies drained while their query was between hac_submit and the
        # registration of its span (another thread drained): kept only then
        self.submitting = 0
        self.early: dict[int, tuple[Reply, int]] = {}

    def install(self) -> None:
        d = vars(self.client)
        d["_otel"] = self
        d["_submit"] = self.submit
        d["_settle"] = self.settle
        d["query_many"] = self.query_many

    def remove(self) -> None:
        d = vars(self.client)
        for name in (*_SHADOWED, "_otel"):
            d.pop(name, None)
        with self.lock:
            left, self.spans = self.spans, {}
        for span, _start in left.values():
            span.end()

    # ---------------------------------------------------------- sending
    def _start(self, url: str, method: str) -> tuple[Span, int, list[str]]:
        """A started span for one query and the header lines carrying it."""
        name = method if method in METHOD_CODES else "HTTP"
        attrs: dict[str, Any] = {
            "http.request.method": method if method in METHOD_CODES else "_OTHER",
            "url.full": redact_url(url),
        }
        try:
            parts = urlsplit(url)
            if parts.hostname:
                attrs["server.address"] = parts.hostname
            port = parts.port or _PORTS.get(parts.scheme.lower())
            if port:
                attrs["server.port"] = port
        except ValueError:  # the client refuses it next, with its own error
            pass
        start = time.time_ns()
        span = self.tracer.start_span(name, kind=SpanKind.CLIENT, attributes=attrs,
                                      start_time=start)
        carrier: dict[str, str] = {}
        propagate.inject(carrier, context=trace.set_span_in_context(span))
        return span, start, [f"{k}: {v}" for k, v in carrier.items()]

    def _register(self, h: QueryHandle, span: Span, start: int) -> None:
        with self.lock:
            self.submitting -= 1
            early = self.early.pop(h.id, None)
            if early is None:
                self.spans[h.id] = (span, start)
            if not self.submitting:
                self.early.clear()
        if early is not None:
            _end(span, start, *early)

    def _refused(self, span: Span, exc: BaseException) -> None:
        with self.lock:
            self.submitting -= 1
        span.set_attribute("error.type", f"{type(exc).__module__}.{type(exc).__qualname__}")
        span.set_status(Status(StatusCode.ERROR, str(exc)))
        span.end()

    def submit(self, state: NextQuery | None, url: str, post_data: BodyArg, route: Any,
               method: str | None, headers: HeadersArg, timeout: int | None, xdata: Any,
               opts: dict[str, object] | None) -> QueryHandle:
        if method is None:
            if state is not None and state.method is not None:
                method = _NAMES[state.method]
            else:
                has_body = post_data is not None or (state is not None and state.body is not None)
                method = "POST" if has_body else "GET"
        span, start, lines = self._start(url if isinstance(url, str) else repr(url),
                                         str(method).upper())
        with self.lock:
            self.submitting += 1
        try:
            h = Client._submit(self.client, state, url, post_data, route, method,
                               [*headers_lines(headers), *lines], timeout, xdata, opts)
        except BaseException as exc:
            self._refused(span, exc)
            raise
        self._register(h, span, start)
        return h

    def query_many(self, items: Iterable[QueryItem], route: Any = None) -> list[QueryHandle]:
        made: list[dict[str, Any]] = []
        started: list[tuple[Span, int]] = []
        try:
            for item in items:
                if isinstance(item, str):
                    q: dict[str, Any] = {"url": item}
                elif isinstance(item, tuple):
                    q = {"url": item[0], "post_data": item[1]}
                elif isinstance(item, Mapping):
                    q = dict(item)
                else:
                    raise InvalidOptionType(
                        "a query_many() item is a URL, a (url, post_data) pair or a "
                        f"mapping, not {type(item).__name__}")
                method = q.get("method") or ("GET" if q.get("post_data") is None else "POST")
                span, start, lines = self._start(str(q.get("url")), str(method).upper())
                started.append((span, start))
                q["headers"] = [*headers_lines(q.get("headers")), *lines]
                made.append(q)
        except BaseException:
            for span, _start in started:
                span.end()
            raise
        with self.lock:
            self.submitting += len(started)
        try:
            handles = Client.query_many(self.client, made, route)
        except BaseException as exc:
            for span, _start in started:
                self._refused(span, exc)
            raise
        for h, (span, start) in zip(handles, started):
            self._register(h, span, start)
        return handles

    # -------------------------------------------------------- receiving
    def settle(self, replies: list[Reply], here: Any, taken: list[QueryHandle] | None = None
               ) -> list[QueryHandle]:
        now = time.time_ns()
        ends: list[tuple[Span, int, Reply]] = []
        with self.lock:
            spans = self.spans
            for reply in replies:
                got = spans.pop(reply.id, None)
                if got is not None:
                    ends.append((got[0], got[1], reply))
                elif self.submitting:
                    self.early[reply.id] = (reply, now)
        for span, start, reply in ends:
            _end(span, start, reply, now)
        return Delivery._settle(self.client, replies, here, taken)


def _end(span: Span, start: int, reply: Reply, now: int) -> None:
    """End a query's span from its reply: libcurl's total time after the
    start (never later than the drain), else the drain's time."""
    status = reply.status
    if status:
        span.set_attribute("http.response.status_code", status)
    version = reply.http_version
    if version:
        span.set_attribute("network.protocol.version", version)
    if not reply.ok:
        if reply.timed_out:
            kind = "timeout"
        elif reply.cancelled:
            kind = "cancelled"
        else:
            kind = _CURL_ERRORS.get(reply.curl_code, "http_async_client.TransferError")
        span.set_attribute("error.type", kind)
        span.set_status(Status(StatusCode.ERROR, reply.err or "transfer failed"))
    elif status >= 400:
        span.set_attribute("error.type", str(status))
        span.set_status(Status(StatusCode.ERROR))
    total = reply.time("total")
    end = min(now, start + total * 1000) if total > 0 else now
    span.end(end_time=max(end, start))
