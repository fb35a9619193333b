"""Authentication (5.x): Basic and Digest (RFC 7616) through the
username/password/authmethod keywords, ``http_req`` keys and the module
parameter, against the Python test server on 127.0.0.1."""

from __future__ import annotations

from typing import Any

import pytest

import http_async_client as hac
from support.clients import Fetch
from support.servers import HTTPTestServer, header


def test_basic_auth_keywords(fresh_http_server: HTTPTestServer, fetch: Fetch) -> None:
    """username/password keywords with the default authmethod (Basic|Digest)."""
    reply = fetch(f"{fresh_http_server.url}/auth/basic", username="user", password="pass")
    assert reply.ok, reply.err
    assert (reply.status, reply.body) == (200, b"authenticated")
    last = fresh_http_server.requests[-1]
    assert (header(last, "Authorization") or "").startswith("Basic ")
    # options are per query: the next one has no credentials
    assert fetch(f"{fresh_http_server.url}/auth/basic").status == 401


def test_basic_auth_http_req(client: hac.Client, fresh_http_server: HTTPTestServer, fetch: Fetch) -> None:
    """http_req username/password/authmethod: Basic only is sent at once."""
    client.http_req["username"] = "user"
    client.http_req["password"] = "pass"
    client.http_req["authmethod"] = 1
    reply = fetch(f"{fresh_http_server.url}/auth/basic")
    assert (reply.ok, reply.status, reply.body) == (True, 200, b"authenticated")
    # Basic alone needs no probing round trip
    assert len(fresh_http_server.requests) == 1
    assert fetch(f"{fresh_http_server.url}/auth/basic").status == 401


@pytest.mark.parametrize("authmethod", [2, 3, None])
def test_digest_auth(http_server: HTTPTestServer, authmethod: int | None, fetch: Fetch) -> None:
    """Digest (RFC 7616, MD5, qop=auth) with authmethod 2 and the default 3."""
    opts: dict[str, Any] = {"username": "user", "password": "pass"}
    if authmethod is not None:
        opts["authmethod"] = authmethod
    reply = fetch(f"{http_server.url}/auth/digest", **opts)
    assert reply.ok, reply.err
    assert (reply.status, reply.body) == (200, b"digest authenticated")


def test_digest_auth_module_param(http_server: HTTPTestServer, fetch: Fetch) -> None:
    """authmethod as a module parameter: 2 works, 1 (Basic only) cannot."""
    url = f"{http_server.url}/auth/digest"
    with hac.Client(connection_timeout=5000, authmethod=2) as c:
        assert fetch(url, username="user", password="pass", client=c).status == 200
    with hac.Client(connection_timeout=5000, authmethod=1) as c:
        assert fetch(url, username="user", password="pass", client=c).status == 401


@pytest.mark.parametrize("path", ["/auth/basic", "/auth/digest"])
def test_wrong_password_is_a_401_reply(http_server: HTTPTestServer, path: str, fetch: Fetch) -> None:
    """Bad credentials: the transfer is fine (ok True), the status is 401."""
    reply = fetch(f"{http_server.url}{path}", username="user", password="wrong")
    assert reply.ok, reply.err
    assert reply.err is None
    assert reply.status == 401
    assert reply.hdr("WWW-Authenticate") is not None


def test_basic_only_against_digest(fresh_http_server: HTTPTestServer, fetch: Fetch) -> None:
    """authmethod=1 sends Basic, which the digest endpoint refuses."""
    reply = fetch(
        f"{fresh_http_server.url}/auth/digest", username="user", password="pass", authmethod=1
    )
    assert (reply.ok, reply.status) == (True, 401)
    sent = [header(r, "Authorization") or "" for r in fresh_http_server.requests]
    assert sent and all(not s.startswith("Digest") for s in sent)
    assert any(s.startswith("Basic ") for s in sent)
