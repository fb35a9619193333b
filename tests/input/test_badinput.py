"""Bad input from the caller is refused with a typed exception (a
``hac.UsageError``) before anything reaches libcurl: the client's counters
do not move and a fresh server on 127.0.0.1 receives nothing; the next valid
query is the only thing that server ever sees.

Also property tests (hypothesis): no header (name, value) and no URL path
can make the server see an extra header line or a second request.
"""

from __future__ import annotations

import logging
import socket
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

import http_async_client as hac
from support import fds
from support.fds import FdBaseline
from support.servers import HTTPTestServer, RawServer, RawServerFactory

WAIT = 5.0  # seconds: upper bound of every wait on a reply in this file
COUNTERS = ("requests", "replies", "errors", "timeouts", "cancelled", "inflight", "queued")
OK_CLOSE = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"


# ------------------------------------------------------------------ helpers


def _answer(conn: socket.socket, request: bytes) -> None:
    conn.sendall(OK_CLOSE)


@pytest.fixture
def sink(raw_server_factory: RawServerFactory) -> RawServer:
    """A fresh server that records each request head and answers 200, close."""
    return raw_server_factory(_answer)


def counters(client: hac.Client) -> dict[str, int]:
    stats = client.stats()
    return {k: stats[k] for k in COUNTERS}


def assert_nothing_sent(client: hac.Client, sink: RawServer, before: dict[str, int]) -> None:
    """The counters did not move and the server got nothing; then one valid
    query goes through and is the only request the server ever received."""
    assert counters(client) == before
    assert sink.connections == 0 and len(sink.requests) == 0
    reply = client.query(f"{sink.url}/probe").result(timeout=WAIT)
    assert reply.ok and reply.status == 200, reply.err
    assert counters(client)["requests"] == before["requests"] + 1
    assert sink.requests.wait_for(1, timeout=WAIT)
    assert sink.connections == 1
    assert sink.requests[0].startswith(b"GET /probe HTTP/1.1\r\n"), sink.requests[0]


def refused(
    client: hac.Client, sink: RawServer, exc: type[BaseException], *calls: Callable[[], Any]
) -> None:
    """Each call raises ``exc`` (a UsageError), and nothing was sent."""
    before = counters(client)
    for call in calls:
        with pytest.raises(exc) as info:
            call()
        assert isinstance(info.value, hac.UsageError), type(info.value)
    assert_nothing_sent(client, sink, before)


def show(value: object) -> str:
    """A stable test id for a parameter value."""
    return f"{type(value).__name__}()" if type(value) is object else repr(value)


# ------------------------------------------ CPython's test_invalid_headers

# Lib/test/test_httplib.py, HeaderTests.test_invalid_headers: putheader()
# must refuse each of these (name, value) pairs.
CPYTHON_INVALID_HEADERS = [
    (b"Invalid\r\nName", b"ValidValue"),
    (b"Invalid\rName", b"ValidValue"),
    (b"Invalid\nName", b"ValidValue"),
    (b"\r\nInvalidName", b"ValidValue"),
    (b"\rInvalidName", b"ValidValue"),
    (b"\nInvalidName", b"ValidValue"),
    (b" InvalidName", b"ValidValue"),
    (b"\tInvalidName", b"ValidValue"),
    (b"Invalid:Name", b"ValidValue"),
    (b":InvalidName", b"ValidValue"),
    (b"ValidName", b"Invalid\r\nValue"),
    (b"ValidName", b"Invalid\rValue"),
    (b"ValidName", b"Invalid\nValue"),
    (b"ValidName", b"InvalidValue\r\n"),
    (b"ValidName", b"InvalidValue\r"),
    (b"ValidName", b"InvalidValue\n"),
]

# Beyond CPython's list: whitespace around names, spaces, separators and
# non-token characters in names, obs-fold and other control bytes in values.
MORE_INVALID_HEADERS = [
    (b"InvalidName ", b"ValidValue"),
    (b"InvalidName\t", b"ValidValue"),
    (b"Invalid Name", b"ValidValue"),
    (b"Invalid(Name)", b"ValidValue"),
    (b"Invalid/Name", b"ValidValue"),
    (b"Invalid@Name", b"ValidValue"),
    (b"Invalid\x00Name", b"ValidValue"),
    (b"Invalid\x7fName", b"ValidValue"),
    (b"Inv\xe4lidName", b"ValidValue"),
    (b"", b"ValidValue"),
    (b"ValidName", b"folded\n value"),
    (b"ValidName", b"folded\r\n\tvalue"),
    (b"ValidName", b"Invalid\x00Value"),
    (b"ValidName", b"Invalid\x0bValue"),
    (b"ValidName", b"Invalid\x0cValue"),
    (b"ValidName", b"Invalid\x1bValue"),
    (b"ValidName", b"Invalid\x7fValue"),
    (b"ValidName", b"x\r\nX-Injected: 1"),
    (b"ValidName", b"x\r\n\r\nGET /smuggled HTTP/1.1"),
]


