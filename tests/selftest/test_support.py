"""Self-tests of the support package beyond the servers: ports, fds, the
HTTPS servers by kind of certificate, issue_cert, NginxProcess, the
refusal checks and the shared client fixtures."""

from __future__ import annotations

import os
import socket
import ssl
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

import http_async_client as hac
from support.certs import Certs, issue_cert
from support.clients import Fetch
from support.fds import FdBaseline, kinds
from support.nginx import NginxError, NginxProcess, find_nginx
from support.ports import PortError, free_port, free_ports, port_open, wait_listening
from support.refusals import answer, assert_nothing_sent, header_names, split_request
from support.servers import HTTPSServers, HTTPTestServer, RawServerFactory

# ------------------------------------------------------------------- ports


def test_free_ports_are_distinct_and_bindable() -> None:
    ports = free_ports(8)
    assert len(set(ports)) == 8
    for port in ports:
        with socket.create_server(("127.0.0.1", port)):
            pass


def test_port_open_only_while_someone_listens() -> None:
    port = free_port()
    assert not port_open(port)
    with socket.create_server(("127.0.0.1", port)):
        assert port_open(port)
    assert not port_open(port)


def test_wait_listening_returns_once_listening() -> None:
    port = free_port()
    listening = threading.Event()

    def listen_later() -> None:
        time.sleep(0.2)
        with socket.create_server(("127.0.0.1", port)):
            listening.set()
            time.sleep(2)

    t = threading.Thread(target=listen_later, daemon=True)
    t.start()
    wait_listening([port], timeout=5)
    assert listening.is_set()
    t.join(timeout=5)


def test_wait_listening_gives_up() -> None:
    port = free_port()
    with pytest.raises(PortError, match=f"did not listen on \\[{port}\\]"):
        wait_listening([port], timeout=0.3)
    proc = subprocess.Popen([sys.executable, "-c", "raise SystemExit(3)"])
    try:
        with pytest.raises(PortError, match="exited with 3"):
            wait_listening([port], proc, timeout=10)
    finally:
        proc.wait(timeout=10)


# --------------------------------------------------------------------- fds


def test_fd_baseline_sees_new_fds_by_kind() -> None:
    base = FdBaseline(collect=True)
    r, w = os.pipe()
    sock = socket.socket()
    try:
        extra = base.excess()
        assert extra["pipe"] == 2 and extra["socket"] == 1, extra
        assert base.excess("socket") == {"socket": 1}
        assert kinds()["pipe"] >= 2
    finally:
        os.close(r)
        os.close(w)
        sock.close()
    assert not base.settle(seconds=1)
    assert base.settle_total(seconds=1) <= base.total
    base.assert_back(what="after closing them")


def test_fd_baseline_assert_back_reports_a_leak() -> None:
    base = FdBaseline()
    r, w = os.pipe()
    try:
        with pytest.raises(AssertionError, match="fds still open after the pipe: {'pipe': 2}"):
            base.assert_back(what="after the pipe", seconds=0.1)
    finally:
        os.close(r)
        os.close(w)


# ---------------------------------------------- HTTPS servers and certificates


