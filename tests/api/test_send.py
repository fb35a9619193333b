"""xdata, ``http_async_send``/``http_async_send_xdata`` (never blocking),
PATCH and ``http_req["body"]`` (5.x and 6.2)."""

from __future__ import annotations

import json
import time

import http_async_client as hac
from support.clients import Fetch
from support.ports import free_port
from support.servers import HTTPTestServer

WAIT = 10.0  # bound of every single wait for a reply, s


class Opaque:
    """An arbitrary object carried as xdata."""

    def __init__(self, tag: str) -> None:
        self.tag = tag


def test_send_xdata_identity(client: hac.Client, http_server: HTTPTestServer) -> None:
    """http_async_send_xdata returns 1; the route sees the very object."""
    seen: list[hac.Reply] = []
    objs = [Opaque("a"), {"k": [1, 2]}, Opaque("c")]
    for obj in objs:
        assert client.http_async_send_xdata(f"{http_server.url}/echo", seen.append, obj) == 1
    deadline = time.monotonic() + WAIT
    while len(seen) < len(objs) and time.monotonic() < deadline:
        client.dispatch(timeout=5)
    assert len(seen) == len(objs)
    got = {id(r.xdata) for r in seen}
    assert got == {id(o) for o in objs}
    for r in seen:
        assert r.ok and r.status == 200
        assert any(r.xdata is o for o in objs)


def test_send_xdata_named_route_and_failure(client: hac.Client) -> None:
    """xdata comes back with a named route, also on a failed reply."""
    seen: list[hac.Reply] = []
    client.route("DONE", seen.append)
    obj = Opaque("refused")
    assert client.http_async_send_xdata(f"http://127.0.0.1:{free_port()}/", "DONE", obj) == 1
    assert client.dispatch(timeout=5) == 1
    assert len(seen) == 1 and not seen[0].ok
    assert seen[0].xdata is obj


def test_query_xdata_completions(client: hac.Client, http_server: HTTPTestServer) -> None:
    """query(xdata=...) and completions(): the reply carries the object."""
    obj = Opaque("q")
    h = client.query(f"{http_server.url}/echo", xdata=obj)
    replies = list(client.completions(timeout=WAIT))
    assert len(replies) == 1
    assert replies[0].id == h.id
    assert replies[0].xdata is obj
    assert client.query(f"{http_server.url}/echo").result(timeout=WAIT).xdata is None


def test_http_async_send_never_blocks(client: hac.Client, http_server: HTTPTestServer) -> None:
    """http_async_send returns 1 at once, even for a slow server."""
    seen: list[hac.Reply] = []
    start = time.monotonic()
    rc = client.http_async_send(f"{http_server.url}/delay/300", seen.append)
    elapsed = time.monotonic() - start
    assert rc == 1
    assert elapsed < 0.2
    assert seen == []
    assert client.dispatch(timeout=5) == 1
    assert seen[0].body == b"delayed 300"
    assert seen[0].xdata is None


def test_http_async_send_ignores_suspend(client: hac.Client, http_server: HTTPTestServer) -> None:
    """Even with http_async_suspend(1) set, http_async_send does not wait."""
    seen: list[hac.Reply] = []
    client.http_async_suspend(1)
    start = time.monotonic()
    assert client.http_async_send(f"{http_server.url}/delay/300", seen.append) == 1
    assert time.monotonic() - start < 0.2
    assert client.dispatch(timeout=5) == 1 and seen[0].ok


def test_http_async_send_refused(client: hac.Client) -> None:
    """A bad URL is refused before sending: -1."""
    assert client.http_async_send("not a url", lambda r: None) == -1
    assert client.http_async_send_xdata("", lambda r: None, object()) == -1


# ------------------------------------------------------- PATCH and body


def test_patch_with_body(fresh_http_server: HTTPTestServer, fetch: Fetch) -> None:
    """PATCH with a body reaches the server as such."""
    reply = fetch(f"{fresh_http_server.url}/echo", '{"a": 1}', method="PATCH")
    assert reply.ok and reply.status == 200
    echoed = json.loads(reply.body)
    assert (echoed["method"], echoed["body"]) == ("PATCH", '{"a": 1}')
    req = fresh_http_server.requests[0]
    assert (req["method"], req["body"]) == ("PATCH", b'{"a": 1}')


def test_http_req_body_with_send(client: hac.Client, fresh_http_server: HTTPTestServer) -> None:
    """http_req["body"] goes out as the POST body of http_async_send."""
    seen: list[hac.Reply] = []
    client.http_req["body"] = "payload=1"
    assert client.http_async_send(f"{fresh_http_server.url}/echo", seen.append) == 1
    assert client.dispatch(timeout=5) == 1
    echoed = json.loads(seen[0].body)
    assert (echoed["method"], echoed["body"]) == ("POST", "payload=1")
    # reset after the query: the next one is a GET without a body
    assert client.http_async_send(f"{fresh_http_server.url}/echo", seen.append) == 1
    assert client.dispatch(timeout=5) == 1
    assert json.loads(seen[1].body)["method"] == "GET"
    assert fresh_http_server.requests[1]["body"] == b""


def test_http_req_patch_body_xdata(client: hac.Client, fresh_http_server: HTTPTestServer) -> None:
    """http_req method PATCH + body with http_async_send_xdata."""
    seen: list[hac.Reply] = []
    obj = Opaque("patch")
    client.http_req["method"] = "patch"
    client.http_req["body"] = b"\x00\x01binary"
    assert client.http_async_send_xdata(f"{fresh_http_server.url}/echo", seen.append, obj) == 1
    assert client.dispatch(timeout=5) == 1
    assert seen[0].xdata is obj
    req = fresh_http_server.requests[0]
    assert (req["method"], req["body"]) == ("PATCH", b"\x00\x01binary")
