"""The CLI (``fetch``, ``bench``, the no-argument demo), in a subprocess,
against real loopback servers."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from support.certs import Certs
from support.nginx import Nginx
from support.servers import HTTPSServers, HTTPTestServer

try:
    import rich  # noqa: F401

    HAVE_RICH = True
except ImportError:  # pragma: no cover - rich is in the [test] extra
    HAVE_RICH = False


def run_cli(*args: str, timeout: float = 60, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "http_async_client", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
    )


def section(out: str, title: str) -> str:
    """The lines of one report section (up to the next blank line)."""
    m = re.search(rf"^{re.escape(title)}\n((?:  .*\n)+)", out, re.M)
    assert m, f"no {title!r} section in:\n{out}"
    return m.group(1)


def server_pid(out: str) -> int:
    m = re.search(r"embedded loopback server http://127\.0\.0\.1:\d+/ \(pid (\d+)\)", out)
    assert m, out
    return int(m.group(1))


def gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


# ------------------------------------------------------------------ the demo


def test_demo_load_against_embedded_server() -> None:
    """No subcommand, no URL: embedded loopback server, bounded load, a
    report whose lines keep the original demo's form."""
    result = run_cli("-n", "3000", "-c", "32", "-z", "10")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    m = re.search(r"(\d+) requests in [\d.]+ s: (\d+) requests/s, (\d+) ok, (\d+) errors", out)
    assert m, out
    assert int(m.group(1)) == 3000 and int(m.group(3)) == 3000 and m.group(4) == "0"
    assert re.search(r"latency p50 \d+ us\s+p90 \d+ us\s+p99 \d+ us\s+p99\.9 \d+ us\s+max \d+ us", out), out
    assert "stats: requests=3000, replies=3000, errors=0, timeouts=0" in out
    assert "3000 requests max, 10 s max, concurrency 32, workers 1" in out
    assert gone(server_pid(out))


# ------------------------------------------------------------------ bench


def test_bench_alone_is_a_complete_demo() -> None:
    """`bench` with no URL: loopback server, full plain report, progress
    lines on stderr (not a terminal)."""
    result = run_cli("bench", "-n", "2000", "-c", "16", "--workers", "2")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert out.startswith("http_async_client ")
    assert "2000 requests max, concurrency 16, workers 2" in out
    summary = section(out, "Summary:")
    assert re.search(r"2000 requests in [\d.]+ s: \d+ requests/s, 2000 ok, 0 errors", summary)
    assert re.search(r"transferred: [\d.]+ KiB received \(3\.91 KiB of bodies\)", summary), summary
    lat = section(out, "Latency (transfer time, C histograms):")
    values = [int(v) for v in re.findall(r"p50 (\d+) us  p90 (\d+) us  p99 (\d+) us  p99\.9 (\d+) us  max (\d+) us", lat)[0]]
    assert values == sorted(values) and values[0] > 0
    hist = section(out, "Latency histogram (log-spaced buckets):")
    counts = [int(c) for c in re.findall(r"us\s+(\d+)", hist)]
    assert sum(counts) == 2000 and len(counts) == 12
    assert section(out, "Status codes:").split() == ["200", "2000", "(100.0%)"]
    assert section(out, "Errors:").strip() == "none"
    assert "stats: requests=2000, replies=2000, errors=0, timeouts=0" in out
    # plain progress: a line per second and a last one at the end
    assert re.search(r"\[\s*[\d.]+ s\] 2000/2000 done \(100%\), \d+ req/s, 0 errors, 0 in flight", result.stderr)
    assert "\x1b[" not in out + result.stderr  # no terminal control codes off a terminal
    assert gone(server_pid(out))


