"""Library ergonomics: Reply.text/json/raise_for_status, HTTPStatusError,
repr() of the public objects, Prometheus exposition of stats()."""

from __future__ import annotations

import json
import re

import pytest

import http_async_client as hac
from support.clients import Fetch
from support.servers import HTTPTestServer, RawServerFactory

REFUSED_URL = "http://127.0.0.1:9/"


def raw_reply(
    fetch: Fetch, factory: RawServerFactory, content_type: str | None, body: bytes,
    status: str = "200 OK",
) -> hac.Reply:
    head = f"HTTP/1.1 {status}\r\n"
    if content_type is not None:
        head += f"Content-Type: {content_type}\r\n"
    head += f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    server = factory.reply(head.encode("latin-1") + body)
    return fetch(server.url + "/")


# ------------------------------------------------------------ text / encoding


@pytest.mark.parametrize(
    ("content_type", "body", "encoding", "text"),
    [
        ("text/plain; charset=iso-8859-1", "café".encode("latin-1"), "iso8859-1", "café"),
        ('text/html; charset="UTF-8"', "café".encode(), "utf-8", "café"),
        ("text/plain;charset=utf-16", "hé".encode("utf-16"), "utf-16", "hé"),
        ("text/plain", "café".encode(), "utf-8", "café"),  # no charset: utf-8
        ("application/json", '{"a": "é"}'.encode(), "utf-8", '{"a": "é"}'),
        ("text/plain; charset=no-such-codec", b"abc", "utf-8", "abc"),  # unknown: utf-8
        (None, b"plain", "utf-8", "plain"),
        ("text/plain", b"bad \xff byte", "utf-8", "bad \ufffd byte"),  # never raises
    ],
)
def test_text_uses_charset_of_content_type(
    raw_server_factory: RawServerFactory, content_type: str | None, body: bytes, encoding: str, text: str, fetch: Fetch
) -> None:
    r = raw_reply(fetch, raw_server_factory, content_type, body)
    assert r.ok, r.err
    assert r.encoding == encoding
    assert r.text == text


# ------------------------------------------------------------------- json()


def test_json_of_an_echo(http_server: HTTPTestServer, fetch: Fetch) -> None:
    r = fetch(f"{http_server.url}/echo", post_data="payload")
    data = r.json()
    assert data["method"] == "POST" and data["body"] == "payload"


def test_json_honours_a_declared_charset(raw_server_factory: RawServerFactory, fetch: Fetch) -> None:
    r = raw_reply(fetch, raw_server_factory, "application/json; charset=iso-8859-1", '{"x": "é"}'.encode("latin-1"))
    assert r.json() == {"x": "é"}
    r = raw_reply(fetch, raw_server_factory, "application/json", '{"x": "é"}'.encode("utf-16"))
    assert r.json() == {"x": "é"}  # no charset: json detects UTF-16 itself (RFC 8259)


def test_json_kwargs_and_errors(raw_server_factory: RawServerFactory, fetch: Fetch) -> None:
    r = raw_reply(fetch, raw_server_factory, "application/json", b'{"n": 1.5}')
    assert r.json(parse_float=str) == {"n": "1.5"}
    bad = raw_reply(fetch, raw_server_factory, "application/json", b"not json")
    with pytest.raises(json.JSONDecodeError):
        bad.json()
    with pytest.raises(ValueError):
        bad.json()


# ------------------------------------------------------ raise_for_status()


def test_raise_for_status_returns_the_reply_below_400(http_server: HTTPTestServer, fetch: Fetch) -> None:
    for code in (200, 204, 302, 399):
        r = fetch(f"{http_server.url}/status/{code}")
        assert r.raise_for_status() is r


