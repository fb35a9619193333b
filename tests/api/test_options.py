"""§2 per-query options: the seed's "next query" functions, ``http_req``
and the keyword arguments of ``query()``, checked against what the test
servers on 127.0.0.1 actually received."""

from __future__ import annotations

import json
import threading
import time
from typing import Any

import pytest

import http_async_client as hac
from support.certs import Certs
from support.servers import HTTPSServers, HTTPTestServer

WAIT = 5.0  # seconds: upper bound of every .result() in this file
METHODS = ["GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS"]


def _values(request: dict[str, Any], name: str) -> list[str]:
    """Values of every header called ``name`` (case-insensitive) received."""
    wanted = name.lower()
    return [v for k, v in request["headers"] if k.lower() == wanted]


def _names(request: dict[str, Any]) -> list[str]:
    """Lower-cased names of the headers received, in order."""
    return [k.lower() for k, _ in request["headers"]]


def _ok(reply: hac.Reply) -> hac.Reply:
    """Assert the transfer completed with 200."""
    assert reply.ok, reply.err
    assert reply.status == 200, reply.status
    return reply


def _received(server: HTTPTestServer, count: int) -> list[dict[str, Any]]:
    """Exactly ``count`` requests received by the server, in order."""
    assert server.requests.wait_for(count, timeout=WAIT)
    got = server.requests.snapshot()
    assert len(got) == count, got
    return got


def _last(server: HTTPTestServer, count: int) -> dict[str, Any]:
    """The last of exactly ``count`` requests received."""
    return _received(server, count)[-1]


# ------------------------------------------------------ http_append_header


def test_append_header_adds(fresh_http_server: HTTPTestServer) -> None:
    """``http_append_header("X-A: 1")`` adds a header to the next query."""
    with hac.Client() as client:
        client.http_append_header("X-A: 1")
        _ok(client.query(f"{fresh_http_server.url}/echo").result(timeout=WAIT))
    req = _last(fresh_http_server, 1)
    assert _values(req, "X-A") == ["1"]
    assert _values(req, "Accept") == ["*/*"]  # curl's own headers still there


def test_append_header_twice_adds_two(fresh_http_server: HTTPTestServer) -> None:
    """Each call appends: two names, and one name twice, all sent in order."""
    with hac.Client() as client:
        client.http_append_header("X-A: 1")
        client.http_append_header("X-B: 2")
        client.http_append_header("X-Dup: first")
        client.http_append_header("X-Dup: second")
        _ok(client.query(f"{fresh_http_server.url}/echo").result(timeout=WAIT))
    req = _last(fresh_http_server, 1)
    assert _values(req, "X-A") == ["1"]
    assert _values(req, "X-B") == ["2"]
    assert _values(req, "X-Dup") == ["first", "second"]
    names = _names(req)
    assert names.index("x-a") < names.index("x-b") < names.index("x-dup")


def test_append_header_replaces_internal(fresh_http_server: HTTPTestServer) -> None:
    """'Accept: text/plain' replaces curl's 'Accept: */*'."""
    with hac.Client() as client:
        client.http_append_header("Accept: text/plain")
        _ok(client.query(f"{fresh_http_server.url}/echo").result(timeout=WAIT))
    assert _values(_last(fresh_http_server, 1), "Accept") == ["text/plain"]


def test_append_header_removes_internal(fresh_http_server: HTTPTestServer) -> None:
    """'Accept:' (nothing after the colon) removes curl's Accept header."""
    with hac.Client() as client:
        client.http_append_header("Accept:")
        _ok(client.query(f"{fresh_http_server.url}/echo").result(timeout=WAIT))
    req = _last(fresh_http_server, 1)
    assert "accept" not in _names(req)
    assert _values(req, "Host") == [f"127.0.0.1:{fresh_http_server.port}"]


