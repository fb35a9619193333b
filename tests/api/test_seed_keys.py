"""The seed's last gaps (issue #13): every http_req key is a query()
keyword, ``http_req[key] = None`` resets that key, and every authmethod
value the seed documents works (or is refused when libcurl lacks it)."""

from __future__ import annotations

import base64
import socket
from typing import Any

import pytest

import http_async_client as hac
from http_async_client import _optable as t
from support.clients import Fetch, MakeClient
from support.servers import RawServer, RawServerFactory, HTTPTestServer, header

WAIT = 10.0


def _last(server: HTTPTestServer) -> dict[str, Any]:
    assert server.requests.wait_for(1, timeout=WAIT)
    return server.requests[-1]


# ------------------------------------------------------ http_req keys as keywords


def test_hdr_keyword_takes_one_line_or_a_list(fresh_http_server: HTTPTestServer, fetch: Fetch) -> None:
    url = fresh_http_server.url + "/echo"
    assert fetch(url, hdr="X-A: 1").ok
    assert header(_last(fresh_http_server), "X-A") == "1"
    assert fetch(url, hdr=["X-B: 2", "X-C: 3"], headers={"X-D": "4"}).ok
    req = _last(fresh_http_server)
    assert [header(req, n) for n in ("X-B", "X-C", "X-D")] == ["2", "3", "4"]


def test_hdr_keyword_has_http_append_header_semantics(
    fresh_http_server: HTTPTestServer, fetch: Fetch
) -> None:
    url = fresh_http_server.url + "/echo"
    # replace, remove and send-empty forms, as http_append_header
    assert fetch(url, hdr=["Accept: text/plain", "User-Agent:", "X-Empty;"]).ok
    req = _last(fresh_http_server)
    assert header(req, "Accept") == "text/plain"
    assert header(req, "User-Agent") is None
    assert header(req, "X-Empty") == ""


@pytest.mark.parametrize("bad", ["X-A: 1\r\nX-Evil: 2", "no colon", 42, {"X-A": "1"}])
def test_hdr_keyword_bad_values_raise_before_sending(
    fresh_http_server: HTTPTestServer, client: hac.Client, bad: object
) -> None:
    before = client.stats()["requests"]
    with pytest.raises((hac.InvalidHeader, hac.InvalidOptionType)):
        client.query(fresh_http_server.url, hdr=bad)  # type: ignore[arg-type]
    assert client.stats()["requests"] == before
    assert len(fresh_http_server.requests) == 0


def test_body_keyword_is_the_request_body(fresh_http_server: HTTPTestServer, fetch: Fetch) -> None:
    reply = fetch(fresh_http_server.url + "/echo", body=b"payload")
    assert reply.ok
    req = _last(fresh_http_server)
    assert (req["method"], req["body"]) == ("POST", b"payload")
    assert fetch(fresh_http_server.url + "/echo", body="x", method="PUT").ok
    req = _last(fresh_http_server)
    assert (req["method"], req["body"]) == ("PUT", b"x")


def test_body_and_post_data_together_is_an_error(client: hac.Client) -> None:
    with pytest.raises(hac.InvalidOption, match="post_data or body"):
        client.query("http://127.0.0.1:9/", "a", body=b"b")
    assert client.stats()["requests"] == 0


def test_suspend_keyword_is_accepted_and_never_blocks(
    fresh_http_server: HTTPTestServer, client: hac.Client
) -> None:
    # a slow reply: query() must return at once whatever suspend says
    for value in (0, 1, "1"):
        handle = client.query(fresh_http_server.url + "/delay/300", suspend=value)
        assert not handle.done()
        assert handle.result(timeout=WAIT).ok
    with pytest.raises(hac.InvalidOption):
        client.query(fresh_http_server.url, suspend=-1)


@pytest.mark.parametrize("spelling", ["ka-idle", "tcp_ka_idle", "ka_idle"])
def test_kamailio_spellings_are_query_keywords(
    fresh_http_server: HTTPTestServer, fetch: Fetch, spelling: str
) -> None:
    assert fetch(fresh_http_server.url, keepalive=1, **{spelling: 7}).ok
    with pytest.raises(hac.InvalidOption):
        fetch(fresh_http_server.url, **{spelling: -1})