@pytest.mark.parametrize(("code", "kind"), [(400, "client error"), (404, "client error"), (500, "server error"), (503, "server error")])
def test_raise_for_status_4xx_5xx(http_server: HTTPTestServer, code: int, kind: str, fetch: Fetch) -> None:
    url = f"{http_server.url}/status/{code}"
    r = fetch(url)
    with pytest.raises(hac.HTTPStatusError) as info:
        r.raise_for_status()
    exc = info.value
    assert isinstance(exc, hac.TransferError) and isinstance(exc, hac.HttpAsyncClientError)
    assert exc.reply is r and exc.status == code
    assert str(code) in str(exc) and kind in str(exc) and url in str(exc)
    assert exc.reply.body == f"status {code}".encode()  # the whole response is there


def test_raise_for_status_on_failed_transfers(http_server: HTTPTestServer, fetch: Fetch) -> None:
    """Not ok: the same exceptions as raise_for_error(), all TransferErrors."""
    refused = fetch(REFUSED_URL)
    with pytest.raises(hac.TransferError) as info:
        refused.raise_for_status()
    assert type(info.value) is hac.TransferError and info.value.reply is refused
    late = fetch(f"{http_server.url}/delay/1000", timeout=100)
    with pytest.raises(hac.TransferTimeout):
        late.raise_for_status()


def test_http_status_error_is_exported() -> None:
    assert "HTTPStatusError" in hac.__all__
    assert issubclass(hac.HTTPStatusError, hac.TransferError)
    assert not issubclass(hac.HTTPStatusError, hac.TransferTimeout)


# ------------------------------------------------------------------- repr()


def test_reprs(http_server: HTTPTestServer) -> None:
    with hac.Client(connection_timeout=5000, workers=2) as client:
        text = repr(client)
        assert re.fullmatch(
            r"<Client open workers=2 connection_timeout=5000ms memory_manager=\w+ pending=0>", text
        ), text
        h = client.query(f"{http_server.url}/delay/300")
        assert repr(h) == f"<QueryHandle id={h.id} pending url='{http_server.url}/delay/300'>"
        assert "pending=1" in repr(client)
        r = h.result(timeout=5)
        assert repr(h) == f"<QueryHandle id={h.id} done 200 url='{http_server.url}/delay/300'>"
        assert repr(r) == (
            f"<Reply id={r.id} 200 'OK' HTTP/1.1 body={r.bs}B url='{http_server.url}/delay/300'>"
        )
        late = client.query(f"{http_server.url}/delay/1000", timeout=50)
        late_reply = late.result(timeout=5)
        assert repr(late) == f"<QueryHandle id={late.id} done timed out url='{http_server.url}/delay/1000'>"
        assert repr(late_reply).startswith(f"<Reply id={late.id} timed out err='TIMEOUT: ")
        refused = client.query(REFUSED_URL).result(timeout=5)
        assert repr(refused).startswith(f"<Reply id={refused.id} failed err=")
        assert repr(client.http_req).startswith("<http_req keys=all, hdr,")
    assert repr(client).startswith("<Client closed ")


# --------------------------------------------------------------- prometheus

COUNTERS = ("requests", "replies", "errors", "timeouts", "cancelled", "route_errors")
GAUGES = {
    "inflight": "inflight",
    "queued": "queued",
    "completed_pending": "completed_pending",
    "mem_in_use": "mem_in_use_bytes",
    "mem_peak": "mem_peak_bytes",
}
SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})? (-?\d+(?:\.\d+)?(?:e[+-]?\d+)?)$")