def _header_calls(client: hac.Client, url: str, name: bytes, value: bytes) -> list[Callable[[], Any]]:
    """Every way to hand (name, value) to the client."""
    n, v = name.decode("latin-1"), value.decode("latin-1")
    calls: list[Callable[[], Any]] = [
        lambda: client.query(url, headers={n: v}),
        lambda: client.query(url, headers=[(n, v)]),
        lambda: client.query(url, headers=["X-Good: 1", (n, v)]),
        lambda: client.http_append_header((n, v)),  # type: ignore[arg-type]
    ]
    # "Invalid:Name: ValidValue" is a valid line (header "Invalid", value
    # "Name: ValidValue"): only the pair forms can carry that name
    if b":" not in name[1:]:
        line, raw = f"{n}: {v}", name + b": " + value
        calls += [
            lambda: client.query(url, headers=[line]),
            lambda: client.query(url, headers=line),
            lambda: client.query(url, headers=[raw]),
            lambda: client.http_append_header(line),
            lambda: client.http_append_header(raw),  # type: ignore[arg-type]
            lambda: client.http_req.__setitem__("hdr", line),
        ]
    return calls


@pytest.mark.parametrize(
    ("name", "value"),
    [pytest.param(n, v, id=repr(n + b": " + v)) for n, v in CPYTHON_INVALID_HEADERS + MORE_INVALID_HEADERS],
)
def test_invalid_header_refused_everywhere(
    client: hac.Client, sink: RawServer, name: bytes, value: bytes
) -> None:
    """CPython's invalid headers (and more) are InvalidHeader via headers=
    (mapping, pairs, lines, bytes), http_append_header and http_req["hdr"]."""
    refused(client, sink, hac.InvalidHeader, *_header_calls(client, f"{sink.url}/h", name, value))
    # the refused headers did not stick to the next query either
    assert b"ValidValue" not in sink.requests[0] and b"X-Good" not in sink.requests[0]


def test_refused_header_does_not_reach_later_query(client: hac.Client, sink: RawServer) -> None:
    """A header accepted before a refused one on the same query is not sent
    with a later query."""
    client.http_append_header("X-Kept: 1")
    with pytest.raises(hac.InvalidHeader):
        client.http_append_header("X-Bad: 1\r\nX-Injected: 1")
    reply = client.query(f"{sink.url}/a").result(timeout=WAIT)
    assert reply.ok, reply.err
    assert b"X-Injected" not in sink.requests[0]


# ------------------------------------------------------------------ methods

BAD_METHODS = [
    "GET\r\n", "GET\n", "GET\r", "GET\x00", "\r\nGET", "GET\r\nX-Injected: 1",
    "GET / HTTP/1.1\r\nHost: x\r\n\r\nGET", "G\x00ET", "GET ", " GET", "GE T", "",
    b"GET\r\n", b"POST\x00",
]


@pytest.mark.parametrize("method", BAD_METHODS, ids=repr)
def test_method_with_control_bytes_refused_everywhere(
    client: hac.Client, sink: RawServer, method: str | bytes
) -> None:
    """CR/LF/NUL/spaces in a method: InvalidMethod via http_set_method,
    http_req["method"] and query(method=)."""
    refused(
        client, sink, hac.InvalidMethod,
        lambda: client.http_set_method(method),  # type: ignore[arg-type]
        lambda: client.http_req.__setitem__("method", method),
        lambda: client.query(f"{sink.url}/m", method=method),  # type: ignore[arg-type]
    )


# --------------------------------------------------------------------- URLs

URL_BAD_BYTES = [" ", "\t", "\r", "\n", "\r\n", "\x00", "\x01", "\x0b", "\x1b", "\x7f"]


