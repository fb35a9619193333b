"""Self-tests of support.proxies (HTTPProxy, Socks5Proxy) with the standard
library only: urllib's ProxyHandler, http.client and raw sockets."""

from __future__ import annotations

import base64
import http.client
import json
import socket
import ssl
import struct
import time
import urllib.error
import urllib.request

import pytest

from support.certs import Certs
from support.ports import free_port
from support.proxies import PROXY_PASSWORD, PROXY_USER, HTTPProxy, Socks5Proxy
from support.servers import HTTPSServers, HTTPTestServer, RawServerFactory, header, pattern_bytes

HOST = "127.0.0.1"
GOOD = "Basic " + base64.b64encode(f"{PROXY_USER}:{PROXY_PASSWORD}".encode()).decode()
BAD = "Basic " + base64.b64encode(f"{PROXY_USER}:nope".encode()).decode()


@pytest.fixture(autouse=True)
def _no_proxy_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    # urllib honours *_proxy/no_proxy from the environment; keep it out.
    for name in ("http_proxy", "https_proxy", "all_proxy", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.upper(), raising=False)


def _opener(proxy_url: str) -> urllib.request.OpenerDirector:
    handler = urllib.request.ProxyHandler({"http": proxy_url, "https": proxy_url})
    return urllib.request.build_opener(handler)


def _via(proxy: HTTPProxy) -> http.client.HTTPConnection:
    return http.client.HTTPConnection(HOST, proxy.port, timeout=5)


def _exchange(
    conn: http.client.HTTPConnection, method: str, url: str, **kw: object,
) -> tuple[http.client.HTTPResponse, bytes]:
    conn.request(method, url, **kw)  # type: ignore[arg-type]
    resp = conn.getresponse()
    return resp, resp.read()


# ------------------------------------------------------------- HTTP proxy


def test_urllib_get_is_relayed_in_origin_form(
    http_proxy: HTTPProxy, fresh_http_server: HTTPTestServer,
) -> None:
    url = f"{fresh_http_server.url}/echo?x=1"
    with _opener(http_proxy.url).open(url, timeout=5) as resp:
        echoed = json.loads(resp.read())
    assert echoed["path"] == "/echo?x=1"
    names = {name.lower() for name, _ in echoed["headers"]}
    assert "proxy-connection" not in names and "proxy-authorization" not in names
    assert header(fresh_http_server.requests[0], "Connection") == "close"
    (rec,) = http_proxy.requests
    assert (rec["method"], rec["target"], rec["version"]) == ("GET", url, "HTTP/1.1")
    assert rec["allowed"] and rec["status"] is None and rec["proxy_authorization"] is None
    assert ("Host", f"{HOST}:{fresh_http_server.port}") in rec["headers"]


def test_client_connection_kept_alive_across_framings(
    http_proxy: HTTPProxy, fresh_http_server: HTTPTestServer,
) -> None:
    base = fresh_http_server.url
    conn = _via(http_proxy)
    try:
        resp, body = _exchange(conn, "GET", f"{base}/bytes/100000")
        assert body == pattern_bytes(100000)
        resp, body = _exchange(conn, "GET", f"{base}/chunked")
        assert resp.getheader("Transfer-Encoding") == "chunked" and body == b"hello, chunked world"
        resp, body = _exchange(conn, "HEAD", f"{base}/bytes/10")
        assert resp.getheader("Content-Length") == "10" and body == b""
        resp, body = _exchange(conn, "POST", f"{base}/echo", body=b"abc")
        assert json.loads(body)["body"] == "abc"
        resp, body = _exchange(conn, "GET", f"{base}/status/404")
        assert resp.status == 404
    finally:
        conn.close()
    assert http_proxy.connections == 1  # one client connection for all five
    assert fresh_http_server.connections == 5  # a new upstream one each
    assert http_proxy.conns.records[0].requests == 5


def test_chunked_request_body_and_expect_100_continue(
    http_proxy: HTTPProxy, fresh_http_server: HTTPTestServer,
) -> None:
    with socket.create_connection((HOST, http_proxy.port), timeout=5) as sock:
        sock.sendall(
            f"POST {fresh_http_server.url}/echo HTTP/1.1\r\nHost: x\r\n"
            "Transfer-Encoding: chunked\r\nExpect: 100-continue\r\n\r\n".encode()
        )
        interim = b""
        while b"\r\n\r\n" not in interim:
            byte = sock.recv(1)  # byte by byte: nothing may be read past it
            assert byte, interim
            interim += byte
        assert interim == b"HTTP/1.1 100 Continue\r\n\r\n"
        sock.sendall(b"3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n")
        resp = http.client.HTTPResponse(sock)
        resp.begin()
        echoed = json.loads(resp.read())
    assert resp.status == 200 and echoed["body"] == "abcde"
    names = {name.lower() for name, _ in echoed["headers"]}
    assert "expect" not in names and "transfer-encoding" in names


