"""Bad options are refused with a typed exception (a ``hac.UsageError``)
before anything reaches libcurl: methods, per-query timeouts, ``Client()``
parameters, ``query()`` keywords, ``http_req`` keys, the seed's flag and
path functions.  The counters do not move and a fresh server on 127.0.0.1
receives nothing but the next valid query (support.refusals); a refused
``Client()`` opens no fd.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

import http_async_client as hac
from support import fds
from support.fds import FdBaseline
from support.refusals import ALLOWED_METHODS, WAIT, assert_nothing_sent, counters, show
from support.servers import HTTPTestServer, RawServer

# -------------------------------------------------------------- methods

BAD_METHODS = [
    # not one of the seven
    "TRACE", "CONNECT", "GETX", "PROPFIND", "G ET", "GE T", "",
    # CR/LF/NUL/spaces
    "GET\r\n", "GET\n", "GET\r", "GET\x00", "\r\nGET", "GET\r\nX-Injected: 1",
    "GET / HTTP/1.1\r\nHost: x\r\n\r\nGET", "G\x00ET", "GET ", " GET", "POST\r\n",
    b"GET\r\n", b"POST\x00",
]


@pytest.mark.parametrize("method", BAD_METHODS, ids=repr)
def test_method_refused_everywhere(client: hac.Client, sink: RawServer, method: str | bytes) -> None:
    """A method outside the seven, or with CR/LF/NUL/spaces, is InvalidMethod
    (a UsageError) naming the allowed ones, via http_set_method,
    http_req["method"] and query(method=)."""
    before = counters(client)
    calls: list[Callable[[], Any]] = [
        lambda: client.http_set_method(method),  # type: ignore[arg-type]
        lambda: client.http_req.__setitem__("method", method),
        lambda: client.query(f"{sink.url}/m", method=method),  # type: ignore[arg-type]
    ]
    for call in calls:
        with pytest.raises(hac.InvalidMethod) as info:
            call()
        assert isinstance(info.value, hac.UsageError), type(info.value)
        assert ALLOWED_METHODS in str(info.value)
    assert_nothing_sent(client, sink, before)  # and that one was a GET


def test_method_wrong_type(client: hac.Client, sink: RawServer) -> None:
    """A non-str method is InvalidOptionType (for ``query(method=...)``:
    QUERY_BAD below)."""
    with pytest.raises(hac.InvalidOptionType):
        client.http_set_method(1)  # type: ignore[arg-type]
    assert_nothing_sent(client, sink)


# --------------------------------------------------- per-query timeouts

TIMEOUT_BAD: list[Any] = (
    [pytest.param(v, hac.InvalidOption, id=show(v))
     for v in (-1, -5, 0, "-1", "abc", "1.5", "x", 24 * 3600 * 1000 + 1)]
    + [pytest.param(v, hac.InvalidOptionType, id=show(v)) for v in (1.5, [1], [100], b"1")]
)
TIMEOUT_DOORS: dict[str, Callable[[hac.Client, str, Any], Any]] = {
    "http_set_timeout": lambda client, url, bad: client.http_set_timeout(bad),
    "query": lambda client, url, bad: client.query(url, timeout=bad),
    "http_req": lambda client, url, bad: client.http_req.__setitem__("timeout", bad),
}


@pytest.mark.parametrize("door", list(TIMEOUT_DOORS))
@pytest.mark.parametrize(("bad", "exc"), TIMEOUT_BAD)
def test_timeout_refused_everywhere(
    client: hac.Client, sink: RawServer, bad: object, exc: type[Exception], door: str
) -> None:
    """Negative, zero, too long (over a day) or non-numeric per-query
    timeouts are InvalidOption, other types InvalidOptionType (a TypeError),
    naming "timeout", via http_set_timeout, query(timeout=) and
    http_req["timeout"]."""
    before = counters(client)
    with pytest.raises(hac.UsageError, match="timeout") as info:
        TIMEOUT_DOORS[door](client, f"{sink.url}/t", bad)
    assert type(info.value) is exc, f"{type(info.value).__name__}: {info.value}"
    if exc is hac.InvalidOptionType:
        assert isinstance(info.value, TypeError)
    assert_nothing_sent(client, sink, before)


# -------------------------------------------------- Client() parameters

INT_PARAMS = [
    "workers", "connection_timeout", "hash_size", "tls_version", "tls_verify_host",
    "tls_verify_peer", "curl_verbose", "curl_follow_redirect", "tcp_keepalive",
    "tcp_ka_idle", "tcp_ka_interval", "authmethod", "max_redirects", "max_body_size",
]
PATH_PARAMS = ["tls_client_cert", "tls_client_key", "tls_ca_path"]

CLIENT_BAD: list[Any] = (
    [pytest.param(p, v, hac.InvalidOptionType, id=f"{p}={show(v)}")
     for p in INT_PARAMS for v in (None, 1.5, [1], {}, b"1", object())]
    + [pytest.param(p, v, hac.InvalidOption, id=f"{p}={show(v)}")
       for p in INT_PARAMS for v in ("x", "1.5", "", "0x10")]
    + [pytest.param(p, v, hac.InvalidOption, id=f"{p}={show(v)}")
       for p, v in [("workers", 0), ("workers", -1), ("workers", -100), ("workers", "0"),
                    ("workers", 257), ("connection_timeout", 0), ("connection_timeout", -1),
                    ("connection_timeout", "-2"), ("connection_timeout", 2**31),
                    ("max_body_size", 0), ("tcp_ka_idle", -1), ("tcp_ka_interval", -1),
                    ("tcp_keepalive", -1), ("curl_follow_redirect", -1), ("max_redirects", -1),
                    ("authmethod", -1), ("authmethod", -5), ("hash_size", 2**40),
                    ("tls_version", -1)]]
    + [pytest.param(p, v, hac.InvalidOptionType, id=f"{p}={show(v)}")
       for p in PATH_PARAMS for v in (123, 1.5, ["a"], object())]
    + [pytest.param(p, "a\x00b", hac.InvalidOption, id=f"{p}=NUL") for p in PATH_PARAMS]
    + [pytest.param("memory_manager", v, hac.InvalidOptionType, id=f"memory_manager={show(v)}")
       for v in (None, 1, b"shm", ["shm"])]
    + [pytest.param("memory_manager", v, hac.InvalidOption, id=f"memory_manager={show(v)}")
       for v in ("x", "SHM", "", "shm\x00")]
)


@pytest.mark.parametrize(("param", "value", "exc"), CLIENT_BAD)
def test_client_parameter_refused(
    param: str, value: object, exc: type[Exception], open_fds: FdBaseline
) -> None:
    """Wrong types are InvalidOptionType (a TypeError), bad values
    InvalidOption; the client is never built (no fd, no thread).  (The
    open_fds baseline is taken after a garbage collection: earlier tests'
    clients must not close their fds mid-test.)"""
    with pytest.raises(hac.UsageError) as info:
        hac.Client(**{param: value})
    assert type(info.value) is exc, f"{type(info.value).__name__}: {info.value}"
    assert param in str(info.value)
    if exc is hac.InvalidOptionType:
        assert isinstance(info.value, TypeError)
    # <=: a session server's thread may close an earlier test's keep-alive
    # socket meanwhile; the refused client must not have opened one
    assert fds.count() <= open_fds.total


@pytest.mark.parametrize("value", [2**31, 2**64], ids=["2**31", "2**64"])
@pytest.mark.parametrize(
    "name",
    ["workers", "connection_timeout", "hash_size", "tls_version",
     "tls_verify_host", "tls_verify_peer", "curl_verbose"],
)
def test_huge_int_params_are_typed(name: str, value: int) -> None:
    """An out-of-range integer parameter is refused with InvalidOption (or
    accepted, clamped); never a bare OverflowError from the C boundary."""
    try:
        client = hac.Client(**{name: value})
    except hac.InvalidOption:
        return
    client.close()


# ----------------------------------------- flags, paths, body and route

def test_flags_rejected(client: hac.Client, sink: RawServer) -> None:
    """Negative or non-numeric verify/suspend flags are InvalidOption (for
    ``query(tls_verify_peer=...)``: QUERY_BAD below)."""
    with pytest.raises(hac.InvalidOption):
        client.tls_verify_host(-1)
    with pytest.raises(hac.InvalidOption):
        client.tls_verify_peer("yes")
    with pytest.raises(hac.InvalidOption):
        client.http_async_suspend(-1)
    with pytest.raises(hac.InvalidOption):
        client.http_req["suspend"] = "no"
    assert_nothing_sent(client, sink)


def test_tls_paths_rejected(client: hac.Client, sink: RawServer) -> None:
    """TLS paths must be str/PathLike without NUL."""
    with pytest.raises(hac.InvalidOptionType):
        client.http_set_tls_client_cert(5)  # type: ignore[arg-type]
    with pytest.raises(hac.InvalidOption):
        client.http_set_tls_ca_path("/tmp/x\x00y")
    with pytest.raises(hac.InvalidOption):
        client.http_req["tls_client_key"] = "a\x00"
    with pytest.raises(hac.InvalidOption):
        client.query(f"{sink.url}/echo", tls_ca_path="/tmp\x00")
    assert_nothing_sent(client, sink)


def test_post_data_wrong_type(client: hac.Client, sink: RawServer) -> None:
    """post_data must be str or bytes-like."""
    with pytest.raises(hac.InvalidOptionType):
        client.query(f"{sink.url}/echo", 12)  # type: ignore[arg-type]
    with pytest.raises(hac.InvalidOptionType):
        client.query(f"{sink.url}/echo", {"a": 1})  # type: ignore[arg-type]
    assert_nothing_sent(client, sink)


def test_route_unknown_name(client: hac.Client, sink: RawServer) -> None:
    """A route name that is not registered is InvalidOption; a non-callable
    route is InvalidOptionType."""
    with pytest.raises(hac.InvalidOption, match="NOPE"):
        client.query(f"{sink.url}/echo", route="NOPE")
    with pytest.raises(hac.InvalidOptionType):
        client.query(f"{sink.url}/echo", route=5)  # type: ignore[arg-type]
    assert_nothing_sent(client, sink)


# ----------------------------------------------------- query() keywords

# (timeout: TIMEOUT_BAD above)
_NUM_KWS = ["tls_verify_host", "tls_verify_peer", "authmethod", "keepalive", "ka_idle",
            "ka_interval", "follow_redirect", "max_redirects", "http_version"]

QUERY_BAD: list[Any] = (
    [pytest.param(k, v, hac.InvalidOptionType, id=f"{k}={show(v)}")
     for k in _NUM_KWS for v in (1.5, [1], b"1")]
    + [pytest.param(k, v, hac.InvalidOption, id=f"{k}={show(v)}")
       for k in _NUM_KWS for v in ("x", "-1", -1)]
    + [pytest.param(k, v, hac.InvalidOption, id=f"{k}={show(v)}")
       for k, v in [("http_version", 9), ("http_version", 3), ("ka_interval", -5)]]
    + [pytest.param(k, v, hac.InvalidOptionType, id=f"{k}={show(v)}")
       for k in ("tls_client_cert", "tls_client_key", "tls_ca_path") for v in (123, 1.5)]
    + [pytest.param(k, "a\x00b", hac.InvalidOption, id=f"{k}=NUL")
       for k in ("tls_client_cert", "tls_client_key", "tls_ca_path", "username", "password")]
    + [pytest.param(k, 5, hac.InvalidOptionType, id=f"{k}=5") for k in ("username", "password")]
    + [pytest.param("method", v, hac.InvalidOptionType, id=f"method={show(v)}") for v in (5, ["GET"])]
    + [pytest.param("method", "FETCH", hac.InvalidMethod, id="method='FETCH'")]
    + [pytest.param("post_data", v, hac.InvalidOptionType, id=f"post_data={show(v)}")
       for v in (12, 1.5, ["x"], {"a": "b"})]
    + [pytest.param("route", v, hac.InvalidOptionType, id=f"route={show(v)}") for v in (123, ["f"])]
    + [pytest.param("route", "NO_SUCH_ROUTE", hac.InvalidOption, id="route='NO_SUCH_ROUTE'")]
    + [pytest.param("headers", v, hac.InvalidOptionType, id=f"headers={show(v)}")
       for v in (123, 1.5, object(), [123], {"X-A": 1}, {1: "x"}, [("X-A", "1", "2")],
                 [("X-A",)], [None])]
    # (the URL itself: test_bad_urls.py)
)


@pytest.mark.parametrize(("kw", "value", "exc"), QUERY_BAD)
def test_query_keyword_refused(
    client: hac.Client, sink: RawServer, kw: str, value: object, exc: type[Exception]
) -> None:
    """Every query() keyword with a wrong type or value: the typed exception,
    counters unchanged, nothing sent."""
    url = f"{sink.url}/q"
    before = counters(client)
    with pytest.raises(hac.UsageError) as info:
        client.query(url, **{kw: value})
    assert type(info.value) is exc, f"{type(info.value).__name__}: {info.value}"
    if exc is hac.InvalidOptionType:
        assert isinstance(info.value, TypeError)
    assert_nothing_sent(client, sink, before)


# -------------------------------------------------------- http_req keys

HTTP_REQ_BAD: list[Any] = [
    # (timeout: TIMEOUT_BAD above)
    ("method", 5, hac.InvalidOptionType),
    ("method", "GET\r\n", hac.InvalidMethod), ("hdr", 123, hac.InvalidOptionType),
    ("hdr", "X-A: 1\r\nX-B: 2", hac.InvalidHeader), ("body", 12, hac.InvalidOptionType),
    ("suspend", "x", hac.InvalidOption), ("http_version", 9, hac.InvalidOption),
    ("username", 5, hac.InvalidOptionType), ("keepalive", [1], hac.InvalidOptionType),
    ("follow_redirect", "yes", hac.InvalidOption), ("tls_client_cert", 123, hac.InvalidOptionType),
    ("all", 1, hac.InvalidOption), ("no_such_key", 1, hac.UnknownRequestKey),
    (5, 1, hac.InvalidOptionType),
    ("ka-idle", -1, hac.InvalidOption), ("ka-interval", -1, hac.InvalidOption),
    ("tcp_ka_idle", -1, hac.InvalidOption), ("http_version", 7, hac.InvalidOption),
    ("authmethod", -2, hac.InvalidOption),
]


@pytest.mark.parametrize(("key", "value", "exc"), HTTP_REQ_BAD, ids=lambda x: repr(x)[:24])
def test_http_req_key_refused(
    client: hac.Client, sink: RawServer, key: Any, value: object, exc: type[Exception]
) -> None:
    """``http_req[key] = bad`` raises the typed exception and sends nothing."""
    before = counters(client)
    with pytest.raises(hac.UsageError) as info:
        client.http_req[key] = value
    assert type(info.value) is exc, f"{type(info.value).__name__}: {info.value}"
    assert_nothing_sent(client, sink, before)


@pytest.mark.parametrize("key", ["bogus", "HDR", "Method", "headers", ""])
def test_unknown_http_req_key(
    client: hac.Client, sink: RawServer, key: str
) -> None:
    """An unknown http_req key is UnknownRequestKey (InvalidOption, KeyError)
    and its message lists the known keys."""
    with pytest.raises(hac.UnknownRequestKey) as info:
        client.http_req[key] = "1"
    assert isinstance(info.value, hac.InvalidOption)
    assert isinstance(info.value, KeyError)
    assert "tls_ca_path" in str(info.value)
    assert_nothing_sent(client, sink)


def test_http_req_all_needs_none(client: hac.Client, sink: RawServer) -> None:
    """``http_req["all"]`` accepts only None."""
    with pytest.raises(hac.InvalidOption):
        client.http_req["all"] = "x"
    assert_nothing_sent(client, sink)


# ---------------------------------------------------------- credentials

@pytest.mark.parametrize("bad", ["u\r\nX-Injected: 1", "u\nX-Injected: 1", "u\rx", "u\x1bx"], ids=repr)
def test_username_with_control_bytes_refused(
    client: hac.Client, fresh_http_server: HTTPTestServer, bad: str
) -> None:
    """A username with CR, LF or other control bytes is refused: with Digest
    auth libcurl copies it verbatim into the Authorization header line, so
    "u\\r\\nX-Injected: 1" would add a header.  (A password never reaches
    the wire as text: Basic base64-encodes it, Digest hashes it.)"""
    url = f"{fresh_http_server.url}/auth/digest"
    before = counters(client)
    with pytest.raises(hac.InvalidOption):
        client.query(url, username=bad, password="pass", authmethod=2)
    with pytest.raises(hac.InvalidOption):
        client.http_req["username"] = bad
    client.http_req["all"] = None
    assert counters(client) == before
    assert len(fresh_http_server.requests) == 0


def test_digest_credentials_control(client: hac.Client, fresh_http_server: HTTPTestServer) -> None:
    """Control for the case above: valid Digest credentials authenticate."""
    reply = client.query(
        f"{fresh_http_server.url}/auth/digest", username="user", password="pass", authmethod=2
    ).result(timeout=WAIT)
    assert reply.ok and reply.status == 200, (reply.err, reply.status)
