"""contrib.otel: one CLIENT span per query, checked with the SDK's
in-memory exporter against servers on 127.0.0.1."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import pytest

pytest.importorskip("opentelemetry.sdk", reason="opentelemetry-sdk is in the [test] extra")

from opentelemetry.sdk.trace import ReadableSpan, TracerProvider  # noqa: E402
from opentelemetry.sdk.trace.export import SimpleSpanProcessor  # noqa: E402
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter  # noqa: E402
from opentelemetry.trace import SpanKind, StatusCode  # noqa: E402

import http_async_client as hac  # noqa: E402
from http_async_client.contrib.otel import instrument, is_instrumented, uninstrument  # noqa: E402
from support.nginx import Nginx  # noqa: E402
from support.ports import free_port  # noqa: E402
from support.servers import HTTPTestServer, header  # noqa: E402

WAIT_S = 10.0


@pytest.fixture
def exporter() -> InMemorySpanExporter:
    return InMemorySpanExporter()


@pytest.fixture
def provider(exporter: InMemorySpanExporter) -> TracerProvider:
    p = TracerProvider()
    p.add_span_processor(SimpleSpanProcessor(exporter))
    return p


@pytest.fixture
def traced(provider: TracerProvider) -> Iterator[hac.Client]:
    client = hac.Client(connection_timeout=8000)
    instrument(client, tracer_provider=provider)
    yield client
    client.close()


def _traceparent(span: ReadableSpan) -> str:
    ctx = span.get_span_context()
    assert ctx is not None
    return f"00-{ctx.trace_id:032x}-{ctx.span_id:016x}-{int(ctx.trace_flags):02x}"


def _only(exporter: InMemorySpanExporter) -> ReadableSpan:
    spans = exporter.get_finished_spans()
    assert len(spans) == 1, spans
    return spans[0]


def test_get_span_attributes_and_traceparent(
    traced: hac.Client, exporter: InMemorySpanExporter, fresh_http_server: HTTPTestServer
) -> None:
    server = fresh_http_server
    reply = traced.query(server.url + "/echo?x=1").result(WAIT_S)
    assert reply.status == 200
    span = _only(exporter)
    assert span.name == "GET"
    assert span.kind is SpanKind.CLIENT
    assert dict(span.attributes or {}) == {
        "http.request.method": "GET",
        "url.full": server.url + "/echo?x=1",
        "server.address": "127.0.0.1",
        "server.port": server.port,
        "http.response.status_code": 200,
        "network.protocol.version": "1.1",
    }
    assert span.status.status_code is StatusCode.UNSET
    # what the server received is this very span's context
    assert header(server.requests[0], "traceparent") == _traceparent(span)


def test_span_is_a_child_of_the_current_span(
    traced: hac.Client, provider: TracerProvider, exporter: InMemorySpanExporter,
    fresh_http_server: HTTPTestServer,
) -> None:
    tracer = provider.get_tracer("test")
    with tracer.start_as_current_span("parent") as parent:
        traced.query(fresh_http_server.url + "/echo", b"data").result(WAIT_S)
    spans = {s.name: s for s in exporter.get_finished_spans()}
    child = spans["POST"]
    assert child.parent is not None
    assert child.parent.span_id == parent.get_span_context().span_id
    assert child.context is not None
    assert child.context.trace_id == parent.get_span_context().trace_id
    assert header(fresh_http_server.requests[0], "traceparent") == _traceparent(child)


def test_span_times_are_the_transfer(
    traced: hac.Client, exporter: InMemorySpanExporter, http_server: HTTPTestServer
) -> None:
    """The span lasts libcurl's total time, and ended before result()
    returned, even though the reply is claimed long after it arrived."""
    before = time.time_ns()
    h = traced.query(http_server.url + "/delay/200")
    time.sleep(1.0)  # the reply waits, undrained
    reply = h.result(WAIT_S)
    after = time.time_ns()
    span = _only(exporter)
    assert span.start_time is not None and span.end_time is not None
    assert before <= span.start_time <= span.end_time <= after
    duration = span.end_time - span.start_time
    assert duration == reply.time("total") * 1000
    assert duration >= 200_000_000
    assert after - span.end_time >= 200_000_000  # the wait for the drain is not in it


def test_server_error_span(
    traced: hac.Client, exporter: InMemorySpanExporter, http_server: HTTPTestServer
) -> None:
    traced.query(http_server.url + "/status/500").result(WAIT_S)
    span = _only(exporter)
    attrs = span.attributes or {}
    assert attrs["http.response.status_code"] == 500
    assert attrs["error.type"] == "500"
    assert span.status.status_code is StatusCode.ERROR


def test_refused_connection_span(traced: hac.Client, exporter: InMemorySpanExporter) -> None:
    port = free_port()  # nothing listens there
    reply = traced.query(f"http://127.0.0.1:{port}/").result(WAIT_S)
    assert not reply.ok
    span = _only(exporter)
    attrs = span.attributes or {}
    assert attrs["error.type"] == "CURLE_COULDNT_CONNECT"
    assert attrs["server.port"] == port
    assert "http.response.status_code" not in attrs
    assert span.status.status_code is StatusCode.ERROR
    assert span.status.description == reply.err


def test_credentials_are_redacted(
    traced: hac.Client, exporter: InMemorySpanExporter, http_server: HTTPTestServer
) -> None:
    url = f"http://user:secret@127.0.0.1:{http_server.port}/echo"
    traced.query(url).result(WAIT_S)
    full = str((_only(exporter).attributes or {})["url.full"])
    assert "secret" not in full
    assert full == f"http://user:***@127.0.0.1:{http_server.port}/echo"


def test_asyncio_await_and_completions(
    traced: hac.Client, exporter: InMemorySpanExporter, fresh_http_server: HTTPTestServer
) -> None:
    url = fresh_http_server.url + "/echo"

    async def main() -> list[hac.Reply]:
        replies = await asyncio.gather(*(traced.query(url) for _ in range(5)))
        # every span ended before the awaits returned
        assert len(exporter.get_finished_spans()) == 5
        return list(replies)

    asyncio.run(main())
    for _ in range(5):
        traced.query(url)
    assert len(list(traced.completions(timeout=WAIT_S))) == 5
    handles = traced.query_many([url, (url, b"x")])
    for h in handles:
        h.result(WAIT_S)
    spans = exporter.get_finished_spans()
    assert len(spans) == 12
    sent = sorted(header(r, "traceparent") or "" for r in fresh_http_server.requests)
    assert sent == sorted(_traceparent(s) for s in spans)  # one distinct context each
    assert len(set(sent)) == 12


def test_seed_function_and_route(
    traced: hac.Client, exporter: InMemorySpanExporter, fresh_http_server: HTTPTestServer
) -> None:
    got: list[int] = []
    traced.http_set_method("PUT")
    rc = traced.http_async_query(fresh_http_server.url + "/echo", "x", lambda r: got.append(r.status))
    assert rc == 0 and got == [200]
    span = _only(exporter)
    assert span.name == "PUT"
    assert header(fresh_http_server.requests[0], "traceparent") == _traceparent(span)


def test_http2_protocol_version(
    traced: hac.Client, exporter: InMemorySpanExporter, nginx: Nginx
) -> None:
    traced.query(nginx.h2c_url + "/", http_version=2).result(WAIT_S)
    assert (_only(exporter).attributes or {})["network.protocol.version"] == "2"


def test_not_instrumented_sends_no_traceparent(
    provider: TracerProvider, exporter: InMemorySpanExporter, fresh_http_server: HTTPTestServer
) -> None:
    with hac.Client() as client:
        tracer = provider.get_tracer("test")
        with tracer.start_as_current_span("parent"):
            client.query(fresh_http_server.url + "/echo").result(WAIT_S)
            instrument(client, tracer_provider=provider)
            assert is_instrumented(client)
            client.query(fresh_http_server.url + "/echo").result(WAIT_S)
            uninstrument(client)
            assert not is_instrumented(client)
            # nothing of it is left on the instance: the plain methods again
            assert not {"_submit", "_settle", "query_many", "_otel"} & set(vars(client))
            client.query(fresh_http_server.url + "/echo").result(WAIT_S)
    sent = [header(r, "traceparent") for r in fresh_http_server.requests]
    assert sent[0] is None and sent[2] is None
    assert sent[1] is not None
    assert [s.name for s in exporter.get_finished_spans()] == ["GET", "parent"]


def test_instrument_refuses_a_non_client() -> None:
    with pytest.raises(hac.InvalidOption, match="takes a Client"):
        instrument(object())  # type: ignore[arg-type]
