"""The (5.x) and (6.2) features: redirects, authentication, TCP keep-alive,
HTTP/2 (upgrade, prior knowledge, ALPN, multiplexing), timings, xdata,
http_async_send, PATCH and ``http_req["body"]``.

Everything talks to real servers on 127.0.0.1: the Python test server
(tests/servers.py) and a private nginx (tests/nginx.py) for HTTP/2.
"""

from __future__ import annotations

import json
import os
import socket
import time
import uuid
from typing import Any
from urllib.parse import quote

import pytest

import http_async_client as hac
from support.certs import Certs
from support.clients import Fetch
from support.nginx import Nginx
from support.ports import free_port
from support.servers import HTTPTestServer

WAIT = 10.0  # bound of every single wait for a reply, s
TIME_KEYS = ("total", "lookup", "connect", "appconnect", "pretransfer", "starttransfer", "redirect")


def header(request: dict[str, Any], name: str) -> str | None:
    """The first header ``name`` (case-insensitive) a server recorded."""
    for key, value in request["headers"]:
        if key.lower() == name.lower():
            return str(value)
    return None


def redirect_to(server: HTTPTestServer, target: str, status: int = 302) -> str:
    """URL of ``/redirect-to`` on server answering with Location: target."""
    return f"{server.url}/redirect-to?url={quote(target, safe='')}&status={status}"


# =================================================================== params

NEW_PARAMS = {
    "curl_follow_redirect": 0,
    "tcp_keepalive": 0,
    "tcp_ka_idle": 0,
    "tcp_ka_interval": 0,
    "authmethod": 3,
    "max_redirects": 10,
}


def test_new_param_defaults() -> None:
    """Seed names and defaults, in params and as attributes."""
    with hac.Client() as c:
        for name, default in NEW_PARAMS.items():
            assert c.params[name] == default, name
            assert getattr(c, name) == default, name


def test_new_param_values_read_back() -> None:
    """Given values come back (strings as the seed passes them)."""
    given = {
        "curl_follow_redirect": 1,
        "tcp_keepalive": "1",
        "tcp_ka_idle": 7,
        "tcp_ka_interval": "3",
        "authmethod": 2,
        "max_redirects": 4,
    }
    with hac.Client(**given) as c:  # type: ignore[arg-type]
        for name, value in given.items():
            assert c.params[name] == int(value), name
            assert getattr(c, name) == int(value), name
        with pytest.raises(TypeError):
            c.params["authmethod"] = 1  # type: ignore[index]


@pytest.mark.parametrize("name", sorted(NEW_PARAMS))
def test_new_param_negative_is_invalid(name: str) -> None:
    """A negative value is refused with InvalidOption."""
    with pytest.raises(hac.InvalidOption):
        hac.Client(**{name: -1})


@pytest.mark.parametrize(
    "options",
    [
        {"ka_idle": -1},
        {"ka_interval": -5},
        {"authmethod": -1},
        {"max_redirects": -1},
        {"keepalive": -1},
        {"follow_redirect": -1},
        {"http_version": 3},
        {"http_version": -1},
    ],
)
def test_per_query_bad_values(client: hac.Client, http_server: HTTPTestServer, options: dict[str, int]) -> None:
    """Bad per-query values raise before anything is sent."""
    before = client.stats()["requests"]
    with pytest.raises(hac.InvalidOption):
        client.query(f"{http_server.url}/echo", **options)
    assert client.stats()["requests"] == before


@pytest.mark.parametrize(
    "key, value",
    [("ka-idle", -1), ("ka-interval", -1), ("tcp_ka_idle", -1), ("http_version", 7), ("authmethod", -2)],
)
def test_http_req_bad_values(client: hac.Client, key: str, value: int) -> None:
    """Bad http_req values raise InvalidOption at assignment."""
    with pytest.raises(hac.InvalidOption):
        client.http_req[key] = value


