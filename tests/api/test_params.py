"""§1 module parameters: ``Client(...)`` keywords, their defaults, their
validation and their effect on real queries against 127.0.0.1."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import textwrap
import time
from typing import Any

import pytest

import http_async_client as hac
from support.certs import Certs
from support.servers import HTTPTestServer

LOGGER = "http_async_client"
WAIT = 5.0  # seconds: upper bound of every .result() in this file

# CURL_SSLVERSION_* values
TLSV1_0 = 4
TLSV1_2 = 6
MAX_TLSV1_0 = 4 << 16


def _echo(reply: hac.Reply) -> dict[str, Any]:
    """The JSON the echo endpoint sent back."""
    assert reply.ok, reply.err
    assert reply.status == 200
    return json.loads(reply.body)


# ---------------------------------------------------------------- defaults


def test_params_defaults() -> None:
    """Every 4.4 module parameter has the seed's default in ``client.params``
    (later versions' parameters may be listed too)."""
    with hac.Client() as client:
        params = dict(client.params)
    expected = {
        "workers": 1,
        "connection_timeout": 500,
        "hash_size": 2048,
        "tls_version": 0,
        "tls_verify_host": 2,
        "tls_verify_peer": 1,
        "curl_verbose": 0,
        "tls_client_cert": None,
        "tls_client_key": None,
        "tls_ca_path": None,
    }
    assert {k: params.get(k, "<missing>") for k in expected} == expected
    assert "memory_manager" in params
    assert params["memory_manager"] in ("shm", "sys")  # "shm": see the mm tests


def test_params_memory_manager_default_in_fresh_process() -> None:
    """In a process where no client chose yet, the default is "shm"."""
    script = (
        "import http_async_client as hac\n"
        "with hac.Client() as c:\n"
        "    print(c.params['memory_manager'], c.memory_manager)\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=30
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["shm", "shm"]


def test_params_attribute_defaults() -> None:
    """The parameters are also attributes, except the two verify flags,
    which are the seed's per-query functions on the client."""
    with hac.Client() as client:
        assert client.workers == 1
        assert client.connection_timeout == 500
        assert client.hash_size == 2048
        assert client.tls_version == 0
        assert client.curl_verbose == 0
        assert client.memory_manager == client.params["memory_manager"]
        assert client.tls_client_cert is None
        assert client.tls_client_key is None
        assert client.tls_ca_path is None
        assert callable(client.tls_verify_host)
        assert callable(client.tls_verify_peer)
        assert client.params["tls_verify_host"] == 2
        assert client.params["tls_verify_peer"] == 1


def test_params_is_read_only() -> None:
    """``params`` is a read-only mapping; attributes have no setter."""
    with hac.Client() as client:
        with pytest.raises(TypeError):
            client.params["workers"] = 3  # type: ignore[index]
        with pytest.raises(TypeError):
            del client.params["workers"]  # type: ignore[attr-defined]
        with pytest.raises(AttributeError):
            client.workers = 3  # type: ignore[misc]
        assert client.params["workers"] == 1
        assert client.workers == 1


def test_params_reflect_given_values(certs: Certs) -> None:
    """Non-default values are read back as given (paths as str)."""
    with hac.Client(
        workers=2,
        connection_timeout=1234,
        hash_size=64,
        tls_version=TLSV1_2,
        tls_verify_host=0,
        tls_verify_peer=0,
        tls_client_cert=certs.client_cert,
        tls_client_key=str(certs.client_key),
        tls_ca_path=certs.capath,
    ) as client:
        p = client.params
        assert p["workers"] == 2 and client.workers == 2
        assert p["connection_timeout"] == 1234 and client.connection_timeout == 1234
        assert p["hash_size"] == 64 and client.hash_size == 64
        assert p["tls_version"] == TLSV1_2 and client.tls_version == TLSV1_2
        assert p["tls_verify_host"] == 0
        assert p["tls_verify_peer"] == 0
        assert p["tls_client_cert"] == str(certs.client_cert)
        assert client.tls_client_cert == str(certs.client_cert)
        assert p["tls_client_key"] == str(certs.client_key)
        assert p["tls_ca_path"] == str(certs.capath)
        assert client.tls_ca_path == str(certs.capath)


# ---------------------------------------------------------------- hash_size


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        (1500, 1024),
        (2048, 2048),
        (2049, 2048),
        (4095, 2048),
        (3, 2),
        (2, 2),
        (1, 1),
        (0, 1),
        (-5, 1),
        ("1500", 1024),
        (" 16 ", 16),
    ],
)
def test_hash_size_rounded_down_to_power_of_two(given: object, expected: int) -> None:
    """Not a power of two -> rounded down; < 1 -> 1; strings accepted."""
    with hac.Client(hash_size=given) as client:  # type: ignore[arg-type]
        assert client.params["hash_size"] == expected
        assert client.hash_size == expected


