"""Network faults: the server's host vanishes, forgets every connection and
comes back (tests/support/netns.py builds that host in a network namespace).

After such an outage the client's pooled connections are dead although its
kernel still has them ESTABLISHED: nothing (no FIN, no RST) reached it.  The
first bytes sent on one draw a RST from the returned host.  The client must
find that out without failing the requests that met a dead connection (and
without running a POST twice).
"""

from __future__ import annotations

import re
import socket
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

import pytest

import http_async_client as hac
from support.certs import Certs
from support.netns import ServerHost, available
from support.nsservers import H1Server, NsNginx, issue_ip_cert

pytestmark = pytest.mark.netns

POOL = 64  # idle keep-alive connections in the HTTP/1.1 pool
AFTER = 200  # requests after the host returns


@pytest.fixture
def host() -> Iterator[ServerHost]:
    """A fresh server host in its own namespace (deleted afterwards)."""
    reason = available()
    if reason is not None:
        pytest.skip(reason)
    with ServerHost() as h:
        yield h


def collect(
    client: hac.Client, handles: Iterable[hac.QueryHandle], timeout: float
) -> dict[int, tuple[hac.Reply, float]]:
    """``id -> (reply, monotonic time it was taken)`` for every handle, or
    for those finished within ``timeout`` (the caller checks for missing
    ones). Other replies of the client are taken too and kept."""
    want = {h.id for h in handles}
    got: dict[int, tuple[hac.Reply, float]] = {}
    deadline = time.monotonic() + timeout
    try:
        for reply in client.completions(timeout=max(0.01, deadline - time.monotonic())):
            got[reply.id] = (reply, time.monotonic())
            if want <= got.keys() or time.monotonic() > deadline:
                break
    except hac.WaitTimeout:
        pass
    return got


def replies_of(
    client: hac.Client, handles: list[hac.QueryHandle], timeout: float
) -> list[hac.Reply]:
    """The replies of ``handles`` in order; fails if any is missing."""
    got = collect(client, handles, timeout)
    missing = [h.id for h in handles if h.id not in got]
    assert not missing, f"{len(missing)}/{len(handles)} replies never came (lost?)"
    return [got[h.id][0] for h in handles]


def summary(replies: Iterable[hac.Reply]) -> str:
    """``n failed: Counter of errors`` for assertion messages."""
    failed = [r for r in replies if not r.ok]
    # one error kind per message, whatever the HTTP/2 stream number
    kinds = Counter(re.sub(r"stream \d+", "stream N", r.err or "") for r in failed)
    return f"{len(failed)} failed: {dict(kinds.most_common(5))}"


def host_vanishes(
    host: ServerHost, restart: Callable[[], None], port: int,
    during: Callable[[], None] | None = None,
) -> float:
    """The host drops off the network (``during`` runs then), loses every
    process and connection, restarts its servers and returns.  Returns the
    time the link came back."""
    host.link_down()
    if during is not None:
        during()
    host.crash()
    restart()
    t_up = time.monotonic()
    host.link_up(wait_port=port, timeout=5.0)
    return t_up


# ------------------------------------------------------------ the rig itself


def test_rig_outage_is_a_silent_black_hole(host: ServerHost, tmp_path: Path) -> None:
    """Link down drops packets without an error; a crash during it is not
    seen by the client; after the return, sending on the old connection
    gets a RST."""
    srv = H1Server(host, tmp_path)
    srv.start()
    old = socket.create_connection((host.ip, srv.port), timeout=2)
    try:
        assert host.client_connections(srv.port) == 1
        host.link_down()
        t0 = time.monotonic()
        with pytest.raises(TimeoutError):  # not ECONNREFUSED / EHOSTUNREACH
            socket.create_connection((host.ip, srv.port), timeout=0.5).close()
        assert time.monotonic() - t0 >= 0.4
        host.crash()
        assert host.tcp_sockets() == [] and host.pids() == []
        srv.start()
        host.link_up(wait_port=srv.port)
        # nothing reached the client: its socket is still established
        assert host.client_connections(srv.port) == 1
        old.settimeout(3)
        old.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        with pytest.raises(ConnectionResetError):
            old.recv(100)
    finally:
        old.close()


def test_rig_nft_drop_and_reset(host: ServerHost, tmp_path: Path) -> None:
    """nft() rules act inside the host: drop is silent, reset refuses at
    once, nft_flush() restores service."""
    srv = H1Server(host, tmp_path)
    srv.start()
    host.nft(f"input tcp dport {srv.port} drop")
    with pytest.raises(TimeoutError):
        socket.create_connection((host.ip, srv.port), timeout=0.5).close()
    host.nft_flush()
    host.nft(f"input tcp dport {srv.port} reject with tcp reset")
    assert "reject with tcp reset" in host.nft_ruleset()
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection((host.ip, srv.port), timeout=2).close()
    host.nft_flush()
    host.wait_reachable(srv.port, timeout=2)