def test_http_req_lists_new_keys(client: hac.Client) -> None:
    """Every new key and Kamailio's spellings are known."""
    keys = set(client.http_req.keys())
    wanted = {
        "body", "authmethod", "username", "password", "keepalive", "ka_idle",
        "ka_interval", "follow_redirect", "http_version", "ka-idle",
        "ka-interval", "tcp_keepalive", "tcp_ka_idle", "tcp_ka_interval",
    }
    assert wanted <= keys


# ===================================================================== auth


def test_basic_auth_keywords(fresh_http_server: HTTPTestServer, fetch: Fetch) -> None:
    """username/password keywords with the default authmethod (Basic|Digest)."""
    reply = fetch(f"{fresh_http_server.url}/auth/basic", username="user", password="pass")
    assert reply.ok, reply.err
    assert (reply.status, reply.body) == (200, b"authenticated")
    last = fresh_http_server.requests[-1]
    assert (header(last, "Authorization") or "").startswith("Basic ")
    # options are per query: the next one has no credentials
    assert fetch(f"{fresh_http_server.url}/auth/basic").status == 401


def test_basic_auth_http_req(client: hac.Client, fresh_http_server: HTTPTestServer, fetch: Fetch) -> None:
    """http_req username/password/authmethod: Basic only is sent at once."""
    client.http_req["username"] = "user"
    client.http_req["password"] = "pass"
    client.http_req["authmethod"] = 1
    reply = fetch(f"{fresh_http_server.url}/auth/basic")
    assert (reply.ok, reply.status, reply.body) == (True, 200, b"authenticated")
    # Basic alone needs no probing round trip
    assert len(fresh_http_server.requests) == 1
    assert fetch(f"{fresh_http_server.url}/auth/basic").status == 401


@pytest.mark.parametrize("authmethod", [2, 3, None])
def test_digest_auth(http_server: HTTPTestServer, authmethod: int | None, fetch: Fetch) -> None:
    """Digest (RFC 7616, MD5, qop=auth) with authmethod 2 and the default 3."""
    opts: dict[str, Any] = {"username": "user", "password": "pass"}
    if authmethod is not None:
        opts["authmethod"] = authmethod
    reply = fetch(f"{http_server.url}/auth/digest", **opts)
    assert reply.ok, reply.err
    assert (reply.status, reply.body) == (200, b"digest authenticated")


def test_digest_auth_module_param(http_server: HTTPTestServer, fetch: Fetch) -> None:
    """authmethod as a module parameter: 2 works, 1 (Basic only) cannot."""
    url = f"{http_server.url}/auth/digest"
    with hac.Client(connection_timeout=5000, authmethod=2) as c:
        assert fetch(url, username="user", password="pass", client=c).status == 200
    with hac.Client(connection_timeout=5000, authmethod=1) as c:
        assert fetch(url, username="user", password="pass", client=c).status == 401


@pytest.mark.parametrize("path", ["/auth/basic", "/auth/digest"])
def test_wrong_password_is_a_401_reply(http_server: HTTPTestServer, path: str, fetch: Fetch) -> None:
    """Bad credentials: the transfer is fine (ok True), the status is 401."""
    reply = fetch(f"{http_server.url}{path}", username="user", password="wrong")
    assert reply.ok, reply.err
    assert reply.err is None
    assert reply.status == 401
    assert reply.hdr("WWW-Authenticate") is not None


def test_basic_only_against_digest(fresh_http_server: HTTPTestServer, fetch: Fetch) -> None:
    """authmethod=1 sends Basic, which the digest endpoint refuses."""
    reply = fetch(
        f"{fresh_http_server.url}/auth/digest", username="user", password="pass", authmethod=1
    )
    assert (reply.ok, reply.status) == (True, 401)
    sent = [header(r, "Authorization") or "" for r in fresh_http_server.requests]
    assert sent and all(not s.startswith("Digest") for s in sent)
    assert any(s.startswith("Basic ") for s in sent)


# ================================================================ redirects


def test_redirect_not_followed_by_default(http_server: HTTPTestServer, fetch: Fetch) -> None:
    """Default: the 302 itself is the reply."""
    reply = fetch(f"{http_server.url}/redirect/2")
    assert reply.ok, reply.err
    assert reply.status == 302
    assert reply.hdr("Location") == "/redirect/1"


