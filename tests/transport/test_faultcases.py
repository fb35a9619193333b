"""Fault cases of issue 17 on the namespace rig: random loss, black holes,
resets after K bytes, the server's host vanishing under load; HTTP/1.1,
HTTPS and HTTP/2 (h2 over TLS, h2c).  Each checks the typed outcome, that
every request got exactly one reply, the client's counters and that fds
and threads are back to their baseline once the client is closed.
Figures go to the junit properties (``record_property``) and stdout (-s).
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator
from typing import Any
from pathlib import Path

import pytest

import http_async_client as hac
from support.certs import Certs
from support.faultrun import Baseline, check_counters, percentile, run_paced, summary
from support.faults import Faults
from support.netns import ServerHost
from support.nsservers import H1Server, NsNginx, issue_ip_cert

pytestmark = pytest.mark.netns

Record = Callable[[str, object], None]
CONN_ERR = re.compile(r"reset|connect|recv failure|send failure|HTTP/2|stream", re.I)
MIB = 1024 * 1024


@pytest.fixture
def baseline() -> Iterator[Baseline]:
    """fds and threads before the case, checked after everything it made
    (client, servers, namespace) is gone."""
    b = Baseline()
    yield b
    b.check()


@pytest.fixture
def host(baseline: Baseline) -> Iterator[ServerHost]:
    with ServerHost() as h:
        yield h


@pytest.fixture
def faults(host: ServerHost) -> Iterator[Faults]:
    f = Faults(host)
    try:
        yield f
    finally:
        f.close()


def _nginx(host: ServerHost, tmp_path: Path, certs: Certs,
           upstream: str | None = None) -> NsNginx:
    cert, key = issue_ip_cert(certs, host.ip, tmp_path / "pki")
    ngx = NsNginx(host, tmp_path / "nginx", cert, key, upstream=upstream,
                  h2c_port=8082, tls1_port=8444)
    ngx.start()
    return ngx


def _proto(ngx: NsNginx, proto: str) -> tuple[str, int, dict[str, Any]]:
    """URL, port and query options of ``proto`` on ``ngx``: HTTPS/1.1
    (no ALPN h2), HTTP/2 over TLS, h2c with prior knowledge."""
    base, port, opts = {
        "https1": (ngx.tls1_url, ngx.tls1_port, {}),
        "h2": (ngx.tls_url, ngx.tls_port, {}),
        "h2c": (ngx.h2c_url, ngx.h2c_port, {"http_version": 2}),
    }[proto]
    assert port is not None
    return base, port, opts


def _note(record: Record, name: str, value: object) -> None:
    record(name, value)
    print(f"{name} = {value}")


# ------------------------------------------------------------ random loss

LOSS_N = 2000
LOSS_DEADLINE_MS = 3000


# a reset during the TLS handshake: seen once in 4 runs of the HTTPS/1.1
# case on libcurl 8.22 (curl 35, "Recv failure: Connection reset by peer");
# the request never went out, and the reply says so
HANDSHAKE_RESET = re.compile(r"SSL connect error.*reset", re.I)


def _loss_run(
    client: hac.Client, base: str, n: int, opts: dict[str, Any], tls: bool = False,
) -> tuple[list[hac.Reply], list[str], float]:
    """n mixed queries (every third a POST) under the active loss; returns
    the replies in order, their targets and the p99 (ms) of the ok ones.
    With ``tls``, a reset during the handshake is also a clean outcome."""
    targets = [f"/{'post' if i % 3 == 0 else 'get'}/{i}" for i in range(n)]

    def make(i: int) -> hac.QueryHandle:
        body = b"payload" if i % 3 == 0 else None
        h: hac.QueryHandle = client.query(base + targets[i], body, timeout=LOSS_DEADLINE_MS,
                                          **opts)
        return h

    run = run_paced(client, make, n, window=64, limit_s=60)
    assert not run.duplicates, f"ids answered twice: {run.duplicates[:5]}"
    assert not run.missing, f"{len(run.missing)}/{n} replies never came (lost)"
    assert run.elapsed < 60
    replies = run.replies
    bad = [r for r in replies if not r.ok and not r.timed_out
           and not (tls and HANDSHAKE_RESET.search(r.err or ""))]
    assert not bad, f"neither ok nor a deadline miss: {summary(bad)}"
    for r in replies:
        if r.timed_out:
            with pytest.raises(hac.TransferTimeout):
                r.raise_for_error()
        elif r.ok:
            assert r.status == 200 and r.body in (b"ok", b"posted"), (r.status, r.body)
    p99 = percentile((t.took * 1000 for t in run.items if t.reply and t.reply.ok), 0.99)
    return replies, targets, p99


def _check_once(replies: list[hac.Reply], targets: list[str], seen: dict[str, int]) -> None:
    """Each request executed at most once; each ok one exactly once."""
    problems = [f"{t} executed {seen.get(t, 0)} times" for t in targets if seen.get(t, 0) > 1]
    problems += [f"{t} ok but executed {seen.get(t, 0)} times"
                 for r, t in zip(replies, targets) if r.ok and seen.get(t, 0) != 1]
    assert not problems, "; ".join(problems[:10])


def test_loss_h1(host: ServerHost, faults: Faults, tmp_path: Path, baseline: Baseline,
                 record_property: Record) -> None:
    """5% loss both ways, 2,000 GETs/POSTs over HTTP/1.1 keep-alive with a
    3 s deadline: each reply ok or a deadline miss, none lost or twice."""
    srv = H1Server(host, tmp_path)
    srv.start()
    with hac.Client(workers=1, connection_timeout=LOSS_DEADLINE_MS, max_connections=64) as client:
        with faults.loss(5, srv.port):
            replies, targets, p99 = _loss_run(client, srv.url, LOSS_N, {})
        time.sleep(0.3)  # a late duplicate would still be logged
        seen: dict[str, int] = {}
        for m in ("GET", "POST"):
            seen.update(srv.count_by_target(m))
        _check_once(replies, targets, seen)
        check_counters(client, LOSS_N)
    misses = sum(r.timed_out for r in replies)
    _note(record_property, "loss_h1_p99_ms", round(p99, 1))
    _note(record_property, "loss_h1_deadline_misses", misses)


@pytest.mark.parametrize("proto", ["https1", "h2", "h2c"])
def test_loss_tls_and_h2(host: ServerHost, faults: Faults, tmp_path: Path, certs: Certs,
                         baseline: Baseline, record_property: Record, proto: str) -> None:
    """The loss case over HTTPS/1.1, HTTP/2 over TLS and h2c (nginx): 600
    mixed queries each (HTTP/2: a few connections carrying many streams)."""
    n = 600
    if proto == "h2c" and int(hac.curl_version().split(".")[0]) < 8:
        # libcurl 7.88's h2c layer fails POST streams under loss with curl
        # error 92 (CONNECTION_LOST_AFTER_SEND) although nginx executed and
        # answered them (35 of 600, each once, 2026-12-03): a 7.88 bug the
        # core reports safely (never re-sent); the 8.x runs check this case
        pytest.skip("h2c under loss on libcurl 7.88: HTTP/2 stream errors (curl 92)")
    ngx = _nginx(host, tmp_path, certs)
    base, port, opts = _proto(ngx, proto)
    with hac.Client(workers=1, connection_timeout=LOSS_DEADLINE_MS, max_connections=64,
                    tls_ca_path=certs.capath) as client:
        with faults.loss(5, port):
            replies, targets, p99 = _loss_run(client, base, n, opts, tls=proto != "h2c")
        want = "1.1" if proto == "https1" else "2"
        assert {r.http_version for r in replies if r.ok} <= {want}
        lines = ngx.wait_log("/", sum(r.ok for r in replies), timeout=5)
        seen: dict[str, int] = {}
        for ln in lines:
            seen[ln.uri] = seen.get(ln.uri, 0) + 1
        _check_once(replies, targets, seen)
        # a request whose handshake was reset never reached nginx
        reset = [t for r, t in zip(replies, targets) if not r.ok and not r.timed_out]
        assert not [t for t in reset if seen.get(t)], reset
        check_counters(client, n)
    _note(record_property, f"loss_{proto}_p99_ms", round(p99, 1))
    _note(record_property, f"loss_{proto}_deadline_misses", sum(r.timed_out for r in replies))


# ------------------------------------------------------------ black holes

HOLE_DEADLINE_MS = 1500


@pytest.mark.parametrize("proto", ["h1", "h2c"])
def test_blackhole_after_handshake(host: ServerHost, faults: Faults, tmp_path: Path,
                                   certs: Certs, baseline: Baseline, record_property: Record,
                                   proto: str) -> None:
    """Connected, then never a byte: connect_timeout (300 ms) cannot end
    it; each request ends at its deadline, no later than deadline + 100 ms
    (measured from query() to the reply being taken)."""
    n = 20
    opts: dict[str, Any] = {}
    if proto == "h1":
        srv = H1Server(host, tmp_path)
        srv.start()
        base, port = srv.url, srv.port
    else:
        ngx = _nginx(host, tmp_path, certs)
        assert ngx.h2c_port is not None
        base, port, opts = ngx.h2c_url, ngx.h2c_port, {"http_version": 2}
    with hac.Client(workers=1, connect_timeout=300, connection_timeout=8000) as client:
        with faults.blackhole_after_handshake(port):
            run = run_paced(client, lambda i: client.query(
                f"{base}/hole/{i}", timeout=HOLE_DEADLINE_MS, **opts), n, window=n, limit_s=15)
            assert not run.missing and not run.duplicates
            late = [t.took * 1000 - HOLE_DEADLINE_MS for t in run.items]
            for k, t in enumerate(run.items):
                assert t.reply is not None and t.reply.timed_out, t.reply and t.reply.err
                # the connection was made: it is the deadline that ended it
                # (h2c: only the first went out; the others waited to join
                # its connection, mux.c)
                if proto == "h1" or k == 0:
                    assert "waiting for the response" in (t.reply.err or ""), t.reply.err
            assert min(late) >= -5, f"ended {-min(late):.0f} ms before the deadline"
            assert max(late) <= 100, f"ended {max(late):.0f} ms past the deadline"
        check_counters(client, n)
    _note(record_property, f"blackhole_{proto}_max_past_deadline_ms", round(max(late), 1))


BIG = 50 * MIB


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
@pytest.mark.parametrize("low_speed", [True, False], ids=["low_speed", "deadline"])
def test_blackhole_mid_body(host: ServerHost, faults: Faults, tmp_path: Path,
                            baseline: Baseline, record_property: Record,
                            stream: bool, low_speed: bool) -> None:
    """A 50 MiB body stops after ~8 MiB (the server's later packets are
    dropped): with low_speed_limit/low_speed_time it ends well before the
    deadline (libcurl averages the speed over ~5 s), without them the
    deadline ends it; the partial body is never a success."""
    srv = H1Server(host, tmp_path)
    srv.start()
    deadline_ms = 20000 if low_speed else 3000
    opts: dict[str, Any] = {"low_speed_limit": 1000, "low_speed_time": 1} if low_speed else {}
    url = f"{srv.url}/big?size={BIG}"
    with hac.Client(workers=1, connection_timeout=8000, max_body_size=64 * MIB) as client:
        with faults.drop_after(srv.port, 8 * MIB):
            t0 = time.monotonic()
            if stream:
                got = 0
                st = client.query(url, stream=True, timeout=deadline_ms, **opts)
                with pytest.raises(hac.TransferTimeout) as info:
                    for chunk in st.iter_bytes(timeout=30):
                        got += len(chunk)
                reply = info.value.reply
                assert 0 < got < BIG, got
            else:
                reply = client.query(url, timeout=deadline_ms, **opts).result(30)
            took = time.monotonic() - t0
        assert reply is not None and not reply.ok and reply.timed_out, reply and reply.err
        if low_speed:
            assert "low_speed" in (reply.err or ""), reply.err
            assert took < 12, f"the low-speed check took {took:.1f} s"
        else:
            assert deadline_ms / 1000 - 0.05 <= took <= deadline_ms / 1000 + 1.0, took
        if not stream:
            with pytest.raises(hac.TransferTimeout):
                reply.raise_for_error()
        check_counters(client, 1)
    _note(record_property, f"mid_body_{'stream' if stream else 'whole'}_"
          f"{'low_speed' if low_speed else 'deadline'}_s", round(took, 2))


# ------------------------------------------------------------ resets


@pytest.mark.parametrize("where", ["headers", "body"])
def test_reset_after_k_bytes(host: ServerHost, faults: Faults, tmp_path: Path,
                             baseline: Baseline, where: str) -> None:
    """The server's connection is reset after K bytes of a long header
    block / of a 1 MiB body: a failed reply whose err names the reset,
    never a truncated success; the next request works."""
    srv = H1Server(host, tmp_path)
    srv.start()
    query = "hdrpad=60000" if where == "headers" else f"size={MIB}"
    with hac.Client(workers=1, connection_timeout=10000) as client:
        with faults.drop_after(srv.port, 20000 if where == "headers" else 300000):
            h = client.query(f"{srv.url}/reset?{query}", timeout=8000)
            assert faults.wait_server_sockets(srv.port) == 1
            time.sleep(0.4)  # the client has read what passed and waits
            assert not h.done()
            assert faults.kill_connections(srv.port) == 1
            reply = h.result(10)
        assert not reply.ok and not reply.timed_out, reply.err
        assert CONN_ERR.search(reply.err or ""), reply.err
        with pytest.raises(hac.TransferError):
            reply.raise_for_error()
        after = client.query(f"{srv.url}/after?{query}", timeout=8000).result(10)
        assert after.ok and after.status == 200, after.err
        check_counters(client, 2)


def test_reset_on_client_send(host: ServerHost, faults: Faults, tmp_path: Path,
                              baseline: Baseline) -> None:
    """``reject with tcp reset``: the request on a kept-alive connection is
    answered with a RST; a GET may be started again on a new connection
    (which also gets one): the reply fails with a connection error."""
    srv = H1Server(host, tmp_path)
    srv.start()
    with hac.Client(workers=1, connection_timeout=10000) as client:
        assert client.query(f"{srv.url}/warm", timeout=5000).result(10).ok
        with faults.reset_on_send(srv.port, 0):
            reply = client.query(f"{srv.url}/rst", timeout=5000).result(10)
        assert not reply.ok and not reply.timed_out
        assert CONN_ERR.search(reply.err or ""), reply.err
        assert client.query(f"{srv.url}/after", timeout=5000).result(10).ok
        check_counters(client, 3)


@pytest.mark.parametrize("proto", ["https1", "h2", "h2c"])
def test_reset_with_requests_in_flight(host: ServerHost, faults: Faults, tmp_path: Path,
                                       certs: Certs, baseline: Baseline,
                                       record_property: Record, proto: str) -> None:
    """POSTs and GETs waiting on a slow backend behind nginx when the
    client's connections are reset (HTTP/2: one connection, all its
    streams).  Every POST fails with a connection error and ran once; a GET
    either fails so or, sent on a cached connection, is started again on a
    new one (the core's policy for idempotent requests) and succeeds; none
    succeeds truncated; the next requests open a new connection."""
    backend = H1Server(host, tmp_path, port=8090, bind="127.0.0.1")
    backend.start()
    ngx = _nginx(host, tmp_path, certs, upstream=f"127.0.0.1:{backend.port}")
    base, port, opts = _proto(ngx, proto)
    n = 10
    with hac.Client(workers=1, connection_timeout=10000, tls_ca_path=certs.capath) as client:
        # h2c: the origin is known to speak HTTP/2 once a first reply came
        assert client.query(f"{base}/warm", timeout=8000, **opts).result(10).ok
        posts = [client.query(f"{base}/slow/p{i}?delay=20000", b"payload", timeout=10000,
                              **opts) for i in range(n)]
        gets = [client.query(f"{base}/slow/g{i}?delay=2000", timeout=10000, **opts)
                for i in range(n)]
        assert len(backend.wait_requests("/slow/", 2 * n, timeout=8)) >= 2 * n
        conns = faults.kill_connections(port)
        assert conns >= 1 and (proto == "https1" or conns == 1), conns
        post_replies = [h.result(15) for h in posts]
        get_replies = [h.result(15) for h in gets]
        bad = [r for r in post_replies if r.ok or r.timed_out or not CONN_ERR.search(r.err or "")]
        assert not bad, "POSTs: " + summary(bad) + f"; ok: {sum(r.ok for r in bad)}"
        bad = [r for r in get_replies
               if r.timed_out or not (r.ok and r.status == 200 and r.body == b"ok"
                                      or CONN_ERR.search(r.err or ""))]
        assert not bad, "GETs: " + summary(bad)
        seen = backend.count_by_target("POST")
        assert all(seen.get(f"/slow/p{i}?delay=20000", 0) == 1 for i in range(n)), seen
        after = [client.query(f"{base}/after/{i}", timeout=8000, **opts)
                 for i in range(n)]
        after_replies = [h.result(10) for h in after]
        assert all(r.ok and r.status == 200 for r in after_replies), summary(after_replies)
        lines = ngx.wait_log("/after/", n)
        warm = {ln.conn for ln in ngx.log_lines() if ln.uri == "/warm"}
        assert len(lines) == n and not ({ln.conn for ln in lines} & warm)
        check_counters(client, 3 * n + 1)
        _note(record_property, f"reset_{proto}_gets_restarted_ok", sum(r.ok for r in get_replies))


# ------------------------------------------------------------ link down

POOL = 64
INFLIGHT = 1000
OUTAGE_DEADLINE_MS = 2500


def test_link_down_with_requests_in_flight(host: ServerHost, faults: Faults, tmp_path: Path,
                                           baseline: Baseline, record_property: Record) -> None:
    """1,000 requests in flight over 64 keep-alive connections when the
    host vanishes (link down, it loses every process and connection, comes
    back): every request answered by its deadline; after the return the
    next requests succeed with nothing done by the application."""
    srv = H1Server(host, tmp_path)
    srv.start()
    with hac.Client(workers=1, connection_timeout=8000, max_connections=POOL) as client:
        warm = [client.query(f"{srv.url}/warm/{i}?gather={POOL}", timeout=10000)
                for i in range(POOL)]
        assert all(h.result(15).ok for h in warm)
        assert host.client_connections(srv.port) == POOL
        t_sent = time.monotonic()
        handles = [client.query(f"{srv.url}/fly/{i}?delay=5000", timeout=OUTAGE_DEADLINE_MS)
                   for i in range(INFLIGHT)]
        assert len(srv.wait_requests("/fly/", POOL, timeout=5)) >= POOL
        with faults.link_outage():
            got: dict[int, float] = {}
            for batch in client.completions(timeout=OUTAGE_DEADLINE_MS / 1000 + 5, batch=True):
                now = time.monotonic()
                for r in batch:
                    got[r.id] = now
            host.crash()
            srv.start()
        host.wait_reachable(srv.port)
        t_up = time.monotonic()
        assert len(got) == INFLIGHT, f"{INFLIGHT - len(got)} in-flight replies never came"
        replies = [h.result(0) for h in handles]
        assert all(r.timed_out for r in replies), summary(replies)
        # queued ones got their deadline on arrival at the worker: at most
        # the submission loop later than t_sent
        late = max(got.values()) - t_sent - OUTAGE_DEADLINE_MS / 1000
        assert late <= 0.5, f"the last in-flight reply came {late * 1000:.0f} ms past its deadline"
        after = [client.query(f"{srv.url}/after/{i}", timeout=8000) for i in range(200)]
        after_replies = [h.result(15) for h in after]
        first_ok = time.monotonic() - t_up
        failed = [r for r in after_replies if not r.ok]
        _note(record_property, "link_outage_failed_after_return", len(failed))
        _note(record_property, "link_outage_last_reply_past_deadline_ms", round(late * 1000, 1))
        _note(record_property, "link_outage_200_after_return_s", round(first_ok, 3))
        _note(record_property, "link_outage_dead_connections", client.stats()["dead_connections"])
        assert not failed, summary(after_replies)
        check_counters(client, POOL + INFLIGHT + 200)