def test_407_then_credentials_on_the_same_connection(
    auth_http_proxy: HTTPProxy, fresh_http_server: HTTPTestServer,
) -> None:
    url = f"{fresh_http_server.url}/echo"
    conn = _via(auth_http_proxy)
    try:
        resp, _ = _exchange(conn, "GET", url)
        assert resp.status == 407
        assert resp.getheader("Proxy-Authenticate") == 'Basic realm="proxy"'
        resp, _ = _exchange(conn, "GET", url, headers={"Proxy-Authorization": BAD})
        assert resp.status == 407
        resp, body = _exchange(conn, "GET", url, headers={"Proxy-Authorization": GOOD})
        assert resp.status == 200
    finally:
        conn.close()
    assert auth_http_proxy.connections == 1
    first, wrong, right = auth_http_proxy.requests
    assert (first["status"], first["proxy_authorization"]) == (407, None)
    assert (wrong["status"], wrong["proxy_authorization"]) == (407, (PROXY_USER, "nope"))
    assert (right["status"], right["proxy_authorization"]) == (None, (PROXY_USER, PROXY_PASSWORD))
    assert len(fresh_http_server.requests) == 1  # the refused ones never went upstream
    assert header(fresh_http_server.requests[0], "Proxy-Authorization") is None


def test_urllib_proxy_credentials(
    auth_http_proxy: HTTPProxy, fresh_http_server: HTTPTestServer,
) -> None:
    url = f"{fresh_http_server.url}/status/200"
    with pytest.raises(urllib.error.HTTPError) as refused:
        _opener(auth_http_proxy.url).open(url, timeout=5)
    assert refused.value.code == 407
    with_creds = f"http://{PROXY_USER}:{PROXY_PASSWORD}@{HOST}:{auth_http_proxy.port}"
    with _opener(with_creds).open(url, timeout=5) as resp:
        assert resp.status == 200


@pytest.mark.parametrize(
    "target", ["http://example.com/", "http://10.0.0.1:80/", "http://127.0.0.2/"]
)
def test_non_loopback_targets_get_403(http_proxy: HTTPProxy, target: str) -> None:
    conn = _via(http_proxy)
    try:
        resp, _ = _exchange(conn, "GET", target)
        assert resp.status == 403
        resp, _ = _exchange(conn, "CONNECT", target.split("/")[2].split(":")[0] + ":443")
        assert resp.status == 403
    finally:
        conn.close()
    assert [(r["allowed"], r["status"]) for r in http_proxy.requests] == [(False, 403)] * 2


def test_origin_form_gets_400_and_unreachable_502(http_proxy: HTTPProxy) -> None:
    conn = _via(http_proxy)
    try:
        resp, _ = _exchange(conn, "GET", f"http://{HOST}:{free_port()}/")
        assert resp.status == 502
    finally:
        conn.close()
    conn = _via(http_proxy)
    try:
        resp, _ = _exchange(conn, "GET", "/not-absolute")
        assert resp.status == 400 and resp.getheader("Connection") == "close"
    finally:
        conn.close()


def test_close_delimited_and_silent_targets(
    http_proxy: HTTPProxy, raw_server_factory: RawServerFactory,
) -> None:
    eof_body = raw_server_factory.reply(b"HTTP/1.1 200 OK\r\n\r\nuntil close")
    silent = raw_server_factory.reply(b"")
    conn = _via(http_proxy)
    try:
        resp, body = _exchange(conn, "GET", f"{eof_body.url}/")
        assert body == b"until close" and resp.getheader("Connection") == "close"
        resp, _ = _exchange(conn, "GET", f"{silent.url}/")  # http.client reconnects
        assert resp.status == 502 and resp.getheader("Connection") == "close"
        resp, _ = _exchange(conn, "GET", f"http://{HOST}:notaport/")
        assert resp.status == 400
    finally:
        conn.close()
    assert http_proxy.connections == 3


def test_client_connection_close_is_honoured(
    http_proxy: HTTPProxy, fresh_http_server: HTTPTestServer,
) -> None:
    with socket.create_connection((HOST, http_proxy.port), timeout=5) as sock:
        sock.sendall(
            f"GET {fresh_http_server.url}/chunked HTTP/1.1\r\n"
            "Host: x\r\nConnection: close\r\n\r\n".encode()
        )
        data = b""
        while chunk := sock.recv(65536):  # ends: the proxy closes
            data += chunk
    assert b"\r\nConnection: close\r\n" in data and data.endswith(b"0\r\n\r\n")