def test_follow_redirect_module_param(http_server: HTTPTestServer, fetch: Fetch) -> None:
    """curl_follow_redirect=1 follows to the end; per query 0 turns it off."""
    with hac.Client(connection_timeout=5000, curl_follow_redirect=1) as c:
        reply = fetch(f"{http_server.url}/redirect/3", client=c)
        assert (reply.ok, reply.status, reply.body) == (True, 200, b"landed")
        assert reply.time("redirect") > 0
        assert fetch(f"{http_server.url}/redirect/3", follow_redirect=0, client=c).status == 302


def test_follow_redirect_per_query(client: hac.Client, http_server: HTTPTestServer, fetch: Fetch) -> None:
    """follow_redirect as a keyword and as http_req, reset after the query."""
    url = f"{http_server.url}/redirect/2"
    assert fetch(url, follow_redirect=1).body == b"landed"
    client.http_req["follow_redirect"] = 1
    reply = fetch(url)
    assert (reply.status, reply.body) == (200, b"landed")
    assert fetch(url).status == 302


def test_max_redirects_module_param(http_server: HTTPTestServer, fetch: Fetch) -> None:
    """max_redirects=2 with a chain of 5: a failed reply about redirects."""
    with hac.Client(connection_timeout=5000, curl_follow_redirect=1, max_redirects=2) as c:
        reply = fetch(f"{http_server.url}/redirect/5", client=c)
        assert not reply.ok
        assert reply.curl_code == 47
        assert reply.err is not None and "redirect" in reply.err.lower()
        assert "47" in reply.err
        assert all(v == 0 for v in reply.times.values())
        ok = fetch(f"{http_server.url}/redirect/2", client=c)
        assert (ok.ok, ok.body) == (True, b"landed")
        # per-query max_redirects overrides the module value
        assert fetch(f"{http_server.url}/redirect/5", max_redirects=5, client=c).body == b"landed"


def test_default_redirect_bound_is_10(http_server: HTTPTestServer, fetch: Fetch) -> None:
    """10 redirects are followed, the 11th is refused."""
    assert fetch(f"{http_server.url}/redirect/10", follow_redirect=1).body == b"landed"
    reply = fetch(f"{http_server.url}/redirect/11", follow_redirect=1)
    assert not reply.ok and reply.curl_code == 47


def test_redirect_loop_fails(fresh_http_server: HTTPTestServer, fetch: Fetch) -> None:
    """A Location pointing at itself ends, failed, after the bound."""
    reply = fetch(f"{fresh_http_server.url}/redirect-to?status=302", follow_redirect=1)
    assert not reply.ok
    assert reply.curl_code == 47
    assert reply.err is not None and "redirect" in reply.err.lower()
    # the original request plus max_redirects (10) hops, no more
    assert len(fresh_http_server.requests) == 11


@pytest.mark.parametrize("target", ["file:///etc/passwd", "ftp://127.0.0.1:{port}/x", "dict://127.0.0.1:{port}/x"])
def test_redirect_to_other_scheme_fails(
    http_server: HTTPTestServer, target: str, fetch: Fetch
) -> None:
    """Only http/https targets: anything else is a protocol error (curl 1)."""
    port = free_port()
    target = target.format(port=port)
    with socket.create_server(("127.0.0.1", port)) as trap:
        trap.settimeout(0.01)
        reply = fetch(redirect_to(http_server, target), follow_redirect=1)
        with pytest.raises(OSError):  # nobody came
            trap.accept()
    assert not reply.ok
    assert reply.curl_code == 1
    assert reply.err is not None and "protocol" in reply.err.lower()
    assert b"root:" not in reply.raw