# ------------------------------------------------------------ HTTP/1.1


def _h1_dead_pool(host: ServerHost, srv: H1Server, client: hac.Client) -> None:
    """Fill the client's pool with POOL idle connections, then the host vanishes."""
    srv.start()
    # the server holds every answer until all POOL requests are in: one connection each
    warm = [client.query(f"{srv.url}/warm/{i}?gather={POOL}", timeout=10000)
            for i in range(POOL)]
    replies = replies_of(client, warm, 15)
    assert all(r.ok and r.status == 200 for r in replies), summary(replies)
    assert len(srv.connections_used("/warm/")) == POOL
    assert host.client_connections(srv.port) == POOL
    host_vanishes(host, srv.start, srv.port)
    # precondition of the bug: the client still believes in all of them
    assert host.client_connections(srv.port) == POOL, "the outage reached the client"


def test_h1_pool_after_host_returns(host: ServerHost, tmp_path: Path) -> None:
    """64 idle keep-alive connections die with the host: of the next 200
    requests none may fail, and the dead ones are counted."""
    srv = H1Server(host, tmp_path)
    with hac.Client(workers=1, connection_timeout=5000, max_connections=POOL) as client:
        _h1_dead_pool(host, srv, client)
        handles = [client.query(f"{srv.url}/after/{i}", timeout=10000) for i in range(AFTER)]
        replies = replies_of(client, handles, 20)
        failed = [r for r in replies if not r.ok]
        assert not failed, f"after the host returned, {len(failed)}/{AFTER} {summary(replies)}"
        assert all(r.status == 200 and r.body == b"ok" for r in replies)
        served = {r.target for r in srv.requests("GET") if "/after/" in r.target}
        assert len(served) == AFTER
        stats = client.stats()
        assert stats.get("dead_connections", 0) >= 1, f"dead connections not counted: {stats}"


def test_h1_post_never_runs_twice(host: ServerHost, tmp_path: Path) -> None:
    """POSTs meeting the dead pool: each reaches the server at most once; one
    that fails says CONNECTION_LOST_AFTER_SEND; one the server got succeeds."""
    srv = H1Server(host, tmp_path)
    n = 16
    with hac.Client(workers=1, connection_timeout=5000, max_connections=POOL) as client:
        _h1_dead_pool(host, srv, client)
        posts = [client.query(f"{srv.url}/post/{i}", b"payload", timeout=10000)
                 for i in range(n)]
        replies = replies_of(client, posts, 20)
        time.sleep(0.3)  # a duplicate sent late would still be logged
        seen = srv.count_by_target("POST")
        problems = []
        for i, reply in enumerate(replies):
            count = seen.get(f"/post/{i}", 0)
            if count > 1:
                problems.append(f"/post/{i} executed {count} times")
            if reply.ok:
                if count != 1 or reply.body != b"posted":
                    problems.append(f"/post/{i} ok but seen {count} times, body {reply.body!r}")
            elif "CONNECTION_LOST_AFTER_SEND" not in (reply.err or ""):
                problems.append(f"/post/{i} failed with {reply.err!r}")
            elif count:
                # every connection the returned server has is fresh: what
                # reached it was answered, so the client must have the answer
                problems.append(f"/post/{i} reached the server yet failed: {reply.err!r}")
        assert not problems, f"{summary(replies)}; " + "; ".join(problems)


# ------------------------------------------------------------ HTTP/2 over TLS


def _nginx(host: ServerHost, tmp_path: Path, certs: Certs,
           upstream: str | None = None) -> NsNginx:
    cert, key = issue_ip_cert(certs, host.ip, tmp_path / "pki")
    ngx = NsNginx(host, tmp_path / "nginx", cert, key, upstream=upstream)
    ngx.start()
    return ngx


def _h2_warm(client: hac.Client, ngx: NsNginx, host: ServerHost, n: int = 20,
             marker: str = "/warm/") -> None:
    """``n`` requests multiplexed over the client's HTTP/2 connection(s)."""
    warm = [client.query(f"{ngx.tls_url}{marker}{i}", timeout=10000) for i in range(n)]
    replies = replies_of(client, warm, 15)
    assert all(r.ok and r.http_version == "2" for r in replies), summary(replies)
    lines = ngx.wait_log(marker, n)
    assert len(lines) == n and {ln.protocol for ln in lines} == {"HTTP/2.0"}
    assert host.client_connections(ngx.tls_port) == len({ln.conn for ln in lines}) >= 1


@pytest.mark.parametrize("tried", [False, True], ids=["idle", "tried-during-outage"])
def test_h2_tls_after_host_returns(
    host: ServerHost, tmp_path: Path, certs: Certs, tried: bool,
    record_property: Callable[[str, object], None],
) -> None:
    """The HTTP/2 connection dies with the host: none of the next 200
    requests may fail.  ``tried``: the client kept getting traffic during the
    outage (requests that time out in the black hole and leave unacked bytes
    on the connection, so TCP is backing off when the host returns)."""
    ngx = _nginx(host, tmp_path, certs)
    # the precondition (the client still holds the dead connection after the
    # outage) is set up again when a loaded machine let libcurl see the
    # outage and close it itself: up to three tries, then it fails
    for attempt in range(3):
        if _h2_after_host_returns(host, ngx, certs, tried, record_property, attempt):
            return