def test_hash_size_one_still_serves_many(http_server: HTTPTestServer) -> None:
    """A one-bucket request table still tracks concurrent requests."""
    with hac.Client(hash_size=1) as client:
        handles = [client.query(f"{http_server.url}/echo?n={i}") for i in range(20)]
        replies = [h.result(timeout=WAIT) for h in handles]
    assert [_echo(r)["path"] for r in replies] == [f"/echo?n={i}" for i in range(20)]


# ------------------------------------------------------- string parameters


def test_numeric_strings_accepted() -> None:
    """The seed passes strings: numeric strings work for every int param."""
    with hac.Client(
        workers="2",  # type: ignore[arg-type]
        connection_timeout="750",  # type: ignore[arg-type]
        hash_size="100",  # type: ignore[arg-type]
        tls_version="6",  # type: ignore[arg-type]
        tls_verify_host="0",  # type: ignore[arg-type]
        tls_verify_peer="0",  # type: ignore[arg-type]
        curl_verbose="0",  # type: ignore[arg-type]
    ) as client:
        p = client.params
        assert p["workers"] == 2
        assert p["connection_timeout"] == 750
        assert p["hash_size"] == 64
        assert p["tls_version"] == 6
        assert p["tls_verify_host"] == 0
        assert p["tls_verify_peer"] == 0
        assert p["curl_verbose"] == 0
        assert isinstance(p["workers"], int)


# ------------------------------------------------------------------ workers


@pytest.mark.parametrize("bad", [0, -1, "0", "-3"])
def test_workers_below_one_rejected(bad: object) -> None:
    """workers < 1 is an error."""
    with pytest.raises(hac.InvalidOption, match="workers"):
        hac.Client(workers=bad)  # type: ignore[arg-type]


@pytest.mark.parametrize("bad", ["x", "", "1.5"])
def test_workers_not_a_number_rejected(bad: str) -> None:
    """A non-numeric string is an InvalidOption naming the parameter."""
    with pytest.raises(hac.InvalidOption, match="workers"):
        hac.Client(workers=bad)  # type: ignore[arg-type]


def test_workers_wrong_type_rejected() -> None:
    """A float or None is a type error."""
    with pytest.raises(hac.InvalidOptionType):
        hac.Client(workers=1.5)  # type: ignore[arg-type]
    with pytest.raises(hac.InvalidOptionType):
        hac.Client(workers=None)  # type: ignore[arg-type]


@pytest.mark.parametrize("n", [2, 4])
def test_workers_many_concurrent(http_server: HTTPTestServer, n: int) -> None:
    """With several workers, 40 concurrent queries all succeed, each with its
    own reply."""
    with hac.Client(workers=n) as client:
        assert client.workers == n
        handles = [client.query(f"{http_server.url}/echo?i={i}") for i in range(40)]
        replies = [h.result(timeout=WAIT) for h in handles]
        stats = client.stats()
    assert [_echo(r)["path"] for r in replies] == [f"/echo?i={i}" for i in range(40)]
    assert len({r.id for r in replies}) == 40
    assert stats["requests"] == 40 and stats["replies"] == 40
    assert stats["errors"] == 0 and stats["timeouts"] == 0


@pytest.mark.parametrize("n", [1, 2, 4])
def test_workers_spread_round_robin(fresh_http_server: HTTPTestServer, n: int) -> None:
    """Sequential queries go round-robin to the workers; each worker has its
    own curl multi handle and so its own kept-alive connection."""
    with hac.Client(workers=n) as client:
        for i in range(2 * n + 2):
            _echo(client.query(f"{fresh_http_server.url}/echo").result(timeout=WAIT))
    ports = {r["peer_port"] for r in fresh_http_server.requests}
    assert len(fresh_http_server.requests) == 2 * n + 2
    assert fresh_http_server.connections == n
    assert len(ports) == n


# ------------------------------------------------------- connection_timeout