def test_redirect_http_to_https_allowed(
    http_server: HTTPTestServer, https_server: HTTPTestServer, certs: Certs, fetch: Fetch
) -> None:
    """http -> https is one of the allowed redirect targets."""
    reply = fetch(
        redirect_to(http_server, f"{https_server.url}/echo"),
        follow_redirect=1,
        tls_ca_path=certs.capath,
    )
    assert reply.ok, reply.err
    assert reply.status == 200
    assert json.loads(reply.body)["path"] == "/echo"


def test_authorization_not_forwarded_to_another_host(
    fresh_http_server: HTTPTestServer, fetch: Fetch
) -> None:
    """A redirect to another host loses Authorization; same host keeps it."""
    a = fresh_http_server
    with HTTPTestServer() as b:
        auth = {"Authorization": "Bearer secret"}
        cross = fetch(redirect_to(a, f"http://localhost:{b.port}/echo"), headers=auth, follow_redirect=1)
        assert cross.ok, cross.err
        assert cross.status == 200
        assert header(a.requests[0], "Authorization") == "Bearer secret"
        assert len(b.requests) == 1
        assert header(b.requests[0], "Authorization") is None
        assert b"secret" not in cross.body

        # credentials from username/password (Basic sent at once) neither
        b.reset()
        fetch(
            redirect_to(a, f"http://localhost:{b.port}/echo"),
            username="user", password="pass", authmethod=1, follow_redirect=1,
        )
        assert len(b.requests) == 1
        assert header(b.requests[0], "Authorization") is None

        a.reset()
        same = fetch(redirect_to(a, "/echo"), headers=auth, follow_redirect=1)
        assert same.ok and same.status == 200
        assert len(a.requests) == 2
        assert header(a.requests[1], "Authorization") == "Bearer secret"
        echoed = dict((k.lower(), v) for k, v in json.loads(same.body)["headers"])
        assert echoed["authorization"] == "Bearer secret"


# =============================================================== keep-alive


def _client_sockets(port: int) -> list[tuple[int, int, float]]:
    """(inode, timer_active, timer seconds) of established IPv4 sockets whose
    remote port is ``port``, from /proc/net/tcp (timer_active 2 = keepalive)."""
    out: list[tuple[int, int, float]] = []
    hz = os.sysconf("SC_CLK_TCK")
    with open("/proc/net/tcp") as f:
        next(f)
        for line in f:
            fields = line.split()
            rem_port = int(fields[2].split(":")[1], 16)
            if rem_port != port or fields[3] != "01":
                continue
            timer, when = fields[5].split(":")
            out.append((int(fields[9]), int(timer, 16), int(when, 16) / hz))
    return out


def _sockopts(inode: int) -> tuple[int, int, int] | None:
    """(SO_KEEPALIVE, TCP_KEEPIDLE, TCP_KEEPINTVL) of this process's socket
    with that inode (curl's own socket, read through a dup)."""
    target = f"socket:[{inode}]"
    for name in os.listdir("/proc/self/fd"):
        try:
            if os.readlink(f"/proc/self/fd/{name}") != target:
                continue
            dup = socket.fromfd(int(name), socket.AF_INET, socket.SOCK_STREAM)
        except OSError:
            continue
        with dup:
            return (
                dup.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE),
                dup.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE),
                dup.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL),
            )
    return None


def keepalive_state(
    client: hac.Client, server: HTTPTestServer, **options: Any
) -> tuple[int, float, tuple[int, int, int] | None]:
    """While a /delay/700 query is in flight: (timer_active, timer s,
    sockopts) of the client's socket to ``server``."""
    h = client.query(f"{server.url}/delay/700", **options)
    deadline = time.monotonic() + 0.6
    found: tuple[int, int, float] | None = None
    while found is None and time.monotonic() < deadline:
        socks = _client_sockets(server.port)
        if socks:
            found = socks[0]
        else:
            time.sleep(0.01)
    opts = _sockopts(found[0]) if found is not None else None
    reply = h.result(timeout=WAIT)
    assert reply.ok and reply.status == 200, reply.err
    assert found is not None, "no established client socket seen"
    return found[1], found[2], opts


