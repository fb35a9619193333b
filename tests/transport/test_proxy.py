"""Proxies (issue #13) through the tests' own HTTP proxy (absolute-form
relay and CONNECT) and SOCKS5 server: set, not set, from the environment
only when asked, bypassed, with credentials that never show."""

from __future__ import annotations

import logging
import socket
import threading
from typing import Any

import pytest

import http_async_client as hac
from support.certs import Certs, server_context
from support.conncount import ConnRecord
from support.clients import MakeClient
from support.proxies import PROXY_PASSWORD, PROXY_USER, HTTPProxy, Socks5Proxy
from support.servers import HTTPTestServer, header
from support.sockserve import ThreadedListener

WAIT = 15.0
ENV_VARS = ("http_proxy", "https_proxy", "all_proxy", "no_proxy",
            "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY", "REQUEST_METHOD")


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No proxy variable from the machine leaks into a test."""
    for var in ENV_VARS:
        monkeypatch.delenv(var, raising=False)


def _creds_url(proxy: HTTPProxy | Socks5Proxy, scheme: str = "http") -> str:
    return f"{scheme}://{PROXY_USER}:{PROXY_PASSWORD}@127.0.0.1:{proxy.port}"


def _get(client: hac.Client, url: str, **kw: Any) -> hac.Reply:
    return client.query(url, **kw).result(timeout=WAIT)


# ----------------------------------------------------------------- HTTP proxy


def test_proxy_sees_the_request_only_when_set(
    http_proxy: HTTPProxy, fresh_http_server: HTTPTestServer, make_client: MakeClient
) -> None:
    url = fresh_http_server.url + "/echo"
    direct = make_client(connection_timeout=8000)
    assert _get(direct, url).ok
    assert len(http_proxy.requests) == 0 and http_proxy.connections == 0
    proxied = make_client(connection_timeout=8000, proxy=http_proxy.url)
    reply = _get(proxied, url)
    assert reply.ok, reply.err
    assert http_proxy.requests.wait_for(1, timeout=WAIT)
    seen = http_proxy.requests[0]
    assert seen["method"] == "GET" and seen["target"] == url
    assert len(fresh_http_server.requests) == 2
    # one query through the proxy from a direct client, and one direct
    # query from a proxied client
    assert _get(direct, url, proxy=http_proxy.url).ok
    assert http_proxy.requests.wait_for(2, timeout=WAIT)
    assert _get(proxied, url, proxy="").ok
    assert len(http_proxy.requests) == 2
    assert len(fresh_http_server.requests) == 4


def test_https_through_connect(
    http_proxy: HTTPProxy, https_server: HTTPTestServer, certs: Certs, make_client: MakeClient
) -> None:
    client = make_client(connection_timeout=8000, proxy=http_proxy.url, tls_ca_file=certs.ca_cert)
    for _ in range(3):
        reply = _get(client, https_server.url + "/echo")
        assert reply.ok, reply.err
    tunnels = [r for r in http_proxy.requests.snapshot() if r["method"] == "CONNECT"]
    assert tunnels and tunnels[0]["target"] == f"127.0.0.1:{https_server.port}"
    assert len(tunnels) == 1  # the tunnel is a kept connection, reused
    # verification still applies through the tunnel
    untrusted = make_client(connection_timeout=8000, proxy=http_proxy.url)
    assert not _get(untrusted, https_server.url).ok


def test_no_proxy_bypasses(
    http_proxy: HTTPProxy, fresh_http_server: HTTPTestServer, make_client: MakeClient
) -> None:
    url = fresh_http_server.url + "/echo"
    client = make_client(connection_timeout=8000, proxy=http_proxy.url, no_proxy="localhost,127.0.0.1")
    assert _get(client, url).ok
    assert len(http_proxy.requests) == 0
    # per query: no bypass list at all
    assert _get(client, url, no_proxy="").ok
    assert http_proxy.requests.wait_for(1, timeout=WAIT)
    # a made-up name via the proxy, bypass listing another name
    other = make_client(connection_timeout=8000, proxy=http_proxy.url, no_proxy="example.org")
    reply = _get(other, f"http://api.example.test:{fresh_http_server.port}/echo")
    assert reply.ok, reply.err
    assert header(fresh_http_server.requests[-1], "Host") == f"api.example.test:{fresh_http_server.port}"


def test_unreachable_proxy_is_a_failed_reply(make_client: MakeClient, http_server: HTTPTestServer) -> None:
    client = make_client(connection_timeout=3000, proxy=f"http://{PROXY_USER}:{PROXY_PASSWORD}@127.0.0.1:9")
    reply = _get(client, http_server.url)
    assert not reply.ok and reply.err is not None
    assert PROXY_PASSWORD not in reply.err and PROXY_PASSWORD not in repr(reply)
    assert client.stats()["errors"] == 1


# -------------------------------------------------------------- environment


def test_environment_is_ignored_by_default(
    http_proxy: HTTPProxy, fresh_http_server: HTTPTestServer, certs: Certs,
    https_server: HTTPTestServer, make_client: MakeClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    for var in ("http_proxy", "https_proxy", "all_proxy", "HTTPS_PROXY", "ALL_PROXY", "HTTP_PROXY"):
        monkeypatch.setenv(var, http_proxy.url)
    client = make_client(connection_timeout=8000, tls_ca_file=certs.ca_cert)
    assert client.params["trust_env"] is False
    assert _get(client, fresh_http_server.url + "/echo").ok
    assert _get(client, https_server.url + "/echo").ok
    assert len(http_proxy.requests) == 0 and http_proxy.connections == 0


@pytest.mark.parametrize("var", ["http_proxy", "HTTP_PROXY", "all_proxy", "ALL_PROXY"])
def test_trust_env_takes_the_http_proxy(
    http_proxy: HTTPProxy, fresh_http_server: HTTPTestServer, make_client: MakeClient,
    monkeypatch: pytest.MonkeyPatch, var: str
) -> None:
    monkeypatch.setenv(var, http_proxy.url)
    client = make_client(connection_timeout=8000, trust_env=True)
    assert _get(client, fresh_http_server.url + "/echo").ok
    assert http_proxy.requests.wait_for(1, timeout=WAIT)
    assert http_proxy.requests[0]["target"] == fresh_http_server.url + "/echo"


def test_trust_env_scheme_rules_and_no_proxy(
    http_proxy: HTTPProxy, fresh_http_server: HTTPTestServer, https_server: HTTPTestServer,
    certs: Certs, make_client: MakeClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("https_proxy", http_proxy.url)
    client = make_client(connection_timeout=8000, trust_env=True, tls_ca_file=certs.ca_cert)
    # https_proxy is for https:// URLs only
    assert _get(client, fresh_http_server.url + "/echo").ok
    assert len(http_proxy.requests) == 0
    assert _get(client, https_server.url + "/echo").ok
    assert http_proxy.requests.wait_for(1, timeout=WAIT)
    assert http_proxy.requests[0]["method"] == "CONNECT"
    # NO_PROXY (either case) bypasses, an explicit proxy= wins over the env
    monkeypatch.setenv("http_proxy", http_proxy.url)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    bypass = make_client(connection_timeout=8000, trust_env=True)
    assert _get(bypass, fresh_http_server.url + "/echo").ok
    assert len(http_proxy.requests) == 1
    monkeypatch.delenv("NO_PROXY")
    explicit = make_client(connection_timeout=8000, trust_env=True, proxy="")
    assert _get(explicit, fresh_http_server.url + "/echo").ok
    assert len(http_proxy.requests) == 1


def test_trust_env_ignores_upper_http_proxy_in_cgi(
    http_proxy: HTTPProxy, fresh_http_server: HTTPTestServer, make_client: MakeClient,
    monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HTTP_PROXY", http_proxy.url)
    monkeypatch.setenv("REQUEST_METHOD", "GET")
    client = make_client(connection_timeout=8000, trust_env=True)
    assert _get(client, fresh_http_server.url + "/echo").ok
    assert len(http_proxy.requests) == 0


def test_bad_environment_proxy_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("https_proxy", "ftp://127.0.0.1:21")
    with pytest.raises(hac.InvalidOption, match="https_proxy"):
        hac.Client(trust_env=True)
    hac.Client().close()  # not read without trust_env


# -------------------------------------------------------------- credentials


def test_proxy_credentials_reach_the_proxy_and_never_show(
    auth_http_proxy: HTTPProxy, fresh_http_server: HTTPTestServer, make_client: MakeClient,
    caplog: pytest.LogCaptureFixture,
) -> None:
    url = fresh_http_server.url + "/echo"
    plain = make_client(connection_timeout=8000, proxy=auth_http_proxy.url)
    assert _get(plain, url).status == 407
    caplog.set_level(logging.INFO, logger="http_async_client")
    client = make_client(connection_timeout=8000, proxy=_creds_url(auth_http_proxy), curl_verbose=1)
    reply = _get(client, url, headers={"Authorization": "Bearer target-secret"})
    assert reply.ok and reply.status == 200, (reply.status, reply.err)
    assert auth_http_proxy.requests.wait_for(2, timeout=WAIT)
    assert auth_http_proxy.requests[-1]["proxy_authorization"] == (PROXY_USER, PROXY_PASSWORD)
    client.dispatch(0)  # the verbose trace is logged by the draining thread
    shown = [repr(client), repr(client.params), str(client.proxy), repr(reply), caplog.text]
    for text in shown:
        assert PROXY_PASSWORD not in text, text
        assert "target-secret" not in text
    assert "Proxy-Authorization: [redacted]" in caplog.text
    assert client.proxy == f"http://{PROXY_USER}:***@127.0.0.1:{auth_http_proxy.port}"


# ------------------------------------------------------------------- SOCKS5


def test_socks5h_sends_the_name(
    socks5_proxy: Socks5Proxy, fresh_http_server: HTTPTestServer, make_client: MakeClient
) -> None:
    client = make_client(connection_timeout=8000, proxy=socks5_proxy.url_h)
    reply = _get(client, f"http://api.example.test:{fresh_http_server.port}/echo")
    assert reply.ok, reply.err
    assert socks5_proxy.requests.wait_for(1, timeout=WAIT)
    seen = socks5_proxy.requests[0]
    assert (seen["atyp"], seen["host"], seen["port"]) == ("domain", "api.example.test", fresh_http_server.port)


def test_socks5_resolves_locally(
    socks5_proxy: Socks5Proxy, fresh_http_server: HTTPTestServer, make_client: MakeClient
) -> None:
    client = make_client(connection_timeout=8000, proxy=socks5_proxy.url)
    assert _get(client, fresh_http_server.url + "/echo").ok
    assert socks5_proxy.requests.wait_for(1, timeout=WAIT)
    assert socks5_proxy.requests[0]["atyp"] == "ipv4" and socks5_proxy.requests[0]["host"] == "127.0.0.1"


def test_socks5_credentials(
    auth_socks5_proxy: Socks5Proxy, fresh_http_server: HTTPTestServer, make_client: MakeClient
) -> None:
    url = fresh_http_server.url + "/echo"
    without = make_client(connection_timeout=8000, proxy=auth_socks5_proxy.url)
    assert not _get(without, url).ok
    client = make_client(connection_timeout=8000, proxy=_creds_url(auth_socks5_proxy, "socks5h"))
    reply = _get(client, url)
    assert reply.ok, reply.err
    assert any(h["user"] == PROXY_USER and h["auth_ok"] for h in auth_socks5_proxy.handshakes)
    assert PROXY_PASSWORD not in repr(client.params)


# -------------------------------------------------------------- HTTPS proxy


class _TLSFront(ThreadedListener):
    """TLS in front of a plain proxy: an ``https://`` proxy for the client
    (certificate of the tests' CA for 127.0.0.1)."""

    def __init__(self, certs: Certs, backend_port: int) -> None:
        super().__init__(socket.create_server(("127.0.0.1", 0)))
        self.port = self._sock.getsockname()[1]
        self.url = f"https://127.0.0.1:{self.port}"
        self._ctx = server_context(certs.server_cert, certs.server_key)
        self._backend = backend_port
        self.handshakes = 0

    def handle(self, conn: socket.socket, record: ConnRecord) -> None:
        conn.settimeout(10)
        tls = self._ctx.wrap_socket(conn, server_side=True)
        self.handshakes += 1
        up = socket.create_connection(("127.0.0.1", self._backend), timeout=10)
        self.track(up)

        def copy(src: Any, dst: Any) -> None:
            try:
                while data := src.recv(65536):
                    dst.sendall(data)
            except OSError:
                pass
            for s in (src, dst):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

        back = threading.Thread(target=copy, args=(up, tls), daemon=True)
        back.start()
        copy(tls, up)
        back.join(10)
        self.untrack(up)
        up.close()


def test_https_proxy_is_verified_and_used(
    http_proxy: HTTPProxy, fresh_http_server: HTTPTestServer, certs: Certs, make_client: MakeClient
) -> None:
    with _TLSFront(certs, http_proxy.port) as front:
        url = fresh_http_server.url + "/echo"
        trusted = make_client(connection_timeout=8000, proxy=front.url, tls_ca_file=certs.ca_cert)
        reply = _get(trusted, url)
        assert reply.ok, reply.err
        assert http_proxy.requests.wait_for(1, timeout=WAIT)
        assert front.handshakes >= 1
        # the proxy's certificate is checked like a server's
        untrusted = make_client(connection_timeout=8000, proxy=front.url)
        reply = _get(untrusted, url)
        assert not reply.ok and reply.err is not None
        assert len(http_proxy.requests) == 1
        unverified = make_client(connection_timeout=8000, proxy=front.url, tls_verify_peer=0,
                                 tls_verify_host=0)
        assert _get(unverified, url).ok