def _verify(server: HTTPTestServer, certs: Certs, client_cert: bool = False) -> int:
    """HTTP status of GET /echo through the stdlib, trusting the test CA."""
    ctx = ssl.create_default_context(cafile=str(certs.ca_cert))
    if client_cert:
        ctx.load_cert_chain(str(certs.client_cert), str(certs.client_key))
    with socket.create_connection((server.host, server.port), timeout=5) as raw:
        with ctx.wrap_socket(raw, server_hostname=server.host) as tls:
            tls.sendall(b"GET /echo HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            data = b""
            while chunk := tls.recv(65536):
                data += chunk
    return int(data.split(b" ", 2)[1])


@pytest.mark.parametrize(
    ("https_server", "verdict"),
    [
        ("ca", "ok"),
        ("selfsigned", "self-signed certificate"),
        ("wronghost", "address mismatch"),
        ("expired", "certificate has expired"),
        ("clientcert", "needs a client certificate"),
    ],
    indirect=["https_server"],
)
def test_https_server_kinds(https_server: HTTPTestServer, certs: Certs, verdict: str) -> None:
    """Each kind of the parametrised https_server fixture serves the
    certificate its name says, as a stdlib client trusting the test CA sees."""
    assert https_server.url.startswith("https://127.0.0.1:")
    if verdict == "ok":
        assert _verify(https_server, certs) == 200
    elif verdict == "needs a client certificate":
        with pytest.raises(OSError):  # TLS 1.3: the refusal comes with the first read
            _verify(https_server, certs)
        assert _verify(https_server, certs, client_cert=True) == 200
    else:
        with pytest.raises(ssl.SSLCertVerificationError, match=verdict):
            _verify(https_server, certs)


def test_https_servers_start_each_kind_once(https_servers: HTTPSServers) -> None:
    assert set(HTTPSServers.KINDS) == {"ca", "selfsigned", "wronghost", "clientcert", "expired"}
    assert https_servers["selfsigned"] is https_servers["selfsigned"]
    assert https_servers["selfsigned"].port != https_servers["ca"].port
    with pytest.raises(ValueError, match="unknown kind"):
        https_servers["bogus"]


def test_issue_cert_for_any_subject_alt_name(certs: Certs, tmp_path: Path) -> None:
    """issue_cert: a CA-signed server certificate for the names given."""
    cert, key = issue_cert(certs, "lo2", "IP:127.0.0.2, DNS:lo2.test", tmp_path)
    assert (cert, key) == (tmp_path / "lo2.pem", tmp_path / "lo2.key")
    verify = subprocess.run(["openssl", "verify", "-CAfile", str(certs.ca_cert), str(cert)],
                            capture_output=True, text=True)
    assert verify.returncode == 0, verify.stdout + verify.stderr
    san = subprocess.run(["openssl", "x509", "-noout", "-ext", "subjectAltName", "-in", str(cert)],
                         capture_output=True, text=True).stdout
    assert "IP Address:127.0.0.2" in san and "DNS:lo2.test" in san
    ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER).load_cert_chain(cert, key)  # the key matches


# --------------------------------------------------------------- nginx


@pytest.fixture
def nginx_binary() -> str:
    binary = find_nginx()
    if binary is None:
        pytest.skip("nginx is not installed (apt-get install nginx-light)")
    return binary


def test_nginx_process_serves_then_stops(nginx_binary: str, tmp_path: Path) -> None:
    port = free_port()
    conf = (
        f"daemon off; master_process on; worker_processes 1; pid {tmp_path}/nginx.pid;\n"
        f"error_log {tmp_path}/error.log warn; events {{ worker_connections 64; }}\n"
        f"http {{ access_log off; client_body_temp_path {tmp_path}/tmp;\n"
        f"  server {{ listen 127.0.0.1:{port}; location / {{ return 200 \"hi\"; }} }} }}\n"
    )
    nginx = NginxProcess(tmp_path, nginx_binary)
    nginx.start(conf, [port])
    try:
        assert port_open(port)
        assert nginx.conf.read_text() == conf
    finally:
        nginx.stop()
    assert not port_open(port)
    nginx.stop()  # idempotent


def test_nginx_process_reports_a_bad_configuration(nginx_binary: str, tmp_path: Path) -> None:
    with pytest.raises(NginxError, match="nginx -t failed"):
        NginxProcess(tmp_path, nginx_binary).start("no_such_directive on;\n", [free_port()])


# ---------------------------------------------------------------- refusals


def test_assert_nothing_sent_notices_a_request(
    client: hac.Client, raw_server_factory: RawServerFactory
) -> None:
    sink = raw_server_factory(answer)
    assert client.query(f"{sink.url}/leaked").result(timeout=5).ok
    with pytest.raises(AssertionError):
        assert_nothing_sent(client, sink)


def test_request_head_helpers() -> None:
    raw = b"GET /p HTTP/1.1\r\nHost: x\r\nX-A: 1 \r\n\r\n"
    assert header_names(raw) == ["host", "x-a"]
    assert split_request(raw) == (b"GET /p HTTP/1.1", [(b"Host", b"x"), (b"X-A", b"1")])
    with pytest.raises(AssertionError, match="bytes after the request head"):
        split_request(raw + b"GET /second HTTP/1.1\r\n\r\n")


# ------------------------------------------------------------ client fixtures


def test_fetch_uses_the_tests_client(client: hac.Client, http_server: HTTPTestServer, fetch: Fetch) -> None:
    reply = fetch(f"{http_server.url}/echo", b"body", method="PUT")
    assert reply.ok and reply.json()["method"] == "PUT"
    assert client.stats()["requests"] == 1


def test_fetch_to_another_client(http_server: HTTPTestServer, fetch: Fetch) -> None:
    with hac.Client(connection_timeout=5000) as other:
        reply = fetch(f"{http_server.url}/delay/300", client=other, timeout=50, wait=5)
        assert reply.timed_out
        assert other.stats()["timeouts"] == 1