@pytest.mark.parametrize("char", URL_BAD_BYTES, ids=repr)
@pytest.mark.parametrize("where", ["path", "query", "host", "userinfo", "port"])
def test_url_with_space_or_control_byte_refused(
    client: hac.Client, sink: RawServer, char: str, where: str
) -> None:
    """A space or control byte anywhere in the URL is InvalidURL via query();
    http_async_query/http_async_send return -1 (reason logged)."""
    url = {
        "path": f"{sink.url}/a{char}b",
        "query": f"{sink.url}/a?x=1{char}y=2",
        "host": f"http://127.0.0.1{char}:{sink.port}/",
        "userinfo": f"http://us{char}er@127.0.0.1:{sink.port}/",
        "port": f"http://127.0.0.1:{sink.port}{char}/",
    }[where]
    before = counters(client)
    with pytest.raises(hac.InvalidURL):
        client.query(url)
    with pytest.raises(hac.InvalidURL):
        client.query(url.encode("latin-1"))  # type: ignore[arg-type]
    logging.disable(logging.ERROR)
    try:
        assert client.http_async_query(url, None) == -1
        assert client.http_async_send(url, None) == -1
        assert client.http_async_send_xdata(url, None, object()) == -1
    finally:
        logging.disable(logging.NOTSET)
    assert_nothing_sent(client, sink, before)


NON_HTTP_URLS = [
    "file:///etc/passwd", "FILE:///etc/passwd", "file://127.0.0.1/etc/passwd",
    "gopher://127.0.0.1:70/_GET%20/", "dict://127.0.0.1:11211/stat", "ftp://127.0.0.1/x",
    "ftps://127.0.0.1/x", "ldap://127.0.0.1/dc=x", "smtp://127.0.0.1/", "telnet://127.0.0.1/",
    "tftp://127.0.0.1/x", "scp://127.0.0.1/x", "javascript:alert(1)", "data:text/plain,x",
    "ws://127.0.0.1/", "http+unix://%2Ftmp%2Fs/", "127.0.0.1/x", "//127.0.0.1/x", "http:/x",
]


@pytest.mark.parametrize("url", NON_HTTP_URLS)
def test_non_http_scheme_refused(client: hac.Client, sink: RawServer, url: str) -> None:
    """Only http and https: every other scheme is InvalidURL, -1 for the
    seed functions."""
    before = counters(client)
    with pytest.raises(hac.InvalidURL):
        client.query(url)
    logging.disable(logging.ERROR)
    try:
        assert client.http_async_query(url, None) == -1
        assert client.http_async_send(url, None) == -1
    finally:
        logging.disable(logging.NOTSET)
    assert_nothing_sent(client, sink, before)


# ------------------------------------------------------------------ oversize

BIG = 64 * 1024 + 1


def test_url_over_64k_refused(client: hac.Client, sink: RawServer) -> None:
    """A URL over 64 KiB is InvalidURL (str and bytes), -1 for the seed."""
    url = f"{sink.url}/" + "a" * BIG
    logging.disable(logging.ERROR)
    try:
        refused(
            client, sink, hac.InvalidURL,
            lambda: client.query(url),
            lambda: client.query(url.encode()),  # type: ignore[arg-type]
        )
        assert client.http_async_send(url, None) == -1
    finally:
        logging.disable(logging.NOTSET)


@pytest.mark.parametrize(
    "form", ["line", "bytes-line", "append", "http_req", "pair", "mapping", "long-name"]
)
def test_header_over_64k_refused(client: hac.Client, sink: RawServer, form: str) -> None:
    """A header over 64 KiB is InvalidHeader whatever form it comes in."""
    url = f"{sink.url}/h"
    value = "a" * BIG
    call: Callable[[], Any] = {
        "line": lambda: client.query(url, headers=[f"X-Big: {value}"]),
        "bytes-line": lambda: client.query(url, headers=[b"X-Big: " + value.encode()]),
        "append": lambda: client.http_append_header(f"X-Big: {value}"),
        "http_req": lambda: client.http_req.__setitem__("hdr", f"X-Big: {value}"),
        "pair": lambda: client.query(url, headers=[("X-Big", value)]),
        "mapping": lambda: client.query(url, headers={"X-Big": value}),
        "long-name": lambda: client.query(url, headers={"X" * BIG: "v"}),
    }[form]
    refused(client, sink, hac.InvalidHeader, call)


def test_header_under_the_cap_arrives_intact(client: hac.Client, sink: RawServer) -> None:
    """Control: an 8 KiB header value is sent as given."""
    value = "b" * 8192
    reply = client.query(f"{sink.url}/h", headers={"X-Big": value}).result(timeout=WAIT)
    assert reply.ok, reply.err
    assert f"\r\nX-Big: {value}\r\n".encode() in sink.requests[0]


# ------------------------------------------------- Client() parameter types

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
       for p, v in [("workers", 0), ("workers", -1), ("workers", 257),
                    ("connection_timeout", 0), ("connection_timeout", -1),
                    ("connection_timeout", 2**31), ("max_body_size", 0),
                    ("tcp_ka_idle", -1), ("max_redirects", -1), ("authmethod", -5),
                    ("hash_size", 2**40), ("tls_version", -1)]]
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


