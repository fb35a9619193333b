"""Checking that bad input was refused before anything was sent.

The server is a fresh RawServer (the ``sink`` fixture of tests/input) that
records each request head and answers ``200`` with ``Connection: close``.
:func:`assert_nothing_sent` checks that the client's counters did not move
and the sink received nothing, then sends one valid query (the "probe")
and checks it is the only request the sink ever received: the client has
one worker, so anything wrongly queued before it would have arrived too.
"""

from __future__ import annotations

import socket
from collections.abc import Callable
from typing import Any

import pytest

import http_async_client as hac

from .servers import RawServer

__all__ = [
    "ALLOWED_METHODS",
    "COUNTERS",
    "WAIT",
    "answer",
    "assert_nothing_sent",
    "counters",
    "header_names",
    "refused",
    "show",
    "split_request",
]

WAIT = 5.0  # seconds: upper bound of every wait on a reply
COUNTERS = ("requests", "replies", "errors", "timeouts", "cancelled", "inflight", "queued")
ALLOWED_METHODS = "GET, POST, PUT, DELETE, PATCH, HEAD, OPTIONS"  # as InvalidMethod names them
PROBE = "/probe"
_OK_CLOSE = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"


def answer(conn: socket.socket, request: bytes) -> None:
    """RawServer handler: ``200``, no body, ``Connection: close``."""
    conn.sendall(_OK_CLOSE)


def counters(client: hac.Client) -> dict[str, int]:
    """The client's request counters (:data:`COUNTERS`)."""
    stats = client.stats()
    return {k: stats[k] for k in COUNTERS}


def assert_nothing_sent(
    client: hac.Client, sink: RawServer, before: dict[str, int] | None = None
) -> None:
    """The counters are still ``before`` (all zero: a fresh client, when not
    given) and the sink got nothing; then one valid query goes through and
    is the only request the sink ever received."""
    if before is None:
        before = dict.fromkeys(COUNTERS, 0)
    assert counters(client) == before
    assert sink.connections == 0 and len(sink.requests) == 0
    reply = client.query(f"{sink.url}{PROBE}").result(timeout=WAIT)
    assert reply.ok and reply.status == 200, reply.err
    assert counters(client)["requests"] == before["requests"] + 1
    assert sink.requests.wait_for(1, timeout=WAIT)
    assert sink.connections == 1 and len(sink.requests) == 1
    assert sink.requests[0].startswith(f"GET {PROBE} HTTP/1.1\r\n".encode()), sink.requests[0]


def refused(
    client: hac.Client, sink: RawServer, exc: type[BaseException], *calls: Callable[[], Any]
) -> None:
    """Each call raises ``exc`` (a UsageError), and nothing was sent."""
    before = counters(client)
    for call in calls:
        with pytest.raises(exc) as info:
            call()
        assert isinstance(info.value, hac.UsageError), type(info.value)
    assert_nothing_sent(client, sink, before)


def header_names(request: bytes) -> list[str]:
    """Lower-cased names of the header lines of a recorded request head."""
    head = request.partition(b"\r\n\r\n")[0].decode("latin-1")
    return [line.partition(":")[0].lower() for line in head.split("\r\n")[1:]]


def show(value: object) -> str:
    """A stable test id for a parameter value."""
    return f"{type(value).__name__}()" if type(value) is object else repr(value)


def split_request(raw: bytes) -> tuple[bytes, list[tuple[bytes, bytes]]]:
    """(request line, [(name, value)]) of exactly one request head, asserting
    no second request and no bare CR/LF inside a line."""
    head, sep, rest = raw.partition(b"\r\n\r\n")
    assert sep and rest == b"", f"bytes after the request head: {rest[:80]!r}"
    lines = head.split(b"\r\n")
    for line in lines:
        assert b"\n" not in line and b"\r" not in line, line
    fields: list[tuple[bytes, bytes]] = []
    for line in lines[1:]:
        name, colon, value = line.partition(b":")
        assert colon and name and name == name.strip(), f"malformed header line {line!r}"
        fields.append((name, value.strip(b" \t")))
    return lines[0], fields
