"""Bad URLs are refused before anything is sent: ``query()`` raises
InvalidURL (InvalidOptionType for a URL that is not str/bytes), the seed's
``http_async_query``/``http_async_send``/``http_async_send_xdata`` return
-1 (the reason logged); the counters do not move and a fresh server on
127.0.0.1 receives nothing but the next valid query (support.refusals).

Also a property test (hypothesis): no URL path makes the server see an
extra header line or a second request.
"""

from __future__ import annotations

import logging
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

import http_async_client as hac
from support.refusals import (
    WAIT,
    assert_nothing_sent,
    counters,
    header_names,
    refused,
    show,
    split_request,
)
from support.servers import RawServer

BIG = 64 * 1024 + 1

# ------------------------------------------------------- scheme and host

NOT_HTTP_URLS = [
    # other schemes
    "file:///etc/passwd", "FILE:///etc/passwd", "file://127.0.0.1/etc/passwd",
    "gopher://127.0.0.1:70/_GET%20/", "gopher://x", "dict://127.0.0.1:11211/stat", "dict://x",
    "ftp://127.0.0.1/x", "ftps://127.0.0.1/x", "ldap://127.0.0.1/", "ldap://127.0.0.1/dc=x",
    "smtp://127.0.0.1/", "telnet://127.0.0.1/", "tftp://127.0.0.1/x", "scp://127.0.0.1/x",
    "javascript:alert(1)", "data:text/plain,x", "ws://127.0.0.1/", "http+unix://%2Ftmp%2Fs/",
    # no scheme
    "127.0.0.1/echo", "127.0.0.1/x", "localhost:80", "//127.0.0.1/echo", "//127.0.0.1/x", "",
    # http(s) without a host, or misspelt
    "http://", "https://", "http:///path", "http:/127.0.0.1/echo", "http:/x", "http:127.0.0.1/echo",
]


@pytest.mark.parametrize("url", NOT_HTTP_URLS)
def test_url_not_http_refused(client: hac.Client, sink: RawServer, url: str) -> None:
    """Only http and https URLs with a host: anything else is InvalidURL,
    -1 for the seed functions."""
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


@pytest.mark.parametrize(
    "url",
    ["http://:80/echo", "https://:443/", "http://user@/echo", "http://user:pw@:80/"],
)
def test_url_empty_host_behind_port_or_userinfo_rejected(
    client: hac.Client, sink: RawServer, url: str
) -> None:
    """An authority with a port or user info but an empty host is still a
    URL with no host: InvalidURL before sending, like "http://"."""
    with pytest.raises(hac.InvalidURL, match="host"):
        client.query(url)
    assert_nothing_sent(client, sink)


def test_url_messages_name_problem(client: hac.Client) -> None:
    """The message says whether the scheme or the host is the problem."""
    with pytest.raises(hac.InvalidURL, match="scheme") as info:
        client.query("ftp://127.0.0.1/x")
    assert "ftp://127.0.0.1/x" in str(info.value)
    with pytest.raises(hac.InvalidURL, match="scheme"):
        client.query("127.0.0.1/echo")
    with pytest.raises(hac.InvalidURL, match="host"):
        client.query("http://")


# --------------------------------------------- spaces and control bytes

URL_BAD_BYTES = [" ", "\t", "\r", "\n", "\r\n", "\x00", "\x01", "\x0b", "\x1b", "\x7f"]


@pytest.mark.parametrize("char", URL_BAD_BYTES, ids=repr)
@pytest.mark.parametrize("where", ["path", "query", "host", "userinfo", "port", "end"])
def test_url_with_space_or_control_byte_refused(
    client: hac.Client, sink: RawServer, char: str, where: str
) -> None:
    """A space or control byte anywhere in the URL is InvalidURL via query()
    (str and bytes), whose message names the (first) character;
    http_async_query/http_async_send/http_async_send_xdata return -1
    (reason logged)."""
    url = {
        "path": f"{sink.url}/a{char}b",
        "query": f"{sink.url}/a?x=1{char}y=2",
        "host": f"http://127.0.0.1{char}:{sink.port}/",
        "userinfo": f"http://us{char}er@127.0.0.1:{sink.port}/",
        "port": f"http://127.0.0.1:{sink.port}{char}/",
        "end": f"{sink.url}/a{char}",
    }[where]
    before = counters(client)
    with pytest.raises(hac.InvalidURL) as info:
        client.query(url)
    message = str(info.value)
    assert "space or control character" in message
    assert repr(char[0]) in message
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


def test_url_header_injection_not_sent(client: hac.Client, sink: RawServer) -> None:
    """A CRLF in the URL (request smuggling attempt) never reaches the wire."""
    url = f"{sink.url}/echo HTTP/1.1\r\nX-Injected: 1\r\n\r\nGET /x"
    with pytest.raises(hac.InvalidURL):
        client.query(url)
    assert_nothing_sent(client, sink)
    assert "x-injected" not in header_names(sink.requests[0])


# ------------------------------------------------------ types, encoding, size


@pytest.mark.parametrize("url", [123, None, 1.5, ["http://127.0.0.1/"], object()], ids=show)
def test_url_wrong_type(client: hac.Client, sink: RawServer, url: Any) -> None:
    """A URL that is not str/bytes is InvalidOptionType (also a TypeError)."""
    before = counters(client)
    with pytest.raises(hac.UsageError) as info:
        client.query(url)
    assert type(info.value) is hac.InvalidOptionType, f"{type(info.value).__name__}: {info.value}"
    assert isinstance(info.value, TypeError)
    assert_nothing_sent(client, sink, before)


def test_url_bytes_not_utf8(client: hac.Client, sink: RawServer) -> None:
    """A bytes URL that is not UTF-8 is InvalidURL."""
    with pytest.raises(hac.InvalidURL):
        client.query(sink.url.encode() + b"/\xff\xfe")
    assert_nothing_sent(client, sink)


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


# ---------------------------------------------------------- property test

_PATH_CHARS = ("abcXYZ019-._~!$&'()*+,;=:@/?#%[]{}|\\^`\"<>"
               " \t\r\n\x00\x01\x1b\x7f" "\x85\xa0\xe9\u20ac\u2028")


def test_property_url_path_cannot_inject(sink: RawServer) -> None:
    """No URL path makes the server see an extra header line or a second
    request: InvalidURL before sending, or one well-formed GET carrying only
    libcurl's own Host and Accept headers."""
    server = sink

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
            request_line, fields = split_request(server.requests[-1])
            method, target, version = request_line.split(b" ")
            assert (method, version) == (b"GET", b"HTTP/1.1") and target.startswith(b"/")
            assert sorted(n.lower() for n, _ in fields) == [b"accept", b"host", b"user-agent"], fields

        prop()
