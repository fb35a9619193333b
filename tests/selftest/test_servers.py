"""Self-tests of the test servers, using only the standard library client."""

from __future__ import annotations

import http.client
import json
import socket
import ssl
import struct
import threading
import time
from pathlib import Path

import pytest

from support.certs import Certs
from support.servers import HTTPSServers, HTTPTestServer, RawServerFactory, pattern_bytes


def _get(
    server: HTTPTestServer,
    path: str,
    method: str = "GET",
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
    context: ssl.SSLContext | None = None,
) -> tuple[http.client.HTTPResponse, bytes]:
    """One request on a fresh connection; returns the response and its body."""
    conn: http.client.HTTPConnection
    if context is None:
        conn = http.client.HTTPConnection(server.host, server.port, timeout=5)
    else:
        conn = http.client.HTTPSConnection(
            server.host, server.port, timeout=5, context=context
        )
    try:
        conn.request(method, path, body=body, headers=headers or {})
        resp = conn.getresponse()
        return resp, resp.read()
    finally:
        conn.close()


def _raw_exchange(port: int, request: bytes) -> bytes:
    """Send raw bytes and read until the server closes the connection."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(request)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def _client_context(certs: Certs, **kwargs: object) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(certs.ca_cert), **kwargs)  # type: ignore[arg-type]


# -- plain HTTP -------------------------------------------------------------


def test_echo_returns_request_and_is_recorded(fresh_http_server: HTTPTestServer) -> None:
    server = fresh_http_server
    conn = http.client.HTTPConnection(server.host, server.port, timeout=5)
    conn.putrequest("POST", "/echo?x=1", skip_accept_encoding=True)
    conn.putheader("X-Custom", "abc")
    conn.putheader("x-lower", "Mixed Case")
    conn.putheader("Content-Length", "5")
    conn.endheaders(b"he\x00lo")
    resp = conn.getresponse()
    data = json.loads(resp.read())
    local_port = conn.sock.getsockname()[1]
    conn.close()

    assert resp.status == 200
    assert resp.getheader("Content-Type") == "application/json"
    assert data["method"] == "POST"
    assert data["path"] == "/echo?x=1"
    assert data["body"] == "he\x00lo" and data["body_len"] == 5
    names = [name for name, _ in data["headers"]]
    assert names == ["Host", "X-Custom", "x-lower", "Content-Length"]
    assert ["x-lower", "Mixed Case"] in data["headers"]

    (record,) = server.requests
    assert record["method"] == "POST"
    assert record["path"] == "/echo?x=1"
    assert record["body"] == b"he\x00lo"
    assert record["version"] == "HTTP/1.1"
    assert record["peer_port"] == local_port
    assert record["headers"][1:] == [
        ("X-Custom", "abc"),
        ("x-lower", "Mixed Case"),
        ("Content-Length", "5"),
    ]


def test_chunked_request_body_is_decoded(fresh_http_server: HTTPTestServer) -> None:
    request = (
        b"PUT /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
        b"Connection: close\r\n\r\n3\r\nabc\r\n2;ext=1\r\nde\r\n0\r\n\r\n"
    )
    reply = _raw_exchange(fresh_http_server.port, request)
    head, _, body = reply.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 ")
    assert json.loads(body)["body"] == "abcde"
    assert fresh_http_server.requests[0]["body"] == b"abcde"


def test_repeated_headers_in_order(http_server: HTTPTestServer) -> None:
    resp, body = _get(http_server, "/headers")
    assert body == b"ok"
    assert resp.msg.get_all("X-Multi") == ["one", "two", "three"]
    assert resp.msg.get_all("Set-Cookie") == ["a=1", "b=2"]
    ordered = [(k, v) for k, v in resp.getheaders() if k.startswith(("X-", "Set-"))]
    assert ordered == [
        ("X-Multi", "one"),
        ("X-Multi", "two"),
        ("X-Multi", "three"),
        ("Set-Cookie", "a=1"),
        ("Set-Cookie", "b=2"),
        ("X-Single", "value"),
    ]


def test_bytes_exact_and_head(http_server: HTTPTestServer) -> None:
    resp, body = _get(http_server, "/bytes/300")
    assert body == bytes(i % 256 for i in range(300))
    assert resp.getheader("Content-Type") == "application/octet-stream"
    assert resp.getheader("Content-Length") == "300"

    resp, body = _get(http_server, "/bytes/300", method="HEAD")
    assert resp.status == 200 and body == b""
    assert resp.getheader("Content-Length") == "300"

    resp, body = _get(http_server, "/large/1000000")
    assert body == pattern_bytes(1_000_000)


def test_chunked_status_redirect_auth_404(http_server: HTTPTestServer) -> None:
    resp, body = _get(http_server, "/chunked")
    assert resp.getheader("Transfer-Encoding") == "chunked"
    assert body == b"hello, chunked world"

    resp, body = _get(http_server, "/status/418?reason=I%27m%20a%20teapot")
    assert (resp.status, resp.reason, body) == (418, "I'm a teapot", b"status 418")
    resp, body = _get(http_server, "/status/204")
    assert (resp.status, body, resp.getheader("Content-Length")) == (204, b"", None)

    resp, _ = _get(http_server, "/redirect/2")
    assert (resp.status, resp.getheader("Location")) == (302, "/redirect/1")
    assert _get(http_server, "/redirect/0")[1] == b"landed"

    resp, _ = _get(http_server, "/auth/basic")
    assert resp.status == 401
    assert resp.getheader("WWW-Authenticate") == 'Basic realm="test"'
    good = {"Authorization": "Basic dXNlcjpwYXNz"}  # user:pass
    assert _get(http_server, "/auth/basic", headers=good)[0].status == 200

    resp, body = _get(http_server, "/nope")
    assert (resp.status, body) == (404, b"not found")


def test_keep_alive_reuses_one_connection(fresh_http_server: HTTPTestServer) -> None:
    server = fresh_http_server
    conn = http.client.HTTPConnection(server.host, server.port, timeout=5)
    for _ in range(2):
        conn.request("GET", "/echo")
        resp = conn.getresponse()
        assert resp.status == 200
        resp.read()
    conn.close()
    assert server.connections == 1
    assert len(server.requests) == 2
    assert len({r["peer_port"] for r in server.requests}) == 1


def test_close_endpoint_closes_connection(http_server: HTTPTestServer) -> None:
    reply = _raw_exchange(http_server.port, b"GET /close HTTP/1.1\r\nHost: x\r\n\r\n")
    head, _, body = reply.partition(b"\r\n\r\n")
    assert b"\r\nConnection: close" in head
    assert body == b"bye"  # _raw_exchange returned, so the server closed


def test_delays_run_concurrently(http_server: HTTPTestServer) -> None:
    results: list[bytes] = []

    def fetch() -> None:
        results.append(_get(http_server, "/delay/300")[1])

    threads = [threading.Thread(target=fetch) for _ in range(3)]
    start = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == [b"delayed 300"] * 3
    assert time.monotonic() - start < 0.8


def test_abrupt_disconnects_are_quiet(
    fresh_http_server: HTTPTestServer, capfd: pytest.CaptureFixture[str]
) -> None:
    server = fresh_http_server
    # Half a request, then a reset in the middle of a large response.
    with socket.create_connection((server.host, server.port)) as sock:
        sock.sendall(b"POST /echo HTTP/1.1\r\nContent-Length: 10\r\n\r\nabc")
    sock = socket.create_connection((server.host, server.port))
    sock.sendall(b"GET /large/5000000 HTTP/1.1\r\nHost: x\r\n\r\n")
    sock.recv(1000)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()

    assert _get(server, "/echo")[0].status == 200
    time.sleep(0.2)  # let the aborted handler threads finish
    assert capfd.readouterr().err == ""
    assert list(server.errors) == []


# -- TLS --------------------------------------------------------------------


def test_https_with_ca(https_server: HTTPTestServer, certs: Certs) -> None:
    assert https_server.url.startswith("https://127.0.0.1:")
    resp, body = _get(https_server, "/bytes/10", context=_client_context(certs))
    assert body == bytes(range(10))


def test_https_bad_certs_fail_verification(
    https_servers: HTTPSServers,
    certs: Certs,
) -> None:
    for server in (https_servers["selfsigned"], https_servers["wronghost"]):
        with pytest.raises(ssl.SSLCertVerificationError):
            _get(server, "/echo", context=_client_context(certs))
    # The self-signed cert itself is a usable trust anchor (for pinning tests).
    pinned = ssl.create_default_context(cafile=str(certs.selfsigned_cert))
    assert _get(https_servers["selfsigned"], "/echo", context=pinned)[0].status == 200


@pytest.mark.parametrize("https_server", ["clientcert"], indirect=True)
def test_client_cert_required(https_server: HTTPTestServer, certs: Certs) -> None:
    # Under TLS 1.3 the server's rejection surfaces on the first read, so
    # accept any socket-level error rather than only a handshake failure.
    with pytest.raises(OSError):
        _get(https_server, "/echo", context=_client_context(certs))

    ctx = _client_context(certs)
    ctx.load_cert_chain(str(certs.client_cert), str(certs.client_key))
    assert _get(https_server, "/echo", context=ctx)[0].status == 200


def test_capath_verifies_server(https_server: HTTPTestServer, certs: Certs) -> None:
    assert any(p.name.endswith(".0") for p in Path(certs.capath).iterdir())
    ctx = ssl.create_default_context(capath=str(certs.capath))
    assert _get(https_server, "/echo", context=ctx)[0].status == 200


# -- RawServer --------------------------------------------------------------


def test_raw_reply_sends_exact_bytes(raw_server_factory: RawServerFactory) -> None:
    payload = b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\n\x00\xffz"
    server = raw_server_factory.reply(payload)
    request = b"GET /x HTTP/1.1\r\nHost: a\r\n\r\n"
    assert _raw_exchange(server.port, request) == payload
    assert server.connections == 1
    assert server.requests.wait_for(1) and server.requests[0] == request


def test_raw_handler_controls_timing(raw_server_factory: RawServerFactory) -> None:
    def handler(conn: socket.socket, request: bytes) -> None:
        conn.sendall(b"part1|")
        time.sleep(0.1)
        conn.sendall(request.split(b" ")[1])
        raise RuntimeError("swallowed by the server")

    server = raw_server_factory(handler)
    assert _raw_exchange(server.port, b"GET /path HTTP/1.1\r\n\r\n") == b"part1|/path"
