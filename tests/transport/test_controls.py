"""Transport controls (issue #13) against real servers on 127.0.0.1:
low-speed bounds, trust from a CA file or blob, public-key pins, DNS
overrides, per-host connection bounds, connection age, User-Agent, and
the checks of every new keyword (the proxy rows are in test_proxy.py,
connect_timeout and unix_socket in test_connect.py)."""

from __future__ import annotations

import socket
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import pytest

import http_async_client as hac
from support.certs import Certs
from support.clients import Fetch, MakeClient
from support.servers import HTTPTestServer, RawServerFactory, header

WAIT = 15.0


def _last(server: HTTPTestServer) -> dict[str, Any]:
    assert server.requests.wait_for(1, timeout=WAIT)
    return server.requests[-1]


# ------------------------------------------------------------------ low speed


def _dripping(factory: RawServerFactory, interval: float, length: int = 50) -> Any:
    stop = threading.Event()

    def handler(conn: socket.socket, request: bytes) -> None:
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % length)
        for _ in range(length):
            if stop.wait(interval):
                return
            conn.sendall(b"x")

    server = factory(handler)
    server.stop_drip = stop
    return server


def test_low_speed_fails_a_dripping_server(
    raw_server_factory: RawServerFactory, make_client: MakeClient
) -> None:
    server = _dripping(raw_server_factory, 1.0)
    client = make_client(connection_timeout=20000)
    start = time.monotonic()
    reply = client.query(server.url, low_speed_limit=100, low_speed_time=2).result(timeout=WAIT)
    took = time.monotonic() - start
    server.stop_drip.set()
    assert not reply.ok and reply.timed_out, reply.err
    assert reply.err is not None and "low_speed_limit" in reply.err
    assert 1.5 <= took < 8, took
    assert client.stats()["timeouts"] == 1


def test_low_speed_client_default_and_a_fast_server(
    raw_server_factory: RawServerFactory, http_server: HTTPTestServer, make_client: MakeClient
) -> None:
    client = make_client(connection_timeout=20000, low_speed_limit=100, low_speed_time=2)
    assert client.params["low_speed_limit"] == 100
    assert client.query(http_server.url + "/bytes/100000").result(timeout=WAIT).ok
    server = _dripping(raw_server_factory, 0.5)
    reply = client.query(server.url).result(timeout=WAIT)
    server.stop_drip.set()
    assert reply.timed_out and "too slow" in (reply.err or "")
    # off for one query: the same drip then ends by the deadline instead
    server2 = _dripping(raw_server_factory, 0.2, length=10)
    reply = client.query(server2.url, low_speed_limit=0).result(timeout=WAIT)
    assert reply.ok and reply.body == b"x" * 10


# ------------------------------------------------------------- trust and pins


def test_tls_ca_file_trusts_the_test_ca(
    https_server: HTTPTestServer, certs: Certs, make_client: MakeClient, fetch: Fetch
) -> None:
    client = make_client(connection_timeout=8000)
    assert not fetch(https_server.url, client=client).ok  # not in the system store
    assert fetch(https_server.url, client=client, tls_ca_file=certs.ca_cert).ok
    client2 = make_client(connection_timeout=8000, tls_ca_file=str(certs.ca_cert))
    assert fetch(https_server.url, client=client2).ok


def test_tls_ca_blob_trusts_the_test_ca(
    https_server: HTTPTestServer, certs: Certs, make_client: MakeClient, fetch: Fetch
) -> None:
    pem = certs.ca_cert.read_bytes()
    client = make_client(connection_timeout=8000, tls_ca_blob=pem)
    assert fetch(https_server.url, client=client).ok
    assert "tls_ca_blob" in client.params
    other = make_client(connection_timeout=8000)
    assert fetch(https_server.url, client=other, tls_ca_blob=pem).ok
    # the blob alone is trusted: another CA's certificate does not verify it
    wrong = certs.selfsigned_cert.read_bytes()
    reply = fetch(https_server.url, client=other, tls_ca_blob=wrong)
    assert not reply.ok and reply.err is not None


def _pin(cert: Path) -> str:
    pub = subprocess.run(
        ["openssl", "x509", "-in", str(cert), "-pubkey", "-noout"],
        check=True, capture_output=True,
    ).stdout
    der = subprocess.run(
        ["openssl", "pkey", "-pubin", "-outform", "der"], input=pub, check=True, capture_output=True
    ).stdout
    import base64
    import hashlib

    return "sha256//" + base64.b64encode(hashlib.sha256(der).digest()).decode()


