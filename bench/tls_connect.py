#!/usr/bin/env python3
"""What a new HTTPS connection costs with certificate verification on.

nginx (pinned to core 0) serves HTTP/1.1 over TLS on two ports: one with
``keepalive_timeout 0`` (every response closes its connection, so every
request is a new TCP connection and a full or resumed TLS handshake) and one
with keep-alive (the "open" rows: 64 requests on 64 connections opened by an
untimed first round).  Each row runs in a child process pinned to core 1:
one client, ``--rounds`` rounds of ``--conns`` concurrent GETs, after one
untimed warm-up round (the first handshake of a worker loads the trust store
once; the rows measure what every later connection costs).

Rows "<client> <server> <CA>": ours and pycurl (the wheel's libcurl);
server "new" (a new connection per request, sessions may resume), "full"
(the same with nginx's session cache and tickets off: every handshake is a
full one and verifies the certificate), "open" (kept-alive connections); CA
"off" (no verification), "file" (the test CA as a file), "dir" (a hashed
directory, ``openssl rehash``), "bundle" (a copy of the system bundle with
the test CA appended: the parse cost of a default trust store).  Printed
per row: median ms per round and its ratio to the same client and server
with verification off, CPU µs per request of the child process (all its
threads, ``getrusage``) and its ratio, the share of requests nginx saw on a
resumed TLS session, and the libcurl version.

    .venv-3.11/bin/python bench/tls_connect.py [--rounds 7] [--conns 64]
    HAC_CURL_PREFIX=... builds: --python .venv-curl7/bin/python
"""

from __future__ import annotations

import argparse
import io
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(1, str(HERE))
from harness import CLIENT_CORE, SERVER_CORE, pinned  # noqa: E402
from support.certs import make_certs  # noqa: E402
from support.nginx import NginxProcess  # noqa: E402
from support.ports import HOST, free_ports  # noqa: E402

SYSTEM_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")

_CONF = """\
daemon off;
master_process on;
worker_processes 1;
pid {d}/nginx.pid;
error_log {d}/error.log warn;
events {{ worker_connections 4096; }}
http {{
    client_body_temp_path {d}/tmp/body;
    proxy_temp_path {d}/tmp/proxy;
    fastcgi_temp_path {d}/tmp/fastcgi;
    uwsgi_temp_path {d}/tmp/uwsgi;
    scgi_temp_path {d}/tmp/scgi;
    log_format resumed '$ssl_session_reused';
    access_log {d}/access.log resumed;
    ssl_certificate {cert};
    ssl_certificate_key {key};
    ssl_session_cache shared:tls:1m;
    server {{
        listen {host}:{close_port} ssl;
        keepalive_timeout 0;
        location / {{ return 200 "ok"; }}
    }}
    server {{
        listen {host}:{full_port} ssl;
        keepalive_timeout 0;
        ssl_session_cache off;
        ssl_session_tickets off;
        location / {{ return 200 "ok"; }}
    }}
    server {{
        listen {host}:{keep_port} ssl;
        keepalive_timeout 60s;
        keepalive_requests 1000000;
        location / {{ return 200 "ok"; }}
    }}
}}
"""

# row name -> (client, CA source or None for verification off, server:
# "new" closes after each response, "full" also refuses session resumption,
# "open" keeps connections alive)
ROWS: dict[str, tuple[str, str | None, str]] = {}
for _who in ("ours", "pycurl"):
    for _mode, _cas in (("new", (None, "file", "dir", "bundle")),
                        ("full", (None, "file", "dir", "bundle")),
                        ("open", (None, "file", "dir"))):
        for _ca in _cas:
            ROWS[f"{_who} {_mode} {_ca or 'off'}"] = (_who, _ca, _mode)


# ------------------------------------------------------------------ children


def _rounds(one_round: Any, rounds: int) -> dict[str, Any]:
    one_round()  # warm-up: trust store loaded, (open rows) connections opened
    times = []
    r0 = resource.getrusage(resource.RUSAGE_SELF)
    for _ in range(rounds):
        t0 = time.perf_counter()
        one_round()
        times.append((time.perf_counter() - t0) * 1000)
    r1 = resource.getrusage(resource.RUSAGE_SELF)
    cpu = (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)
    return {"ms": statistics.median(times), "cpu_s": cpu}


def child_ours(a: argparse.Namespace) -> dict[str, Any]:
    import http_async_client as hac

    kw: dict[str, Any] = {"connection_timeout": 20000}
    if a.ca is None:
        kw.update(tls_verify_peer=0, tls_verify_host=0)
    elif a.ca == "dir":
        kw["tls_ca_path"] = a.ca_dir
    else:
        kw["tls_ca_file"] = a.ca_file if a.ca == "file" else a.bundle
    bad = 0
    with hac.Client(**kw) as client:

        def one_round() -> None:
            nonlocal bad
            for _ in range(a.conns):
                client.query(a.url)
            for r in client.completions():  # ends when none is in flight
                if not (r.ok and r.status == 200):
                    bad += 1

        out = _rounds(one_round, a.rounds)
    out.update(libcurl=hac.curl_version(), errors=bad)
    return out