def test_append_header_empty_value(fresh_http_server: HTTPTestServer) -> None:
    """'X-Empty;' sends the header with an empty value."""
    with hac.Client() as client:
        client.http_append_header("X-Empty;")
        _ok(client.query(f"{fresh_http_server.url}/echo").result(timeout=WAIT))
    assert _values(_last(fresh_http_server, 1), "X-Empty") == [""]


def test_append_header_content_type_replaces_form(fresh_http_server: HTTPTestServer) -> None:
    """On a POST, 'Content-Type: application/json' replaces curl's default
    application/x-www-form-urlencoded; the body arrives intact."""
    body = '{"foo": "bar"}'
    with hac.Client() as client:
        client.http_append_header("Content-Type: application/json")
        _ok(client.query(f"{fresh_http_server.url}/echo", body).result(timeout=WAIT))
        # and without it, curl's default form type is used
        _ok(client.query(f"{fresh_http_server.url}/echo", body).result(timeout=WAIT))
    first, second = _received(fresh_http_server, 2)
    assert first["method"] == "POST"
    assert _values(first, "Content-Type") == ["application/json"]
    assert first["body"] == body.encode()
    assert _values(second, "Content-Type") == ["application/x-www-form-urlencoded"]


def test_options_do_not_leak_to_next_query(fresh_http_server: HTTPTestServer) -> None:
    """Headers and method set for one query are gone on the following one."""
    with hac.Client() as client:
        client.http_append_header("X-Once: yes")
        client.http_append_header("Accept:")
        client.http_set_method("PUT")
        _ok(client.query(f"{fresh_http_server.url}/echo").result(timeout=WAIT))
        _ok(client.query(f"{fresh_http_server.url}/echo").result(timeout=WAIT))
    first, second = _received(fresh_http_server, 2)
    assert first["method"] == "PUT"
    assert _values(first, "X-Once") == ["yes"]
    assert "accept" not in _names(first)
    assert second["method"] == "GET"
    assert "x-once" not in _names(second)
    assert _values(second, "Accept") == ["*/*"]


def test_options_apply_to_http_async_query(fresh_http_server: HTTPTestServer) -> None:
    """The seed functions also prepare the next ``http_async_query``."""
    seen: list[hac.Reply] = []
    with hac.Client() as client:
        client.http_append_header("X-Seed: 1")
        client.http_set_method("DELETE")
        rc = client.http_async_query(f"{fresh_http_server.url}/echo", seen.append)
        rc2 = client.http_async_query(f"{fresh_http_server.url}/echo", seen.append)
    assert rc == 0 and rc2 == 0
    assert len(seen) == 2 and all(r.ok for r in seen)
    first, second = _received(fresh_http_server, 2)
    assert first["method"] == "DELETE" and _values(first, "X-Seed") == ["1"]
    assert second["method"] == "GET" and "x-seed" not in _names(second)


def test_options_are_thread_local(fresh_http_server: HTTPTestServer) -> None:
    """Options set in thread A do not affect a query from thread B (here the
    main thread); thread A's own next query gets them."""
    url = f"{fresh_http_server.url}/echo"
    set_done = threading.Event()
    go = threading.Event()
    result: dict[str, Any] = {}

    with hac.Client() as client:

        def thread_a() -> None:
            try:
                client.http_append_header("X-Thread: A")
                client.http_set_method("PATCH")
                set_done.set()
                if go.wait(WAIT):
                    result["reply"] = client.query(url, "a-body").result(timeout=WAIT)
            except BaseException as exc:  # pragma: no cover - reported below
                result["error"] = exc
                set_done.set()

        t = threading.Thread(target=thread_a)
        t.start()
        assert set_done.wait(WAIT)
        main_reply = client.query(url).result(timeout=WAIT)
        go.set()
        t.join(WAIT)
        assert not t.is_alive()
    assert "error" not in result, result.get("error")
    _ok(main_reply)
    _ok(result["reply"])
    main_req, a_req = _received(fresh_http_server, 2)
    assert main_req["method"] == "GET"
    assert "x-thread" not in _names(main_req)
    assert a_req["method"] == "PATCH"
    assert _values(a_req, "X-Thread") == ["A"]
    assert a_req["body"] == b"a-body"