def test_default_connection_timeout_times_out(http_server: HTTPTestServer) -> None:
    """The default 500 ms deadline cuts a reply that takes 800 ms."""
    with hac.Client() as client:
        start = time.monotonic()
        reply = client.query(f"{http_server.url}/delay/800").result(timeout=WAIT)
        elapsed = time.monotonic() - start
        stats = client.stats()
    assert not reply.ok
    assert reply.timed_out
    assert reply.err is not None and reply.err.startswith("TIMEOUT")
    assert 0.45 <= elapsed < 2.0  # the 500 ms deadline, not an early failure
    assert stats["timeouts"] == 1
    assert stats["errors"] == 0
    assert stats["requests"] == 1


def test_longer_connection_timeout_succeeds(http_server: HTTPTestServer) -> None:
    """connection_timeout=2000 lets an 800 ms reply arrive."""
    with hac.Client(connection_timeout=2000) as client:
        reply = client.query(f"{http_server.url}/delay/800").result(timeout=WAIT)
        stats = client.stats()
    assert reply.ok, reply.err
    assert not reply.timed_out
    assert reply.status == 200 and reply.body == b"delayed 800"
    assert stats["timeouts"] == 0 and stats["errors"] == 0 and stats["replies"] == 1


def test_short_connection_timeout_string(http_server: HTTPTestServer) -> None:
    """connection_timeout given as a string ("150") is a 150 ms deadline."""
    with hac.Client(connection_timeout="150") as client:  # type: ignore[arg-type]
        start = time.monotonic()
        reply = client.query(f"{http_server.url}/delay/400").result(timeout=WAIT)
        elapsed = time.monotonic() - start
    assert reply.timed_out and not reply.ok
    assert 0.12 <= elapsed < 2.0


@pytest.mark.parametrize("bad", [0, -1, -500, "0", "-10"])
def test_connection_timeout_not_positive_rejected(bad: object) -> None:
    """Zero or negative connection_timeout is an error."""
    with pytest.raises(hac.InvalidOption, match="connection_timeout"):
        hac.Client(connection_timeout=bad)  # type: ignore[arg-type]


# ----------------------------------------------------------- memory_manager


def test_memory_manager_bogus_rejected() -> None:
    """Only "shm" and "sys" are known."""
    with pytest.raises(hac.InvalidOption, match="memory_manager"):
        hac.Client(memory_manager="bogus")
    with pytest.raises(hac.InvalidOption):
        hac.Client(memory_manager="SHM ")


@pytest.mark.parametrize("bad", [1, None, b"shm"])
def test_memory_manager_wrong_type_rejected(bad: object) -> None:
    """A non-str memory_manager is a type error."""
    with pytest.raises(hac.InvalidOptionType):
        hac.Client(memory_manager=bad)  # type: ignore[arg-type]


def test_memory_manager_shm_accounts_bytes(http_server: HTTPTestServer) -> None:
    """With the accounted allocator, stats() shows bytes in use and a peak."""
    with hac.Client(memory_manager="shm") as client:
        if client.params["memory_manager"] != "shm":
            pytest.skip("an earlier client in this process chose 'sys' "
                        "(covered by test_memory_manager_first_client_wins_subprocess)")
        _echo(client.query(f"{http_server.url}/echo").result(timeout=WAIT))
        stats = client.stats()
    assert stats["mem_in_use"] > 0
    assert stats["mem_peak"] > 0
    assert stats["mem_peak"] >= stats["mem_in_use"]


def test_memory_manager_later_client_warns(caplog: pytest.LogCaptureFixture) -> None:
    """libcurl's allocator is process-wide: a later client asking for the
    other manager logs a warning and reports the effective one."""
    with hac.Client() as first:
        effective = first.params["memory_manager"]
    other = "sys" if effective == "shm" else "shm"
    caplog.set_level(logging.WARNING, logger=LOGGER)
    with hac.Client(memory_manager=other) as later:
        assert later.params["memory_manager"] == effective
        assert later.memory_manager == effective
    warnings = [
        r for r in caplog.records
        if r.name == LOGGER and r.levelno == logging.WARNING
        and "memory_manager" in r.getMessage()
    ]
    assert len(warnings) == 1
    assert other in warnings[0].getMessage()
    # asking for the effective one again is silent
    caplog.clear()
    with hac.Client(memory_manager=effective) as same:
        assert same.params["memory_manager"] == effective
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