def test_every_http_req_key_is_a_query_keyword(fresh_http_server: HTTPTestServer, fetch: Fetch) -> None:
    """Each key of client.http_req.keys() (but 'all', which only resets)
    is accepted by query() under the same name."""
    values: dict[str, Any] = {
        "hdr": "X-K: v", "method": "GET", "timeout": 5000, "suspend": 1, "body": None,
        "username": "u", "password": "p", "authmethod": 1, "keepalive": 0,
        "tcp_keepalive": 0, "ka_idle": 5, "ka-idle": 5, "tcp_ka_idle": 5, "ka_interval": 5,
        "ka-interval": 5, "tcp_ka_interval": 5, "follow_redirect": 0, "http_version": 0,
        "tls_client_cert": None, "tls_client_key": None, "tls_ca_path": None, "tls_ca_file": None,
    }
    with hac.Client() as probe:
        keys = [k for k in probe.http_req.keys() if k != "all"]
    for key in keys:
        value = values.get(key)
        reply = fetch(fresh_http_server.url, **{key: value})
        assert reply.ok, (key, reply.err)


# --------------------------------------------------------- http_req[key] = None


def test_none_resets_each_key_to_the_client_default(
    fresh_http_server: HTTPTestServer, client: hac.Client
) -> None:
    url = fresh_http_server.url + "/echo"
    settings: dict[str, Any] = {
        "method": "PUT", "timeout": 1, "suspend": 0, "authmethod": 2, "keepalive": 1,
        "ka_idle": 3, "ka_interval": 3, "follow_redirect": 1, "http_version": 2,
        "hdr": "X-Reset: 1", "body": b"b", "tls_ca_path": "/nonexistent",
        "tls_ca_file": "/nonexistent", "max_redirects": 1, "connect_timeout": 1,
        "proxy": "http://127.0.0.1:9", "unix_socket": "/nonexistent.sock",
    }
    for key, value in settings.items():
        if key not in client.http_req.keys():
            continue
        client.http_req[key] = value
        client.http_req[key] = None
        reply = client.query(url).result(timeout=WAIT)
        assert reply.ok, (key, reply.err)
        req = _last(fresh_http_server)
        assert req["method"] == "GET", key
        assert header(req, "X-Reset") is None, key
        assert req["body"] == b"", key


def test_none_reset_of_tls_ca_path_means_the_clients_own(
    make_client: MakeClient, https_server: HTTPTestServer, certs: Any
) -> None:
    client = make_client(connection_timeout=8000, tls_ca_path=certs.capath)
    client.http_req["tls_ca_path"] = "/nonexistent-dir"
    client.http_req["tls_ca_path"] = None
    reply = client.query(https_server.url).result(timeout=WAIT)
    assert reply.ok, reply.err
    # and "" still means "no CA directory for the next query"
    client.http_req["tls_ca_path"] = ""
    reply = client.query(https_server.url).result(timeout=WAIT)
    assert not reply.ok


def test_none_reset_leaves_the_other_keys(fresh_http_server: HTTPTestServer, client: hac.Client) -> None:
    client.http_req["method"] = "PUT"
    client.http_req["hdr"] = "X-Keep: 1"
    client.http_req["timeout"] = 5000
    client.http_req["timeout"] = None
    assert client.query(fresh_http_server.url + "/echo").result(timeout=WAIT).ok
    req = _last(fresh_http_server)
    assert req["method"] == "PUT" and header(req, "X-Keep") == "1"


# ---------------------------------------------------------------- authmethod


def _auth_server(factory: RawServerFactory, challenge: str) -> tuple[RawServer, list[str]]:
    """401 with ``challenge`` to a request without Authorization, 200 to
    one that has it (whatever it holds): shows which scheme libcurl
    answered with.  The list gets every Authorization value received."""
    seen: list[str] = []

    def handler(conn: socket.socket, request: bytes) -> None:
        while True:
            for line in request.decode("latin-1").split("\r\n"):
                if line.lower().startswith("authorization:"):
                    seen.append(line.split(":", 1)[1].strip())
            if b"\nauthorization:" in request.lower():
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
            else:
                conn.sendall(
                    b"HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: " + challenge.encode()
                    + b"\r\nContent-Length: 0\r\n\r\n"
                )
            request = b""
            conn.settimeout(5)
            while b"\r\n\r\n" not in request:
                chunk = conn.recv(65536)
                if not chunk:
                    return
                request += chunk

    return factory(handler), seen


