"""§4: the Reply's fields against real responses."""

from __future__ import annotations

import json
import time

import pytest

import http_async_client as hac
from support.clients import Fetch
from support.servers import HTTPTestServer, RawServerFactory, pattern_bytes

REFUSED_URL = "http://127.0.0.1:9/"
TIME_KEYS = ("total", "lookup", "connect", "appconnect", "pretransfer", "starttransfer", "redirect")


# ------------------------------------------------------------ outcome, status


def test_ok_and_err(http_server: HTTPTestServer, fetch: Fetch) -> None:
    """ok/err on success and on failure."""
    good = fetch(f"{http_server.url}/echo")
    assert good.ok is True and good.err is None
    bad = fetch(REFUSED_URL)
    assert bad.ok is False
    assert isinstance(bad.err, str) and bad.err
    assert bad.status == 0 and bad.rs == 0
    assert not bad.timed_out and not bad.cancelled


def test_status_and_reason(http_server: HTTPTestServer, fetch: Fetch) -> None:
    """status/rs and reason/rr, including a custom reason phrase."""
    r = fetch(f"{http_server.url}/status/299?reason=Very%20Fine")
    assert r.ok
    assert r.status == r.rs == 299
    assert r.reason == r.rr == "Very Fine"
    r = fetch(f"{http_server.url}/status/503")
    assert r.ok and r.status == 503 and r.reason == "Service Unavailable"
    assert r.body == b"status 503"


# -------------------------------------------------------------------- headers


def test_headers_in_order_with_repeats(http_server: HTTPTestServer, fetch: Fetch) -> None:
    """headers keeps order and repeats; hdr() is case-insensitive, indexed."""
    r = fetch(f"{http_server.url}/headers")
    assert r.ok
    names = [k for k, _ in r.headers]
    multi = [v for k, v in r.headers if k == "X-Multi"]
    assert multi == ["one", "two", "three"]
    assert [v for k, v in r.headers if k == "Set-Cookie"] == ["a=1", "b=2"]
    assert names.index("X-Multi") < names.index("Set-Cookie") < names.index("X-Single")
    assert ("X-Single", "value") in r.headers
    assert r.hdr("x-multi") == "one"
    assert r.hdr("X-MULTI", 1) == "two"
    assert r.hdr("X-Multi", 2) == "three"
    assert r.hdr("x-multi", -1) == "three"
    assert r.hdr("set-cookie", -1) == "b=2"
    assert r.hdr("X-Multi", 3) is None
    assert r.hdr("X-Missing") is None
    assert r.hdr("content-length") == "2"
    assert list(r) == r.headers


def test_raw_message(http_server: HTTPTestServer, fetch: Fetch) -> None:
    """raw/mb holds the status line, headers and body; ml == len(raw)."""
    r = fetch(f"{http_server.url}/headers")
    assert r.raw is r.mb or r.raw == r.mb
    assert r.raw.startswith(b"HTTP/1.1 200 OK\r\n")
    assert b"\r\nX-Multi: two\r\n" in r.raw
    assert b"\r\nSet-Cookie: b=2\r\n" in r.raw
    assert r.raw.endswith(b"\r\n\r\nok")
    assert r.ml == len(r.raw)
    assert r.body == r.rb == b"ok"
    assert r.bs == 2


# ----------------------------------------------------------------------- body


def test_binary_body(http_server: HTTPTestServer, fetch: Fetch) -> None:
    """body is binary-safe, NULs included; bs == len(body)."""
    r = fetch(f"{http_server.url}/bytes/1000")
    assert r.ok
    assert r.body == bytes(i % 256 for i in range(1000))
    assert b"\x00" in r.body
    assert r.bs == len(r.body) == 1000
    assert r.raw.endswith(r.body)
    assert r.ml == len(r.raw) > 1000


def test_large_body(http_server: HTTPTestServer, fetch: Fetch) -> None:
    """A 5 MB body arrives intact."""
    r = fetch(f"{http_server.url}/large/5000000")
    assert r.ok and r.status == 200
    assert r.bs == 5_000_000
    assert r.body == pattern_bytes(5_000_000)


def test_chunked_body(http_server: HTTPTestServer, fetch: Fetch) -> None:
    """A chunked body is reassembled."""
    r = fetch(f"{http_server.url}/chunked")
    assert r.ok
    assert r.body == b"hello, chunked world"
    assert r.bs == 20
    assert r.hdr("transfer-encoding") == "chunked"
    assert r.raw.endswith(b"\r\n\r\nhello, chunked world")


def test_head_and_204_have_empty_body(http_server: HTTPTestServer, fetch: Fetch) -> None:
    """HEAD and 204 give an empty body."""
    head = fetch(f"{http_server.url}/bytes/100", method="HEAD")
    assert head.ok and head.status == 200
    assert head.body == b"" and head.bs == 0
    assert head.hdr("Content-Length") == "100"
    assert head.ml == len(head.raw) > 0
    no_content = fetch(f"{http_server.url}/status/204")
    assert no_content.ok and no_content.status == 204
    assert no_content.body == b"" and no_content.bs == 0


# ---------------------------------------------------------------- id and url


def test_id_and_url(http_server: HTTPTestServer) -> None:
    """id is unique and equals the handle's; url is the requested URL."""
    with hac.Client(connection_timeout=5000) as client:
        urls = [f"{http_server.url}/echo?n={n}" for n in range(10)]
        handles = [client.query(u) for u in urls]
        replies = [h.result(timeout=5) for h in handles]
    assert [r.id for r in replies] == [h.id for h in handles]
    assert len({r.id for r in replies}) == 10
    assert [r.url for r in replies] == urls
    assert [json.loads(r.body)["path"] for r in replies] == [f"/echo?n={n}" for n in range(10)]


