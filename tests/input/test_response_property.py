"""Property test of the response path (#17): whatever bytes a server sends
back, in whatever pieces and with whatever pauses before it closes, one
query gets exactly one reply within its deadline (+ a margin), and a reply
that says ``ok`` only reports what was really received.

Each example sends one response, either arbitrary bytes or a near-valid
HTTP/1.1 response built from strategies (interim 1xx heads, odd status
lines, Content-Length and chunked framing, truncations, trailing junk),
cut at arbitrary points with 0-20 ms between the pieces, then the server
closes.  The oracle reads what the server actually managed to send:

* ``reply.ok`` implies the bytes start with ``HTTP/`` and ``reply.status``
  is the code of the final head's status line (1xx heads other than 101
  are interim), which was sent whole;
* ``reply.body`` is no longer than what was sent after that head, and for
  an identity (not chunked) body it is a prefix of it.

Examples are derandomized (CI reproducible); ``HAC_PROP_RANDOM=1`` draws a
random seed instead, ``HAC_PROP_EXAMPLES=N`` sets the count, and
``HAC_TEST_SCALE`` (sanitizer runs) scales it down; ``HAC_PROP_STRICT=0``
accepts libcurl's 200 fallback that capture.c now refuses (see FALLBACK_STATUS).
"""

from __future__ import annotations

import os
import re
import socket
import threading
import time
from dataclasses import dataclass, field

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

import http_async_client as hac
from support.servers import RawServer, RawServerFactory

SCALE = float(os.environ.get("HAC_TEST_SCALE", "1"))
RANDOM = os.environ.get("HAC_PROP_RANDOM", "") not in ("", "0")
EXAMPLES = max(10, int(int(os.environ.get("HAC_PROP_EXAMPLES", "150")) * min(1.0, SCALE)))
DEADLINE_MS = 1500  # the client's total deadline per request
# allowed beyond the deadline: 1 s, more on a sanitizer build (SCALE < 1)
MARGIN_S = 1.0 if SCALE >= 1 else min(5.0, 1.0 / SCALE)
WAIT_S = DEADLINE_MS / 1000 + MARGIN_S + 5.0  # result() bound: a hang is measured, not waited out
HANDLER_WAIT_S = 5.0  # bound of the wait for the server to finish its script
MAX_PIECE_DELAY_MS = 20

# libcurl 7.88 also takes "HTTP/2 NNN" on an HTTP/1.1 connection, with
# that status (8.x reads it as 200, which the core refuses)
STATUS_LINE = re.compile(rb"HTTP/(?:1\.[0-9]|2) ([0-9]{3})[ \r\n]")
# libcurl (8.14) takes a first line that starts with "HTTP/" in any case but
# is not an HTTP/1.x status line ("http/", "HTTP/2 404" on an HTTP/1.1
# connection) for "HTTP/1.0 200"; this test found that the reply was then ok
# with a 200 never sent, and capture.c now fails it as a BAD_RESPONSE.  The
# oracle is strict; HAC_PROP_STRICT=0 accepts the old fallback (to compare).
STRICT = os.environ.get("HAC_PROP_STRICT", "1") not in ("", "0")
FALLBACK_STATUS = 200


# ------------------------------------------------------------- the server


@dataclass
class Script:
    """One example's response: pieces sent with a delay before each."""

    pieces: list[tuple[float, bytes]]
    sent: bytearray = field(default_factory=bytearray)  # what sendall() accepted
    done: threading.Event = field(default_factory=threading.Event)


