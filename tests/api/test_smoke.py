"""First contact: one query of each kind against the real test server."""

from __future__ import annotations

import json

import http_async_client as hac


def test_get_echo(http_server):
    with hac.Client(connection_timeout=5000) as client:
        reply = client.query(f"{http_server.url}/echo").result(timeout=5)
    assert reply.ok and reply.err is None
    assert reply.status == 200 and reply.reason == "OK"
    data = json.loads(reply.body)
    assert data["method"] == "GET"
    assert reply.hdr("content-type") == "application/json"


def test_refused_is_a_failed_reply():
    with hac.Client() as client:
        reply = client.query("http://127.0.0.1:9/").result(timeout=5)
        stats = client.stats()
    assert not reply.ok
    assert "curl error 7" in reply.err
    assert stats["errors"] == 1 and stats["requests"] == 1
