"""TLS: verification on by default, per-query switches, client certificates."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import http_async_client as hac
from support.certs import Certs
from support.servers import HTTPTestServer


def fetch(client: hac.Client, url: str, **options: Any) -> hac.Reply:
    """One query on ``client``; returns its reply."""
    return client.query(url, **options).result(timeout=10)


def assert_served(reply: hac.Reply) -> None:
    """The TLS exchange worked and /echo answered a GET."""
    assert reply.ok, reply.err
    assert reply.status == 200
    assert json.loads(reply.body)["method"] == "GET"


# ------------------------------------------------------------ CA verification


def test_ca_signed_server_needs_the_ca(https_server: HTTPTestServer, certs: Certs) -> None:
    """Verification is on by default: unknown CA fails, tls_ca_path fixes it."""
    url = f"{https_server.url}/echo"
    with hac.Client(connection_timeout=5000) as client:
        assert client.params["tls_verify_peer"] == 1
        assert client.params["tls_verify_host"] == 2
        bad = fetch(client, url)
        assert not bad.ok and bad.status == 0
        assert bad.err and "certificate" in bad.err.lower()
        # per query, with the seed's function
        client.http_set_tls_ca_path(str(certs.capath))
        assert_served(fetch(client, url))
        # reset after that query
        assert not fetch(client, url).ok
        # per query, as a keyword
        assert_served(fetch(client, url, tls_ca_path=certs.capath))
    with hac.Client(connection_timeout=5000, tls_ca_path=certs.capath) as client:
        assert client.tls_ca_path == str(certs.capath)
        reply = fetch(client, url)
        assert_served(reply)
        assert reply.times["appconnect"] > 0


def test_selfsigned_server(https_selfsigned_server: HTTPTestServer, certs: Certs) -> None:
    """A self-signed server fails unless verification is switched off."""
    url = f"{https_selfsigned_server.url}/echo"
    with hac.Client(connection_timeout=5000, tls_ca_path=certs.capath) as client:
        bad = fetch(client, url)
        assert not bad.ok
        assert bad.err and "certificate" in bad.err.lower()
        client.tls_verify_peer(0)
        client.tls_verify_host(0)
        assert_served(fetch(client, url))
        client.http_req["all"] = None
        assert not fetch(client, url).ok  # the per-query switch was reset
    with hac.Client(
        connection_timeout=5000, tls_verify_peer=0, tls_verify_host=0
    ) as client:
        assert client.params["tls_verify_peer"] == 0
        assert client.params["tls_verify_host"] == 0
        assert_served(fetch(client, url))


def test_wronghost_server(https_wronghost_server: HTTPTestServer, certs: Certs) -> None:
    """A CA-signed cert for another name: ok only with host verification off."""
    url = f"{https_wronghost_server.url}/echo"
    with hac.Client(
        connection_timeout=5000, tls_ca_path=certs.capath, tls_verify_host=0
    ) as client:
        assert_served(fetch(client, url))
    with hac.Client(connection_timeout=5000, tls_ca_path=certs.capath) as client:
        bad = fetch(client, url)
        assert not bad.ok
        assert bad.err
        err = bad.err.lower()
        assert "host" in err or "name" in err
        client.tls_verify_host(0)
        assert_served(fetch(client, url))


# ------------------------------------------------------------ client certificate


def test_client_cert_module_params(https_clientcert_server: HTTPTestServer, certs: Certs) -> None:
    """The server accepts the client certificate given as module parameters."""
    with hac.Client(
        connection_timeout=5000,
        tls_ca_path=certs.capath,
        tls_client_cert=certs.client_cert,
        tls_client_key=certs.client_key,
    ) as client:
        assert client.tls_client_cert == str(certs.client_cert)
        assert_served(fetch(client, f"{https_clientcert_server.url}/echo"))


def test_client_cert_per_query(https_clientcert_server: HTTPTestServer, certs: Certs) -> None:
    """Per-query client certificate; refused without one."""
    url = f"{https_clientcert_server.url}/echo"
    with hac.Client(connection_timeout=5000, tls_ca_path=certs.capath) as client:
        client.http_set_tls_client_cert(str(certs.client_cert))
        client.http_set_tls_client_key(str(certs.client_key))
        assert_served(fetch(client, url))
        client.http_req["tls_client_cert"] = str(certs.client_cert)
        client.http_req["tls_client_key"] = str(certs.client_key)
        assert_served(fetch(client, url))
        assert_served(
            fetch(client, url, tls_client_cert=certs.client_cert, tls_client_key=certs.client_key)
        )
        # without a certificate the server refuses the connection
        bad = fetch(client, url)
        assert not bad.ok
        assert bad.err
        assert client.stats()["errors"] == 1


def test_client_cert_missing_file(
    https_clientcert_server: HTTPTestServer, certs: Certs, tmp_path: Path
) -> None:
    """A non-existent client cert path: ok False, err mentions the cert."""
    missing = tmp_path / "no-such-cert.pem"
    with hac.Client(
        connection_timeout=5000,
        tls_ca_path=certs.capath,
        tls_client_cert=missing,
        tls_client_key=certs.client_key,
    ) as client:
        bad = fetch(client, f"{https_clientcert_server.url}/echo")
        stats = client.stats()
    assert not bad.ok and not bad.timed_out
    assert bad.err and "cert" in bad.err.lower()
    assert stats["errors"] == 1 and stats["requests"] == 1 and stats["replies"] == 0
    with hac.Client(connection_timeout=5000, tls_ca_path=certs.capath) as client:
        client.http_set_tls_client_cert(str(missing))
        client.http_set_tls_client_key(str(certs.client_key))
        bad = fetch(client, f"{https_clientcert_server.url}/echo")
        assert not bad.ok
        assert bad.err and "cert" in bad.err.lower()
        assert client.stats()["errors"] == 1
