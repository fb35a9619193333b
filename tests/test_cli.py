"""The main job: the CLI, in a subprocess, against real loopback servers."""

from __future__ import annotations

import re
import subprocess
import sys


def run_cli(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "http_async_client", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_demo_load_against_embedded_server() -> None:
    """No URL: embedded loopback server, bounded load, a report."""
    result = run_cli("-n", "3000", "-c", "32", "-z", "10")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    m = re.search(r"(\d+) requests in [\d.]+ s: (\d+) requests/s, (\d+) ok, (\d+) errors", out)
    assert m, out
    assert int(m.group(1)) == 3000 and int(m.group(3)) == 3000 and m.group(4) == "0"
    assert re.search(r"latency p50 \d+ us\s+p90 \d+ us\s+p99 \d+ us", out), out
    assert "stats: requests=3000, replies=3000, errors=0, timeouts=0" in out


def test_fetch_urls(http_server) -> None:
    """URLs: one line each; exit code 0 when all succeed."""
    urls = [f"{http_server.url}/bytes/10", f"{http_server.url}/bytes/20"]
    result = run_cli(*urls)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.strip().splitlines()
    assert len(lines) == 2
    assert any(line.startswith("200") and "10 B" in line for line in lines)
    assert any(line.startswith("200") and "20 B" in line for line in lines)


def test_fetch_failure_sets_exit_code(http_server) -> None:
    result = run_cli(f"{http_server.url}/echo", "http://127.0.0.1:9/")
    assert result.returncode == 1
    assert "ERR" in result.stdout and "curl error 7" in result.stdout


def test_fetch_bad_url_is_a_clear_error() -> None:
    result = run_cli("ftp://127.0.0.1/")
    assert result.returncode == 2
    assert "scheme must be http or https" in result.stderr