def test_hosts_mapping_reaches_loopback(
    http_proxy: HTTPProxy, fresh_http_server: HTTPTestServer,
) -> None:
    url = f"http://api.example.test:{fresh_http_server.port}/echo"
    with _opener(http_proxy.url).open(url, timeout=5) as resp:
        echoed = json.loads(resp.read())
    assert ["Host", f"api.example.test:{fresh_http_server.port}"] in echoed["headers"]
    assert http_proxy.requests[0]["target"] == url


def test_connect_tunnel_to_https(
    http_proxy: HTTPProxy, https_servers: HTTPSServers, certs: Certs,
) -> None:
    origin = https_servers["ca"]
    ctx = ssl.create_default_context(cafile=str(certs.ca_cert))
    conn = http.client.HTTPSConnection(HOST, http_proxy.port, timeout=5, context=ctx)
    conn.set_tunnel(HOST, origin.port)
    try:
        resp, body = _exchange(conn, "GET", "/status/201")
    finally:
        conn.close()
    assert resp.status == 201
    (rec,) = http_proxy.requests
    assert (rec["method"], rec["target"]) == ("CONNECT", f"{HOST}:{origin.port}")
    assert rec["status"] == 200


def test_connect_requires_credentials(
    auth_http_proxy: HTTPProxy, https_servers: HTTPSServers, certs: Certs,
) -> None:
    origin = https_servers["ca"]
    ctx = ssl.create_default_context(cafile=str(certs.ca_cert))
    for headers, ok in (({}, False), ({"Proxy-Authorization": GOOD}, True)):
        conn = http.client.HTTPSConnection(HOST, auth_http_proxy.port, timeout=5, context=ctx)
        conn.set_tunnel(HOST, origin.port, headers=headers)
        try:
            if ok:
                assert _exchange(conn, "GET", "/status/200")[0].status == 200
            else:
                with pytest.raises(OSError, match="407"):
                    _exchange(conn, "GET", "/status/200")
        finally:
            conn.close()
    assert [r["status"] for r in auth_http_proxy.requests] == [407, 200]


def test_close_ends_an_open_tunnel(fresh_http_server: HTTPTestServer) -> None:
    proxy = HTTPProxy()
    with socket.create_connection((HOST, proxy.port), timeout=5) as sock:
        sock.sendall(f"CONNECT {HOST}:{fresh_http_server.port} HTTP/1.1\r\n\r\n".encode())
        assert sock.recv(100).startswith(b"HTTP/1.1 200 Connection established")
        t0 = time.monotonic()
        proxy.close()
        assert sock.recv(100) == b""  # the tunnel was shut down...
        assert time.monotonic() - t0 < 3  # ...at once, not at an idle timeout


# ------------------------------------------------------------ SOCKS5


def _greet(proxy: Socks5Proxy, methods: bytes = b"\x00") -> tuple[socket.socket, int]:
    sock = socket.create_connection((HOST, proxy.port), timeout=5)
    sock.sendall(bytes([5, len(methods)]) + methods)
    ver, method = _recv_exact(sock, 2)
    assert ver == 5
    return sock, method


