"""Shared fixtures: test certificates, real servers on 127.0.0.1, clients
closed at teardown, a one-call fetch and an open-fd baseline."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from typing import Any

import pytest

import http_async_client as hac
from support.certs import Certs, make_certs
from support.clients import Fetch, MakeClient
from support.fds import FdBaseline
from support.netns import available as netns_available
from support.nginx import Nginx, NginxError, find_nginx
from support.proxies import PROXY_PASSWORD, PROXY_USER, TEST_HOSTS, HTTPProxy, Socks5Proxy
from support.servers import HTTPSServers, HTTPTestServer, RawServerFactory
from support.transport_servers import (
    CountingHTTPServer,
    DripServer,
    FullBacklogListener,
    UnixHTTPServer,
)

CLIENT_TIMEOUT_MS = 8000  # connection_timeout of the `client` fixture: generous on a loaded machine
FETCH_WAIT_S = 10.0  # fetch(): bound of the wait for the reply


# ------------------------------------------------------------ certificates


@pytest.fixture(scope="session")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Certs:
    """CA, server, client, self-signed and wrong-host certificates."""
    if shutil.which("openssl") is None:
        pytest.skip("the openssl command-line tool is not installed")
    return make_certs(tmp_path_factory.mktemp("certs"))


# ----------------------------------------------------------------- servers


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
def https_servers(certs: Certs) -> Iterator[HTTPSServers]:
    """Every kind of HTTPS server (:class:`HTTPSServers`), for a test that
    needs several at once."""
    servers = HTTPSServers(certs)
    yield servers
    servers.close()


@pytest.fixture
def https_server(request: pytest.FixtureRequest, https_servers: HTTPSServers) -> HTTPTestServer:
    """An HTTPS server shared by the session; its certificate is CA-signed
    for 127.0.0.1 and localhost ("ca"), unless the test picks another kind
    (see :class:`HTTPSServers`)::

        @pytest.mark.parametrize("https_server", ["selfsigned"], indirect=True)
    """
    return https_servers[getattr(request, "param", "ca")]


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


# ------------------------------------------- transport controls (#13)
# Each is private to its test, so its logs hold that test's traffic only.


@pytest.fixture
def http_proxy() -> Iterator[HTTPProxy]:
    """Forward HTTP proxy (relay + CONNECT), no auth; ``api.example.test``
    (TEST_HOSTS) is taken as 127.0.0.1."""
    with HTTPProxy(hosts=TEST_HOSTS) as proxy:
        yield proxy
    assert not proxy.errors, list(proxy.errors)  # bugs of the server, not client aborts


@pytest.fixture
def auth_http_proxy() -> Iterator[HTTPProxy]:
    """The same, requiring Basic PROXY_USER:PROXY_PASSWORD (else 407)."""
    with HTTPProxy(auth=(PROXY_USER, PROXY_PASSWORD), hosts=TEST_HOSTS) as proxy:
        yield proxy
    assert not proxy.errors, list(proxy.errors)  # bugs of the server, not client aborts


@pytest.fixture
def socks5_proxy() -> Iterator[Socks5Proxy]:
    """SOCKS5 server (``.url`` socks5://, ``.url_h`` socks5h://), no auth;
    resolves ``localhost`` and TEST_HOSTS only."""
    with Socks5Proxy(hosts=TEST_HOSTS) as proxy:
        yield proxy
    assert not proxy.errors, list(proxy.errors)  # bugs of the server, not client aborts


@pytest.fixture
def auth_socks5_proxy() -> Iterator[Socks5Proxy]:
    """The same, requiring username/password PROXY_USER/PROXY_PASSWORD."""
    with Socks5Proxy(auth=(PROXY_USER, PROXY_PASSWORD), hosts=TEST_HOSTS) as proxy:
        yield proxy
    assert not proxy.errors, list(proxy.errors)  # bugs of the server, not client aborts


@pytest.fixture
def unix_http_server() -> Iterator[UnixHTTPServer]:
    """HTTP/1.1 server on a Unix socket (``.path``), answering ``unix:<METHOD> <path>``."""
    with UnixHTTPServer() as server:
        yield server
    assert not server.errors, list(server.errors)


@pytest.fixture
def drip_server() -> Iterator[DripServer]:
    """Content-Length 10, one body byte per second (low-speed tests)."""
    with DripServer(size=10, interval=1.0) as server:
        yield server
    assert not server.errors, list(server.errors)


@pytest.fixture
def stall_server() -> Iterator[DripServer]:
    """Content-Length 10, the head and then nothing."""
    with DripServer(size=10, mode="stall") as server:
        yield server
    assert not server.errors, list(server.errors)


@pytest.fixture
def full_backlog() -> Iterator[FullBacklogListener]:
    """A 127.0.0.1 port where connect() hangs (accept queue full)."""
    with FullBacklogListener() as listener:
        yield listener


@pytest.fixture
def counting_http_server() -> Iterator[CountingHTTPServer]:
    """HTTPTestServer with ``.conns`` (open/max_open/max_active, per-connection times)."""
    with CountingHTTPServer() as server:
        yield server


# ----------------------------------------------------------------- clients


@pytest.fixture
def make_client() -> Iterator[MakeClient]:
    """``make_client(**params)`` -> a new Client; all of them are closed at
    teardown."""
    made: list[hac.Client] = []

    def make(**params: Any) -> hac.Client:
        made.append(hac.Client(**params))
        return made[-1]

    yield make
    for client in made:
        client.close()


@pytest.fixture
def client(make_client: MakeClient) -> hac.Client:
    """A Client with a generous deadline (CLIENT_TIMEOUT_MS), closed at teardown."""
    return make_client(connection_timeout=CLIENT_TIMEOUT_MS)


@pytest.fixture
def fetch(request: pytest.FixtureRequest) -> Fetch:
    """``fetch(url, *args, client=None, wait=FETCH_WAIT_S, **options)``: one
    query and its reply.  It goes to ``client`` when given, else to the
    test's ``client`` fixture (the same Client the test sees)."""

    def fetch(
        url: Any, *args: Any, client: hac.Client | None = None, wait: float = FETCH_WAIT_S,
        **options: Any,
    ) -> hac.Reply:
        target: hac.Client = client if client is not None else request.getfixturevalue("client")
        return target.query(url, *args, **options).result(timeout=wait)

    return fetch


# --------------------------------------------------------------------- fds


@pytest.fixture
def open_fds() -> FdBaseline:
    """This process's open fds when the test starts, after a garbage
    collection: ``open_fds.assert_back()``, ``.settle()``, ``.total`` (see
    support.fds).  Request it after the fixtures whose fds belong in the
    baseline (fixtures are set up in the order the test names them)."""
    return FdBaseline(collect=True)


# ------------------------------------------------------------ the fault rig


def pytest_runtest_setup(item: pytest.Item) -> None:
    """Tests marked ``netns`` need the namespace rig: skipped, with the
    reason, only where a namespace host cannot be made (not root, no nft)."""
    if item.get_closest_marker("netns") is not None:
        reason = netns_available()
        if reason is not None:
            pytest.skip(reason)
