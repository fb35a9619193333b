"""TLS: verification on by default, per-query switches, client certificates."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import http_async_client as hac
from support.certs import Certs
from support.clients import Fetch
from support.servers import HTTPTestServer


def assert_served(reply: hac.Reply) -> None:
    """The TLS exchange worked and /echo answered a GET."""
    assert reply.ok, reply.err
    assert reply.status == 200
    assert json.loads(reply.body)["method"] == "GET"


# ------------------------------------------------------------ CA verification


def test_ca_signed_server_needs_the_ca(https_server: HTTPTestServer, certs: Certs, fetch: Fetch) -> None:
    """Verification is on by default: unknown CA fails, tls_ca_path fixes it."""
    url = f"{https_server.url}/echo"
    with hac.Client(connection_timeout=5000) as client:
        assert client.params["tls_verify_peer"] == 1
        assert client.params["tls_verify_host"] == 2
        bad = fetch(url, client=client)
        assert not bad.ok and bad.status == 0
        assert bad.err and "certificate" in bad.err.lower()
        # per query, with the seed's function
        client.http_set_tls_ca_path(str(certs.capath))
        assert_served(fetch(url, client=client))
        # reset after that query
        assert not fetch(url, client=client).ok
        # per query, as a keyword
        assert_served(fetch(url, tls_ca_path=certs.capath, client=client))
    with hac.Client(connection_timeout=5000, tls_ca_path=certs.capath) as client:
        assert client.tls_ca_path == str(certs.capath)
        reply = fetch(url, client=client)
        assert_served(reply)
        assert reply.times["appconnect"] > 0


@pytest.mark.parametrize("https_server", ["selfsigned"], indirect=True)
def test_selfsigned_server(https_server: HTTPTestServer, certs: Certs, fetch: Fetch) -> None:
    """A self-signed server fails unless verification is switched off."""
    url = f"{https_server.url}/echo"
    with hac.Client(connection_timeout=5000, tls_ca_path=certs.capath) as client:
        bad = fetch(url, client=client)
        assert not bad.ok
        assert bad.err and "certificate" in bad.err.lower()
        client.tls_verify_peer(0)
        client.tls_verify_host(0)
        assert_served(fetch(url, client=client))
        client.http_req["all"] = None
        assert not fetch(url, client=client).ok  # the per-query switch was reset
    with hac.Client(
        connection_timeout=5000, tls_verify_peer=0, tls_verify_host=0
    ) as client:
        assert client.params["tls_verify_peer"] == 0
        assert client.params["tls_verify_host"] == 0
        assert_served(fetch(url, client=client))


@pytest.mark.parametrize("https_server", ["wronghost"], indirect=True)
def test_wronghost_server(https_server: HTTPTestServer, certs: Certs, fetch: Fetch) -> None:
    """A CA-signed cert for another name: ok only with host verification off."""
    url = f"{https_server.url}/echo"
    with hac.Client(
        connection_timeout=5000, tls_ca_path=certs.capath, tls_verify_host=0
    ) as client:
        assert_served(fetch(url, client=client))
    with hac.Client(connection_timeout=5000, tls_ca_path=certs.capath) as client:
        bad = fetch(url, client=client)
        assert not bad.ok
        assert bad.err
        err = bad.err.lower()
        assert "host" in err or "name" in err
        client.tls_verify_host(0)
        assert_served(fetch(url, client=client))


# ------------------------------------------------------------ client certificate


@pytest.mark.parametrize("https_server", ["clientcert"], indirect=True)
def test_client_cert_module_params(https_server: HTTPTestServer, certs: Certs, fetch: Fetch) -> None:
    """The server accepts the client certificate given as module parameters."""
    with hac.Client(
        connection_timeout=5000,
        tls_ca_path=certs.capath,
        tls_client_cert=certs.client_cert,
        tls_client_key=certs.client_key,
    ) as client:
        assert client.tls_client_cert == str(certs.client_cert)
        assert_served(fetch(f"{https_server.url}/echo", client=client))


@pytest.mark.parametrize("https_server", ["clientcert"], indirect=True)
def test_client_cert_per_query(https_server: HTTPTestServer, certs: Certs, fetch: Fetch) -> None:
    """Per-query client certificate; refused without one."""
    url = f"{https_server.url}/echo"
    with hac.Client(connection_timeout=5000, tls_ca_path=certs.capath) as client:
        client.http_set_tls_client_cert(str(certs.client_cert))
        client.http_set_tls_client_key(str(certs.client_key))
        assert_served(fetch(url, client=client))
        client.http_req["tls_client_cert"] = str(certs.client_cert)
        client.http_req["tls_client_key"] = str(certs.client_key)
        assert_served(fetch(url, client=client))
        assert_served(
            fetch(url, tls_client_cert=certs.client_cert, tls_client_key=certs.client_key, client=client)
        )
        # without a certificate the server refuses the connection
        bad = fetch(url, client=client)
        assert not bad.ok
        assert bad.err
        assert client.stats()["errors"] == 1


@pytest.mark.parametrize("https_server", ["clientcert"], indirect=True)
def test_client_cert_missing_file(
    https_server: HTTPTestServer, certs: Certs, tmp_path: Path, fetch: Fetch
) -> None:
    """A non-existent client cert path: ok False, err mentions the cert."""
    missing = tmp_path / "no-such-cert.pem"
    with hac.Client(
        connection_timeout=5000,
        tls_ca_path=certs.capath,
        tls_client_cert=missing,
        tls_client_key=certs.client_key,
    ) as client:
        bad = fetch(f"{https_server.url}/echo", client=client)
        stats = client.stats()
    assert not bad.ok and not bad.timed_out
    assert bad.err and "cert" in bad.err.lower()
    assert stats["errors"] == 1 and stats["requests"] == 1 and stats["replies"] == 0
    with hac.Client(connection_timeout=5000, tls_ca_path=certs.capath) as client:
        client.http_set_tls_client_cert(str(missing))
        client.http_set_tls_client_key(str(certs.client_key))
        bad = fetch(f"{https_server.url}/echo", client=client)
        assert not bad.ok
        assert bad.err and "cert" in bad.err.lower()
        assert client.stats()["errors"] == 1