def test_options_are_per_client(fresh_http_server: HTTPTestServer) -> None:
    """Options prepared on one client do not leak into another client's
    query from the same thread."""
    url = f"{fresh_http_server.url}/echo"
    with hac.Client() as a, hac.Client() as b:
        a.http_append_header("X-Client: a")
        a.http_set_method("OPTIONS")
        _ok(b.query(url).result(timeout=WAIT))
        _ok(a.query(url).result(timeout=WAIT))
    from_b, from_a = _received(fresh_http_server, 2)
    assert from_b["method"] == "GET" and "x-client" not in _names(from_b)
    assert from_a["method"] == "OPTIONS" and _values(from_a, "X-Client") == ["a"]


# ----------------------------------------------------------- http_set_method


@pytest.mark.parametrize("method", METHODS)
def test_set_method(fresh_http_server: HTTPTestServer, method: str) -> None:
    """The server sees the method set by ``http_set_method``; HEAD replies
    have no body."""
    with hac.Client() as client:
        client.http_set_method(method)
        reply = _ok(client.query(f"{fresh_http_server.url}/echo").result(timeout=WAIT))
    req = _last(fresh_http_server, 1)
    assert req["method"] == method
    if method == "HEAD":
        assert reply.body == b"" and reply.bs == 0
        assert int(reply.hdr("Content-Length") or 0) > 0
    else:
        assert json.loads(reply.body)["method"] == method


@pytest.mark.parametrize("method", ["put", "Put", "delete", "options", "head"])
def test_set_method_case_insensitive(fresh_http_server: HTTPTestServer, method: str) -> None:
    """Method names match case-insensitively and go out upper-case."""
    with hac.Client() as client:
        client.http_set_method(method)
        _ok(client.query(f"{fresh_http_server.url}/echo").result(timeout=WAIT))
    assert _last(fresh_http_server, 1)["method"] == method.upper()


def test_default_method_get_then_post_with_body(fresh_http_server: HTTPTestServer) -> None:
    """GET by default, POST when post_data is given; the body arrives intact."""
    with hac.Client() as client:
        _ok(client.query(f"{fresh_http_server.url}/echo").result(timeout=WAIT))
        _ok(client.query(f"{fresh_http_server.url}/echo", "a=1&b=2").result(timeout=WAIT))
        _ok(client.query(f"{fresh_http_server.url}/echo", "").result(timeout=WAIT))
    get, post, empty = _received(fresh_http_server, 3)
    assert get["method"] == "GET" and get["body"] == b""
    assert "content-length" not in _names(get)
    assert post["method"] == "POST" and post["body"] == b"a=1&b=2"
    assert _values(post, "Content-Length") == ["7"]
    assert empty["method"] == "POST" and empty["body"] == b""
    assert _values(empty, "Content-Length") == ["0"]


def test_post_binary_body_with_nul(fresh_http_server: HTTPTestServer) -> None:
    """Binary post_data (every byte value, NULs included) arrives intact."""
    body = bytes(range(256)) * 4 + b"\x00tail\x00"
    with hac.Client() as client:
        reply = _ok(client.query(f"{fresh_http_server.url}/echo", body).result(timeout=WAIT))
    req = _last(fresh_http_server, 1)
    assert req["method"] == "POST"
    assert req["body"] == body
    assert json.loads(reply.body)["body_len"] == len(body)


def test_put_with_body(fresh_http_server: HTTPTestServer) -> None:
    """http_set_method("PUT") with post_data sends a PUT carrying the body."""
    with hac.Client() as client:
        client.http_set_method("PUT")
        _ok(client.query(f"{fresh_http_server.url}/echo", b"put-body").result(timeout=WAIT))
    req = _last(fresh_http_server, 1)
    assert req["method"] == "PUT"
    assert req["body"] == b"put-body"


