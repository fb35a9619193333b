"""The #13 support servers driven by the curl command-line tool: libcurl's own
proxy, SOCKS, Unix-socket, low-speed and connect-timeout code against them,
before the client's options exist.  Skipped without ``curl``."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time

import pytest

from support.certs import Certs
from support.proxies import PROXY_PASSWORD, PROXY_USER, HTTPProxy, Socks5Proxy
from support.servers import HTTPSServers, HTTPTestServer
from support.transport_servers import (
    CountingHTTPServer,
    DripServer,
    FullBacklogListener,
    UnixHTTPServer,
)

CURL = shutil.which("curl")
pytestmark = pytest.mark.skipif(CURL is None, reason="the curl tool is not installed")
CREDS = f"{PROXY_USER}:{PROXY_PASSWORD}"


def _curl(*args: str, timeout: float = 15) -> subprocess.CompletedProcess[str]:
    # -q first: no ~/.curlrc; an environment without any *_proxy variable.
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": "/nonexistent"}
    assert CURL is not None
    return subprocess.run(
        [CURL, "-q", "-sS", "--max-time", "10", *args],
        capture_output=True, text=True, env=env, timeout=timeout,
    )


def _ok(*args: str) -> str:
    proc = _curl(*args)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def test_http_proxy_relays_and_keeps_the_connection(
    http_proxy: HTTPProxy, fresh_http_server: HTTPTestServer,
) -> None:
    base = fresh_http_server.url
    out = _ok("-x", http_proxy.url, "-d", "x" * 2000, "-H", "Expect: 100-continue", f"{base}/echo",
              "-:", "-x", http_proxy.url, f"{base}/echo", f"{base}/chunked")
    posted, got, chunked = out.replace("}{", "}\n{").replace("}hello", "}\nhello").split("\n")
    assert json.loads(posted)["body_len"] == 2000 and json.loads(got)["method"] == "GET"
    assert chunked == "hello, chunked world"
    assert http_proxy.connections == 1  # libcurl reused the proxy connection
    assert [r["method"] for r in http_proxy.requests] == ["POST", "GET", "GET"]


def test_http_proxy_auth(auth_http_proxy: HTTPProxy, fresh_http_server: HTTPTestServer) -> None:
    url = f"{fresh_http_server.url}/status/200"
    assert _ok("-x", auth_http_proxy.url, "-o", "/dev/null", "-w", "%{http_code}", url) == "407"
    code = _ok("-x", auth_http_proxy.url, "-U", CREDS, "-o", "/dev/null", "-w", "%{http_code}", url)
    assert code == "200"
    # anyauth: libcurl asks without credentials, reads the 407's method, asks again
    # on the same connection.
    auth_http_proxy.requests.clear()
    before = auth_http_proxy.connections
    _ok("-x", auth_http_proxy.url, "-U", CREDS, "--proxy-anyauth", url)
    assert [r["status"] for r in auth_http_proxy.requests] == [407, None]
    assert auth_http_proxy.connections == before + 1


def test_https_through_connect(
    auth_http_proxy: HTTPProxy, https_servers: HTTPSServers, certs: Certs,
) -> None:
    origin = https_servers["ca"]
    out = _ok("-x", auth_http_proxy.url, "-U", CREDS, "--cacert", str(certs.ca_cert),
              f"{origin.url}/status/200", f"{origin.url}/status/200")
    assert out == "status 200status 200"
    (rec,) = auth_http_proxy.requests  # one tunnel, reused
    assert (rec["method"], rec["target"]) == ("CONNECT", f"127.0.0.1:{origin.port}")
    assert rec["status"] == 200
    assert rec["proxy_authorization"] == (PROXY_USER, PROXY_PASSWORD)


def test_socks5_and_socks5h(socks5_proxy: Socks5Proxy, fresh_http_server: HTTPTestServer) -> None:
    port = fresh_http_server.port
    assert _ok("-x", socks5_proxy.url, f"http://127.0.0.1:{port}/status/200") == "status 200"
    out = _ok("-x", socks5_proxy.url_h, f"http://api.example.test:{port}/status/200")
    assert out == "status 200"
    assert [(r["atyp"], r["host"], r["port"]) for r in socks5_proxy.requests] == [
        ("ipv4", "127.0.0.1", port), ("domain", "api.example.test", port),
    ]
    proc = _curl("-x", socks5_proxy.url_h, "http://example.com/")
    assert proc.returncode == 97  # CURLE_PROXY: the SOCKS server refused
    assert socks5_proxy.requests[-1]["allowed"] is False


def test_socks5_auth(auth_socks5_proxy: Socks5Proxy, fresh_http_server: HTTPTestServer) -> None:
    proxy = f"socks5h://{CREDS}@127.0.0.1:{auth_socks5_proxy.port}"
    assert _ok("-x", proxy, f"http://localhost:{fresh_http_server.port}/status/200") == "status 200"
    assert auth_socks5_proxy.requests[0]["user"] == PROXY_USER
    no_credentials = _curl("-x", auth_socks5_proxy.url, fresh_http_server.url)
    assert no_credentials.returncode != 0


def test_unix_socket(unix_http_server: UnixHTTPServer) -> None:
    out = _ok("--unix-socket", unix_http_server.path, "http://localhost/a", "http://localhost/b")
    assert out == "unix:GET /aunix:GET /b"
    assert [r["host"] for r in unix_http_server.requests] == ["localhost", "localhost"]
    assert unix_http_server.connections == 1


@pytest.mark.parametrize("mode", ["drip", "stall"])
def test_low_speed_limit_aborts(mode: str) -> None:
    with DripServer(size=10, interval=1.0, mode=mode) as server:  # type: ignore[arg-type]
        t0 = time.monotonic()
        proc = _curl("--speed-limit", "100", "--speed-time", "1", server.url)
        elapsed = time.monotonic() - t0
        assert proc.returncode == 28, proc.stderr  # CURLE_OPERATION_TIMEDOUT
        assert 0.9 < elapsed < 4, elapsed
        assert server.outcomes.wait_for(1, timeout=3)
    assert server.outcomes[0]["client_closed"] and not server.outcomes[0]["complete"]


def test_fast_enough_drip_completes() -> None:
    with DripServer(size=2000, interval=0.05, chunk=100) as server:  # ~2000 B/s for 1 s
        proc = _curl("--speed-limit", "500", "--speed-time", "1", "-o", "/dev/null", server.url)
        assert proc.returncode == 0, proc.stderr
        assert server.outcomes.wait_for(1, timeout=3) and server.outcomes[0]["complete"]


def test_connect_timeout_on_full_backlog(full_backlog: FullBacklogListener) -> None:
    t0 = time.monotonic()
    proc = _curl("--connect-timeout", "1", full_backlog.url)
    elapsed = time.monotonic() - t0
    assert proc.returncode == 28, proc.stderr  # timed out, not refused (7)
    assert 0.9 < elapsed < 3, elapsed


def test_parallel_connections_are_counted(counting_http_server: CountingHTTPServer) -> None:
    urls = [f"{counting_http_server.url}/delay/400"] * 4
    _ok("--parallel", "--parallel-immediate", "--parallel-max", "4",
        *[a for u in urls for a in ("-o", "/dev/null", u)])
    assert counting_http_server.conns.max_active == 4
    assert counting_http_server.conns.total == 4