def _recv_exact(sock: socket.socket, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            raise ConnectionError(f"EOF after {data!r}")
        data += chunk
    return data


def _request(
    sock: socket.socket, atyp: int, addr: bytes, port: int, cmd: int = 1,
) -> tuple[int, str, int]:
    """Send a request; returns (reply code, bound address, bound port)."""
    if atyp == 3:
        addr = bytes([len(addr)]) + addr
    sock.sendall(bytes([5, cmd, 0, atyp]) + addr + struct.pack("!H", port))
    ver, rep, _, batyp = _recv_exact(sock, 4)
    assert ver == 5
    family, size = (socket.AF_INET6, 16) if batyp == 4 else (socket.AF_INET, 4)
    bound = socket.inet_ntop(family, _recv_exact(sock, size))
    (bport,) = struct.unpack("!H", _recv_exact(sock, 2))
    return rep, bound, bport


def _http_over(sock: socket.socket) -> bytes:
    sock.sendall(b"GET /status/200 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    out = b""
    while chunk := sock.recv(65536):
        out += chunk
    return out


def test_socks5_ipv4_connect_and_relay(
    socks5_proxy: Socks5Proxy, fresh_http_server: HTTPTestServer,
) -> None:
    sock, method = _greet(socks5_proxy)
    with sock:
        assert method == 0
        rep, bound, bport = _request(sock, 1, socket.inet_aton(HOST), fresh_http_server.port)
        assert (rep, bound) == (0, HOST) and bport > 0
        assert _http_over(sock).startswith(b"HTTP/1.1 200 ")
    (rec,) = socks5_proxy.requests
    assert rec == {
        "command": 1, "atyp": "ipv4", "host": HOST, "port": fresh_http_server.port,
        "user": None, "allowed": True, "reply": 0, "peer_port": rec["peer_port"],
    }
    assert socks5_proxy.handshakes[0]["methods"] == [0]


@pytest.mark.parametrize("name", ["localhost", "api.example.test", "API.Example.Test"])
def test_socks5_domain_names_are_recorded_as_sent(
    socks5_proxy: Socks5Proxy, fresh_http_server: HTTPTestServer, name: str,
) -> None:
    sock, _ = _greet(socks5_proxy)
    with sock:
        assert _request(sock, 3, name.encode(), fresh_http_server.port)[0] == 0
        assert _http_over(sock).startswith(b"HTTP/1.1 200 ")
    (rec,) = socks5_proxy.requests
    assert (rec["atyp"], rec["host"], rec["allowed"]) == ("domain", name, True)


@pytest.mark.parametrize(
    ("atyp", "addr"),
    [(3, b"example.com"), (1, socket.inet_aton("10.1.2.3")), (1, socket.inet_aton("127.0.0.2"))],
)
def test_socks5_refuses_other_targets(socks5_proxy: Socks5Proxy, atyp: int, addr: bytes) -> None:
    sock, _ = _greet(socks5_proxy)
    with sock:
        assert _request(sock, atyp, addr, 80)[0] == 0x02
    (rec,) = socks5_proxy.requests
    assert (rec["allowed"], rec["reply"]) == (False, 0x02)


def test_socks5_ipv6(socks5_proxy: Socks5Proxy) -> None:
    if not socket.has_ipv6:
        pytest.skip("no IPv6")
    try:
        listener = socket.create_server(("::1", 0), family=socket.AF_INET6)
    except OSError as exc:
        pytest.skip(f"cannot listen on ::1: {exc}")
    with listener:
        port = listener.getsockname()[1]
        sock, _ = _greet(socks5_proxy)
        with sock:
            rep, bound, _ = _request(sock, 4, socket.inet_pton(socket.AF_INET6, "::1"), port)
            assert (rep, bound) == (0, "::1")
            peer, _ = listener.accept()
            with peer:
                sock.sendall(b"ping")
                assert _recv_exact(peer, 4) == b"ping"
    closed = free_port()
    sock, _ = _greet(socks5_proxy)
    with sock:
        assert _request(sock, 4, socket.inet_pton(socket.AF_INET6, "::1"), closed)[0] == 0x05
    assert [(r["atyp"], r["host"]) for r in socks5_proxy.requests] == [("ipv6", "::1")] * 2


def test_socks5_bind_command_not_supported(socks5_proxy: Socks5Proxy) -> None:
    sock, _ = _greet(socks5_proxy)
    with sock:
        assert _request(sock, 1, socket.inet_aton(HOST), 80, cmd=2)[0] == 0x07


def test_socks5_username_password(
    auth_socks5_proxy: Socks5Proxy, fresh_http_server: HTTPTestServer,
) -> None:
    proxy = auth_socks5_proxy
    sock, method = _greet(proxy, b"\x00")
    with sock:
        assert method == 0xFF  # no-auth is not acceptable
        assert sock.recv(1) == b""
    for password, ok in (("nope", False), (PROXY_PASSWORD, True)):
        sock, method = _greet(proxy, b"\x00\x02")
        with sock:
            assert method == 2
            user, pw = PROXY_USER.encode(), password.encode()
            sock.sendall(bytes([1, len(user)]) + user + bytes([len(pw)]) + pw)
            assert _recv_exact(sock, 2) == (b"\x01\x00" if ok else b"\x01\x01")
            if not ok:
                assert sock.recv(1) == b""  # and the connection is closed
                continue
            assert _request(sock, 1, socket.inet_aton(HOST), fresh_http_server.port)[0] == 0
            assert _http_over(sock).startswith(b"HTTP/1.1 200 ")
    assert [s["auth_ok"] for s in proxy.handshakes] == [None, False, True]
    (rec,) = proxy.requests
    assert rec["user"] == PROXY_USER


def test_constructors_refuse_non_loopback_host_mappings() -> None:
    for cls in (HTTPProxy, Socks5Proxy):
        with pytest.raises(ValueError, match="loopback"):
            cls(hosts={"x.test": "192.0.2.1"})