def test_get_with_body_stays_get(fresh_http_server: HTTPTestServer) -> None:
    """An explicit method wins over the POST-because-body default."""
    with hac.Client() as client:
        client.http_set_method("GET")
        _ok(client.query(f"{fresh_http_server.url}/echo", b"q").result(timeout=WAIT))
    req = _last(fresh_http_server, 1)
    assert req["method"] == "GET"
    assert req["body"] == b"q"


# ------------------------------------------------------------ http_set_timeout


def test_set_timeout_applies_once(http_server: HTTPTestServer) -> None:
    """http_set_timeout(100) cuts /delay/400; the following query is back to
    the default 500 ms and /delay/300 succeeds."""
    with hac.Client() as client:
        client.http_set_timeout(100)
        start = time.monotonic()
        cut = client.query(f"{http_server.url}/delay/400").result(timeout=WAIT)
        elapsed = time.monotonic() - start
        fine = client.query(f"{http_server.url}/delay/300").result(timeout=WAIT)
        stats = client.stats()
    assert cut.timed_out and not cut.ok
    assert cut.err is not None and cut.err.startswith("TIMEOUT")
    assert 0.08 <= elapsed < 2.0
    _ok(fine)
    assert fine.body == b"delayed 300"
    assert stats["timeouts"] == 1 and stats["replies"] == 1


def test_set_timeout_string(http_server: HTTPTestServer) -> None:
    """The seed passes the timeout as a string."""
    with hac.Client() as client:
        client.http_set_timeout("100")
        reply = client.query(f"{http_server.url}/delay/400").result(timeout=WAIT)
    assert reply.timed_out


def test_per_query_timeout_beats_global(http_server: HTTPTestServer) -> None:
    """connection_timeout=100 but a per-query 1000 ms deadline wins, by
    http_set_timeout, http_req and the keyword."""
    url = f"{http_server.url}/delay/300"
    with hac.Client(connection_timeout=100) as client:
        client.http_set_timeout(1000)
        a = client.query(url).result(timeout=WAIT)
        client.http_req["timeout"] = 1000
        b = client.query(url).result(timeout=WAIT)
        c = client.query(url, timeout=1000).result(timeout=WAIT)
        d = client.query(url).result(timeout=WAIT)  # back to 100 ms
    for reply in (a, b, c):
        _ok(reply)
        assert reply.body == b"delayed 300"
    assert d.timed_out


# --------------------------------------------------------------- TLS per query


@pytest.mark.parametrize("https_server", ["selfsigned"], indirect=True)
def test_verify_off_for_one_query(https_server: HTTPTestServer) -> None:
    """tls_verify_host(0)/tls_verify_peer(0) let one query reach a
    self-signed server; the next query with the defaults fails verification."""
    url = f"{https_server.url}/echo"
    with hac.Client() as client:
        client.tls_verify_host(0)
        client.tls_verify_peer(0)
        first = client.query(url).result(timeout=WAIT)
        second = client.query(url).result(timeout=WAIT)
    _ok(first)
    assert json.loads(first.body)["path"] == "/echo"
    assert not second.ok
    assert second.err is not None
    assert "SSL" in second.err or "certificate" in second.err.lower()


@pytest.mark.parametrize("https_server", ["selfsigned"], indirect=True)
def test_verify_peer_off_string(https_server: HTTPTestServer) -> None:
    """tls_verify_peer("0") (a string, as the seed passes it) for one query."""
    with hac.Client() as client:
        client.tls_verify_peer("0")
        reply = client.query(f"{https_server.url}/echo").result(timeout=WAIT)
    _ok(reply)


@pytest.mark.parametrize("https_server", ["wronghost"], indirect=True)
def test_verify_host_off_for_one_query(
    https_server: HTTPTestServer, certs: Certs
) -> None:
    """tls_verify_host(0) accepts a CA-signed cert for another name, once."""
    url = f"{https_server.url}/echo"
    with hac.Client(tls_ca_path=certs.capath) as client:
        client.tls_verify_host(0)
        first = client.query(url).result(timeout=WAIT)
        second = client.query(url).result(timeout=WAIT)
    _ok(first)
    assert not second.ok and second.err is not None


