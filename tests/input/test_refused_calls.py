"""Calls that are refused whatever their arguments: any query on a closed
client (ClientClosed; the seed's http_async_query returns -1), and the
seed's http_async_query, which never raises on bad input but returns -1 and
logs the reason.  Nothing reaches the server on 127.0.0.1."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import pytest

import http_async_client as hac
from support.clients import MakeClient
from support.refusals import assert_nothing_sent
from support.servers import RawServer

LOGGER = "http_async_client"


# -------------------------------------------------------- closed client


def test_closed_client_query(sink: RawServer, make_client: MakeClient) -> None:
    """query() on a closed client is ClientClosed; nothing is sent."""
    client = make_client()
    client.close()
    assert client.closed
    with pytest.raises(hac.ClientClosed):
        client.query(f"{sink.url}/echo")
    with pytest.raises(hac.ClientClosed):
        client.query(f"{sink.url}/echo", b"body", method="PUT")
    assert client.stats()["requests"] == 0
    assert not sink.requests.wait_for(1, timeout=0.2) and sink.connections == 0
    client.close()  # idempotent


def test_closed_client_http_async_query(
    sink: RawServer, caplog: pytest.LogCaptureFixture
) -> None:
    """http_async_query() on a closed client returns -1 and logs why."""
    caplog.set_level(logging.ERROR, logger=LOGGER)
    with hac.Client() as client:
        pass
    assert client.http_async_query(f"{sink.url}/echo", lambda r: None) == -1
    errors = [r for r in caplog.records if r.name == LOGGER and r.levelno == logging.ERROR]
    assert len(errors) == 1 and "closed" in errors[0].getMessage()
    assert not sink.requests.wait_for(1, timeout=0.2) and sink.connections == 0


# ----------------------------------------------- http_async_query -> -1


@pytest.mark.parametrize(
    ("make_args", "reason"),
    [
        (lambda url: ("ftp://127.0.0.1/x", (lambda r: None,)), "scheme"),
        (lambda url: (f"{url}/echo x", (lambda r: None,)), "space or control character"),
        (lambda url: (f"{url}/echo\r\nX: 1", ("body", lambda r: None)), "control character"),
        (lambda url: (None, (lambda r: None,)), "URL must be str"),
        (lambda url: (f"{url}/echo", (12, lambda r: None)), "post_data"),
        (lambda url: (f"{url}/echo", ("NOT_REGISTERED",)), "NOT_REGISTERED"),
    ],
    ids=["scheme", "space", "crlf", "none-url", "post-data-type", "unknown-route"],
)
def test_http_async_query_returns_minus_one(
    client: hac.Client,
    sink: RawServer,
    caplog: pytest.LogCaptureFixture,
    make_args: Callable[[str], tuple[Any, tuple[Any, ...]]],
    reason: str,
) -> None:
    """The seed's function does not raise on bad input: it returns -1 and
    logs the reason at ERROR on the http_async_client logger."""
    caplog.set_level(logging.ERROR, logger=LOGGER)
    url, args = make_args(sink.url)
    assert client.http_async_query(url, *args) == -1
    errors = [r for r in caplog.records if r.name == LOGGER and r.levelno == logging.ERROR]
    assert len(errors) == 1, [r.getMessage() for r in caplog.records]
    assert reason in errors[0].getMessage()
    assert_nothing_sent(client, sink)


def test_http_async_query_minus_one_with_bad_state(
    client: hac.Client,
    sink: RawServer,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """With options prepared for it, a refused http_async_query still
    returns -1 (not 0/1) even when suspend was turned off."""
    caplog.set_level(logging.ERROR, logger=LOGGER)
    client.http_async_suspend(0)
    client.http_append_header("X-Prepared: 1")
    assert client.http_async_query("gopher://x", lambda r: None) == -1
    assert any(r.levelno == logging.ERROR for r in caplog.records)
    assert_nothing_sent(client, sink)