def test_bench_json(fresh_http_server: HTTPTestServer) -> None:
    result = run_cli("bench", "-n", "300", "-c", "8", "--json", f"{fresh_http_server.url}/bytes/100")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)  # nothing but JSON on stdout
    assert report["summary"]["completed"] == 300 and report["summary"]["ok"] == 300
    assert report["summary"]["errors"] == 0 and report["interrupted"] is False
    assert report["status_codes"] == {"200": 300}
    assert report["error_kinds"] == {}
    assert report["bytes"]["received_body"] == 30000
    assert set(report["latency_us"]) == {"min", "mean", "stdev", "p50", "p90", "p99", "p99.9", "max"}
    assert sum(b["count"] for b in report["histogram_us"]) == 300
    assert report["stats"]["requests"] == 300
    assert report["config"]["concurrency"] == 8
    assert len(fresh_http_server.requests) == 300
    assert "http_async_client" in result.stderr  # the banner went to stderr


def test_bench_method_headers_body(fresh_http_server: HTTPTestServer, tmp_path: Path) -> None:
    body = tmp_path / "body.json"
    body.write_bytes(b'{"k": 1}')
    result = run_cli(
        "bench", "-n", "20", "-c", "4", "-X", "PUT", "-H", "X-Bench: yes", "-H",
        "Content-Type: application/json", "-d", f"@{body}", f"{fresh_http_server.url}/echo",
    )
    assert result.returncode == 0, result.stderr
    reqs = fresh_http_server.requests.snapshot()
    assert len(reqs) == 20
    for req in reqs:
        assert req["method"] == "PUT" and req["body"] == b'{"k": 1}'
        assert ("X-Bench", "yes") in req["headers"]
        assert ("Content-Type", "application/json") in req["headers"]
    assert "160 B of request bodies sent" in result.stdout


def test_bench_rate_limit(fresh_http_server: HTTPTestServer) -> None:
    """--rate: a fixed schedule, so 40 requests at 80/s take about 0.5 s."""
    started = time.monotonic()
    result = run_cli("bench", "-n", "40", "--rate", "80", "--json", f"{fresh_http_server.url}/echo")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["summary"]["completed"] == 40
    assert 0.45 <= report["summary"]["seconds"] < 2.0, report["summary"]
    assert 20 < report["summary"]["requests_per_s"] <= 90
    assert time.monotonic() - started >= 0.45
    ports = {r["peer_port"] for r in fresh_http_server.requests.snapshot()}
    # paced requests reuse their connections (a late loop, e.g. under ASan,
    # catches up with a short burst that may open a few more)
    assert len(ports) <= 8


def test_bench_duration() -> None:
    started = time.monotonic()
    result = run_cli("bench", "-z", "1s", "-c", "8", "--no-progress")
    elapsed = time.monotonic() - started
    assert result.returncode == 0, result.stderr
    assert "1 s max, concurrency 8" in result.stdout
    m = re.search(r"(\d+) requests in ([\d.]+) s", result.stdout)
    assert m and int(m.group(1)) > 100 and 0.9 < float(m.group(2)) < 3, result.stdout
    assert elapsed < 15
    assert result.stderr == ""  # --no-progress


def test_bench_error_kinds_and_exit_code() -> None:
    result = run_cli("bench", "-n", "50", "-c", "5", "--timeout", "2000", "http://127.0.0.1:9/")
    assert result.returncode == 1
    assert re.search(r"50 requests in [\d.]+ s: \d+ requests/s, 0 ok, 50 errors", result.stdout)
    # curl_easy_strerror's wording changed in libcurl 8 ("Could not")
    assert re.fullmatch(
        r"50  Could(n't| not) connect to server \(curl error 7\)",
        section(result.stdout, "Errors:").strip(),
    )
    assert section(result.stdout, "Status codes:").strip() == "none"