_MM_SCRIPT = textwrap.dedent(
    """
    import json, logging, sys
    import http_async_client as hac

    url, first_mm, later_mm = sys.argv[1:4]
    records = []

    class Keep(logging.Handler):
        def emit(self, record):
            records.append((record.levelname, record.getMessage()))

    log = logging.getLogger("http_async_client")
    log.addHandler(Keep())
    log.setLevel(logging.DEBUG)
    kw = lambda mm: {} if mm == "default" else {"memory_manager": mm}
    out = {}
    with hac.Client(**kw(first_mm)) as first:
        out["first"] = first.params["memory_manager"]
        reply = first.query(url).result(timeout=5)
        out["ok"] = reply.ok
        stats = first.stats()
        out["mem_in_use"] = stats["mem_in_use"]
        out["mem_peak"] = stats["mem_peak"]
        with hac.Client(**kw(later_mm)) as later:
            out["later"] = later.params["memory_manager"]
    out["records"] = records
    print(json.dumps(out))
    """
)


@pytest.mark.parametrize(
    ("first_mm", "later_mm", "effective", "asked"),
    [("default", "sys", "shm", "sys"), ("sys", "default", "sys", "shm")],
)
def test_memory_manager_first_client_wins_subprocess(
    http_server: HTTPTestServer, first_mm: str, later_mm: str, effective: str, asked: str
) -> None:
    """In a fresh process the first client's choice sticks: a later client
    asking for the other manager warns and reports the effective one; only
    "shm" accounts bytes."""
    proc = subprocess.run(
        [sys.executable, "-c", _MM_SCRIPT, f"{http_server.url}/echo", first_mm, later_mm],
        capture_output=True, text=True, timeout=30,
    )
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["first"] == effective
    assert out["ok"] is True
    if effective == "shm":
        assert out["mem_in_use"] > 0 and out["mem_peak"] > 0
    assert out["later"] == effective
    warnings = [m for level, m in out["records"] if level == "WARNING"]
    assert len(warnings) == 1, out["records"]
    assert "memory_manager" in warnings[0] and repr(asked) in warnings[0]


# ------------------------------------------------------------- curl_verbose


def test_curl_verbose_traces_headers(
    http_server: HTTPTestServer, caplog: pytest.LogCaptureFixture
) -> None:
    """curl_verbose=1 sends the request/response header trace to the
    http_async_client logger at INFO, each line tagged with the request id."""
    caplog.set_level(logging.INFO, logger=LOGGER)
    with hac.Client(curl_verbose=1) as client:
        assert client.curl_verbose == 1
        reply = client.query(f"{http_server.url}/echo").result(timeout=WAIT)
    _echo(reply)
    lines = [
        r.getMessage() for r in caplog.records
        if r.name == LOGGER and r.levelno == logging.INFO
    ]
    tag = f"[{reply.id}]"
    assert any(line.startswith(f"{tag} >") and "> GET /echo" in line for line in lines), lines
    assert any(
        line.startswith(f"{tag} <") and "HTTP/1.1 200" in line for line in lines
    ), lines
    assert any(line.startswith(f"{tag} > Host: 127.0.0.1:") for line in lines), lines


def test_curl_verbose_off_is_silent(
    http_server: HTTPTestServer, caplog: pytest.LogCaptureFixture
) -> None:
    """With the default curl_verbose=0 nothing is traced."""
    caplog.set_level(logging.DEBUG, logger=LOGGER)
    with hac.Client() as client:
        _echo(client.query(f"{http_server.url}/echo").result(timeout=WAIT))
    assert not [
        r for r in caplog.records
        if r.name == LOGGER and ("> GET" in r.getMessage() or "< HTTP" in r.getMessage())
    ]


# ---------------------------------------------------------------------- TLS


def test_tls_verify_on_by_default(https_server: HTTPTestServer) -> None:
    """Without a CA path the test CA is unknown: verification fails."""
    with hac.Client() as client:
        reply = client.query(f"{https_server.url}/echo").result(timeout=WAIT)
        stats = client.stats()
    assert not reply.ok
    assert reply.err is not None and "certificate" in reply.err.lower()
    assert stats["errors"] == 1


def test_tls_ca_path_param_verifies(https_server: HTTPTestServer, certs: Certs) -> None:
    """tls_ca_path = the test CA directory: https_server verifies OK."""
    with hac.Client(tls_ca_path=certs.capath) as client:
        assert client.params["tls_ca_path"] == str(certs.capath)
        reply = client.query(f"{https_server.url}/echo").result(timeout=WAIT)
    assert _echo(reply)["method"] == "GET"


