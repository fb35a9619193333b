"""Redirects (5.x): not followed by default, curl_follow_redirect and the
per-query switch, the bound (max_redirects, 10 by default), loops, other
schemes refused, credentials not forwarded to another host."""

from __future__ import annotations

import json
import socket
from urllib.parse import quote

import pytest

import http_async_client as hac
from support.certs import Certs
from support.clients import Fetch
from support.ports import free_port
from support.servers import HTTPTestServer, header


def redirect_to(server: HTTPTestServer, target: str, status: int = 302) -> str:
    """URL of ``/redirect-to`` on server answering with Location: target."""
    return f"{server.url}/redirect-to?url={quote(target, safe='')}&status={status}"


def test_redirect_not_followed_by_default(http_server: HTTPTestServer, fetch: Fetch) -> None:
    """Default: the 302 itself is the reply."""
    reply = fetch(f"{http_server.url}/redirect/2")
    assert reply.ok, reply.err
    assert reply.status == 302
    assert reply.hdr("Location") == "/redirect/1"


def test_follow_redirect_module_param(http_server: HTTPTestServer, fetch: Fetch) -> None:
    """curl_follow_redirect=1 follows to the end; per query 0 turns it off."""
    with hac.Client(connection_timeout=5000, curl_follow_redirect=1) as c:
        reply = fetch(f"{http_server.url}/redirect/3", client=c)
        assert (reply.ok, reply.status, reply.body) == (True, 200, b"landed")
        assert reply.time("redirect") > 0
        assert fetch(f"{http_server.url}/redirect/3", follow_redirect=0, client=c).status == 302


def test_follow_redirect_per_query(client: hac.Client, http_server: HTTPTestServer, fetch: Fetch) -> None:
    """follow_redirect as a keyword and as http_req, reset after the query."""
    url = f"{http_server.url}/redirect/2"
    assert fetch(url, follow_redirect=1).body == b"landed"
    client.http_req["follow_redirect"] = 1
    reply = fetch(url)
    assert (reply.status, reply.body) == (200, b"landed")
    assert fetch(url).status == 302


def test_max_redirects_module_param(http_server: HTTPTestServer, fetch: Fetch) -> None:
    """max_redirects=2 with a chain of 5: a failed reply about redirects."""
    with hac.Client(connection_timeout=5000, curl_follow_redirect=1, max_redirects=2) as c:
        reply = fetch(f"{http_server.url}/redirect/5", client=c)
        assert not reply.ok
        assert reply.curl_code == 47
        assert reply.err is not None and "redirect" in reply.err.lower()
        assert "47" in reply.err
        assert all(v == 0 for v in reply.times.values())
        ok = fetch(f"{http_server.url}/redirect/2", client=c)
        assert (ok.ok, ok.body) == (True, b"landed")
        # per-query max_redirects overrides the module value
        assert fetch(f"{http_server.url}/redirect/5", max_redirects=5, client=c).body == b"landed"


def test_default_redirect_bound_is_10(http_server: HTTPTestServer, fetch: Fetch) -> None:
    """10 redirects are followed, the 11th is refused."""
    assert fetch(f"{http_server.url}/redirect/10", follow_redirect=1).body == b"landed"
    reply = fetch(f"{http_server.url}/redirect/11", follow_redirect=1)
    assert not reply.ok and reply.curl_code == 47


def test_redirect_loop_fails(fresh_http_server: HTTPTestServer, fetch: Fetch) -> None:
    """A Location pointing at itself ends, failed, after the bound."""
    reply = fetch(f"{fresh_http_server.url}/redirect-to?status=302", follow_redirect=1)
    assert not reply.ok
    assert reply.curl_code == 47
    assert reply.err is not None and "redirect" in reply.err.lower()
    # the original request plus max_redirects (10) hops, no more
    assert len(fresh_http_server.requests) == 11


@pytest.mark.parametrize("target", ["file:///etc/passwd", "ftp://127.0.0.1:{port}/x", "dict://127.0.0.1:{port}/x"])
def test_redirect_to_other_scheme_fails(
    http_server: HTTPTestServer, target: str, fetch: Fetch
) -> None:
    """Only http/https targets: anything else is a protocol error (curl 1)."""
    port = free_port()
    target = target.format(port=port)
    with socket.create_server(("127.0.0.1", port)) as trap:
        trap.settimeout(0.01)
        reply = fetch(redirect_to(http_server, target), follow_redirect=1)
        with pytest.raises(OSError):  # nobody came
            trap.accept()
    assert not reply.ok
    assert reply.curl_code == 1
    assert reply.err is not None and "protocol" in reply.err.lower()
    assert b"root:" not in reply.raw


def test_redirect_http_to_https_allowed(
    http_server: HTTPTestServer, https_server: HTTPTestServer, certs: Certs, fetch: Fetch
) -> None:
    """http -> https is one of the allowed redirect targets."""
    reply = fetch(
        redirect_to(http_server, f"{https_server.url}/echo"),
        follow_redirect=1,
        tls_ca_path=certs.capath,
    )
    assert reply.ok, reply.err
    assert reply.status == 200
    assert json.loads(reply.body)["path"] == "/echo"


def test_authorization_not_forwarded_to_another_host(
    fresh_http_server: HTTPTestServer, fetch: Fetch
) -> None:
    """A redirect to another host loses Authorization; same host keeps it."""
    a = fresh_http_server
    with HTTPTestServer() as b:
        auth = {"Authorization": "Bearer secret"}
        cross = fetch(redirect_to(a, f"http://localhost:{b.port}/echo"), headers=auth, follow_redirect=1)
        assert cross.ok, cross.err
        assert cross.status == 200
        assert header(a.requests[0], "Authorization") == "Bearer secret"
        assert len(b.requests) == 1
        assert header(b.requests[0], "Authorization") is None
        assert b"secret" not in cross.body

        # credentials from username/password (Basic sent at once) neither
        b.reset()
        fetch(
            redirect_to(a, f"http://localhost:{b.port}/echo"),
            username="user", password="pass", authmethod=1, follow_redirect=1,
        )
        assert len(b.requests) == 1
        assert header(b.requests[0], "Authorization") is None

        a.reset()
        same = fetch(redirect_to(a, "/echo"), headers=auth, follow_redirect=1)
        assert same.ok and same.status == 200
        assert len(a.requests) == 2
        assert header(a.requests[1], "Authorization") == "Bearer secret"
        echoed = dict((k.lower(), v) for k, v in json.loads(same.body)["headers"])
        assert echoed["authorization"] == "Bearer secret"