def test_pinned_pubkey_right_passes_wrong_fails(
    https_server: HTTPTestServer, certs: Certs, make_client: MakeClient, fetch: Fetch, tmp_path: Path
) -> None:
    right, wrong = _pin(certs.server_cert), _pin(certs.ca_cert)
    client = make_client(connection_timeout=8000, tls_ca_file=certs.ca_cert)
    assert fetch(https_server.url, client=client, tls_pinned_pubkey=right).ok
    assert fetch(https_server.url, client=client, tls_pinned_pubkey=f"{wrong};{right}").ok
    reply = fetch(https_server.url, client=client, tls_pinned_pubkey=wrong)
    assert not reply.ok and reply.err is not None and "pinned" in reply.err.lower()
    # a key file, and the client default
    keyfile = tmp_path / "server.pub.pem"
    keyfile.write_bytes(subprocess.run(
        ["openssl", "x509", "-in", str(certs.server_cert), "-pubkey", "-noout"],
        check=True, capture_output=True).stdout)
    pinned = make_client(connection_timeout=8000, tls_ca_file=certs.ca_cert, tls_pinned_pubkey=keyfile)
    assert fetch(https_server.url, client=pinned).ok
    bad = make_client(connection_timeout=8000, tls_ca_file=certs.ca_cert, tls_pinned_pubkey=wrong)
    reply = fetch(https_server.url, client=bad)
    assert not reply.ok and "pinned" in (reply.err or "").lower()
    assert bad.stats()["errors"] == 1


# --------------------------------------------------------------- DNS overrides


def test_resolve_reaches_a_made_up_host(fresh_http_server: HTTPTestServer, make_client: MakeClient) -> None:
    port = fresh_http_server.port
    url = f"http://api.example.test:{port}/echo"
    client = make_client(connection_timeout=8000)
    reply = client.query(url, resolve=[f"api.example.test:{port}:127.0.0.1"]).result(timeout=WAIT)
    assert reply.ok, reply.err
    assert header(_last(fresh_http_server), "Host") == f"api.example.test:{port}"
    other = make_client(connection_timeout=8000, resolve=f"api.example.test:{port}:127.0.0.1")
    assert other.params["resolve"] == (f"api.example.test:{port}:127.0.0.1",)
    assert other.query(url).result(timeout=WAIT).ok
    assert header(_last(fresh_http_server), "Host") == f"api.example.test:{port}"
    # (no query without the entry: the name would go to the machine's DNS,
    # and tests send nothing beyond loopback)


def test_connect_to_keeps_url_and_host(fresh_http_server: HTTPTestServer, make_client: MakeClient) -> None:
    port = fresh_http_server.port
    client = make_client(connection_timeout=8000)
    reply = client.query(
        "http://api.example.test/echo", connect_to=[f"api.example.test:80:127.0.0.1:{port}"]
    ).result(timeout=WAIT)
    assert reply.ok, reply.err
    assert header(_last(fresh_http_server), "Host") == "api.example.test"
    client2 = make_client(connection_timeout=8000, connect_to=[f"::127.0.0.1:{port}"])
    reply = client2.query(f"http://api.example.test:{port}/echo").result(timeout=WAIT)
    assert reply.ok, reply.err
    assert header(_last(fresh_http_server), "Host") == f"api.example.test:{port}"


# ------------------------------------------------------------ connection bounds


def _ports(server: HTTPTestServer, since: int = 0) -> set[int]:
    return {r["peer_port"] for r in server.requests[since:]}


def test_max_host_connections_bounds_connections(
    fresh_http_server: HTTPTestServer, make_client: MakeClient
) -> None:
    url = fresh_http_server.url + "/delay/150"
    client = make_client(connection_timeout=20000, max_host_connections=2)
    handles = [client.query(url) for _ in range(20)]
    assert all(h.result(timeout=30).ok for h in handles)
    assert len(fresh_http_server.requests) == 20
    assert len(_ports(fresh_http_server)) <= 2
    # the same burst without the bound opens more (the check can fail)
    seen = len(fresh_http_server.requests)
    free = make_client(connection_timeout=20000)
    assert all(h.result(timeout=30).ok for h in [free.query(url) for _ in range(20)])
    assert len(_ports(fresh_http_server, seen)) > 2


def test_max_connection_age_stops_reuse(fresh_http_server: HTTPTestServer, make_client: MakeClient) -> None:
    url = fresh_http_server.url + "/echo"
    aged = make_client(connection_timeout=8000, max_connection_age=1)
    kept = make_client(connection_timeout=8000)
    for client in (aged, kept):
        assert client.query(url).result(timeout=WAIT).ok
    time.sleep(2.2)
    for client in (aged, kept):
        assert client.query(url).result(timeout=WAIT).ok
    reqs = fresh_http_server.requests.snapshot()
    first_aged, first_kept, second_aged, second_kept = (r["peer_port"] for r in reqs[-4:])
    assert second_aged != first_aged  # older than 1 s: a new connection
    assert second_kept == first_kept  # no bound: reused