def test_authmethod_basic_and_digest(http_server: HTTPTestServer, fetch: Fetch) -> None:
    base = http_server.url
    assert fetch(base + "/auth/basic", username="user", password="pass", authmethod=1).status == 200
    assert fetch(base + "/auth/digest", username="user", password="pass", authmethod=2).status == 200
    # the sum: libcurl picks what the server offers
    assert fetch(base + "/auth/digest", username="user", password="pass", authmethod=3).status == 200
    assert fetch(base + "/auth/basic", username="user", password="pass", authmethod=3).status == 200


def test_authmethod_digest_ie(http_server: HTTPTestServer, fetch: Fetch) -> None:
    reply = fetch(http_server.url + "/auth/digest", username="user", password="pass", authmethod=16)
    assert reply.status == 200, reply.err
    reply = fetch(http_server.url + "/auth/digest", username="user", password="pass", authmethod=18)
    assert reply.status == 200, reply.err


def test_authmethod_ntlm_sends_an_ntlm_negotiate_message(
    raw_server_factory: RawServerFactory, fetch: Fetch
) -> None:
    if not hac._ffi.lib.hac_curl_features() & (1 << 4):
        with pytest.raises(hac.InvalidOption, match="NTLM"):
            fetch("http://127.0.0.1:9/", username="u", password="p", authmethod=8)
        return
    server, sent = _auth_server(raw_server_factory, "NTLM")
    reply = fetch(server.url, username="u", password="p", authmethod=8)
    assert reply.status == 200, reply.err
    assert sent and sent[0].startswith("NTLM ")
    # an NTLM type-1 message: "NTLMSSP\0" then message type 1
    msg = base64.b64decode(sent[0].split(" ", 1)[1])
    assert msg[:8] == b"NTLMSSP\0" and msg[8] == 1


def test_authmethod_negotiate_is_tried_or_refused(
    raw_server_factory: RawServerFactory, fetch: Fetch
) -> None:
    if not hac._ffi.lib.hac_curl_features() & (1 << 8):
        with pytest.raises(hac.InvalidOption, match="Negotiate"):
            fetch("http://127.0.0.1:9/", username="u", password="p", authmethod=4)
        return
    server, _ = _auth_server(raw_server_factory, "Negotiate")
    # no Kerberos ticket here: libcurl cannot make a token, so the 401 stands
    # as a reply (not a crash, not an error)
    reply = fetch(server.url, username="u", password="p", authmethod=4)
    assert reply.status == 401 and reply.err is None
    # with Basic also allowed, libcurl falls back to what the server offers
    server2, sent = _auth_server(raw_server_factory, 'Basic realm="x"')
    reply = fetch(server2.url, username="u", password="p", authmethod=5)
    assert reply.status == 200
    assert sent[0] == "Basic " + base64.b64encode(b"u:p").decode()


@pytest.mark.parametrize("bad", [0, 32, 64, -1, "x"])
def test_authmethod_bad_values(make_client: MakeClient, client: hac.Client, bad: object) -> None:
    with pytest.raises(hac.InvalidOption, match="authmethod"):
        make_client(authmethod=bad)
    with pytest.raises(hac.InvalidOption, match="authmethod"):
        client.query("http://127.0.0.1:9/", username="u", authmethod=bad)  # type: ignore[arg-type]
    with pytest.raises(hac.InvalidOption, match="authmethod"):
        client.http_req["authmethod"] = bad


def test_every_documented_authmethod_sum_is_accepted_when_built_in() -> None:
    features = hac._ffi.lib.hac_curl_features()
    missing = (4 if not features & (1 << 8) else 0) | (8 if not features & (1 << 4) else 0)
    for value in range(1, 32):
        if value & missing:
            with pytest.raises(hac.InvalidOption):
                t.check_authmethod("authmethod", value)
        else:
            assert t.check_authmethod("authmethod", value) == value