@pytest.mark.parametrize("https_server", ["selfsigned"], indirect=True)
def test_tls_verify_params_off(https_server: HTTPTestServer) -> None:
    """tls_verify_host=0 and tls_verify_peer=0 as module params accept a
    self-signed server."""
    with hac.Client(tls_verify_host=0, tls_verify_peer=0) as client:
        reply = client.query(f"{https_server.url}/echo").result(timeout=WAIT)
    _echo(reply)


@pytest.mark.parametrize("https_server", ["wronghost"], indirect=True)
def test_tls_verify_host_param_off(https_server: HTTPTestServer, certs: Certs) -> None:
    """tls_verify_host=0 accepts a CA-signed cert for another host name; the
    default (2) refuses it."""
    with hac.Client(tls_ca_path=certs.capath, tls_verify_host=0) as client:
        ok = client.query(f"{https_server.url}/echo").result(timeout=WAIT)
    with hac.Client(tls_ca_path=certs.capath) as client:
        bad = client.query(f"{https_server.url}/echo").result(timeout=WAIT)
    _echo(ok)
    assert not bad.ok
    assert bad.err is not None
    assert "host name" in bad.err or "certificate" in bad.err.lower(), bad.err


def test_tls_version_tls12(https_server: HTTPTestServer, certs: Certs) -> None:
    """tls_version=6 (CURL_SSLVERSION_TLSv1_2) is accepted and works."""
    with hac.Client(tls_version=TLSV1_2, tls_ca_path=certs.capath) as client:
        assert client.params["tls_version"] == TLSV1_2
        reply = client.query(f"{https_server.url}/echo").result(timeout=WAIT)
    _echo(reply)


def test_tls_version_tls12_verify_off(https_server: HTTPTestServer) -> None:
    """tls_version=6 with verification off also works."""
    with hac.Client(tls_version=TLSV1_2, tls_verify_peer=0, tls_verify_host=0) as client:
        reply = client.query(f"{https_server.url}/echo").result(timeout=WAIT)
    _echo(reply)


def test_tls_version_reaches_curl(https_server: HTTPTestServer, certs: Certs) -> None:
    """tls_version is really handed to curl: TLS 1.0 only (min 1.0, max 1.0)
    cannot talk to a server that requires at least TLS 1.2."""
    with hac.Client(tls_version=TLSV1_0 | MAX_TLSV1_0, tls_ca_path=certs.capath) as client:
        reply = client.query(f"{https_server.url}/echo").result(timeout=WAIT)
    assert not reply.ok
    assert reply.err is not None and "SSL" in reply.err


def test_tls_version_negative_rejected() -> None:
    """A negative tls_version is an error."""
    with pytest.raises(hac.InvalidOption, match="tls_version"):
        hac.Client(tls_version=-1)


@pytest.mark.parametrize("https_server", ["clientcert"], indirect=True)
def test_tls_client_cert_params_accepted(
    https_server: HTTPTestServer, certs: Certs
) -> None:
    """tls_client_cert/tls_client_key as module params: the server that
    requires a client certificate accepts the query."""
    with hac.Client(
        tls_client_cert=certs.client_cert,
        tls_client_key=certs.client_key,
        tls_ca_path=certs.capath,
    ) as client:
        reply = client.query(f"{https_server.url}/echo").result(timeout=WAIT)
    assert _echo(reply)["path"] == "/echo"


@pytest.mark.parametrize("https_server", ["clientcert"], indirect=True)
def test_tls_client_cert_missing_refused(
    https_server: HTTPTestServer, certs: Certs
) -> None:
    """Without a client certificate the same server refuses the query."""
    with hac.Client(tls_ca_path=certs.capath) as client:
        reply = client.query(f"{https_server.url}/echo").result(timeout=WAIT)
        stats = client.stats()
    assert not reply.ok
    assert reply.status == 0
    assert stats["errors"] == 1


@pytest.mark.parametrize("name", ["tls_client_cert", "tls_client_key", "tls_ca_path"])
def test_tls_path_params_type_checked(name: str) -> None:
    """Path params take str/PathLike; other types are type errors, NUL bytes
    are errors."""
    with pytest.raises(hac.InvalidOptionType):
        hac.Client(**{name: 5})
    with pytest.raises(hac.InvalidOption):
        hac.Client(**{name: "/tmp/a\x00b"})


# ----------------------------------- (5.x): redirects, keep-alive, auth


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