# ------------------------------------------------------ query() keyword types

_NUM_KWS = ["tls_verify_host", "tls_verify_peer", "authmethod", "keepalive", "ka_idle",
            "ka_interval", "follow_redirect", "max_redirects", "http_version", "timeout"]

QUERY_BAD: list[Any] = (
    [pytest.param(k, v, hac.InvalidOptionType, id=f"{k}={show(v)}")
     for k in _NUM_KWS for v in (1.5, [1], b"1")]
    + [pytest.param(k, v, hac.InvalidOption, id=f"{k}={show(v)}")
       for k in _NUM_KWS for v in ("x", "-1", -1)]
    + [pytest.param(k, v, hac.InvalidOption, id=f"{k}={show(v)}")
       for k, v in [("http_version", 9), ("http_version", 3), ("timeout", 0),
                    ("timeout", 24 * 3600 * 1000 + 1), ("timeout", "abc")]]
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
    + [pytest.param("url", v, hac.InvalidOptionType, id=f"url={show(v)}")
       for v in (123, None, 1.5, ["http://127.0.0.1/"])]
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
        if kw == "url":
            client.query(value)  # type: ignore[arg-type]
        else:
            client.query(url, **{kw: value})
    assert type(info.value) is exc, f"{type(info.value).__name__}: {info.value}"
    if exc is hac.InvalidOptionType:
        assert isinstance(info.value, TypeError)
    assert_nothing_sent(client, sink, before)


HTTP_REQ_BAD: list[Any] = [
    ("timeout", "abc", hac.InvalidOption), ("timeout", 1.5, hac.InvalidOptionType),
    ("timeout", 0, hac.InvalidOption), ("method", 5, hac.InvalidOptionType),
    ("method", "GET\r\n", hac.InvalidMethod), ("hdr", 123, hac.InvalidOptionType),
    ("hdr", "X-A: 1\r\nX-B: 2", hac.InvalidHeader), ("body", 12, hac.InvalidOptionType),
    ("suspend", "x", hac.InvalidOption), ("http_version", 9, hac.InvalidOption),
    ("username", 5, hac.InvalidOptionType), ("keepalive", [1], hac.InvalidOptionType),
    ("follow_redirect", "yes", hac.InvalidOption), ("tls_client_cert", 123, hac.InvalidOptionType),
    ("all", 1, hac.InvalidOption), ("no_such_key", 1, hac.UnknownRequestKey),
    (5, 1, hac.InvalidOptionType),
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


# ---------------------------------------------------------- property tests

_TOKEN_CHARS = "!#$%&'*+-.^_`|~" + "0123456789" + "abcxyzABCXYZ"
_NAME_NOISE = " \t:;\r\n\x00\x7f()@/\xe9"
_VALUE_CHARS = "abcXYZ019 \t:;,=\"'\\/" + "\r\n\x00\x01\x0b\x1b\x7f" + "\x85\xa0\xe9\u20ac\u2028"
# headers libcurl manages itself or that change the framing of a GET
_SPECIAL = {"host", "accept", "content-length", "transfer-encoding", "expect",
            "accept-encoding", "connection", "te", "upgrade", "trailer", "content-type"}

# mostly valid names, so that values get exercised too
names = st.one_of(
    st.text(alphabet=_TOKEN_CHARS, min_size=1, max_size=12),
    st.text(alphabet=_TOKEN_CHARS + _NAME_NOISE, max_size=12),
)
values = st.one_of(
    st.text(alphabet=_VALUE_CHARS, max_size=24),
    st.text(alphabet=" \t", max_size=3),
)
forms = st.sampled_from(["pair", "mapping", "line", "append", "http_req"])


def _wire(text: str) -> bytes:
    """How the client encodes a header line: latin-1 if it can, else UTF-8."""
    try:
        return text.encode("latin-1")
    except UnicodeEncodeError:
        return text.encode("utf-8")


def _split_request(raw: bytes) -> tuple[bytes, list[tuple[bytes, bytes]]]:
    """(request line, [(name, value)]) of exactly one request head, asserting
    no second request and no bare CR/LF inside a line."""
    head, sep, rest = raw.partition(b"\r\n\r\n")
    assert sep and rest == b"", f"bytes after the request head: {rest[:80]!r}"
    lines = head.split(b"\r\n")
    for line in lines:
        assert b"\n" not in line and b"\r" not in line, line
    fields: list[tuple[bytes, bytes]] = []
    for line in lines[1:]:
        name, colon, value = line.partition(b":")
        assert colon and name and name == name.strip(), f"malformed header line {line!r}"
        fields.append((name, value.strip(b" \t")))
    return lines[0], fields


def test_property_header_cannot_inject(raw_server_factory: RawServerFactory) -> None:
    """No (name, value), in any form, makes the server see an extra header
    line or a second request: either InvalidHeader before sending, or the
    server receives exactly that one header with exactly that value ("Name:"
    lines with no value remove the header, as libcurl documents)."""
    server = raw_server_factory(_answer)
    url = f"{server.url}/p"

    with hac.Client(connection_timeout=2000) as client:

        @settings(max_examples=200, deadline=None, database=None,
                  suppress_health_check=[HealthCheck.too_slow])
        @given(name=names, value=values, form=forms)
        @example(name="X-A", value="1\r\nX-Injected: 1", form="pair")
        @example(name="X-A", value="1\r\n\r\nGET /smuggled HTTP/1.1", form="line")
        @example(name="X-A\r\nX-Injected", value="1", form="mapping")
        @example(name="X-A", value="", form="pair")
        @example(name="X-A", value=" ", form="pair")
        @example(name="X-A", value="\t", form="mapping")
        @example(name="X-A", value="  v  ", form="append")
        @example(name="X-A", value="\u20ac \xe9", form="http_req")
        def prop(name: str, value: str, form: str) -> None:
            before_requests = counters(client)["requests"]
            before_seen = len(server.requests)
            line = f"{name}: {value}"
            try:
                if form == "pair":
                    handle = client.query(url, headers=[(name, value)])
                elif form == "mapping":
                    handle = client.query(url, headers={name: value})
                elif form == "line":
                    handle = client.query(url, headers=[line])
                elif form == "append":
                    client.http_append_header(line)
                    handle = client.query(url)
                else:
                    client.http_req["hdr"] = line
                    handle = client.query(url)
            except hac.InvalidHeader:
                client.http_req["all"] = None
                assert counters(client)["requests"] == before_requests
                assert len(server.requests) == before_seen
                return
            if form in ("line", "append", "http_req"):
                # the line is split at its first colon
                name, _, value = line.partition(":")
            if name.lower() in _SPECIAL:
                handle.result(timeout=WAIT)
                return
            reply = handle.result(timeout=WAIT)
            assert reply.ok, reply.err
            assert server.requests.wait_for(before_seen + 1, timeout=WAIT)
            assert len(server.requests) == before_seen + 1
            request_line, fields = _split_request(server.requests[-1])
            assert request_line == b"GET /p HTTP/1.1"
            sent = [v for n, v in fields if n.lower() == _wire(name).lower()]
            others = sorted(n.lower() for n, _ in fields if n.lower() != _wire(name).lower())
            assert others == [b"accept", b"host"], fields
            expected = _wire(f"{name}:{value}").partition(b":")[2].strip(b" \t")
            removal = form in ("line", "append", "http_req") and not expected
            if removal:
                assert sent == [], fields
            else:
                assert sent == [expected], (name, value, fields)

        prop()


_PATH_CHARS = ("abcXYZ019-._~!$&'()*+,;=:@/?#%[]{}|\\^`\"<>"
               " \t\r\n\x00\x01\x1b\x7f" "\x85\xa0\xe9\u20ac\u2028")


def test_property_url_path_cannot_inject(raw_server_factory: RawServerFactory) -> None:
    """No URL path makes the server see an extra header line or a second
    request: InvalidURL before sending, or one well-formed GET carrying only
    libcurl's own Host and Accept headers."""
    server = raw_server_factory(_answer)

    with hac.Client(connection_timeout=2000) as client:

        @settings(max_examples=200, deadline=None, database=None,
                  suppress_health_check=[HealthCheck.too_slow])
        @given(path=st.text(alphabet=_PATH_CHARS, max_size=40))
        def prop(path: str) -> None:
            before_requests = counters(client)["requests"]
            before_seen = len(server.requests)
            try:
                handle = client.query(f"{server.url}/{path}")
            except hac.InvalidURL:
                assert counters(client)["requests"] == before_requests
                assert len(server.requests) == before_seen
                return
            reply = handle.result(timeout=WAIT)
            assert reply.ok, reply.err
            assert server.requests.wait_for(before_seen + 1, timeout=WAIT)
            assert len(server.requests) == before_seen + 1
            request_line, fields = _split_request(server.requests[-1])
            method, target, version = request_line.split(b" ")
            assert (method, version) == (b"GET", b"HTTP/1.1") and target.startswith(b"/")
            assert sorted(n.lower() for n, _ in fields) == [b"accept", b"host"], fields

        prop()