def test_keepalive_module_params(fresh_http_server: HTTPTestServer) -> None:
    """tcp_keepalive=1, tcp_ka_idle=7, tcp_ka_interval=3 reach the socket."""
    with hac.Client(connection_timeout=5000, tcp_keepalive=1, tcp_ka_idle=7, tcp_ka_interval=3) as c:
        timer, seconds, opts = keepalive_state(c, fresh_http_server)
    assert timer == 2  # keepalive timer armed
    assert 6.0 < seconds <= 7.0
    assert opts is not None and opts[0] != 0
    assert opts[1:] == (7, 3)


def test_keepalive_off_by_default(client: hac.Client, fresh_http_server: HTTPTestServer) -> None:
    """Without tcp_keepalive the socket has no keepalive timer."""
    timer, _, opts = keepalive_state(client, fresh_http_server)
    assert timer != 2
    assert opts is not None and opts[0] == 0


def test_keepalive_module_idle_without_flag(fresh_http_server: HTTPTestServer) -> None:
    """Timers alone (tcp_keepalive 0) do not switch keep-alive on."""
    with hac.Client(connection_timeout=5000, tcp_ka_idle=7, tcp_ka_interval=3) as c:
        timer, _, opts = keepalive_state(c, fresh_http_server)
    assert timer != 2
    assert opts is not None and opts[0] == 0


def test_keepalive_query_keywords(client: hac.Client, fresh_http_server: HTTPTestServer) -> None:
    """keepalive/ka_idle/ka_interval keywords of query()."""
    timer, seconds, opts = keepalive_state(client, fresh_http_server, keepalive=1, ka_idle=9, ka_interval=4)
    assert timer == 2
    assert 8.0 < seconds <= 9.0
    assert opts is not None and opts[0] != 0 and opts[1:] == (9, 4)


@pytest.mark.parametrize(
    "flag, idle, interval",
    [
        ("keepalive", "ka_idle", "ka_interval"),
        ("tcp_keepalive", "ka-idle", "ka-interval"),
        ("tcp_keepalive", "tcp_ka_idle", "tcp_ka_interval"),
    ],
)
def test_keepalive_http_req_spellings(
    client: hac.Client, fresh_http_server: HTTPTestServer, flag: str, idle: str, interval: str
) -> None:
    """Every spelling of the keep-alive keys of http_req."""
    client.http_req[flag] = 1
    client.http_req[idle] = 11
    client.http_req[interval] = 5
    timer, seconds, opts = keepalive_state(client, fresh_http_server)
    assert timer == 2
    assert 10.0 < seconds <= 11.0
    assert opts is not None and opts[0] != 0 and opts[1:] == (11, 5)


def test_keepalive_query_overrides_module(fresh_http_server: HTTPTestServer) -> None:
    """Per-query keepalive=0 wins over the module's tcp_keepalive=1."""
    with hac.Client(connection_timeout=5000, tcp_keepalive=1, tcp_ka_idle=7) as c:
        timer, _, opts = keepalive_state(c, fresh_http_server, keepalive=0)
    assert timer != 2
    assert opts is not None and opts[0] == 0


# ==================================================================== HTTP/2


def test_http2_prior_knowledge(nginx: Nginx, fetch: Fetch) -> None:
    """http_version=2 against the h2c listener speaks HTTP/2."""
    marker = uuid.uuid4().hex
    reply = fetch(f"{nginx.h2c_url}/?m={marker}", http_version=2)
    assert reply.ok, reply.err
    assert (reply.status, reply.body) == (200, b"ok")
    assert reply.http_version == "2"
    lines = nginx.wait_log(marker, 1)
    assert [ln.protocol for ln in lines] == ["HTTP/2.0"]


def test_http2_prior_knowledge_reuses_connection(nginx: Nginx, fetch: Fetch) -> None:
    """Successive http_version=2 queries reuse the one h2c connection."""
    marker = uuid.uuid4().hex
    replies = [fetch(f"{nginx.h2c_url}/?m={marker}&i={i}", http_version=2) for i in range(3)]
    for r in replies:
        assert r.ok, r.err
        assert (r.status, r.http_version) == (200, "2")
    lines = nginx.wait_log(marker, 3)
    assert len({ln.connection for ln in lines}) == 1