def test_bench_timeouts_and_status_codes(fresh_http_server: HTTPTestServer) -> None:
    late = run_cli("bench", "-n", "4", "-c", "4", "--timeout", "100", "--json", f"{fresh_http_server.url}/delay/1000")
    assert late.returncode == 1
    assert json.loads(late.stdout)["error_kinds"] == {"timeout": 4}
    bad = run_cli("bench", "-n", "10", "-c", "2", f"{fresh_http_server.url}/status/503")
    assert bad.returncode == 1
    assert section(bad.stdout, "Status codes:").split() == ["503", "10", "(100.0%)"]
    assert section(bad.stdout, "Errors:").strip() == "none"  # transfers fine, HTTP errors
    assert re.search(r"10 requests in [\d.]+ s: \d+ requests/s, 0 ok, 10 errors", bad.stdout)


def test_bench_ctrl_c_prints_the_partial_report() -> None:
    """SIGINT: stop sending, drain what is in flight, print the partial
    report, exit 130; the embedded server goes away."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "http_async_client", "bench", "-z", "60", "-c", "16"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        assert proc.stderr is not None
        first = proc.stderr.readline()  # the first progress line: the load is running
        assert re.match(r"\[\s*[\d.]+ s\] \d+ done", first), first
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:  # pragma: no cover - only on failure
            proc.kill()
            proc.wait()
    assert proc.returncode == 130, err
    assert "interrupted: stopped sending" in err
    assert "Traceback" not in err
    assert "Summary:  (interrupted: partial results)" in out
    m = re.search(r"(\d+) requests in [\d.]+ s: \d+ requests/s, (\d+) ok, 0 errors", out)
    assert m and int(m.group(1)) > 0 and m.group(1) == m.group(2), out
    assert re.search(rf"stats: requests={m.group(1)}, replies={m.group(1)}, errors=0", out), out
    assert gone(server_pid(out))


def test_bench_second_ctrl_c_abandons_what_is_in_flight(fresh_http_server: HTTPTestServer) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "http_async_client", "bench", "-z", "60", "-c", "4",
         "--timeout", "30000", f"{fresh_http_server.url}/delay/20000"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        assert proc.stderr is not None
        proc.stderr.readline()
        proc.send_signal(signal.SIGINT)
        assert "waiting for 4 in flight" in proc.stderr.readline()
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=10)
    finally:
        if proc.poll() is None:  # pragma: no cover
            proc.kill()
            proc.wait()
    assert proc.returncode == 130, err
    assert "abandoned: 4 requests still in flight were not waited for" in out
    assert "0 requests in" in out


@pytest.mark.skipif(not HAVE_RICH, reason="rich is not installed")
def test_bench_rich_ui() -> None:
    """--ui rich (forced, as on a terminal): a live bar on stderr, tables."""
    result = run_cli("bench", "-n", "1000", "-c", "8", "--ui", "rich")
    assert result.returncode == 0, result.stderr
    assert "\u2501" in result.stderr and "100%" in result.stderr  # the bar
    assert "\x1b[" in result.stderr  # drawn with terminal control codes
    plain = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", result.stdout)
    for title in ("Summary", "Latency (transfer time, C histograms, us)", "Latency histogram", "Status codes", "Errors"):
        assert title in plain, plain
    assert re.search(r"requests\s+1000 in [\d.]+ s", plain)
    assert re.search(r"200\s+1000\s+100\.0%", plain)
    assert "stats: requests=1000, replies=1000, errors=0, timeouts=0" in plain


def test_bench_without_rich(tmp_path: Path) -> None:
    """rich is optional: without it `auto` is plain and `--ui rich` says
    how to get it."""
    (tmp_path / "rich").mkdir()
    (tmp_path / "rich" / "__init__.py").write_text("raise ImportError('rich hidden for this test')\n")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(tmp_path), os.environ.get("PYTHONPATH", "")]))
    forced = run_cli("bench", "-n", "10", "--ui", "rich", env=env)
    assert forced.returncode == 2
    assert "pip install 'http_async_client[cli]'" in forced.stderr
    auto = run_cli("bench", "-n", "200", env=env)
    assert auto.returncode == 0, auto.stderr
    assert "Summary:" in auto.stdout and "Latency histogram (log-spaced buckets):" in auto.stdout


def test_bench_bad_arguments() -> None:
    for args in (["-n", "0"], ["-c", "-1"], ["-z", "soon"], ["--rate", "0"], ["--ui", "fancy"]):
        result = run_cli("bench", *args)
        assert result.returncode == 2, args
        assert "error:" in result.stderr
    two = run_cli("bench", "http://127.0.0.1:9/", "http://127.0.0.1:9/")
    assert two.returncode == 2
    # refused before any server starts or anything is sent, with the library's message
    for args, message in (
        (["ftp://127.0.0.1/"], "scheme must be http or https"),
        (["-H", "No colon"], "header has no ':'"),
        (["-X", "BREW"], "unsupported method 'BREW'"),
        (["-d", "@/nonexistent/body"], "No such file"),
    ):
        result = run_cli("bench", "-n", "5", *args)
        assert result.returncode == 2, args
        assert message in result.stderr and result.stdout == "", (args, result.stdout)


# ------------------------------------------------------------------ fetch


def test_fetch_urls_old_form(http_server: HTTPTestServer) -> None:
    """URLs without a subcommand: fetch, one line each; exit 0 when all succeed."""
    urls = [f"{http_server.url}/bytes/10", f"{http_server.url}/bytes/20"]
    result = run_cli(*urls)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.strip().splitlines()
    assert len(lines) == 2
    assert any(line.startswith("200") and "10 B" in line for line in lines)
    assert any(line.startswith("200") and "20 B" in line for line in lines)


def test_fetch_summary_lines(http_server: HTTPTestServer) -> None:
    urls = [f"{http_server.url}/bytes/{n}" for n in (1, 22, 333)]
    result = run_cli("fetch", *urls)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == 3
    for n in (1, 22, 333):
        assert any(
            re.fullmatch(rf"200\s+[\d.]+ ms\s+{n} B  HTTP/1\.1\s+{re.escape(http_server.url)}/bytes/{n}", line)
            for line in lines
        ), lines


def test_fetch_failure_sets_exit_code(http_server: HTTPTestServer) -> None:
    result = run_cli("fetch", f"{http_server.url}/echo", "http://127.0.0.1:9/")
    assert result.returncode == 1
    assert "ERR" in result.stdout and "curl error 7" in result.stdout


def test_fetch_timeout(http_server: HTTPTestServer) -> None:
    result = run_cli("fetch", "--timeout", "100", f"{http_server.url}/delay/1000")
    assert result.returncode == 1
    assert "TIMEOUT: " in result.stdout


def test_fetch_fail_flag_counts_http_errors(http_server: HTTPTestServer) -> None:
    url = f"{http_server.url}/status/404"
    assert run_cli("fetch", url).returncode == 0  # like curl: a 404 is a transfer that worked
    result = run_cli("fetch", "-f", url)
    assert result.returncode == 1 and result.stdout.startswith("404")


def test_fetch_bad_url_is_a_clear_error() -> None:
    result = run_cli("fetch", "ftp://127.0.0.1/")
    assert result.returncode == 2
    assert "scheme must be http or https" in result.stderr
    assert run_cli("ftp://127.0.0.1/").returncode == 2  # old form too


def test_fetch_method_headers_data(fresh_http_server: HTTPTestServer, tmp_path: Path) -> None:
    result = run_cli("fetch", "-X", "PATCH", "-H", "X-One: 1", "-H", "X-Two: 2", "-d", "hello",
                     f"{fresh_http_server.url}/echo")
    assert result.returncode == 0, result.stderr
    (req,) = fresh_http_server.requests.snapshot()
    assert req["method"] == "PATCH" and req["body"] == b"hello"
    assert ("X-One", "1") in req["headers"] and ("X-Two", "2") in req["headers"]
    (tmp_path / "data.bin").write_bytes(b"\x00\x01from file")
    result = run_cli("fetch", "-d", f"@{tmp_path / 'data.bin'}", f"{fresh_http_server.url}/echo")
    assert result.returncode == 0
    assert fresh_http_server.requests[1]["method"] == "POST"
    assert fresh_http_server.requests[1]["body"] == b"\x00\x01from file"
    missing = run_cli("fetch", "-d", f"@{tmp_path / 'nope'}", f"{fresh_http_server.url}/echo")
    assert missing.returncode == 2 and "No such file" in missing.stderr


def test_fetch_include_headers(http_server: HTTPTestServer) -> None:
    result = run_cli("fetch", "-i", f"{http_server.url}/headers")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith("200")
    assert lines[1] == "    HTTP/1.1 200 OK"
    assert "    X-Multi: one" in lines and "    X-Multi: three" in lines
    assert "    Set-Cookie: b=2" in lines


def test_fetch_output_dir(http_server: HTTPTestServer, tmp_path: Path) -> None:
    out = tmp_path / "bodies"
    urls = [f"{http_server.url}/bytes/64", f"{http_server.url}/echo?x=1", f"{http_server.url}/"]
    result = run_cli("fetch", "-o", str(out), *urls)
    assert result.returncode == 0, result.stderr
    files = sorted(p.name for p in out.iterdir())
    assert files == ["1-64", "2-echo", "3-127.0.0.1_" + str(http_server.port) + "-index"]
    assert (out / "1-64").read_bytes() == bytes(range(64))
    assert json.loads((out / "2-echo").read_text())["path"] == "/echo?x=1"
    assert f"-> {out / '1-64'}" in result.stdout


def test_fetch_output_to_stdout(http_server: HTTPTestServer) -> None:
    result = run_cli("fetch", "-o", "-", f"{http_server.url}/status/200")
    assert result.returncode == 0
    assert result.stdout.splitlines()[1] == "status 200"


def test_fetch_follow_redirects(http_server: HTTPTestServer) -> None:
    url = f"{http_server.url}/redirect/2"
    assert run_cli("fetch", url).stdout.startswith("302")
    followed = run_cli("fetch", "-L", url)
    assert followed.stdout.startswith("200") and "6 B" in followed.stdout  # "landed"


def test_fetch_http2(nginx: Nginx, fresh_http_server: HTTPTestServer) -> None:
    """--http2-prior-knowledge speaks h2c; --http2 asks with Upgrade: h2c
    (an HTTP/1.1 server just answers), ALPN on https."""
    result = run_cli("fetch", "--http2-prior-knowledge", f"{nginx.h2c_url}/")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "HTTP/2 " in result.stdout
    assert "HTTP/2" not in run_cli("fetch", f"{nginx.h2c_url}/").stdout
    upgrade = run_cli("fetch", "--http2", f"{fresh_http_server.url}/echo")
    assert upgrade.returncode == 0 and "HTTP/1.1" in upgrade.stdout
    (req,) = fresh_http_server.requests.snapshot()
    assert ("Upgrade", "h2c") in req["headers"]
    tls = run_cli("fetch", "-k", "--http2", f"{nginx.tls_url}/")
    assert tls.returncode == 0 and "HTTP/2 " in tls.stdout


def test_bench_http2_prior_knowledge(nginx: Nginx) -> None:
    result = run_cli("bench", "-n", "200", "-c", "20", "--http2-prior-knowledge", "--json", f"{nginx.h2c_url}/")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["status_codes"] == {"200": 200}


def test_fetch_tls_options(
    certs: Certs,
    https_server: HTTPTestServer,
    https_servers: HTTPSServers,
) -> None:
    url = f"{https_server.url}/echo"
    unknown_ca = run_cli("fetch", url)
    assert unknown_ca.returncode == 1 and "curl error 60" in unknown_ca.stdout
    for args in (["--cacert", str(certs.ca_cert)], ["--capath", str(certs.capath)]):
        result = run_cli("fetch", *args, url)
        assert result.returncode == 0, (args, result.stdout, result.stderr)
        assert result.stdout.startswith("200")
    assert run_cli("fetch", f"{https_servers['selfsigned'].url}/echo").returncode == 1
    assert run_cli("fetch", "-k", f"{https_servers['selfsigned'].url}/echo").returncode == 0
    mtls = f"{https_servers['clientcert'].url}/echo"
    assert run_cli("fetch", "--cacert", str(certs.ca_cert), mtls).returncode == 1
    ok = run_cli("fetch", "--cacert", str(certs.ca_cert), "--cert", str(certs.client_cert),
                 "--key", str(certs.client_key), mtls)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    both = run_cli("fetch", "--cacert", str(certs.ca_cert), "--capath", str(certs.capath), url)
    assert both.returncode == 2
    not_pem = run_cli("fetch", "--cacert", str(certs.client_key), url)
    assert not_pem.returncode == 2 and "no PEM certificate" in not_pem.stderr


def test_help_names_both_commands() -> None:
    top = run_cli("-h")
    assert top.returncode == 0
    assert "fetch" in top.stdout and "bench" in top.stdout
    bench = run_cli("bench", "-h")
    for flag in ("-n", "-z", "-c", "--workers", "--rate", "--json", "-X", "-H", "-d", "--timeout",
                 "-k", "--cacert", "--capath", "--cert", "--key", "--http2", "--http2-prior-knowledge",
                 "--connect-timeout", "-x", "--proxy", "--noproxy", "--pinnedpubkey", "--resolve",
                 "--connect-to", "--unix-socket", "-A"):
        assert re.search(rf"(^|\s){re.escape(flag)}[ ,\n]", bench.stdout), flag
    fetch = run_cli("fetch", "-h")
    for flag in ("-i", "-o", "-f", "-L", "--http2", "-X", "-H", "-d"):
        assert re.search(rf"(^|\s){re.escape(flag)}[ ,\n]", fetch.stdout), flag
    version = run_cli("--version")
    assert version.returncode == 0 and "libcurl" in version.stdout


def test_bench_rate_latency_is_from_the_scheduled_start(fresh_http_server: HTTPTestServer) -> None:
    """--rate with one request in flight against a 100 ms server: requests
    are due every 20 ms but served every ~100 ms, so each waits longer
    than the one before; measured from the schedule (coordinated omission
    corrected) the latencies grow to ~0.8 s, from the actual send they
    would all be ~100 ms."""
    result = run_cli("bench", "-n", "10", "-c", "1", "--rate", "50", "--json",
                     f"{fresh_http_server.url}/delay/100")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["config"]["latency_from"] == "scheduled start"
    lat = report["latency_us"]
    assert lat["max"] > 600_000, lat
    assert lat["p50"] > 300_000, lat
    plain = run_cli("bench", "-n", "4", "-c", "1", "--rate", "50", "--ui", "plain",
                    "--no-progress", f"{fresh_http_server.url}/echo")
    assert "scheduled start" in plain.stdout and "coordinated-omission" in plain.stdout
    unpaced = json.loads(run_cli("bench", "-n", "5", "-c", "1", "--json",
                                 f"{fresh_http_server.url}/delay/100").stdout)
    assert unpaced["config"]["latency_from"] == "transfer"
    assert unpaced["latency_us"]["max"] < 600_000


def test_fetch_connection_flags(fresh_http_server: HTTPTestServer, certs: Certs,
                                https_server: HTTPTestServer) -> None:
    port = fresh_http_server.port
    resolved = run_cli("fetch", "--resolve", f"api.example.test:{port}:127.0.0.1",
                       f"http://api.example.test:{port}/echo")
    assert resolved.returncode == 0 and resolved.stdout.startswith("200"), resolved.stdout + resolved.stderr
    moved = run_cli("fetch", "--connect-to", f"api.example.test:80:127.0.0.1:{port}",
                    "-A", "cli-test/1", "http://api.example.test/echo")
    assert moved.returncode == 0, moved.stdout + moved.stderr
    last = fresh_http_server.requests[-1]
    assert dict((k.lower(), v) for k, v in last["headers"])["host"] == "api.example.test"
    assert dict((k.lower(), v) for k, v in last["headers"])["user-agent"] == "cli-test/1"
    timed = run_cli("fetch", "--connect-timeout", "0.5", f"{fresh_http_server.url}/echo")
    assert timed.returncode == 0, timed.stderr
    bad = run_cli("fetch", "--resolve", "nonsense", f"{fresh_http_server.url}/echo")
    assert bad.returncode == 2 and "resolve" in bad.stderr
    badproxy = run_cli("fetch", "-x", "ftp://127.0.0.1:1", f"{fresh_http_server.url}/echo")
    assert badproxy.returncode == 2 and "proxy" in badproxy.stderr
    pin = subprocess.run(
        "openssl x509 -in {0} -pubkey -noout | openssl pkey -pubin -outform der | "
        "openssl dgst -sha256 -binary | base64".format(certs.server_cert),
        shell=True, check=True, capture_output=True, text=True).stdout.strip()
    pinned = run_cli("fetch", "--cacert", str(certs.ca_cert), "--pinnedpubkey", f"sha256//{pin}",
                     f"{https_server.url}/echo")
    assert pinned.returncode == 0, pinned.stdout + pinned.stderr
    wrong = run_cli("fetch", "--cacert", str(certs.ca_cert), "--pinnedpubkey",
                    "sha256//" + "A" * 43 + "=", f"{https_server.url}/echo")
    assert wrong.returncode == 1 and "pinned" in wrong.stdout.lower(), wrong.stdout


def test_fetch_no_buffer_prints_a_stream_as_it_arrives() -> None:
    """fetch -N: the first event is on stdout while the server still holds
    the rest of the response."""
    import socket
    import threading

    release = threading.Event()
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]

    def serve() -> None:
        conn, _ = listener.accept()
        with conn:
            conn.recv(65536)
            conn.sendall(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                         b"d\r\ndata: first\n\n\r\n")
            release.wait(20)
            conn.sendall(b"c\r\ndata: last\n\n\r\n0\r\n\r\n")

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    proc = subprocess.Popen([sys.executable, "-m", "http_async_client", "fetch", "-N",
                             f"http://127.0.0.1:{port}/events"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline() == b"data: first\n"  # before the rest was sent
        release.set()
        rest, err = proc.communicate(timeout=20)
    finally:
        release.set()
        if proc.poll() is None:
            proc.kill()
        listener.close()
    assert proc.returncode == 0, err
    assert rest.endswith(b"data: last\n\n")  # (communicate() skips readline's buffer)
    assert err.decode().startswith("200")


def test_fetch_proxy_and_unix_socket_flags(http_proxy: Any, unix_http_server: Any,
                                           fresh_http_server: HTTPTestServer) -> None:
    url = f"{fresh_http_server.url}/echo"
    via = run_cli("fetch", "-x", http_proxy.url, url)
    assert via.returncode == 0 and via.stdout.startswith("200"), via.stdout + via.stderr
    assert http_proxy.requests.wait_for(1, timeout=10)
    assert http_proxy.requests[0]["target"] == url
    bypass = run_cli("fetch", "-x", http_proxy.url, "--noproxy", "127.0.0.1", url)
    assert bypass.returncode == 0 and len(http_proxy.requests) == 1
    env = dict(os.environ, http_proxy=http_proxy.url, HTTP_PROXY=http_proxy.url)
    assert run_cli("fetch", url, env=env).returncode == 0
    assert len(http_proxy.requests) == 1  # the environment is never used
    unix = run_cli("fetch", "--unix-socket", unix_http_server.path, "-o", "-", "http://localhost/u")
    assert unix.returncode == 0 and "unix:GET /u" in unix.stdout, unix.stdout + unix.stderr
