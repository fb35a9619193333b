"""Shared fixtures: test certificates and real servers on 127.0.0.1."""

from __future__ import annotations

import shutil
from collections.abc import Iterator

import pytest

from support.certs import Certs, make_certs, server_context
from support.nginx import Nginx, NginxError, find_nginx
from support.servers import HTTPTestServer, RawServerFactory


@pytest.fixture(scope="session")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Certs:
    """CA, server, client, self-signed and wrong-host certificates."""
    if shutil.which("openssl") is None:
        pytest.skip("the openssl command-line tool is not installed")
    return make_certs(tmp_path_factory.mktemp("certs"))


@pytest.fixture(scope="session")
def http_server() -> Iterator[HTTPTestServer]:
    """Plain HTTP server shared by the whole session (its logs accumulate)."""
    with HTTPTestServer() as server:
        yield server


@pytest.fixture
def fresh_http_server() -> Iterator[HTTPTestServer]:
    """Plain HTTP server private to one test, for asserting on its logs."""
    with HTTPTestServer() as server:
        yield server


@pytest.fixture(scope="session")
def https_server(certs: Certs) -> Iterator[HTTPTestServer]:
    """HTTPS server with a CA-signed cert for 127.0.0.1 and localhost."""
    ctx = server_context(certs.server_cert, certs.server_key)
    with HTTPTestServer(tls_context=ctx) as server:
        yield server


@pytest.fixture(scope="session")
def https_selfsigned_server(certs: Certs) -> Iterator[HTTPTestServer]:
    """HTTPS server whose self-signed cert is not issued by the test CA."""
    ctx = server_context(certs.selfsigned_cert, certs.selfsigned_key)
    with HTTPTestServer(tls_context=ctx) as server:
        yield server


@pytest.fixture(scope="session")
def https_wronghost_server(certs: Certs) -> Iterator[HTTPTestServer]:
    """HTTPS server with a CA-signed cert valid only for wrong.example."""
    ctx = server_context(certs.wronghost_cert, certs.wronghost_key)
    with HTTPTestServer(tls_context=ctx) as server:
        yield server


@pytest.fixture(scope="session")
def https_clientcert_server(certs: Certs) -> Iterator[HTTPTestServer]:
    """HTTPS server that requires a client certificate issued by the test CA."""
    ctx = server_context(
        certs.server_cert, certs.server_key, require_client_cert_ca=certs.ca_cert
    )
    with HTTPTestServer(tls_context=ctx) as server:
        yield server


@pytest.fixture
def raw_server_factory() -> Iterator[RawServerFactory]:
    """``factory(handler)`` / ``factory.reply(data)`` -> started RawServer."""
    factory = RawServerFactory()
    yield factory
    factory.close_all()



@pytest.fixture(scope="session")
def nginx(tmp_path_factory: pytest.TempPathFactory, certs: Certs) -> Iterator[Nginx]:
    """A private nginx: h2c (prior knowledge), HTTPS + ALPN h2, HTTP/1.1;
    every location answers 200 "ok"; the access log records $connection."""
    binary = find_nginx()
    if binary is None:
        pytest.skip("nginx is not installed (apt-get install nginx-light)")
    server = Nginx(tmp_path_factory.mktemp("nginx"), certs.server_cert, certs.server_key, binary)
    try:
        server.start()
    except NginxError:
        server.stop()
        raise
    try:
        yield server
    finally:
        server.stop()