def child_pycurl(a: argparse.Namespace) -> dict[str, Any]:
    import pycurl

    m = pycurl.CurlMulti()
    handles = []
    for _ in range(a.conns):
        c = pycurl.Curl()
        c.setopt(pycurl.URL, a.url)
        c.setopt(pycurl.WRITEDATA, io.BytesIO())
        c.setopt(pycurl.NOSIGNAL, 1)
        c.setopt(pycurl.TIMEOUT_MS, 20000)
        if a.ca is None:
            c.setopt(pycurl.SSL_VERIFYPEER, 0)
            c.setopt(pycurl.SSL_VERIFYHOST, 0)
        elif a.ca == "dir":
            c.setopt(pycurl.CAPATH, a.ca_dir)
        else:
            c.setopt(pycurl.CAINFO, a.ca_file if a.ca == "file" else a.bundle)
        handles.append(c)
    bad = 0

    def one_round() -> None:
        nonlocal bad
        for c in handles:
            m.add_handle(c)
        active = len(handles)
        while active:
            while m.perform()[0] == pycurl.E_CALL_MULTI_PERFORM:
                pass
            while True:
                queued, ok_list, err_list = m.info_read()
                for c in ok_list:
                    m.remove_handle(c)
                    active -= 1
                    if c.getinfo(pycurl.RESPONSE_CODE) != 200:
                        bad += 1
                for c, _n, _msg in err_list:
                    m.remove_handle(c)
                    active -= 1
                    bad += 1
                if not queued:
                    break
            if active:
                m.select(0.1)

    out = _rounds(one_round, a.rounds)
    version = pycurl.version_info()[1]
    out.update(libcurl=version, errors=bad)
    return out


# ------------------------------------------------------------------ parent


def _log_lines(log: Path) -> list[str]:
    try:
        return log.read_text().split()
    except OSError:
        return []


def run_row(a: argparse.Namespace, name: str, env: dict[str, str]) -> dict[str, Any]:
    who, ca, mode = ROWS[name]
    url = a.urls[mode]
    python = a.pycurl_python if who == "pycurl" else a.python
    argv = [python, str(Path(__file__).resolve()), "--child", who, "--url", url,
            "--conns", str(a.conns), "--rounds", str(a.rounds), "--ca-file", a.ca_file,
            "--ca-dir", a.ca_dir, "--bundle", a.bundle]
    if ca:
        argv += ["--ca", ca]
    before = len(_log_lines(a.access_log))
    proc = subprocess.run(pinned(CLIENT_CORE, argv), capture_output=True, text=True,
                          timeout=600, env=env)
    if proc.returncode != 0:
        return {"error": (proc.stderr.strip().splitlines() or ["?"])[-1]}
    result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    # nginx logs "r" for a request on a resumed TLS session ("." for a full
    # handshake); the open rows log every request of their connections
    time.sleep(0.2)  # nginx writes the log line after the response
    lines = _log_lines(a.access_log)[before:]
    result["resumed"] = lines.count("r") / len(lines) if lines else 0.0
    return result


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rounds", type=int, default=7)
    p.add_argument("--conns", type=int, default=64)
    p.add_argument("--python", default=sys.executable, help="interpreter of our client's rows")
    p.add_argument("--pycurl-python", default=sys.executable)
    p.add_argument("--rows", default=",".join(ROWS), help="comma-separated row names")
    p.add_argument("--child", choices=("ours", "pycurl"))
    p.add_argument("--url", default="")
    p.add_argument("--ca", choices=("file", "dir", "bundle"))
    p.add_argument("--ca-file", default="")
    p.add_argument("--ca-dir", default="")
    p.add_argument("--bundle", default="")
    a = p.parse_args()
    if a.child:
        out = child_ours(a) if a.child == "ours" else child_pycurl(a)
        print(json.dumps(out))
        return 0

    d = Path(tempfile.mkdtemp(prefix="hac-tls-bench-"))
    try:
        os.chmod(d, 0o755)
        pki = make_certs(d / "pki")
        bundle = d / "bundle.pem"
        bundle.write_bytes(SYSTEM_BUNDLE.read_bytes() + pki.ca_cert.read_bytes())
        close_port, full_port, keep_port = free_ports(3)
        nginx = NginxProcess(d / "nginx", wrap=lambda argv: pinned(SERVER_CORE, argv))
        (d / "nginx").mkdir()
        nginx.start(_CONF.format(d=d / "nginx", host=HOST, close_port=close_port,
                                 full_port=full_port, keep_port=keep_port,
                                 cert=pki.server_cert, key=pki.server_key),
                    [close_port, full_port, keep_port])
        a.access_log = d / "nginx" / "access.log"
        a.urls = {"new": f"https://{HOST}:{close_port}/",
                  "full": f"https://{HOST}:{full_port}/",
                  "open": f"https://{HOST}:{keep_port}/"}
        a.ca_file, a.ca_dir, a.bundle = str(pki.ca_cert), str(pki.capath), str(bundle)
        try:
            results: dict[str, dict[str, Any]] = {}
            print(f"{a.conns} GETs per round, median of {a.rounds} rounds; client core "
                  f"{CLIENT_CORE}, nginx core {SERVER_CORE}")
            print(f"{'row':<20}{'ms/round':>9}{'× off':>7}{'CPU µs/req':>11}{'× off':>7}"
                  f"{'resumed':>8}{'errors':>7}  libcurl")
            for name in a.rows.split(","):
                who = ROWS[name][0]
                res = run_row(a, name, dict(os.environ))
                results[name] = res
                if "error" in res:
                    print(f"{name:<18}  failed: {res['error']}")
                    continue
                per = res["cpu_s"] * 1e6 / (a.rounds * a.conns)
                res["cpu_us"] = per
                who, _ca, mode = ROWS[name]
                base = results.get(f"{who} {mode} off", {})
                ms_x = f"{res['ms'] / base['ms']:.2f}" if base.get("ms") else "-"
                cpu_x = f"{per / base['cpu_us']:.2f}" if base.get("cpu_us") else "-"
                print(f"{name:<20}{res['ms']:>9.1f}{ms_x:>7}{per:>11.0f}{cpu_x:>7}"
                      f"{res['resumed']:>8.0%}{res['errors']:>7}  {res['libcurl']}", flush=True)
        finally:
            nginx.stop()
    finally:
        shutil.rmtree(d, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