# ---------------------------------------------------------------------- times


def test_times_on_success_and_failure(http_server: HTTPTestServer, fetch: Fetch) -> None:
    """times: every key, non-negative, total > 0 on success; zeros on failure."""
    r = fetch(f"{http_server.url}/delay/50")
    assert set(r.times) == set(TIME_KEYS)
    assert all(isinstance(v, int) and v >= 0 for v in r.times.values())
    assert r.times["total"] > 0
    assert r.time("total") == r.times["total"]
    assert r.times["total"] >= 50_000  # µs, the server slept 50 ms
    assert r.times["starttransfer"] <= r.times["total"]
    with pytest.raises(KeyError):
        r.time("nope")
    bad = fetch(REFUSED_URL)
    assert not bad.ok
    assert bad.times == {k: 0 for k in TIME_KEYS}


# -------------------------------------------------------------- raise_for_error


def test_raise_for_error(http_server: HTTPTestServer, fetch: Fetch) -> None:
    """raise_for_error(): self on ok, else the matching exception type."""
    good = fetch(f"{http_server.url}/status/500")
    assert good.raise_for_error() is good  # HTTP errors are transfers that worked

    refused = fetch(REFUSED_URL)
    with pytest.raises(hac.TransferError) as info:
        refused.raise_for_error()
    assert type(info.value) is hac.TransferError
    assert info.value.reply is refused

    late = fetch(f"{http_server.url}/delay/1000", timeout=100)
    assert late.timed_out
    with pytest.raises(hac.TransferTimeout) as tinfo:
        late.raise_for_error()
    assert isinstance(tinfo.value, TimeoutError)
    assert tinfo.value.reply is late

    with hac.Client(connection_timeout=5000) as client:
        h = client.query(f"{http_server.url}/delay/2000")
        time.sleep(0.05)
        assert h.cancel()
        cancelled = h.result(timeout=2)
    with pytest.raises(hac.Cancelled) as cinfo:
        cancelled.raise_for_error()
    assert cinfo.value.reply is cancelled


def test_repr(http_server: HTTPTestServer, fetch: Fetch) -> None:
    """repr() names the id, status, reason and url; or the error."""
    url = f"{http_server.url}/status/299?reason=Very%20Fine"
    r = fetch(url)
    text = repr(r)
    assert text.startswith("<Reply") and text.endswith(">")
    assert f"id={r.id}" in text and "299" in text and "Very Fine" in text and url in text
    bad = repr(fetch(REFUSED_URL))
    assert "err=" in bad and REFUSED_URL in bad


# ------------------------------------------------------------------ raw server


def test_raw_body_with_crlfcrlf_and_nul(raw_server_factory: RawServerFactory, fetch: Fetch) -> None:
    """A body holding CRLFCRLF and NULs is captured exactly."""
    body = b"a\r\n\r\nb\x00c\r\n\r\n\x00\x00end"
    data = (
        b"HTTP/1.1 200 Fine\r\n"
        b"Content-Length: " + str(len(body)).encode() + b"\r\n"
        b"X-A: b\r\n"
        b"Connection: close\r\n"
        b"\r\n" + body
    )
    server = raw_server_factory.reply(data)
    r = fetch(f"{server.url}/x")
    assert r.ok and r.status == 200 and r.reason == "Fine"
    assert r.raw == data
    assert r.ml == len(data)
    assert r.body == body and r.bs == len(body)
    assert r.headers == [
        ("Content-Length", str(len(body))),
        ("X-A", "b"),
        ("Connection", "close"),
    ]


def test_raw_interim_100_continue_dropped(raw_server_factory: RawServerFactory, fetch: Fetch) -> None:
    """An interim 100 Continue leaves only the final response in raw/headers."""
    final = (
        b"HTTP/1.1 201 Created\r\n"
        b"Content-Length: 4\r\n"
        b"X-Final: yes\r\n"
        b"Connection: close\r\n"
        b"\r\n"
        b"done"
    )
    server = raw_server_factory.reply(b"HTTP/1.1 100 Continue\r\n\r\n" + final)
    r = fetch(f"{server.url}/x")
    assert r.ok
    assert r.status == 201 and r.reason == "Created"
    assert r.raw == final
    assert r.headers == [("Content-Length", "4"), ("X-Final", "yes"), ("Connection", "close")]
    assert r.body == b"done"


@pytest.mark.parametrize("size", [2, 100_000])
def test_reply_pickles_and_copies(http_server: HTTPTestServer, size: int, fetch: Fetch) -> None:
    """A reply, small (copied at drain) or large (held in C until read),
    pickles and copies with every field; the copy owns its bytes."""
    import copy
    import pickle

    r = fetch(f"{http_server.url}/bytes/{size}", xdata=None)
    for other in (pickle.loads(pickle.dumps(r)), copy.copy(r)):
        assert other is not r
        assert (other.id, other.url, other.status, other.reason, other.ok) == (
            r.id, r.url, r.status, r.reason, r.ok)
        assert other.body == r.body == pattern_bytes(size)
        assert other.raw == r.raw and other.ml == r.ml and other.bs == size
        assert other.headers == r.headers and other.times == r.times
        assert other.http_version == r.http_version