def parse_exposition(text: str) -> tuple[dict[str, str], dict[str, str], dict[tuple[str, str], float]]:
    """HELP, TYPE and samples of a text exposition, checking each line's
    syntax (format 0.0.4) and that HELP/TYPE come before a family's samples."""
    helps: dict[str, str] = {}
    types: dict[str, str] = {}
    samples: dict[tuple[str, str], float] = {}
    assert text.endswith("\n")
    for line in text.splitlines():
        if line.startswith("# HELP "):
            name, _, doc = line[7:].partition(" ")
            assert name not in helps, f"HELP twice for {name}"
            helps[name] = doc
        elif line.startswith("# TYPE "):
            name, _, kind = line[7:].partition(" ")
            assert kind in ("counter", "gauge", "histogram"), line
            assert name not in types, f"TYPE twice for {name}"
            types[name] = kind
        else:
            m = SAMPLE.match(line)
            assert m, f"bad sample line {line!r}"
            family = m.group(1)
            if family not in types:  # a histogram's _bucket, _sum, _count
                family = re.sub(r"_(bucket|sum|count)$", "", family)
                assert types.get(family) == "histogram", f"sample before its TYPE: {line!r}"
            samples[(m.group(1), m.group(2) or "")] = float(m.group(3))
    return helps, types, samples


def test_stats_prometheus_matches_stats(http_server: HTTPTestServer) -> None:
    with hac.Client(connection_timeout=5000) as client:
        for _ in range(3):
            client.query(f"{http_server.url}/echo").result(timeout=5)
        client.query(REFUSED_URL).result(timeout=5)
        client.query(f"{http_server.url}/delay/1000", timeout=50).result(timeout=5)
        text = client.stats_prometheus()
        stats = client.stats()
    helps, types, samples = parse_exposition(text)
    for key in COUNTERS:
        name = f"http_async_client_{key}_total"
        assert types[name] == "counter" and helps[name]
        assert samples[(name, "")] == stats[key], name
    for key, suffix in GAUGES.items():
        name = f"http_async_client_{suffix}"
        assert types[name] == "gauge" and helps[name]
        if key not in ("mem_in_use", "mem_peak"):  # the allocator moves between the calls
            assert samples[(name, "")] == stats[key], name
    assert samples[("http_async_client_requests_total", "")] == 5
    assert samples[("http_async_client_replies_total", "")] == 3
    assert samples[("http_async_client_errors_total", "")] == 1
    assert samples[("http_async_client_timeouts_total", "")] == 1
    assert samples[("http_async_client_mem_peak_bytes", "")] > 0
    # the latency histograms: the 3 completed transfers of the one origin
    origin = f'{{origin="{hac.origin_key(http_server.url)}"}}'
    assert types["http_async_client_request_duration_seconds"] == "histogram"
    assert samples[("http_async_client_request_duration_seconds_count", origin)] == 3


def test_prometheus_labels_and_several_clients() -> None:
    with hac.Client() as a, hac.Client() as b:
        text = hac.prometheus_text(
            [({"client": "billing"}, a.stats()), ({"client": 'we"ird\\name\n'}, b.stats())]
        )
        labelled = a.stats_prometheus({"client": "x", "zone": "eu"})
    _, types, samples = parse_exposition(text)
    assert ("http_async_client_requests_total", '{client="billing"}') in samples
    assert ("http_async_client_requests_total", '{client="we\\"ird\\\\name\\n"}') in samples
    assert text.count("# TYPE http_async_client_requests_total counter") == 1
    assert 'http_async_client_inflight{client="x",zone="eu"} 0' in labelled
    with pytest.raises(ValueError):
        a.stats_prometheus({"bad-name": "x"})


def test_prometheus_client_parses_it(http_server: HTTPTestServer) -> None:
    """The reference parser (prometheus_client) reads the exposition."""
    parser = pytest.importorskip("prometheus_client.parser")
    with hac.Client() as client:
        client.query(f"{http_server.url}/echo").result(timeout=5)
        text = client.stats_prometheus({"client": "t"})
    families = {f.name: f for f in parser.text_string_to_metric_families(text)}
    # the parser strips _total from counter family names
    assert families["http_async_client_requests"].type == "counter"
    assert families["http_async_client_inflight"].type == "gauge"
    sample = families["http_async_client_replies"].samples[0]
    assert sample.name == "http_async_client_replies_total" and sample.value == 1
    assert sample.labels == {"client": "t"}