def test_http2_http_req_key(
    client: hac.Client, nginx: Nginx, fresh_http_server: HTTPTestServer, fetch: Fetch
) -> None:
    """http_req["http_version"] applies to the next query only."""
    client.http_req["http_version"] = 2
    reply = fetch(f"{nginx.h2c_url}/")
    assert reply.ok and reply.http_version == "2"
    client.http_req["http_version"] = 1
    assert fetch(f"{fresh_http_server.url}/echo").http_version == "1.1"
    assert fetch(f"{fresh_http_server.url}/echo").ok
    first, second = fresh_http_server.requests[0], fresh_http_server.requests[1]
    assert (header(first, "Upgrade") or "").lower() == "h2c"
    assert header(second, "Upgrade") is None  # reset after the query


@pytest.mark.parametrize("version", [0, 1, 2])
def test_https_negotiates_http2_with_alpn(
    nginx: Nginx, certs: Certs, version: int, fetch: Fetch
) -> None:
    """Over TLS HTTP/2 is negotiated with ALPN, also by default."""
    reply = fetch(f"{nginx.tls_url}/", tls_ca_path=certs.capath, http_version=version)
    assert reply.ok, reply.err
    assert (reply.status, reply.body) == (200, b"ok")
    assert reply.http_version == "2"
    assert reply.time("appconnect") > 0


def test_http1_listener_stays_http11(nginx: Nginx, fetch: Fetch) -> None:
    """Default and upgrade requests to an HTTP/1.1-only server stay 1.1."""
    assert fetch(f"{nginx.h1_url}/").http_version == "1.1"
    assert fetch(f"{nginx.h1_url}/", http_version=1).http_version == "1.1"


def test_http2_upgrade_offered(fresh_http_server: HTTPTestServer, fetch: Fetch) -> None:
    """http_version=1 over cleartext offers Upgrade: h2c; an HTTP/1.1
    server ignores it and the reply is 1.1."""
    reply = fetch(f"{fresh_http_server.url}/echo", http_version=1)
    assert reply.ok, reply.err
    assert reply.status == 200
    assert reply.http_version == "1.1"
    req = fresh_http_server.requests[0]
    assert (header(req, "Upgrade") or "").lower() == "h2c"
    assert header(req, "HTTP2-Settings") is not None
    # the default sends no upgrade
    plain = fetch(f"{fresh_http_server.url}/echo")
    assert plain.http_version == "1.1"
    assert header(fresh_http_server.requests[1], "Upgrade") is None


N_CONCURRENT = 100


def _burst(client: hac.Client, nginx: Nginx, base: str, label: str, **options: Any) -> int:
    """N_CONCURRENT queries submitted before any wait; all must succeed.
    Prints and returns how many distinct nginx connections served them."""
    marker = uuid.uuid4().hex
    handles = [client.query(f"{base}/?m={marker}&i={i}", **options) for i in range(N_CONCURRENT)]
    replies = [h.result(timeout=WAIT) for h in handles]
    failed = [r for r in replies if not r.ok]
    lines = nginx.wait_log(marker, N_CONCURRENT - len(failed), timeout=5.0 if not failed else 1.0)
    conns = len({ln.connection for ln in lines})
    print(
        f"\n{label}: {N_CONCURRENT} concurrent queries, {len(replies) - len(failed)} ok, "
        f"{len(lines)} logged by nginx, {conns} distinct connection(s)"
    )
    assert not failed, f"{len(failed)} failed, first: {failed[0].err}"
    for r in replies:
        assert (r.status, r.body) == (200, b"ok")
    assert len(lines) == N_CONCURRENT
    assert len({r.id for r in replies}) == N_CONCURRENT
    return conns


def test_http2_multiplexing_h2c(client: hac.Client, nginx: Nginx) -> None:
    """100 concurrent HTTP/2 queries to one origin share one connection."""
    assert _burst(client, nginx, nginx.h2c_url, "h2c", http_version=2) == 1