@pytest.mark.parametrize("https_server", ["selfsigned"], indirect=True)
def test_verify_on_for_one_query_when_module_off(
    https_server: HTTPTestServer,
) -> None:
    """With module verification off, tls_verify_peer(1) turns it on for one
    query only."""
    url = f"{https_server.url}/echo"
    with hac.Client(tls_verify_peer=0, tls_verify_host=0) as client:
        client.tls_verify_peer(1)
        strict = client.query(url).result(timeout=WAIT)
        relaxed = client.query(url).result(timeout=WAIT)
    assert not strict.ok and strict.err is not None
    _ok(relaxed)


@pytest.mark.parametrize("https_server", ["clientcert"], indirect=True)
def test_client_cert_per_query(https_server: HTTPTestServer, certs: Certs) -> None:
    """http_set_tls_client_cert/key for one query: accepted; without: refused."""
    url = f"{https_server.url}/echo"
    with hac.Client(tls_ca_path=certs.capath) as client:
        client.http_set_tls_client_cert(certs.client_cert)
        client.http_set_tls_client_key(str(certs.client_key))
        with_cert = client.query(url).result(timeout=WAIT)
        without = client.query(url).result(timeout=WAIT)
    _ok(with_cert)
    assert json.loads(with_cert.body)["path"] == "/echo"
    assert not without.ok
    assert without.status == 0


@pytest.mark.parametrize("https_server", ["clientcert"], indirect=True)
def test_client_cert_refused_then_accepted(
    https_server: HTTPTestServer, certs: Certs
) -> None:
    """Refused first without a cert, then accepted with one."""
    url = f"{https_server.url}/echo"
    with hac.Client(tls_ca_path=certs.capath) as client:
        without = client.query(url).result(timeout=WAIT)
        client.http_set_tls_client_cert(certs.client_cert)
        client.http_set_tls_client_key(certs.client_key)
        with_cert = client.query(url).result(timeout=WAIT)
    assert not without.ok
    _ok(with_cert)


def test_ca_path_per_query(https_server: HTTPTestServer, certs: Certs) -> None:
    """http_set_tls_ca_path(certs.capath) verifies https_server for one query;
    the next one (no CA path) fails verification."""
    url = f"{https_server.url}/echo"
    with hac.Client() as client:
        client.http_set_tls_ca_path(certs.capath)
        verified = client.query(url).result(timeout=WAIT)
        unverified = client.query(url).result(timeout=WAIT)
    _ok(verified)
    assert not unverified.ok
    assert unverified.err is not None and "certificate" in unverified.err.lower()


# ----------------------------------------------------------------- http_req


def test_http_req_hdr_appends(fresh_http_server: HTTPTestServer) -> None:
    """Each ``http_req["hdr"]`` assignment appends a header."""
    with hac.Client() as client:
        client.http_req["hdr"] = "X-Sip-Call-Id: abc"
        client.http_req["hdr"] = "X-Foo: bar"
        client.http_req["hdr"] = "X-Foo: baz"
        _ok(client.query(f"{fresh_http_server.url}/echo").result(timeout=WAIT))
    req = _last(fresh_http_server, 1)
    assert _values(req, "X-Sip-Call-Id") == ["abc"]
    assert _values(req, "X-Foo") == ["bar", "baz"]


def test_http_req_method(fresh_http_server: HTTPTestServer) -> None:
    """``http_req["method"]`` sets the next method only."""
    with hac.Client() as client:
        client.http_req["method"] = "DELETE"
        _ok(client.query(f"{fresh_http_server.url}/echo").result(timeout=WAIT))
        _ok(client.query(f"{fresh_http_server.url}/echo").result(timeout=WAIT))
    first, second = _received(fresh_http_server, 2)
    assert first["method"] == "DELETE"
    assert second["method"] == "GET"


