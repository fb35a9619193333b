"""Misuse is refused with a typed exception before anything is sent: the
client's ``requests`` counter does not move and the server on 127.0.0.1
receives nothing."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import pytest

import http_async_client as hac
from support.clients import MakeClient
from support.servers import HTTPTestServer

LOGGER = "http_async_client"
WAIT = 5.0  # seconds: upper bound of every .result() in this file
ALLOWED = "GET, POST, PUT, DELETE, PATCH, HEAD, OPTIONS"


def _assert_nothing_sent(client: hac.Client, server: HTTPTestServer) -> None:
    """Nothing was sent so far; then one valid query goes through and is the
    only thing the server ever received (one worker: FIFO, so anything
    wrongly queued before it would have been counted and received too)."""
    assert client.stats()["requests"] == 0
    reply = client.query(f"{server.url}/echo?after").result(timeout=WAIT)
    assert reply.ok and reply.status == 200, reply.err
    assert client.stats()["requests"] == 1
    assert server.requests.wait_for(1, timeout=WAIT)
    received = server.requests.snapshot()
    assert [r["path"] for r in received] == ["/echo?after"], received
    assert received[0]["method"] == "GET"


def _header_names(server: HTTPTestServer) -> list[str]:
    return [name.lower() for name, _ in server.requests[-1]["headers"]]


# --------------------------------------------------------------------- URLs


@pytest.mark.parametrize(
    "url",
    [
        "ftp://127.0.0.1/x",
        "file:///etc/passwd",
        "gopher://x",
        "dict://x",
        "ldap://127.0.0.1/",
        "127.0.0.1/echo",
        "localhost:80",
        "//127.0.0.1/echo",
        "",
        "http://",
        "https://",
        "http:///path",
        "http:/127.0.0.1/echo",
        "http:127.0.0.1/echo",
    ],
)
def test_url_not_http_rejected(
    client: hac.Client, fresh_http_server: HTTPTestServer, url: str
) -> None:
    """Anything but an http/https URL with a host is InvalidURL."""
    with pytest.raises(hac.InvalidURL):
        client.query(url)
    _assert_nothing_sent(client, fresh_http_server)


@pytest.mark.parametrize(
    "url",
    ["http://:80/echo", "https://:443/", "http://user@/echo", "http://user:pw@:80/"],
)
def test_url_empty_host_behind_port_or_userinfo_rejected(
    client: hac.Client, fresh_http_server: HTTPTestServer, url: str
) -> None:
    """An authority with a port or user info but an empty host is still a
    URL with no host: InvalidURL before sending, like "http://"."""
    with pytest.raises(hac.InvalidURL, match="host"):
        client.query(url)
    _assert_nothing_sent(client, fresh_http_server)


def test_url_messages_name_problem(client: hac.Client) -> None:
    """The message says whether the scheme or the host is the problem."""
    with pytest.raises(hac.InvalidURL, match="scheme") as info:
        client.query("ftp://127.0.0.1/x")
    assert "ftp://127.0.0.1/x" in str(info.value)
    with pytest.raises(hac.InvalidURL, match="scheme"):
        client.query("127.0.0.1/echo")
    with pytest.raises(hac.InvalidURL, match="host"):
        client.query("http://")


@pytest.mark.parametrize("char", [" ", "\r", "\n", "\0", "\t", "\x7f", "\x01", "\x1b"])
@pytest.mark.parametrize("where", ["path", "host", "end"])
def test_url_control_characters_rejected(
    client: hac.Client, fresh_http_server: HTTPTestServer, char: str, where: str
) -> None:
    """Spaces and control bytes anywhere in the URL are InvalidURL whose
    message names the character."""
    base = fresh_http_server.url
    url = {
        "path": f"{base}/echo{char}x",
        "host": f"http://127.0.0.1{char}:{fresh_http_server.port}/echo",
        "end": f"{base}/echo{char}",
    }[where]
    with pytest.raises(hac.InvalidURL) as info:
        client.query(url)
    message = str(info.value)
    assert "space or control character" in message
    assert repr(char) in message
    _assert_nothing_sent(client, fresh_http_server)


def test_url_header_injection_not_sent(
    client: hac.Client, fresh_http_server: HTTPTestServer
) -> None:
    """A CRLF in the URL (request smuggling attempt) never reaches the wire."""
    url = f"{fresh_http_server.url}/echo HTTP/1.1\r\nX-Injected: 1\r\n\r\nGET /x"
    with pytest.raises(hac.InvalidURL):
        client.query(url)
    _assert_nothing_sent(client, fresh_http_server)
    assert "x-injected" not in _header_names(fresh_http_server)


@pytest.mark.parametrize("url", [123, None, 1.5, ["http://127.0.0.1/"], object()])
def test_url_wrong_type(
    client: hac.Client, fresh_http_server: HTTPTestServer, url: Any
) -> None:
    """A URL that is not str/bytes is InvalidOptionType (also a TypeError)."""
    with pytest.raises(hac.InvalidOptionType) as info:
        client.query(url)
    assert isinstance(info.value, TypeError)
    _assert_nothing_sent(client, fresh_http_server)


def test_url_bytes_not_utf8(client: hac.Client, fresh_http_server: HTTPTestServer) -> None:
    """A bytes URL that is not UTF-8 is InvalidURL."""
    with pytest.raises(hac.InvalidURL):
        client.query(fresh_http_server.url.encode() + b"/\xff\xfe")
    _assert_nothing_sent(client, fresh_http_server)


# ------------------------------------------------------------------ methods

BAD_METHODS = ["TRACE", "CONNECT", "GETX", "G ET", "", "GET ", " GET", "POST\r\n", "PROPFIND"]


@pytest.mark.parametrize("method", BAD_METHODS)
def test_method_rejected_everywhere(
    client: hac.Client, fresh_http_server: HTTPTestServer, method: str
) -> None:
    """A method outside the seven is InvalidMethod naming the allowed ones,
    via http_set_method, http_req["method"] and query(method=)."""
    url = f"{fresh_http_server.url}/echo"
    with pytest.raises(hac.InvalidMethod) as info:
        client.http_set_method(method)
    assert ALLOWED in str(info.value)
    with pytest.raises(hac.InvalidMethod) as info:
        client.http_req["method"] = method
    assert ALLOWED in str(info.value)
    with pytest.raises(hac.InvalidMethod) as info:
        client.query(url, method=method)
    assert ALLOWED in str(info.value)
    _assert_nothing_sent(client, fresh_http_server)  # and that one was a GET


def test_method_wrong_type(client: hac.Client, fresh_http_server: HTTPTestServer) -> None:
    """A non-str method is InvalidOptionType."""
    with pytest.raises(hac.InvalidOptionType):
        client.http_set_method(1)  # type: ignore[arg-type]
    with pytest.raises(hac.InvalidOptionType):
        client.query(f"{fresh_http_server.url}/echo", method=["GET"])  # type: ignore[arg-type]
    _assert_nothing_sent(client, fresh_http_server)


# ------------------------------------------------------------------ headers

BAD_HEADER_LINES = [
    "X-A: 1\r\nX-B: 2",
    "X-A: 1\nX-B: 2",
    "X-A: 1\rX-B: 2",
    "X-A: a\x00b",
    "X-A: a\x1bb",
    "X-A\r: 1",
    "X-A\n: 1",
    "X\x00A: 1",
    "Bad Name: 1",
    " X-A: 1",
    "NoColonHere",
    ": value",
    "X-E; junk",
    "",
]


@pytest.mark.parametrize("line", BAD_HEADER_LINES)
def test_header_line_rejected_everywhere(
    client: hac.Client, fresh_http_server: HTTPTestServer, line: str
) -> None:
    """A malformed header line is InvalidHeader via http_append_header,
    http_req["hdr"], query(headers=[...]) and query(headers="...")."""
    url = f"{fresh_http_server.url}/echo"
    with pytest.raises(hac.InvalidHeader):
        client.http_append_header(line)
    with pytest.raises(hac.InvalidHeader):
        client.http_req["hdr"] = line
    with pytest.raises(hac.InvalidHeader):
        client.query(url, headers=[line])
    with pytest.raises(hac.InvalidHeader):
        client.query(url, headers=["X-Good: 1", line])
    with pytest.raises(hac.InvalidHeader):
        client.query(url, headers=line)
    _assert_nothing_sent(client, fresh_http_server)
    # the refused lines were not kept for the next query either
    names = _header_names(fresh_http_server)
    assert "x-a" not in names and "x-b" not in names and "x-good" not in names


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("X-A", "a\r\nX-B: b"),
        ("X-A", "a\nb"),
        ("X-A", "a\rb"),
        ("X-A", "a\x00b"),
        ("X-A\r\n", "v"),
        ("X-A\n", "v"),
        ("X\x00A", "v"),
        ("Bad Name", "v"),
        ("X-A:", "v"),
        ("", "v"),
    ],
)
def test_header_mapping_rejected(
    client: hac.Client, fresh_http_server: HTTPTestServer, name: str, value: str
) -> None:
    """A bad name or value in headers={...} or a (name, value) pair is
    InvalidHeader."""
    url = f"{fresh_http_server.url}/echo"
    with pytest.raises(hac.InvalidHeader):
        client.query(url, headers={name: value})
    with pytest.raises(hac.InvalidHeader):
        client.query(url, headers=[(name, value)])
    _assert_nothing_sent(client, fresh_http_server)


def test_header_messages_name_problem(client: hac.Client) -> None:
    """The messages say what is wrong with the header."""
    with pytest.raises(hac.InvalidHeader, match="control character"):
        client.http_append_header("X-A: 1\r\nX-B: 2")
    with pytest.raises(hac.InvalidHeader, match="name"):
        client.http_append_header("Bad Name: 1")
    with pytest.raises(hac.InvalidHeader, match="':'"):
        client.http_append_header("NoColonHere")


def test_header_wrong_type(client: hac.Client, fresh_http_server: HTTPTestServer) -> None:
    """A header that is neither str, bytes nor a pair is InvalidOptionType."""
    with pytest.raises(hac.InvalidOptionType):
        client.http_append_header(5)  # type: ignore[arg-type]
    with pytest.raises(hac.InvalidOptionType):
        client.query(f"{fresh_http_server.url}/echo", headers={"X-A": 1})  # type: ignore[dict-item]
    with pytest.raises(hac.InvalidOptionType):
        client.query(f"{fresh_http_server.url}/echo", headers=[("X-A", "1", "2")])  # type: ignore[list-item]
    _assert_nothing_sent(client, fresh_http_server)


# ----------------------------------------------------------------- timeouts


@pytest.mark.parametrize("bad", [-1, -5, 0, "-1", "abc", "1.5"])
def test_timeout_rejected_everywhere(
    client: hac.Client, fresh_http_server: HTTPTestServer, bad: object
) -> None:
    """Negative, zero or non-numeric per-query timeouts are InvalidOption via
    http_set_timeout, query(timeout=) and http_req["timeout"]."""
    with pytest.raises(hac.InvalidOption, match="timeout"):
        client.http_set_timeout(bad)  # type: ignore[arg-type]
    with pytest.raises(hac.InvalidOption, match="timeout"):
        client.query(f"{fresh_http_server.url}/echo", timeout=bad)  # type: ignore[arg-type]
    with pytest.raises(hac.InvalidOption, match="timeout"):
        client.http_req["timeout"] = bad
    _assert_nothing_sent(client, fresh_http_server)


def test_timeout_wrong_type(client: hac.Client, fresh_http_server: HTTPTestServer) -> None:
    """A float or list timeout is InvalidOptionType."""
    with pytest.raises(hac.InvalidOptionType):
        client.http_set_timeout(1.5)  # type: ignore[arg-type]
    with pytest.raises(hac.InvalidOptionType):
        client.query(f"{fresh_http_server.url}/echo", timeout=[100])  # type: ignore[arg-type]
    _assert_nothing_sent(client, fresh_http_server)


@pytest.mark.parametrize("bad", [-1, 0, "-2"])
def test_module_connection_timeout_rejected(bad: object) -> None:
    """connection_timeout <= 0 is InvalidOption."""
    with pytest.raises(hac.InvalidOption):
        hac.Client(connection_timeout=bad)  # type: ignore[arg-type]


# ---------------------------------------------------------- other options


@pytest.mark.parametrize("bad", [0, -1, -100, "0"])
def test_workers_below_one(bad: object) -> None:
    """workers < 1 is InvalidOption."""
    with pytest.raises(hac.InvalidOption, match="workers"):
        hac.Client(workers=bad)  # type: ignore[arg-type]


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


def test_flags_rejected(client: hac.Client, fresh_http_server: HTTPTestServer) -> None:
    """Negative or non-numeric verify/suspend flags are InvalidOption."""
    with pytest.raises(hac.InvalidOption):
        client.tls_verify_host(-1)
    with pytest.raises(hac.InvalidOption):
        client.tls_verify_peer("yes")
    with pytest.raises(hac.InvalidOption):
        client.http_async_suspend(-1)
    with pytest.raises(hac.InvalidOption):
        client.http_req["suspend"] = "no"
    with pytest.raises(hac.InvalidOption):
        client.query(f"{fresh_http_server.url}/echo", tls_verify_peer=-1)
    _assert_nothing_sent(client, fresh_http_server)


def test_tls_paths_rejected(client: hac.Client, fresh_http_server: HTTPTestServer) -> None:
    """TLS paths must be str/PathLike without NUL."""
    with pytest.raises(hac.InvalidOptionType):
        client.http_set_tls_client_cert(5)  # type: ignore[arg-type]
    with pytest.raises(hac.InvalidOption):
        client.http_set_tls_ca_path("/tmp/x\x00y")
    with pytest.raises(hac.InvalidOption):
        client.http_req["tls_client_key"] = "a\x00"
    with pytest.raises(hac.InvalidOption):
        client.query(f"{fresh_http_server.url}/echo", tls_ca_path="/tmp\x00")
    _assert_nothing_sent(client, fresh_http_server)


def test_post_data_wrong_type(client: hac.Client, fresh_http_server: HTTPTestServer) -> None:
    """post_data must be str or bytes-like."""
    with pytest.raises(hac.InvalidOptionType):
        client.query(f"{fresh_http_server.url}/echo", 12)  # type: ignore[arg-type]
    with pytest.raises(hac.InvalidOptionType):
        client.query(f"{fresh_http_server.url}/echo", {"a": 1})  # type: ignore[arg-type]
    _assert_nothing_sent(client, fresh_http_server)


def test_route_unknown_name(client: hac.Client, fresh_http_server: HTTPTestServer) -> None:
    """A route name that is not registered is InvalidOption; a non-callable
    route is InvalidOptionType."""
    with pytest.raises(hac.InvalidOption, match="NOPE"):
        client.query(f"{fresh_http_server.url}/echo", route="NOPE")
    with pytest.raises(hac.InvalidOptionType):
        client.query(f"{fresh_http_server.url}/echo", route=5)  # type: ignore[arg-type]
    _assert_nothing_sent(client, fresh_http_server)


@pytest.mark.parametrize("key", ["bogus", "HDR", "Method", "headers", ""])
def test_unknown_http_req_key(
    client: hac.Client, fresh_http_server: HTTPTestServer, key: str
) -> None:
    """An unknown http_req key is UnknownRequestKey (InvalidOption, KeyError)
    and its message lists the known keys."""
    with pytest.raises(hac.UnknownRequestKey) as info:
        client.http_req[key] = "1"
    assert isinstance(info.value, hac.InvalidOption)
    assert isinstance(info.value, KeyError)
    assert "tls_ca_path" in str(info.value)
    _assert_nothing_sent(client, fresh_http_server)


def test_http_req_all_needs_none(client: hac.Client, fresh_http_server: HTTPTestServer) -> None:
    """``http_req["all"]`` accepts only None."""
    with pytest.raises(hac.InvalidOption):
        client.http_req["all"] = "x"
    _assert_nothing_sent(client, fresh_http_server)


# ------------------------------------------------------------ closed client


def test_closed_client_query(fresh_http_server: HTTPTestServer, make_client: MakeClient) -> None:
    """query() on a closed client is ClientClosed; nothing is sent."""
    client = make_client()
    client.close()
    assert client.closed
    with pytest.raises(hac.ClientClosed):
        client.query(f"{fresh_http_server.url}/echo")
    with pytest.raises(hac.ClientClosed):
        client.query(f"{fresh_http_server.url}/echo", b"body", method="PUT")
    assert client.stats()["requests"] == 0
    assert not fresh_http_server.requests.wait_for(1, timeout=0.2)
    client.close()  # idempotent


def test_closed_client_http_async_query(
    fresh_http_server: HTTPTestServer, caplog: pytest.LogCaptureFixture
) -> None:
    """http_async_query() on a closed client returns -1 and logs why."""
    caplog.set_level(logging.ERROR, logger=LOGGER)
    with hac.Client() as client:
        pass
    assert client.http_async_query(f"{fresh_http_server.url}/echo", lambda r: None) == -1
    errors = [r for r in caplog.records if r.name == LOGGER and r.levelno == logging.ERROR]
    assert len(errors) == 1 and "closed" in errors[0].getMessage()
    assert not fresh_http_server.requests.wait_for(1, timeout=0.2)


# ------------------------------------------------- http_async_query -> -1


@pytest.mark.parametrize(
    ("make_args", "reason"),
    [
        (lambda url: ("ftp://127.0.0.1/x", (lambda r: None,)), "scheme"),
        (lambda url: (f"{url}/echo x", (lambda r: None,)), "space or control character"),
        (lambda url: (f"{url}/echo\r\nX: 1", ("body", lambda r: None)), "control character"),
        (lambda url: (None, (lambda r: None,)), "URL must be str"),
        (lambda url: (f"{url}/echo", (12, lambda r: None)), "post_data"),
        (lambda url: (f"{url}/echo", ("NOT_REGISTERED",)), "NOT_REGISTERED"),
    ],
    ids=["scheme", "space", "crlf", "none-url", "post-data-type", "unknown-route"],
)
def test_http_async_query_returns_minus_one(
    client: hac.Client,
    fresh_http_server: HTTPTestServer,
    caplog: pytest.LogCaptureFixture,
    make_args: Callable[[str], tuple[Any, tuple[Any, ...]]],
    reason: str,
) -> None:
    """The seed's function does not raise on bad input: it returns -1 and
    logs the reason at ERROR on the http_async_client logger."""
    caplog.set_level(logging.ERROR, logger=LOGGER)
    url, args = make_args(fresh_http_server.url)
    assert client.http_async_query(url, *args) == -1
    errors = [r for r in caplog.records if r.name == LOGGER and r.levelno == logging.ERROR]
    assert len(errors) == 1, [r.getMessage() for r in caplog.records]
    assert reason in errors[0].getMessage()
    _assert_nothing_sent(client, fresh_http_server)


def test_http_async_query_minus_one_with_bad_state(
    client: hac.Client,
    fresh_http_server: HTTPTestServer,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """With options prepared for it, a refused http_async_query still
    returns -1 (not 0/1) even when suspend was turned off."""
    caplog.set_level(logging.ERROR, logger=LOGGER)
    client.http_async_suspend(0)
    client.http_append_header("X-Prepared: 1")
    assert client.http_async_query("gopher://x", lambda r: None) == -1
    assert any(r.levelno == logging.ERROR for r in caplog.records)
    _assert_nothing_sent(client, fresh_http_server)


# ------------------------------------------------------------- hierarchy

MISUSE = [
    hac.InvalidURL,
    hac.InvalidMethod,
    hac.InvalidHeader,
    hac.InvalidOption,
    hac.InvalidOptionType,
    hac.UnknownRequestKey,
]
OTHERS = [
    hac.ClientClosed,
    hac.WaitTimeout,
    hac.TransferError,
    hac.TransferTimeout,
    hac.Cancelled,
    hac.HTTPStatusError,
]


@pytest.mark.parametrize("exc", MISUSE)
def test_misuse_exceptions_are_usage_errors(exc: type[Exception]) -> None:
    """Every misuse exception is a UsageError, hence a ValueError and an
    HttpAsyncClientError."""
    assert issubclass(exc, hac.UsageError)
    assert issubclass(exc, ValueError)
    assert issubclass(exc, hac.HttpAsyncClientError)


@pytest.mark.parametrize("exc", MISUSE + OTHERS + [hac.UsageError])
def test_every_exception_derives_from_base(exc: type[Exception]) -> None:
    """Every exception class of the package derives from HttpAsyncClientError."""
    assert issubclass(exc, hac.HttpAsyncClientError)
    assert issubclass(exc, Exception)


def test_exception_extra_bases() -> None:
    """Type errors are TypeErrors, unknown keys KeyErrors, timeouts
    TimeoutErrors, a closed client a RuntimeError."""
    assert issubclass(hac.UsageError, ValueError)
    assert issubclass(hac.InvalidOptionType, TypeError)
    assert issubclass(hac.InvalidOptionType, hac.InvalidOption)
    assert issubclass(hac.UnknownRequestKey, KeyError)
    assert issubclass(hac.UnknownRequestKey, hac.InvalidOption)
    assert issubclass(hac.WaitTimeout, TimeoutError)
    assert issubclass(hac.TransferTimeout, hac.TransferError)
    assert issubclass(hac.TransferTimeout, TimeoutError)
    assert issubclass(hac.Cancelled, hac.TransferError)
    assert issubclass(hac.HTTPStatusError, hac.TransferError)
    assert issubclass(hac.ClientClosed, RuntimeError)
    assert not issubclass(hac.TransferError, hac.UsageError)


def test_all_exported_exceptions_covered() -> None:
    """Every exception class exported by the package is in this file's lists."""
    exported = {
        getattr(hac, name) for name in hac.__all__
        if isinstance(getattr(hac, name), type)
        and issubclass(getattr(hac, name), BaseException)
    }
    assert exported == set(MISUSE + OTHERS + [hac.UsageError, hac.HttpAsyncClientError])