# ------------------------------------------------------------------ User-Agent


def test_user_agent_default_set_replaced_removed(
    fresh_http_server: HTTPTestServer, make_client: MakeClient
) -> None:
    url = fresh_http_server.url + "/echo"
    default = make_client(connection_timeout=8000)
    assert default.user_agent == f"http_async_client/{hac.__version__}"
    assert default.query(url).result(timeout=WAIT).ok
    assert header(_last(fresh_http_server), "User-Agent") == f"http_async_client/{hac.__version__}"
    assert default.query(url, headers={"User-Agent": "mine/2"}).result(timeout=WAIT).ok
    assert header(_last(fresh_http_server), "User-Agent") == "mine/2"
    assert default.query(url, headers=["User-Agent:"]).result(timeout=WAIT).ok
    assert header(_last(fresh_http_server), "User-Agent") is None
    custom = make_client(connection_timeout=8000, user_agent="svc/1.0")
    assert custom.query(url).result(timeout=WAIT).ok
    assert header(_last(fresh_http_server), "User-Agent") == "svc/1.0"
    none = make_client(connection_timeout=8000, user_agent="")
    assert none.query(url).result(timeout=WAIT).ok
    assert header(_last(fresh_http_server), "User-Agent") is None


def test_dns_cache_timeout_values(make_client: MakeClient, fresh_http_server: HTTPTestServer) -> None:
    for value in (-1, 0, 1, 3600):
        client = make_client(connection_timeout=8000, dns_cache_timeout=value)
        assert client.params["dns_cache_timeout"] == value
        assert client.query(fresh_http_server.url).result(timeout=WAIT).ok
    assert make_client().params["dns_cache_timeout"] == 60


# ------------------------------------------------------------------ bad values

BAD_QUERY = [
    ("connect_timeout", 0), ("connect_timeout", -5), ("connect_timeout", "soon"),
    ("low_speed_limit", -1), ("low_speed_time", -1), ("low_speed_limit", "fast"),
    ("proxy", "ftp://127.0.0.1:21"), ("proxy", "http://"), ("proxy", "http://h:99999"),
    ("proxy", "http://a\r\nb:1"), ("proxy", 3128), ("no_proxy", "a\nb"), ("no_proxy", 5),
    ("tls_ca_blob", b"not pem"), ("tls_ca_blob", 7), ("tls_ca_blob", b"-----BEGIN CERTIFICATE-----\0"),
    ("tls_pinned_pubkey", "sha256//!!"), ("tls_pinned_pubkey", 1),
    ("resolve", ["no-port"]), ("resolve", "host:port:1.2.3.4"), ("resolve", 5), ("resolve", ["a:1:b\n"]),
    ("connect_to", ["a:1:b"]), ("connect_to", ["a:x:b:1"]), ("connect_to", {"a": 1}),
    ("unix_socket", "/tmp/a\0b"), ("unix_socket", 3),
]


@pytest.mark.parametrize(("name", "value"), BAD_QUERY)
def test_bad_query_values_raise_before_sending(
    client: hac.Client, fresh_http_server: HTTPTestServer, name: str, value: object
) -> None:
    with pytest.raises(hac.InvalidOption, match=name):
        client.query(fresh_http_server.url, **{name: value})
    assert client.stats()["requests"] == 0
    assert len(fresh_http_server.requests) == 0


BAD_CLIENT = [
    *BAD_QUERY,
    ("dns_cache_timeout", -2), ("dns_cache_timeout", "x"), ("max_host_connections", -1),
    ("max_connection_age", -1), ("trust_env", "yes"), ("trust_env", 2), ("user_agent", "a\r\nb"),
    ("user_agent", 5),
]


@pytest.mark.parametrize(("name", "value"), BAD_CLIENT)
def test_bad_client_values_raise(name: str, value: object) -> None:
    with pytest.raises(hac.InvalidOption, match=name):
        hac.Client(**{name: value})


def test_new_keywords_are_params_and_http_req_keys() -> None:
    names = ["connect_timeout", "low_speed_limit", "low_speed_time", "proxy", "no_proxy",
             "tls_ca_file", "tls_ca_blob", "tls_pinned_pubkey", "resolve", "connect_to",
             "unix_socket"]
    client_only = ["trust_env", "dns_cache_timeout", "max_host_connections",
                   "max_connection_age", "user_agent"]
    with hac.Client() as client:
        for name in names + client_only:
            assert name in client.params, name
        for name in names:
            assert name in client.http_req.keys(), name
        assert client.params["trust_env"] is False
        assert client.params["proxy"] is None and client.params["connect_timeout"] is None