def test_http_req_timeout(http_server: HTTPTestServer) -> None:
    """``http_req["timeout"] = 100`` cuts a 400 ms reply."""
    with hac.Client() as client:
        client.http_req["timeout"] = 100
        cut = client.query(f"{http_server.url}/delay/400").result(timeout=WAIT)
    assert cut.timed_out and not cut.ok


def test_http_req_all_none_resets(fresh_http_server: HTTPTestServer, http_server: HTTPTestServer) -> None:
    """``http_req["all"] = None`` forgets everything set before it."""
    with hac.Client() as client:
        client.http_req["hdr"] = "X-Gone: 1"
        client.http_append_header("X-Gone-Too: 1")
        client.http_req["method"] = "PUT"
        client.http_req["timeout"] = 50
        client.http_req["suspend"] = 0
        client.http_req["all"] = None
        client.http_req["hdr"] = "X-Kept: 1"  # set after the reset: kept
        seen: list[hac.Reply] = []
        rc = client.http_async_query(f"{fresh_http_server.url}/echo", seen.append)
        client.http_req["timeout"] = 50
        client.http_req["all"] = None
        slow = client.query(f"{http_server.url}/delay/200").result(timeout=WAIT)
    assert rc == 0  # suspend was reset to 1: the call waited for the reply
    assert len(seen) == 1 and seen[0].ok
    req = _last(fresh_http_server, 1)
    assert req["method"] == "GET"
    assert "x-gone" not in _names(req) and "x-gone-too" not in _names(req)
    assert _values(req, "X-Kept") == ["1"]
    _ok(slow)  # the 50 ms timeout was reset to the 500 ms default


def test_http_req_all_rejects_values() -> None:
    """``http_req["all"]`` only accepts None."""
    with hac.Client() as client:
        with pytest.raises(hac.InvalidOption):
            client.http_req["all"] = "x"
        with pytest.raises(hac.InvalidOption):
            client.http_req["all"] = 0


@pytest.mark.parametrize("https_server", ["clientcert"], indirect=True)
def test_http_req_tls_keys(https_server: HTTPTestServer, certs: Certs) -> None:
    """tls_client_cert, tls_client_key and tls_ca_path via http_req."""
    url = f"{https_server.url}/echo"
    with hac.Client() as client:
        client.http_req["tls_client_cert"] = str(certs.client_cert)
        client.http_req["tls_client_key"] = certs.client_key
        client.http_req["tls_ca_path"] = certs.capath
        accepted = client.query(url).result(timeout=WAIT)
        client.http_req["tls_ca_path"] = certs.capath
        refused = client.query(url).result(timeout=WAIT)  # no client cert
        unverified = client.query(url).result(timeout=WAIT)  # no CA path either
    _ok(accepted)
    assert not refused.ok
    assert not unverified.ok
    assert unverified.err is not None and "certificate" in unverified.err.lower()


def test_http_req_suspend(fresh_http_server: HTTPTestServer) -> None:
    """``http_req["suspend"] = 0``: http_async_query returns 1 at once and
    the route runs on dispatch(); the next call is suspended again (0)."""
    seen: list[hac.Reply] = []
    url = f"{fresh_http_server.url}/echo"
    with hac.Client() as client:
        client.http_req["suspend"] = 0
        rc = client.http_async_query(url, seen.append)
        assert rc == 1
        deadline = time.monotonic() + WAIT
        while not seen and time.monotonic() < deadline:
            client.dispatch(timeout=0.5)
        assert len(seen) == 1 and seen[0].ok
        rc2 = client.http_async_query(url, seen.append)
        assert rc2 == 0
        assert len(seen) == 2 and seen[1].ok  # route already ran
    assert len(_received(fresh_http_server, 2)) == 2