def test_http2_multiplexing_tls(nginx: Nginx, certs: Certs) -> None:
    """The same over TLS (ALPN h2, default http_version)."""
    with hac.Client(connection_timeout=5000, tls_ca_path=certs.capath) as c:
        assert _burst(c, nginx, nginx.tls_url, "TLS") == 1


def test_http11_burst_uses_several_connections(client: hac.Client, nginx: Nginx) -> None:
    """Control for the counter above: HTTP/1.1 cannot multiplex, so a burst
    needs more than one connection."""
    assert _burst(client, nginx, nginx.h1_url, "HTTP/1.1") > 1


# =================================================================== timings


def _assert_chain(t: dict[str, int], tls: bool) -> None:
    assert set(t) == set(TIME_KEYS)
    assert t["total"] > 0
    assert t["lookup"] <= t["connect"] <= t["pretransfer"] <= t["starttransfer"] <= t["total"]
    if tls:
        assert t["connect"] < t["appconnect"] <= t["pretransfer"]
    else:
        assert t["appconnect"] == 0


def test_times_http(fresh_http_server: HTTPTestServer, fetch: Fetch) -> None:
    """Success over http: an ordered chain of µs, appconnect 0."""
    reply = fetch(f"{fresh_http_server.url}/delay/50")
    assert reply.ok, reply.err
    t = reply.times
    _assert_chain(t, tls=False)
    assert t["starttransfer"] >= 40_000  # the server waited 50 ms: µs, not ms
    assert t["total"] < 5_000_000
    assert t["redirect"] == 0
    for key in TIME_KEYS:
        assert reply.time(key) == t[key]


def test_times_https(https_server: HTTPTestServer, certs: Certs, fetch: Fetch) -> None:
    """Success over https: appconnect sits between connect and pretransfer."""
    reply = fetch(f"{https_server.url}/echo", tls_ca_path=certs.capath)
    assert reply.ok, reply.err
    _assert_chain(reply.times, tls=True)


def test_times_zero_on_failure(fetch: Fetch) -> None:
    """A refused connection: every time is 0."""
    reply = fetch(f"http://127.0.0.1:{free_port()}/")
    assert not reply.ok
    assert reply.times == {k: 0 for k in TIME_KEYS}
    assert all(reply.time(k) == 0 for k in TIME_KEYS)


def test_time_unknown_key(http_server: HTTPTestServer, fetch: Fetch) -> None:
    """time() refuses unknown keys with KeyError."""
    reply = fetch(f"{http_server.url}/echo")
    with pytest.raises(KeyError):
        reply.time("bogus")


def test_reply_id_matches_handle(client: hac.Client, http_server: HTTPTestServer) -> None:
    """Reply.id is the query's id, unique per client."""
    handles = [client.query(f"{http_server.url}/echo") for _ in range(5)]
    replies = [h.result(timeout=WAIT) for h in handles]
    assert [r.id for r in replies] == [h.id for h in handles]
    assert len({r.id for r in replies}) == 5


# ===================================================================== xdata


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


# ============================================================ PATCH and body


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


def test_http2_prior_knowledge_after_server_closed_connection(nginx: Nginx) -> None:
    """libcurl 7.88 workaround (csrc/mux.c): after the server closed the
    idle h2c connection, the next http_version=2 query opens a new one with
    prior knowledge and succeeds over HTTP/2, and so do the ones after it."""
    url = f"{nginx.h2c_idle_url}/"
    with hac.Client(connection_timeout=5000) as client:
        first = client.query(url, http_version=2).result(timeout=5)
        assert first.ok and first.http_version == "2", first.err
        time.sleep(1.6)  # nginx closes the idle connection after 1 s
        again = [client.query(url, http_version=2).result(timeout=5) for _ in range(3)]
        assert all(r.ok and r.status == 200 and r.http_version == "2" for r in again), [
            r.err for r in again
        ]
        assert client.stats()["errors"] == 0