class Stage:
    """The current example's script, played by the one server of the test
    on each connection it accepts (one per example: a fresh client)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._script: Script | None = None

    def set(self, script: Script) -> None:
        with self._lock:
            self._script = script

    def handler(self, conn: socket.socket, request: bytes) -> None:
        with self._lock:
            script, self._script = self._script, None  # played once
        if script is None:
            return
        try:
            for delay, piece in script.pieces:
                if delay:
                    time.sleep(delay)
                conn.sendall(piece)
                script.sent += piece
        except OSError:
            pass  # the client gave up: the rest was never sent
        finally:
            script.done.set()


# ------------------------------------------------------------- the oracle


@dataclass(frozen=True)
class Seen:
    """What the sent bytes allow an ``ok`` reply to report."""

    status: int | None  # code of the final head, or of the last whole status line
    body_at: int | None  # offset of the final head's body (head ended), else None
    chunked: bool  # the final head names a Transfer-Encoding


def read_heads(sent: bytes) -> Seen:
    """Walk the heads as an HTTP/1.x client does: each starts with a status
    line; a 1xx head (but 101) is interim and another head follows."""
    pos, last = 0, None
    while True:
        eol = sent.find(b"\n", pos)
        if eol < 0:
            return Seen(last, None, False)  # status line not sent whole
        match = STATUS_LINE.match(sent, pos, eol + 1)
        if match is not None:
            code = int(match.group(1))
        elif not STRICT and sent[pos:pos + 5].lower() == b"http/":
            code = FALLBACK_STATUS
        else:
            return Seen(last, None, False)
        last = code
        chunked, line_at = False, eol + 1
        while True:  # header lines up to an empty one
            end = sent.find(b"\n", line_at)
            if end < 0:
                return Seen(last, None, False)
            line = sent[line_at:end].rstrip(b"\r")
            line_at = end + 1
            if not line:
                break
            if line.lower().startswith(b"transfer-encoding:"):
                chunked = True
        if 100 <= code < 200 and code != 101:
            pos = line_at
            continue
        return Seen(code, line_at, chunked)


# ------------------------------------------------------------- strategies

EOLS = st.sampled_from([b"\r\n", b"\r\n", b"\r\n", b"\n"])
TOKEN = st.binary(min_size=0, max_size=12).filter(lambda b: b"\n" not in b)
TEXT = st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), max_size=16).map(
    str.encode
)


@st.composite
def status_lines(draw: st.DrawFn, interim: bool) -> bytes:
    version = draw(st.sampled_from([b"HTTP/1.1", b"HTTP/1.1", b"HTTP/1.0", b"HTTP/2", b"HTTP/9.9",
                                    b"HTTP/1.", b"http/1.1", b"HTTP/1.1 "]))
    if interim:
        code = draw(st.sampled_from([b"100", b"102", b"103", b"199"]))
    else:
        code = draw(st.one_of(
            st.sampled_from([b"200", b"200", b"204", b"206", b"301", b"304", b"404", b"500",
                             b"599"]),
            st.integers(0, 9999).map(lambda n: str(n).encode()),
            TOKEN,
        ))
    reason = draw(st.one_of(st.just(b" OK"), st.just(b""), st.just(b" "), TEXT.map(lambda t: b" " + t)))
    return version + b" " + code + reason


@st.composite
def header_lines(draw: st.DrawFn, body_len: int) -> list[bytes]:
    cl = st.one_of(
        st.just(body_len), st.integers(0, body_len + 10), st.just(-1), st.just(2**64),
    ).map(lambda n: b"Content-Length: %d" % n)
    pool = st.one_of(
        cl,
        st.sampled_from([b"Content-Length: abc", b"Content-Length: 1, 2", b"Content-Length:",
                         b"Transfer-Encoding: chunked", b"Transfer-Encoding: gzip, chunked",
                         b"Transfer-Encoding: identity", b"Connection: close",
                         b"Connection: keep-alive", b"Content-Encoding: gzip",
                         b" folded continuation", b"no colon here", b": empty name",
                         b"X-Nul: a\x00b", b"Location: /elsewhere"]),
        st.tuples(TEXT, TEXT).map(lambda t: b"X-" + t[0].replace(b":", b"") + b": " + t[1]),
        TOKEN,
    )
    return draw(st.lists(pool, max_size=6))


@st.composite
def chunked_bodies(draw: st.DrawFn) -> bytes:
    out = bytearray()
    for chunk in draw(st.lists(st.binary(max_size=40), max_size=4)):
        size = draw(st.one_of(st.just(b"%x" % len(chunk)), st.just(b"%X" % len(chunk)),
                              st.just(b"%x" % (len(chunk) + 3)), st.just(b"zz"),
                              st.just(b"%x;ext=1" % len(chunk)), st.just(b"f" * 20)))
        out += size + b"\r\n" + chunk + b"\r\n"
    out += draw(st.sampled_from([b"0\r\n\r\n", b"0\r\nTrailer: x\r\n\r\n", b"0\r\n", b""]))
    return bytes(out)


@st.composite
def near_valid(draw: st.DrawFn) -> bytes:
    """A near-valid HTTP/1.x response: interim heads, a final head with
    framing headers, a body (identity or chunked), maybe cut short or
    followed by junk."""
    eol = draw(EOLS)
    out = bytearray()
    for _ in range(draw(st.integers(0, 2))):
        out += draw(status_lines(True)) + eol
        out += b"".join(h + eol for h in draw(header_lines(0))) + eol
    if draw(st.booleans()):
        body = draw(chunked_bodies())
        headers = [b"Transfer-Encoding: chunked", *draw(header_lines(len(body)))]
    else:
        body = draw(st.binary(max_size=120))
        headers = draw(header_lines(len(body)))
    out += draw(status_lines(False)) + eol
    out += b"".join(h + eol for h in headers) + eol + body
    out += draw(st.sampled_from([b"", b"", b"HTTP/1.1 500 Later\r\n\r\n", b"junk"]))
    if draw(st.booleans()):
        del out[draw(st.integers(0, len(out))):]
    return bytes(out)


@st.composite
def scripts(draw: st.DrawFn) -> Script:
    data = draw(st.one_of(st.binary(max_size=300), near_valid(), near_valid()))
    cuts = sorted(set(draw(st.lists(st.integers(0, len(data)), max_size=6))))
    bounds = [0, *cuts, len(data)]
    pieces = [
        (draw(st.integers(0, MAX_PIECE_DELAY_MS)) / 1000, data[a:b])
        for a, b in zip(bounds, bounds[1:])
    ]
    return Script([p for p in pieces if p[1]] or [(0.0, b"")])


# ------------------------------------------------------------------ test


@settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=not RANDOM,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                           HealthCheck.data_too_large],
)
@given(script=scripts())
def test_any_response_one_reply_in_time(
    raw_server_factory: RawServerFactory, script: Script
) -> None:
    server: RawServer = stage_server(raw_server_factory)
    stage: Stage = getattr(server, "_prop_stage")
    stage.set(script)
    accepted = server.connections
    keys = ("requests", "replies", "errors", "timeouts", "cancelled")
    with hac.Client(connection_timeout=DEADLINE_MS) as client:
        before = client.stats()
        start = time.monotonic()
        reply = client.query(server.url + "/p").result(timeout=WAIT_S)
        elapsed = time.monotonic() - start
        after = client.stats()
        delta = {k: after[k] - before[k] for k in keys}
        assert after["inflight"] == 0
    assert script.done.wait(HANDLER_WAIT_S), "the server never finished its script"
    sent = bytes(script.sent)
    event("ok" if reply.ok else "timeout" if reply.timed_out else "error")  # --hypothesis-show-statistics
    what = f"sent={sent!r} reply ok={reply.ok} status={reply.status} err={reply.err!r}"
    assert elapsed <= DEADLINE_MS / 1000 + MARGIN_S, f"{elapsed:.2f} s; {what}"
    assert server.connections - accepted == 1, what
    assert delta["requests"] == 1 and delta["cancelled"] == 0, (delta, what)
    assert delta["replies"] + delta["errors"] + delta["timeouts"] == 1, (delta, what)
    assert (delta["replies"] == 1) == reply.ok, (delta, what)
    if not reply.ok:
        assert reply.err, what
        return
    assert sent.startswith(b"HTTP/") or not STRICT and sent[:5].lower() == b"http/", what
    seen = read_heads(sent)
    assert seen.body_at is not None, f"ok before a final head was sent whole; {what}"
    assert reply.status == seen.status, what
    rest = sent[seen.body_at:]
    assert len(reply.body) <= len(rest), f"body={reply.body!r}; {what}"
    if not seen.chunked:
        assert rest.startswith(reply.body), f"body={reply.body!r}; {what}"


_servers: dict[int, RawServer] = {}


def stage_server(factory: RawServerFactory) -> RawServer:
    """The test's one server (made on the first example, closed with the
    factory at teardown): each example stages its script on it."""
    server = _servers.get(id(factory))
    if server is None or server not in factory.servers:
        stage = Stage()
        server = factory(stage.handler, header_timeout=2.0)
        setattr(server, "_prop_stage", stage)
        _servers.clear()
        _servers[id(factory)] = server
    return server