def test_http_async_suspend_function(fresh_http_server: HTTPTestServer) -> None:
    """``http_async_suspend(0)`` is the function form of the same key."""
    seen: list[hac.Reply] = []
    with hac.Client() as client:
        client.http_async_suspend(0)
        rc = client.http_async_query(f"{fresh_http_server.url}/echo", seen.append)
        assert rc == 1
        replies = list(client.completions(timeout=WAIT))
    assert len(replies) == 1 and replies[0].ok
    assert seen == replies


def test_http_req_unknown_key() -> None:
    """An unknown key is UnknownRequestKey, an InvalidOption and a KeyError."""
    with hac.Client() as client:
        with pytest.raises(hac.UnknownRequestKey, match="body_x") as info:
            client.http_req["body_x"] = "1"
    assert isinstance(info.value, hac.InvalidOption)
    assert isinstance(info.value, KeyError)


def test_http_req_is_write_only() -> None:
    """Like $http_req in the seed, http_req cannot be read; it lists its keys."""
    with hac.Client() as client:
        with pytest.raises(TypeError):
            client.http_req["method"]
        assert set(client.http_req.keys()) >= {
            "all", "hdr", "method", "timeout", "tls_client_cert",
            "tls_client_key", "tls_ca_path", "suspend",
        }


# ------------------------------------------------------- query() keywords


def test_query_headers_mapping(fresh_http_server: HTTPTestServer) -> None:
    """headers={...}: added; an empty value sends the header empty."""
    with hac.Client() as client:
        _ok(client.query(
            f"{fresh_http_server.url}/echo",
            headers={"X-A": "1", "Accept": "text/html", "X-Blank": ""},
        ).result(timeout=WAIT))
        _ok(client.query(f"{fresh_http_server.url}/echo").result(timeout=WAIT))
    req, after = _received(fresh_http_server, 2)
    assert _values(req, "X-A") == ["1"]
    assert _values(req, "Accept") == ["text/html"]
    assert _values(req, "X-Blank") == [""]
    assert "x-a" not in _names(after) and _values(after, "Accept") == ["*/*"]


def test_query_headers_list(fresh_http_server: HTTPTestServer) -> None:
    """headers=[...] accepts seed-style lines and (name, value) pairs."""
    with hac.Client() as client:
        _ok(client.query(
            f"{fresh_http_server.url}/echo",
            headers=["X-L: 1", ("X-T", "2"), "Accept:", "X-E;"],
        ).result(timeout=WAIT))
    req = _last(fresh_http_server, 1)
    assert _values(req, "X-L") == ["1"]
    assert _values(req, "X-T") == ["2"]
    assert "accept" not in _names(req)
    assert _values(req, "X-E") == [""]


def test_query_headers_combine_with_next_state(fresh_http_server: HTTPTestServer) -> None:
    """Headers from http_append_header and from headers= are both sent."""
    with hac.Client() as client:
        client.http_append_header("X-State: s")
        _ok(client.query(
            f"{fresh_http_server.url}/echo", headers={"X-Kw": "k"}
        ).result(timeout=WAIT))
    req = _last(fresh_http_server, 1)
    assert _values(req, "X-State") == ["s"]
    assert _values(req, "X-Kw") == ["k"]


def test_query_method_keyword(fresh_http_server: HTTPTestServer) -> None:
    """method= sets the method; it overrides http_set_method for that query."""
    with hac.Client() as client:
        _ok(client.query(f"{fresh_http_server.url}/echo", b"x", method="PATCH").result(timeout=WAIT))
        client.http_set_method("PUT")
        _ok(client.query(f"{fresh_http_server.url}/echo", method="delete").result(timeout=WAIT))
        _ok(client.query(f"{fresh_http_server.url}/echo").result(timeout=WAIT))
    reqs = _received(fresh_http_server, 3)
    assert [r["method"] for r in reqs] == ["PATCH", "DELETE", "GET"]
    assert reqs[0]["body"] == b"x"