def _h2_after_host_returns(
    host: ServerHost, ngx: NsNginx, certs: Certs, tried: bool,
    record_property: Callable[[str, object], None], attempt: int,
) -> bool:
    last = attempt == 2
    with hac.Client(workers=1, connection_timeout=5000, tls_ca_path=certs.capath) as client:
        _h2_warm(client, ngx, host, marker=f"/warm{attempt}/")
        before = host.client_connections(ngx.tls_port)

        def during() -> None:
            if not tried:
                return
            probes = [client.query(f"{ngx.tls_url}/probe/{i}", timeout=1000) for i in range(5)]
            probe_replies = replies_of(client, probes, 10)
            assert all(r.timed_out for r in probe_replies), summary(probe_replies)

        t_up = host_vanishes(host, ngx.start, ngx.tls_port, during)
        # precondition: the client still holds the dead connection(s)
        after_outage = host.client_connections(ngx.tls_port)
        if after_outage < 1 and not last:
            return False
        assert after_outage >= 1, f"the outage reached the client ({before} -> {after_outage})"
        handles = [client.query(f"{ngx.tls_url}/after{attempt}/{i}", timeout=10000)
                   for i in range(AFTER)]
        got = collect(client, handles, 20)
        missing = [h.id for h in handles if h.id not in got]
        assert not missing, f"{len(missing)} replies never came"
        replies = [got[h.id][0] for h in handles]
        oks = [t for r, t in (got[h.id] for h in handles) if r.ok]
        first_ok = min(oks) - t_up if oks else float("inf")
        record_property("first_success_after_link_up_s", round(first_ok, 3))
        failed = [r for r in replies if not r.ok]
        assert not failed, (
            f"after the host returned, {len(failed)}/{AFTER} {summary(replies)}; "
            f"first success {first_ok:.2f} s after link-up"
        )
        assert all(r.http_version == "2" and r.body == b"ok" for r in replies)
        served = {ln.uri for ln in ngx.wait_log(f"/after{attempt}/", AFTER)}
        assert len(served) == AFTER
    return True


def test_h2_tls_inflight_during_outage(host: ServerHost, tmp_path: Path, certs: Certs) -> None:
    """Requests in flight during the outage (waiting on the server when the
    link goes down, or sent into the black hole) may fail but each gets a
    reply; every request issued after the host returns must succeed."""
    backend = H1Server(host, tmp_path, port=8090, bind="127.0.0.1")
    backend.start()
    ngx = _nginx(host, tmp_path, certs, upstream=f"127.0.0.1:{backend.port}")
    n = 10

    def restart() -> None:
        backend.start()
        ngx.start()

    with hac.Client(workers=1, connection_timeout=5000, tls_ca_path=certs.capath) as client:
        _h2_warm(client, ngx, host, n=5)
        # the backend answers far too late: these stay in flight
        slow = [client.query(f"{ngx.tls_url}/slow/{i}?delay=30000", timeout=6000)
                for i in range(n)]
        assert len(backend.wait_requests("/slow/", n, timeout=5)) == n
        blackholed: list[hac.QueryHandle] = []

        def during() -> None:
            # sent into the black hole: unacked, retransmitted with backoff
            blackholed.extend(client.query(f"{ngx.tls_url}/during/{i}", timeout=6000)
                              for i in range(n))
            time.sleep(1.0)  # an outage long enough for TCP to back off
            assert not any(h.done() for h in [*slow, *blackholed])

        t_up = host_vanishes(host, restart, ngx.tls_port, during)
        after = [client.query(f"{ngx.tls_url}/after/{i}", timeout=10000) for i in range(2 * n)]
        inflight = [*slow, *blackholed]
        got = collect(client, [*inflight, *after], 20)
        lost = [h.url for h in [*inflight, *after] if h.id not in got]
        assert not lost, f"{len(lost)} requests never got a reply: {lost[:3]}"
        after_replies = [got[h.id][0] for h in after]
        inflight_replies = [got[h.id][0] for h in inflight]
        oks = [t for r, t in (got[h.id] for h in after) if r.ok]
        first_ok = min(oks) - t_up if oks else float("inf")
        failed = [r for r in after_replies if not r.ok]
        assert not failed, (
            f"issued after the return: {len(failed)}/{len(after)} {summary(after_replies)}; "
            f"first success {first_ok:.2f} s after link-up; in flight: "
            f"{summary(inflight_replies)}"
        )
        # a reply each: a success, or a failure that says why
        assert all(r.ok or r.err for r in inflight_replies)