def test_query_timeout_keyword(http_server: HTTPTestServer) -> None:
    """timeout= is this query's deadline, in ms."""
    with hac.Client() as client:
        cut = client.query(f"{http_server.url}/delay/400", timeout=100).result(timeout=WAIT)
        fine = client.query(f"{http_server.url}/delay/100", timeout=1000).result(timeout=WAIT)
    assert cut.timed_out
    _ok(fine)


def test_query_tls_keywords(
    https_servers: HTTPSServers,
    certs: Certs,
) -> None:
    """tls_verify_peer=/tls_verify_host=/tls_client_cert=/tls_client_key=/
    tls_ca_path= keywords, for one query each."""
    with hac.Client() as client:
        relaxed = client.query(
            f"{https_servers['selfsigned'].url}/echo", tls_verify_peer=0, tls_verify_host=0
        ).result(timeout=WAIT)
        strict = client.query(f"{https_servers['selfsigned'].url}/echo").result(timeout=WAIT)
        mtls = client.query(
            f"{https_servers['clientcert'].url}/echo",
            tls_client_cert=certs.client_cert,
            tls_client_key=certs.client_key,
            tls_ca_path=certs.capath,
        ).result(timeout=WAIT)
    _ok(relaxed)
    assert not strict.ok
    _ok(mtls)


@pytest.mark.parametrize("https_server", ["selfsigned"], indirect=True)
def test_query_keyword_overrides_state_verify(https_server: HTTPTestServer) -> None:
    """A keyword beats the next-query state: tls_verify_peer(0) then
    query(tls_verify_peer=1) verifies (and fails on a self-signed cert)."""
    with hac.Client() as client:
        client.tls_verify_peer(0)
        reply = client.query(
            f"{https_server.url}/echo", tls_verify_peer=1
        ).result(timeout=WAIT)
    assert not reply.ok


def test_reused_handle_carries_nothing_over(fresh_http_server: HTTPTestServer) -> None:
    """One worker, one request at a time, so every query runs on the same
    pooled easy handle, which keeps its options between requests of the
    same shape: method, body, headers and verification still follow each
    query exactly, whatever came before."""
    url = f"{fresh_http_server.url}/echo"
    steps: list[tuple[str, dict[str, Any], str, bytes]] = [
        ("get", {}, "GET", b""),
        ("get again", {}, "GET", b""),
        ("post", {"post_data": b"A" * 3000}, "POST", b"A" * 3000),
        ("post shorter", {"post_data": b"bb"}, "POST", b"bb"),
        ("post empty", {"post_data": b""}, "POST", b""),
        ("head", {"method": "HEAD"}, "HEAD", b""),
        ("get after head", {}, "GET", b""),
        ("put", {"method": "PUT", "post_data": b"put"}, "PUT", b"put"),
        ("header", {"headers": ["X-One: 1"]}, "GET", b""),
        ("get after header", {}, "GET", b""),
        ("delete", {"method": "DELETE"}, "DELETE", b""),
        ("get last", {}, "GET", b""),
    ]
    with hac.Client(workers=1) as client:
        for name, kw, _, _ in steps:
            post = kw.pop("post_data", None)
            r = client.query(url, post, **kw).result(timeout=WAIT)
            assert r.ok and r.status == 200, (name, r)
    got = _received(fresh_http_server, len(steps))
    for (name, kw, method, body), req in zip(steps, got):
        assert req["method"] == method, name
        assert req["body"] == body, name
        assert ("x-one" in _names(req)) == (name == "header"), name
        assert ("expect" in _names(req)) is False, name


# -------------------------------------------------- (5.x) http_req keys


def test_http_req_lists_new_keys(client: hac.Client) -> None:
    """Every new key and Kamailio's spellings are known."""
    keys = set(client.http_req.keys())
    wanted = {
        "body", "authmethod", "username", "password", "keepalive", "ka_idle",
        "ka_interval", "follow_redirect", "http_version", "ka-idle",
        "ka-interval", "tcp_keepalive", "tcp_ka_idle", "tcp_ka_interval",
    }
    assert wanted <= keys
